package budget

import (
	"testing"
	"time"
)

// Spend reported into yesterday's record and reversed just after midnight
// (a loss after a provisional win) is unreported, negative, until the next
// sync: today's figure added it and read -9,000 for up to a sync period (an
// outside notices audit saw -27,000 on /admin/budget). Today's spend is
// never under 0.
func TestSpentTodayNeverNegative(t *testing.T) {
	clk := newManualClock(t0.Add(24*time.Hour - 5*time.Second))
	st := NewMemStore()
	c := Campaign{ID: "c", Currency: "USD", DailyMicros: 1_000_000, Pacing: PacingASAP}
	m := newMemManager(t, st, "a", clk, c)
	h := m.Handle("c")
	id, ok := m.Hold(h, 9000, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	win := Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c",
		AuctionID: "x", ImpID: "1", BidMicros: 9000, ClearingMicros: 9000, Time: clk.Now()}
	if _, err := m.Settle(win); err != nil {
		t.Fatal(err)
	}
	m.ledger.flush(ctxT(t))
	m.syncAll(ctxT(t), clk.Now(), false) // the win is in yesterday's record
	clk.Add(10 * time.Second)
	loss := win
	loss.Kind, loss.ClearingMicros, loss.Time = KindLoss, 0, clk.Now()
	if res, err := m.Settle(loss); err != nil || res.ReversedMicros != 9000 {
		t.Fatalf("loss after midnight: %+v, %v", res, err)
	}
	st0, ok := m.StatusOf("c")
	if !ok || st0.SpentTodayMicros != 0 {
		t.Errorf("spent today %d after midnight's reversal of yesterday's win, want 0", st0.SpentTodayMicros)
	}
	if e := m.Explain(h, 1000, clk.Now()); e.SpentTodayMicros != 0 {
		t.Errorf("explain's spent today %d, want 0", e.SpentTodayMicros)
	}
}
