package ctr

import (
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

// The bundled fallback GBDTs: the independent one (trained on clicks,
// gbdt_train.py) and the distilled one (trained on the ONNX model's
// predictions, ctr/train/distill.py). model.gbdt names the one the bidder
// falls back to.
const (
	distillIndependent = "../configs/models/gbdt.manifest.json"
	distillDistilled   = "../configs/models/gbdt_distilled.manifest.json"
	distillONNX        = "../configs/models/mlp.manifest.json"
	distillSample      = "testdata/distill_sample.json"
)

// distillMaxMeanRel bounds the distilled model's mean relative difference
// from the ONNX model on the committed sample, |p_gbdt - p_onnx| / p_onnx:
// the mean relative bid change when the bidder falls back. The issue's
// target is 2%. The distilled fallback carries the ONNX model's wide table
// (its wide_part) and 20 trees on the residual: measured 0.0002% over the
// 987,827 held-out rows (configs/models/DISTILL.md); the independent GBDT
// 16.3% there and 16.7% on the sample; the first distilled model, 300 trees
// and no table, 6.06% and 5.6%.
const distillMaxMeanRel = 0.02

type distillRows struct {
	TeacherSHA256 string      `json:"teacher_sha256"`
	Width         int         `json:"width"`
	Inputs        [][]float64 `json:"inputs"`
	ONNX          []float64   `json:"onnx"`
	Labels        []int       `json:"labels"`
}

func distillLoadSample(t *testing.T) (rows []float32, onnx []float64, sha string) {
	t.Helper()
	b, err := os.ReadFile(distillSample)
	if err != nil {
		t.Fatal(err)
	}
	var s distillRows
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Width != features.Width || len(s.Inputs) != len(s.ONNX) || len(s.Inputs) < 100 {
		t.Fatalf("sample: width %d, %d rows, %d predictions", s.Width, len(s.Inputs), len(s.ONNX))
	}
	for _, r := range s.Inputs {
		for _, v := range r {
			rows = append(rows, float32(v))
		}
	}
	return rows, s.ONNX, s.TeacherSHA256
}

// meanRel is the mean of |p - q| / q.
func meanRel(p []float32, q []float64) float64 {
	var sum float64
	for i := range q {
		sum += math.Abs(float64(p[i])-q[i]) / q[i]
	}
	return sum / float64(len(q))
}

// The distilled GBDT, loaded through the serving loader (schema, sha256 of
// both files, its parity file checked), agrees with the ONNX model within
// distillMaxMeanRel on held-out rows; the independent GBDT does not, so the
// check tells the two apart.
func TestDistilledGBDTAgreesWithONNX(t *testing.T) {
	rows, onnx, teacherSHA := distillLoadSample(t)
	m, err := LoadManifest(distillONNX)
	if err != nil {
		t.Fatal(err)
	}
	if teacherSHA != m.SHA256 {
		t.Fatalf("sample made with ONNX model %s, served one is %s: retrain the distilled model (make distill)", teacherSHA, m.SHA256)
	}
	for _, tc := range []struct {
		manifest string
		agrees   bool
	}{
		{distillDistilled, true},
		{distillIndependent, false},
	} {
		g, err := LoadGBDT(tc.manifest, features.SchemaVersion, features.Width)
		if err != nil {
			t.Fatalf("%s: %v", tc.manifest, err)
		}
		out := make([]float32, len(onnx))
		if err := g.Score(time.Time{}, rows, out); err != nil {
			t.Fatal(err)
		}
		rel := meanRel(out, onnx)
		t.Logf("%s (%s): mean |p - p_onnx| / p_onnx = %.4f over %d rows", g.Manifest().Name, tc.manifest, rel, len(onnx))
		if got := rel < distillMaxMeanRel; got != tc.agrees {
			t.Errorf("%s: mean relative difference from ONNX %.4f, want below %v: %v", tc.manifest, rel, distillMaxMeanRel, tc.agrees)
		}
	}
}

// The sample's ONNX predictions are what the served ONNX model computes
// now (skipped without ONNX Runtime).
func TestDistillSampleMatchesServedONNX(t *testing.T) {
	rows, onnx, _ := distillLoadSample(t)
	x := onnxTestLoad(t, distillONNX, ONNXOptions{SchemaVersion: features.SchemaVersion, Width: features.Width})
	got := make([]float32, len(onnx))
	if err := x.Score(time.Now().Add(time.Minute), rows, got); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(onnx))
	for i, v := range onnx {
		want[i] = float32(v)
	}
	if err := onnxCheckParity("mlp", got, want, 1e-5); err != nil {
		t.Fatal(err)
	}
}

// The distilled fallback is what the bidder scores with when ONNX Runtime is
// absent (a chain with no primary): it needs nothing from ONNX Runtime (the
// wide table is its own file, read by ctr) and still agrees with the ONNX
// model within distillMaxMeanRel. Without its wide part, the 20 trees alone
// (trained on the residual) do not come close: the table is what agrees.
func TestDistilledFallbackWithoutONNXRuntime(t *testing.T) {
	rows, onnx, _ := distillLoadSample(t)
	g, err := LoadGBDT(distillDistilled, features.SchemaVersion, features.Width)
	if err != nil {
		t.Fatal(err)
	}
	if g.wide == nil {
		t.Fatalf("%s has no wide part", distillDistilled)
	}
	c, err := NewChain(nil, g)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(onnx))
	if err := c.Score(time.Now().Add(time.Minute), rows, out); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Fallback != 1 || st.Primary != 0 {
		t.Fatalf("chain stats %+v: want one call answered by the fallback", st)
	}
	if rel := meanRel(out, onnx); !(rel < distillMaxMeanRel) {
		t.Errorf("fallback without ONNX Runtime: mean relative difference %.6f, want below %v", rel, distillMaxMeanRel)
	}
	fv := make([]float64, g.Width())
	var raw [1]float64
	for i := range out {
		for j, v := range rows[i*g.Width() : (i+1)*g.Width()] {
			fv[j] = float64(v)
		}
		if err := g.ens.Predict(fv, 0, raw[:]); err != nil {
			t.Fatal(err)
		}
		out[i] = float32(gbdtSigmoid(raw[0]))
	}
	if rel := meanRel(out, onnx); rel < 0.5 {
		t.Errorf("the trees alone: mean relative difference %.4f; the wide part should carry the model", rel)
	}
}
