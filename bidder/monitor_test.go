package bidder

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
)

func TestMonitorHistogramDriftAndShadow(t *testing.T) {
	const width = 40
	train := make([]float32, 1000*width)
	for i := range train {
		train[i] = float32(i % 7)
	}
	fs, err := ctr.ComputeFeatureStats(train, width, 5, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mo monitor
	d, _ := ctr.NewDrift(fs, width)
	mo.drift.Store(d)
	sh := newShadow(&fixedScorer{p: 0.05}, "shadow-test")
	mo.shadow.Store(sh)
	done := make(chan struct{})
	defer close(done)
	go sh.run(done)

	bc := &bidCtx{rows: make([]float32, 2*width), pctr: []float32{0.02, 0.3}}
	var calls, samples int
	for ns := int64(0); samples < 2; ns++ {
		bc.now = time.Unix(0, ns)
		if sampled(bc.now) {
			samples++
		}
		mo.observe(bc)
		calls++
	}
	if d.Rows() != 4 { // sampled twice, two rows each
		t.Fatalf("drift rows %d, want 4", d.Rows())
	}
	waitFor(t, 5*time.Second, func() bool { return sh.scored.Load() == 4 })
	// |0.05-0.02| + |0.05-0.3| = 0.28 per sample, two samples.
	if got := float64(sh.absDiff.Load()) / 1e6; got < 0.559 || got > 0.561 {
		t.Fatalf("shadow abs diff %v, want 0.56", got)
	}
	out := pageOf(t, collectFunc(mo.collect))
	for _, want := range []string{
		fmt.Sprintf(`openbidder_predicted_ctr_bucket{le="0.02"} %d`, calls), // every 0.02 prediction
		fmt.Sprintf(`openbidder_predicted_ctr_count %d`, 2*calls),
		`openbidder_feature_psi{group="",slot="0"}`,
		`openbidder_shadow_rows_total{shadow="shadow-test"} 4`,
		`openbidder_feature_drift_rows_total 4`,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("metrics lack %q:\n%s", want, out)
		}
	}
	// A model reload replaces the drift counters; the rows total goes on
	// from where it was (it started again at 0: an outside audit saw it
	// fall from 28,297 to 114), also while a model without feature
	// statistics measures no drift.
	log := slog.New(slog.DiscardHandler)
	mo.setDrift(&ctr.Manifest{FeatureStats: fs}, width, log)
	for n := 0; n < 1; bc.now = bc.now.Add(1) {
		if sampled(bc.now) {
			n++
		}
		mo.observe(bc)
	}
	if out := pageOf(t, collectFunc(mo.collect)); !strings.Contains(out, "openbidder_feature_drift_rows_total 6\n") {
		t.Fatalf("after a reload, want drift rows 4 + 2:\n%s", out)
	}
	mo.setDrift(&ctr.Manifest{}, width, log)
	if out := pageOf(t, collectFunc(mo.collect)); !strings.Contains(out, "openbidder_feature_drift_rows_total 6\n") {
		t.Fatalf("with no drift measured, want the rows counted so far, 6:\n%s", out)
	}
}

// The shadow model runs beside the real server and shows in /metrics.
//
// The test bids until a request is sampled (about 1 in 64), with no notice
// for any bid: under the testdata's even pacing those open holds put acme
// ahead of its plan within a second or two, and its pacer answers 204
// paced (no scoring, no shadow row) before a slow run's sample came (1 run
// in 20 under -race and load). Pacing is not under test here: acme bids
// asap.
func TestShadowModelEndToEnd(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), append(src, "pacing: {mode: asap}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, func(c *Config) {
		c.CampaignsDir = dir
		c.Model.Shadow = "../configs/models/gbdt.manifest.json"
	})
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	shadowed := func() bool {
		_, m := get(t, "http://"+app.AdminAddr()+"/metrics")
		return regexp.MustCompile(`openbidder_shadow_rows_total\{shadow="[^"]+"\} [1-9]`).Match(m)
	}
	// About one request in 64 is sampled: send until one was, within bounds.
	for i := 0; i < 4000 && !shadowed(); i++ {
		for j := 0; j < 16; j++ {
			if code, _, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body); code != 200 {
				t.Fatalf("bid %d: %d %s", i, code, why)
			}
		}
	}
	waitFor(t, 10*time.Second, shadowed)
}

// A shadow model answering a pCTR outside [0, 1] (NaN: a candidate model
// with a NaN weight) is counted as a shadow error, not summed: a NaN went
// into the shadow's sums as 2^63 millionths (9.2e12) and its error counter
// stayed 0, so the comparison meant to vet a model before it serves hid
// the one thing that would disqualify it (an outside audit).
func TestShadowAnsweringNaNIsAnError(t *testing.T) {
	for _, p := range []float32{float32(math.NaN()), -1, 2} {
		sh := newShadow(&fixedScorer{p: p}, "shadow-nan")
		done := make(chan struct{})
		go sh.run(done)
		sh.offer(make([]float32, 2*sh.width), []float32{0.02, 0.3})
		waitFor(t, 5*time.Second, func() bool { return sh.errs.Load()+sh.scored.Load() > 0 })
		close(done)
		if sh.errs.Load() != 1 || sh.scored.Load() != 0 || sh.sumSh.Load() != 0 || sh.absDiff.Load() != 0 {
			t.Errorf("shadow answering %v: errors %d, rows %d, sum %d, abs diff %d; want one error and nothing summed",
				p, sh.errs.Load(), sh.scored.Load(), sh.sumSh.Load(), sh.absDiff.Load())
		}
	}
}
