package ctr

import (
	"math"
	"strings"
	"testing"
)

// FuzzGBDTModelText: whatever bytes arrive as a model file, the checks in
// LoadGBDT either refuse them or leaves loads a model that scores any row
// without panicking.
func FuzzGBDTModelText(f *testing.F) {
	f.Add([]byte(gbdtTinyModel))
	f.Add([]byte(strings.Replace(gbdtTinyModel, "right_child=1 -3", "right_child=-2 -3", 1)))
	f.Add([]byte(strings.Replace(gbdtTinyModel, "decision_type=8 8", "decision_type=2 6", 1)))
	f.Add([]byte("tree\nversion=v3\n\n"))
	f.Add([]byte("binf\x00\x00\x00?"))
	f.Add([]byte(strings.Replace(gbdtTinyModel, "leaf_value=-3", "leaf_value=nan", 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		const width = 4
		trees, err := gbdtCheckText(b, width)
		if err != nil {
			return
		}
		ens, err := gbdtParse(b)
		if err != nil {
			return
		}
		if ens.NEstimators() != trees || ens.NFeatures() > width {
			return // LoadGBDT refuses this too
		}
		g := &GBDT{ens: ens, width: width}
		g.scratch.New = func() any { return &gbdtScratch{fvals: make([]float64, width)} }
		rows := []float32{0, 0, 0, 0, 1, -1, 1e9, -1e9, float32(math.NaN()), 0.5, 2, 3}
		out := make([]float32, 3)
		g.score(rows, out)
		for _, p := range out {
			if !(p >= 0 && p <= 1) {
				t.Fatalf("pCTR %v outside [0,1]", p)
			}
		}
	})
}
