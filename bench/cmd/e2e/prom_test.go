package main

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// metricsText writes a /metrics page with the bidder's latency buckets
// (bounds in seconds) holding counts (cumulative, as Prometheus writes them).
func metricsText(requests, bids float64, bounds []float64, perBucket []float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP openbidder_requests_total Bid requests received.\n# TYPE openbidder_requests_total counter\nopenbidder_requests_total %g\n", requests)
	fmt.Fprintf(&b, "openbidder_bid_responses_total %g\n", bids)
	fmt.Fprintf(&b, "openbidder_nobids_total{reason=\"deadline\"} %g\nopenbidder_nobids_total{reason=\"tmax\"} 0\n", requests-bids)
	cum := 0.0
	for i, le := range bounds {
		cum += perBucket[i]
		fmt.Fprintf(&b, "%s_bucket{le=\"%g\"} %g\n", latencyHist, le, cum)
	}
	cum += perBucket[len(bounds)]
	fmt.Fprintf(&b, "%s_bucket{le=\"+Inf\"} %g\n%s_sum 1.5\n%s_count %g\n", latencyHist, cum, latencyHist, latencyHist, cum)
	b.WriteString("openbidder_campaign_bids_total{campaign=\"gen-00001\"} 7\n")
	b.WriteString("openbidder_model_info{chain=\"mlp>gbdt-sim-v2\",provider=\"cpu\"} 1\n")
	return b.String()
}

var bounds = []float64{50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 10e-3, 20e-3, 50e-3, 100e-3}

// The percentiles of a step come from the difference of two scrapes: what
// was there before does not count.
func TestHistogramDifference(t *testing.T) {
	before := make([]float64, len(bounds)+1)
	before[14] = 500 // 50-100 ms, before the step: must not show
	before[2] = 10_000
	after := make([]float64, len(bounds)+1)
	copy(after, before)
	// The step: 1,000 requests, 900 in (100, 200] us, 90 in (0.75, 1] ms,
	// 9 in (2, 3] ms, 1 in (10, 20] ms.
	after[2] += 900
	after[6] += 90
	after[8] += 9
	after[12] += 1
	b, err := parseMetrics(strings.NewReader(metricsText(20_000, 19_000, bounds, before)), bidderSeries...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := parseMetrics(strings.NewReader(metricsText(21_000, 19_990, bounds, after)), bidderSeries...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a[`openbidder_campaign_bids_total{campaign="gen-00001"}`]; ok {
		t.Error("per-campaign series kept")
	}
	d := a.sub(b)
	req, bids, share := bidCounts(d)
	if req != 1000 || bids != 990 || share != 0.99 {
		t.Errorf("requests %v bids %v share %v", req, bids, share)
	}
	if nb := d.byLabel("openbidder_nobids_total", "reason"); len(nb) != 1 || nb["deadline"] != 10 {
		t.Errorf("no-bids %v", nb)
	}
	h, err := histogramOf(d, latencyHist)
	if err != nil {
		t.Fatal(err)
	}
	s := summarise(h)
	want := []struct {
		name   string
		got    bucketQ
		lo, hi float64
	}{{"p50", s.P50, 100, 200}, {"p99", s.P99, 750, 1000}, {"p99.9", s.P999, 2000, 3000}, {"max", s.Max, 10000, 20000}}
	for _, w := range want {
		if w.got.Lo != w.lo || w.got.Hi != w.hi || w.got.Est <= w.lo || w.got.Est > w.hi {
			t.Errorf("%s: bucket (%v, %v] est %v, want (%v, %v]", w.name, w.got.Lo, w.got.Hi, w.got.Est, w.lo, w.hi)
		}
	}
	if s.Count != 1000 || s.Over10ms != 1 || s.Over10msMaybe != 0 {
		t.Errorf("count %v, over 10 ms %v (maybe %v)", s.Count, s.Over10ms, s.Over10msMaybe)
	}
	if len(s.Bounds) != len(bounds) {
		t.Errorf("bounds %v", s.Bounds)
	}
	// The estimate interpolates: p50 is the 500th of 900 in (100, 200].
	if math.Abs(s.P50.Est-(100+100*500.0/900)) > 1e-6 {
		t.Errorf("p50 estimate %v", s.P50.Est)
	}
	m := modelOf(a, d)
	if m.Chain != "mlp>gbdt-sim-v2" || m.Provider != "cpu" {
		t.Errorf("model %+v", m)
	}
}

func TestQuantileEdges(t *testing.T) {
	h := histogram{{0, 0.001, 0}, {0.001, 0.01, 0}, {0.01, math.Inf(1), 3}}
	b, est, ok := h.Quantile(0.99)
	if !ok || !math.IsInf(b.Upper, 1) || est != 0.01 {
		t.Errorf("+Inf bucket: %+v %v %v", b, est, ok)
	}
	if q := summarise(h).P99; q.Hi != -1 || q.Lo != 10000 || q.String() != ">10.00ms" {
		t.Errorf("+Inf percentile %+v %s", q, q)
	}
	if _, _, ok := (histogram{{0, 1, 0}}).Quantile(0.5); ok {
		t.Error("empty histogram has a quantile")
	}
	if _, err := histogramOf(series{"openbidder_requests_total": 3}, latencyHist); !errors.Is(err, errNoHistogram) {
		t.Errorf("no histogram: %v", err)
	}
	// 10 ms straddled by a (5, 20] bucket: maybe, not known.
	known, maybe := histogram{{0, 0.005, 4}, {0.005, 0.02, 2}, {0.02, math.Inf(1), 1}}.Over(10 * time.Millisecond)
	if known != 1 || maybe != 2 {
		t.Errorf("over 10 ms: known %v maybe %v", known, maybe)
	}
}

// A percentile known only to a bucket passes a limit when the bucket's
// upper bound is within it, fails when its lower bound is not below it, and
// is unknown when the bucket straddles it.
func TestBucketAtMost(t *testing.T) {
	for _, c := range []struct {
		b       bucketQ
		yes, ok bool
	}{
		{bucketQ{Lo: 750, Hi: 1000}, true, true},
		{bucketQ{Lo: 1000, Hi: 2000}, false, true},
		{bucketQ{Lo: 500, Hi: 2000}, false, false},
		{bucketQ{Lo: 100000, Hi: -1}, false, true},
	} {
		if yes, ok := c.b.atMost(time.Millisecond); yes != c.yes || ok != c.ok {
			t.Errorf("%+v: %v %v, want %v %v", c.b, yes, ok, c.yes, c.ok)
		}
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, in := range []string{"openbidder_requests_total\n", "openbidder_requests_total x\n"} {
		if _, err := parseMetrics(strings.NewReader(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	s, err := parseMetrics(strings.NewReader("# HELP x y\nopenbidder_x{a=\"b c\"} 2\n\n"))
	if err != nil || s[`openbidder_x{a="b c"}`] != 2 {
		t.Errorf("%v %v", s, err)
	}
}
