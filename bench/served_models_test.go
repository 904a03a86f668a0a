package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/simulator"
)

// The bundled models, served the way the bidder serves them, on the
// simulator's traffic against the example campaigns: predictions stay in a
// sane range and their mean near the CTR the model was trained to (a model
// that extrapolates badly off its training distribution saturates here).
func TestServedModelsOnSimulatorTraffic(t *testing.T) {
	var gen bytes.Buffer
	if err := simulator.Generate(&gen, simulator.Config{Seed: 5}, 600); err != nil {
		t.Fatal(err)
	}
	snap, err := campaigns.LoadDir("../configs/campaigns", campaigns.WithSeat("openbidder"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []float32
	var p ortb.Parser
	var req ortb.Request
	var sc campaigns.Scratch
	base := make([]float32, features.Width)
	now := time.Date(2026, 6, 1, 15, 0, 0, 0, time.UTC)
	dec := json.NewDecoder(&gen)
	for dec.More() {
		var line simulator.GenLine
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		if err := p.Parse(line.Request, &req); err != nil {
			continue
		}
		for i := range req.Imps {
			cands := snap.Match(nil, &req, &req.Imps[i], now, &sc)
			if len(cands) == 0 {
				continue
			}
			features.ExtractImp(base, &req, &req.Imps[i], now, personalize(&req))
			for _, c := range cands {
				var w, h int64
				if len(c.Creative.Sizes) > 0 {
					w, h = c.Creative.Sizes[0].W, c.Creative.Sizes[0].H
				}
				ad := features.NewAd(c.Campaign.ID, c.Creative.ID, c.Campaign.Advertiser, c.Creative.MType(), int(w), int(h))
				rows = features.AppendRow(rows, base, &ad)
			}
		}
	}
	n := len(rows) / features.Width
	if n < 200 {
		t.Fatalf("only %d candidate rows from simulator traffic", n)
	}
	check := func(name string, s ctr.Scorer, m *ctr.Manifest) {
		t.Helper()
		out := make([]float32, n)
		if err := s.Score(time.Time{}, rows, out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var sum, hi float64
		for _, v := range out {
			sum += float64(v)
			hi = math.Max(hi, float64(v))
		}
		mean := sum / float64(n)
		trained, _ := m.Metrics["observed_ctr"].(float64)
		t.Logf("%s on %d rows: mean pCTR %.4f (training data CTR %.4f), max %.4f", name, n, mean, trained, hi)
		if hi > 0.5 || trained <= 0 || mean > 3*trained || mean < trained/3 {
			t.Errorf("%s: mean pCTR %.4f (max %.4f) against a training CTR of %.4f", name, mean, hi, trained)
		}
	}
	g, err := ctr.LoadGBDT("../configs/models/gbdt.manifest.json", features.SchemaVersion, features.Width)
	if err != nil {
		t.Fatal(err)
	}
	check("gbdt", g, g.Manifest())
	lib := os.Getenv("ORT_LIB")
	if lib == "" {
		lib = "../lib/onnxruntime/libonnxruntime.so.1"
	}
	if err := ctr.ONNXAvailable(lib); err != nil {
		t.Logf("onnx not checked: %v", err)
		return
	}
	x, err := ctr.LoadONNX("../configs/models/mlp.manifest.json", ctr.ONNXOptions{LibraryPath: lib, Provider: ctr.ProviderCPU,
		SchemaVersion: features.SchemaVersion, Width: features.Width})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	check("onnx", x, x.Manifest())
}
