package ctr_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// BenchmarkGBDTScore: the bundled GBDTs (the independent 200-tree depth-6
// model and the distilled one: 20 depth-8 trees plus the ONNX model's wide
// table, 50 lookups per row), ns per call and per row
// (ns/row) at several batch sizes, through the Scorer interface, over the 256
// held-out rows of each parity sample.
func BenchmarkGBDTScore(b *testing.B) {
	for _, mf := range []struct{ name, path string }{
		{"independent", gbdtBundled},
		{"distilled", gbdtDistilled},
	} {
		g, err := ctr.LoadGBDT(mf.path, features.SchemaVersion, features.Width)
		if err != nil {
			b.Fatal(err)
		}
		rows, want := gbdtParitySample(b, g.Manifest())
		for _, n := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("model=%s/rows=%d", mf.name, n), func(b *testing.B) {
				n := min(n, len(want))
				out := make([]float32, n)
				w := g.Width()
				deadline := time.Now().Add(time.Hour)
				// Walk through the sample: scoring one row over and over lets
				// the branch predictor learn its paths and flatters the model.
				off := 0
				b.ReportAllocs()
				for b.Loop() {
					if off+n > len(want) {
						off = 0
					}
					if err := g.Score(deadline, rows[off*w:(off+n)*w], out); err != nil {
						b.Fatal(err)
					}
					off += n
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
			})
		}
	}
}
