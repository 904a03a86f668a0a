package budget

import (
	"context"
	"testing"
	"time"
)

// sameIDManager is a manager under instance id "a" on st, sharing mem's
// ledger (as processes on one NATS do: a takeover reads the old process's
// figures), with a 10 ms sync period and a 30 ms start probe; not started.
func sameIDManager(t *testing.T, st Store, mem *MemStore, clk *manualClock, cs ...Campaign) *Manager {
	t.Helper()
	cfg := storeConfig(st, "a", clk)
	cfg.SyncPeriod, cfg.probeWait = 10*time.Millisecond, 30*time.Millisecond
	cfg.backend = mem.ledger
	m, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	return m
}

func takeoverRounds(t *testing.T, clk *manualClock, ms ...*Manager) {
	t.Helper()
	for range 3 {
		clk.Add(time.Second)
		for _, m := range ms {
			m.ledger.flush(ctxT(t))
			m.syncAll(ctxT(t), clk.Now(), false)
		}
	}
}

// reconnectedWinThenLoss is takeoverRig with the old process a running on:
// it reconnects, settles its open hold as a provisional win of 200,000 and
// then the loss of it, each followed by three rounds of both processes.
func reconnectedWinThenLoss(t *testing.T) (clk *manualClock, mem *MemStore, a, b *Manager) {
	t.Helper()
	clk, mem, cut, a, b, id2, _ := takeoverRig(t, false)
	cut.armed.Store(false)
	close(cut.release)
	win := Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id2, CampaignID: "c", AuctionID: "z", ImpID: "1",
		BidMicros: 200_000, ClearingMicros: 200_000, Time: clk.Now(), Bid: clk.Now().Add(-time.Second)}
	if res, err := a.Settle(win); err != nil || res.ChargedMicros != 200_000 {
		t.Fatalf("win %+v %v", res, err)
	}
	takeoverRounds(t, clk, a, b)
	loss := win
	loss.Kind, loss.Time = KindLoss, clk.Now()
	if res, err := a.Settle(loss); err != nil || res.ReversedMicros != 200_000 {
		t.Fatalf("loss %+v %v", res, err)
	}
	takeoverRounds(t, clk, a, b)
	return clk, mem, a, b
}

// The old process reports through its mark a provisional win, then its
// reversal (loss): the reversal is subtracted, and once the new process
// closed the old one gets a lease again (a review of the mark's first form:
// a report below the mark waited, so the reversal never counted and the old
// process got no lease for the mark's 24 h).
func TestTakenOverReversalThroughMark(t *testing.T) {
	clk, mem, a, b := reconnectedWinThenLoss(t)
	defer a.Close(ctxT(t))
	r, _ := mem.Get(ctxT(t), "c")
	t.Logf("after loss: spent %d mark %+v", r.SpentTotal, r.Leases[takenKey("a", a.boot)])
	if err := b.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	takeoverRounds(t, clk, a)
	ha := a.Handle("c")
	leaseUp(t, a, ha, clk)
	r, _ = mem.Get(ctxT(t), "c")
	t.Logf("after b closed: spent %d leases %+v a.lease %d", r.SpentTotal, r.Leases, ha.lease.Load())
	_, ok := a.Hold(ha, 50_000, clk.Now())
	if r.SpentTotal != 300_000 || !ok {
		t.Fatalf("spent %d (want 300000: the 200000 win was reversed); hold after the new process closed: %v (want true)", r.SpentTotal, ok)
	}
}

// The new process dies after the old one reported a reversal through its
// mark: the old one takes the dead entry back (the review: it stayed, with
// its lease amount, for the mark's 24 h).
func TestTakenOverDeadSuccessorsEntryTakenBack(t *testing.T) {
	clk, mem, a, b := reconnectedWinThenLoss(t)
	defer a.Close(ctxT(t))
	r, _ := mem.Get(ctxT(t), "c")
	t.Logf("b's entry before its crash: %+v", r.Leases["a"])
	// b crashes: no more heartbeats or steps.
	for range 20 {
		clk.Add(time.Minute)
		ha := a.Handle("c")
		a.Allow(ha, 1000, clk.Now())
		a.syncAll(ctxT(t), clk.Now(), false)
	}
	r, _ = mem.Get(ctxT(t), "c")
	t.Logf("20 min after b died: spent %d leases %+v; a lease %d", r.SpentTotal, r.Leases, a.Handle("c").lease.Load())
	if l := r.Leases["a"]; l.Boot == b.boot && l.Amount > 0 {
		t.Fatalf("the dead process's entry still holds %d", l.Amount)
	}
}

// cutWatchStore also stops the watch's deliveries while armed (a real cut
// loses the watch too: it runs over the same connection).
type cutWatchStore struct{ cutStore }

func (s *cutWatchStore) Watch(ctx context.Context, fn func(Change)) error {
	return s.cutStore.Store.Watch(ctx, func(ch Change) {
		if !s.armed.Load() {
			fn(ch)
		}
	})
}

// A process cut off (store and watch) while a new one started under its id
// reconnects: its first round took the new process's entry over, its beat
// having replaced the new one's heartbeat before its watch showed it (the
// review). Its beat now yields to the live heartbeat, which it counts as a
// twin, and the entry stays the new process's.
func TestReconnectedProcessLeavesTheLiveEntry(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	cut := &cutWatchStore{cutStore{gatedStore: gatedStore{Store: mem, release: make(chan struct{})}}}
	c := campaign("c", micros(100))
	newM := func(st Store) *Manager { return sameIDManager(t, st, mem, clk, c) }
	a := newM(cut)
	if err := a.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctxT(t))
	leaseUp(t, a, a.Handle("c"), clk)
	cut.armed.Store(true)
	b := newM(mem)
	if err := b.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctxT(t))
	leaseUp(t, b, b.Handle("c"), clk)
	for range 6 {
		clk.Add(time.Minute)
		b.syncAll(ctxT(t), clk.Now(), false) // b runs on, its heartbeat fresh
	}
	r, _ := mem.Get(ctxT(t), "c")
	t.Logf("before the reconnect: entry %+v (expired %v ago), b's twin %v", r.Leases["a"], clk.Now().Sub(time.Unix(0, r.Leases["a"].Expires)), b.twin.Load())
	cut.armed.Store(false)
	close(cut.release)
	clk.Add(time.Second)
	a.syncAll(ctxT(t), clk.Now(), false)
	r, _ = mem.Get(ctxT(t), "c")
	t.Logf("after a's first round: leases %+v; a.lease %d, b.lease %d", r.Leases, a.Handle("c").lease.Load(), b.Handle("c").lease.Load())
	if r.Leases["a"].Boot != b.boot {
		t.Fatalf("the old process took the running new process's entry over")
	}
}

// A reversal stored in the ledger but not acknowledged at the cut: the
// takeover's gap is negative, the mark sits below what the old process
// already reported, and its next step (nothing new) adds it back; once the
// reversal's acknowledgement arrives the record is right again (the review:
// the first form of the mark then waited for good, and kept 300,000).
func TestTakenOverNegativeGapConverges(t *testing.T) {
	now := t0.Add(time.Hour)
	day := "2026-12-05"
	// a (boot bA) reported 300,000 (Cum 300,000); its reversal (-300,000)
	// is in the ledger (tail 0) but not acknowledged to it. b takes over.
	rec := Record{Currency: "USD", Day: day, SpentDay: 300_000, SpentTotal: 300_000, Leases: map[string]Lease{
		"a": {Boot: "bA", Amount: 100, Reported: 300_000, Cum: 300_000, Expires: now.Add(-time.Hour).UnixNano()},
	}}
	qb := leaseReq{instance: "a", currency: "USD", now: now, day: day, boot: "bB", ttl: 3 * time.Minute, reclaim: time.Second, want: 1000,
		prev: &ledgerTail{boot: "bA", cum: 0}}
	applyLease(&rec, qb)
	t.Logf("after b's takeover: spent %d, mark %+v", rec.SpentTotal, rec.Leases[takenKey("a", "bA")])
	// a reconnects; its step before the reversal's ack reports nothing new.
	qa := leaseReq{instance: "a", currency: "USD", now: now.Add(time.Second), day: day, boot: "bA", twin: "bB",
		acked: 300_000, reported: 300_000, cum: 300_000, ttl: 3 * time.Minute, reclaim: time.Second, want: 1000}
	applyLease(&rec, qa)
	t.Logf("a's step, nothing new: spent %d", rec.SpentTotal)
	// the reversal's ack arrives: a reports -300,000
	qa.acked, qa.reported, qa.cum = 300_000, 0, 0
	applyLease(&rec, qa)
	t.Logf("a's step with the reversal: spent %d, mark %+v", rec.SpentTotal, rec.Leases[takenKey("a", "bA")])
	if rec.SpentTotal != 0 {
		t.Fatalf("spent %d, want 0 (300,000 charged and reversed)", rec.SpentTotal)
	}
}

// A process cut off while a new one started under its id reconnects; on a
// campaign it had no entry on at the cut (so no mark there), its first step
// took the live new process's entry over although its own beat had just
// yielded to that process's heartbeat, and then nobody bid on it while both
// ran (a review of cbb7883). It now reports through a mark of its own and
// leaves the entry alone.
func TestYieldedProcessLeavesLiveEntryOnUnmarkedCampaign(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	cut := &cutWatchStore{cutStore{gatedStore: gatedStore{Store: mem, release: make(chan struct{})}}}
	c := campaign("c", micros(100))
	d := campaign("d", micros(100))
	newM := func(st Store, cs ...Campaign) *Manager { return sameIDManager(t, st, mem, clk, cs...) }
	a := newM(cut, c)
	if err := a.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctxT(t))
	leaseUp(t, a, a.Handle("c"), clk)
	cut.armed.Store(true)
	// a campaign reload reaches the old process while it is cut off
	if err := a.SetCampaigns([]Campaign{c, d}); err != nil {
		t.Fatal(err)
	}
	b := newM(mem, c, d)
	if err := b.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctxT(t))
	hb := b.Handle("d")
	leaseUp(t, b, hb, clk)
	leaseUp(t, b, b.Handle("c"), clk)
	if _, ok := b.Hold(hb, 1000, clk.Now()); !ok {
		t.Fatal("b: hold on d refused before the reconnect")
	}
	cut.armed.Store(false)
	close(cut.release)
	round := func() {
		clk.Add(10 * time.Second)
		a.Allow(a.Handle("d"), 1000, clk.Now())
		a.ledger.flush(ctxT(t))
		a.syncAll(ctxT(t), clk.Now(), false)
		b.Allow(hb, 1000, clk.Now())
		b.Allow(b.Handle("c"), 1000, clk.Now())
		b.ledger.flush(ctxT(t))
		b.syncAll(ctxT(t), clk.Now(), false)
	}
	for range 60 {
		round()
	}
	r, _ := mem.Get(ctxT(t), "d")
	l, _, _ := mem.GetLiveness(ctxT(t), "a")
	t.Logf("heartbeat boot %s (a %s, b %s); d leases %+v", l.Boot, a.boot, b.boot, r.Leases)
	// b settles one win on d (its local lease still looks valid): its step
	// now goes through its new mark and takes its lease away.
	id, _ := b.Hold(hb, 50_000, clk.Now())
	if _, err := b.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "d", AuctionID: "x", ImpID: "1",
		BidMicros: 50_000, ClearingMicros: 50_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	for range 60 {
		round()
	}
	r, _ = mem.Get(ctxT(t), "d")
	_, okA := a.Hold(a.Handle("d"), 1000, clk.Now())
	_, okB := b.Hold(hb, 1000, clk.Now())
	_, okBc := b.Hold(b.Handle("c"), 1000, clk.Now())
	t.Logf("20 min on: d %+v; holds: a on d %v, b on d %v, b on c %v; b lease d %d", r, okA, okB, okBc, hb.lease.Load())
	if !okB {
		t.Fatalf("b (whose heartbeat stands) gets no hold on d after a reconnected; a holds: %v", okA)
	}
}

// b takes a's entry over with 300,000 a charged (in the ledger) but had not
// had acknowledged; a reconnects and steps once before those
// acknowledgements arrive, then dies. With signed differences that step took
// the 300,000 out and nothing put it back (a review of cbb7883); a step whose
// acknowledgements are behind the entry the takeover read now waits.
func TestTakenOverLaggingStepThenDeath(t *testing.T) {
	now := t0.Add(time.Hour)
	day := "2026-12-05"
	rec := Record{Currency: "USD", Day: day, Leases: map[string]Lease{
		"a": {Boot: "bA", Amount: 100, Reported: 0, Cum: 0, Expires: now.Add(-time.Hour).UnixNano()},
	}}
	applyLease(&rec, leaseReq{instance: "a", currency: "USD", now: now, day: day, boot: "bB", ttl: 3 * time.Minute, reclaim: time.Second, want: 1000,
		prev: &ledgerTail{boot: "bA", cum: 300_000, seq: 5}})
	t.Logf("after b's takeover: spent %d/%d", rec.SpentTotal, rec.SpentDay)
	applyLease(&rec, leaseReq{instance: "a", currency: "USD", now: now.Add(time.Second), day: day, boot: "bA", twin: "bB",
		ttl: 3 * time.Minute, reclaim: time.Second, want: 1000, ackedSeq: 2})
	t.Logf("a's lagging step: spent %d/%d", rec.SpentTotal, rec.SpentDay)
	qb2 := leaseReq{instance: "a", currency: "USD", day: day, boot: "bB", ttl: 3 * time.Minute, reclaim: time.Second, want: 1000}
	for i := range 30 {
		qb2.now = now.Add(time.Duration(i+2) * time.Hour)
		applyLease(&rec, qb2)
	}
	t.Logf("a dead, 30 h on: spent %d/%d leases %+v", rec.SpentTotal, rec.SpentDay, rec.Leases)
	if rec.SpentTotal != 300_000 {
		t.Fatalf("spent_total %d for 300,000 charged (in the ledger)", rec.SpentTotal)
	}
}

// The takeover on day D puts the unacknowledged 300,000 into D's spend; a's
// lagging step came on D (negative), its acknowledged one after midnight
// (positive): D's spend ended 300,000 low, D+1's 300,000 high (the review).
// The lagging step now waits.
func TestTakenOverLaggingStepAcrossMidnight(t *testing.T) {
	now := t0.Add(time.Hour)
	d1, d2 := "2026-12-05", "2026-12-06"
	rec := Record{Currency: "USD", Day: d1, Leases: map[string]Lease{
		"a": {Boot: "bA", Amount: 100, Reported: 0, Cum: 0, Expires: now.Add(-time.Hour).UnixNano()},
	}}
	applyLease(&rec, leaseReq{instance: "a", currency: "USD", now: now, day: d1, boot: "bB", ttl: 3 * time.Minute, reclaim: time.Second, want: 1000,
		prev: &ledgerTail{boot: "bA", cum: 300_000, seq: 5}})
	qa := leaseReq{instance: "a", currency: "USD", now: now.Add(time.Second), day: d1, boot: "bA", twin: "bB",
		ttl: 3 * time.Minute, reclaim: time.Second, want: 1000, ackedSeq: 2}
	applyLease(&rec, qa)
	dayDSpend := rec.SpentDay
	t.Logf("D after a's lagging step: spent_day %d total %d", rec.SpentDay, rec.SpentTotal)
	applyLease(&rec, leaseReq{instance: "a", currency: "USD", now: now.Add(2 * time.Second), day: d2, boot: "bB", ttl: 3 * time.Minute, reclaim: time.Second, want: 1000})
	qa.now, qa.day, qa.reported, qa.cum, qa.ackedSeq = now.Add(3*time.Second), d2, 300_000, 300_000, 5
	applyLease(&rec, qa)
	t.Logf("D+1 after a's acknowledged step: day %s spent_day %d total %d", rec.Day, rec.SpentDay, rec.SpentTotal)
	if dayDSpend != 300_000 || rec.SpentDay != 0 {
		t.Fatalf("day D's spend fell to %d (300,000 charged on D); D+1's is %d (nothing charged on D+1)", dayDSpend, rec.SpentDay)
	}
}
