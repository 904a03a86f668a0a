//go:build !race

package ctr_test

import (
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

func TestGBDTScoreZeroAllocs(t *testing.T) {
	for _, path := range []string{gbdtBundled, gbdtDistilled} {
		t.Run(path, func(t *testing.T) { gbdtZeroAllocs(t, path) })
	}
}

// gbdtZeroAllocs: the independent GBDT and the distilled one, whose Score
// also sums its wide part (one table lookup per wide column and cross).
func gbdtZeroAllocs(t *testing.T, path string) {
	g, err := ctr.LoadGBDT(path, features.SchemaVersion, features.Width)
	if err != nil {
		t.Fatal(err)
	}
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
