package ctr_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkGBDTScore: the bundled 200-tree depth-6 model, ns per call and
// per row (ns/row) at several batch sizes, through the Scorer interface.
func BenchmarkGBDTScore(b *testing.B) {
	g := gbdtLoadBundled(b)
	rows, want := gbdtParitySample(b, g.Manifest())
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			n := min(n, len(want))
			out := make([]float32, n)
			r := rows[:n*g.Width()]
			deadline := time.Now().Add(time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				if err := g.Score(deadline, r, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}
