package ctr

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

// batchBenchManifest is the served model; $CTR_BENCH_MANIFEST overrides it.
var batchBenchManifest = cmp.Or(os.Getenv("CTR_BENCH_MANIFEST"), "../configs/models/mlp.manifest.json")

// batchBenchProvider is the execution provider the benchmarks ask for:
// $CTR_BENCH_PROVIDER ("cuda" for the GPU check, docs/gpu.md), else cpu.
var batchBenchProvider = cmp.Or(os.Getenv("CTR_BENCH_PROVIDER"), ProviderCPU)

// batchBenchInt8Manifest is the served model's int8 variant
// (ctr/train/compact.py); $CTR_BENCH_INT8_MANIFEST overrides it.
var batchBenchInt8Manifest = cmp.Or(os.Getenv("CTR_BENCH_INT8_MANIFEST"), "../configs/models/mlp_int8.manifest.json")

// onnxRowsManifest is the served model as it was before its re-export into
// the wide_deep_ids form: the same weights in the rows-form graph.
const onnxRowsManifest = "testdata/mlp_rows.manifest.json"

// BenchmarkONNXRows is the per-row cost of Score (conversion of the rows to
// the model's inputs included) by batch size on the CPU provider (or
// $CTR_BENCH_PROVIDER's): the served
// model (wide_deep_ids form) beside the same weights in the rows-form graph
// it was re-exported from and its int8 variant (the wide table as int8, a
// scale per table), in the same run, and the tiny test model in both
// forms (its deep part is live: the cost of a graph that keeps one). ns/row
// is wall time; cpu-ns/row the benchmark thread's CPU time (ONNX Runtime
// runs on the calling thread with one intra-op thread), steadier on a
// loaded machine.
func BenchmarkONNXRows(b *testing.B) {
	for _, m := range []struct{ name, manifest string }{
		{"rows", onnxRowsManifest}, {"ids", batchBenchManifest}, {"ids-int8", batchBenchInt8Manifest},
		{"tiny-rows", onnxTinyRowsManifest}, {"tiny-ids", onnxTinyManifest},
	} {
		x := onnxTestLoad(b, m.manifest, ONNXOptions{MaxBatch: 512, Provider: batchBenchProvider})
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

// BenchmarkBatcherLatency is the latency of Score (p50-us, p99-us per
// request of 4 rows, the candidates of one imp) at 1, 8 and 64 concurrent
// callers, each calling again as soon as it is answered, for the served
// model: through a Batcher with the default options (no wait: an idle
// runtime runs a request at once, what queues during a run is the next run),
// through a Batcher with the opt-in 250us wait (the bidder's old default),
// and called directly (runs serialised by the model's lock, no batching).
// Also rows/run and calls/s.
func BenchmarkBatcherLatency(b *testing.B) {
	x := onnxTestLoad(b, batchBenchManifest, ONNXOptions{MaxBatch: 256, Provider: batchBenchProvider})
	for _, callers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("callers=%d/direct", callers), func(b *testing.B) { batchBenchLatency(b, x, nil, callers) })
		for _, wait := range []time.Duration{0, 250 * time.Microsecond} {
			b.Run(fmt.Sprintf("callers=%d/batcher-wait=%s", callers, wait), func(b *testing.B) {
				bt, err := NewBatcher(x, BatchOptions{MaxBatch: 64, MaxWait: wait})
				if err != nil {
					b.Fatal(err)
				}
				defer bt.Close()
				batchBenchLatency(b, bt, bt, callers)
			})
		}
	}
}

func batchBenchLatency(b *testing.B, s Scorer, bt *Batcher, callers int) {
	const rowsPerReq = 4
	par, _ := onnxTestRows(b)
	lat := make([]time.Duration, b.N)
	var next, fails atomic.Int64
	var before BatchStats
	if bt != nil {
		before = bt.Stats()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := (c * rowsPerReq) % 60
			rows := slices.Clone(par[off*features.Width : (off+rowsPerReq)*features.Width])
			out := make([]float32, rowsPerReq)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(lat)) {
					return
				}
				start := time.Now()
				if err := s.Score(start.Add(50*time.Millisecond), rows, out); err != nil {
					fails.Add(1)
				}
				lat[i] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-us")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(fails.Load()), "fails")
	if bt != nil {
		st := bt.Stats()
		if runs := st.Batches - before.Batches; runs > 0 {
			b.ReportMetric(float64(st.Rows-before.Rows)/float64(runs), "rows/run")
		}
	}
}

// BenchmarkBatcherSerial is one caller at a time (4 rows a request): the
// batcher's hand-off overhead at low load, beside the model called directly.
func BenchmarkBatcherSerial(b *testing.B) {
	x := onnxTestLoad(b, batchBenchManifest, ONNXOptions{MaxBatch: 512, Provider: batchBenchProvider})
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
