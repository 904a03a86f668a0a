package ctr

import (
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

// compactPairs are the float32 models and their int8 variants
// (ctr/train/compact.py): the served model, and the tiny test model, whose
// deep part is live and stays float32 beside the int8 wide table.
var compactPairs = []struct{ fp32, int8 string }{
	{onnxTinyManifest, "testdata/mlp_tiny_int8.manifest.json"},
	{"../configs/models/mlp.manifest.json", "../configs/models/mlp_int8.manifest.json"},
}

// compactScales reads extra.compact of a compact manifest: its dtype and the
// scale of every table.
func compactScales(t *testing.T, m *Manifest) (string, []float64) {
	t.Helper()
	var extra struct {
		Compact struct {
			DType  string             `json:"dtype"`
			Scales map[string]float64 `json:"scales"`
		} `json:"compact"`
	}
	if err := json.Unmarshal(m.Extra, &extra); err != nil {
		t.Fatal(err)
	}
	var s []float64
	for _, v := range extra.Compact.Scales {
		s = append(s, v)
	}
	return extra.Compact.DType, s
}

func logit32(p float32) float64 { return math.Log(float64(p) / (1 - float64(p))) }

// An int8 variant loads through the same path as its float32 source (same
// input form and inputs, its own parity sample checked at load within
// 1e-6), and on the parity rows and edge rows its logit is within the
// quantization's bound of the source's: each of the wide_ids columns reads
// one table whose weights are rounded to a multiple of its scale, so no
// logit moves by more than the sum of half-scales.
func TestONNXCompactVariantAgreesWithSource(t *testing.T) {
	for _, pair := range compactPairs {
		src := onnxTestLoad(t, pair.fp32, ONNXOptions{MaxBatch: 64, SchemaVersion: features.SchemaVersion, Width: features.Width})
		q := onnxTestLoad(t, pair.int8, ONNXOptions{MaxBatch: 64, SchemaVersion: features.SchemaVersion, Width: features.Width})
		ms, mq := src.Manifest(), q.Manifest()
		if mq.InputForm != InputWideDeepIDs || mq.Width != ms.Width || mq.SchemaVersion != ms.SchemaVersion {
			t.Fatalf("%s: form %s width %d schema %s", pair.int8, mq.InputForm, mq.Width, mq.SchemaVersion)
		}
		dtype, scales := compactScales(t, mq)
		if dtype != "int8" || len(scales) != mq.conv.wideWidth() {
			t.Fatalf("%s: dtype %q, %d scales for %d wide columns", pair.int8, dtype, len(scales), mq.conv.wideWidth())
		}
		bound := 1e-4 // float32 rounding of the logit and of the sigmoid
		for _, s := range scales {
			bound += s / 2
		}
		par, _, err := onnxLoadParity(ms.Path(ms.Parity), features.Width)
		if err != nil {
			t.Fatal(err)
		}
		rows := onnxTestEdgeRows(par)
		n := len(rows) / features.Width
		a, b := make([]float32, n), make([]float32, n)
		if err := src.Score(time.Time{}, rows, a); err != nil {
			t.Fatal(err)
		}
		if err := q.Score(time.Time{}, rows, b); err != nil {
			t.Fatal(err)
		}
		worst, differ := 0.0, 0
		for i := range a {
			if a[i] != b[i] {
				differ++
			}
			if a[i] <= 0 || a[i] >= 1 || b[i] <= 0 || b[i] >= 1 {
				continue // saturated: no logit to compare (edge rows with huge ids)
			}
			worst = max(worst, math.Abs(logit32(a[i])-logit32(b[i])))
		}
		t.Logf("%s against %s: %d rows, %d differ, max |logit diff| %.3g (bound %.3g)", pair.int8, pair.fp32, n, differ, worst, bound)
		if !(worst <= bound) {
			t.Errorf("%s against %s: max |logit diff| %.3g over %d rows, above the quantization bound %.3g", pair.int8, pair.fp32, worst, n, bound)
		}
		if differ == 0 {
			t.Errorf("%s scores exactly as %s: not a quantized model?", pair.int8, pair.fp32)
		}
	}
}

// A compact variant whose parity outputs are the float32 source's (not its
// own function) is refused at load: the 1e-6 tolerance sees the
// quantization.
func TestONNXCompactVariantRefusesSourceParity(t *testing.T) {
	lib := onnxTestLib(t)
	src, err := os.ReadFile("testdata/mlp_tiny.parity.json")
	if err != nil {
		t.Fatal(err)
	}
	path := onnxTestCopyOf(t, "mlp_tiny_int8", nil, func([]byte) []byte { return src })
	_, err = LoadONNX(path, ONNXOptions{LibraryPath: lib, Provider: ProviderCPU})
	if err == nil {
		t.Fatal("int8 model with the float32 parity outputs loaded")
	}
	t.Log(err)
}
