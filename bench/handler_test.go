package bench

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ortb"
)

// Benchmark cases: the campaign set sizes and the scorers. "gbdt200" is the
// bundled 200-tree depth-6 LightGBM model through leaves; "nomodel" is a
// constant pCTR, i.e. everything but the model.
var (
	sizes = []struct {
		name string // BenchmarkHandler names
		base string // BenchmarkBaseline names
		n    int
	}{{"1kcampaigns", "1k", 1000}, {"10kcampaigns", "10k", 10000}}
	models = []string{"gbdt200", "nomodel"}
)

// statusMix counts answers and checks them against the intended mix: a bid
// case must bid on at least 99% of requests, or miss only one (a stall of a
// loaded machine may turn the odd one into a 204 "tmax", or inflate the
// GBDT's run-time estimate into a 204 "deadline"), a no-bid case on none;
// anything but 200 and 204 is fatal.
type statusMix struct {
	wantBid          bool
	ok, noBid, other atomic.Int64
	mu               sync.Mutex
	reasons          map[string]int // of unexpected no-bids
}

func (m *statusMix) add(status int, reason func() []byte) {
	switch status {
	case 200:
		m.ok.Add(1)
	case 204:
		m.noBid.Add(1)
		if m.wantBid {
			m.mu.Lock()
			if m.reasons == nil {
				m.reasons = map[string]int{}
			}
			m.reasons[string(reason())]++
			m.mu.Unlock()
		}
	default:
		m.other.Add(1)
	}
}

func (m *statusMix) check(b *testing.B) {
	b.Helper()
	wantBid := m.wantBid
	if len(m.reasons) > 0 {
		b.Logf("unexpected no-bids by reason: %v", m.reasons)
	}
	ok, nb, other := m.ok.Load(), m.noBid.Load(), m.other.Load()
	total := ok + nb + other
	b.ReportMetric(100*float64(ok)/float64(max(total, 1)), "bid%")
	switch {
	case other > 0:
		b.Fatalf("%d of %d answers were neither 200 nor 204", other, total)
	case wantBid && nb > max(1, total/100): // one stall is tolerated in b.N's short warm-up runs
		b.Fatalf("only %d of %d requests got a bid (%d no-bids): not the mix this benchmark measures", ok, total, nb)
	case !wantBid && ok > 0:
		b.Fatalf("%d of %d no-bid requests got a bid", ok, total)
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

// eligible is the number of candidates the targeting index finds for the
// benchmark request.
func eligible(b *testing.B, f *Fixture, body []byte) int {
	var p ortb.Parser
	var req ortb.Request
	if err := p.Parse(body, &req); err != nil {
		b.Fatal(err)
	}
	return len(f.Snap.Match(nil, &req, &req.Imps[0], time.Now(), &campaigns.Scratch{}))
}

// reportScored reports candidates scored per request (rows the scorer saw).
func reportScored(b *testing.B, f *Fixture, requests int) {
	rows, _ := f.Scorer.Counts()
	b.ReportMetric(float64(rows)/float64(max(requests, 1)), "scored/req")
}

// BenchmarkHandler is the whole fasthttp handler (parse, targeting, pacing
// gate, features, scoring, pricing, hold, encode) through a reused
// RequestCtx: the request body set and the response reset every iteration.
// Cases: a bid with the GBDT and with a constant scorer, each serial and
// under RunParallel (one RequestCtx per goroutine), and a no-bid (the floor
// above every max bid: parse, targeting and gating only).
func BenchmarkHandler(b *testing.B) {
	defer closeFixtures()
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			for _, model := range models {
				b.Run(model, func(b *testing.B) { benchFast(b, fixture(b, sz.n, model, 0), SiteBanner("0.5"), true, false) })
				b.Run(model+"-parallel", func(b *testing.B) { benchFast(b, fixture(b, sz.n, model, 0), SiteBanner("0.5"), true, true) })
			}
			b.Run("nobid", func(b *testing.B) { benchFast(b, fixture(b, sz.n, "nomodel", 0), SiteBanner("50"), false, false) })
		})
	}
}

func benchFast(b *testing.B, f *Fixture, body []byte, wantBid, parallel bool) {
	elig := eligible(b, f, body)
	mix := statusMix{wantBid: wantBid}
	h := f.Handler
	serveFast(h, fastCtx(), body) // warm the pools
	f.Scorer.Counts()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	cpu0 := cpuTime()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			ctx := fastCtx()
			for pb.Next() {
				mix.add(serveFast(h, ctx, body), func() []byte { return ctx.Response.Header.Peek("x-nobid-reason") })
			}
		})
	} else {
		ctx := fastCtx()
		for i := 0; i < b.N; i++ {
			mix.add(serveFast(h, ctx, body), func() []byte { return ctx.Response.Header.Peek("x-nobid-reason") })
		}
	}
	b.StopTimer()
	// CPU time is steadier than wall time on a machine shared with other
	// work; it counts every goroutine of the process, the budget's too.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(elig), "eligible/req") // after ResetTimer, which drops reported metrics
	reportScored(b, f, b.N)
	mix.check(b)
}

// BenchmarkBaseline is the same requests through the net/http +
// encoding/json baseline (baseline.go), in process through
// httptest.NewRecorder, with the same campaigns, scorer and budget.
func BenchmarkBaseline(b *testing.B) {
	defer closeFixtures()
	for _, sz := range sizes {
		b.Run(sz.base, func(b *testing.B) {
			for _, model := range models {
				b.Run(model, func(b *testing.B) { benchBaseline(b, fixture(b, sz.n, model, 0), SiteBanner("0.5"), true, false) })
				b.Run(model+"-parallel", func(b *testing.B) { benchBaseline(b, fixture(b, sz.n, model, 0), SiteBanner("0.5"), true, true) })
			}
			b.Run("nobid", func(b *testing.B) { benchBaseline(b, fixture(b, sz.n, "nomodel", 0), SiteBanner("50"), false, false) })
		})
	}
}

func benchBaseline(b *testing.B, f *Fixture, body []byte, wantBid, parallel bool) {
	mix := statusMix{wantBid: wantBid}
	h := f.Baseline
	one := func() {
		r := httptest.NewRequest(http.MethodPost, "/openrtb2/bid", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		mix.add(w.Code, func() []byte { return []byte(w.Header().Get("x-nobid-reason")) })
	}
	one()
	mix = statusMix{wantBid: wantBid}
	f.Scorer.Counts()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			one()
		}
	}
	b.StopTimer()
	reportScored(b, f, b.N)
	mix.check(b)
}
