package budget

import (
	"testing"
	"time"
)

// The review of 21a2cdd (a charge the ledger found recorded before reported
// as charging nothing) proved three ways its tier flag fell on another
// notice's real charge. The mark is now the entry's own sequence (the
// ledger's duplicate ring), so each of these fails on 21a2cdd and passes.

// rvNotice is a notice of impression "x"/"1" of hold id placed by "a".
func rvNotice(k NoticeKind, id HoldID, price int64, clk Clock) Notice {
	return Notice{Kind: k, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c",
		AuctionID: "x", ImpID: "1", BidMicros: 3000, ClearingMicros: price, Time: clk.Now(),
		Bid: clk.Now().Add(-time.Second)}
}

func rvLedgerSum(st *MemStore) (sum int64) {
	for _, e := range st.ledger.all() {
		sum += e.Charged
	}
	return
}

// settledThenClosed settles steps on process "a" of a fresh store (each
// flushed), closes it, and returns what a restarted "a" needs.
func settledThenClosed(t *testing.T, steps ...rvStep) (*MemStore, *manualClock, Campaign, HoldID) {
	t.Helper()
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	c := campaign("c", micros(100))
	a := storeManager(t, st, "a", clk, c)
	id, _ := a.Hold(a.Handle("c"), 3000, clk.Now())
	for _, s := range steps {
		if _, err := a.Settle(rvNotice(s.k, id, s.p, clk)); err != nil {
			t.Fatal(err)
		}
		a.ledger.flush(ctxT(t))
	}
	a.Close(ctxT(t))
	return st, clk, c, id
}

// rvStep is one notice of settledThenClosed: its kind and price.
type rvStep struct {
	k NoticeKind
	p int64
}

// A: a replayed rise, found a duplicate by the ledger. B: a real, new rise
// on the same impression settled after A's ack was processed but before A's
// goroutine ran finish. Each result says what its own entry charged. (A
// rise is the first priced notice of its kind: the bill under the floor
// leaves both kinds open.)
func TestDupRaiseNotTakenByALaterRise(t *testing.T) {
	st, clk, c, id := settledThenClosed(t, rvStep{KindWin, 1500}) // recorded key.0.1500
	a2 := storeManager(t, st, "a", clk, c)
	under := rvNotice(KindBill, id, 1000, clk)
	under.UnderFloor = true // charged at the floor: prices nothing
	if _, err := a2.Settle(under); err != nil {
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))
	nA := rvNotice(KindWin, id, 1500, clk) // replay: duplicate in the ledger
	outA, err := a2.settle(&nA)
	if err != nil {
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))                // A's entry acknowledged as a duplicate: its sequence marked
	nB := rvNotice(KindBill, id, 2000, clk) // a real rise: 500 new
	outB, err := a2.settle(&nB)
	if err != nil {
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))
	a2.finish(&outB) // B's goroutine wakes first
	a2.finish(&outA)
	t.Logf("A (replay) reports charged %d dup=%v; B (new rise) reports charged %d dup=%v; ledger sum %d",
		outA.res.ChargedMicros, outA.res.Duplicate, outB.res.ChargedMicros, outB.res.Duplicate, rvLedgerSum(st))
	if outB.res.ChargedMicros != 500 {
		t.Errorf("B charged 500 in the ledger, its result says %d", outB.res.ChargedMicros)
	}
	// A's entry the ledger took back charged nothing: its result (the event
	// log's charge, the win counts) says so.
	if outA.res.ChargedMicros != 0 || !outA.res.Duplicate {
		t.Errorf("A, a duplicate in the ledger, reports charged %d dup=%v; want 0, a duplicate", outA.res.ChargedMicros, outA.res.Duplicate)
	}
}

// No race: A's notice answered ErrAckTimeout (no finish); a loss reverses
// the level (generation 1); a new charge at the same price in generation 1
// is real and its result says so.
func TestDupRaiseNotCarriedAcrossAReversal(t *testing.T) {
	st, clk, c, id := settledThenClosed(t, rvStep{KindWin, 1000}) // recorded key.0.1000
	a2 := storeManager(t, st, "a", clk, c)
	if _, err := a2.Settle(rvNotice(KindWin, id, 500, clk)); err != nil { // key.0.500: new
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))
	nA := rvNotice(KindWin, id, 1000, clk) // key.0.1000: duplicate
	if _, err := a2.settle(&nA); err != nil {
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t)) // marked; A never finishes (its Settle timed out)
	if _, err := a2.Settle(rvNotice(KindLoss, id, 0, clk)); err != nil {
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))
	before := rvLedgerSum(st)
	nB := rvNotice(KindBill, id, 1000, clk) // gen 1: key.1.1000, new
	outB, err := a2.settle(&nB)
	if err != nil {
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))
	a2.finish(&outB)
	for _, e := range st.ledger.all() {
		t.Logf("%s %s ch=%d lvl=%d prov=%v", e.MsgID[28:], e.Kind, e.Charged, e.Level, e.Provisional)
	}
	t.Logf("ledger moved by %d; B reports charged %d dup=%v first=%v", rvLedgerSum(st)-before, outB.res.ChargedMicros, outB.res.Duplicate, outB.res.First)
	if got := rvLedgerSum(st) - before; outB.res.ChargedMicros != got {
		t.Errorf("B charged %d in the ledger, its result says %d", got, outB.res.ChargedMicros)
	}
}

// A rise that is both a raise watch and a seal (a bill over a provisional
// level on an unsure impression): the raise's entry is a duplicate and the
// seal finds its generation reversed, so the chain charges the level under
// it again (a real ledger charge), which the result keeps.
func TestDupRaiseKeepsTheRecharge(t *testing.T) {
	st, clk, c, id := settledThenClosed(t, rvStep{KindWin, 500}, rvStep{KindWin, 1000}, rvStep{KindLoss, 0})
	a2 := storeManager(t, st, "a", clk, c)
	if _, err := a2.Settle(rvNotice(KindWin, id, 500, clk)); err != nil { // replay: foreign
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))
	before := rvLedgerSum(st)
	n := rvNotice(KindBill, id, 1000, clk)
	out, err := a2.settle(&n)
	if err != nil {
		t.Fatal(err)
	}
	a2.ledger.flush(ctxT(t))
	a2.finish(&out)
	for _, e := range st.ledger.all() {
		t.Logf("%s %s ch=%d lvl=%d", e.MsgID[28:], e.Kind, e.Charged, e.Level)
	}
	got := rvLedgerSum(st) - before
	t.Logf("raise on=%v rc=%v; the bill moved the ledger by %d, its result says %d", out.raise.on, out.rc != nil, got, out.res.ChargedMicros)
	if out.res.ChargedMicros != got {
		t.Errorf("the bill charged %d in the ledger, its result says %d", got, out.res.ChargedMicros)
	}
	// The level rule: the win was reversed, so the impression stands at the
	// bill's 1,000, all of it charged after the reversal. The chain charged
	// only the 500 under the rise again, and the rise itself was taken back
	// as a duplicate of the reversed generation's: 500 (found by the review).
	if sum := rvLedgerSum(st); sum != 1000 || got != 1000 {
		t.Errorf("the ledger nets %d for the impression (the bill moved it by %d), want 1000", sum, got)
	}
}
