package simulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startSink(t *testing.T, cfg SinkConfig) *Sink {
	t.Helper()
	s, err := StartSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fastNotices keeps the notice model but with short delays so runs end quickly.
var fastNotices = NoticeConfig{Delay: time.Millisecond, LateDelay: 20 * time.Millisecond, DupProb: 0.05, LossProb: 0.05, LateProb: 0.05}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRunEndToEnd(t *testing.T) {
	sink := startSink(t, SinkConfig{BidProb: 0.6, Price: 4, Campaigns: 2, Seed: 1})
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/budget" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"instance":"i-1","campaigns":[{"id":"camp-1","currency":"USD","total_budget_micros":1000,`+
			`"daily_budget_micros":1000,"spent_micros":900,"pacing_mode":"even","pacing_target_micros":500,"throttle":0.5}]}`)
	}))
	t.Cleanup(admin.Close)
	logDir, outDir := t.TempDir(), t.TempDir()
	rep := run(t, Config{Targets: []string{sink.URL()}, Admin: []string{admin.URL}, Rate: 400, Duration: time.Second, Seed: 3, LogDir: logDir,
		Notices: fastNotices, RenderDelay: time.Millisecond, ClickDelay: time.Millisecond, TMax: 5 * time.Second,
		Truth: GroundTruth{Base: 0.2, Seed: 7}})
	if err := rep.WriteFiles(outDir); err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.Requests != sink.BidRequests() {
		t.Fatalf("requests %d, sink saw %d", rep.Requests, sink.BidRequests())
	}
	if rep.Errors != 0 || rep.Timeouts != 0 || rep.Dropped != 0 {
		t.Errorf("errors %d timeouts %d dropped %d", rep.Errors, rep.Timeouts, rep.Dropped)
	}
	if got := rep.ResponsesByCode["200"] + rep.ResponsesByCode["204"]; got != rep.Requests {
		t.Errorf("200+204 = %d, want %d", got, rep.Requests)
	}
	if rep.Bids == 0 || rep.Wins == 0 || rep.Wins >= rep.Bids || rep.Impressions > rep.Wins || rep.Clicks == 0 {
		t.Errorf("bids %d wins %d impressions %d clicks %d", rep.Bids, rep.Wins, rep.Impressions, rep.Clicks)
	}
	if rep.LatencyUs.Count != rep.Requests || rep.LatencyUs.P50 <= 0 || rep.LatencyUs.P99 < rep.LatencyUs.P50 ||
		rep.LatencyUs.Max < rep.LatencyUs.P999 {
		t.Errorf("latency %+v", rep.LatencyUs)
	}
	// Every notice the simulator reports as answered reached the bidder, and
	// nothing else did: the run waited for them.
	hits := sink.Hits()
	for _, k := range []string{"win", "bill", "loss", "imp", "click"} {
		c := rep.Notices[k]
		if c.OK != hits[k] || c.OK == 0 || c.Dropped != 0 || c.Failed != 0 {
			t.Errorf("notice %s: %+v, sink saw %d", k, c, hits[k])
		}
	}
	if rep.Notices["win"].Scheduled != rep.Wins || rep.Notices["bill"].Scheduled != rep.Impressions ||
		rep.Notices["click"].Scheduled != rep.Clicks {
		t.Errorf("notices scheduled %+v vs wins %d impressions %d clicks %d", rep.Notices, rep.Wins, rep.Impressions, rep.Clicks)
	}
	if hits["loss:102"] == 0 {
		t.Errorf("no loss notice with reason 102: %v", hits)
	}
	// Half the publishers' exchanges send the minimum bid to win (the
	// default -min-to-win 0.5), on wins and losses; the rest leave the macro.
	if hits["min_to_win:win"] == 0 || hits["min_to_win:loss"] == 0 || hits["min_to_win:none"] == 0 {
		t.Errorf("minimum bid to win: %v", hits)
	}
	// The auction-type breakdown adds up to the totals.
	fp, sp, all := rep.Auctions["first_price"], rep.Auctions["second_price"], rep.Auctions["all"]
	if fp.Bids+sp.Bids != rep.Bids || all.Wins != rep.Wins || all.Impressions != rep.Impressions ||
		all.Clicks != rep.Clicks || fp.Bids == 0 || sp.Bids == 0 || math.Abs(all.SpendUSD-rep.SpendUSD) > 1e-6 {
		t.Errorf("auctions %+v vs bids %d wins %d impressions %d clicks %d spend %v", rep.Auctions, rep.Bids, rep.Wins,
			rep.Impressions, rep.Clicks, rep.SpendUSD)
	}
	if fp.MeanBidCPM != 4 || all.SurplusTrueUSD != nil {
		t.Errorf("first price: mean bid %v (the sink bids 4), surplus %v without values", fp.MeanBidCPM, all.SurplusTrueUSD)
	}
	// Spend is the sum of clearing prices (CPM/1000) of billed impressions.
	var spend int64
	for _, c := range rep.Campaigns {
		spend += c.SpendMicros
		if c.SpendMicros > c.Impressions*4000 || (c.Impressions > 0 && c.SpendMicros <= 0) {
			t.Errorf("campaign %s: spend %d micros over %d impressions at max CPM 4", c.CID, c.SpendMicros, c.Impressions)
		}
	}
	if len(rep.Campaigns) != 2 || spend != rep.SpendUSDMicros {
		t.Errorf("campaigns %d, spend %d vs %d", len(rep.Campaigns), spend, rep.SpendUSDMicros)
	}
	// The admin view gives camp-1 a budget of 1000 micros with 900 already
	// spent: the run's billed spend on top of that is the overspend.
	c1 := rep.Campaigns[0]
	if c1.CID != "camp-1" || c1.TotalBudgetMicros == nil || *c1.TotalBudgetMicros != 1000 || c1.OverspendMicros == nil ||
		*c1.OverspendMicros != 900+c1.SpendMicros-1000 || c1.SpendMicros == 0 || rep.OverspendMicros != *c1.OverspendMicros || c1.PacingMode != "even" {
		t.Errorf("camp-1 against its admin budget: %+v", c1)
	}
	if rep.Campaigns[1].TotalBudgetMicros != nil || rep.Campaigns[1].OverspendMicros != nil {
		t.Errorf("camp-2 has no admin budget: %+v", rep.Campaigns[1])
	}
	if rep.PredictedCTR == nil || math.Abs(*rep.PredictedCTR-0.02) > 1e-9 || len(rep.Calibration) == 0 {
		t.Errorf("predicted CTR %v calibration %v", rep.PredictedCTR, rep.Calibration)
	}
	for _, name := range []string{"report.json", "latency_histogram.svg", "latency_over_time.svg", "qps.svg", "spend.svg", "calibration.svg"} {
		b, err := os.ReadFile(filepath.Join(outDir, name))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	checkLogs(t, filepath.Join(logDir, "impressions.jsonl"), rep.Impressions, rep.Clicks)
}

func checkLogs(t *testing.T, path string, imps, clicks int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var rows, labels int64
	for sc.Scan() {
		var row LogRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		if row.CID == "" || row.CrID == "" || len(row.Request) == 0 || row.Eval.TrueCTR <= 0 || row.Clearing <= 0 {
			t.Fatalf("incomplete log row %s", sc.Bytes())
		}
		rows++
		labels += int64(row.Click)
	}
	if rows != imps || labels != clicks {
		t.Errorf("log rows %d clicks %d, report impressions %d clicks %d", rows, labels, imps, clicks)
	}
}

// Open loop: a target that answers 150 ms late gets the same send schedule as
// a fast one; the delay shows up as latency, not as a lower rate.
func TestOpenLoopSlowTarget(t *testing.T) {
	const delay = 150 * time.Millisecond
	measure := func(d time.Duration) *Report {
		sink := startSink(t, SinkConfig{Delay: d})
		return run(t, Config{Targets: []string{sink.URL()}, Rate: 200, Duration: time.Second, Seed: 9,
			TMax: 5 * time.Second, Notices: fastNotices})
	}
	fast, slow := measure(0), measure(delay)
	for _, rep := range []*Report{fast, slow} {
		// Poisson(200) in 1 s: the schedule is seeded, so both send the same count.
		if rep.Requests < 140 || rep.Requests > 260 || rep.Dropped != 0 || rep.LatencyUs.Count != rep.Requests {
			t.Errorf("sent %d (dropped %d, answered %d), want about 200 all answered", rep.Requests, rep.Dropped, rep.LatencyUs.Count)
		}
	}
	if fast.Requests != slow.Requests {
		t.Errorf("send count changed with target speed: fast %d, slow %d", fast.Requests, slow.Requests)
	}
	if us := slow.LatencyUs.P50; us < delay.Microseconds() {
		t.Errorf("slow target p50 %d us, want >= injected %v", us, delay)
	}
	if fast.LatencyUs.P50 >= slow.LatencyUs.P50 {
		t.Errorf("latency did not grow: fast p50 %d us, slow p50 %d us", fast.LatencyUs.P50, slow.LatencyUs.P50)
	}
}

func TestTimeoutsAfterTMax(t *testing.T) {
	sink := startSink(t, SinkConfig{Delay: 100 * time.Millisecond, BidProb: 1})
	f := func(grace time.Duration, wantLate bool) {
		t.Helper()
		rep := run(t, Config{Targets: []string{sink.URL()}, Rate: 100, Duration: 500 * time.Millisecond, Seed: 4,
			TMax: 20 * time.Millisecond, Grace: grace, Notices: fastNotices})
		c := rep.Counters
		if rep.Timeouts != rep.Requests || rep.Requests == 0 {
			t.Errorf("grace %v: timeouts %d of %d requests", grace, rep.Timeouts, rep.Requests)
		}
		if wantLate && (c.TimeoutsLate != rep.Requests || c.LateBids == 0 || rep.Wins != 0) {
			t.Errorf("grace %v: late answers %d, late bids %d, wins %d", grace, c.TimeoutsLate, c.LateBids, rep.Wins)
		}
		if !wantLate && c.TimeoutsNoAns != rep.Requests {
			t.Errorf("grace %v: unanswered %d of %d", grace, c.TimeoutsNoAns, rep.Requests)
		}
	}
	f(time.Second, true)
	f(10*time.Millisecond, false)
}

func TestInflightBoundDrops(t *testing.T) {
	sink := startSink(t, SinkConfig{Delay: 300 * time.Millisecond})
	rep := run(t, Config{Targets: []string{sink.URL()}, Rate: 200, Duration: 500 * time.Millisecond, Seed: 5,
		MaxInflight: 10, TMax: time.Second, Notices: fastNotices})
	// At most 10 at a time, each held >= 300 ms, in a 500 ms window: at most 2 full rounds plus one.
	if rep.Dropped == 0 || rep.Requests > 30 || rep.Counters.Scheduled != rep.Requests+rep.Dropped {
		t.Errorf("sent %d dropped %d scheduled %d with a bound of 10", rep.Requests, rep.Dropped, rep.Counters.Scheduled)
	}
}

func TestGenReplayRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := Generate(&buf, Config{Rate: 1000, Seed: 2}, 50); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := Generate(&again, Config{Rate: 1000, Seed: 2}, 50); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("gen is not deterministic for a seed")
	}
	src, err := NewReplaySource(bytes.NewReader(buf.Bytes()), 0, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	sink := startSink(t, SinkConfig{BidProb: 1})
	rep := run(t, Config{Targets: []string{sink.URL(), sink.URL()}, Rate: 100, Duration: 2 * time.Second, Source: src,
		TMax: time.Second, Notices: fastNotices})
	if rep.Requests != 100 || sink.BidRequests() != 100 || rep.Bids == 0 {
		t.Errorf("replayed %d (sink %d, bids %d), want 2 loops of 50", rep.Requests, sink.BidRequests(), rep.Bids)
	}
}

// Clicks follow the ground truth: over many impressions the observed CTR
// matches the mean true CTR.
func TestClicksFollowGroundTruth(t *testing.T) {
	sink := startSink(t, SinkConfig{BidProb: 1, Price: 5, Campaigns: 4})
	rep := run(t, Config{Targets: []string{sink.URL()}, Rate: 400, Duration: time.Second, Seed: 6, TMax: 3 * time.Second,
		Notices: fastNotices, RenderDelay: time.Millisecond, ClickDelay: time.Millisecond, Truth: GroundTruth{Base: 0.3, Seed: 1}})
	n := float64(rep.Impressions)
	if n < 100 {
		t.Fatalf("only %v impressions: %+v", n, rep.Counters)
	}
	p := *rep.TrueCTR
	if got, sd := *rep.ObservedCTR, math.Sqrt(p*(1-p)/n); math.Abs(got-p) > 4*sd {
		t.Errorf("observed CTR %.4f, mean true CTR %.4f (+- %.4f)", got, p, 4*sd)
	}
}

// An admin listener with a token: the run presents -admin-token, and one
// that does not answer stops the run before it sends anything. It went on
// and reported overspend 0 with every poll refused 401 (an outside audit).
func TestRunAdminToken(t *testing.T) {
	sink := startSink(t, SinkConfig{BidProb: 0.6, Price: 4, Campaigns: 2, Seed: 1})
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-0123456789abcdef" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"instance":"i-1","campaigns":[{"id":"camp-1","currency":"USD","total_budget_micros":1000,`+
			`"daily_budget_micros":1000,"spent_micros":900}]}`)
	}))
	t.Cleanup(admin.Close)
	cfg := Config{Targets: []string{sink.URL()}, Admin: []string{admin.URL}, Rate: 100, Duration: 200 * time.Millisecond, Seed: 3,
		Notices: fastNotices, RenderDelay: time.Millisecond, ClickDelay: time.Millisecond, TMax: 5 * time.Second}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("run against a refusing admin listener: %v, want an error naming the 401", err)
	}
	if sink.BidRequests() != 0 {
		t.Fatalf("the refused run sent %d requests", sink.BidRequests())
	}
	cfg.AdminToken = "tok-0123456789abcdef"
	rep := run(t, cfg)
	if len(rep.Admin) != 1 || len(rep.AdminErrors) != 0 {
		t.Fatalf("with the token: admin views %d, errors %v", len(rep.Admin), rep.AdminErrors)
	}
}

// A request the target never answers in time is the slowest of all: it
// counts in the latency percentiles at the time it was given up (tmax +
// grace after its scheduled send), not left out of them. A target that
// answers nothing in time must not report a p99 of 0.
func TestUnansweredCountInLatency(t *testing.T) {
	sink := startSink(t, SinkConfig{Delay: 200 * time.Millisecond})
	const tmax, grace = 20 * time.Millisecond, 10 * time.Millisecond
	rep := run(t, Config{Targets: []string{sink.URL()}, Rate: 100, Duration: 500 * time.Millisecond, Seed: 4,
		TMax: tmax, Grace: grace, Notices: fastNotices})
	if rep.Requests == 0 || rep.Counters.TimeoutsNoAns != rep.Requests {
		t.Fatalf("unanswered %d of %d requests", rep.Counters.TimeoutsNoAns, rep.Requests)
	}
	if rep.LatencyUs.Count != rep.Requests || rep.LatencyUs.P50 < (tmax+grace).Microseconds() {
		t.Errorf("latency from schedule %+v: want every one of %d requests at >= %v", rep.LatencyUs, rep.Requests, tmax+grace)
	}
	if rep.FromSendUs.Count != rep.Requests {
		t.Errorf("latency from send counts %d of %d requests", rep.FromSendUs.Count, rep.Requests)
	}
	var p99 int64
	for _, s := range rep.Timeline {
		p99 = max(p99, s.P99us)
	}
	if p99 < (tmax + grace).Microseconds() {
		t.Errorf("timeline p99 at most %d us, want >= %v", p99, tmax+grace)
	}
}
