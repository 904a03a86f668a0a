package budget

import (
	"fmt"
	"testing"
	"time"
)

// floorRig: campaign "c" of 20,000 daily on an opStore, MinLease=MaxLease=2,000
// (ahead is a constant 2,000), six holds of 2,000 placed one a round, then the
// daily budget cut to 4,000: the step grants 12,000 (the holds) of which
// 8,000 above the pool (floorExcess), usable 4,000.
func floorRig(t *testing.T) (*manualClock, *opStore, *Manager, Campaign, []HoldID) {
	t.Helper()
	clk := newManualClock(t0.Add(time.Hour))
	st := &opStore{Store: NewMemStore()}
	cfg := storeConfig(st, "a", clk)
	cfg.MinLease, cfg.MaxLease = 2000, 2000
	m, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	c := campaign("c", 20_000)
	c.DailyMicros = 20_000
	if err := m.SetCampaigns([]Campaign{c}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var held []HoldID
	for range 10 {
		m.syncAll(ctxT(t), clk.Now(), false)
		held = append(held, placeAll(m, clk)...)
		if len(held) >= 6 {
			break
		}
		clk.Add(time.Second)
	}
	if len(held) < 6 {
		t.Fatalf("placed %d holds", len(held))
	}
	held = held[:6]
	cut := c
	cut.DailyMicros = 4_000
	if err := m.SetCampaigns([]Campaign{cut}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	m.syncAll(ctxT(t), clk.Now(), false)
	h := m.Handle("c")
	t.Logf("after cut: lease %d floorExcess %d held %d usable %d", h.lease.Load(), h.floorExcess.Load(), h.held.Load(), h.usableLease())
	return clk, st, m, cut, held
}

// A store outage after the cut, the old holds lost: the instance's valid
// lease still has pool money (4,000 granted from the pool, 2,000 committed)
// and bids inside it (degraded, ready). An outside review of 38fe8b7: the
// "shrink now" before the failed step lowered the lease to 4,000 but left
// floorExcess at 8,000, so the usable lease was -4,000: no bid, and
// readiness turned fail closed.
func TestBudgetCutFloorShrinkNowFailedStep(t *testing.T) {
	clk, st, m, _, held := floorRig(t)
	defer func() { st.down.Store(false); m.Close(ctxT(t)) }()
	h := m.Handle("c")
	if h.floorExcess.Load() == 0 {
		t.Fatalf("no floor: lease %d", h.lease.Load())
	}
	for i, id := range held[1:] { // five of six lost: 2,000 committed
		if _, err := m.Settle(Notice{Kind: KindLoss, HoldID: id, InstanceID: "a", CampaignID: "c", AuctionID: fmt.Sprint("l", i),
			ImpID: "1", BidMicros: 2000, Time: clk.Now(), Bid: clk.Now().Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	st.down.Store(true)
	clk.Add(time.Second)
	m.syncAll(ctxT(t), clk.Now(), false)
	ready, degraded, why := m.Readiness()
	t.Logf("after failed step: lease %d floorExcess %d usable %d held %d; ready %v degraded %v (%s); explain %+v",
		h.lease.Load(), h.floorExcess.Load(), h.usableLease(), h.held.Load(), ready, degraded, why, m.Explain(h, 2000, clk.Now()))
	n := len(placeAll(m, clk))
	if n != 1 || !ready {
		t.Fatalf("store down, valid lease of %d with 4,000 from the pool and 2,000 committed: placed %d holds (want 1), ready %v (%s); usable lease %d",
			h.lease.Load(), n, ready, why, h.usableLease())
	}
}

// Idle cost: with floorExcess > 0 and nothing changing (holds open), count
// the record updates over 20 rounds.
func TestBudgetCutFloorIdleSteps(t *testing.T) {
	clk, st, m, _, _ := floorRig(t)
	defer m.Close(ctxT(t))
	before := st.updates.Load()
	for range 20 {
		clk.Add(time.Second)
		m.syncAll(ctxT(t), clk.Now(), false)
	}
	if n := st.updates.Load() - before; n > 2 {
		t.Fatalf("%d record updates in 20 idle rounds with a floor", n)
	}
}

// Money: after the cut to 4,000, three old holds billed (6,000), three lost;
// rounds go by; no new non-late charge fits (6,000 already > 4,000).
func TestBudgetCutFloorBilledAndLost(t *testing.T) {
	clk, st, m, _, held := floorRig(t)
	defer m.Close(ctxT(t))
	for i, id := range held[:3] {
		holdsBill(t, m, clk, "a", id, fmt.Sprint("b", i))
	}
	for i, id := range held[3:] {
		if _, err := m.Settle(Notice{Kind: KindLoss, HoldID: id, InstanceID: "a", CampaignID: "c", AuctionID: fmt.Sprint("l", i),
			ImpID: "1", BidMicros: 2000, Time: clk.Now(), Bid: clk.Now().Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	var charged, late int64
	for r := range 90 {
		clk.Add(time.Second)
		m.expireHolds(clk.Now())
		m.ledger.flush(ctxT(t))
		m.syncAll(ctxT(t), clk.Now(), false)
		for i, id := range placeAll(m, clk) {
			res := holdsBill(t, m, clk, "a", id, fmt.Sprint("n", r, "-", i))
			charged += res.ChargedMicros
			if res.Late {
				late += res.ChargedMicros
			}
		}
	}
	before := st.updates.Load()
	for range 20 {
		clk.Add(time.Second)
		m.syncAll(ctxT(t), clk.Now(), false)
	}
	h := m.Handle("c")
	t.Logf("new charged %d late %d; lease %d floor %d; idle updates %d", charged, late, h.lease.Load(), h.floorExcess.Load(), st.updates.Load()-before)
	if charged-late > 0 {
		t.Fatalf("new bids charged %d (late %d) after 6,000 of old bills on a 4,000 budget", charged, late)
	}
}

// Cut then raise back, holds still open, and again after they expired.
func TestBudgetCutFloorRaiseAfterCut(t *testing.T) {
	clk, _, m, cut, _ := floorRig(t)
	defer m.Close(ctxT(t))
	up := cut
	up.DailyMicros = 20_000
	if err := m.SetCampaigns([]Campaign{up}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	m.syncAll(ctxT(t), clk.Now(), false)
	h := m.Handle("c")
	if n := len(placeAll(m, clk)); n == 0 {
		t.Fatalf("raised back to 20,000 with 12,000 held: no hold; lease %d floor %d", h.lease.Load(), h.floorExcess.Load())
	}
	// cut again, let all expire, raise
	if err := m.SetCampaigns([]Campaign{cut}); err != nil {
		t.Fatal(err)
	}
	for range 70 {
		clk.Add(time.Second)
		m.expireHolds(clk.Now())
		m.syncAll(ctxT(t), clk.Now(), false)
	}
	if err := m.SetCampaigns([]Campaign{up}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clk.Add(time.Second)
		m.Allow(h, 2000, clk.Now())
		m.syncAll(ctxT(t), clk.Now(), false)
	}
	if n := len(placeAll(m, clk)); n == 0 {
		t.Fatalf("raised after expiry: no hold; lease %d floor %d", h.lease.Load(), h.floorExcess.Load())
	}
}

// Same root cause with the store up: during the step's I/O (after the
// "shrink now") a bid that fits the pool's part is refused.
func TestBudgetCutFloorShrinkNowDuringIO(t *testing.T) {
	clk, st, m, _, held := floorRig(t)
	defer m.Close(ctxT(t))
	h := m.Handle("c")
	for i, id := range held[1:] {
		if _, err := m.Settle(Notice{Kind: KindLoss, HoldID: id, InstanceID: "a", CampaignID: "c", AuctionID: fmt.Sprint("l", i),
			ImpID: "1", BidMicros: 2000, Time: clk.Now(), Bid: clk.Now().Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	gate := &gatedStore{Store: st.Store, release: make(chan struct{})}
	st.Store = gate
	gate.armed.Store(true)
	clk.Add(time.Second)
	done := make(chan struct{})
	go func() { m.syncAll(ctxT(t), clk.Now(), false); close(done) }()
	for h.lease.Load() == 12000 { // wait for the shrink
		time.Sleep(time.Millisecond)
	}
	_, ok := m.Hold(h, 2000, clk.Now())
	usable := h.usableLease()
	gate.armed.Store(false)
	close(gate.release)
	<-done
	if !ok {
		t.Fatalf("during the step: hold of 2,000 refused with lease %d, 2,000 committed, 4,000 from the pool; usable %d", h.lease.Load(), usable)
	}
}
