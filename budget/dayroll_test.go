package budget

import (
	"fmt"
	"testing"
	"time"
)

// A record's day only moves forward. It was reset whenever a step's day
// differed from it, in either direction, so a campaign whose time zone was
// edited to one behind (UTC+14 to UTC-12: the local date goes back a day), or
// two instances running the campaign in two zones during a rolling reload,
// set spent_day back to 0 at each such step, and the daily budget was spent
// again within the same day: each test spent 2 daily budgets before the fix.
func TestDayNeverRollsBack(t *testing.T) {
	ahead := time.FixedZone("UTC+14", 14*3600)
	behind := time.FixedZone("UTC-12", -12*3600)
	daily := func(tz *time.Location) Campaign {
		return Campaign{ID: "c", Currency: "USD", DailyMicros: micros(2), TimeZone: tz, Pacing: PacingASAP}
	}
	spend := func(t *testing.T, m *Manager, clk *manualClock, tag string) int {
		t.Helper()
		h := m.Handle("c")
		n := 0
		for i := range 4 {
			m.syncAll(ctxT(t), clk.Now(), false)
			if m.Allow(h, micros(1), clk.Now()) != DecisionOK {
				break
			}
			id, ok := m.Hold(h, micros(1), clk.Now())
			if !ok {
				break
			}
			if _, err := m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: tag, ImpID: fmt.Sprint(i), BidMicros: micros(1), ClearingMicros: micros(1)}); err != nil {
				t.Fatal(err)
			}
			n++
		}
		m.ledger.flush(ctxT(t))
		m.syncAll(ctxT(t), clk.Now(), false)
		return n
	}
	// 20:00 UTC: 10:00 tomorrow at UTC+14, 08:00 today at UTC-12.
	now := t0.Add(20 * time.Hour)

	t.Run("time zone edited to one behind", func(t *testing.T) {
		clk := newManualClock(now)
		m := newMemManager(t, NewMemStore(), "i1", clk, daily(ahead))
		if n := spend(t, m, clk, "a"); n != 2 {
			t.Fatalf("spent %d units, want the daily 2", n)
		}
		if err := m.SetCampaigns([]Campaign{daily(behind)}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		if n := spend(t, m, clk, "b"); n != 0 {
			t.Fatalf("after the time zone edit: spent %d more units the same day, want 0", n)
		}
	})

	t.Run("two instances in two zones", func(t *testing.T) {
		clk := newManualClock(now)
		st := NewMemStore()
		m1 := newMemManager(t, st, "i1", clk, daily(ahead))
		m2 := newMemManager(t, st, "i2", clk, daily(behind))
		total := 0
		for round := range 4 {
			clk.Add(time.Second)
			total += spend(t, m1, clk, fmt.Sprint("r1-", round))
			total += spend(t, m2, clk, fmt.Sprint("r2-", round))
		}
		if total > 2 {
			t.Fatalf("spent %d units in 8 s, want at most the daily 2", total)
		}
	})

	// A process that has no config for the campaign (its file removed there,
	// then a restart) settles a late bill on an account made from the
	// record, which does not say the campaign's time zone: its step rolled
	// the record to its UTC date, a day ahead of UTC-12, and the instance
	// still running the campaign got its daily budget again.
	t.Run("a process without the campaign's config", func(t *testing.T) {
		clk := newManualClock(t0.Add(26 * time.Hour)) // 02:00 UTC: 14:00 the day before at UTC-12
		st := NewMemStore()
		m1 := newMemManager(t, st, "i1", clk, daily(behind))
		if n := spend(t, m1, clk, "a"); n != 2 {
			t.Fatalf("spent %d units, want the daily 2", n)
		}
		m2 := newMemManager(t, st, "i2", clk, Campaign{ID: "other", DailyMicros: micros(2)})
		late := Notice{Kind: KindBill, CampaignID: "c", InstanceID: "i1", AuctionID: "late", ImpID: "1",
			BidMicros: micros(1), ClearingMicros: micros(1), Time: clk.Now()}
		if res, err := m2.Settle(late); err != nil || res.ChargedMicros != micros(1) {
			t.Fatalf("late bill on the other process: %+v, %v", res, err)
		}
		m2.ledger.flush(ctxT(t))
		m2.syncAll(ctxT(t), clk.Now(), false)
		clk.Add(time.Second)
		if n := spend(t, m1, clk, "b"); n != 0 {
			t.Fatalf("after the other process's step: spent %d more units the same day, want 0", n)
		}
	})
}
