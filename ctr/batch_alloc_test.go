//go:build !race

package ctr

import (
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

// batchAllocs fails the test unless score makes no allocation per call
// (counting the batcher's worker too: AllocsPerRun reads process totals).
func batchAllocs(t *testing.T, name string, score func() error) {
	t.Helper()
	if err := score(); err != nil { // warm up: pools, timers, estimates
		t.Fatalf("%s: %v", name, err)
	}
	var err error
	if n := testing.AllocsPerRun(2000, func() {
		if e := score(); e != nil {
			err = e
		}
	}); n != 0 {
		t.Errorf("%s: %.2f allocations per call, want 0", name, n)
	}
	if err != nil {
		t.Errorf("%s: %v", name, err)
	}
}

func TestBatchScoreAllocs(t *testing.T) {
	b := batchNew(t, &batchFake{width: features.Width}, BatchOptions{MaxBatch: 8})
	rows, out := make([]float32, 3*features.Width), make([]float32, 3)
	batchAllocs(t, "batcher over a Go model", func() error {
		return b.Score(time.Now().Add(time.Second), rows, out)
	})
}

func TestONNXScoreAllocs(t *testing.T) {
	for _, m := range []string{onnxTinyManifest, onnxTinyRowsManifest} { // both input forms
		x := onnxTestLoad(t, m, ONNXOptions{MaxBatch: 8})
		rows, _ := onnxTestRows(t)
		out := make([]float32, 13) // one run of 8, one of 5 (bucket 8)
		batchAllocs(t, m, func() error { return x.Score(time.Now().Add(time.Second), rows[:13*features.Width], out) })
	}
}

func TestBatchONNXScoreAllocs(t *testing.T) {
	lib := onnxTestLib(t)
	h := NewHolder(ONNXLoader(ONNXOptions{LibraryPath: lib, Provider: ProviderCPU, MaxBatch: 64}, BatchOptions{}), nil)
	defer h.Close()
	if err := h.Reload("../configs/models/mlp.manifest.json"); err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(h, &chainConst{width: features.Width, v: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := onnxTestRows(t)
	out := make([]float32, 4)
	b := h.Current().(*reloadBatched).Batcher
	batchAllocs(t, "batcher over onnx", func() error { return b.Score(time.Now().Add(time.Second), rows[:4*features.Width], out) })
	batchAllocs(t, "chain over holder", func() error { return c.Score(time.Now().Add(time.Second), rows[:4*features.Width], out) })
	if st := c.Stats(); st.Fallback != 0 {
		t.Errorf("chain fell back: %+v", st)
	}
}
