package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// opStore counts a Store's calls and can cut one instance off (a partition).
type opStore struct {
	Store
	down                          atomic.Bool
	updates, gets, puts, livegets atomic.Int64
}

func (s *opStore) Update(ctx context.Context, id string, fn func(*Record)) (Record, error) {
	s.updates.Add(1)
	if s.down.Load() {
		return Record{}, ErrStoreDown
	}
	return s.Store.Update(ctx, id, fn)
}

func (s *opStore) Get(ctx context.Context, id string) (Record, error) {
	s.gets.Add(1)
	if s.down.Load() {
		return Record{}, ErrStoreDown
	}
	return s.Store.Get(ctx, id)
}

func (s *opStore) PutLiveness(ctx context.Context, inst string, l Liveness, yieldTo int64) (Liveness, error) {
	s.puts.Add(1)
	if s.down.Load() {
		return Liveness{}, ErrStoreDown
	}
	return s.Store.PutLiveness(ctx, inst, l, yieldTo)
}

func (s *opStore) GetLiveness(ctx context.Context, inst string) (Liveness, bool, error) {
	s.livegets.Add(1)
	if s.down.Load() {
		return Liveness{}, false, ErrStoreDown
	}
	return s.Store.GetLiveness(ctx, inst)
}

// Watch drops what is written while the instance is cut off.
func (s *opStore) Watch(ctx context.Context, fn func(Change)) error {
	return s.Store.Watch(ctx, func(c Change) {
		if !s.down.Load() {
			fn(c)
		}
	})
}

func (s *opStore) casOps() int64 { return s.updates.Load() + s.gets.Load() }

// storeManager is a manual Manager on its own view of a shared store.
func storeManager(t *testing.T, st Store, inst string, clk Clock, cs ...Campaign) *Manager {
	t.Helper()
	return startManager(t, storeConfig(st, inst, clk), cs...)
}

// startManager makes a manager of cfg with campaigns cs and starts it.
func startManager(t *testing.T, cfg Config, cs ...Campaign) *Manager {
	t.Helper()
	m, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return m
}

// storeConfig is storeManager's config: manual rounds on clk, leases of
// 1-10 units, a short Start probe.
func storeConfig(st Store, inst string, clk Clock) Config {
	return Config{
		InstanceID: inst, Store: st, Clock: clk, manual: true, probeWait: 20 * time.Millisecond,
		HoldTTL: time.Minute, LeaseTTL: 3 * time.Minute, MinLease: micros(1), MaxLease: micros(10),
		MaxHolds: 1024, FreqQueue: 64, FreqMaxUsers: 1 << 12,
	}
}

func manyCampaigns(n int, total int64) []Campaign {
	cs := make([]Campaign, n)
	for i := range cs {
		cs[i] = campaign(fmt.Sprintf("c%d", i), total)
	}
	return cs
}

// Idle campaigns cost nothing after the first rounds: one liveness write per
// instance per round, whatever the number of campaigns, and no record read or
// written, on two instances sharing the store.
func TestIdleCampaignsCostNoStoreOps(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	cs := manyCampaigns(300, micros(100))
	sa, sb := &opStore{Store: mem}, &opStore{Store: mem}
	a := storeManager(t, sa, "a", clk, cs...)
	b := storeManager(t, sb, "b", clk, cs...)
	starts := sa.livegets.Load() + sb.livegets.Load() // each Start reads its own id's (probeInstance)
	round := func() {
		clk.Add(time.Second)
		for _, m := range []*Manager{a, b} {
			m.syncAll(ctxT(t), clk.Now(), false)
			m.tick(clk.Now())
		}
	}
	for range 40 { // the first lease, then the headroom given back after leaseIdle
		round()
	}
	if l := a.Handle("c0").lease.Load() + b.Handle("c0").lease.Load(); l != 0 {
		t.Fatalf("idle instances still hold %d", l)
	}
	ops, puts := sa.casOps()+sb.casOps(), sa.puts.Load()+sb.puts.Load()
	const rounds = 100
	for range rounds {
		round()
	}
	if got := sa.casOps() + sb.casOps() - ops; got != 0 {
		t.Errorf("%d record reads and writes in %d idle rounds of 2 x %d campaigns, want 0", got, rounds, len(cs))
	}
	if got := sa.puts.Load() + sb.puts.Load() - puts; got != 2*rounds {
		t.Errorf("%d liveness writes in %d rounds of 2 instances, want %d", got, rounds, 2*rounds)
	}
	if n := sa.livegets.Load() + sb.livegets.Load() - starts; n != 0 || starts != 2 {
		t.Errorf("%d liveness reads with every instance alive (%d at the starts, want one each)", n, starts)
	}
	// Closing instances with no entry in any record costs no step either.
	ops = sa.casOps() + sb.casOps()
	for _, m := range []*Manager{a, b} {
		if err := m.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if got := sa.casOps() + sb.casOps() - ops; got != 0 {
		t.Errorf("close of idle instances: %d record operations", got)
	}
	if r, _ := mem.Get(ctxT(t), "c7"); len(r.Leases) != 0 {
		t.Errorf("entries left: %+v", r)
	}
}

// A lease in use but not changing (holds placed and released every round, no
// spend) is never rewritten: the heartbeat keeps it valid, for many LeaseTTLs,
// and another instance stepping the same campaign does not reclaim it.
func TestLeasesRenewInBulk(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	cs := manyCampaigns(20, micros(100))
	sa := &opStore{Store: mem}
	a := storeManager(t, sa, "a", clk, cs...)
	b := storeManager(t, mem, "b", clk, cs...)
	hb := b.Handle("c0")
	round := func() {
		clk.Add(time.Second)
		for i := range cs {
			h := a.Handle(cs[i].ID)
			if a.Allow(h, 1000, clk.Now()) != DecisionOK {
				t.Fatalf("%s at %v: %v", cs[i].ID, clk.Now(), a.Allow(h, 1000, clk.Now()))
			}
			id, _ := a.Hold(h, 1000, clk.Now())
			a.releaseHold(h, id)
		}
		b.Allow(hb, micros(50), clk.Now()) // demand: b steps c0 every round
		a.syncAll(ctxT(t), clk.Now(), false)
		b.syncAll(ctxT(t), clk.Now(), false)
	}
	for range 5 {
		round()
	}
	ops, steps := sa.casOps(), a.steps.Load()
	rounds := int(10 * a.cfg.LeaseTTL / time.Second)
	for range rounds {
		round()
	}
	if got := sa.casOps() - ops; got != 0 || a.steps.Load() != steps {
		t.Errorf("a's unchanged leases: %d record operations over %d rounds (%d LeaseTTLs)", got, rounds, 10)
	}
	r, _ := mem.Get(ctxT(t), "c0")
	if l := r.Leases["a"]; l.Reclaimed || l.Amount != micros(1) {
		t.Fatalf("a's lease on c0: %+v", l)
	}
	if l := r.Leases["a"]; l.Expires >= clk.Now().UnixNano() {
		t.Fatalf("a's lease was rewritten: expires %v", time.Unix(0, l.Expires))
	}
	if c := a.Counters(); c.LeasesLost != 0 {
		t.Fatalf("a lost leases: %+v", c)
	}
}

// An instance that stops (crash) keeps its leases until its liveness record
// expires (+ReclaimWait); then a live instance, with no traffic of its own,
// reclaims them, and the money is granted again.
func TestCrashedInstanceLeasesReclaimed(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(3))
	a := storeManager(t, mem, "a", clk, c)
	ha := a.Handle("c")
	// a bids (holds placed and released) for a minute: its lease settles at the
	// minimum and is not rewritten after that.
	for range 60 {
		clk.Add(time.Second)
		id, _ := a.Hold(ha, 1000, clk.Now())
		a.releaseHold(ha, id)
		a.syncAll(ctxT(t), clk.Now(), false)
	}
	b := storeManager(t, mem, "b", clk, c)
	hb := b.Handle("c")
	r, _ := mem.Get(ctxT(t), "c")
	if l := r.Leases["a"]; l.Amount == 0 || l.Expires > clk.Now().Add(a.cfg.LeaseTTL-30*time.Second).UnixNano() {
		t.Fatalf("a's lease should be older than 30s: %+v", l)
	}
	crashed := clk.Now() // a stops here: no more rounds, no close
	lapse := crashed.Add(a.cfg.LeaseTTL + a.cfg.ReclaimWait)
	for clk.Now().Before(lapse.Add(-time.Second)) {
		clk.Add(time.Second)
		hb.poke.Store(true) // b steps the campaign every round: a's lease is past its own expiry long before the lapse
		b.syncAll(ctxT(t), clk.Now(), false)
		if r, _ := mem.Get(ctxT(t), "c"); r.Leases["a"].Reclaimed {
			t.Fatalf("a's lease reclaimed at %v, before its liveness lapsed at %v", clk.Now().Sub(crashed), lapse.Sub(crashed))
		}
	}
	var reclaimed time.Time
	for i := 0; i < 10 && reclaimed.IsZero(); i++ {
		clk.Add(time.Second)
		b.syncAll(ctxT(t), clk.Now(), false)
		if r, _ := mem.Get(ctxT(t), "c"); r.Leases["a"].Reclaimed && r.Leases["a"].Amount == 0 {
			reclaimed = clk.Now()
		}
	}
	if reclaimed.IsZero() {
		r, _ := mem.Get(ctxT(t), "c")
		t.Fatalf("a's lease not reclaimed %v after the crash: %+v", clk.Now().Sub(crashed), r)
	}
	// The money is b's to take now.
	b.Allow(hb, micros(2), clk.Now())
	clk.Add(time.Second)
	b.syncAll(ctxT(t), clk.Now(), false)
	if d := b.Allow(hb, micros(2), clk.Now()); d != DecisionOK {
		t.Fatalf("b after the reclaim: %v (lease %d, pool free %d)", d, hb.lease.Load(), hb.poolFree.Load())
	}
}

// A partitioned instance stops starting holds before its lease can be
// reclaimed, every hold it placed has expired when the other instance
// reclaims, and once healed it trusts its old leases only after writing them
// again (the step reports the lease lost). The pool's invariant holds all
// along.
func TestPartitionedInstanceStopsBeforeReclaim(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(4))
	sa := &opStore{Store: mem}
	a := storeManager(t, sa, "a", clk, c)
	b := storeManager(t, mem, "b", clk, c)
	ha, hb := a.Handle("c"), b.Handle("c")
	checkInvariant := func() {
		t.Helper()
		r, _ := mem.Get(ctxT(t), "c")
		var sum int64
		for _, l := range r.Leases {
			sum += l.Amount
		}
		if r.SpentTotal+sum > c.TotalMicros {
			t.Fatalf("invariant broken: %+v", r)
		}
	}
	var holdEnd time.Time // latest expiry of a hold a placed
	bid := func() {
		now := clk.Now()
		if a.Allow(ha, 100_000, now) == DecisionOK {
			if id, ok := a.Hold(ha, 100_000, now); ok {
				holdEnd = now.Add(a.cfg.HoldTTL)
				a.releaseHold(ha, id)
			}
		}
	}
	for range 10 { // a bids (holds placed and released) with a lease kept valid by its heartbeat
		clk.Add(time.Second)
		bid()
		a.syncAll(ctxT(t), clk.Now(), false)
		b.syncAll(ctxT(t), clk.Now(), false)
	}
	sa.down.Store(true)
	var reclaimed time.Time
	for i := 0; i < 1200 && reclaimed.IsZero(); i++ {
		clk.Add(time.Second)
		bid()
		a.syncAll(ctxT(t), clk.Now(), false)
		b.Allow(hb, micros(4), clk.Now()) // b wants all the money
		b.syncAll(ctxT(t), clk.Now(), false)
		checkInvariant()
		if r, _ := mem.Get(ctxT(t), "c"); r.Leases["a"].Reclaimed {
			reclaimed = clk.Now()
		}
	}
	if reclaimed.IsZero() {
		t.Fatal("a's lease never reclaimed")
	}
	t.Logf("partition at +10s; a's last hold ends %v, lease reclaimed %v", holdEnd.Sub(t0.Add(time.Hour)), reclaimed.Sub(t0.Add(time.Hour)))
	if holdEnd.After(reclaimed) {
		t.Fatalf("a's hold ends at %v, after its lease was reclaimed at %v", holdEnd, reclaimed)
	}
	if d := a.Allow(ha, 100_000, clk.Now()); d != DecisionFailClosed {
		t.Fatalf("a during the partition: %v", d)
	}
	sa.down.Store(false)
	clk.Add(time.Second)
	if err := a.beat(ctxT(t), clk.Now()); err != nil { // a heartbeat after the lapse: a new epoch
		t.Fatal(err)
	}
	if d := a.Allow(ha, 100_000, clk.Now()); d == DecisionOK {
		t.Fatal("healed, a bids on a lease it wrote before its liveness lapsed")
	}
	a.syncAll(ctxT(t), clk.Now(), false) // the step rewrites the lease
	if c := a.Counters(); c.LeasesLost != 1 {
		t.Fatalf("the healed step did not see its lease lost: %+v", c)
	}
	checkInvariant()
}

// The protocol's reclaim and entry rules, one record step at a time.
func TestApplyLeaseReclaimAndDrop(t *testing.T) {
	now := t0.Add(time.Hour)
	ns := now.UnixNano()
	ttl, wait := 3*time.Minute, 2*time.Second
	old := ns - int64(ttl) // b's lease was written LeaseTTL ago: past its own expiry
	rec := func() Record {
		return Record{Day: "2026-11-23", Leases: map[string]Lease{"b": {Amount: 500, Expires: old, Boot: "b1"}}}
	}
	q := leaseReq{instance: "a", now: now, day: "2026-11-23", total: 1000, boot: "a1", ttl: ttl, reclaim: wait}
	f := func(name string, lp map[string]lapse, r Record, wantReclaim bool, wantSuspect bool) {
		t.Helper()
		qq := q
		qq.lapsed = lp
		qq.tails = map[string]ledgerTail{"b": {}}
		res := applyLease(&r, qq)
		if got := r.Leases["b"].Reclaimed; got != wantReclaim {
			t.Errorf("%s: reclaimed %v, want %v (%+v)", name, got, wantReclaim, r.Leases["b"])
		}
		if got := len(res.suspects) > 0; got != wantSuspect {
			t.Errorf("%s: suspects %v", name, res.suspects)
		}
	}
	fresh := ns - int64(time.Second)
	f("no read", nil, rec(), false, true)
	f("read: no record", map[string]lapse{"b": {readAt: fresh}}, rec(), true, false)
	f("read: another process", map[string]lapse{"b": {boot: "b2", expires: ns + int64(ttl), readAt: fresh}}, rec(), true, false)
	f("read: expired", map[string]lapse{"b": {boot: "b1", expires: fresh - int64(wait) - 1, readAt: fresh}}, rec(), true, false)
	f("read: not expired by ReclaimWait", map[string]lapse{"b": {boot: "b1", expires: fresh - int64(wait), readAt: fresh}}, rec(), false, true)
	f("read too old", map[string]lapse{"b": {readAt: ns - int64(ttl)}}, rec(), false, true)
	young := rec()
	young.Leases["b"] = Lease{Amount: 500, Expires: ns - int64(wait), Boot: "b1"}
	f("within its own expiry", map[string]lapse{"b": {readAt: fresh}}, young, false, false)

	// The crash gap: a lapsed lease is reclaimed only once its owner's ledger
	// tail is read, and the spend the ledger holds beyond the lease's Cum
	// goes into the record.
	noTail := q
	noTail.lapsed = map[string]lapse{"b": {readAt: fresh}}
	gr := rec()
	if res := applyLease(&gr, noTail); gr.Leases["b"].Reclaimed || len(res.needTail) != 1 {
		t.Errorf("reclaimed without the owner's ledger tail: %+v %+v", gr.Leases["b"], res)
	}
	withTail := noTail
	withTail.tails = map[string]ledgerTail{"b": {boot: "b1", cum: 700}}
	gr = rec()
	gr.SpentTotal, gr.SpentDay = 1000, 1000
	gr.Leases["b"] = Lease{Amount: 500, Expires: old, Boot: "b1", Reported: 400, Cum: 450}
	res := applyLease(&gr, withTail)
	if l := gr.Leases["b"]; !l.Reclaimed || res.gap != 250 || gr.SpentTotal != 1250 || gr.SpentDay != 1250 ||
		l.Reported != 650 || l.Cum != 700 {
		t.Errorf("crash gap: %+v, tombstone %+v, gap %d", gr, l, res.gap)
	}
	otherBoot := noTail
	otherBoot.tails = map[string]ledgerTail{"b": {boot: "b0", cum: 900}} // an older process wrote last: b1 charged nothing
	gr = rec()
	if res := applyLease(&gr, otherBoot); !gr.Leases["b"].Reclaimed || res.gap != 0 || gr.SpentTotal != 0 || res.gapUnknown != 0 {
		t.Errorf("another process's tail: %+v %+v", gr, res)
	}

	// Reporting stays exact across a dropped entry and retried steps.
	r := Record{}
	q1 := q
	q1.reported, q1.acked = 300, 0
	for range 2 { // the step, then its retry after a lost reply
		applyLease(&r, q1)
		if _, ok := r.Leases["a"]; !ok || r.SpentTotal != 300 {
			t.Fatalf("report: %+v", r)
		}
	}
	q2 := q
	q2.reported, q2.acked = 300, 300
	for range 2 { // drop (nothing new, nothing wanted), then a retry that finds no entry
		res := applyLease(&r, q2)
		if _, ok := r.Leases["a"]; ok || res.kept || r.SpentTotal != 300 {
			t.Fatalf("drop: %+v", r)
		}
	}
	q3 := q
	q3.reported, q3.acked, q3.want = 400, 300, 200
	applyLease(&r, q3)
	if r.SpentTotal != 400 || r.Leases["a"].Amount != 200 {
		t.Fatalf("after the drop: %+v", r)
	}
}

// Another instance's reported spend reaches this one's pacing through the
// watch, with no step of its own.
func TestGlobalSpendReachesIdleInstance(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := Campaign{ID: "c", Currency: "USD", DailyMicros: micros(100), Pacing: PacingEven}
	a := storeManager(t, mem, "a", clk, c)
	b := storeManager(t, mem, "b", clk, c)
	ha, hb := a.Handle("c"), b.Handle("c")
	id, _ := a.Hold(ha, 500_000, clk.Now())
	a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "x", ImpID: "1",
		BidMicros: 500_000, ClearingMicros: 400_000, Time: clk.Now()})
	a.ledger.flush(ctxT(t))
	steps := b.steps.Load()
	clk.Add(time.Second)
	a.syncAll(ctxT(t), clk.Now(), false)
	b.syncAll(ctxT(t), clk.Now(), false)
	if b.steps.Load() != steps {
		t.Fatalf("b stepped")
	}
	_, _, day := dayBounds(clk.Now(), time.UTC)
	if got := hb.spentToday(day); got != 400_000 {
		t.Fatalf("b sees %d spent today, want 400000", got)
	}
	b.paceAll(clk.Now())
	if st := b.Status()[0]; st.SpentTodayMicros != 400_000 {
		t.Fatalf("b's status %+v", st)
	}
}

// The pacing controller of a campaign with nothing new is stepped every
// paceIdleEvery, not every second.
func TestPacingSkipsIdleCampaigns(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := Campaign{ID: "c", Currency: "USD", DailyMicros: micros(100), Pacing: PacingEven}
	m := newMemManager(t, NewMemStore(), "p", clk, c)
	h := m.Handle("c")
	steps := 0
	for range 90 {
		clk.Add(time.Second)
		at := h.paceAt
		m.paceAll(clk.Now())
		if h.paceAt != at {
			steps++
		}
	}
	if steps != 3 {
		t.Fatalf("%d controller steps in 90 idle seconds, want 3", steps)
	}
	m.Hold(h, 1000, clk.Now()) // activity: stepped at the next second
	clk.Add(time.Second)
	at := h.paceAt
	m.paceAll(clk.Now())
	if h.paceAt == at {
		t.Fatal("an active campaign's controller was not stepped")
	}
}

// A restarted instance (same id, a new process) takes its old entries over at
// its first round: the spend the old process reported stays counted once,
// and the new process's reports add only what is new.
func TestRestartedInstanceTakesOverItsEntries(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(10))
	old := storeManager(t, mem, "a", clk, c)
	h := old.Handle("c")
	id, _ := old.Hold(h, 500_000, clk.Now())
	old.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "x", ImpID: "1",
		BidMicros: 500_000, ClearingMicros: 500_000, Time: clk.Now()})
	old.ledger.flush(ctxT(t))
	clk.Add(time.Second)
	old.syncAll(ctxT(t), clk.Now(), false) // reported; then the process dies
	clk.Add(time.Second)
	m := storeManager(t, mem, "a", clk, c) // first round at Start
	r, _ := mem.Get(ctxT(t), "c")
	if l := r.Leases["a"]; r.SpentTotal != 500_000 || l.Boot != m.boot || l.Reported != 0 {
		t.Fatalf("after the restart: %+v", r)
	}
	h = m.Handle("c")
	id, _ = m.Hold(h, 200_000, clk.Now())
	m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "y", ImpID: "1",
		BidMicros: 200_000, ClearingMicros: 200_000, Time: clk.Now()})
	m.ledger.flush(ctxT(t))
	clk.Add(time.Second)
	m.syncAll(ctxT(t), clk.Now(), false)
	if r, _ := mem.Get(ctxT(t), "c"); r.SpentTotal != 700_000 {
		t.Fatalf("after the new process reported: %+v", r)
	}
}

// syncRound advances clk a second and runs one sync round and pacing tick
// of m; it returns the lease steps the round took.
func syncRound(t *testing.T, m *Manager, clk *manualClock) uint64 {
	clk.Add(time.Second)
	before := m.steps.Load()
	m.syncAll(ctxT(t), clk.Now(), false)
	m.tick(clk.Now())
	return m.steps.Load() - before
}

// peerAlive shows m another instance's heartbeat, valid until until, as the
// liveness watch would deliver it.
func peerAlive(m *Manager, until time.Time) {
	m.onLiveness(Change{Instance: "b", Liveness: &Liveness{Boot: "b1", Expires: until.UnixNano()}})
}

// Campaigns loaded together go idle together: their headroom goes back over
// several rounds, at most maxReturnsPerRound steps each, not in one burst.
func TestIdleHeadroomReturnsSpreadOverRounds(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	const n = 3*maxReturnsPerRound + 10
	cs := manyCampaigns(n, micros(100))
	m := newMemManager(t, NewMemStore(), "a", clk, cs...)
	// Another instance is alive (the money may be wanted there): an
	// instance alone keeps its idle headroom (TestAloneKeepsIdleHeadroom).
	peerAlive(m, clk.Now().Add(time.Hour))
	held := func() (k int) {
		for _, c := range cs {
			if m.Handle(c.ID).lease.Load() != 0 {
				k++
			}
		}
		return k
	}
	round := func() uint64 { return syncRound(t, m, clk) }
	if held() != n {
		t.Fatalf("after start: %d leases, want %d", held(), n)
	}
	var perRound []uint64
	for i := 0; held() > 0 && i < 120; i++ {
		if s := round(); s > 0 {
			perRound = append(perRound, s)
		}
	}
	if held() != 0 {
		t.Fatalf("after %d rounds, %d campaigns still hold headroom", len(perRound), held())
	}
	total := uint64(0)
	for _, s := range perRound {
		if s > maxReturnsPerRound {
			t.Fatalf("a round gave back %d leases (want at most %d): %v", s, maxReturnsPerRound, perRound)
		}
		total += s
	}
	if total != n || len(perRound) != 4 {
		t.Fatalf("give-back steps by round %v: want %d in 4 rounds", perRound, n)
	}
}

// Two live processes under one instance_id shared its lease entries, each
// taking the other's for a previous process's: both held against the same
// lease and the record's spend came out wrong (30,000 micros for ten bills
// of 2,500; found by the red-team pass with two bidders configured
// instance_id: dup on one NATS). A process's beats after its first now yield
// to another's live heartbeat: the one whose heartbeat stands (the later
// one) bids, the other stops holding until that heartbeat is deleted or
// expired; a restart after a crash, whose dead process left its heartbeat
// behind, is not taken for a twin.
func TestTwinInstanceFailsClosed(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(100))
	storeManager(t, mem, "a", clk, c) // dies without closing: its heartbeat stays
	clk.Add(time.Second)
	a := storeManager(t, mem, "a", clk, c)
	ha := a.Handle("c")
	leaseUp(t, a, ha, clk)
	if ok, why := a.Ready(); !ok {
		t.Fatalf("restarted after a crash: not ready (%s)", why)
	}
	if _, ok := a.Hold(ha, 1000, clk.Now()); !ok {
		t.Fatal("restarted after a crash: hold refused")
	}
	b := storeManager(t, mem, "a", clk, c) // a live twin
	hb := b.Handle("c")
	for range 3 {
		a.syncAll(ctxT(t), clk.Now(), false)
		b.syncAll(ctxT(t), clk.Now(), false)
		clk.Add(time.Second)
	}
	// The first process's beats yield to the twin's live heartbeat: the
	// first stops holding, the twin (whose heartbeat stands) goes on.
	if ok, _ := a.Ready(); ok {
		t.Error("first: ready beside a twin")
	}
	if d := a.Allow(ha, 1000, clk.Now()); d != DecisionFailClosed {
		t.Errorf("first: Allow %v beside a twin, want fail closed", d)
	}
	if _, ok := a.Hold(ha, 1000, clk.Now()); ok {
		t.Error("first: hold beside a twin")
	}
	if l, _, _ := mem.GetLiveness(ctxT(t), "a"); l.Boot != b.boot {
		t.Errorf("heartbeat %+v, want the twin's (boot %s)", l, b.boot)
	}
	leaseUp(t, b, hb, clk)
	if _, ok := b.Hold(hb, 1000, clk.Now()); !ok {
		t.Error("twin: the process whose heartbeat stands was refused a hold")
	}
	// The twin closes (an overlapping deploy's old process exits) with its
	// hold open: its lease entry keeps that hold's money until the hold
	// expires (its bill may still come), and the first bids again then.
	b.Close(ctxT(t))
	leaseUp(t, a, ha, clk)
	if ok, why := a.Ready(); !ok {
		t.Fatalf("after the twin closed: not ready (%s)", why)
	}
	if _, ok := a.Hold(ha, 1000, clk.Now()); ok {
		t.Fatal("after the twin closed: a hold while the twin's open hold keeps its lease entry")
	}
	clk.Add(a.cfg.HoldTTL)
	leaseUp(t, a, ha, clk)
	if _, ok := a.Hold(ha, 1000, clk.Now()); !ok {
		t.Fatal("after the twin closed and its hold expired: hold refused")
	}
	// Another twin that dies without closing: bids resume once its last
	// heartbeat expired.
	storeManager(t, mem, "a", clk, c).syncAll(ctxT(t), clk.Now(), false)
	a.syncAll(ctxT(t), clk.Now(), false)
	if _, ok := a.Hold(ha, 1000, clk.Now()); ok {
		t.Fatal("hold beside a second twin")
	}
	clk.Add(a.cfg.LeaseTTL + time.Second)
	leaseUp(t, a, ha, clk)
	if _, ok := a.Hold(ha, 1000, clk.Now()); !ok {
		t.Fatal("after the dead twin's heartbeat expired: hold refused")
	}
}

// beatStore is a Store whose first GetLiveness, once it has read, runs
// beat: another process's heartbeat written between a probe's two reads.
type beatStore struct {
	Store
	once  sync.Once
	reads atomic.Int32
	beat  func()
}

func (s *beatStore) GetLiveness(ctx context.Context, inst string) (Liveness, bool, error) {
	l, ok, err := s.Store.GetLiveness(ctx, inst)
	s.reads.Add(1)
	s.once.Do(s.beat)
	return l, ok, err
}

// A process started beside a live one under the same instance_id ran until
// their heartbeats crossed: its first step took the live one's lease entry
// over as a dead predecessor's and both held against one lease (an outside
// audit's fleet acknowledged 2x a daily budget and reported 3x). Start now
// watches the id's heartbeat for probeWait first: written again, it fails
// with ErrInstanceInUse having started nothing; once the other closed, it
// starts. A restart after a crash (no newer heartbeat) starts and takes the
// old entry over (TestCrashGapClosedOnRestart).
func TestStartRefusedBesideALiveProcess(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(100))
	a := storeManager(t, mem, "a", clk, c)
	ha := a.Handle("c")
	leaseUp(t, a, ha, clk)
	id, ok := a.Hold(ha, 300_000, clk.Now())
	if !ok {
		t.Fatal("the first process: hold refused")
	}
	before, _ := mem.Get(ctxT(t), "c")
	// The live process writes its heartbeat while the probe watches: once,
	// right after the probe's first read (a goroutine beating every 2 ms
	// against a 50 ms probe left it to the scheduler: starved for the
	// probe's length, it wrote nothing and Start went on).
	beatOnce := &beatStore{Store: mem, beat: func() {
		clk.Add(time.Millisecond)
		a.beat(ctxT(t), clk.Now())
	}}
	cfg := storeConfig(beatOnce, "a", clk)
	cfg.probeWait = 50 * time.Millisecond
	b, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetCampaigns([]Campaign{c}); err != nil {
		t.Fatal(err)
	}
	err = b.Start(ctxT(t))
	if beatOnce.reads.Load() < 2 {
		t.Errorf("the probe read the heartbeat %d times, want 2 (before and after its wait)", beatOnce.reads.Load())
	}
	if !errors.Is(err, ErrInstanceInUse) {
		t.Fatalf("Start beside a live process under its id: %v, want ErrInstanceInUse", err)
	}
	if r, _ := mem.Get(ctxT(t), "c"); r.Rev != before.Rev || r.Leases["a"].Boot != a.boot {
		t.Fatalf("the refused process touched the record: %+v, before %+v", r, before)
	}
	// The live process's bid is charged and reported as if nothing happened.
	if _, err := a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "x", ImpID: "1",
		BidMicros: 300_000, ClearingMicros: 300_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	a.ledger.flush(ctxT(t))
	a.syncAll(ctxT(t), clk.Now(), false)
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The first closed (an overlapping deploy's old process exits): the
	// second starts, takes the entry over, and adds nothing.
	if err := b.Start(ctxT(t)); err != nil {
		t.Fatalf("Start after the other closed: %v", err)
	}
	defer b.Close(ctxT(t))
	hb := b.Handle("c")
	for range 3 {
		clk.Add(time.Second)
		b.Allow(hb, 1000, clk.Now())
		b.syncAll(ctxT(t), clk.Now(), false)
	}
	if _, ok := b.Hold(hb, 1000, clk.Now()); !ok {
		t.Fatal("after the first process closed: the second may not hold")
	}
	if r, _ := mem.Get(ctxT(t), "c"); r.SpentTotal != 300_000 || b.Counters().CrashGapMicros != 0 {
		t.Fatalf("record %+v, crash gap %d: want 300000 spent once", r, b.Counters().CrashGapMicros)
	}
}

// An instance alone keeps an idle campaign's headroom (MinLease): it costs
// no step (its heartbeat keeps the lease valid), and the first request
// after a quiet spell bids instead of getting no_lease until the next round
// (found from outside: make run, then the README's request 45 s later, got
// 204 budget). When another instance shows up the headroom goes back.
func TestAloneKeepsIdleHeadroom(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	cs := manyCampaigns(20, micros(100))
	m := newMemManager(t, NewMemStore(), "a", clk, cs...)
	round := func() uint64 { return syncRound(t, m, clk) }
	for range 40 { // past leaseIdle (30 s)
		round()
	}
	steps := uint64(0)
	for range 60 {
		steps += round()
	}
	if steps != 0 {
		t.Errorf("%d steps in 60 idle rounds alone, want 0", steps)
	}
	h := m.Handle("c0")
	if l := h.lease.Load(); l != m.cfg.MinLease {
		t.Fatalf("alone, idle: lease %d, want MinLease %d", l, m.cfg.MinLease)
	}
	if d := m.Allow(h, micros(1), clk.Now()); d != DecisionOK {
		t.Fatalf("the first request after 100 s idle: %v, want a bid", d)
	}
	peerAlive(m, clk.Now().Add(time.Hour))
	for range 3 {
		round()
	}
	if l := h.lease.Load(); l != 0 {
		t.Fatalf("another instance alive: idle lease %d kept, want it given back", l)
	}
}

// gatedStore blocks record updates while armed, until released: a Close
// whose release steps are slow.
type gatedStore struct {
	Store
	armed   atomic.Bool
	release chan struct{}
}

func (s *gatedStore) Update(ctx context.Context, id string, fn func(*Record)) (Record, error) {
	if s.armed.Load() {
		<-s.release
	}
	return s.Store.Update(ctx, id, fn)
}

// An overlapping deploy whose old process closes slowly: Close stopped its
// heartbeat first and reported its spend and deleted its record only later,
// so a new process's probe, longer than the gap, read the record unchanged,
// started, and took the entry over with the unreported spend as a crash gap;
// the old release step then reported the same spend again (the review of
// 9ae1b93: 600,000 spent for 300,000 charged). Close now goes on writing
// the heartbeat until the delete, so the new process does not start before.
func TestOverlappingDeployWaitsForASlowClose(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	gate := &gatedStore{Store: mem, release: make(chan struct{})}
	c := campaign("c", micros(100))
	start := func(st Store, wait time.Duration) (*Manager, error) {
		cfg := storeConfig(st, "a", clk)
		cfg.SyncPeriod, cfg.probeWait = 10*time.Millisecond, wait
		cfg.backend = mem.ledger // one ledger, as on NATS: a takeover reads the old process's charges
		m, err := New(cfg, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetCampaigns([]Campaign{c}); err != nil {
			t.Fatal(err)
		}
		return m, m.Start(ctxT(t))
	}
	a, err := start(gate, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ha := a.Handle("c")
	leaseUp(t, a, ha, clk)
	id, ok := a.Hold(ha, 300_000, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	if _, err := a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "x", ImpID: "1",
		BidMicros: 300_000, ClearingMicros: 300_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	a.ledger.flush(ctxT(t)) // acknowledged, not yet reported
	gate.armed.Store(true)
	closed := make(chan error, 1)
	go func() { closed <- a.Close(ctxT(t)) }() // its release step waits at the gate
	b, err := start(mem, 100*time.Millisecond)
	if !errors.Is(err, ErrInstanceInUse) {
		t.Fatalf("Start while the old process still closes: %v, want ErrInstanceInUse", err)
	}
	gate.armed.Store(false)
	close(gate.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctxT(t)); err != nil {
		t.Fatalf("Start after the old process closed: %v", err)
	}
	defer b.Close(ctxT(t))
	for range 3 {
		clk.Add(time.Second)
		b.syncAll(ctxT(t), clk.Now(), false)
	}
	if r, _ := mem.Get(ctxT(t), "c"); r.SpentTotal != 300_000 || b.Counters().CrashGapMicros != 0 {
		t.Fatalf("record %+v, crash gap %d: want 300000 spent once", r, b.Counters().CrashGapMicros)
	}
}

// cutStore cuts one process off from the store while armed: its record
// updates wait for release (they go through when it reconnects) and its
// heartbeats fail.
type cutStore struct {
	gatedStore
}

func (s *cutStore) PutLiveness(ctx context.Context, inst string, l Liveness, yieldTo int64) (Liveness, error) {
	if s.armed.Load() {
		return Liveness{}, ErrStoreDown
	}
	return s.Store.PutLiveness(ctx, inst, l, yieldTo)
}

// takeoverRig starts process a under instance id "a" on a cutStore with
// the 300,000 of a settled win acknowledged by the ledger but not reported,
// cuts it off, and starts process b under the same id, which takes a's entry
// over as a dead process's (its heartbeat stopped changing) and moves the
// ledger's figure into the record. a.Hold's second hold (200,000) is open.
func takeoverRig(t *testing.T, closeA bool) (clk *manualClock, mem *MemStore, cut *cutStore, a, b *Manager, hold2 HoldID, closed chan error) {
	t.Helper()
	clk = newManualClock(t0.Add(time.Hour))
	mem = NewMemStore()
	cut = &cutStore{gatedStore{Store: mem, release: make(chan struct{})}}
	c := campaign("c", micros(100))
	newM := func(st Store) *Manager { return sameIDManager(t, st, mem, clk, c) }
	a = newM(cut)
	if err := a.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ha := a.Handle("c")
	leaseUp(t, a, ha, clk)
	id1, ok1 := a.Hold(ha, 300_000, clk.Now())
	id2, ok2 := a.Hold(ha, 200_000, clk.Now())
	if !ok1 || !ok2 {
		t.Fatal("hold refused")
	}
	if _, err := a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id1, CampaignID: "c", AuctionID: "x", ImpID: "1",
		BidMicros: 300_000, ClearingMicros: 300_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	a.ledger.flush(ctxT(t)) // acknowledged, not yet reported
	cut.armed.Store(true)
	closed = make(chan error, 1)
	if closeA {
		go func() { closed <- a.Close(ctxT(t)) }() // its release step waits for the store
	}
	b = newM(mem)
	if err := b.Start(ctxT(t)); err != nil {
		t.Fatalf("Start beside a process cut off: %v", err)
	}
	hb := b.Handle("c")
	leaseUp(t, b, hb, clk)
	if got := b.Counters().CrashGapMicros; got != 300_000 {
		t.Fatalf("the new process took over a crash gap of %d, want 300000", got)
	}
	return clk, mem, cut, a, b, id2, closed
}

// A closing process cut off from the store for longer than the start probe:
// a new process under its instance id took its entry over as a dead one's
// and moved its unreported spend into the record from the ledger. When the
// old one got through, its release step reported that spend a second time
// and deleted the new process's entry, and its close deleted the new one's
// heartbeat (a review's test: 600,000 recorded for 300,000 charged). The
// takeover now leaves the old process a mark to report through.
func TestTakenOverProcessReportsOnce(t *testing.T) {
	_, mem, cut, _, b, _, closed := takeoverRig(t, true)
	defer b.Close(ctxT(t))
	cut.armed.Store(false)
	close(cut.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	r, _ := mem.Get(ctxT(t), "c")
	if r.SpentTotal != 300_000 {
		t.Fatalf("spent %d, want the 300000 charged once", r.SpentTotal)
	}
	if l, ok := r.Leases["a"]; !ok || l.Boot != b.boot {
		t.Fatalf("the new process's entry %+v (present %v) after the old one closed", l, ok)
	}
	if l, ok, _ := mem.GetLiveness(ctxT(t), "a"); !ok || l.Boot != b.boot {
		t.Fatalf("the new process's heartbeat %+v (present %v) after the old one closed", l, ok)
	}
}

// The same cut, but the old process goes on running: it settles its open
// hold after it reconnects and reports through its mark, with no lease; once
// the new process closed, it takes its mark as its base and reports on.
func TestTakenOverProcessRunningOn(t *testing.T) {
	clk, mem, cut, a, b, id2, _ := takeoverRig(t, false)
	defer a.Close(ctxT(t))
	hb := b.Handle("c")
	idb, ok := b.Hold(hb, 100_000, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	if _, err := b.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: idb, CampaignID: "c", AuctionID: "y", ImpID: "1",
		BidMicros: 100_000, ClearingMicros: 100_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	cut.armed.Store(false)
	close(cut.release)
	if _, err := a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id2, CampaignID: "c", AuctionID: "z", ImpID: "1",
		BidMicros: 200_000, ClearingMicros: 200_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	spent := func(when string, want int64, ms ...*Manager) {
		t.Helper()
		takeoverRounds(t, clk, ms...)
		if r, _ := mem.Get(ctxT(t), "c"); r.SpentTotal != want {
			t.Fatalf("%s: spent %d, want %d", when, r.SpentTotal, want)
		}
	}
	spent("both running", 600_000, a, b)
	if r, _ := mem.Get(ctxT(t), "c"); r.Leases["a"].Boot != b.boot {
		t.Fatalf("entry %+v: the new process's entry was taken back", r.Leases["a"])
	}
	if err := b.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	spent("after the new process closed", 600_000, a)
	if r, _ := mem.Get(ctxT(t), "c"); r.Leases[takenKey("a", a.boot)].Boot != "" {
		t.Fatalf("record %+v: the mark is still there after the old process reported through it", r)
	}
	ha := a.Handle("c")
	leaseUp(t, a, ha, clk)
	hold, ok := a.Hold(ha, 50_000, clk.Now())
	if !ok {
		t.Fatal("the old process, alone again, was refused a hold")
	}
	if _, err := a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: hold, CampaignID: "c", AuctionID: "w", ImpID: "1",
		BidMicros: 50_000, ClearingMicros: 50_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	spent("alone again, one more win", 650_000, a)
}

// slowStore makes every record update take d (a stalled store, a KV leader
// election).
type slowStore struct {
	Store
	d time.Duration
}

func (s *slowStore) Update(ctx context.Context, id string, fn func(*Record)) (Record, error) {
	time.Sleep(s.d)
	return s.Store.Update(ctx, id, fn)
}

// A live process whose round outlasts the probe: the heartbeat was written
// only at the start of a round, so a second process under its id, started
// while 32 slow steps ran (a reload changed every budget), read it unchanged
// and started beside it (the review of 61003d9). The round now writes it
// every sync period while its steps run. Wall clock: a round takes about a
// second (each try's change queues the next), the probe 400 ms, the
// heartbeat every 50 ms. At the default ratio, a 150 ms probe, a loaded
// machine that ran the round's goroutine none of those 150 ms failed it (1
// in 300 runs); a probe of 8 periods still fails without the heartbeats
// written during a round.
func TestProbeRefusedDuringALongRound(t *testing.T) {
	mem := NewMemStore()
	cs := manyCampaigns(32, micros(100))
	cfg := func(st Store) Config {
		c := storeConfig(st, "a", nil)
		c.Clock, c.manual, c.SyncPeriod = nil, false, 50*time.Millisecond
		c.probeWait = 8 * c.SyncPeriod
		c.backend = mem.ledger
		return c
	}
	a, err := New(cfg(&slowStore{Store: mem, d: 250 * time.Millisecond}), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	b, err := New(cfg(mem), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	for i := range 3 {
		next := append([]Campaign(nil), cs...)
		for j := range next {
			next[j].DailyMicros = micros(50) + int64(i) // every campaign due
		}
		if err := a.SetCampaigns(next); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * a.cfg.SyncPeriod) // the round began: heartbeat, then 4 waves of 8 slow steps
		if err := b.Start(ctxT(t)); !errors.Is(err, ErrInstanceInUse) {
			t.Fatalf("try %d: Start beside a live process in a long round: %v, want ErrInstanceInUse", i, err)
		}
	}
}

// leaseUp runs three sync rounds a second apart, each after a bid request
// for h's campaign (demand), so that m holds a valid lease for it.
func leaseUp(t *testing.T, m *Manager, h *Account, clk *manualClock) {
	t.Helper()
	for range 3 {
		m.Allow(h, 1000, clk.Now())
		m.syncAll(ctxT(t), clk.Now(), false)
		clk.Add(time.Second)
	}
}
