package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Sentinel errors.
var (
	ErrNoTarget = errors.New("simulator: no target")
	ErrBadRate  = errors.New("simulator: rate must be > 0")
)

// Config is one run. Zero fields take the defaults in DefaultConfig.
type Config struct {
	Targets     []string      // bidder URLs, e.g. http://127.0.0.1:8080/openrtb2/bid; round robin
	Admin       []string      // optional admin base URLs (GET /admin/budget)
	AdminToken  string        // their bearer token (admin_token), "" none
	Rate        float64       // mean requests per second (the diurnal curve's mean)
	Duration    time.Duration // sending window
	MaxRequests int64         // hard cap on requests scheduled (0 = 3 x rate x duration + 100)
	Seed        uint64
	// Stream picks another sequence of requests from the same world (the
	// publishers and users of Seed): its request ids, arrivals, requests and
	// auctions differ from stream 0's. The A/B warm-up uses stream 1.
	Stream       uint64
	MaxInflight  int           // bound on requests awaiting an answer; more are dropped (counted)
	ConnsPerHost int           // keep-alive pool size per target (default MaxInflight)
	Spin         time.Duration // waits shorter than this spin instead of using a timer (precise, costs CPU)
	TMax         time.Duration // 0: each request's own tmax
	Grace        time.Duration // how long after tmax an answer is still awaited (counted as timeout)
	GzipShare    float64       // share of requests sent gzip-compressed
	Diurnal      float64       // diurnal amplitude 0..1
	PeakHour     float64       // UTC hour of peak traffic
	TimeScale    float64       // simulated seconds per real second (1 = real time)
	SimStart     time.Time     // simulated time at start (default: now)
	RenderProb   float64       // probability a won ad renders (billing: burl + impression trackers)
	RenderDelay  time.Duration // mean delay from win to render
	ClickDelay   time.Duration // mean delay from render to click
	Traffic      TrafficConfig
	Market       Market
	Notices      NoticeConfig
	Truth        GroundTruth
	// MinToWinShare is the share of publishers whose exchange substitutes
	// ${AUCTION_MIN_TO_WIN} in win and loss notices (default 0.5; negative:
	// none).
	MinToWinShare float64
	// Values gives each campaign (bid.cid) a value per impression, so the
	// report can give surplus; nil: no surplus figures.
	Values map[string]CampaignValue
	// DriftAt, when positive, makes the world change at SimStart + DriftAt
	// (simulated time): the ground truth's publisher and OS terms change
	// sign (GroundTruth.DriftAt) and publisher popularity moves down the
	// ranks (TrafficConfig.DriftAt), so a model trained before goes stale
	// and the publisher feature's distribution shifts. 0: no drift.
	DriftAt       time.Duration
	LogDir        string // training logs (JSONL) when set
	AllowNonLocal bool
	Progress      io.Writer // live line once a second when set
	Source        Source    // nil: generated traffic
}

// DefaultConfig holds the defaults (see -help).
var DefaultConfig = Config{Rate: 1000, Duration: 10 * time.Second, Seed: 1, MaxInflight: 2048,
	Grace: 200 * time.Millisecond, GzipShare: 0.1, PeakHour: 20, TimeScale: 1, RenderProb: 0.9,
	RenderDelay: 100 * time.Millisecond, ClickDelay: 500 * time.Millisecond, MinToWinShare: 0.5}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig
	if len(c.Targets) == 0 {
		return c, ErrNoTarget
	}
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) {
		return c, ErrBadRate
	}
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = int64(3*c.Rate*c.Duration.Seconds()) + 100
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = d.MaxInflight
	}
	if c.ConnsPerHost <= 0 {
		c.ConnsPerHost = c.MaxInflight
	}
	if c.Grace <= 0 {
		c.Grace = d.Grace
	}
	if c.GzipShare < 0 {
		c.GzipShare = 0
	}
	if c.TimeScale <= 0 {
		c.TimeScale = d.TimeScale
	}
	if c.SimStart.IsZero() {
		c.SimStart = time.Now()
	}
	if c.DriftAt > 0 {
		at := c.SimStart.Add(c.DriftAt).Unix()
		c.Truth.DriftAt, c.Traffic.DriftAt = at, at
	}
	if c.RenderProb == 0 {
		c.RenderProb = d.RenderProb
	}
	c.RenderProb = max(c.RenderProb, 0)
	if c.RenderDelay == 0 {
		c.RenderDelay = d.RenderDelay
	}
	if c.ClickDelay == 0 {
		c.ClickDelay = d.ClickDelay
	}
	c.RenderDelay, c.ClickDelay = max(c.RenderDelay, 0), max(c.ClickDelay, 0) // negative: explicitly none
	if c.MinToWinShare == 0 {
		c.MinToWinShare = d.MinToWinShare
	}
	c.MinToWinShare = max(c.MinToWinShare, 0)
	if c.Market.Bid.Sigma == 0 {
		m := DefaultMarket
		if c.Market.MeanBidders > 0 {
			m.MeanBidders = c.Market.MeanBidders
		} else if c.Market.MeanBidders < 0 { // explicitly none
			m.MeanBidders = 0
		}
		m.FixedBidders = c.Market.FixedBidders
		c.Market = m
	}
	for _, t := range append(append([]string{}, c.Targets...), c.Admin...) {
		if err := CheckHost(t, c.AllowNonLocal); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Source yields requests and their send offsets (seconds since start,
// non-decreasing). ok=false ends the run.
type Source interface {
	Next() (og *Outgoing, at float64, ok bool)
}

var (
	_ Source = (*genSource)(nil)
	_ Source = (*ReplaySource)(nil)
)

// genSource generates traffic from a World on a Poisson schedule.
type genSource struct {
	world     *World
	arr       *Arrivals
	rng       *rand.Rand
	seq       uint64
	simStart  int64
	timeScale float64
	gzipShare float64
}

// NewGenSource is the generated traffic of cfg (used by run and gen).
func NewGenSource(cfg Config) Source {
	curve := RateCurve{Base: cfg.Rate, Amplitude: cfg.Diurnal, PeakHour: cfg.PeakHour}
	startHour := float64(cfg.SimStart.UTC().Hour()) + float64(cfg.SimStart.UTC().Minute())/60
	st := cfg.Stream * 0x9e3779b97f4a7c15 // 0 for stream 0: the original sequence
	return &genSource{
		world:    NewWorld(cfg.Traffic, cfg.Seed),
		arr:      NewArrivals(curve, rand.New(rand.NewPCG(cfg.Seed, 0xa771^st)), startHour, cfg.TimeScale),
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x7eaf^st)),
		seq:      cfg.Stream << 40, // request ids (and per-request auction draws) of its own
		simStart: cfg.SimStart.Unix(), timeScale: cfg.TimeScale, gzipShare: cfg.GzipShare,
	}
}

func (g *genSource) Next() (*Outgoing, float64, bool) {
	at := g.arr.Next()
	g.seq++
	sim := g.simStart + int64(at*g.timeScale)
	return g.world.Request(g.rng, g.seq, sim, g.gzipShare), at, true
}

// Runner executes one run.
type Runner struct {
	cfg       Config
	stats     *Stats
	notifier  *Notifier
	logs      *logWriter
	clients   []*fasthttp.HostClient
	paths     []string
	inflight  atomic.Int64
	lastAt    atomic.Uint64 // float64 bits: offset of the last request taken from the source
	sourceDry atomic.Bool   // the source ran out before the window ended
	wg        sync.WaitGroup
	admin     *adminPoller
}

// NewRunner validates cfg and prepares clients.
func NewRunner(cfg Config) (*Runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg}
	for _, t := range cfg.Targets {
		u, err := url.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("simulator: target %q: %w", t, err)
		}
		path := u.RequestURI()
		if path == "/" || path == "" {
			path = "/openrtb2/bid"
		}
		r.paths = append(r.paths, path)
		r.clients = append(r.clients, &fasthttp.HostClient{Addr: hostPort(u), IsTLS: u.Scheme == "https",
			MaxConns: cfg.ConnsPerHost, MaxIdleConnDuration: 30 * time.Second, NoDefaultUserAgentHeader: true,
			ReadBufferSize: 16 << 10, MaxIdemponentCallAttempts: 1, MaxConnWaitTimeout: 5 * time.Second})
	}
	return r, nil
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return u.Host + ":443"
	}
	return u.Host + ":80"
}

// Config is the effective configuration.
func (r *Runner) Config() Config { return r.cfg }

// Run sends traffic until the duration or request cap is reached (or ctx
// ends), waits for answers and notices (bounded), and returns the report.
func (r *Runner) Run(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	src := cfg.Source
	if src == nil {
		src = NewGenSource(cfg)
	}
	start := time.Now()
	r.stats = NewStats(start, 1<<21)
	r.notifier = NewNotifier(cfg.Notices, cfg.AllowNonLocal)
	if cfg.LogDir != "" {
		lw, err := newLogWriter(cfg.LogDir, r.stats)
		if err != nil {
			return nil, err
		}
		r.logs = lw
	}
	r.admin = newAdminPoller(cfg.Admin, cfg.AdminToken)
	adminStart, errs := r.admin.fetch()
	if len(errs) > 0 {
		// No budget view, no overspend check: a run that went on reported
		// overspend 0 against a listener that answered 401 to every poll.
		return nil, fmt.Errorf("simulator: admin: %s (an admin_token needs -admin-token or BIDDER_ADMIN_TOKEN)", strings.Join(errs, "; "))
	}
	stopProgress := r.startProgress(start)
	r.sendLoop(ctx, src, start)
	r.wg.Wait() // every request ends by its own deadline
	ncfg := r.notifier.Config()
	drain := ncfg.LateDelay + 4*ncfg.Delay + cfg.RenderDelay*4 + cfg.ClickDelay*4 + ncfg.Timeout
	r.notifier.Close(time.Now().Add(drain))
	stopProgress()
	if r.logs != nil {
		r.logs.close()
	}
	final, errs := r.admin.fetch()
	rep := r.report(start, final, adminStart)
	rep.AdminErrors = errs
	return rep, nil
}

type scheduled struct {
	og *Outgoing
	at float64
}

// prefetch builds requests ahead of their send time in its own goroutine so
// that encoding never delays the schedule; it stops at the window's end, the
// request cap, or when stop closes.
func (r *Runner) prefetch(src Source, stop <-chan struct{}) <-chan scheduled {
	ch := make(chan scheduled, 1024)
	go func() {
		defer close(ch)
		for n := int64(0); n < r.cfg.MaxRequests; n++ {
			og, at, ok := src.Next()
			if !ok {
				r.sourceDry.Store(true)
				return
			}
			if at >= r.cfg.Duration.Seconds() {
				return
			}
			r.lastAt.Store(math.Float64bits(at))
			if og.Gzip && og.wire == nil {
				og.wire = fasthttp.AppendGzipBytes(nil, og.Body)
			}
			select {
			case ch <- scheduled{og, at}:
			case <-stop:
				return
			}
		}
	}()
	return ch
}

func (r *Runner) sendLoop(ctx context.Context, src Source, start time.Time) {
	stop := make(chan struct{})
	defer close(stop)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for s := range r.prefetch(src, stop) {
		due := start.Add(time.Duration(s.at * float64(time.Second)))
		if d := time.Until(due); d > 0 && d <= r.cfg.Spin {
			// Timers below a millisecond wake up to a millisecond late (the
			// runtime's poller sleeps in milliseconds): spin instead.
			for time.Now().Before(due) {
				runtime.Gosched()
			}
		} else if d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		r.stats.add(func(c *Counters) { c.Scheduled++ })
		if r.inflight.Load() >= int64(r.cfg.MaxInflight) {
			r.stats.recordDropped(due)
			continue
		}
		r.inflight.Add(1)
		r.wg.Add(1)
		go r.do(s.og, due)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func (r *Runner) tmax(og *Outgoing) time.Duration {
	if r.cfg.TMax > 0 {
		return r.cfg.TMax
	}
	if og.Req.TMax > 0 {
		return time.Duration(og.Req.TMax) * time.Millisecond
	}
	return 100 * time.Millisecond
}

func (r *Runner) do(og *Outgoing, due time.Time) {
	defer r.wg.Done()
	defer r.inflight.Add(-1)
	i := int(og.Seq % uint64(len(r.clients)))
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(r.paths[i])
	req.Header.SetHost(r.clients[i].Addr)
	req.Header.SetContentType("application/json")
	req.Header.Set("x-openrtb-version", og.Version)
	if og.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
		if og.wire == nil {
			og.wire = fasthttp.AppendGzipBytes(nil, og.Body)
		}
		req.SetBodyRaw(og.wire)
	} else {
		req.SetBodyRaw(og.Body)
	}
	tmax := r.tmax(og)
	sentAt := time.Now()
	r.stats.recordSent(due, sentAt)
	deadline := due.Add(tmax + r.cfg.Grace)
	err := r.clients[i].DoDeadline(req, resp, deadline)
	now := time.Now()
	lat := now.Sub(due)
	if err != nil {
		r.stats.recordFailure(due, lat, now.Sub(sentAt), isTimeout(err) || !now.Before(deadline))
		return
	}
	late := lat > tmax
	status := resp.StatusCode()
	r.stats.recordAnswer(due, lat, now.Sub(sentAt), status, late)
	if status != fasthttp.StatusOK {
		return
	}
	body, err := resp.BodyUncompressed()
	if err != nil {
		r.stats.add(func(c *Counters) { c.BadResponses++ })
		return
	}
	r.handleBids(og, due, body, late)
}
