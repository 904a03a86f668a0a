package bidder

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openbidder/openbidder/budget"
)

// metricsPage is the server's /metrics page, as the admin listener serves it.
func metricsPage(t testing.TB, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.metricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// collectFunc makes a collect method a Collector, for tests of one part.
type collectFunc func(chan<- prometheus.Metric)

func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
func (f collectFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }

// pageOf is the exposition of the collectors alone.
func pageOf(t testing.TB, cs ...prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// eachStatus walks status as budget.Manager.EachStatus walks its own.
func eachStatus(status []budget.CampaignStatus) func(func(*budget.CampaignStatus)) {
	return func(fn func(*budget.CampaignStatus)) {
		for i := range status {
			fn(&status[i])
		}
	}
}

// topCampaigns offers es to a firstN of n as a scrape does: the kept,
// sorted by id, and the entries left out, in no order.
func topCampaigns(es []campEntry, n int) (top, rest []campEntry) {
	f := newFirstN(n, (*campEntry).before)
	for _, e := range es {
		if out := f.offer(e); out != nil {
			rest = append(rest, *out)
		}
	}
	top = f.kept()
	slices.SortFunc(top, func(a, b campEntry) int { return strings.Compare(a.id, b.id) })
	return top, rest
}

// firstN keeps the n that rank first and leaves out each of the others
// exactly once, whatever the order they are offered in.
func TestTopCampaigns(t *testing.T) {
	spend := map[string]int64{"a": 5, "b": 9, "c": 5, "d": 0, "e": 9, "f": 1}
	ids := func(es []campEntry, sorted bool) string {
		var s []string
		for _, e := range es {
			s = append(s, e.id)
		}
		if sorted {
			slices.Sort(s)
		}
		return strings.Join(s, ",")
	}
	f := func(n int, wantTop, wantRest string) {
		t.Helper()
		var es []campEntry
		for id, v := range spend { // map order: a different input order each time
			es = append(es, campEntry{id: id, spent: v})
		}
		top, rest := topCampaigns(es, n)
		if got := ids(top, false); got != wantTop {
			t.Errorf("n=%d: top %s, want %s", n, got, wantTop)
		}
		if got := ids(rest, true); got != wantRest {
			t.Errorf("n=%d: rest %s, want %s (in any order)", n, got, wantRest)
		}
	}
	for range 20 { // map order does not change the choice
		f(0, "", "a,b,c,d,e,f")
		f(-1, "", "a,b,c,d,e,f")
		f(1, "b", "a,c,d,e,f")    // tie at 9: the lower id
		f(2, "b,e", "a,c,d,f")    // both at 9
		f(3, "a,b,e", "c,d,f")    // tie at 5: a in, c out; top sorted by id
		f(5, "a,b,c,e,f", "d")    // all but the lowest
		f(6, "a,b,c,d,e,f", "")   // everyone
		f(100, "a,b,c,d,e,f", "") // more room than campaigns
	}
	// Against a sort, on many campaigns with many ties.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 50, 499, 500} {
		es := make([]campEntry, 500)
		for i := range es {
			es[i] = campEntry{id: fmt.Sprintf("c%03d", rng.IntN(1000)), spent: int64(rng.IntN(20))}
		}
		want := slices.Clone(es)
		slices.SortFunc(want, func(a, b campEntry) int {
			if a.before(&b) {
				return -1
			}
			if b.before(&a) {
				return 1
			}
			return 0
		})
		top, rest := topCampaigns(es, n)
		if got, w := ids(top, true), ids(want[:n], true); got != w {
			t.Fatalf("n=%d: top %s, want %s", n, got, w)
		}
		if got, w := ids(rest, true), ids(want[n:], true); got != w {
			t.Fatalf("n=%d: left out %s, want %s", n, got, w)
		}
	}
}

// 10,000 campaigns make metrics.campaign_series campaigns of series plus
// one "other" whose counters are the sum of the rest, chosen by spend.
func TestCampaignSeriesBounded(t *testing.T) {
	const n, keep = 10_000, 5
	ts := newTestServer(t, func(c *Config) { c.Metrics.CampaignSeries = keep })
	var status []budget.CampaignStatus
	var bidsAll, impsAll uint64
	for i := range n {
		id := fmt.Sprintf("x%05d", i)
		st := ts.m.campaign(id)
		for range i % 4 {
			st.bid(i)
			bidsAll++
		}
		st.nobid(i, reasonBudget)
		st.imps.add(0, 2)
		impsAll += 2
		// Spend rises with i, and campaigns 9990..9999 tie in pairs.
		status = append(status, budget.CampaignStatus{ID: id, SpentMicros: int64(min(i, n-10)), HeldMicros: 1, Throttle: 0.5})
	}
	// Campaigns with bids and no money yet, and money with no bid-path
	// record: both rank with what they spent (nothing) and sum into other.
	for i := range 3 {
		ts.m.campaign(fmt.Sprintf("y%d", i)).bid(0)
		bidsAll++
	}
	for i := range 2 {
		status = append(status, budget.CampaignStatus{ID: fmt.Sprintf("z%d", i), HeldMicros: 1})
	}
	ts.campaignMoney = eachStatus(status)
	ss, err := ts.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range ss {
		if c, ok := s.Labels["campaign"]; ok {
			ids[c] = true
		}
	}
	// Spend n-10 for the last ten: the five lowest ids of them.
	want := []string{"other", "x09990", "x09991", "x09992", "x09993", "x09994"}
	if len(ids) != len(want) {
		t.Fatalf("%d campaign label values, want %d: %v", len(ids), len(want), ids)
	}
	for _, id := range want {
		if !ids[id] {
			t.Errorf("no series for %s: %v", id, ids)
		}
	}
	var bidsTop float64
	for _, id := range want[1:] {
		bidsTop += ss.Sum("openbidder_campaign_bids_total", "campaign", id)
	}
	if other := ss.Sum("openbidder_campaign_bids_total", "campaign", "other"); other+bidsTop != float64(bidsAll) || other == 0 {
		t.Errorf("bids: other %v + top %v, want %d in all", other, bidsTop, bidsAll)
	}
	if got := ss.Sum("openbidder_campaign_impressions_total"); got != float64(impsAll) {
		t.Errorf("impressions %v, want %d", got, impsAll)
	}
	if got, _ := ss.Value("openbidder_campaign_nobids_total", "campaign", "other", "reason", "budget"); got != n-keep {
		t.Errorf("other's budget no-bids %v, want %d", got, n-keep)
	}
	if got, _ := ss.Value("openbidder_budget_held_micros", "campaign", "other"); got != n-keep+2 {
		t.Errorf("other's holds %v, want %d (summed)", got, n-keep+2)
	}
	if _, ok := ss.Value("openbidder_budget_throttle", "campaign", "other"); ok {
		t.Error("a ratio summed into other")
	}
	if got, _ := ss.Value("openbidder_budget_throttle", "campaign", "x09993"); got != 0.5 {
		t.Errorf("top campaign's throttle %v", got)
	}
}

// Label values are escaped once, by the library; invalid UTF-8 is replaced
// rather than failing the scrape.
func TestLabelEscaping(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.m.campaign("q\"b\\s\nx").bid(0)
	ts.m.campaign("bad\xffutf8").bid(0)
	page := metricsPage(t, ts.Server)
	for _, want := range []string{
		`openbidder_campaign_bids_total{campaign="q\"b\\s\nx"} 1` + "\n",
		"openbidder_campaign_bids_total{campaign=\"bad\uFFFDutf8\"} 1\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// Every series is named for openbidder (or the library's go_ and process_),
// counters end in _total, histograms of time in _seconds, and the page has
// build info and the runtime's series.
func TestMetricNames(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.bidInTime(readReq(t, "site-banner.json"))
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		name, typ := mf.GetName(), mf.GetType().String()
		seen[name] = true
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !strings.HasPrefix(name, metricPrefix) {
			t.Errorf("%s: not prefixed %s", name, metricPrefix)
		}
		if (typ == "COUNTER") != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %s", name, typ)
		}
		if typ == "HISTOGRAM" && !strings.HasSuffix(name, "_seconds") && name != "openbidder_predicted_ctr" {
			t.Errorf("histogram %s without a unit", name)
		}
		for _, bad := range []string{"_ms", "millis", "_us_", "_bytes_total_"} {
			if strings.Contains(name, bad) {
				t.Errorf("%s: not a base unit", name)
			}
		}
	}
	for _, want := range []string{"openbidder_build_info", "go_goroutines", "go_memstats_alloc_bytes",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "openbidder_requests_total",
		"openbidder_request_duration_seconds", "openbidder_internal_budget_seconds"} {
		if !seen[want] {
			t.Errorf("no %s", want)
		}
	}
	ss, err := ts.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	b := Build()
	if v, ok := ss.Value("openbidder_build_info", "version", b.Version, "commit", b.Commit, "go", runtime.Version()); !ok || v != 1 {
		t.Errorf("build info %v %v", v, ok)
	}
}

// The Go accessor gives what the page says.
func TestMetricsSamplesAgreeWithPage(t *testing.T) {
	ts := newTestServer(t, nil)
	for range 3 {
		ts.bidInTime(readReq(t, "site-banner.json"))
	}
	ss, err := ts.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	page := metricsPage(t, ts.Server)
	for _, s := range ss {
		if !strings.HasPrefix(s.Name, metricPrefix) || s.Name == "openbidder_build_info" {
			continue
		}
		keys := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if i := slices.Index(keys, "le"); i >= 0 { // le is written last
			keys = append(append(keys[:i:i], keys[i+1:]...), "le")
		}
		var lb []string
		for _, k := range keys {
			lb = append(lb, fmt.Sprintf("%s=%q", k, s.Labels[k]))
		}
		line := s.Name
		if len(lb) > 0 {
			line += "{" + strings.Join(lb, ",") + "}"
		}
		line += " " + strconv.FormatFloat(s.Value, 'g', -1, 64) + "\n"
		if !strings.Contains(page, line) {
			t.Errorf("page lacks %q", line)
		}
	}
	if v, _ := ss.Value("openbidder_requests_total"); v != 3 {
		t.Errorf("requests %v", v)
	}
	if v, _ := ss.Value("openbidder_request_duration_seconds_count"); v != 3 {
		t.Errorf("latency count %v", v)
	}
	if q := ss.Quantile("openbidder_request_duration_seconds", 0.99); !(q > 0 && q <= 0.1) {
		t.Errorf("p99 %v", q)
	}
	if got := ss.Sum("openbidder_nobids_total") + ss.Sum("openbidder_bid_responses_total"); got != 3 {
		t.Errorf("answers %v", got)
	}
}

func TestSamplesQuantile(t *testing.T) {
	b := func(le string, v float64) Sample {
		return Sample{Name: "h_bucket", Labels: map[string]string{"le": le}, Value: v}
	}
	ss := Samples{b("+Inf", 100), b("0.1", 90), b("0.01", 50), b("1", 100)}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.01}, {0.25, 0.005}, {0.7, 0.055}, {0.95, 0.55}, {1, 1}} {
		if got := ss.Quantile("h", c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (Samples{b("1", 0), b("+Inf", 0)}).Quantile("h", 0.5); !math.IsNaN(got) {
		t.Errorf("empty: %v", got)
	}
	if got := (Samples{b("1", 1), b("+Inf", 5)}).Quantile("h", 0.9); got != 1 {
		t.Errorf("above the highest bound: %v, want 1", got)
	}
}

// A scrape of a bidder with 10,000 campaigns (50 with series of their own)
// and the same scrape with every campaign in its own series, as before the
// bound (campaign_series 10000).
func BenchmarkScrape10kCampaigns(b *testing.B) {
	for _, keep := range []int{50, 10_000} {
		b.Run(fmt.Sprintf("series=%d", keep), func(b *testing.B) {
			ts := newTestServer(b, func(c *Config) { c.Metrics.CampaignSeries = keep })
			status := make([]budget.CampaignStatus, 10_000)
			for i := range status {
				id := fmt.Sprintf("x%05d", i)
				st := ts.m.campaign(id)
				st.bid(i)
				st.nobid(i, reasonPaced)
				status[i] = budget.CampaignStatus{ID: id, SpentMicros: int64(i * 7 % 1000)}
			}
			ts.campaignMoney = eachStatus(status)
			h := ts.metricsHandler()
			req := httptest.NewRequest("GET", "/metrics", nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				b.SetBytes(int64(rec.Body.Len()))
			}
		})
	}
}

// Counters of campaigns the published set has not had for
// campaignSweepAfter are swept (an outside audit: every id ever loaded kept
// its counters, heap 86 -> 120 MiB over 12 reloads of 1,000 new ids): their
// line goes to the next new campaign, zeroed, and their counts to
// campaign="other", which the sweep does not lower.
func TestSweptCampaignCountersStayInOther(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Metrics.CampaignSeries = 1 })
	m := ts.m
	for i, id := range []string{"keep", "old1", "old2"} {
		st := m.campaign(id)
		for range 3 + i {
			st.bid(0)
		}
		st.imps.add(0, 1)
	}
	ts.campaignMoney = eachStatus([]budget.CampaignStatus{{ID: "keep", SpentMicros: 10}})
	scrape := func() (other, all float64) {
		ss, err := ts.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		return ss.Sum("openbidder_campaign_bids_total", "campaign", "other"), ss.Sum("openbidder_campaign_bids_total")
	}
	other0, all0 := scrape()
	if other0 != 9 || all0 != 12 {
		t.Fatalf("before: other %v, all %v; want 9 and 12", other0, all0)
	}
	snap := ts.catalog.Load().snap // the test server's own campaigns stay
	live := func(id string) bool { return id == "keep" || snap.Campaign(id) != nil }
	t0 := time.Now()
	if n := m.sweepCampaigns(live, t0); n != 0 {
		t.Fatalf("%d swept the first time they were seen missing, want 0", n)
	}
	if n := m.sweepCampaigns(live, t0.Add(campaignSweepAfter-time.Second)); n != 0 {
		t.Fatalf("%d swept before campaignSweepAfter, want 0", n)
	}
	if n := m.sweepCampaigns(live, t0.Add(campaignSweepAfter)); n != 2 {
		t.Fatalf("%d swept after campaignSweepAfter, want 2", n)
	}
	if m.campaigns["old1"] != nil || m.campaigns["old2"] != nil || m.campaigns["keep"] == nil || len(m.free) != 2 {
		t.Fatalf("records %v, %d free lines after the sweep; want old1 and old2 gone, keep kept, 2 free", m.campaigns, len(m.free))
	}
	if other, all := scrape(); other != other0 || all != all0 {
		t.Fatalf("after the sweep: other %v, all %v; want %v and %v (a counter must not go down)", other, all, other0, all0)
	}
	// A new campaign takes a swept line, zeroed; its bids count anew.
	st := m.campaign("new")
	if st.bids() != 0 || len(m.free) != 1 {
		t.Fatalf("a new campaign on a swept line starts at %d bids (%d free), want 0", st.bids(), len(m.free))
	}
	st.bid(1)
	if other, all := scrape(); other != other0+1 || all != all0+1 {
		t.Fatalf("after a new campaign's bid: other %v, all %v; want %v and %v", other, all, other0+1, all0+1)
	}
	// One back in the published set before the sweep is not swept.
	m.campaign("back")
	m.sweepCampaigns(live, t0.Add(2*campaignSweepAfter))
	m.campaign("back")
	if n := m.sweepCampaigns(func(id string) bool { return live(id) || id == "back" }, t0.Add(4*campaignSweepAfter)); n != 1 {
		t.Fatalf("%d swept, want 1 (new, not back)", n)
	}
}
