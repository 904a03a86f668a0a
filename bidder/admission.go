package bidder

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Admission control: an adaptive limit on the bid requests in the system,
// and a last deadline check before an answer is written.
//
// Requests in the system are those inside the handler plus those queued
// ahead of this one. On a saturated core the queue is not visible as
// concurrency (each request runs to completion; the rest wait in socket
// buffers and the run queue), so it is estimated by Little's law from the
// standing queue delay: the least wait (handler entry - arrival, see
// edge.go) of any request in the last window, at most this request's own,
// times the rate requests complete. The least wait, not this request's: a
// process descheduled for 40 ms makes the requests that arrived meanwhile
// wait 40 ms without any queue behind them (the backlog drains in a
// millisecond), and only a queue that stands for a whole window delays every
// request. A request that finds
//
//	inflight + min(wait, standing wait) x completion rate >= limit
//
// is shed at once: 204, reason overload, before it is parsed. Sheds cost a
// few microseconds, so shedding the excess keeps the queue, and the wait of
// everyone, short.
//
// The limit adapts every admissionWindow on the latency of admitted
// requests, arrival to answer, against limits.admission.target (default half
// of limits.internal_budget). A window with more than 5% of them over the
// target is a strike; two strikes in a row cut the limit by target / mean
// latency, at most 0.75 (more than 25% over: at most 0.5) and at least 0.1,
// so a sustained overload is met within two windows. A single bad window
// does not cut: a process descheduled for tens of milliseconds, or a
// collection, makes every request of one window late without any queue, and
// cutting on it (measured: a closed loop of 32 connections on a shared
// machine) drove the limit under the connection count and shed 80% of
// requests that had time to spare. With at most 1% over, if the window's
// requests came within half of the limit, it grows by a quarter (at least
// 1), so a limit cut by a burst recovers in a few hundred milliseconds; in
// between it holds. It stays in [min_limit, max_limit] (defaults 8 and
// 1024) and starts at max_limit, so an idle or lightly loaded bidder never
// sheds: shedding needs both a queue and a target missed twice in a row.
//
// Notices, health and admin requests are never shed.

const (
	admissionWindow = 50 * time.Millisecond
	onTarget        = 0.01 // at most this fraction of admitted requests over the target: may grow
	overTarget      = 0.05 // more: cut the limit by cutFactor
	overloaded      = 0.25 // more: by hardCut
	cutFactor       = 0.75
	hardCut         = 0.5
	deepestCut      = 0.1
	growFactor      = 1.25
)

type admission struct {
	off      bool
	min, max float64
	target   time.Duration
	base     time.Time // monotonic origin of the ns clocks below

	limit    atomic.Uint64 // float64 bits
	rate     atomic.Uint64 // completions per second, float64 bits (last window)
	inflight atomic.Int64

	mu       sync.Mutex // the window roll; TryLock, never waited on
	winStart atomic.Int64
	done     atomic.Uint64 // completions this window (admitted and shed)
	admitted atomic.Uint64
	over     atomic.Uint64 // admitted, answered after arrival + target
	latNS    atomic.Int64  // sum of admitted latencies, ns
	used     atomic.Bool   // some request found the system at half the limit or more
	minWait  atomic.Int64  // least wait of a request this window, ns
	standing atomic.Int64  // least wait of the last window, ns
	strike   bool          // the last window was over the target (under mu)
}

func newAdmission(c AdmissionConfig) *admission {
	a := &admission{off: c.Disable, min: float64(c.MinLimit), max: float64(c.MaxLimit), target: c.Target, base: time.Now()}
	a.limit.Store(math.Float64bits(a.max))
	a.minWait.Store(math.MaxInt64)
	return a
}

func (a *admission) load() float64 { return math.Float64frombits(a.limit.Load()) }

// admit decides for a request that arrived at arrival and reached its
// handler now. An admitted request must be followed by finish(true).
func (a *admission) admit(arrival, now time.Time) bool {
	if a.off {
		return true
	}
	wait := now.Sub(arrival)
	if wait < 0 {
		wait = 0
	}
	for w := int64(wait); ; {
		m := a.minWait.Load()
		if w >= m || a.minWait.CompareAndSwap(m, w) {
			break
		}
	}
	queued := min(wait, time.Duration(a.standing.Load()))
	n := float64(a.inflight.Load()) + queued.Seconds()*math.Float64frombits(a.rate.Load())
	lim := a.load()
	if n >= lim/2 && !a.used.Load() {
		a.used.Store(true)
	}
	if n >= lim {
		return false
	}
	a.inflight.Add(1)
	return true
}

// finish records a request's answer at end.
func (a *admission) finish(admitted bool, arrival, end time.Time) {
	if a.off {
		return
	}
	if admitted {
		a.inflight.Add(-1)
		a.admitted.Add(1)
		lat := end.Sub(arrival)
		a.latNS.Add(int64(lat))
		if lat > a.target {
			a.over.Add(1)
		}
	}
	a.done.Add(1)
	now := int64(end.Sub(a.base))
	if now-a.winStart.Load() >= int64(admissionWindow) && a.mu.TryLock() {
		a.roll(now)
		a.mu.Unlock()
	}
}

// roll closes the window ending at now (ns since base): the completion
// rate, then one AIMD step.
func (a *admission) roll(now int64) {
	dt := now - a.winStart.Load()
	if dt < int64(admissionWindow) {
		return // another request rolled it
	}
	a.winStart.Store(now)
	done, adm, over, latNS := a.done.Swap(0), a.admitted.Swap(0), a.over.Swap(0), a.latNS.Swap(0)
	used := a.used.Swap(false)
	if m := a.minWait.Swap(math.MaxInt64); m != math.MaxInt64 {
		a.standing.Store(m)
	} else {
		a.standing.Store(0) // no request: no queue
	}
	a.rate.Store(math.Float64bits(float64(done) / time.Duration(dt).Seconds()))
	lim := a.load()
	frac, grad := 0.0, 1.0
	if adm > 0 {
		frac = float64(over) / float64(adm)
		grad = float64(a.target) * float64(adm) / float64(max(latNS, 1)) // target / mean latency
	}
	bad := frac > overTarget
	again := bad && a.strike
	a.strike = bad
	switch {
	case again && frac > overloaded:
		lim = max(a.min, lim*min(hardCut, max(deepestCut, grad)))
	case again:
		lim = max(a.min, lim*min(cutFactor, max(deepestCut, grad)))
	case frac <= onTarget && used:
		lim = min(a.max, max(lim+1, lim*growFactor))
	}
	a.limit.Store(math.Float64bits(lim))
}

// shed answers a request the limit refused.
func (s *Server) shed(ctx *fasthttp.RequestCtx, bc *bidCtx) {
	s.noBid(ctx, bc, reasonOverload)
}

// late reports whether the answer would go out after the deadline; if so the
// bid is withdrawn: its holds are released (no notice can come for a bid
// never sent) and the caller answers 204, reason late.
func (s *Server) late(bc *bidCtx, deadline time.Time) bool {
	if !time.Now().After(deadline) {
		return false
	}
	cat := s.catalog.Load()
	for i := range bc.best {
		if b := &bc.best[i]; b.slot >= 0 && b.hold != 0 {
			cat.money.unhold(bc.slots[b.slot].cand.Campaign, b.hold, bc.user, bc.now)
			b.hold = 0
		}
	}
	return true
}

// answered closes a bid request's books: latency from arrival (queueing
// included) and the limiter's feedback.
func (s *Server) answered(bc *bidCtx, admitted bool, arrival, entry time.Time) {
	end := time.Now()
	s.m.latency.observe(bc.stripe, end.Sub(arrival))
	s.m.queue.observe(bc.stripe, entry.Sub(arrival))
	if !admitted {
		s.m.shedTime.observe(bc.stripe, end.Sub(entry))
	}
	s.adm.finish(admitted, arrival, end)
}
