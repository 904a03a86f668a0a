//go:build !race

package ctr_test

import (
	"testing"
	"time"
)

func TestGBDTScoreZeroAllocs(t *testing.T) {
	g := gbdtLoadBundled(t)
	rows, want := gbdtParitySample(t, g.Manifest())
	for _, n := range []int{1, 8, 32} {
		n = min(n, len(want))
		out := make([]float32, n)
		r := rows[:n*g.Width()]
		deadline := time.Now().Add(time.Hour)
		if a := testing.AllocsPerRun(50, func() {
			if err := g.Score(deadline, r, out); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("Score of %d rows: %v allocations per call", n, a)
		}
	}
	// The refusal paths do not allocate either.
	out := make([]float32, 4)
	if a := testing.AllocsPerRun(50, func() {
		_ = g.Score(time.Now().Add(-time.Second), rows[:4*g.Width()], out)
		_ = g.Score(time.Time{}, rows[:3], out)
	}); a != 0 {
		t.Errorf("refusals: %v allocations per call", a)
	}
}
