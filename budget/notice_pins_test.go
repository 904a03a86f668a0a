package budget

import (
	"context"
	"fmt"
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

// runLedger runs m's ledger publisher as a started manager does (test
// managers are manual: Settle does not wait for the ledger, so a result's
// correction by the ledger's answer is never seen) until the test ends.
func runLedger(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.ledgerRuns.Store(true)
	go func() { defer close(done); defer m.ledgerRuns.Store(false); m.ledger.run(ctx, ledgerRetry) }()
	t.Cleanup(func() { cancel(); <-done })
}

// twoOnOneStore is two instances, a and b, of campaign c on one store, with
// a hold of bid on a, and notice, which settles a notice of that hold's
// impression (auction x, imp 1) at m and waits for m's ledger, a
// millisecond apart.
func twoOnOneStore(t *testing.T, bid int64) (st *MemStore, a, b *Manager, notice func(m *Manager, k NoticeKind, price int64) Result) {
	t.Helper()
	clk := newManualClock(t0.Add(time.Hour))
	st = NewMemStore()
	c := campaign("c", micros(100))
	a = storeManager(t, st, "a", clk, c)
	b = storeManager(t, st, "b", clk, c)
	t.Cleanup(func() { a.Close(ctxT(t)); b.Close(ctxT(t)) })
	id, ok := a.Hold(a.Handle("c"), bid, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	return st, a, b, func(m *Manager, k NoticeKind, price int64) Result {
		t.Helper()
		res, err := m.Settle(Notice{Kind: k, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c",
			AuctionID: "x", ImpID: "1", BidMicros: bid, ClearingMicros: price, Time: clk.Now(),
			Bid: t0.Add(time.Hour - time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ledger.flush(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Millisecond)
		return res
	}
}

// A rise the ledger takes back as a duplicate charged nothing, and its
// result says so (the event log and the win counts read the result): win at
// 500 here, the bill at 8,500 settled by another instance (its forward
// failed), the same bill here. The ledger keeps the other instance's 8,500;
// with the taken-back rise left in the result, the event log said this
// instance charged 8,000 more than the ledger holds.
func TestDuplicateRiseChargesNothingInItsResult(t *testing.T) {
	st, a, b, settle := twoOnOneStore(t, 9000)
	runLedger(t, a)
	runLedger(t, b)
	var results int64
	notice := func(m *Manager, k NoticeKind, price int64) Result {
		res := settle(m, k, price)
		results += res.ChargedMicros - res.ReversedMicros
		return res
	}
	notice(a, KindWin, 500)
	notice(b, KindBill, 8500)
	if res := notice(a, KindBill, 8500); res.ChargedMicros != 0 || !res.Duplicate {
		t.Errorf("the bill here after the other instance's: %+v, want nothing charged, a duplicate", res)
	}
	if ledger := ledgerSum(st); results != ledger {
		t.Errorf("the notices' results charged %d, the ledger holds %d", results, ledger)
	}
}

// A charge on an impression the tier dropped early (it was full) is counted
// unreconciled when the bid came before the drop: this process may have
// charged it before and forgotten. An impression bid after the drop is not.
func TestChargeForgottenByEvictionIsUnreconciled(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m, err := New(Config{InstanceID: "e", Store: NewMemStore(), Clock: clk, manual: true, DedupMaxEntries: 1024,
		MinLease: micros(1), MaxLease: micros(10)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	m.SetCampaigns([]Campaign{campaign("c", micros(1000))})
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctxT(t))
	bill := func(auction string, bid time.Time) Result {
		t.Helper()
		res, err := m.Settle(Notice{Kind: KindBill, CampaignID: "c", AuctionID: auction, ImpID: "1",
			BidMicros: 10, ClearingMicros: 10, Time: clk.Now(), Bid: bid})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	clk.Add(time.Second)
	early := clk.Now() // after the start, before the drop
	if res := bill("first", early); res.Unreconciled {
		t.Fatalf("a first bill bid after the start: %+v, want reconciled", res)
	}
	clk.Add(2 * time.Second)
	for i := range 20_000 {
		bill(fmt.Sprint("other", i), clk.Now())
	}
	if m.Counters().DedupEvicted == 0 {
		t.Fatal("nothing evicted")
	}
	clk.Add(2 * time.Second)
	before := m.Counters().UnreconciledCharges
	if res := bill("first", early); !res.Unreconciled || res.Duplicate {
		t.Fatalf("the bill again once the tier dropped it: %+v, want charged and unreconciled", res)
	}
	if res := bill("fresh", clk.Now()); res.Unreconciled {
		t.Fatalf("a bid after the drop: %+v, want reconciled", res)
	}
	if got := m.Counters().UnreconciledCharges - before; got != 1 {
		t.Fatalf("unreconciled charges counted %d, want 1", got)
	}
}

// A provisional win the ledger found recorded before (another instance
// billed the impression at that price: its forward failed) is not reversed
// by a loss here: this process cannot tell it from the bill, and a billed
// impression reversed is free.
func TestLossKeepsAProvisionalWinRecordedBefore(t *testing.T) {
	st, a, b, settle := twoOnOneStore(t, 1000)
	settle(b, KindBill, 500)
	settle(a, KindWin, 500)
	if res := settle(a, KindLoss, 0); res.ReversedMicros != 0 {
		t.Errorf("loss after a win the ledger had as billed: %+v, want nothing reversed", res)
	}
	if got := ledgerSum(st); got != 500 {
		t.Fatalf("ledger %d for an impression billed at 500", got)
	}
}
