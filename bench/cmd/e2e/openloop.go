package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/bench"
)

// Open loop: requests leave on a fixed schedule, request i at
// start + i/rate, whether or not earlier ones were answered, and each
// request's latency is counted from the time it was due, not from the time
// it was actually sent. A closed-loop client (or an open-loop one that
// measures from its late send) waits while the server stalls and so never
// records the requests it should have sent meanwhile: coordinated omission.
// Here a stall shows as latency on every request due during it.

// openLoopConfig is one step of the ladder.
type openLoopConfig struct {
	Rate     float64       // requests per second
	Duration time.Duration // measured window
	Conns    int           // connections (and workers); bounds the requests in flight
	// Expire drops a request not yet sent this long after its due time
	// (an error, at that latency). A request once sent is never abandoned
	// (up to answerLimit): a client that gives up closes its connection,
	// and on a server that fell behind the reconnections and the abandoned
	// work turn a backlog into a collapse (measured with a 1 s and then a
	// 5 s deadline on the whole request: at 90% of saturation on a busy
	// machine, nine requests in ten then failed to dial or timed out).
	Expire time.Duration
}

// requestFunc sends one request and returns its HTTP status.
type requestFunc func() (status int, err error)

// answerLimit bounds the wait for a sent request's answer.
const answerLimit = 30 * time.Second

// errExpired is a request dropped unsent, Expire after its due time.
var errExpired = errors.New("open loop: not sent in time")

// openLoopResult is one step's client-side view.
type openLoopResult struct {
	Rate       float64          `json:"offered_req_per_s"`
	Seconds    float64          `json:"seconds"`
	Scheduled  int64            `json:"scheduled"`
	Answered   int64            `json:"answered"`
	Achieved   float64          `json:"achieved_req_per_s"` // answered / measured window
	OK         int64            `json:"status_200"`
	NoBid      int64            `json:"status_204"`
	Other      int64            `json:"status_other"`
	Errors     int64            `json:"errors"` // timeouts and connection errors (latency = timeout)
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	Conns      int              `json:"connections"`
	// Over10ms counts requests answered more than 10 ms after they were
	// due; SvcOver10ms those more than 10 ms after they were sent.
	Over10ms    int64 `json:"over_10ms"`
	SvcOver10ms int64 `json:"over_10ms_from_send"`
	// Latency from the due time (what an exchange waiting on this request
	// sees), and from the actual send (what a coordinated-omission client
	// would report).
	Latency latencySummary `json:"latency_from_schedule"`
	Service latencySummary `json:"latency_from_send"`
	// SendDelay is from the due time to the send: the generator's lag plus
	// any wait for a free connection (all of them busy on a slow server).
	// Lag is the generator's alone, from the due time to the request's
	// hand-over to the connections: it keeps its schedule while this is small.
	SendDelay latencySummary `json:"send_delay"`
	Lag       latencySummary `json:"schedule_lag"`
}

// latencySummary holds percentiles in microseconds.
type latencySummary struct {
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

func summary(h *hdrhistogram.Histogram) latencySummary {
	if h.TotalCount() == 0 {
		return latencySummary{}
	}
	return latencySummary{P50: float64(h.ValueAtQuantile(50)), P99: float64(h.ValueAtQuantile(99)),
		P999: float64(h.ValueAtQuantile(99.9)), Max: float64(h.Max()), Mean: h.Mean()}
}

// newHist records microseconds from 1 us to 100 s at 3 significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 100_000_000, 3) }

// dueAt is request i's due time: computed from i, so that a late send never
// shifts the later ones (no drift, no catching up by skipping).
func dueAt(start time.Time, rate float64, i int64) time.Time {
	return start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
}

// job is one scheduled request.
type job struct{ due time.Time }

// recorder accumulates one worker's observations.
type recorder struct {
	lat, svc, delay          *hdrhistogram.Histogram
	ok, noBid, other, errors int64
	over, svcOver            int64 // latency above slowLimit from due, from send
	errKinds                 map[string]int64
}

// slowLimit is the latency the issue allows no request to exceed.
const slowLimit = 10 * time.Millisecond

func newRecorder() *recorder {
	return &recorder{lat: newHist(), svc: newHist(), delay: newHist()}
}

// record accounts for one request due at due, sent at sent and finished at
// done: its latency is done - due, however late it was sent.
func (r *recorder) record(due, sent, done time.Time, status int, err error) {
	us := func(d time.Duration) int64 { return max(d.Microseconds(), 1) }
	_ = r.lat.RecordValue(us(done.Sub(due)))
	_ = r.svc.RecordValue(us(done.Sub(sent)))
	_ = r.delay.RecordValue(us(sent.Sub(due)))
	if done.Sub(due) > slowLimit {
		r.over++
	}
	if done.Sub(sent) > slowLimit {
		r.svcOver++
	}
	switch {
	case err != nil:
		r.errors++
		if r.errKinds == nil {
			r.errKinds = map[string]int64{}
		}
		r.errKinds[errKind(err)]++
	case status == 200:
		r.ok++
	case status == 204:
		r.noBid++
	default:
		r.other++
	}
}

func (r *recorder) merge(o *recorder) {
	r.lat.Merge(o.lat)
	r.svc.Merge(o.svc)
	r.delay.Merge(o.delay)
	r.ok, r.noBid, r.other, r.errors = r.ok+o.ok, r.noBid+o.noBid, r.other+o.other, r.errors+o.errors
	r.over, r.svcOver = r.over+o.over, r.svcOver+o.svcOver
	for k, v := range o.errKinds {
		if r.errKinds == nil {
			r.errKinds = map[string]int64{}
		}
		r.errKinds[k] += v
	}
}

// errKind names an error by kind for the counts (timeouts, no free
// connection, refused, reset...), without addresses or numbers.
func errKind(err error) string {
	switch {
	case errors.Is(err, errExpired):
		return "not sent in time"
	case errors.Is(err, fasthttp.ErrTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connection"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	var dial *fasthttp.ErrDialWithUpstream
	if errors.As(err, &dial) {
		return "dial: " + errKind(dial.Unwrap())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return fmt.Sprintf("%T", err)
}

var errOpenLoopConfig = errors.New("open loop: rate, duration, connections and expiry must be positive")

// runOpenLoop sends requests on the schedule of cfg with do, from cfg.Conns
// workers fed by one dispatcher. When every worker is busy the due requests
// queue (unbounded up to the schedule's length) and their wait counts in
// their latency; nothing is dropped. It returns once every request has been
// answered or has timed out.
func runOpenLoop(cfg openLoopConfig, do requestFunc) (openLoopResult, error) {
	if cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Conns < 1 || cfg.Expire <= 0 {
		return openLoopResult{}, errOpenLoopConfig
	}
	n := int64(cfg.Rate * cfg.Duration.Seconds())
	if n < 1 {
		return openLoopResult{}, fmt.Errorf("open loop: %v at %.1f/s schedules no request", cfg.Duration, cfg.Rate)
	}
	jobs := make(chan job, n) // the dispatcher never blocks on busy workers
	recs := make([]*recorder, cfg.Conns)
	var wg sync.WaitGroup
	for w := range recs {
		recs[w] = newRecorder()
		wg.Add(1)
		go func(r *recorder) {
			defer wg.Done()
			for j := range jobs {
				sent := time.Now()
				if sent.Sub(j.due) > cfg.Expire {
					r.record(j.due, sent, sent, 0, errExpired)
					continue
				}
				status, err := do()
				r.record(j.due, sent, time.Now(), status, err)
			}
		}(recs[w])
	}
	// The dispatcher keeps an OS thread and a P of its own (GOMAXPROCS at
	// least 2, also on one CPU): it sleeps in nanosleep, precise to tens of
	// microseconds, while the workers and the network poller run on the
	// other P. (With one P, a dispatcher asleep in a system call holds it,
	// and answers wait for the runtime's sysmon to poll the network: up to
	// 10 ms.)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if prev := runtime.GOMAXPROCS(0); prev < 2 {
		runtime.GOMAXPROCS(2)
		defer runtime.GOMAXPROCS(prev)
	}
	lag := newHist()
	start := time.Now().Add(time.Millisecond)
	for i := range n {
		due := dueAt(start, cfg.Rate, i)
		sleepUntil(due)
		_ = lag.RecordValue(max(time.Since(due).Microseconds(), 1))
		jobs <- job{due: due}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	all := newRecorder()
	for _, r := range recs {
		all.merge(r)
	}
	res := openLoopResult{Rate: cfg.Rate, Seconds: cfg.Duration.Seconds(), Scheduled: n, Conns: cfg.Conns,
		OK: all.ok, NoBid: all.noBid, Other: all.other, Errors: all.errors, Over10ms: all.over, SvcOver10ms: all.svcOver, ErrorKinds: all.errKinds,
		Latency: summary(all.lat), Service: summary(all.svc), SendDelay: summary(all.delay), Lag: summary(lag)}
	res.Answered = res.OK + res.NoBid + res.Other
	res.Achieved = float64(res.Answered) / max(elapsed.Seconds(), cfg.Duration.Seconds())
	return res, nil
}

// httpRequester posts body to addr's /openrtb2/bid over up to conns
// keep-alive connections.
func httpRequester(addr string, body []byte, conns int) requestFunc {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: conns, NoDefaultUserAgentHeader: true,
		MaxIdemponentCallAttempts: 1, MaxConnWaitTimeout: 10 * time.Second}
	uri := "http://" + addr + "/openrtb2/bid"
	return func() (int, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(uri)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.Header.Set("x-openrtb-version", "2.6")
		req.SetBodyRaw(body)
		if err := c.DoTimeout(req, resp, answerLimit); err != nil {
			return 0, err
		}
		return resp.StatusCode(), nil
	}
}

// sleepUntil waits for t. The runtime's timers wake up to a millisecond late
// when the process is idle (the network poller sleeps in whole
// milliseconds), which at a few thousand requests a second would send most
// requests late; a nanosleep system call wakes within tens of microseconds.
// runOpenLoop gives the dispatcher its own thread and P for it.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		if d > 2*time.Millisecond {
			time.Sleep(d - time.Millisecond)
			continue
		}
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil)
	}
}

// openLoopOnly sends one open-loop step of the benchmark request to a
// server already running at o.openLoop (e2e -openloop ADDR -rate R), for
// profiling it while it is under a known load, and prints the summary.
func openLoopOnly(o *options, stdout io.Writer) error {
	body := bench.SiteBanner("0.5")
	res, err := runOpenLoop(openLoopConfig{Rate: o.rate, Duration: o.duration, Conns: o.olConns, Expire: stepExpire},
		httpRequester(o.openLoop, body, o.olConns))
	if err != nil {
		return err
	}
	us := func(v float64) string { return time.Duration(v * 1e3).String() }
	fmt.Fprintf(stdout, "%.0f req/s offered, %.0f answered/s (200: %d, 204: %d, other %d, errors %d); from schedule p50 %s p99 %s p99.9 %s max %s; over 10 ms %d; generator lag p99 %s\n",
		res.Rate, res.Achieved, res.OK, res.NoBid, res.Other, res.Errors, us(res.Latency.P50), us(res.Latency.P99),
		us(res.Latency.P999), us(res.Latency.Max), res.Over10ms, us(res.Lag.P99))
	return nil
}
