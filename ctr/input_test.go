package ctr

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wdTestSpec is a small wide_deep_ids section over rows of width 5, with
// table sizes that are and are not powers of two.
func wdTestSpec() *WideDeepIDs {
	return &WideDeepIDs{
		WideColumns: []WideColumn{
			{Slot: 0, Add: 0, Max: 1 << 24, Size: 10, Offset: 0},  // categorical, size not a power of two
			{Slot: 1, Add: 0, Max: 1 << 24, Size: 16, Offset: 10}, // categorical, a power of two
			{Slot: 2, Add: 1, Max: 255, Size: 256, Offset: 26},    // small int: value + 1 clamped to [0, 255]
		},
		Crosses: []WideCross{
			{A: 0, B: 2, Mul: 1000003, Buckets: 64, Offset: 282},
			{A: 1, B: 0, Mul: 7, Buckets: 13, Offset: 346},
		},
		DeepColumns: []DeepColumn{{Column: 0, Size: 4, Offset: 0}, {Column: 1, Size: 3, Offset: 4}},
		Numeric:     []NumericSlot{{Slot: 3, Lo: -1, Hi: 2.5}, {Slot: 4, Lo: 0, Hi: 0}},
		WideRows:    359,
		DeepRows:    7,
	}
}

// wdTestWant is the conversion of one row written out the long way (float64
// arithmetic on the same clamps), the reference for put.
func wdTestWant(s *WideDeepIDs, row []float32) (wide, deep []int32, num []float32) {
	id := func(c WideColumn) int64 {
		v := float64(row[c.Slot]) + float64(c.Add)
		if math.IsNaN(v) || v < 0 {
			v = 0
		}
		return int64(math.Trunc(math.Min(v, float64(c.Max))))
	}
	for _, c := range s.WideColumns {
		wide = append(wide, int32(id(c)%c.Size+c.Offset))
	}
	for _, x := range s.Crosses {
		a, b := id(s.WideColumns[x.A]), id(s.WideColumns[x.B])
		wide = append(wide, int32((a*x.Mul+b)%x.Buckets+x.Offset))
	}
	for _, d := range s.DeepColumns {
		deep = append(deep, int32(id(s.WideColumns[d.Column])%d.Size+d.Offset))
	}
	for _, n := range s.Numeric {
		v := row[n.Slot]
		switch {
		case math.IsNaN(float64(v)) || v < n.Lo:
			v = n.Lo
		case v > n.Hi:
			v = n.Hi
		}
		num = append(num, v)
	}
	return wide, deep, num
}

func TestWideDeepConvert(t *testing.T) {
	s := wdTestSpec()
	c, err := newWideDeepConv(s, 5)
	if err != nil {
		t.Fatal(err)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	rows := [][]float32{
		{0, 0, 0, 0, 0},
		{3, 5, 7, 1.5, 9},
		{9, 15, -1, -2, -9},             // the small int's -1 is a value (id 0)
		{10, 16, 254, 2.5, 0},           // one past each categorical table: the modulo
		{123456, 99, 300, 100, 1},       // ids out of range, a small int over its clamp
		{-5, -0.5, -7, 0.25, 3},         // negatives clamp to id 0
		{2.9, 7.99, 3.5, 1, 1},          // fractions truncate
		{3e7, 1e30, 1e30, 1e30, -1e30},  // huge values clamp to max
		{nan, nan, nan, nan, nan},       // not produced by features, but defined
		{inf, -inf, inf, -inf, inf},     //
		{16777215, 16777216, 1, 2, 0.5}, // the categorical clamp's edge
	}
	flat := make([]float32, 0, len(rows)*5)
	for _, r := range rows {
		flat = append(flat, r...)
	}
	n := len(rows)
	wide, deep, num := make([]int32, n*c.wideWidth()), make([]int32, n*c.deepWidth()), make([]float32, n*c.numWidth())
	c.put(flat, wide, deep, num)
	for i, r := range rows {
		ww, wd, wn := wdTestWant(s, r)
		gw, gd, gn := wide[i*len(ww):(i+1)*len(ww)], deep[i*len(wd):(i+1)*len(wd)], num[i*len(wn):(i+1)*len(wn)]
		for k := range ww {
			if gw[k] != ww[k] {
				t.Errorf("row %d %v: wide %v, want %v", i, r, gw, ww)
				break
			}
		}
		for k := range wd {
			if gd[k] != wd[k] {
				t.Errorf("row %d %v: deep %v, want %v", i, r, gd, wd)
				break
			}
		}
		for k := range wn {
			if gn[k] != wn[k] {
				t.Errorf("row %d %v: numeric %v, want %v", i, r, gn, wn)
				break
			}
		}
		for _, v := range gw {
			if v < 0 || int64(v) >= s.WideRows {
				t.Errorf("row %d: wide row %d outside the table", i, v)
			}
		}
		for _, v := range gd {
			if v < 0 || int64(v) >= s.DeepRows {
				t.Errorf("row %d: deep row %d outside the table", i, v)
			}
		}
	}
	// A row worked by hand: ids 3, 5, 8 (7 + 1).
	if w := wide[5 : 5+5]; w[0] != 3 || w[1] != 15 || w[2] != 34 ||
		w[3] != int32((3*1000003+8)%64+282) || w[4] != int32((5*7+3)%13+346) {
		t.Errorf("row 1 wide %v", w)
	}
}

func TestWideDeepConvRefusesBadSections(t *testing.T) {
	f := func(name string, edit func(s *WideDeepIDs)) {
		t.Helper()
		s := wdTestSpec()
		edit(s)
		if _, err := newWideDeepConv(s, 5); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f("slot past the row", func(s *WideDeepIDs) { s.WideColumns[1].Slot = 5 })
	f("negative slot", func(s *WideDeepIDs) { s.WideColumns[0].Slot = -1 })
	f("table past the end", func(s *WideDeepIDs) { s.WideColumns[2].Offset = 200 })
	f("empty table", func(s *WideDeepIDs) { s.WideColumns[0].Size = 0 })
	f("negative max", func(s *WideDeepIDs) { s.WideColumns[0].Max = -1 })
	f("max too large", func(s *WideDeepIDs) { s.WideColumns[0].Max = 1e12 })
	f("add not finite", func(s *WideDeepIDs) { s.WideColumns[0].Add = float32(math.Inf(1)) })
	f("cross of a missing column", func(s *WideDeepIDs) { s.Crosses[0].B = 3 })
	f("cross past the end", func(s *WideDeepIDs) { s.Crosses[1].Offset = 350 })
	f("cross multiplier 0", func(s *WideDeepIDs) { s.Crosses[0].Mul = 0 })
	f("deep of a missing column", func(s *WideDeepIDs) { s.DeepColumns[0].Column = 3 })
	f("deep past the end", func(s *WideDeepIDs) { s.DeepColumns[1].Offset = 5 })
	f("numeric range reversed", func(s *WideDeepIDs) { s.Numeric[0].Lo = 3 })
	f("numeric past the row", func(s *WideDeepIDs) { s.Numeric[1].Slot = 7 })
	f("numeric without a deep part", func(s *WideDeepIDs) { s.DeepColumns = nil })
	f("no wide column", func(s *WideDeepIDs) { s.WideColumns = nil })
	f("no wide rows", func(s *WideDeepIDs) { s.WideRows = 0 })
	f("wide table over int32", func(s *WideDeepIDs) { s.WideRows = 1 << 31 })
	if _, err := newWideDeepConv(nil, 5); err == nil {
		t.Error("no section: accepted")
	}
}

// The input form is checked with the manifest, like the schema: a form this
// build does not know, a GBDT of another form, or a section that does not
// fit are refused at load, before any model file is read.
func TestManifestInputForm(t *testing.T) {
	tiny, err := os.ReadFile("testdata/mlp_tiny.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := os.ReadFile("testdata/mlp_tiny_rows.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	f := func(name, text string, want error, wantForm string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "m.manifest.json")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadManifest(p)
		switch {
		case want == nil && err != nil:
			t.Errorf("%s: %v", name, err)
		case want != nil && !errors.Is(err, want):
			t.Errorf("%s: err %v, want %v", name, err, want)
		case want == nil && m.InputForm != wantForm:
			t.Errorf("%s: input form %q, want %q", name, m.InputForm, wantForm)
		}
		if errors.Is(err, ErrInputForm) && !strings.Contains(err.Error(), "input form") {
			t.Errorf("%s: error does not name the input form: %v", name, err)
		}
	}
	f("wide_deep_ids", string(tiny), nil, InputWideDeepIDs)
	f("rows", strings.Replace(string(rows), `"kind": "onnx",`, `"kind": "onnx", "input_form": "rows",`, 1), nil, InputRows)
	f("no field means rows", string(rows), nil, InputRows)
	f("unknown form", strings.Replace(string(tiny), `"input_form": "wide_deep_ids"`, `"input_form": "wide_deep_ids_v9"`, 1), ErrInputForm, "")
	f("gbdt of the ids form", strings.Replace(string(tiny), `"kind": "onnx"`, `"kind": "gbdt"`, 1), ErrInputForm, "")
	f("rows with an ids section", strings.Replace(string(tiny), `"input_form": "wide_deep_ids"`, `"input_form": "rows"`, 1), ErrInputForm, "")
	f("ids without a section", strings.Replace(string(tiny), `"wide_deep_ids": {`, `"wide_deep_ids_unused": {`, 1), ErrBadModel, "")
	f("ids section past the row", strings.Replace(string(tiny), `"slot": 0,`, `"slot": 41,`, 1), ErrBadModel, "")
}

// BenchmarkWideDeepConvert is the conversion alone, per row, for the served
// model's section (ns/row), at 1 and 64 rows a call.
func BenchmarkWideDeepConvert(b *testing.B) {
	m, err := LoadManifest("../configs/models/mlp.manifest.json")
	if err != nil {
		b.Fatal(err)
	}
	c := m.conv
	par, _, err := onnxLoadParity(m.Path(m.Parity), m.Width)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 64} {
		wide, deep, num := make([]int32, n*c.wideWidth()), make([]int32, n*c.deepWidth()), make([]float32, n*c.numWidth())
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.put(par[:n*m.Width], wide, deep, num)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}

// A wide_deep_ids manifest of another width than the extractor's is refused
// as a model of another width (ErrSchema), not with its input form's
// message about a slot past its own width (an outside audit: "wide column
// 14: slot 40 of 40" for a manifest of width 40).
func TestManifestOfAnotherWidthIsASchemaError(t *testing.T) {
	b, err := os.ReadFile("../configs/models/mlp.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	version, width := m["schema_version"].(string), int(m["width"].(float64))
	m["width"] = width - 1
	b, _ = json.Marshal(m)
	path := filepath.Join(t.TempDir(), "mlp.manifest.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadManifest(path); !errors.Is(err, ErrBadModel) {
		t.Fatalf("LoadManifest: %v, want the input form refused (ErrBadModel)", err)
	}
	if _, err := LoadManifestFor(path, version, width); !errors.Is(err, ErrSchema) {
		t.Fatalf("LoadManifestFor: %v, want ErrSchema", err)
	}
	// (Before the runtime is needed; a build without cgo has none.)
	if _, err := LoadONNX(path, ONNXOptions{SchemaVersion: version, Width: width}); !errors.Is(err, ErrSchema) && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("LoadONNX: %v, want ErrSchema", err)
	}
}
