package budget

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// simulateSpan is simulateDay over several days: the manager starts at
// second from of t0's day and runs to the end of day days-1. Every second
// brings traffic(sec) opportunities the campaign may bid (half win, at
// 50-100% of the bid, charged on the win) and other(sec) requests it may
// not (they count for the forecast only). It returns the spend in every
// hour since t0 (the winning prices charged in it).
func simulateSpan(t *testing.T, c Campaign, from, days int, traffic, other func(sec int) int) (hourly []int64) {
	return simulateSpanSilent(t, c, from, days, traffic, other, nil)
}

// simulateSpanSilent is simulateSpan with silent(sec) more opportunities
// the campaign may bid whose notices never come (their holds expire).
func simulateSpanSilent(t *testing.T, c Campaign, from, days int, traffic, other, silent func(sec int) int) (hourly []int64) {
	t.Helper()
	clk := newManualClock(t0.Add(time.Duration(from) * time.Second))
	m := newMemManager(t, NewMemStore(), "p1", clk, c)
	rng := rand.New(rand.NewPCG(7, 1))
	const bid = 10_000
	hourly = make([]int64, 24*days)
	refused := make([]int, 24*days)
	defer func() {
		if silent != nil {
			t.Logf("holds refused after allow, by hour: %v", refused)
		}
	}()
	for sec := from; sec < 86400*days; sec++ {
		now := clk.Now()
		h := m.Handle(c.ID)
		if other != nil {
			for range other(sec) {
				m.ObserveRequest(now)
			}
		}
		if silent != nil {
			for range silent(sec) {
				m.ObserveRequest(now)
				if m.Allow(h, bid, now) == DecisionOK {
					m.Hold(h, bid, now)
				}
			}
		}
		for i := range traffic(sec) {
			m.ObserveRequest(now)
			if m.Allow(h, bid, now) != DecisionOK {
				continue
			}
			id, ok := m.Hold(h, bid, now)
			if !ok {
				if silent == nil {
					t.Fatal("hold refused after allow")
				}
				refused[sec/3600]++
				continue
			}
			n := Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: c.ID, AuctionID: fmt.Sprint(sec),
				ImpID: fmt.Sprint(i), BidMicros: bid, Time: now}
			if rng.IntN(2) == 0 {
				n.Kind = KindLoss
			} else {
				n.ClearingMicros = bid/2 + rng.Int64N(bid/2+1)
				hourly[sec/3600] += n.ClearingMicros
			}
			if _, err := m.Settle(n); err != nil {
				t.Fatal(err)
			}
		}
		clk.Add(time.Second)
		now = clk.Now()
		m.ledger.flush(ctxT(t))
		m.syncAll(ctxT(t), now, false)
		m.tick(now)
	}
	return hourly
}

// dayError is day's delivery (share of daily) and its worst hour's
// deviation from an even plan (relative), each hour logged with -v.
func dayError(t *testing.T, hourly []int64, day int, daily int64) (delivered, worst float64) {
	t.Helper()
	var tot int64
	for hr := range 24 {
		got := hourly[day*24+hr]
		tot += got
		worst = max(worst, math.Abs(float64(got)-float64(daily)/24)/(float64(daily)/24))
		t.Logf("day %d %02d:00 spent %.2f%% of the daily budget (even: %.2f%%)", day, hr, 100*float64(got)/float64(daily), 100.0/24)
	}
	return float64(tot) / float64(daily), worst
}

// halfPerSecond is an opportunity every other second: ~1,875 micros a
// second of spend at full participation, 1.62 times an even plan of
// 100,000,000 a day.
func halfPerSecond(sec int) int { return (sec + 1) % 2 }

// A forecast learned from part of a day is not a day's shape: a bidder
// started at noon UTC saw no requests in the morning, and the next day the
// forecast campaign, on flat traffic, bid nothing before noon and spent the
// day's budget in the afternoon at twice the rate (at 1.6 times capacity:
// 81.7% delivered; started at 23:00, 6.7%, all in the last hour).
// docs/budget.md: "even until a full day was seen".
func TestForecastPartialFirstDayNotLearned(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated days")
	}
	const daily = 100_000_000
	c := Campaign{ID: "fc", Currency: "USD", DailyMicros: daily, Pacing: PacingForecast}
	for _, startHour := range []int{12, 23} {
		hourly := simulateSpan(t, c, startHour*3600, 2, halfPerSecond, nil)
		delivered, worst := dayError(t, hourly, 1, daily)
		if delivered < 0.98 || worst > 0.05 {
			t.Errorf("started at %02d:00 UTC, flat traffic: the next day delivered %.1f%% of its budget, worst hour %.0f%% off the even plan",
				startHour, delivered*100, worst*100)
		}
	}
}

// TestMeasureForecastFlood logs what one hour of requests that no campaign
// can bid on (a flood of 20 a second from 03:00, 72,000 against the day's
// 43,200 the campaign may bid) does to a forecast campaign's next day.
func TestMeasureForecastFlood(t *testing.T) {
	if os.Getenv("BUDGET_MEASURE") == "" {
		t.Skip("set BUDGET_MEASURE=1")
	}
	const daily = 100_000_000
	c := Campaign{ID: "fc", Currency: "USD", DailyMicros: daily, Pacing: PacingForecast}
	flood := func(sec int) int {
		if sec >= 3*3600 && sec < 4*3600 {
			return 20
		}
		return 0
	}
	hourly := simulateSpan(t, c, 0, 2, halfPerSecond, flood)
	delivered, worst := dayError(t, hourly, 1, daily)
	t.Logf("day after the flood: delivered %.1f%%, worst hour %.0f%% off the even plan", delivered*100, worst*100)
}

// TestMeasureSilentBids logs an even campaign's day when, from 10:00 to
// 11:00, a source sends 50 opportunities a second whose bids never get a
// notice (an exchange that drops them, or anyone posting bid requests).
func TestMeasureSilentBids(t *testing.T) {
	if os.Getenv("BUDGET_MEASURE") == "" {
		t.Skip("set BUDGET_MEASURE=1")
	}
	const daily = 100_000_000
	c := Campaign{ID: "ev", Currency: "USD", DailyMicros: daily, Pacing: PacingEven}
	silent := func(sec int) int {
		if sec >= 10*3600 && sec < 11*3600 {
			return 50
		}
		return 0
	}
	hourly := simulateSpanSilent(t, c, 0, 1, func(int) int { return 1 }, nil, silent)
	delivered, worst := dayError(t, hourly, 0, daily)
	t.Logf("silent bids 10:00-11:00: delivered %.1f%%, worst hour %.0f%% off the even plan", delivered*100, worst*100)
}

// After a mid-day start the hours before it are learned as the mean of
// the ones seen, and the next whole day is blended in: a process restarted
// every day (a daily deploy) still learns the hours it sees. (Dropping the
// partial day instead, a forecast that never learned again passed
// TestForecastPartialFirstDayNotLearned, whose first whole day is paced
// evenly either way.) A start in the day's first two minutes is a whole day.
func TestForecastLearnsTheFirstWholeDay(t *testing.T) {
	for _, startMin := range []int{0, 1, 2, 720, 1439} {
		var f forecast
		count := func(day, m int) { // 1 request a minute in the morning, 3 in the afternoon
			for range 1 + 2*(m/720) {
				f.cur[0].n.Add(1)
			}
			f.fold(t0.Add(time.Duration(day*1440+m) * time.Minute))
		}
		for m := startMin; m < 1440; m++ {
			count(0, m)
		}
		f.fold(t0.Add(24 * time.Hour))
		if _, have := f.generation(); !have {
			t.Fatalf("start at minute %d: no forecast after the first midnight", startMin)
		}
		// Before the start: the mean minute seen; from it: as seen.
		seen, n := 0.0, 0
		for m := startMin; m < 1440; m++ {
			seen += float64(1 + 2*(m/720))
			n++
		}
		at, want := 5, 1.0 // a whole day: 00:05 as seen
		if startMin > 1 {
			at, want = 0, seen/float64(n)
		}
		if math.Abs(f.w[at]-want) > 1e-9 || f.w[1439] != 3 {
			t.Errorf("start at minute %d: learned %v at minute %d and %v at 23:59, want %v and 3", startMin, f.w[at], at, f.w[1439], want)
		}
		for m := range 1440 {
			count(1, m)
		}
		f.fold(t0.Add(48 * time.Hour))
		if f.w[0] >= f.w[800] {
			t.Errorf("start at minute %d: after a whole day %v at 00:00, %v at 13:20: the morning's lower traffic not learned", startMin, f.w[0], f.w[800])
		}
	}
}
