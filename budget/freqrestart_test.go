package budget

import (
	"testing"
	"time"
)

// A loss notice (or pixel) for a bid the previous process under this
// instance id placed must not end the pending count of a bid this process
// placed: pending counts are not carried across a restart, so the old
// bid's count is not here to end (an outside audit, over HTTP: a bid X, a
// graceful restart, a bid Y for the same user under a cap of 1, X's loss
// notice, and a third bid Z was placed while Y was still pending: Y and Z
// both shown).
func TestPreviousProcessLossEndsNoPendingCountHere(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(100))
	c.FreqCapCount, c.FreqCapWindow = 1, time.Hour
	oldBid := clk.Now().Add(-10 * time.Second) // placed by the previous process, before this one started
	m := newMemManager(t, NewMemStore(), "i1", clk, c)
	h := m.Handle("c")
	const user = 42
	clk.Add(2 * time.Second)
	if !m.FreqReserve(h, user, clk.Now()) { // Y
		t.Fatal("first bid after the restart refused")
	}
	if m.FreqReserve(h, user, clk.Now()) {
		t.Fatal("a second bid while Y is pending (cap 1)")
	}
	m.EndLost(Notice{Kind: KindLoss, InstanceID: "i1", CampaignID: "c", AuctionID: "old", ImpID: "1",
		HoldID: 7, Bid: oldBid.Truncate(time.Second), User: user, Time: clk.Now()})
	if got := m.FreqLeft(h, user, clk.Now()); got != 0 {
		t.Fatalf("the previous process's bid's loss ended Y's pending count: FreqLeft %d, want 0", got)
	}
	// The pixel of the previous process's bid counts the impression and
	// ends nothing here.
	m.CountPixel(Notice{Kind: KindBill, InstanceID: "i1", CampaignID: "c", AuctionID: "old2", ImpID: "1",
		HoldID: 8, Bid: oldBid.Truncate(time.Second), User: user, Time: clk.Now()})
	if got := m.FreqLeft(h, user, clk.Now()); got != 0 {
		t.Fatalf("FreqLeft %d after an old pixel with Y pending, want 0", got)
	}
}
