package budget

import (
	"testing"
	"time"
)

// Tests that pin money rules an outside mutation-testing pass found no test
// holding: each fails when the rule it names is taken out.

// A billed impression stays billed: a win after the bill that raises the
// level is not provisional, so a loss after it reverses nothing. With the
// rise marked provisional, the loss took back all of it and the billed
// impression ended free.
func TestWinAfterBillIsNotProvisional(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", micros(3)))
	h := m.Handle("c")
	m.syncAll(ctxT(t), clk.Now(), false)
	if m.Allow(h, 2000, clk.Now()) != DecisionOK {
		t.Fatal("no lease")
	}
	id, ok := m.Hold(h, 2000, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	n := Notice{Kind: KindBill, ChargeOn: KindBill, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1",
		BidMicros: 2000, ClearingMicros: 500, UnderFloor: true}
	if _, err := m.Settle(n); err != nil {
		t.Fatal(err)
	}
	n.Kind, n.ClearingMicros, n.UnderFloor = KindWin, 1500, false
	res, err := m.Settle(n)
	if err != nil || res.Provisional {
		t.Fatalf("win after the bill: %+v, %v; want not provisional", res, err)
	}
	n.Kind = KindLoss
	res, err = m.Settle(n)
	if err != nil || res.ReversedMicros != 0 {
		t.Fatalf("loss after bill and win: %+v, %v; want nothing reversed", res, err)
	}
	if got := h.spent.Load(); got != 1500 {
		t.Fatalf("spent %d, want 1500 (the billed impression at its highest price)", got)
	}
}

// A charge above what its open hold has left is capped at the hold: the
// hold is what the bid reserved from the lease. Uncapped, the rest came out
// of the lease uncounted and the hold's figure went negative.
func TestChargeCappedAtItsHold(t *testing.T) {
	for _, bid := range []int64{2000, 0} { // 0: no bid price known, the hold alone caps
		clk := newManualClock(t0.Add(time.Hour))
		m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", micros(3)))
		h := m.Handle("c")
		m.syncAll(ctxT(t), clk.Now(), false)
		m.Allow(h, 1000, clk.Now())
		id, ok := m.Hold(h, 1000, clk.Now())
		if !ok {
			t.Fatal("hold refused")
		}
		res, err := m.Settle(Notice{Kind: KindBill, ChargeOn: KindBill, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1",
			BidMicros: bid, ClearingMicros: 1500})
		if err != nil || res.ChargedMicros != 1000 || !res.Capped {
			t.Fatalf("bid %d: bill of 1500 on a hold of 1000: %+v, %v; want 1000 charged, capped", bid, res, err)
		}
		if held, spent := h.held.Load(), h.spent.Load(); held != 0 || spent != 1000 {
			t.Fatalf("bid %d: held %d spent %d, want 0 and 1000", bid, held, spent)
		}
	}
}

// An impression pixel that arrives late (older than one already counted,
// still inside the window) counts toward the frequency cap: out of order
// or not, the user saw the ad.
func TestLateImpressionCountsTowardTheCap(t *testing.T) {
	ft := newFreqTable(1 << 12)
	const k = uint64(42)
	at := t0.Add(time.Hour).UnixNano()
	w := int64(time.Hour)
	ft.add(k, at, w)
	ft.add(k, at-int64(time.Minute), w)
	if got := ft.count(k, at); got != 2 {
		t.Fatalf("count %d after an impression and a late one inside the window, want 2", got)
	}
}

// Money a loss gives back is not bid again before a lease step has
// reported the reversal to the record: until then the ledger may still
// refuse it (the charge sealed elsewhere) and the level come back. Hold
// counts the reversal waiting as committed, as Allow does.
func TestReversalWaitsForItsStepBeforeItIsBidAgain(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", 2000))
	h := m.Handle("c")
	m.syncAll(ctxT(t), clk.Now(), false)
	m.Allow(h, 2000, clk.Now())
	id, ok := m.Hold(h, 2000, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	n := Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1",
		BidMicros: 2000, ClearingMicros: 2000}
	if res, err := m.Settle(n); err != nil || !res.Provisional {
		t.Fatalf("win: %+v, %v; want a provisional charge", res, err)
	}
	m.ledger.flush(ctxT(t))
	clk.Add(90 * time.Second) // past hold_ttl: the hold cannot take the money back
	n.Kind = KindLoss
	if res, err := m.Settle(n); err != nil || res.ReversedMicros != 2000 {
		t.Fatalf("loss: %+v, %v; want 2000 reversed", res, err)
	}
	if h.revWait.Load() != 2000 {
		t.Fatalf("reversal waiting %d, want 2000 (no step yet)", h.revWait.Load())
	}
	if _, ok := m.Hold(h, 1000, clk.Now()); ok {
		t.Fatal("a hold was placed on money whose reversal no step has reported")
	}
	m.ledger.flush(ctxT(t))
	m.syncAll(ctxT(t), clk.Now(), false)
	if h.revWait.Load() != 0 {
		t.Fatalf("reversal waiting %d after a step, want 0", h.revWait.Load())
	}
	m.Allow(h, 1000, clk.Now())
	if _, ok := m.Hold(h, 1000, clk.Now()); !ok {
		t.Fatal("the reversed money cannot be held once its step reported it")
	}
}
