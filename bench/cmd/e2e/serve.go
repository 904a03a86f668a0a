package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/openbidder/openbidder/bench"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// The harness's own servers, run as child processes of the same binary
// (e2e -serve trivial|baseline): the HTTP floor and the net/http +
// encoding/json baseline, each alone in its process like the bidder.

// serveTrivial answers every request 204 (fasthttp reads the body first):
// what HTTP alone costs on this machine. With work > 0 it first runs a
// computation calibrated to take that much CPU time (burner) on every
// request, a stand-in for a handler of that cost: bench/scripts/work-budget.sh.
func serveTrivial(addr string, work time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var b burner
	if work > 0 {
		b = newBurner()
		slog.Info("trivial server burns per request", "work", work, "iterations", int(b.perUS*float64(work)/1e3))
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if work > 0 {
			b.burn(work)
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}}
	go stopOnSignal(func(ctx context.Context) { _ = s.ShutdownWithContext(ctx) })
	return s.Serve(ln)
}

// burner stands in for a handler's work: a loop of dependent integer
// multiply-adds, all in user space (no system call, no memory traffic),
// calibrated at start to the iterations that take one microsecond of this
// thread's CPU time (CLOCK_THREAD_CPUTIME_ID, the best of 20 tries of 1 ms,
// so time the thread spent preempted does not count). The work is then a
// fixed amount of computation: if the machine slows later, it takes longer.
type burner struct{ perUS float64 }

var burnSink uint64

func spin(n int) {
	x := burnSink
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	burnSink = x
}

func newBurner() burner {
	// Both clock readings must come from this thread: a goroutine moved to
	// another thread between them reads another thread's clock, and a
	// nonsense delta (zero or negative) made burns of seconds.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const n = 1 << 20
	best := time.Duration(1 << 62)
	for range 20 {
		var t0, t1 unix.Timespec
		if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0) != nil {
			s := time.Now()
			spin(n)
			best = min(best, time.Since(s))
			continue
		}
		spin(n)
		_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
		if d := time.Duration(t1.Nano() - t0.Nano()); d > 0 {
			best = min(best, d)
		}
	}
	return burner{perUS: float64(n) / max(float64(best)/1e3, 1e-3)}
}

func (b burner) burn(d time.Duration) { spin(int(b.perUS * float64(d) / 1e3)) }

// baselineModels are the bundled models as the bidder serves them by
// default: ONNX on the CPU provider behind the micro-batcher with the
// bidder's default model.max_batch and model.max_wait (baselineBatch), the
// GBDT as its fallback; GBDT alone without the ONNX Runtime library.
type baselineModels struct {
	GBDT, ONNX, Library string
}

// baselineBatch is the bidder's default batcher (model.max_batch 64,
// model.max_wait 0: a lone request never waits for company;
// TestBaselineBatchIsTheBidders). It was max wait 250 us, the bidder's
// default before it became 0: a wait under 1 ms yields in a loop, CPU on
// the baseline's one core that the bidder no longer spends.
var baselineBatch = ctr.BatchOptions{MaxBatch: 64}

func (m baselineModels) chain(log *slog.Logger) (ctr.Scorer, func(), error) {
	g, err := ctr.LoadGBDT(m.GBDT, features.SchemaVersion, features.Width)
	if err != nil {
		return nil, nil, err
	}
	var primary ctr.PredictingScorer
	closeAll := func() {}
	if err := ctr.ONNXAvailable(m.Library); err != nil {
		log.Warn("baseline scores with GBDT only", "reason", err)
	} else {
		x, err := ctr.LoadONNX(m.ONNX, ctr.ONNXOptions{LibraryPath: m.Library, Provider: ctr.ProviderAuto,
			SchemaVersion: features.SchemaVersion, Width: features.Width, MaxBatch: 256})
		if err != nil {
			return nil, nil, err
		}
		bt, err := ctr.NewBatcher(x, baselineBatch)
		if err != nil {
			x.Close()
			return nil, nil, err
		}
		primary = bt
		closeAll = func() { bt.Close(); x.Close() }
	}
	c, err := ctr.NewChain(primary, g)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	log.Info("baseline models", "chain", c.Name())
	return c, closeAll, nil
}

// statusCounts counts a handler's answers, served as JSON at /e2e/counts.
type statusCounts struct{ ok, noBid, other atomic.Int64 }

type countingWriter struct {
	http.ResponseWriter
	status int
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (c *statusCounts) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/e2e/counts" {
			_ = json.NewEncoder(w).Encode(c.snapshot())
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		switch cw.status {
		case http.StatusOK, 0:
			c.ok.Add(1)
		case http.StatusNoContent:
			c.noBid.Add(1)
		default:
			c.other.Add(1)
		}
	})
}

// counts is a snapshot of statusCounts.
type counts struct{ OK, NoBid, Other int64 }

func (c *statusCounts) snapshot() counts {
	return counts{c.ok.Load(), c.noBid.Load(), c.other.Load()}
}

// serveBaseline serves bench.Baseline (net/http + encoding/json) over n
// generated campaigns (bench.GenerateCampaigns: what gencampaigns -n N
// -seed 1 -daily 100000000 -pacing asap writes) with the bundled models.
func serveBaseline(addr string, n int, m baselineModels) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	sc, closeModels, err := m.chain(log)
	if err != nil {
		return err
	}
	defer closeModels()
	f, err := bench.NewFixture(bench.Options{Campaigns: n, Scorer: sc, PublicURL: "http://" + addr})
	if err != nil {
		return err
	}
	defer f.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var c statusCounts
	s := &http.Server{Handler: c.wrap(f.Baseline), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second}
	go stopOnSignal(func(ctx context.Context) { _ = s.Shutdown(ctx) })
	log.Info("baseline listening", "addr", addr, "campaigns", n)
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// baselineCounts reads a baseline server's answer counts.
func baselineCounts(ctx context.Context, addr string) (counts, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/e2e/counts", nil)
	if err != nil {
		return counts{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return counts{}, err
	}
	defer resp.Body.Close()
	var c counts
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return c, fmt.Errorf("baseline counts: %w", err)
	}
	return c, nil
}

// stopOnSignal calls stop on SIGTERM or SIGINT.
func stopOnSignal(stop func(context.Context)) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop(ctx)
}
