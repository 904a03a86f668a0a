package main

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/openbidder/openbidder/features"
)

// writeRecords writes n records of stride values; value j of record r is r*1000+j.
func writeRecords(t *testing.T, n, stride int) string {
	t.Helper()
	b := make([]byte, 0, 4*n*stride)
	for r := 0; r < n; r++ {
		for j := 0; j < stride; j++ {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(r*1000+j)))
		}
	}
	p := filepath.Join(t.TempDir(), "rows.f32")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadRows(t *testing.T) {
	const stride = features.Width + 2
	p := writeRecords(t, 10, stride)
	f := func(from int, heldout float64, wantFirst, wantRows int) {
		t.Helper()
		rows, err := readRows(p, stride, from, heldout)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != wantRows*features.Width || rows[0] != float32(wantFirst*1000) ||
			rows[features.Width-1] != float32(wantFirst*1000+features.Width-1) {
			t.Fatalf("from %d heldout %v: %d values starting %v; want %d rows from record %d",
				from, heldout, len(rows), rows[0], wantRows, wantFirst)
		}
	}
	f(0, 0, 0, 10)
	f(7, 0, 7, 3)
	f(0, 0.25, 8, 2) // the last int(10 x 0.25) records, as gbdt_train.py holds out
	for _, from := range []int{-1, 10} {
		if _, err := readRows(p, stride, from, 0); err == nil {
			t.Errorf("-from %d: no error", from)
		}
	}
	if _, err := readRows(p, stride+1, 0, 0); err == nil {
		t.Error("records of the wrong stride: no error")
	}
}

func TestScoreOneRefusesBadManifest(t *testing.T) {
	if err := scoreOne(filepath.Join(t.TempDir(), "missing.manifest.json"), make([]float32, features.Width), t.TempDir()); err == nil {
		t.Fatal("missing manifest: no error")
	}
}

// The bundled GBDT scores held-out rows through the serving path.
func TestScoreOneBundledGBDT(t *testing.T) {
	out := t.TempDir()
	rows := make([]float32, 3*features.Width)
	if err := scoreOne("../../../configs/models/gbdt.manifest.json", rows, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "gbdt.pred.f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3*4 {
		t.Fatalf("%d bytes of predictions for 3 rows", len(b))
	}
	for i := 0; i < 3; i++ {
		if p := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])); !(p > 0 && p < 1) {
			t.Errorf("prediction %d = %v, not a probability", i, p)
		}
	}
}
