package ctr

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

// batchBenchManifest is the served model; $CTR_BENCH_MANIFEST overrides it.
var batchBenchManifest = cmp.Or(os.Getenv("CTR_BENCH_MANIFEST"), "../configs/models/mlp.manifest.json")

// onnxRowsManifest is the served model as it was before its re-export into
// the wide_deep_ids form: the same weights in the rows-form graph.
const onnxRowsManifest = "testdata/mlp_rows.manifest.json"

// BenchmarkONNXRows is the per-row cost of Score (conversion of the rows to
// the model's inputs included) by batch size on the CPU provider: the served
// model (wide_deep_ids form) beside the same weights in the rows-form graph
// it was re-exported from, in the same run, and the tiny test model in both
// forms (its deep part is live: the cost of a graph that keeps one). ns/row
// is wall time; cpu-ns/row the benchmark thread's CPU time (ONNX Runtime
// runs on the calling thread with one intra-op thread), steadier on a
// loaded machine.
func BenchmarkONNXRows(b *testing.B) {
	for _, m := range []struct{ name, manifest string }{
		{"rows", onnxRowsManifest}, {"ids", batchBenchManifest},
		{"tiny-rows", onnxTinyRowsManifest}, {"tiny-ids", onnxTinyManifest},
	} {
		x := onnxTestLoad(b, m.manifest, ONNXOptions{MaxBatch: 512})
		par, _ := onnxTestRows(b)
		for _, n := range []int{1, 8, 64, 256} {
			rows := make([]float32, n*features.Width)
			for i := range n {
				copy(rows[i*features.Width:], par[(i%64)*features.Width:(i%64+1)*features.Width])
			}
			out := make([]float32, n)
			b.Run(fmt.Sprintf("form=%s/batch=%d", m.name, n), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.SetBytes(int64(len(rows) * 4))
				cpu := benchThreadCPU()
				for b.Loop() {
					if err := x.Score(time.Time{}, rows, out); err != nil {
						b.Fatal(err)
					}
				}
				cpu = benchThreadCPU() - cpu
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/row")
				}
			})
		}
	}
}

// BenchmarkBatcherParallel is throughput against latency under concurrent
// load: 16 callers per core, each request 4 rows (candidates of one imp),
// for a few MaxBatch/MaxWait settings, beside the unbatched baseline (the
// same model called directly, runs serialised). Metrics: rows/s, p50-us and
// p99-us per request, rows/run.
func BenchmarkBatcherParallel(b *testing.B) {
	x := onnxTestLoad(b, batchBenchManifest, ONNXOptions{MaxBatch: 512})
	b.Run("unbatched", func(b *testing.B) { batchBenchLoad(b, x, nil) })
	for _, mb := range []int{16, 64, 256} {
		for _, wait := range []time.Duration{0, 100 * time.Microsecond, 500 * time.Microsecond} {
			b.Run(fmt.Sprintf("maxbatch=%d/maxwait=%s", mb, wait), func(b *testing.B) {
				bt, err := NewBatcher(x, BatchOptions{MaxBatch: mb, MaxWait: wait})
				if err != nil {
					b.Fatal(err)
				}
				defer bt.Close()
				batchBenchLoad(b, bt, bt)
			})
		}
	}
}

func batchBenchLoad(b *testing.B, s Scorer, bt *Batcher) {
	const rowsPerReq = 4
	par, _ := onnxTestRows(b)
	lat := make([]time.Duration, b.N)
	var next, fails atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rows := slices.Clone(par[:rowsPerReq*features.Width])
		out := make([]float32, rowsPerReq)
		for pb.Next() {
			start := time.Now()
			if err := s.Score(start.Add(50*time.Millisecond), rows, out); err != nil {
				fails.Add(1)
			}
			if i := next.Add(1) - 1; i < int64(len(lat)) {
				lat[i] = time.Since(start)
			}
		}
	})
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N*rowsPerReq)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-us")
	b.ReportMetric(float64(fails.Load()), "fails")
	if bt != nil {
		st := bt.Stats()
		if st.Batches > 0 {
			b.ReportMetric(float64(st.Rows)/float64(st.Batches), "rows/run")
		}
	}
}

// BenchmarkBatcherSerial is one caller at a time (4 rows a request): the
// batcher's hand-off overhead at low load, beside the model called directly.
func BenchmarkBatcherSerial(b *testing.B) {
	x := onnxTestLoad(b, batchBenchManifest, ONNXOptions{MaxBatch: 512})
	par, _ := onnxTestRows(b)
	rows, out := par[:4*features.Width], make([]float32, 4)
	bt, err := NewBatcher(x, BatchOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	c, err := NewChain(bt, &chainConst{width: features.Width})
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []Scorer{x, bt, c} {
		b.Run(fmt.Sprintf("%T", s)[len("*ctr."):], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Score(time.Now().Add(50*time.Millisecond), rows, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
