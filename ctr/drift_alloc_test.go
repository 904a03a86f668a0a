//go:build !race

package ctr

import (
	"math/rand/v2"
	"testing"
)

func TestDriftObserveAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fs, _ := ComputeFeatureStats(driftRows(rng, 1000, 4, 0), 4, 8, nil, nil)
	d, _ := NewDrift(fs, 4)
	rows := driftRows(rng, 8, 4, 0)
	if n := testing.AllocsPerRun(100, func() { d.Observe(rows) }); n != 0 {
		t.Fatalf("%v allocs per Observe", n)
	}
}
