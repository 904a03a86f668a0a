package budget

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func natsManager(t *testing.T, inst string, urls []string, srv *server.Server, replicas int, cs ...Campaign) *Manager {
	t.Helper()
	cfg := Config{
		InstanceID: inst, URLs: urls, Server: srv, Replicas: replicas,
		HoldTTL: 300 * time.Millisecond, LeaseTTL: 1500 * time.Millisecond, SyncPeriod: 100 * time.Millisecond,
		ReclaimWait: 200 * time.Millisecond, MinLease: 50_000, MaxLease: 2_000_000, MaxHolds: 1 << 14,
	}
	m, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// crash stops a manager the way a killed process does: no flush, no lease return.
func (m *Manager) crash() {
	m.closed.Store(true)
	m.cancel()
	m.wg.Wait()
	m.nc.Close()
}

func spendOnce(m *Manager, h *Account, auction string, price int64) bool {
	now := time.Now()
	if m.Allow(h, price, now) != DecisionOK {
		return false
	}
	id, ok := m.Hold(h, price, now)
	if !ok {
		return false
	}
	_, err := m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: h.id, AuctionID: auction, ImpID: "1", BidMicros: price, ClearingMicros: price})
	// ErrAckTimeout (NATS down): the charge is made and queued, its ledger
	// entry not acknowledged yet.
	return err == nil || errors.Is(err, ErrAckTimeout)
}

func TestNATSGracefulCloseAndCrashReclaim(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	url := srv.ClientURL()
	c := campaign("c", micros(10))
	a := natsManager(t, "a", nil, srv, 1, c) // in-process connection
	b := natsManager(t, "b", []string{url}, nil, 1, c)
	ha := a.Handle("c")
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if a.Allow(ha, 10_000, time.Now()) != DecisionOK {
			return fmt.Errorf("a has no lease yet")
		}
		return nil
	})
	n := 0
	for i := range 20 {
		if spendOnce(a, ha, fmt.Sprint("a", i), 10_000) {
			n++
		}
	}
	if n == 0 {
		t.Fatal("a spent nothing")
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := getRecord(t, url, "c")
	if _, ok := r.Leases["a"]; ok || r.SpentTotal != int64(n)*10_000 {
		t.Fatalf("after graceful close: %+v (want spent %d, no lease for a)", r, n*10_000)
	}
	if got := len(readLedger(t, url)); got != n {
		t.Fatalf("ledger has %d entries, want %d", got, n)
	}

	// Crash an instance holding a lease: it comes back to the pool after expiry.
	x := natsManager(t, "x", []string{url}, nil, 1, c)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if getRecord(t, url, "c").Leases["x"].Amount == 0 {
			return fmt.Errorf("x has no lease yet")
		}
		return nil
	})
	x.crash()
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if l := getRecord(t, url, "c").Leases["x"]; !l.Reclaimed || l.Amount != 0 {
			return fmt.Errorf("x's lease still there: %+v", l)
		}
		return nil
	})
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := leasesBeyondHolds(getRecord(t, url, "c"), b); len(left) > 0 {
		t.Fatalf("leases left: %v", left)
	}
}

// A beat after a process's first yields to another boot's live heartbeat,
// and a closing process deletes its heartbeat only while the record is its
// own: one that another process under the same instance id wrote since
// stays (TestTakenOverProcessReportsOnce has the story).
func TestNATSLivenessKeepsAnotherBoot(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	m := natsManager(t, "a", []string{srv.ClientURL()}, nil, 1)
	defer m.Close(context.Background())
	ctx := ctxT(t)
	st := m.store
	if _, err := st.PutLiveness(ctx, "z", Liveness{Boot: "old", Expires: 100}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutLiveness(ctx, "z", Liveness{Boot: "new", Expires: 200}, 0); err != nil {
		t.Fatal(err)
	}
	// A beat of the old process yields to the new one's live heartbeat, and
	// writes over an expired one.
	if other, err := st.PutLiveness(ctx, "z", Liveness{Boot: "old", Expires: 300}, 150); err != nil || other.Boot != "new" {
		t.Fatalf("a beat beside a live heartbeat of another boot: %+v %v, want it kept", other, err)
	}
	if l, _, _ := st.GetLiveness(ctx, "z"); l.Boot != "new" {
		t.Fatalf("after the yielding beat: %+v", l)
	}
	if other, err := st.PutLiveness(ctx, "z", Liveness{Boot: "new", Expires: 250}, 150); err != nil || other.Boot != "" {
		t.Fatalf("its own beat: %+v %v", other, err)
	}
	if other, err := st.PutLiveness(ctx, "z", Liveness{Boot: "old", Expires: 400}, 300); err != nil || other.Boot != "" {
		t.Fatalf("a beat over an expired heartbeat: %+v %v, want written", other, err)
	}
	if other, err := st.PutLiveness(ctx, "z", Liveness{Boot: "new", Expires: 500}, 0); err != nil || other.Boot != "" {
		t.Fatalf("a forced beat: %+v %v", other, err)
	}
	if err := st.DeleteLiveness(ctx, "z", "old"); err != nil {
		t.Fatal(err)
	}
	if l, ok, err := st.GetLiveness(ctx, "z"); err != nil || !ok || l.Boot != "new" {
		t.Fatalf("after the old boot's delete: %+v %v %v, want the new boot's record", l, ok, err)
	}
	if err := st.DeleteLiveness(ctx, "z", "new"); err != nil {
		t.Fatal(err)
	}
	if l, ok, err := st.GetLiveness(ctx, "z"); err != nil || ok {
		t.Fatalf("after its own delete: %+v %v %v, want none", l, ok, err)
	}
	if err := st.DeleteLiveness(ctx, "z", "new"); err != nil {
		t.Fatalf("deleting a deleted record: %v", err)
	}
}

func TestNATSOutageFailsClosedAndResumes(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, -1)
	url := srv.ClientURL()
	p := srv.ClientURL()[len("nats://127.0.0.1:"):]
	var portN int
	fmt.Sscan(p, &portN)
	c := campaign("c", micros(100))
	m := natsManager(t, "a", []string{url}, nil, 1, c)
	defer m.Close(context.Background())
	h := m.Handle("c")
	waitForLease(t, m, h, 10_000)
	srv.Shutdown()
	srv.WaitForShutdown()
	// Keep spending: only inside the lease, then fail closed.
	var spent int64
	i := 0
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if spendOnce(m, h, fmt.Sprint("o", i), 10_000) {
			spent += 10_000
		}
		i++
		if d := m.Allow(h, 10_000, time.Now()); d != DecisionFailClosed {
			return fmt.Errorf("decision %v", d)
		}
		return nil
	})
	if ok, _ := m.Ready(); ok {
		t.Fatal("ready during the outage")
	}
	if spent > 2_000_000+50_000 {
		t.Fatalf("spent %d during the outage, beyond any lease", spent)
	}
	srv = startServer(t, dir, portN)
	defer srv.Shutdown()
	checkFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if ok, why := m.Ready(); !ok {
			return fmt.Errorf("not ready: %s", why)
		}
		if d := m.Allow(h, 10_000, time.Now()); d != DecisionOK {
			return fmt.Errorf("decision %v", d)
		}
		return nil
	})
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ledger int64
	for _, e := range readLedger(t, url) {
		ledger += e.Charged
	}
	if r := getRecord(t, url, "c"); ledger != spent || r.SpentTotal != spent {
		t.Fatalf("spent %d, ledger %d, record %+v", spent, ledger, r)
	}
}

// Three managers on a 3-node cluster under concurrent bids and messy notices;
// the node the first manager uses is killed mid-load.
func TestClusterThreeManagersBound(t *testing.T) {
	srvs := startCluster(t, 3)
	var urls []string
	for _, s := range srvs {
		urls = append(urls, s.ClientURL())
	}
	const budget = 6_000_000
	c := campaign("c", budget)
	var ms []*Manager
	for i := range 3 {
		order := append([]string{urls[i]}, append(append([]string{}, urls[:i]...), urls[i+1:]...)...)
		ms = append(ms, natsManager(t, fmt.Sprintf("m%d", i), order, nil, 3, c))
	}
	type notice struct {
		to int
		n  Notice
		at time.Time
	}
	var (
		mu      sync.Mutex
		charged = map[string]int64{}
		total   atomic.Int64
		bids    atomic.Int64
	)
	deliver := func(mi int, n Notice) {
		res, err := ms[mi].Settle(n)
		if err != nil && !errors.Is(err, ErrAckTimeout) { // a timeout (the node kill): charged, queued, retried below
			t.Error(err)
			return
		}
		if err != nil {
			defer func() {
				if res, err := ms[mi].Settle(n); err == nil && res.ChargedMicros != 0 {
					t.Errorf("the retry of a notice whose ack timed out charged again: %+v", res)
				}
			}()
		}
		if res.ChargedMicros > 0 {
			total.Add(res.ChargedMicros)
			mu.Lock()
			charged[n.AuctionID]++
			mu.Unlock()
		}
	}
	// Run at least 2.5 s (the node dies at 1 s), then until the pool ran dry, at most 20 s.
	minStop, hardStop := time.Now().Add(2500*time.Millisecond), time.Now().Add(20*time.Second)
	var exhausted atomic.Int64
	running := func() bool {
		now := time.Now()
		return now.Before(hardStop) && (now.Before(minStop) || exhausted.Load() == 0)
	}
	var wg sync.WaitGroup
	for mi := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(mi), 99))
			h := ms[mi].Handle("c")
			var delayed []notice
			for k := 0; running(); k++ {
				now := time.Now()
				for len(delayed) > 0 && !delayed[0].at.After(now) {
					deliver(delayed[0].to, delayed[0].n)
					delayed = delayed[1:]
				}
				time.Sleep(time.Millisecond) // the load generator's traffic rate, not a wait for state
				price := int64(1000 + rng.IntN(9000))
				if d := ms[mi].Allow(h, price, now); d != DecisionOK {
					if d == DecisionBudgetExhausted {
						exhausted.Add(1)
					}
					continue
				}
				id, ok := ms[mi].Hold(h, price, now)
				if !ok {
					continue
				}
				bids.Add(1)
				n := Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c",
					AuctionID: fmt.Sprintf("m%d-%d", mi, k), ImpID: "1", BidMicros: price,
					ClearingMicros: price * int64(80+rng.IntN(40)) / 100}
				switch r := rng.IntN(10); {
				case r < 4: // loss
					n.Kind = KindLoss
					deliver(mi, n)
				case r < 5: // lost notice: the hold expires
				case r < 7: // win now, duplicated to another instance
					deliver(mi, n)
					delayed = append(delayed, notice{to: (mi + 1) % 3, n: n, at: now.Add(50 * time.Millisecond)})
				case r < 8: // late: after the hold expired
					delayed = append(delayed, notice{to: mi, n: n, at: now.Add(400 * time.Millisecond)})
				default: // delayed a little, replayed
					delayed = append(delayed, notice{to: mi, n: n, at: now.Add(100 * time.Millisecond)})
					delayed = append(delayed, notice{to: mi, n: n, at: now.Add(150 * time.Millisecond)})
				}
			}
			for _, d := range delayed {
				deliver(d.to, d.n)
			}
		}()
	}
	time.Sleep(time.Second) // let load run before the fault; the assertions below poll
	kill := time.Now()
	srvs[0].Shutdown()
	wg.Wait()
	for _, m := range ms {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := m.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		cancel()
	}
	var late int64
	for _, m := range ms {
		late += int64(m.Counters().LateMicros)
	}
	entries := readLedger(t, urls[1])
	seen := map[string]bool{}
	var ledger int64
	afterKill := 0
	for _, e := range entries {
		if e.Instance == "m0" && e.Time > kill.Add(200*time.Millisecond).UnixNano() {
			afterKill++
		}
		if seen[e.MsgID] {
			t.Fatalf("ledger has %s twice", e.MsgID)
		}
		seen[e.MsgID] = true
		ledger += e.Charged
	}
	// Settle may charge a cross-instance duplicate (the other instance has no
	// hold for it); the ledger answers "duplicate" and the charge is reversed,
	// so the ledger and the global record are the truth.
	mu.Lock()
	for a, n := range charged {
		if n > 2 {
			t.Errorf("auction %s charged %d times by Settle", a, n)
		}
	}
	mu.Unlock()
	r := getRecord(t, urls[1], "c")
	t.Logf("bids %d, ledger entries %d, ledger %d, record %d, late %d, budget %d", bids.Load(), len(entries), ledger, r.SpentTotal, late, budget)
	if afterKill == 0 {
		t.Errorf("the instance whose node was killed charged nothing afterwards")
	}
	if exhausted.Load() == 0 {
		t.Errorf("the pool never ran dry (%d of %d): the bound was not stressed", ledger, budget)
	}
	if r.SpentTotal != ledger {
		t.Errorf("record spent %d != ledger %d", r.SpentTotal, ledger)
	}
	if ledger > budget+late {
		t.Errorf("bound broken: ledger %d > budget %d + late %d", ledger, budget, late)
	}
	if left := leasesBeyondHolds(r, ms...); len(left) > 0 {
		t.Errorf("leases left after close: %v", left)
	}
}

// leasesBeyondHolds lists the live lease entries of campaign "c" that the
// closed managers ms left holding more than their open holds (Close keeps
// those until they expire; a manager that held nothing leaves no entry).
func leasesBeyondHolds(r Record, ms ...*Manager) []string {
	held := map[string]int64{}
	for _, m := range ms {
		held[m.cfg.InstanceID] = m.Handle("c").held.Load()
	}
	var left []string
	for inst, l := range r.Leases {
		if !l.Reclaimed && (l.Amount > held[inst] || held[inst] == 0) {
			left = append(left, fmt.Sprintf("%s: %+v (its open holds %d)", inst, l, held[inst]))
		}
	}
	return left
}

// Notices reaching another instance are settled by the instance that placed
// the bid (it knows the impression's level): the level rule holds across
// instances. With the owner gone, the notice is settled where it arrived.
func TestNoticesForwardedToOwner(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	url := srv.ClientURL()
	c := campaign("c", micros(10))
	a := natsManager(t, "a", nil, srv, 1, c)
	b := natsManager(t, "b", []string{url}, nil, 1, c)
	defer b.Close(context.Background())
	ha := a.Handle("c")
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if a.Allow(ha, 10_000, time.Now()) != DecisionOK {
			return fmt.Errorf("a has no lease yet")
		}
		return nil
	})
	hold := func() HoldID {
		id, ok := a.Hold(ha, 2000, time.Now())
		if !ok {
			t.Fatal("hold refused")
		}
		return id
	}
	id1, id2 := hold(), hold()
	under := false // the next notice's price was under the floor (travels with the forwarded notice)
	f := func(m *Manager, kind, chargeOn NoticeKind, id HoldID, auction string, price, wantCharged, wantReversed int64) {
		t.Helper()
		res, err := m.Settle(Notice{Kind: kind, ChargeOn: chargeOn, HoldID: id, InstanceID: "a", CampaignID: "c",
			AuctionID: auction, ImpID: "1", BidMicros: 2000, ClearingMicros: price, UnderFloor: under})
		if err != nil {
			t.Fatal(err)
		}
		if res.ChargedMicros != wantCharged || res.ReversedMicros != wantReversed || (m == b) != res.Forwarded {
			t.Fatalf("%s %v at %d via %s: %+v, want charged %d reversed %d", auction, kind, price, m.cfg.InstanceID,
				res, wantCharged, wantReversed)
		}
	}
	under = true
	f(b, KindBill, KindBill, id1, "x", 500, 500, 0) // under the floor first (charged at it), at b
	under = false
	f(b, KindBill, KindBill, id1, "x", 1500, 1000, 0)
	f(a, KindBill, KindBill, id1, "x", 1500, 0, 0)
	f(b, KindBill, KindBill, id1, "x", 500, 0, 0)
	f(b, KindWin, KindBill, id2, "y", 800, 800, 0) // provisional at the owner
	f(b, KindLoss, KindBill, id2, "y", 0, 0, 800)  // reversed there
	// x's hold keeps its rest (2000 - 1500) until it expires, and y's
	// reversed provisional charge went back to its hold (2000).
	if ha.held.Load() != 2500 {
		t.Fatalf("a's holds: %d held, want 2500", ha.held.Load())
	}
	a.expireHolds(time.Now().Add(a.cfg.HoldTTL))
	if ha.held.Load() != 0 {
		t.Fatalf("a's holds after they expired: %d held", ha.held.Load())
	}
	if ca, cb := a.Counters(), b.Counters(); cb.NoticesForwarded != 5 || ca.ForwardedServed != 5 || cb.DedupEntries != 0 {
		t.Fatalf("a %+v\nb %+v", ca, cb)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The owner is gone: settled here, late.
	res, err := b.Settle(Notice{Kind: KindBill, InstanceID: "a", CampaignID: "c", AuctionID: "z", ImpID: "1", BidMicros: 2000, ClearingMicros: 700})
	if err != nil || res.ChargedMicros != 700 || !res.Late || res.Forwarded || b.Counters().ForwardFallbacks != 1 {
		t.Fatalf("owner gone: %+v %v %+v", res, err, b.Counters())
	}
	var sum int64
	n := 0
	for _, e := range readLedger(t, url) {
		if e.Auction == "x" || e.Auction == "y" {
			n++
			sum += e.Charged
			if e.Instance != "a" {
				t.Errorf("entry recorded by %s, not the owner: %+v", e.Instance, e)
			}
		}
	}
	if n != 4 || sum != 1500 {
		t.Fatalf("ledger: %d entries for x and y summing to %d, want 4 and 1500", n, sum)
	}
}

// The ledger stream's duplicate window follows the de-dup windows (the
// longest), not the token lifetime.
func TestLedgerDuplicateWindowFromConfig(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	m := natsManager(t, "a", nil, srv, 1, campaign("c", micros(1)))
	defer m.Close(context.Background())
	s, err := m.js.Stream(ctxT(t), LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.CachedInfo().Config.Duplicates; d != 2*time.Hour {
		t.Fatalf("duplicate window %v, want 2h (notices.dedup_window.bill)", d)
	}
}
