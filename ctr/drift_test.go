package ctr

import (
	"math/rand/v2"
	"testing"
)

func driftRows(rng *rand.Rand, n, width int, shift float32) []float32 {
	rows := make([]float32, n*width)
	for i := range rows {
		if i%width == 0 {
			rows[i] = float32(rng.IntN(10)) // categorical-like
		} else {
			rows[i] = float32(rng.NormFloat64()) + shift
		}
	}
	return rows
}

func TestDriftPSI(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const width = 3
	fs, err := ComputeFeatureStats(driftRows(rng, 20000, width, 0), width, 10, []string{"cat", "a", "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range fs.Slots {
		var sum float64
		for _, p := range s.Probs {
			sum += p
		}
		if sum < 0.999 || sum > 1.001 || len(s.Edges) == 0 {
			t.Fatalf("slot %s: probs sum %v, %d edges", s.Name, sum, len(s.Edges))
		}
	}
	same, _ := NewDrift(fs, width)
	same.Observe(driftRows(rng, 20000, width, 0))
	shifted, _ := NewDrift(fs, width)
	shifted.Observe(driftRows(rng, 20000, width, 1))
	for i, p := range same.PSI() {
		if p.PSI > 0.02 {
			t.Errorf("same distribution, slot %s: PSI %v, want ~0", p.Name, p.PSI)
		}
		q := shifted.PSI()[i]
		if i > 0 && q.PSI < 0.25 {
			t.Errorf("shifted by one sigma, slot %s: PSI %v, want > 0.25", q.Name, q.PSI)
		}
		if i == 0 && q.PSI > 0.02 {
			t.Errorf("unshifted categorical slot: PSI %v", q.PSI)
		}
	}
	if same.Rows() != 20000 {
		t.Fatalf("rows %d", same.Rows())
	}
	if _, err := NewDrift(nil, width); err == nil {
		t.Fatal("nil stats accepted")
	}
}
