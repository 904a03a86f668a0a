package budget

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/openbidder/openbidder/internal/localday"
)

// dayRun is one simulated day of a campaign on an accelerated clock.
type dayRun struct {
	c       Campaign
	traffic func(sec int) int // bid opportunities in second sec of the day
	seed    uint64
	from    int // the manager starts at this second of the day (0: midnight)
	// eligible, when set, is the targeting (dayparting): the campaign is
	// offered no opportunity in a second it returns false for.
	eligible func(sec int) bool
	// at runs before second sec (a reload, a budget change).
	at map[int]func(m *Manager)
	// bidFor is the campaign the simulation bids for (default c.ID; it may
	// appear later, by a reload in at).
	bidFor string
	day    time.Time // midnight of the simulated day (default t0)
	// noticeDelay delays every notice by that many seconds; with
	// noLosses the losses never come (their holds expire).
	noticeDelay int
	noLosses    bool
}

// simulateDay runs r: every simulated second brings traffic(sec) bid
// opportunities; half the bids win and settle at once at 50-100% of the
// bid. It returns the spend today at the end of every hour, and the plan's
// target then.
func simulateDay(t *testing.T, r dayRun) (hourly, target [24]int64, m *Manager) {
	t.Helper()
	if r.day.IsZero() {
		r.day = t0
	}
	if r.bidFor == "" {
		r.bidFor = r.c.ID
	}
	clk := newManualClock(r.day.Add(time.Duration(r.from) * time.Second))
	m = newMemManager(t, NewMemStore(), "p1", clk, r.c)
	rng := rand.New(rand.NewPCG(r.seed, 1))
	const bid = 10_000
	later := map[int][]Notice{} // notices by the second they arrive
	for sec := r.from; sec < 86400; sec++ {
		now := clk.Now()
		if f := r.at[sec]; f != nil {
			f(m)
		}
		for _, n := range later[sec] {
			n.Time = now
			if _, err := m.Settle(n); err != nil {
				t.Fatal(err)
			}
		}
		delete(later, sec)
		h := m.Handle(r.bidFor)
		for i := range r.traffic(sec) {
			m.ObserveRequest(now)
			if h == nil || r.eligible != nil && !r.eligible(sec) {
				continue
			}
			if m.Allow(h, bid, now) != DecisionOK {
				continue
			}
			id, ok := m.Hold(h, bid, now)
			if !ok {
				t.Fatal("hold refused after allow")
			}
			n := Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: r.bidFor, AuctionID: fmt.Sprint(sec),
				ImpID: fmt.Sprint(i), BidMicros: bid, Time: now}
			if rng.IntN(2) == 0 {
				n.Kind = KindLoss
			} else {
				n.ClearingMicros = bid/2 + rng.Int64N(bid/2+1)
			}
			if r.noticeDelay > 0 {
				if n.Kind != KindLoss || !r.noLosses {
					later[sec+r.noticeDelay] = append(later[sec+r.noticeDelay], n)
				}
				continue
			}
			if _, err := m.Settle(n); err != nil {
				t.Fatal(err)
			}
		}
		if (sec+1)%3600 == 0 && h != nil { // before the sync at midnight rolls the day
			hourly[(sec+1)/3600-1] = h.spentDay.Load() + h.spent.Load()
			target[(sec+1)/3600-1] = h.target.Load()
		}
		clk.Add(time.Second)
		now = clk.Now()
		m.ledger.flush(ctxT(t))
		m.syncAll(ctxT(t), now, false)
		m.tick(now)
	}
	return hourly, target, m
}

// checkHours compares the spend in every hour of [from, to) with want(hour)
// and fails beyond tol (relative). It logs the worst hour (go test -v), the
// hourly pacing error docs/budget.md reports.
func checkHours(t *testing.T, hourly [24]int64, from, to int, want func(hr int) float64, tol float64) {
	t.Helper()
	worst, worstHr := 0.0, -1
	for hr := from; hr < to; hr++ {
		got := hourly[hr]
		if hr > 0 {
			got -= hourly[hr-1]
		}
		w := want(hr)
		if w == 0 {
			if got != 0 {
				t.Errorf("hour %d: spent %d, plan 0", hr, got)
			}
			continue
		}
		dev := math.Abs(float64(got)-w) / w
		if dev > worst {
			worst, worstHr = dev, hr
		}
		if dev > tol {
			t.Errorf("hour %d: spent %d, plan %.0f, off by %.1f%%", hr, got, w, dev*100)
		}
	}
	if worstHr >= 0 {
		t.Logf("hourly pacing error, hours %d-%d: worst %.2f%% (hour %d)", from, to-1, worst*100, worstHr)
	}
}

// diurnal is traffic between lo and hi opportunities a second, lowest at
// 18:00 and highest at 06:00.
func diurnal(lo, hi float64) func(sec int) int {
	return func(sec int) int {
		return int(math.Round((lo+hi)/2 + (hi-lo)/2*math.Sin(2*math.Pi*float64(sec)/86400)))
	}
}

// smoothDiurnal is diurnal traffic with fractional rates: lo to hi
// opportunities a second on average (lowest at 18:00, highest at 06:00),
// dithered to whole opportunities so that every second adds the integral of
// the rate over it, rounded down in total.
func smoothDiurnal(lo, hi float64) func(sec int) int {
	a, b := (lo+hi)/2, (hi-lo)/2
	cum := func(sec int) float64 { // integral of the rate over [0, sec)
		return a*float64(sec) + b*86400/(2*math.Pi)*(1-math.Cos(2*math.Pi*float64(sec)/86400))
	}
	return func(sec int) int { return int(math.Floor(cum(sec+1)) - math.Floor(cum(sec))) }
}

func TestPacingEvenAcceleratedDay(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	const daily = 300_000_000 // 300 units: plan rate 3472 micros/s
	c := Campaign{ID: "even", Currency: "USD", DailyMicros: daily, Pacing: PacingEven}
	// Diurnal traffic: capacity between 1.4x and 4x the plan rate (1.3 to
	// 3.7 opportunities a second; simulateDay spends 3750 micros expected
	// on each: half the bids win, clearing at 50-100% of the bid).
	hourly, target, m := simulateDay(t, dayRun{c: c, traffic: smoothDiurnal(1.3, 3.7), seed: 7})
	for hr, spent := range hourly {
		plan := float64(daily) * float64(hr+1) / 24
		if dev := math.Abs(float64(spent)-plan) / plan; dev > 0.05 {
			t.Errorf("hour %d: spent %d, plan %.0f, off by %.1f%%", hr+1, spent, plan, dev*100)
		}
		// The published target is the plan (re-made from what is left).
		if dev := math.Abs(float64(target[hr])-plan) / plan; dev > 0.05 {
			t.Errorf("hour %d: target %d, plan %.0f", hr+1, target[hr], plan)
		}
	}
	// Hourly pacing error: each hour's spend against the hour's plan.
	checkHours(t, hourly, 0, 24, func(int) float64 { return daily / 24 }, 0.05)
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

// The controller counts the money of bids whose outcome is not known yet
// (open holds no notice drew from: Account.pending), at the share of such
// money that became spend. On spend alone it saw a burst of bids only once
// their notices came: an operator audit's even-paced campaign held its
// whole day's budget within 5 s of a burst and charged 10% of it in 2 s,
// 38 times the plan by then, its participation still 1.
func TestPacingCountsBidsInFlight(t *testing.T) {
	clk, m, h, step := evenAtNoon(t)
	p := func() float64 { return float64(h.throttle.Load()) / math.MaxUint64 }
	var ids []HoldID
	for m.Allow(h, 10_000, clk.Now()) == DecisionOK { // a burst: the whole lease (10 units, a tenth of the day)
		id, ok := m.Hold(h, 10_000, clk.Now())
		if !ok {
			break
		}
		ids = append(ids, id)
	}
	if len(ids) < 100 || h.pending.Load() != int64(len(ids))*10_000 {
		t.Fatalf("%d bids, %d pending", len(ids), h.pending.Load())
	}
	step()
	if p() > 0.01 {
		t.Fatalf("participation %.3f after bids worth %d micros in a second, against a plan of %d by then", p(), h.pending.Load(), h.target.Load())
	}
	// Their notices: a tenth won at the bid, the rest lost. The money
	// known, the campaign is far under its plan again and bids.
	for i, id := range ids {
		n := Notice{Kind: KindLoss, HoldID: id, CampaignID: "even", AuctionID: fmt.Sprint("burst-", i), ImpID: "1",
			BidMicros: 10_000, Time: clk.Now()}
		if i%10 == 0 {
			n.Kind, n.ChargeOn, n.ClearingMicros = KindWin, KindWin, 10_000
		}
		if _, err := m.Settle(n); err != nil {
			t.Fatal(err)
		}
	}
	if h.pending.Load() != 0 {
		t.Fatalf("%d micros still pending after every notice", h.pending.Load())
	}
	for range 600 {
		step()
	}
	if p() < 0.02 {
		t.Fatalf("participation %.3f ten minutes after the burst's notices, spent %d of a plan of %d", p(), h.spentDay.Load()+h.spent.Load(), h.target.Load())
	}
}

// An accelerated day whose notices come 5 s after their bids, and whose
// losses never come (their holds expire): the in-flight money is counted at
// the share that becomes spend, and the day still paces within 5% an hour.
func TestPacingEvenWithLateNotices(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	const daily = 300_000_000
	c := Campaign{ID: "even", Currency: "USD", DailyMicros: daily, Pacing: PacingEven}
	hourly, _, _ := simulateDay(t, dayRun{c: c, traffic: smoothDiurnal(1.3, 3.7), seed: 7, noticeDelay: 5, noLosses: true})
	checkHours(t, hourly, 0, 24, func(int) float64 { return daily / 24 }, 0.05)
	if hourly[23] < daily*98/100 || hourly[23] > daily {
		t.Errorf("delivered %d of %d", hourly[23], daily)
	}
}

// TestMeasurePacingError runs the accelerated day of
// TestPacingEvenAcceleratedDay over ten seeds, at the test's capacity (1.4x
// to 4x the plan rate) and near capacity (1 to 4 whole opportunities a
// second: 1.08x to 4.3x), and logs each day's worst hour against daily/24.
// It asserts nothing (near capacity the worst hour exceeds 5% on some seeds:
// the trough's shortfall is re-planned into the evening):
//
//	BUDGET_MEASURE=1 go test -run MeasurePacingError -v ./budget
func TestMeasurePacingError(t *testing.T) {
	if os.Getenv("BUDGET_MEASURE") == "" {
		t.Skip("set BUDGET_MEASURE=1")
	}
	const daily = 300_000_000
	c := Campaign{ID: "even", Currency: "USD", DailyMicros: daily, Pacing: PacingEven}
	for _, tc := range []struct {
		name    string
		traffic func(sec int) int
	}{
		{"capacity 1.4x-4x", smoothDiurnal(1.3, 3.7)},
		{"capacity 1.08x-4.3x", diurnal(1, 4)},
	} {
		var worstDays []float64
		for seed := uint64(1); seed <= 10; seed++ {
			hourly, _, _ := simulateDay(t, dayRun{c: c, traffic: tc.traffic, seed: seed})
			worst := 0.0
			for hr := range hourly {
				got := hourly[hr]
				if hr > 0 {
					got -= hourly[hr-1]
				}
				worst = max(worst, math.Abs(float64(got)-daily/24)/(daily/24))
			}
			worstDays = append(worstDays, math.Round(worst*10000)/100)
		}
		t.Logf("%s: worst hour per seed 1..10 (%%): %v", tc.name, worstDays)
	}
}

// A campaign that starts at noon (the bidder started then, the campaign was
// added then, or its flight begins then) plans its daily budget over the
// afternoon: no burst to catch up with a plan that began at midnight.
func TestPacingStartsAtNoon(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated days")
	}
	const daily = 200_000_000 // 200 units over 12 h: 4630 micros/s
	noon := 12 * 3600
	c := Campaign{ID: "noon", Currency: "USD", DailyMicros: daily}
	flight := c
	flight.Start = t0.Add(12 * time.Hour)
	added := c
	added.ID = "other" // the manager runs from midnight with another campaign; "noon" is added at noon
	for _, tc := range []struct {
		name string
		run  dayRun
	}{
		{"bidder started at noon", dayRun{c: c, from: noon}},
		{"flight starts at noon", dayRun{c: flight, eligible: func(sec int) bool { return sec >= noon }}},
		{"campaign added at noon", dayRun{c: added, bidFor: c.ID, at: map[int]func(*Manager){noon: func(m *Manager) {
			if err := m.SetCampaigns([]Campaign{added, c}); err != nil {
				t.Fatal(err)
			}
		}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.run
			r.traffic, r.seed = diurnal(2, 6), 3 // capacity 1.6x-4.9x the plan rate
			hourly, _, _ := simulateDay(t, r)
			checkHours(t, hourly, 0, 24, func(hr int) float64 {
				if hr < 12 {
					return 0
				}
				return daily / 12
			}, 0.05)
			// No burst: the first hour after the start spends its share.
			if first := hourly[12] - hourly[11]; math.Abs(float64(first)-daily/12) > 0.03*daily/12 {
				t.Errorf("first hour after the start spent %d, plan %d", first, daily/12)
			}
			if hourly[23] < daily*98/100 || hourly[23] > daily {
				t.Errorf("delivered %d of %d", hourly[23], daily)
			}
		})
	}
}

// Dayparting: the plan spreads the day over the hours the campaign may bid
// (09:00-12:00 and 14:00-18:00 on this Monday, in its time zone), evenly.
func TestPacingDayparting(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	const daily = 140_000_000 // 140 units over 7 h: 5556 micros/s
	loc := time.FixedZone("UTC+2", 2*3600)
	var hours [7]uint32
	for _, h := range []int{9, 10, 11, 14, 15, 16, 17} {
		hours[time.Monday] |= 1 << h
	}
	c := Campaign{ID: "daypart", Currency: "USD", DailyMicros: daily, TimeZone: loc, Hours: hours}
	// Simulate the campaign's day (from 22:00 UTC the day before t0), so
	// the hours of the simulation are its local hours.
	localStart := time.Date(2026, 11, 23, 0, 0, 0, 0, loc) // a Monday
	if localStart.Weekday() != time.Monday {
		t.Fatal("not a Monday")
	}
	r := dayRun{c: c, traffic: diurnal(2, 6), seed: 5, day: localStart}
	r.eligible = func(sec int) bool { return hours[time.Monday]&(1<<(sec/3600)) != 0 }
	hourly, _, _ := simulateDay(t, r)
	checkHours(t, hourly, 0, 24, func(hr int) float64 {
		if hours[time.Monday]&(1<<hr) == 0 {
			return 0
		}
		return daily / 7
	}, 0.05)
	if hourly[23] < daily*98/100 || hourly[23] > daily {
		t.Errorf("delivered %d of %d", hourly[23], daily)
	}
}

// A budget raised at noon spreads the extra over the afternoon.
func TestPacingBudgetRaised(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	const daily, raised = 150_000_000, 300_000_000
	c := Campaign{ID: "raise", Currency: "USD", DailyMicros: daily}
	more := c
	more.DailyMicros = raised
	var atNoon int64
	r := dayRun{c: c, traffic: diurnal(2, 6), seed: 9, at: map[int]func(*Manager){12 * 3600: func(m *Manager) {
		h := m.Handle("raise")
		atNoon = h.spentDay.Load() + h.spent.Load()
		if err := m.SetCampaigns([]Campaign{more}); err != nil {
			t.Fatal(err)
		}
	}}}
	hourly, _, _ := simulateDay(t, r)
	checkHours(t, hourly, 0, 12, func(int) float64 { return daily / 24 }, 0.05)
	checkHours(t, hourly, 12, 24, func(int) float64 { return float64(raised-atNoon) / 12 }, 0.05)
	if hourly[23] < raised*98/100 || hourly[23] > raised {
		t.Errorf("delivered %d of %d", hourly[23], raised)
	}
}

// Forecast pacing started at noon plans the rest of the day in proportion
// to the traffic forecast of the afternoon.
func TestPacingForecastFromNoon(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	const daily = 100_000_000
	traffic := diurnal(2, 6)
	var w [1440]float64
	for i := range w {
		w[i] = float64(traffic(i * 60))
	}
	c := Campaign{ID: "fc", Currency: "USD", DailyMicros: daily, Pacing: PacingForecast}
	clkStart := 12 * 3600
	r := dayRun{c: c, traffic: traffic, seed: 11, from: clkStart, at: map[int]func(*Manager){clkStart: func(m *Manager) {
		m.fc.setWeights(w)
	}}}
	hourly, _, _ := simulateDay(t, r)
	var afternoon float64
	for i := 720; i < 1440; i++ {
		afternoon += w[i]
	}
	checkHours(t, hourly, 12, 24, func(hr int) float64 {
		var s float64
		for i := hr * 60; i < (hr+1)*60; i++ {
			s += w[i]
		}
		return daily * s / afternoon
	}, 0.05)
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
	m := &Manager{}
	var w [1440]float64
	for i := range w {
		if i >= 720 {
			w[i] = 3 // three times the traffic in the afternoon (UTC)
		} else {
			w[i] = 1
		}
	}
	m.fc.setWeights(w)
	c := &Campaign{ID: "f", Pacing: PacingForecast}
	start, end, _ := dayBounds(t0.Add(time.Hour), time.UTC)
	day := m.planWeight(c, true, start, end)
	f2 := func(c *Campaign, at time.Duration, want float64) {
		t.Helper()
		s, e, _ := dayBounds(t0.Add(time.Hour), c.loc())
		got := m.planWeight(c, true, s, s.Add(at)) / m.planWeight(c, true, s, e)
		if math.Abs(got-want) > 1e-3 {
			t.Errorf("at %v: frac %v want %v", at, got, want)
		}
	}
	if math.Abs(day-4*720*60/60) > 1 { // 720 minutes of weight 1 and 720 of 3
		t.Errorf("day weight %v", day)
	}
	f2(c, 0, 0)
	f2(c, 12*time.Hour, 0.25)
	f2(c, 18*time.Hour, 0.625)
	f2(c, 24*time.Hour, 1)
	// A campaign in UTC+6 starts its day at 18:00 UTC: its first 6 hours
	// have weight 3 of the 12 + 36 of its day.
	east := &Campaign{ID: "e", Pacing: PacingForecast, TimeZone: time.FixedZone("X", 6*3600)}
	f2(east, 6*time.Hour, 0.375)
	// Dayparting: only 12:00-18:00 UTC counts, so 15:00 is half way.
	dp := &Campaign{ID: "d", Pacing: PacingForecast}
	for h := 12; h < 18; h++ {
		for d := range dp.Hours {
			dp.Hours[d] |= 1 << h
		}
	}
	f2(dp, 15*time.Hour, 0.5)
	f2(dp, 12*time.Hour, 0)
	// Learning: folding a full day of counts installs it.
	var g forecast
	day0 := t0
	for m := range 1440 {
		for range 1 + m/720 {
			g.cur[0].n.Add(1)
		}
		g.fold(day0.Add(time.Duration(m) * time.Minute))
	}
	g.fold(day0.Add(24 * time.Hour))
	if !g.have || g.w[0] != 1 || g.w[800] != 2 {
		t.Fatalf("learned %v %v %v", g.have, g.w[0], g.w[800])
	}
}

// BenchmarkPaceStep is one controller step of one campaign, its plan
// included: what the pacing goroutine spends per active campaign per second.
func BenchmarkPaceStep(b *testing.B) {
	var hours [7]uint32
	for d := range hours {
		hours[d] = 0xff << 9 // 09:00-16:59
	}
	for _, tc := range []struct {
		name string
		c    Campaign
	}{
		{"even", Campaign{ID: "c", Currency: "USD", DailyMicros: micros(100)}},
		{"forecast", Campaign{ID: "c", Currency: "USD", DailyMicros: micros(100), Pacing: PacingForecast}},
		{"dayparting", Campaign{ID: "c", Currency: "USD", DailyMicros: micros(100), Hours: hours,
			TimeZone: time.FixedZone("UTC-5", -5*3600)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, err := New(Config{InstanceID: "b", Store: NewMemStore(), manual: true}, quietLog())
			if err != nil {
				b.Fatal(err)
			}
			if err := m.SetCampaigns([]Campaign{tc.c}); err != nil {
				b.Fatal(err)
			}
			var w [1440]float64
			for i := range w {
				w[i] = 1 + float64(i%7)
			}
			m.fc.setWeights(w)
			a := m.Handle("c")
			now := t0.Add(10 * time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Second)
				a.spent.Add(100)
				m.pace(a, now)
			}
		})
	}
}

// dayBounds keeps each zone's last day (dayMemo): asked in any order, across
// midnights and DST changes, in zones that share a memo slot or were loaded
// twice, it answers what the computation answers.
func TestDayBoundsMemo(t *testing.T) {
	var locs []*time.Location
	for _, name := range []string{"UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham", "America/New_York"} {
		l, err := time.LoadLocation(name) // New York twice: two *Location values
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, l)
	}
	locs = append(locs, time.FixedZone("X", 3600), time.FixedZone("X", -3600)) // same name, other rules
	// Zones that share a memo slot with New York take turns in it.
	for i := 0; len(locs) < 12 && i < 10000; i++ {
		if z := time.FixedZone(fmt.Sprint("Z", i), (i%25-12)*3600); dayMemoSlot(z) == dayMemoSlot(locs[1]) {
			locs = append(locs, z)
		}
	}
	if len(locs) < 12 {
		t.Fatal("no zone shares New York's slot")
	}
	base := time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC) // New York's and London's spring changes follow
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		at := base.Add(time.Duration(rng.Int64N(int64(40 * 24 * time.Hour))))
		loc := locs[rng.IntN(len(locs))]
		s, e, d := dayBounds(at, loc)
		ws, we, wd := localday.Bounds(at, loc)
		if !s.Equal(ws) || !e.Equal(we) || d != wd || s.Location() != loc {
			t.Fatalf("%v in %v: %v %v %s, want %v %v %s", at, loc, s, e, d, ws, we, wd)
		}
	}
}

// A total budget that leaves less than the daily budget is what the day
// plans: what is left of the total spread over the day, not the daily
// budget's pace until the total runs out. Before, a campaign with a daily
// budget of 300 and 150 left of its total spent the 150 by noon (an outside
// audit, from the code).
func TestPacingTotalLeftUnderDaily(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	const daily, total = 300_000_000, 150_000_000
	c := Campaign{ID: "even", Currency: "USD", DailyMicros: daily, TotalMicros: total, Pacing: PacingEven}
	hourly, _, _ := simulateDay(t, dayRun{c: c, traffic: smoothDiurnal(1.3, 3.7), seed: 7})
	checkHours(t, hourly, 0, 24, func(int) float64 { return total / 24 }, 0.05)
	if hourly[23] < total*98/100 || hourly[23] > total {
		t.Errorf("delivered %d of the %d left", hourly[23], total)
	}
}

// A loss that reverses a provisional win puts the charge back into its hold
// and takes it off the money drawn (2ea34a0): with provisional wins mostly
// reversed, the share of bids' money that becomes spend (pacing's
// conversion of the money in flight) falls; left in drawn it tended to 1
// and the controller under-delivered.
func TestReversedWinsLowerPacingConversion(t *testing.T) {
	clk, m, h, step := evenAtNoon(t)
	var ids []HoldID
	for range 50 {
		id, ok := m.Hold(h, 10_000, clk.Now())
		if !ok {
			break
		}
		ids = append(ids, id)
	}
	if len(ids) < 20 {
		t.Fatalf("%d holds", len(ids))
	}
	wins := make([]Notice, len(ids))
	for i, id := range ids {
		wins[i] = Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id, CampaignID: "even", AuctionID: fmt.Sprint("prov-", i),
			ImpID: "1", BidMicros: 10_000, ClearingMicros: 10_000, Time: clk.Now()}
		if res, err := m.Settle(wins[i]); err != nil || !res.Provisional {
			t.Fatalf("win %d: %+v %v, want a provisional charge", i, res, err)
		}
	}
	step() // the controller sees the wins' draw before their reversals
	for i, win := range wins {
		loss := win
		loss.Kind, loss.Time = KindLoss, clk.Now()
		if res, err := m.Settle(loss); err != nil || res.ReversedMicros != 10_000 {
			t.Fatalf("loss %d: %+v %v, want 10000 reversed", i, res, err)
		}
	}
	if d := h.drawn.Load(); d != 0 {
		t.Errorf("drawn %d after every charge was reversed, want 0", d)
	}
	for range 5 {
		step()
	}
	// The estimate as the last step left it (no time passed, nothing new).
	_, conv := h.pace.inflight(clk.Now(), h.reserved.Load(), h.drawn.Load(), h.pending.Load(), h.campaign().DailyMicros)
	if conv > 0.5 {
		t.Errorf("conversion %.3f after %d provisional wins all reversed, want the share spent (~0)", conv, len(ids))
	}
}

// evenAtNoon is a manager with one even-paced campaign of 100 a day at noon,
// and a step of its second (ledger flushed, a sync round, a pacing tick),
// after three of them.
func evenAtNoon(t *testing.T) (*manualClock, *Manager, *Account, func()) {
	t.Helper()
	clk := newManualClock(t0.Add(12 * time.Hour))
	c := Campaign{ID: "even", Currency: "USD", DailyMicros: micros(100), Pacing: PacingEven}
	m := newMemManager(t, NewMemStore(), "p1", clk, c)
	h := m.Handle("even")
	step := func() {
		clk.Add(time.Second)
		m.ledger.flush(ctxT(t))
		m.syncAll(ctxT(t), clk.Now(), false)
		m.tick(clk.Now())
	}
	for range 3 {
		step()
	}
	return clk, m, h, step
}
