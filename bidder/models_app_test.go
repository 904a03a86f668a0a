package bidder

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// model.variant int8 starts the bidder on the int8 manifest (its parity
// sample checked at load), fp32 on the float32 one.
func TestAppServesSelectedVariant(t *testing.T) {
	lib := cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
	if err := ctr.ONNXAvailable(lib); err != nil {
		t.Skip("no ONNX Runtime:", err)
	}
	for _, c := range []struct{ variant, want string }{{"fp32", "mlp"}, {"int8", "mlp_int8"}} {
		app := startApp(t, func(cfg *Config) {
			cfg.Model.ONNXInt8, cfg.Model.Variant = "../configs/models/mlp_int8.manifest.json", c.variant
			cfg.Model.ONNXLibrary, cfg.Model.Provider = lib, "cpu"
		})
		if app.onnx == nil {
			t.Fatalf("variant %s: no onnx model served", c.variant)
		}
		if got := app.scoringModel(ctr.ScoredPrimary); got != c.want {
			t.Errorf("variant %s: serving %q, want %q", c.variant, got, c.want)
		}
	}
}

// With model.row_log set, the started bidder writes a record per bid with
// the serving model's name, and closes the file on Close.
func TestAppRowLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows", "rows.bin")
	app := startApp(t, func(c *Config) { c.Model.RowLog = RowLogConfig{Path: path} })
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, resp, reason := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body); code != 200 {
		t.Fatalf("status %d %s %s", code, reason, resp)
	}
	serving := app.scoringModel(ctr.ScoredPrimary)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}
	width, schema, recs, torn := readRowLog(t, path)
	if width != features.Width || schema != features.SchemaVersion || torn || len(recs) != 1 {
		t.Fatalf("width %d schema %q torn %v records %d", width, schema, torn, len(recs))
	}
	if r := recs[0]; r.Auction != "req-site-banner" || r.Model != serving || r.PCTR <= 0 {
		t.Fatalf("record %+v, serving %q", r, serving)
	}
}

// The ONNX batcher's figures are on /metrics: a bid scored by the ONNX
// model shows up as one more run, with its rows and its call.
func TestAppExposesBatcherMetrics(t *testing.T) {
	lib := cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
	if err := ctr.ONNXAvailable(lib); err != nil {
		t.Skip("no ONNX Runtime:", err)
	}
	app := startApp(t, func(cfg *Config) { cfg.Model.ONNXLibrary, cfg.Model.Provider = lib, "cpu" })
	series := func() map[string]float64 {
		_, b := get(t, "http://"+app.AdminAddr()+"/metrics")
		out := map[string]float64{}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[0], "openbidder_model_") {
				v, _ := strconv.ParseFloat(f[1], 64)
				out[f[0]] = v
			}
		}
		return out
	}
	before := series()
	bidOnce(t, app, "req-site-banner")
	after := series()
	scored := after[`openbidder_model_scored_total{scorer="primary"}`] - before[`openbidder_model_scored_total{scorer="primary"}`]
	// bidOnce posts again after a 204 for want of time (a loaded machine),
	// and such a request may have been scored: each scoring call is one
	// request to the batcher, in a run of its own here.
	if scored < 1 {
		t.Fatalf("primary scored %v calls, want at least 1 (is ONNX serving?)", scored)
	}
	for name, want := range map[string]float64{
		"openbidder_model_batch_rows_count":             scored,
		"openbidder_model_batch_requests_total":         scored,
		`openbidder_model_batch_rows_bucket{le="+Inf"}`: scored,
	} {
		if d := after[name] - before[name]; d != want {
			t.Errorf("%s rose by %v, want %v", name, d, want)
		}
	}
	if rows := after["openbidder_model_batch_rows_sum"] - before["openbidder_model_batch_rows_sum"]; rows < 1 {
		t.Errorf("rows in the run: %v", rows)
	}
	if after["openbidder_model_batch_run_seconds_total"] <= before["openbidder_model_batch_run_seconds_total"] {
		t.Error("run time did not grow")
	}
}

// An ONNX model refused at start stays watched: the bidder scores with GBDT
// (the chain says none>gbdt, the refusal is counted) and loads the model
// once its files are fixed, with no restart. Before, a model refused at
// start was never tried again and no refusal was counted (an outside audit).
func TestAppONNXRefusedAtStartLoadsWhenFixed(t *testing.T) {
	lib := cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
	if err := ctr.ONNXAvailable(lib); err != nil {
		t.Skip("no ONNX Runtime:", err)
	}
	dir := t.TempDir()
	for _, f := range []string{"mlp.manifest.json", "mlp.onnx", "mlp.parity.json", "gbdt.manifest.json", "gbdt.txt", "gbdt.parity.json"} {
		b, err := os.ReadFile(filepath.Join("../configs/models", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "mlp.onnx" {
			b = []byte("not a model")
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := startApp(t, func(cfg *Config) {
		cfg.Model.GBDT, cfg.Model.ONNX = filepath.Join(dir, "gbdt.manifest.json"), filepath.Join(dir, "mlp.manifest.json")
		cfg.Model.ONNXLibrary, cfg.Model.Provider = lib, "cpu"
	})
	gbdt := app.gbdt.Name()
	if got := app.chain.Name(); got != "none>"+gbdt {
		t.Fatalf("chain %q with the ONNX model refused, want none>%s", got, gbdt)
	}
	if st := app.onnx.Stats(); st.Refused != 1 || st.Reloads != 0 {
		t.Fatalf("onnx holder %+v, want one refusal", st)
	}
	if got := app.scoringModel(ctr.ScoredPrimary); got != gbdt {
		t.Fatalf("serving %q, want %q", got, gbdt)
	}
	// The slack trim follows GBDT, which scores: the holder with no model
	// predicts 0 and is passed over (a review found the trim off).
	const rows = 100_000
	if slack := app.gbdt.PredictLatency(rows) / 2; slack > 0 && app.Server.scorer.Load().fits(rows, slack) {
		t.Fatalf("fits(%d rows, %v) with GBDT predicting %v: the slack trim is off", rows, slack, app.gbdt.PredictLatency(rows))
	}
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body); code != 200 {
		t.Fatalf("bid with GBDT only: %d %s", code, why)
	}
	good, err := os.ReadFile("../configs/models/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mlp.onnx"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for app.onnx.Current() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the fixed ONNX model was not loaded: %+v", app.onnx.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, want := app.chain.Name(), app.onnx.Name()+">"+gbdt; got != want || !strings.HasPrefix(got, "mlp") {
		t.Fatalf("chain %q after the fix, want %q", got, want)
	}
	before := app.chain.Stats().Primary
	if code, _, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body); code != 200 {
		t.Fatalf("bid after the fix: %d %s", code, why)
	}
	if app.chain.Stats().Primary <= before {
		t.Fatal("the bid after the fix was not scored by the ONNX model")
	}
}

// model_info tells an ONNX model configured without a runtime library that
// loads (provider "unavailable": GBDT alone serves until a restart) from
// GBDT only on purpose (provider off: "none"). Both said "none", and no
// alert fired for a missing or wrong-version library (an outside audit).
func TestModelInfoTellsAMissingRuntimeFromGBDTOnPurpose(t *testing.T) {
	for _, c := range []struct{ provider, want string }{{"auto", "unavailable"}, {"off", "none"}} {
		app := startApp(t, func(cfg *Config) {
			cfg.Model.ONNXLibrary = filepath.Join(t.TempDir(), "libonnxruntime.so.1")
			cfg.Model.Provider = c.provider
		})
		series := `openbidder_model_info{chain="none>` + app.gbdt.Name() + `",provider="` + c.want + `"}`
		if got := metricValue(t, app, series); got != 1 {
			t.Errorf("provider %s: %s = %v, want 1", c.provider, series, got)
		}
	}
}
