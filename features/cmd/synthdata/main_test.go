package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/openbidder/openbidder/features"
)

func synthRun(t *testing.T, seed uint64, n int) ([]byte, meta) {
	t.Helper()
	dir := t.TempDir()
	if err := run(seed, n, 50, 5, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "rows.f32"))
	if err != nil {
		t.Fatal(err)
	}
	var m meta
	mb, _ := os.ReadFile(filepath.Join(dir, "rows.json"))
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	return b, m
}

func TestSynthDeterministic(t *testing.T) {
	a, ma := synthRun(t, 7, 5000)
	b, _ := synthRun(t, 7, 5000)
	c, _ := synthRun(t, 8, 5000)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different rows")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same rows")
	}
	if len(a) != 5000*4*(features.Width+2) || ma.Rows != 5000 || ma.Width != features.Width || ma.SchemaVersion != features.SchemaVersion {
		t.Fatalf("%d bytes, meta %+v", len(a), ma)
	}
	if ma.MeanPTrue < 0.005 || ma.MeanPTrue > 0.02 {
		t.Errorf("mean true CTR %.4f outside [0.5%%, 2%%]", ma.MeanPTrue)
	}
}

func TestSynthRejectsBadFlags(t *testing.T) {
	if err := run(1, 0, 10, 10, t.TempDir()); err == nil {
		t.Fatal("n=0 accepted")
	}
}
