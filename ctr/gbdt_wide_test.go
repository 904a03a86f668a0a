package ctr

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tiny model (gbdtTinyModel, width 4) with a wide part: slot 2 (size 4,
// rows 0-3), slot 3 + 1 clamped to 255 (size 8, rows 4-11) and their cross
// (id2 * 7 + id3) mod 4 (rows 12-15); table row i is (-1)^i (i+1)/64, bias
// 0.25.
var gbdtWideSection = map[string]any{
	"wide_columns": []map[string]any{
		{"slot": 2, "add": 0, "max": 16777216, "size": 4, "offset": 0},
		{"slot": 3, "add": 1, "max": 255, "size": 8, "offset": 4},
	},
	"crosses":      []map[string]any{{"a": 0, "b": 1, "mul": 7, "buckets": 4, "offset": 12}},
	"deep_columns": []any{}, "numeric": []any{}, "wide_rows": 16, "deep_rows": 0,
}

const gbdtWideBias = 0.25

func gbdtWideTable() []float32 {
	t := make([]float32, 16)
	for i := range t {
		t[i] = float32(i+1) / 64
		if i%2 == 1 {
			t[i] = -t[i]
		}
	}
	return t
}

// gbdtWideCases: rows, the tiny trees' margin and the table rows the wide
// part reads, worked out by hand.
var gbdtWideCases = []struct {
	row    []float32
	margin float64
	ids    [3]int
}{
	{[]float32{0.5, 9, 3, 5}, -4, [3]int{3, 10, 15}},           // 3; 5+1=6 -> 4+6; 3*7+6=27 mod 4=3 -> 12+3
	{[]float32{0.6, 2.0001, 7.9, -1}, -1, [3]int{3, 4, 13}},    // trunc 7.9=7 mod 4=3; -1+1=0; 49 mod 4=1
	{[]float32{1, 1, 123, 300}, -2.5, [3]int{3, 11, 12}},       // 123 mod 4=3; 301 clamped to 255, mod 8=7; 861+255 mod 4=0
	{[]float32{-1e9, 0, -5, 0.5}, -4, [3]int{0, 5, 13}},        // -5 clamped to 0; trunc 1.5=1; 0*7+1=1
	{[]float32{0.50001, 2, 2, 6}, -2.5, [3]int{2, 11, 13}},     // 2; 7; 14+7=21 mod 4=1
	{[]float32{0, 0, 1 << 25, 254}, -4, [3]int{0, 11, 12 + 3}}, // 2^25 clamped to 2^24, mod 4=0; 255 mod 8=7; (2^24*7+255) mod 4=3
}

func gbdtWideLogit(ids [3]int) float64 {
	t := gbdtWideTable()
	z := gbdtWideBias
	for _, id := range ids {
		z += float64(t[id])
	}
	return z
}

func gbdtWideBytes(table []float32, gz bool) []byte {
	var buf bytes.Buffer
	for _, v := range table {
		_ = binary.Write(&buf, binary.LittleEndian, v)
	}
	if !gz {
		return buf.Bytes()
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	_, _ = w.Write(buf.Bytes())
	_ = w.Close()
	return z.Bytes()
}

// gbdtWriteWideFixture writes the tiny model with a wide part whose file
// holds file (named name) and whose parity outputs are the trees plus the
// hand-worked wide logits; edit changes the manifest's wide_part.
func gbdtWriteWideFixture(t *testing.T, name string, file []byte, edit func(wp map[string]any)) string {
	t.Helper()
	var in [][]float32
	var out []float64
	for _, c := range gbdtWideCases {
		in = append(in, c.row)
		out = append(out, gbdtSigmoidRef(c.margin+gbdtWideLogit(c.ids)))
	}
	sum := sha256.Sum256(file)
	path := gbdtWriteFixture(t, []byte(gbdtTinyModel), 4, in, out, func(m map[string]any) {
		wp := map[string]any{"file": name, "sha256": hex.EncodeToString(sum[:]), "bias": gbdtWideBias,
			"wide_deep_ids": gbdtWideSection}
		if edit != nil {
			edit(wp)
		}
		m["wide_part"] = wp
	})
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), name), file, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The wide part's logit is added to the trees' margin: the hand-worked
// cases, gzipped and plain, through the parity check at load and Score.
func TestGBDTWidePartScores(t *testing.T) {
	for _, gz := range []bool{true, false} {
		name := "w.f32"
		if gz {
			name += ".gz"
		}
		g, err := LoadGBDT(gbdtWriteWideFixture(t, name, gbdtWideBytes(gbdtWideTable(), gz), nil), "t1", 4)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var rows []float32
		for _, c := range gbdtWideCases {
			rows = append(rows, c.row...)
		}
		out := make([]float32, len(gbdtWideCases))
		if err := g.Score(time.Time{}, rows, out); err != nil {
			t.Fatal(err)
		}
		for i, c := range gbdtWideCases {
			want := gbdtSigmoidRef(c.margin + gbdtWideLogit(c.ids))
			if math.Abs(float64(out[i])-want) > 1e-7 {
				t.Errorf("%s: row %d: %v, want %v (trees %v + wide %v)", name, i, out[i], want, c.margin, gbdtWideLogit(c.ids))
			}
		}
	}
}

// A wide part is refused at load when its file, section or sums are wrong.
func TestGBDTWidePartRefusals(t *testing.T) {
	good := gbdtWideTable()
	nan := gbdtWideTable()
	nan[5] = float32(math.NaN())
	changed := gbdtWideTable()
	changed[11] += 0.5 // row 11: the third and fifth cases read it
	for _, tc := range []struct {
		name  string
		table []float32
		edit  func(wp map[string]any)
		want  string
	}{
		{"sha256 differs", good, func(wp map[string]any) { wp["sha256"] = strings.Repeat("0", 64) }, "sha256"},
		{"no sha256", good, func(wp map[string]any) { delete(wp, "sha256") }, "sha256"},
		{"no file", good, func(wp map[string]any) { wp["file"] = "" }, "file"},
		{"missing file", good, func(wp map[string]any) { wp["file"] = "nope.f32.gz" }, "nope"},
		{"shorter than wide_rows", good, func(wp map[string]any) {
			wp["wide_deep_ids"] = gbdtWideSectionWith("wide_rows", 17)
		}, "want 68"},
		{"NaN weight", nan, nil, "weight 5"},
		{"weight differs from the parity sample", changed, nil, "parity row 2"},
		{"bias differs from the parity sample", good, func(wp map[string]any) { wp["bias"] = 0.5 }, "parity row 0"},
		{"slot outside the row", good, func(wp map[string]any) {
			wp["wide_deep_ids"] = gbdtWideSectionWith("wide_columns", []map[string]any{
				{"slot": 4, "add": 0, "max": 16777216, "size": 4, "offset": 0},
				{"slot": 3, "add": 1, "max": 255, "size": 8, "offset": 4}})
		}, "slot 4"},
		{"deep part", good, func(wp map[string]any) {
			wp["wide_deep_ids"] = gbdtWideSectionWith("deep_columns", []map[string]any{{"column": 0, "size": 4, "offset": 0}})
		}, "deep part"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadGBDT(gbdtWriteWideFixture(t, "w.f32.gz", gbdtWideBytes(tc.table, true), tc.edit), "t1", 4)
			if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrBadModel mentioning %q", err, tc.want)
			}
		})
	}
	// Only a GBDT has a wide part.
	path := gbdtWriteWideFixture(t, "w.f32.gz", gbdtWideBytes(good, true), nil)
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte(`"kind":"gbdt"`), []byte(`"kind":"onnx"`), 1)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadManifest(path); !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "wide_part") {
		t.Fatalf("onnx manifest with a wide_part: %v", err)
	}
}

func gbdtWideSectionWith(key string, v any) map[string]any {
	s := map[string]any{}
	for k, x := range gbdtWideSection {
		s[k] = x
	}
	s[key] = v
	return s
}

// The explanation of a GBDT with a wide part adds up to what it scores:
// the trees' terms and the table's, a slot's two terms added into one.
func TestExplainGBDTWidePart(t *testing.T) {
	g, err := LoadGBDT(gbdtWriteWideFixture(t, "w.f32.gz", gbdtWideBytes(gbdtWideTable(), true), nil), "t1", 4)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExplainer(g.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	tab := gbdtWideTable()
	for i, c := range gbdtWideCases {
		x, err := e.Explain(c.row, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.margin + gbdtWideLogit(c.ids); math.Abs(x.Logit-want) > 1e-9 {
			t.Errorf("row %d: logit %v, want %v", i, x.Logit, want)
		}
		var cross float64
		seen := map[[2]int]bool{}
		for _, term := range x.Terms {
			k := [2]int{term.Slot, term.Slot2}
			if seen[k] {
				t.Errorf("row %d: slot %v twice", i, k)
			}
			seen[k] = true
			if k == [2]int{2, 3} {
				cross = term.Logit
			}
		}
		if cross != float64(tab[c.ids[2]]) {
			t.Errorf("row %d: cross term %v, want table row %d = %v", i, cross, c.ids[2], tab[c.ids[2]])
		}
	}
}
