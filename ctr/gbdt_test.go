package ctr

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gbdtTinyModel: tree 0 sends x0 <= 0.5 to leaf -1, else x1 <= 2 to 0.5,
// else 2; tree 1 is the constant -3. Width 4.
const gbdtTinyModel = `tree
version=v3
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=3
objective=binary sigmoid:1
tree_sizes=10 10

Tree=0
num_leaves=3
num_cat=0
split_feature=0 1
threshold=0.5 2
decision_type=8 8
left_child=-1 -2
right_child=1 -3
leaf_value=-1 0.5 2
shrinkage=1


Tree=1
num_leaves=1
num_cat=0
leaf_value=-3
shrinkage=1


end of trees
`

// gbdtTinyCases are rows of width 4 and the margin the tiny model gives.
var gbdtTinyCases = []struct {
	row    []float32
	margin float64
}{
	{[]float32{0.5, 9, 0, 0}, -4},                 // x0 == threshold goes left (<=)
	{[]float32{-1e9, 0, 0, 0}, -4},                // far left
	{[]float32{0.50001, 2, 0, 0}, -2.5},           // right, then x1 == 2 left
	{[]float32{0.6, 2.0001, 0, 0}, -1},            // right, right
	{[]float32{1, 1, 123, -123}, -2.5},            // unused features ignored
	{[]float32{float32(math.NaN()), 3, 0, 0}, -1}, // NaN goes the default way: right (decision_type 8 has no default_left bit), then x1 > 2
}

func gbdtSigmoidRef(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// gbdtWriteFixture writes model text, a parity sample and a manifest into a
// temp dir; edit changes the manifest map before it is written.
func gbdtWriteFixture(t *testing.T, model []byte, width int, inputs [][]float32, outputs []float64, edit func(m map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.txt"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	in := make([][]float64, len(inputs))
	for i, r := range inputs {
		for _, v := range r {
			in[i] = append(in[i], float64(v))
		}
	}
	par, _ := json.Marshal(map[string]any{"schema_version": "t1", "width": width, "output": "probability",
		"inputs": in, "outputs": outputs})
	if err := os.WriteFile(filepath.Join(dir, "p.json"), par, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(model)
	m := map[string]any{"name": "tiny", "kind": "gbdt", "file": "m.txt", "sha256": hex.EncodeToString(sum[:]),
		"schema_version": "t1", "width": width, "parity": "p.json", "parity_tolerance": 1e-6}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	path := filepath.Join(dir, "gbdt.manifest.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func gbdtTinyParity() ([][]float32, []float64) {
	var in [][]float32
	var out []float64
	for _, c := range gbdtTinyCases[:5] { // NaN is not representable in JSON
		in = append(in, c.row)
		out = append(out, gbdtSigmoidRef(c.margin))
	}
	return in, out
}

func gbdtLoadTiny(t *testing.T) *GBDT {
	t.Helper()
	in, out := gbdtTinyParity()
	g, err := LoadGBDT(gbdtWriteFixture(t, []byte(gbdtTinyModel), 4, in, out, nil), "t1", 4)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGBDTTinySemantics(t *testing.T) {
	g := gbdtLoadTiny(t)
	if g.Width() != 4 || g.Name() != "tiny" || g.Trees() != 2 {
		t.Fatalf("width %d name %q trees %d", g.Width(), g.Name(), g.Trees())
	}
	rows := make([]float32, 0, 4*len(gbdtTinyCases))
	for _, c := range gbdtTinyCases {
		rows = append(rows, c.row...)
	}
	out := make([]float32, len(gbdtTinyCases))
	if err := g.Score(time.Time{}, rows, out); err != nil {
		t.Fatal(err)
	}
	for i, c := range gbdtTinyCases {
		want := gbdtSigmoidRef(c.margin)
		if math.Abs(float64(out[i])-want) > 1e-7 {
			t.Errorf("row %d %v: pCTR %v, want sigmoid(%v) = %v", i, c.row, out[i], c.margin, want)
		}
	}
}

func TestGBDTSigmoidRange(t *testing.T) {
	for _, z := range []float64{-1000, -40, -1, 0, 1, 40, 1000} {
		p := gbdtSigmoid(z)
		if !(p >= 0 && p <= 1) || math.Abs(p-gbdtSigmoidRef(z)) > 1e-15 {
			t.Errorf("gbdtSigmoid(%v) = %v", z, p)
		}
	}
}

func TestGBDTScoreErrors(t *testing.T) {
	g := gbdtLoadTiny(t)
	rows := make([]float32, 4*3)
	cases := []struct {
		name     string
		deadline time.Time
		cost     time.Duration
		rows     []float32
		n        int
		want     error
	}{
		{"ok, no deadline", time.Time{}, time.Millisecond, rows, 3, nil},
		{"ok, deadline far", time.Now().Add(time.Hour), time.Microsecond, rows, 3, nil},
		{"deadline passed", time.Now().Add(-time.Millisecond), time.Nanosecond, rows, 3, ErrDeadline},
		{"estimate over slack", time.Now().Add(20 * time.Millisecond), 10 * time.Millisecond, rows, 3, ErrDeadline},
		{"estimate fits fewer rows", time.Now().Add(time.Second), 10 * time.Millisecond, rows[:4], 1, nil},
		{"short rows", time.Time{}, 0, rows[:7], 2, ErrSchema},
		{"long rows", time.Time{}, 0, rows, 2, ErrSchema},
		{"empty", time.Time{}, 0, nil, 0, nil},
	}
	for _, c := range cases {
		g.rowCost.Store(math.Float64bits(float64(c.cost.Nanoseconds())))
		out := make([]float32, c.n)
		for i := range out {
			out[i] = -1
		}
		err := g.Score(c.deadline, c.rows, out)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
			continue
		}
		for i, v := range out {
			if (err != nil && v != -1) || (err == nil && !(v > 0 && v < 1)) {
				t.Errorf("%s: out[%d] = %v after err %v", c.name, i, v, err)
			}
		}
	}
	var nilG *GBDT
	if err := nilG.Score(time.Time{}, nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("nil scorer: %v", err)
	}
}

func TestGBDTCostEstimateFollowsServing(t *testing.T) {
	g := gbdtLoadTiny(t)
	if g.RowCost() <= 0 {
		t.Fatalf("no cost estimate after load: %v", g.RowCost())
	}
	g.rowCost.Store(math.Float64bits(float64(time.Second)))
	rows := make([]float32, 4*64)
	out := make([]float32, 64)
	for i := 0; i < 200; i++ {
		if err := g.Score(time.Time{}, rows, out); err != nil {
			t.Fatal(err)
		}
	}
	if g.RowCost() > time.Millisecond {
		t.Errorf("estimate stuck at %v after 200 fast calls", g.RowCost())
	}
}

func TestGBDTEstimateRecoversAfterRefusals(t *testing.T) {
	g := gbdtLoadTiny(t)
	g.rowCost.Store(math.Float64bits(float64(time.Second))) // as if one call had stalled
	rows := make([]float32, 4)
	out := make([]float32, 1)
	for i := 0; i < 5000; i++ {
		err := g.Score(time.Now().Add(5*time.Millisecond), rows, out)
		if err == nil {
			t.Logf("scored again after %d refusals; estimate %v", i, g.RowCost())
			return
		}
		if !errors.Is(err, ErrDeadline) {
			t.Fatal(err)
		}
	}
	t.Fatalf("still refusing after 5000 calls; estimate %v", g.RowCost())
}

func TestGBDTOutlierCapped(t *testing.T) {
	g := gbdtLoadTiny(t)
	g.rowCost.Store(math.Float64bits(1000))
	g.observe(time.Second, 1) // one stalled call
	if c := g.costNS(); c > 1000+gbdtEWMAWeight*(gbdtOutlierFactor*1000-1000)+1e-9 {
		t.Fatalf("one stalled call moved the estimate to %v ns", c)
	}
}

func TestGBDTRefusals(t *testing.T) {
	in, out := gbdtTinyParity()
	tiny := []byte(gbdtTinyModel)
	// XGBoost 1.x binary models start with a binary LearnerModelParam (or
	// "binf"), never with text; leaves runs out of memory on them.
	xgbBinary := append([]byte("binf\x00\x00\x00?\x04\x00\x00\x00\x01\x00\x00\x00"), make([]byte, 200)...)
	xgbJSON := []byte(`{"learner":{"gradient_booster":{"model":{"trees":[]}}},"version":[1,7,4]}`)
	bad := func(old, repl string) []byte { return []byte(strings.Replace(gbdtTinyModel, old, repl, 1)) }
	cases := []struct {
		name        string
		model       []byte
		schema      string
		width       int
		outputs     []float64
		edit        func(m map[string]any)
		want        error
		wantMessage string
	}{
		{"xgboost binary", xgbBinary, "t1", 4, out, nil, ErrBadModel, "not a LightGBM text model"},
		{"xgboost json", xgbJSON, "t1", 4, out, nil, ErrBadModel, "not a LightGBM text model"},
		{"schema mismatch", tiny, "t2", 4, out, nil, ErrSchema, "schema t1"},
		{"width mismatch", tiny, "t1", 5, out, nil, ErrSchema, "width 4"},
		{"sha256 mismatch", tiny, "t1", 4, out, func(m map[string]any) { m["sha256"] = strings.Repeat("0", 64) }, ErrBadModel, "sha256"},
		{"kind onnx", tiny, "t1", 4, out, func(m map[string]any) { m["kind"] = "onnx" }, ErrBadModel, "not gbdt"},
		{"no parity", tiny, "t1", 4, out, func(m map[string]any) { delete(m, "parity") }, ErrBadModel, "no parity"},
		{"parity off", tiny, "t1", 4, append([]float64{out[0] + 1e-3}, out[1:]...), nil, ErrBadModel, "parity row 0"},
		{"split beyond width", bad("split_feature=0 1", "split_feature=0 7"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "split_feature"},
		{"huge num_leaves", bad("num_leaves=3", "num_leaves=2000000000"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "num_leaves"},
		{"not a tree", bad("right_child=1 -3", "right_child=0 -3"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "not a tree"},
		{"tree count", bad("tree_sizes=10 10", "tree_sizes=10"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "tree_sizes"},
		{"categorical", bad("decision_type=8 8", "decision_type=9 8"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "decision_type"},
		{"multiclass", bad("num_class=1", "num_class=3"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "num_class"},
		{"nan leaf", bad("leaf_value=-3", "leaf_value=NaN"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "leaf_value"},
		{"inf leaf", bad("leaf_value=-3", "leaf_value=-Inf"), "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, "leaf_value"},
		{"truncated", tiny[:150], "t1", 4, out, func(m map[string]any) { delete(m, "sha256") }, ErrBadModel, ""},
	}
	for _, c := range cases {
		path := gbdtWriteFixture(t, c.model, 4, in, c.outputs, c.edit)
		g, err := LoadGBDT(path, c.schema, c.width)
		if !errors.Is(err, c.want) || g != nil {
			t.Errorf("%s: got %v, %v; want %v", c.name, g, err, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.wantMessage) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.wantMessage)
		}
	}
}

func TestGBDTRefusesOversizeFile(t *testing.T) {
	in, out := gbdtTinyParity()
	path := gbdtWriteFixture(t, []byte(gbdtTinyModel), 4, in, out, func(m map[string]any) { delete(m, "sha256") })
	model := filepath.Join(filepath.Dir(path), "m.txt")
	if err := os.Truncate(model, gbdtMaxModelBytes+1); err != nil { // sparse: cheap
		t.Fatal(err)
	}
	if _, err := LoadGBDT(path, "t1", 4); !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversize model: %v", err)
	}
}

func TestGBDTConcurrentScore(t *testing.T) {
	g := gbdtLoadTiny(t)
	rows := make([]float32, 0, 4*len(gbdtTinyCases))
	for _, c := range gbdtTinyCases {
		rows = append(rows, c.row...)
	}
	want := make([]float32, len(gbdtTinyCases))
	if err := g.Score(time.Time{}, rows, want); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, len(want))
			for i := 0; i < 200; i++ {
				if err := g.Score(time.Time{}, rows, out); err != nil {
					t.Error(err)
					return
				}
				for j := range out {
					if out[j] != want[j] {
						t.Errorf("concurrent score row %d: %v, want %v", j, out[j], want[j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkGBDTLeavesPredictSingle is the baseline Score avoids: leaves'
// PredictSingle on the bundled model, which allocates its result per call.
func BenchmarkGBDTLeavesPredictSingle(b *testing.B) {
	m, err := LoadManifest("../configs/models/gbdt.manifest.json")
	if err != nil {
		b.Fatal(err)
	}
	g, err := LoadGBDT("../configs/models/gbdt.manifest.json", m.SchemaVersion, m.Width)
	if err != nil {
		b.Fatal(err)
	}
	par, err := gbdtLoadParity(m.Path(m.Parity), m.Width)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		_ = g.ens.PredictSingle(par.Inputs[i%len(par.Inputs)], 0)
		i++
	}
}

// A model file named *.gz is gunzipped after its sha256 (of the compressed
// bytes) is checked; one that is not gzip, or expands past the size limit,
// is refused with a clear error.
func TestGBDTGzippedModel(t *testing.T) {
	in, out := gbdtTinyParity()
	withGz := func(t *testing.T, gz []byte) string {
		sum := sha256.Sum256(gz)
		path := gbdtWriteFixture(t, []byte(gbdtTinyModel), 4, in, out, func(m map[string]any) {
			m["file"], m["sha256"] = "m.txt.gz", hex.EncodeToString(sum[:])
		})
		if err := os.WriteFile(filepath.Join(filepath.Dir(path), "m.txt.gz"), gz, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	g, err := LoadGBDT(withGz(t, gzipped([]byte(gbdtTinyModel))), "t1", 4)
	if err != nil {
		t.Fatalf("gzipped model: %v", err)
	}
	rows := make([]float32, 0, 4*len(gbdtTinyCases))
	for _, c := range gbdtTinyCases {
		rows = append(rows, c.row...)
	}
	got, want := make([]float32, len(gbdtTinyCases)), make([]float32, len(gbdtTinyCases))
	if err := g.Score(time.Time{}, rows, got); err != nil {
		t.Fatal(err)
	}
	if err := gbdtLoadTiny(t).Score(time.Time{}, rows, want); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d: gzipped %v, plain %v", i, got[i], want[i])
		}
	}
	if _, err := LoadGBDT(withGz(t, []byte(gbdtTinyModel)), "t1", 4); !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("plain text named .gz: %v", err)
	}
	bomb := gzipped(make([]byte, gbdtMaxModelBytes+1))
	if _, err := LoadGBDT(withGz(t, bomb), "t1", 4); !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("gzip bomb: %v", err)
	}
}
