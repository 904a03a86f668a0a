package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openbidder/openbidder/bench"
)

// harness runs the measurements in order and fills the result.
type harness struct {
	o       *options
	out     io.Writer
	pinned  bool
	tmp     string
	script  string // wrk Lua script
	body    []byte
	dirs    map[int]string // campaign files by count
	trivial float64        // mean trivial req/s, once measured
}

// The series read from the bidder's /metrics (the per-campaign series of a
// 10,000-campaign bidder are skipped).
var bidderSeries = []string{"openbidder_requests_total", "openbidder_bid_responses_total", "openbidder_nobids_total",
	latencyHist, "openbidder_scored_rows_total", "openbidder_model_", "openbidder_candidates_trimmed_total"}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// holdTTL is notices.hold_ttl for the measurement: no notice ever settles a
// bid here, so every bid's hold stays open until it expires. With the 2m
// default, a few hundred thousand open holds would exhaust the winning
// campaign's lease (at most 1,000 units) within seconds and turn bids into
// "budget" no-bids; 2s keeps them within it, as bench.NewFixture does.
const holdTTL = "2s"

// stepExpire drops an open-loop request not sent within it of its due
// time (see openLoopConfig.Expire).
const stepExpire = 5 * time.Second

func (h *harness) run(ctx context.Context, placementWords string) (*result, error) {
	o := h.o
	start := time.Now()
	res := &result{Schema: 1, Date: start.Format(time.RFC3339), Command: o.command}
	res.Load.UptimeBefore, res.Load.Before = readUptime()
	res.Machine = machineInfo()
	res.Machine.Pinned, res.Machine.Placement = h.pinned, placementWords
	res.Machine.ServerCPU, res.Machine.LoadCPU = o.serverCPU, o.loadCPU
	res.Commit, res.Dirty = gitCommit()
	h.body = bench.SiteBanner("0.5")
	res.Set = settings{Duration: o.duration.Seconds(), Warmup: o.warmup.Seconds(), StepWarmup: o.stepWarmup.Seconds(),
		Settle: o.settle.Seconds(), IdleWindow: o.idle.Seconds(), WrkConns: o.wrkConns, WrkThreads: o.wrkThreads,
		OLConns: o.olConns, Ladder: o.ladder, RequestBytes: len(h.body),
		Request:      "bench.SiteBanner(\"0.5\"): single-imp site banner, publisher 5, USA, iOS phone",
		Campaigns:    "gencampaigns -n N -seed 1 -daily 100000000 -pacing asap",
		BidderConfig: "defaults (configs/bidder.yaml's values) but listen/admin on free ports, a temporary budget.store_dir, notices.hold_ttl " + holdTTL + ", currency rates of bench.Rates"}
	h.logf("e2e: %s; load %s", placementWords, res.Load.Before)
	err := h.measure(ctx, res)
	res.Load.UptimeAfter, res.Load.After = readUptime()
	res.Seconds = time.Since(start).Seconds()
	res.Targets = evaluate(res)
	if h.tmp != "" {
		os.RemoveAll(h.tmp)
	}
	return res, err
}

func (h *harness) measure(ctx context.Context, res *result) error {
	o := h.o
	var err error
	if err = os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if h.tmp, err = os.MkdirTemp("", "bench-e2e-"); err != nil {
		return err
	}
	if h.script, err = writeScript(h.tmp, h.body); err != nil {
		return err
	}
	if err := h.generate(ctx); err != nil {
		return err
	}
	first, err := h.trivialRun(ctx, "first", nil)
	if err != nil {
		return err
	}
	res.Trivial = append(res.Trivial, first)
	h.trivial = first.Wrk.ReqPerSec
	largest := slices.Max(o.campaigns)
	for _, n := range o.campaigns {
		run, idle, err := h.bidderRun(ctx, n, n == largest && o.idle > 0)
		res.Servers = append(res.Servers, run)
		if idle != nil {
			res.Idle = idle
		}
		if err != nil {
			return err
		}
	}
	for _, n := range o.baselineN {
		run, err := h.baselineRun(ctx, n)
		res.Servers = append(res.Servers, run)
		if err != nil {
			return err
		}
	}
	last, err := h.trivialRun(ctx, "last", res)
	if last.Wrk.Requests > 0 {
		res.Trivial = append(res.Trivial, last)
	}
	if err != nil {
		return err
	}
	mean := (first.Wrk.ReqPerSec + last.Wrk.ReqPerSec) / 2
	perCPU := (first.PerCPUSecond + last.PerCPUSecond) / 2
	for i := range res.Servers {
		c := &res.Servers[i].Closed
		c.Ratio = c.Wrk.ReqPerSec / mean
		if perCPU > 0 {
			c.CPURatio = c.PerCPUSecond / perCPU
		}
	}
	return nil
}

// generate writes each campaign set once (gencampaigns, budgets raised and
// pacing asap so that neither turns bids into no-bids).
func (h *harness) generate(ctx context.Context) error {
	h.dirs = map[int]string{}
	for _, n := range h.o.campaigns {
		if h.dirs[n] != "" {
			continue
		}
		dir := filepath.Join(h.tmp, "campaigns-"+strconv.Itoa(n))
		cmd := exec.CommandContext(ctx, h.o.gencampaigns, "-n", strconv.Itoa(n), "-seed", strconv.Itoa(bench.GenSeed),
			"-daily", "100000000", "-pacing", "asap", "-out", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("gencampaigns -n %d: %w: %s", n, err, out)
		}
		h.dirs[n] = dir
	}
	return nil
}

func (h *harness) wrk(addr string, d time.Duration) wrkRun {
	return wrkRun{URL: "http://" + addr + "/openrtb2/bid", Script: h.script, Conns: h.o.wrkConns,
		Threads: h.o.wrkThreads, Duration: d, CPU: h.o.loadCPU}
}

// warm is the unmeasured wrk run before a measured one.
func (h *harness) warm(ctx context.Context, addr string) error {
	if h.o.warmup < time.Second {
		return nil
	}
	_, err := h.wrk(addr, h.o.warmup).run(ctx)
	return err
}

// measured is the measured wrk run, with the CPU time the server (pid) got
// meanwhile: on a shared machine it shows how much of its core it had.
func (h *harness) measured(ctx context.Context, addr string, pid int) (closedLoop, error) {
	c0, err1 := procCPU(pid)
	q0, err2 := procRunWait(pid)
	if err := errors.Join(err1, err2); err != nil {
		return closedLoop{}, err
	}
	w, err := h.wrk(addr, h.o.duration).run(ctx)
	if err != nil {
		return closedLoop{}, err
	}
	c1, err1 := procCPU(pid)
	q1, err2 := procRunWait(pid)
	if err := errors.Join(err1, err2); err != nil {
		return closedLoop{}, err
	}
	c := closedLoop{Wrk: w}
	if w.Seconds > 0 {
		c.ServerCPU = (c1 - c0).Seconds() / w.Seconds
		c.RunWait = max(q1-q0, 0).Seconds() / w.Seconds
	}
	if c.ServerCPU > 0 {
		c.PerCPUSecond = w.ReqPerSec / c.ServerCPU
	}
	return c, nil
}

func (h *harness) self() (string, error) { return os.Executable() }

func (h *harness) trivialRun(ctx context.Context, which string, res *result) (closedLoop, error) {
	addr, err := freePort()
	if err != nil {
		return closedLoop{}, err
	}
	self, err := h.self()
	if err != nil {
		return closedLoop{}, err
	}
	p, err := startProc("trivial", h.o.serverCPU, filepath.Join(h.o.out, "trivial.log"), nil, self, "-serve", "trivial", "-listen", addr)
	if err != nil {
		return closedLoop{}, err
	}
	defer p.stop(10 * time.Second)
	if _, err := p.waitReady("http://"+addr+"/", 30*time.Second); err != nil {
		return closedLoop{}, err
	}
	if err := h.warm(ctx, addr); err != nil {
		return closedLoop{}, err
	}
	c, err := h.measured(ctx, addr, p.pid())
	if err != nil {
		return closedLoop{}, err
	}
	w := c.Wrk
	c.Requests, c.Ratio = float64(w.Requests), 1
	h.logf("trivial fasthttp 204 (%s): %.0f req/s, p50 %s p99 %s, %.2f cores, %.2f waiting for a CPU (%.0f req per CPU-second)",
		which, w.ReqPerSec, us(w.P50), us(w.P99), c.ServerCPU, c.RunWait, c.PerCPUSecond)
	if res != nil {
		res.TrivialLadder, err = h.floorSteps(ctx, addr, p.pid(), res.Servers)
	}
	return c, err
}

// bidderConfig writes the bidder's config for n campaigns.
func (h *harness) bidderConfig(n int) (string, error) {
	dir := filepath.Join(h.tmp, "bidder-"+strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var rates strings.Builder
	for _, k := range slices.Sorted(maps.Keys(bench.Rates)) {
		fmt.Fprintf(&rates, "    %s: %g\n", k, bench.Rates[k])
	}
	cfg := "campaigns_dir: " + h.dirs[n] + "\n" +
		"instance_id: bench-e2e\n" +
		"currency:\n  base: USD\n  rates:\n" + rates.String() +
		"notices:\n  key: bench-e2e-notice-key\n  hold_ttl: " + holdTTL + "\n" +
		"budget:\n  store_dir: " + filepath.Join(dir, "nats") + "\n"
	p := filepath.Join(dir, "bidder.yaml")
	return p, os.WriteFile(p, []byte(cfg), 0o644)
}

// bidderRun starts bin/bidder over n campaigns and measures it: idle first
// (when asked), then closed-loop saturation, then the open-loop ladder.
func (h *harness) bidderRun(ctx context.Context, n int, idle bool) (serverRun, *idleRun, error) {
	run := serverRun{Name: "bidder", Campaigns: n, Log: filepath.Join(h.o.out, fmt.Sprintf("bidder-%d.log", n))}
	fail := func(err error) (serverRun, *idleRun, error) {
		run.Error = err.Error()
		return run, nil, fmt.Errorf("bidder at %d campaigns: %w", n, err)
	}
	cfg, err := h.bidderConfig(n)
	if err != nil {
		return fail(err)
	}
	addr, err1 := freePort()
	admin, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return fail(err)
	}
	p, err := startProc("bidder", h.o.serverCPU, run.Log, nil, h.o.bidder, "-config", cfg, "-listen", addr, "-admin-listen", admin)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := p.stop(30 * time.Second); err != nil {
			h.logf("%v", err)
		}
	}()
	ready, err := p.waitReady("http://"+addr+"/readyz", h.o.readyTimeout)
	if err != nil {
		return fail(err)
	}
	run.ReadyIn = ready.Seconds()
	h.logf("bidder, %d campaigns: ready in %.1fs", n, run.ReadyIn)
	metrics := "http://" + admin + "/metrics"
	var ir *idleRun
	if idle {
		if ir, err = h.idle(ctx, p, n); err != nil {
			return fail(err)
		}
	}
	if err := h.bidderClosed(ctx, &run, addr, metrics, p.pid()); err != nil {
		return run, ir, err
	}
	if slices.Contains(h.o.ladderCampaigns, n) {
		for _, f := range h.o.ladder {
			st, err := h.step(ctx, addr, metrics, p.pid(), f, run.Closed.Wrk.ReqPerSec)
			if err != nil {
				return fail(err)
			}
			run.Ladder = append(run.Ladder, st)
		}
	}
	run.RSSMiB, run.PeakMiB, _ = procMem(p.pid())
	return run, ir, nil
}

// beside measures the trivial server on the server CPU just before a
// closed loop, while the server under test sits idle there (closedLoop.Beside).
func (h *harness) beside(ctx context.Context, name string, n int) (float64, error) {
	if !h.o.beside {
		return 0, nil
	}
	c, err := h.trivialRun(ctx, fmt.Sprintf("beside the %s at %d campaigns", name, n), nil)
	return c.Wrk.ReqPerSec, err
}

// setBeside records the closed loop's ratio to the trivial run beside it.
func (c *closedLoop) setBeside(trivial float64) {
	if trivial > 0 {
		c.Beside, c.BesideRatio = trivial, c.Wrk.ReqPerSec/trivial
	}
}

// bidderClosed is the closed loop against the bidder, with its own counts.
func (h *harness) bidderClosed(ctx context.Context, run *serverRun, addr, metrics string, pid int) error {
	beside, err := h.beside(ctx, "bidder", run.Campaigns)
	if err != nil {
		return err
	}
	if err := h.warm(ctx, addr); err != nil {
		return err
	}
	before, err := scrape(ctx, metrics, bidderSeries...)
	if err != nil {
		return err
	}
	c, err := h.measured(ctx, addr, pid)
	if err != nil {
		return err
	}
	after, err := scrape(ctx, metrics, bidderSeries...)
	if err != nil {
		return err
	}
	w := c.Wrk
	c.Ratio = w.ReqPerSec / h.trivial
	c.setBeside(beside)
	d := after.sub(before)
	c.Requests, c.Bids, c.BidShare = bidCounts(d)
	c.NoBids = d.byLabel("openbidder_nobids_total", "reason")
	if hist, err := histogramOf(d, latencyHist); err == nil {
		s := summarise(hist)
		c.Server = &s
	}
	c.Model = modelOf(after, d)
	run.Closed = c
	srv := "-"
	if c.Server != nil {
		srv = c.Server.P99.String()
	}
	h.logf("bidder, %d campaigns, closed loop: %.0f req/s (%.2fx trivial, %.2fx the trivial run beside), %.1f%% bids, wrk p50 %s p99 %s, bidder p99 %s, %.2f cores, %.2f waiting for a CPU; no-bids %v",
		run.Campaigns, w.ReqPerSec, c.Ratio, c.BesideRatio, 100*c.BidShare, us(w.P50), us(w.P99), srv, c.ServerCPU, c.RunWait, c.NoBids)
	return nil
}

func bidCounts(d series) (req, bids, share float64) {
	req, bids = d.sum("openbidder_requests_total"), d.sum("openbidder_bid_responses_total")
	if req > 0 {
		share = bids / req
	}
	return req, bids, share
}

func modelOf(after, d series) *modelUse {
	m := &modelUse{Rows: d.sum("openbidder_scored_rows_total"), Calls: d.byLabel("openbidder_model_scored_total", "scorer"),
		Fallbacks: d.byLabel("openbidder_model_fallbacks_total", "reason"), Trimmed: d.sum("openbidder_candidates_trimmed_total")}
	for k := range after {
		if strings.HasPrefix(k, "openbidder_model_info{") {
			m.Chain, _ = labelOf(k, "chain")
			m.Provider, _ = labelOf(k, "provider")
		}
	}
	if req := d.sum("openbidder_requests_total"); req > 0 {
		m.PerRequest = m.Rows / req
	}
	return m
}

// step is one open-loop step at fraction f of the saturation sat.
func (h *harness) step(ctx context.Context, addr, metrics string, pid int, f, sat float64) (ladderStep, error) {
	st := ladderStep{Fraction: f}
	rate := f * sat
	if rate < 1 {
		return st, fmt.Errorf("open loop at %.0f%% of %.0f req/s: rate under 1/s", 100*f, sat)
	}
	do := httpRequester(addr, h.body, h.o.olConns)
	if err := h.warmStep(rate, do); err != nil {
		return st, err
	}
	before, err := scrape(ctx, metrics, bidderSeries...)
	if err != nil {
		return st, err
	}
	if st.Client, st.stepCPU, err = h.measuredStep(pid, rate, do); err != nil {
		return st, err
	}
	after, err := scrape(ctx, metrics, bidderSeries...)
	if err != nil {
		return st, err
	}
	d := after.sub(before)
	st.Requests, st.Bids, st.BidShare = bidCounts(d)
	if hist, err := histogramOf(d, latencyHist); err == nil {
		s := summarise(hist)
		st.Server = &s
	}
	c := st.Client
	srv := "-"
	if st.Server != nil {
		srv = fmt.Sprintf("p50 %s p99 %s p99.9 %s max %s", st.Server.P50, st.Server.P99, st.Server.P999, st.Server.Max)
	}
	h.logf("  open loop %3.0f%%: %.0f req/s offered, %.0f answered/s, client p50 %s p99 %s p99.9 %s max %s (generator lag p99 %s, send delay p99 %s, %d errors); bidder %s; %s",
		100*f, rate, c.Achieved, us(c.Latency.P50), us(c.Latency.P99), us(c.Latency.P999), us(c.Latency.Max), us(c.Lag.P99), us(c.SendDelay.P99), c.Errors, srv, st.stepCPU)
	return st, ctx.Err()
}

// floorSteps runs the trivial server (pid at addr) open loop at the rate of
// every step of the bidder's ladders.
func (h *harness) floorSteps(ctx context.Context, addr string, pid int, servers []serverRun) ([]floorStep, error) {
	var out []floorStep
	do := httpRequester(addr, h.body, h.o.olConns)
	for _, sv := range servers {
		if sv.Name != "bidder" {
			continue
		}
		for _, st := range sv.Ladder {
			fs := floorStep{Campaigns: sv.Campaigns, Fraction: st.Fraction}
			rate := st.Client.Rate
			if err := h.warmStep(rate, do); err != nil {
				return out, err
			}
			var err error
			if fs.Client, fs.stepCPU, err = h.measuredStep(pid, rate, do); err != nil {
				return out, err
			}
			c := fs.Client
			h.logf("  trivial open loop at the rate of the bidder's %.0f%% step at %d campaigns: %.0f req/s, client p50 %s p99 %s p99.9 %s max %s (generator lag p99 %s); %s",
				100*st.Fraction, sv.Campaigns, rate, us(c.Latency.P50), us(c.Latency.P99), us(c.Latency.P999), us(c.Latency.Max), us(c.Lag.P99), fs.stepCPU)
			out = append(out, fs)
			if err := ctx.Err(); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// warmStep is the unmeasured open-loop run before a step.
func (h *harness) warmStep(rate float64, do requestFunc) error {
	if h.o.stepWarmup <= 0 || rate*h.o.stepWarmup.Seconds() < 1 {
		return nil
	}
	_, err := runOpenLoop(openLoopConfig{Rate: rate, Duration: h.o.stepWarmup, Conns: h.o.olConns, Expire: stepExpire}, do)
	return err
}

// measuredStep is one measured open-loop step, with the server's (pid) CPU
// time and, when pinned, how busy its CPUs and the load's were.
func (h *harness) measuredStep(pid int, rate float64, do requestFunc) (openLoopResult, stepCPU, error) {
	var sc stepCPU
	c0, err := procCPU(pid)
	if err != nil {
		return openLoopResult{}, sc, err
	}
	s0, err1 := readCPUTicks(h.o.serverCPU)
	l0, err2 := readCPUTicks(h.o.loadCPU)
	cpuErr := errors.Join(err1, err2)
	t0 := time.Now()
	res, err := runOpenLoop(openLoopConfig{Rate: rate, Duration: h.o.duration, Conns: h.o.olConns, Expire: stepExpire}, do)
	if err != nil {
		return res, sc, err
	}
	elapsed := time.Since(t0)
	c1, err := procCPU(pid)
	if err != nil {
		return res, sc, err
	}
	s1, err1 := readCPUTicks(h.o.serverCPU)
	l1, err2 := readCPUTicks(h.o.loadCPU)
	sc.ServerCPU = (c1 - c0).Seconds() / elapsed.Seconds()
	if res.Answered > 0 {
		sc.CPUPerRequest = float64((c1 - c0).Microseconds()) / float64(res.Answered)
	}
	if h.pinned && cpuErr == nil && errors.Join(err1, err2) == nil {
		sc.ServerCoreBusy, sc.LoadCoreBusy = s1.busyShare(s0), l1.busyShare(l0)
	}
	return res, sc, nil
}

// String is the step's CPU in words, for the log.
func (c stepCPU) String() string {
	s := fmt.Sprintf("server %.2f cores, %.0f µs of CPU a request", c.ServerCPU, c.CPUPerRequest)
	if c.ServerCoreBusy > 0 || c.LoadCoreBusy > 0 {
		s += fmt.Sprintf("; server CPU %.0f%% busy, load CPU %.0f%%", 100*c.ServerCoreBusy, 100*c.LoadCoreBusy)
	}
	return s
}

// idle measures the bidder's CPU time over the idle window after settling.
func (h *harness) idle(ctx context.Context, p *proc, n int) (*idleRun, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(h.o.settle):
	}
	c0, err := procCPU(p.pid())
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(h.o.idle):
	}
	c1, err := procCPU(p.pid())
	if err != nil {
		return nil, err
	}
	wall := time.Since(t0)
	ir := &idleRun{Campaigns: n, Settle: h.o.settle.Seconds(), Window: wall.Seconds(), CPUSeconds: (c1 - c0).Seconds()}
	ir.CPUPercent = 100 * ir.CPUSeconds / ir.Window
	if ir.RSSMiB, ir.PeakMiB, err = procMem(p.pid()); err != nil {
		return nil, err
	}
	h.logf("bidder, %d campaigns, idle: %.2f%% of a core over %.0fs (after %.0fs settling), RSS %.0f MiB (peak %.0f)",
		n, ir.CPUPercent, ir.Window, ir.Settle, ir.RSSMiB, ir.PeakMiB)
	return ir, nil
}

// baselineRun starts the net/http + encoding/json baseline over n
// campaigns and measures its closed-loop saturation.
func (h *harness) baselineRun(ctx context.Context, n int) (serverRun, error) {
	run := serverRun{Name: "baseline", Campaigns: n, Log: filepath.Join(h.o.out, fmt.Sprintf("baseline-%d.log", n))}
	fail := func(err error) (serverRun, error) {
		run.Error = err.Error()
		return run, fmt.Errorf("baseline at %d campaigns: %w", n, err)
	}
	addr, err := freePort()
	if err != nil {
		return fail(err)
	}
	self, err := h.self()
	if err != nil {
		return fail(err)
	}
	m := h.o.models
	p, err := startProc("baseline", h.o.serverCPU, run.Log, nil, self, "-serve", "baseline", "-listen", addr,
		"-serve-campaigns", strconv.Itoa(n), "-gbdt", m.GBDT, "-onnx", m.ONNX, "-onnx-library", m.Library)
	if err != nil {
		return fail(err)
	}
	defer p.stop(30 * time.Second)
	ready, err := p.waitReady("http://"+addr+"/e2e/counts", h.o.readyTimeout)
	if err != nil {
		return fail(err)
	}
	run.ReadyIn = ready.Seconds()
	beside, err := h.beside(ctx, "baseline", n)
	if err != nil {
		return fail(err)
	}
	if err := h.warm(ctx, addr); err != nil {
		return fail(err)
	}
	c0, err := baselineCounts(ctx, addr)
	if err != nil {
		return fail(err)
	}
	c, err := h.measured(ctx, addr, p.pid())
	if err != nil {
		return fail(err)
	}
	c1, err := baselineCounts(ctx, addr)
	if err != nil {
		return fail(err)
	}
	w := c.Wrk
	c.Ratio = w.ReqPerSec / h.trivial
	c.setBeside(beside)
	c.Bids = float64(c1.OK - c0.OK)
	c.Requests = c.Bids + float64(c1.NoBid-c0.NoBid+c1.Other-c0.Other)
	if c.Requests > 0 {
		c.BidShare = c.Bids / c.Requests
	}
	run.Closed = c
	run.RSSMiB, run.PeakMiB, _ = procMem(p.pid())
	h.logf("baseline, %d campaigns, closed loop: %.0f req/s (%.2fx trivial, %.2fx the trivial run beside), %.1f%% bids, wrk p50 %s p99 %s, %.2f cores, %.2f waiting for a CPU",
		n, w.ReqPerSec, c.Ratio, c.BesideRatio, 100*c.BidShare, us(w.P50), us(w.P99), c.ServerCPU, c.RunWait)
	return run, nil
}

// machineInfo describes the machine for the record.
func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if n, err := strconv.Atoi(os.Getenv(cpusEnv)); err == nil && n > 0 {
		m.CPUs = n
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("wrk", "-v").CombinedOutput(); len(out) > 0 {
		_ = err // wrk -v exits 1 after printing its version
		m.Wrk, _, _ = strings.Cut(string(out), "\n")
		m.Wrk, _, _ = strings.Cut(m.Wrk, " Copyright")
		m.Wrk = strings.TrimSpace(m.Wrk)
	}
	return m
}

// gitCommit is HEAD and whether the tree has uncommitted changes.
func gitCommit() (string, bool) {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown", false
	}
	st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	return strings.TrimSpace(string(out)), len(strings.TrimSpace(string(st))) > 0
}

// us formats microseconds for the log.
func us(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fs", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.2fms", v/1e3)
	}
	return fmt.Sprintf("%.0fus", v)
}

// String is the bucket as a range ("0.75-1ms").
func (b bucketQ) String() string {
	if b.Hi < 0 {
		return ">" + us(b.Lo)
	}
	return "<=" + us(b.Hi)
}
