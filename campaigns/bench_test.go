package campaigns

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("campaigns=%d", n), func(b *testing.B) {
			s := mustCompile(b, Generate(n, 1), WithSeat("seat-1"))
			r := rand.New(rand.NewPCG(11, 11))
			reqs := make([]*ortb.Request, 1024)
			imps := make([]*ortb.Imp, 1024)
			for i := range reqs {
				reqs[i], imps[i] = randomRequest(r)
			}
			dst := make([]Candidate, 0, 8192)
			var sc Scratch
			for j := range reqs { // grow the scratch before timing
				s.Match(dst[:0], reqs[j], imps[j], monday15, &sc)
			}
			examined, cands := 0, 0
			b.ReportAllocs()
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				j := i & 1023
				dst = s.Match(dst[:0], reqs[j], imps[j], monday15, &sc)
				examined += sc.Examined
				cands += len(dst)
			}
			// CPU time is steadier than wall time on a machine shared with other work.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(examined)/float64(b.N), "examined/op")
			b.ReportMetric(float64(cands)/float64(b.N), "candidates/op")
		})
	}
}

// cpuTime is this process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkMatchExhaustive is the baseline: the same checks on every campaign.
func BenchmarkMatchExhaustive(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("campaigns=%d", n), func(b *testing.B) {
			s := mustCompile(b, Generate(n, 1), WithSeat("seat-1"))
			r := rand.New(rand.NewPCG(11, 11))
			reqs := make([]*ortb.Request, 1024)
			imps := make([]*ortb.Imp, 1024)
			for i := range reqs {
				reqs[i], imps[i] = randomRequest(r)
			}
			dst := make([]Candidate, 0, 8192)
			var sc Scratch
			exhaustive(dst[:0], s, reqs[0], imps[0], monday15, &sc)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				j := i & 1023
				dst = exhaustive(dst[:0], s, reqs[j], imps[j], monday15, &sc)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkMatchParallel: one Scratch per goroutine, one shared snapshot.
func BenchmarkMatchParallel(b *testing.B) {
	s := mustCompile(b, Generate(1000, 1), WithSeat("seat-1"))
	r := rand.New(rand.NewPCG(11, 11))
	reqs := make([]*ortb.Request, 1024)
	imps := make([]*ortb.Imp, 1024)
	for i := range reqs {
		reqs[i], imps[i] = randomRequest(r)
	}
	b.ReportAllocs()
	b.ResetTimer() // setup above is not the benchmark
	b.RunParallel(func(pb *testing.PB) {
		var sc Scratch
		dst := make([]Candidate, 0, 1024)
		for i := 0; pb.Next(); i++ {
			j := i & 1023
			dst = s.Match(dst[:0], reqs[j], imps[j], monday15, &sc)
		}
	})
}

// BenchmarkCompile is the cost of a reload without the file reads.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("campaigns=%d", n), func(b *testing.B) {
			cfgs := Generate(n, 1)
			// Measured before the loop: b.Loop keeps its last result alive.
			live := liveBytes(func() any { s, _ := Compile(cfgs); return s }) / float64(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(cfgs); err != nil {
					b.Fatal(err)
				}
			}
			// What a snapshot keeps alive beyond its configs' strings.
			b.ReportMetric(live, "live-B/campaign")
		})
	}
}

// liveBytes is the heap that what f returns keeps alive, after collections.
func liveBytes(f func() any) float64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	v := f()
	runtime.GC()
	runtime.ReadMemStats(&b)
	runtime.KeepAlive(v)
	return float64(int64(b.HeapAlloc) - int64(a.HeapAlloc))
}
