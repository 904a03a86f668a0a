package budget

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// simulateDay runs one campaign through a day of an accelerated clock: every
// simulated second brings traffic(sec) bid opportunities; half the bids win
// and settle at once at 50-100% of the bid. It returns the spend at the end
// of every hour.
func simulateDay(t *testing.T, c Campaign, traffic func(sec int) int, seed uint64) (hourly [24]int64, m *Manager) {
	t.Helper()
	clk := newManualClock(t0)
	m = newMemManager(t, NewMemStore(), "p1", clk, c)
	h := m.Handle(c.ID)
	rng := rand.New(rand.NewPCG(seed, 1))
	const bid = 10_000
	for sec := range 86400 {
		now := clk.Now()
		for i := range traffic(sec) {
			m.ObserveRequest(now)
			if m.Allow(h, bid, now) != DecisionOK {
				continue
			}
			id, ok := m.Hold(h, bid, now)
			if !ok {
				t.Fatal("hold refused after allow")
			}
			n := Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: c.ID, AuctionID: fmt.Sprint(sec),
				ImpID: fmt.Sprint(i), BidMicros: bid, Time: now}
			if rng.IntN(2) == 0 {
				n.Kind = KindLoss
			} else {
				n.ClearingMicros = bid/2 + rng.Int64N(bid/2+1)
			}
			if _, err := m.Settle(n); err != nil {
				t.Fatal(err)
			}
		}
		if (sec+1)%3600 == 0 { // before the sync at midnight rolls the day
			hourly[(sec+1)/3600-1] = h.spentDay.Load() + h.spent.Load()
		}
		clk.Add(time.Second)
		now = clk.Now()
		m.ledger.flush(ctxT(t))
		m.syncAll(ctxT(t), now, false)
		m.tick(now)
	}
	return hourly, m
}

func TestPacingEvenAcceleratedDay(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	const daily = 300_000_000 // 300 units: plan rate 3472 micros/s
	c := Campaign{ID: "even", Currency: "USD", DailyMicros: daily, Pacing: PacingEven}
	// Diurnal traffic: capacity between 1.4x and 4x the plan rate.
	traffic := func(sec int) int {
		return int(math.Round(2.5 + 1.5*math.Sin(2*math.Pi*float64(sec)/86400)))
	}
	hourly, m := simulateDay(t, c, traffic, 7)
	for hr, spent := range hourly {
		plan := float64(daily) * float64(hr+1) / 24
		if dev := math.Abs(float64(spent)-plan) / plan; dev > 0.05 {
			t.Errorf("hour %d: spent %d, plan %.0f, off by %.1f%%", hr+1, spent, plan, dev*100)
		}
	}
	if hourly[23] < daily*98/100 {
		t.Errorf("delivered %d of %d", hourly[23], daily)
	}
	if hourly[23] > daily {
		t.Errorf("overspent: %d of %d", hourly[23], daily)
	}
	if st := m.Status()[0]; st.PacingMode != "even" || st.DailyBudgetMicros != daily {
		t.Errorf("status %+v", st)
	}
	t.Logf("hourly spend: %v", hourly)
}

func TestPacingASAPDoesNotThrottle(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "p1", clk, campaign("c", micros(5)))
	m.paceAll(clk.Now())
	if th := m.Handle("c").throttle.Load(); th != ^uint64(0) {
		t.Fatalf("asap throttle %x", th)
	}
}

func TestForecastShape(t *testing.T) {
	var f forecast
	var w [1440]float64
	for i := range w {
		if i >= 720 {
			w[i] = 3 // three times the traffic in the afternoon (UTC)
		} else {
			w[i] = 1
		}
	}
	f.setWeights(w)
	start, end, _ := dayBounds(t0.Add(time.Hour), time.UTC)
	f2 := func(at time.Duration, want float64) {
		t.Helper()
		got, _, ok := f.shape(start.Add(at), start, end)
		if !ok || math.Abs(got-want) > 1e-3 {
			t.Errorf("at %v: frac %v want %v", at, got, want)
		}
	}
	f2(0, 0)
	f2(12*time.Hour, 0.25)
	f2(18*time.Hour, 0.625)
	f2(24*time.Hour, 1)
	// A campaign in UTC+6 starts its day at 18:00 UTC.
	loc := time.FixedZone("X", 6*3600)
	s, e, _ := dayBounds(t0.Add(time.Hour), loc)
	got, _, _ := f.shape(s.Add(6*time.Hour), s, e) // 18:00-24:00 UTC, weight 3
	if math.Abs(got-0.375) > 1e-3 {
		t.Errorf("UTC+6 quarter day: %v want 0.375", got)
	}
	// Learning: folding a full day of counts installs it.
	var g forecast
	day := t0
	for m := range 1440 {
		for range 1 + m/720 {
			g.cur[0].n.Add(1)
		}
		g.fold(day.Add(time.Duration(m) * time.Minute))
	}
	g.fold(day.Add(24 * time.Hour))
	if !g.have || g.w[0] != 1 || g.w[800] != 2 {
		t.Fatalf("learned %v %v %v", g.have, g.w[0], g.w[800])
	}
}
