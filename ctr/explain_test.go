package ctr

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	mlpBundled = "../configs/models/mlp.manifest.json"
	gbdtModel  = "../configs/models/gbdt.manifest.json"
)

// A hand-made tree with node values: the Saabas contributions by hand.
func TestExplainTreeByHand(t *testing.T) {
	dir := t.TempDir()
	model := `tree
version=v3
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:1
feature_names=a b
tree_sizes=1

Tree=0
num_leaves=3
num_cat=0
split_feature=0 1
threshold=0.5 0.5
decision_type=2 2
left_child=-1 -2
right_child=1 -3
leaf_value=1 2 4
internal_value=2 3
shrinkage=1

end of trees
`
	if err := os.WriteFile(filepath.Join(dir, "tiny.txt"), []byte(model), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := NewExplainer(&Manifest{Name: "tiny", Kind: "gbdt", File: "tiny.txt", Width: 2, dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		row           []float32
		logit, ca, cb float64
	}{
		{[]float32{0, 0}, 1, -1, 0}, // left at the root: leaf 1
		{[]float32{1, 0}, 2, 1, -1}, // right (3), then left: leaf 2
		{[]float32{1, 1}, 4, 1, 1},  // right, right: leaf 4
	} {
		c, err := e.Explain(tc.row, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]float64{}
		for _, term := range c.Terms {
			got[term.Slot] = term.Logit
		}
		if c.Bias != 2 || c.Logit != tc.logit || got[0] != tc.ca || got[1] != tc.cb {
			t.Errorf("row %v: bias %v logit %v terms %v, want 2 %v a=%v b=%v", tc.row, c.Bias, c.Logit, got, tc.logit, tc.ca, tc.cb)
		}
	}
	if _, err := e.Explain([]float32{1}, 0); err == nil {
		t.Error("a short row was explained")
	}
}

// The bundled GBDT: bias plus contributions is the margin leaves computes,
// on every parity row, and the explanation's pCTR the scorer's.
func TestExplainGBDTBundled(t *testing.T) {
	g, err := LoadGBDT(gbdtModel, "v2", 41)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExplainer(g.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	p, err := gbdtLoadParity(g.Manifest().Path(g.Manifest().Parity), g.Width())
	if err != nil {
		t.Fatal(err)
	}
	terms := 0
	for i, in := range p.Inputs {
		row := make([]float32, len(in))
		for j, v := range in {
			row[j] = float32(v)
		}
		c, err := e.Explain(row, 0)
		if err != nil {
			t.Fatal(err)
		}
		fv := make([]float64, len(row))
		for j, v := range row {
			fv[j] = float64(v)
		}
		var raw [1]float64
		if err := g.ens.Predict(fv, 0, raw[:]); err != nil {
			t.Fatal(err)
		}
		if math.Abs(c.Logit-raw[0]) > 1e-9 {
			t.Fatalf("row %d: bias + contributions %v, leaves' margin %v", i, c.Logit, raw[0])
		}
		out := make([]float32, 1)
		if err := g.Score(time.Time{}, row, out); err != nil {
			t.Fatal(err)
		}
		if math.Abs(c.PCTR()-float64(out[0])) > 1e-6 {
			t.Fatalf("row %d: pctr %v, scorer %v", i, c.PCTR(), out[0])
		}
		for k := 1; k < len(c.Terms); k++ {
			if math.Abs(c.Terms[k].Logit) > math.Abs(c.Terms[k-1].Logit) {
				t.Fatalf("row %d: terms not largest first", i)
			}
		}
		terms += len(c.Terms)
	}
	if terms < len(p.Inputs) {
		t.Errorf("%d terms over %d rows", terms, len(p.Inputs))
	}
}

// The bundled wide & deep model: its wide weights, read from the graph in
// Go, reproduce the training framework's predictions (its deep part is
// left out of the graph, so the wide part is the whole model).
func TestExplainWideBundled(t *testing.T) {
	m, err := LoadManifest(mlpBundled)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExplainer(m)
	if err != nil {
		t.Fatal(err)
	}
	if e.wide.deep {
		t.Fatal("the bundled graph has no deep part")
	}
	p, err := gbdtLoadParity(m.Path(m.Parity), m.Width)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range p.Inputs {
		row := make([]float32, len(in))
		for j, v := range in {
			row[j] = float32(v)
		}
		c, err := e.Explain(row, float32(p.Outputs[i]))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(c.PCTR()-p.Outputs[i]) > 1e-6 {
			t.Fatalf("row %d: wide part %v, model %v", i, c.PCTR(), p.Outputs[i])
		}
		if len(c.Terms) != len(m.WideDeepIDs.WideColumns)+len(m.WideDeepIDs.Crosses) {
			t.Fatalf("row %d: %d terms", i, len(c.Terms))
		}
		crosses := 0
		for _, term := range c.Terms {
			if term.Slot2 >= 0 {
				crosses++
			}
		}
		if crosses != len(m.WideDeepIDs.Crosses) {
			t.Fatalf("row %d: %d cross terms", i, crosses)
		}
	}
}

// onnxInitializers reads dense (raw and float_data) and sparse float
// initializers from a hand-built graph, and refuses a malformed one.
func TestONNXInitializers(t *testing.T) {
	tensor := func(name string, dtype uint64, dims []int64, body func(b []byte) []byte) []byte {
		var b []byte
		for _, d := range dims {
			b = protowire.AppendTag(b, pbTensorDims, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(d))
		}
		b = protowire.AppendTag(b, pbTensorDataType, protowire.VarintType)
		b = protowire.AppendVarint(b, dtype)
		b = protowire.AppendTag(b, pbTensorName, protowire.BytesType)
		b = protowire.AppendString(b, name)
		return body(b)
	}
	raw := tensor("wide", onnxFloat, []int64{3}, func(b []byte) []byte {
		b = protowire.AppendTag(b, pbTensorRawData, protowire.BytesType)
		var r []byte
		for _, f := range []float32{1.5, -2, 0.25} {
			r = protowire.AppendFixed32(r, math.Float32bits(f))
		}
		return protowire.AppendBytes(b, r)
	})
	fd := tensor("bias", onnxFloat, []int64{1}, func(b []byte) []byte {
		b = protowire.AppendTag(b, pbTensorFloatData, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, math.Float32bits(0.5))
	})
	vals := tensor("sp", onnxFloat, []int64{2}, func(b []byte) []byte {
		b = protowire.AppendTag(b, pbTensorFloatData, protowire.BytesType)
		return protowire.AppendBytes(b, protowire.AppendFixed32(protowire.AppendFixed32(nil, math.Float32bits(7)), math.Float32bits(9)))
	})
	idx := tensor("", onnxInt64, []int64{2}, func(b []byte) []byte {
		b = protowire.AppendTag(b, pbTensorInt64Data, protowire.BytesType)
		return protowire.AppendBytes(b, protowire.AppendVarint(protowire.AppendVarint(nil, 1), 4))
	})
	var sparse []byte
	sparse = protowire.AppendTag(sparse, pbSparseValues, protowire.BytesType)
	sparse = protowire.AppendBytes(sparse, vals)
	sparse = protowire.AppendTag(sparse, pbSparseIndices, protowire.BytesType)
	sparse = protowire.AppendBytes(sparse, idx)
	sparse = protowire.AppendTag(sparse, pbSparseDims, protowire.VarintType)
	sparse = protowire.AppendVarint(sparse, 5)
	var graph []byte
	for _, init := range [][]byte{raw, fd} {
		graph = protowire.AppendTag(graph, pbGraphInitializer, protowire.BytesType)
		graph = protowire.AppendBytes(graph, init)
	}
	graph = protowire.AppendTag(graph, pbGraphSparseInitializer, protowire.BytesType)
	graph = protowire.AppendBytes(graph, sparse)
	var model []byte
	model = protowire.AppendTag(model, 1, protowire.VarintType) // ir_version
	model = protowire.AppendVarint(model, 8)
	model = protowire.AppendTag(model, pbModelGraph, protowire.BytesType)
	model = protowire.AppendBytes(model, graph)
	got, err := onnxInitializers(model, map[string]bool{"wide": true, "bias": true, "sp": true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{"wide": {1.5, -2, 0.25}, "bias": {0.5}, "sp": {0, 7, 0, 0, 9}}
	for k, w := range want {
		if len(got[k]) != len(w) {
			t.Fatalf("%s: %v, want %v", k, got[k], w)
		}
		for i := range w {
			if got[k][i] != w[i] {
				t.Fatalf("%s: %v, want %v", k, got[k], w)
			}
		}
	}
	if _, err := onnxInitializers(model[:len(model)-3], map[string]bool{"wide": true}); err == nil {
		t.Error("a truncated model was read")
	}
}

// ScorerManifest finds the manifest behind a Holder.
func TestScorerManifest(t *testing.T) {
	h := NewHolder(func(p string) (Scorer, error) { return LoadGBDT(p, "v2", 41) }, nil)
	if err := h.Reload(gbdtModel); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if m := ScorerManifest(h); m == nil || m.Kind != "gbdt" || m != h.Current().(*GBDT).Manifest() {
		t.Errorf("manifest %+v", m)
	}
	if ScorerManifest(nil) != nil {
		t.Error("nil scorer has a manifest")
	}
}
