// Command e2e measures the whole server over loopback HTTP in one run, the
// server under test pinned to one CPU and the load on another where there
// are two (taskset; on one CPU everything shares it, and the output says
// so):
//
//   - a trivial fasthttp server answering 204: the HTTP floor;
//   - bin/bidder at 1,000 and 10,000 generated campaigns (gencampaigns
//     -seed 1 -daily 100000000 -pacing asap) with the bundled models;
//   - the net/http + encoding/json baseline (package bench) on the same
//     campaigns and models;
//
// each at closed-loop saturation (wrk -c32 with a Lua script posting the
// 1.7 KB site-banner request, after a warm-up) and its ratio to the trivial
// server; for the bidder an open-loop ladder at fractions of its saturation
// (a generator that keeps its schedule; latency from the scheduled send)
// with percentiles client-side and from the bidder's own /metrics histogram;
// and the idle bidder's CPU and RSS at 10,000 campaigns. It writes
// out/bench-e2e/result.json and plot.svg, prints PASS/MISS against the
// issue's targets, and rewrites the marked section of docs/benchmarks.md.
//
//	make bench-e2e                  # builds bin/, then bin/e2e with the defaults (~6 minutes)
//	make bench-e2e DURATION=3s IDLE=10s SETTLE=5s   # shorter
//	bin/e2e -render out/bench-e2e/result.json -docs docs/benchmarks.md   # re-render only
//
// Run it from the repository root (model and library paths are relative).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := mainErr(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	out, docs, render, bidder, gencampaigns string
	serve, listen                           string
	serveCampaigns                          int
	serveWork                               time.Duration
	models                                  baselineModels
	duration, warmup, stepWarmup            time.Duration
	idle, settle, readyTimeout              time.Duration
	campaigns, ladderCampaigns, baselineN   []int
	ladder                                  []float64
	wrkConns, wrkThreads, olConns           int
	pin                                     string
	serverCPU, loadCPU                      string
	command                                 string
	openLoop                                string
	rate                                    float64
	beside                                  bool
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "out/bench-e2e", "output directory (result.json, plot.svg, logs)")
	fs.StringVar(&o.docs, "docs", "docs/benchmarks.md", "markdown file whose bench-e2e section is rewritten (empty: none)")
	fs.StringVar(&o.render, "render", "", "only render plot.svg and the docs section from this result.json")
	fs.StringVar(&o.bidder, "bidder", "bin/bidder", "the bidder binary")
	fs.StringVar(&o.gencampaigns, "gencampaigns", "bin/gencampaigns", "the gencampaigns binary")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "each measured closed-loop run and open-loop step")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured wrk run before each closed-loop run")
	fs.DurationVar(&o.stepWarmup, "step-warmup", 2*time.Second, "unmeasured open-loop run before each step")
	fs.DurationVar(&o.idle, "idle", 30*time.Second, "idle CPU window at the largest campaign count (0: skip)")
	fs.DurationVar(&o.settle, "settle", 60*time.Second, "wait after the bidder is ready before the idle window (a campaign with no demand gives its start-up lease back after 30 s: one record write each, a one-time wave that is not idle cost)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 3*time.Minute, "bound on a server's start")
	campaigns := fs.String("campaigns", "1000,10000", "bidder campaign counts")
	ladderN := fs.String("ladder-campaigns", "1000,10000", "campaign counts that get the open-loop ladder")
	baseN := fs.String("baseline-campaigns", "1000,10000", "baseline campaign counts (empty: none)")
	ladder := fs.String("ladder", "0.1,0.5,0.9", "open-loop rates as fractions of the closed-loop saturation")
	fs.BoolVar(&o.beside, "beside", true, "measure the trivial server again just before each server's closed loop, on the same CPU while that server idles there, for a ratio the machine's drift over the run disturbs less")
	fs.IntVar(&o.wrkConns, "conns", 32, "wrk connections")
	fs.IntVar(&o.wrkThreads, "threads", 2, "wrk threads")
	fs.IntVar(&o.olConns, "ol-conns", 128, "open-loop connections")
	fs.StringVar(&o.pin, "pin", "auto", "auto (pin when there are two CPUs and taskset), on, off")
	fs.StringVar(&o.serverCPU, "server-cpu", "0", "taskset CPU list of the server under test")
	fs.StringVar(&o.loadCPU, "load-cpu", "1", "taskset CPU list of wrk, the open-loop generator and this harness")
	fs.StringVar(&o.command, "command", "", "how the run was started, for the docs (default: this command line)")
	fs.StringVar(&o.serve, "serve", "", "internal: run a server (trivial | baseline) on -listen")
	fs.StringVar(&o.listen, "listen", "", "internal: the -serve address")
	fs.IntVar(&o.serveCampaigns, "serve-campaigns", 1000, "internal: campaigns of -serve baseline")
	fs.DurationVar(&o.serveWork, "serve-work", 0, "CPU time -serve trivial burns on every request before its 204 (bench/scripts/work-budget.sh)")
	fs.StringVar(&o.openLoop, "openloop", "", "only send one open-loop step (-rate, -duration, -ol-conns) to the server at this address and print its summary (to profile a running bidder)")
	fs.Float64Var(&o.rate, "rate", 1000, "requests per second of -openloop")
	fs.StringVar(&o.models.GBDT, "gbdt", "configs/models/gbdt.manifest.json", "GBDT manifest (baseline)")
	fs.StringVar(&o.models.ONNX, "onnx", "configs/models/mlp.manifest.json", "ONNX manifest (baseline)")
	fs.StringVar(&o.models.Library, "onnx-library", "lib/onnxruntime/libonnxruntime.so.1", "libonnxruntime (baseline)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if o.campaigns, err = parseInts(*campaigns); err != nil {
		return nil, fmt.Errorf("-campaigns: %w", err)
	}
	if o.ladderCampaigns, err = parseInts(*ladderN); err != nil {
		return nil, fmt.Errorf("-ladder-campaigns: %w", err)
	}
	if o.baselineN, err = parseInts(*baseN); err != nil {
		return nil, fmt.Errorf("-baseline-campaigns: %w", err)
	}
	if o.ladder, err = parseFloats(*ladder); err != nil {
		return nil, fmt.Errorf("-ladder: %w", err)
	}
	for _, f := range o.ladder {
		if f <= 0 || f > 2 {
			return nil, fmt.Errorf("-ladder: %v is not a fraction of saturation in (0, 2]", f)
		}
	}
	if o.duration < time.Second || o.warmup < 0 || o.stepWarmup < 0 || o.idle < 0 || o.settle < 0 {
		return nil, errors.New("-duration must be at least 1s; -warmup, -step-warmup, -idle, -settle not negative")
	}
	self := "bin/e2e " + strings.Join(withoutFlag(args, "command"), " ")
	if o.command == "" {
		o.command = self
	} else {
		o.command += " (" + strings.TrimSpace(self) + ")"
	}
	return o, nil
}

// withoutFlag is args without -name and its value.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		switch {
		case a == name && i+1 < len(args):
			i++
		case strings.HasPrefix(a, name+"="):
		default:
			out = append(out, args[i])
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// The pinned re-run learns from its parent why it is pinned and how many
// CPUs the run had (it sees only the load CPU itself).
const (
	pinnedEnv = "E2E_PINNED"
	cpusEnv   = "E2E_CPUS"
)

func mainErr(args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	switch o.serve {
	case "trivial":
		return serveTrivial(o.listen, o.serveWork)
	case "baseline":
		return serveBaseline(o.listen, o.serveCampaigns, o.models)
	case "":
	default:
		return fmt.Errorf("-serve %q: want trivial or baseline", o.serve)
	}
	if o.openLoop != "" {
		return openLoopOnly(o, stdout)
	}
	if o.render != "" {
		res, err := readResult(o.render)
		if err != nil {
			return err
		}
		return render(res, filepath.Dir(o.render), o.docs, stdout)
	}
	pinned, why := placement(o.pin)
	if w := os.Getenv(pinnedEnv); w != "" {
		pinned, why = true, w // re-run on the load CPU: it sees one CPU
	} else if pinned {
		// The harness itself (the open-loop generator, the scrapes) runs
		// on the load CPU: re-run this command there.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command("taskset", append([]string{"-c", o.loadCPU, self}, args...)...)
		cmd.Env = append(os.Environ(), pinnedEnv+"="+why, cpusEnv+"="+strconv.Itoa(runtime.NumCPU()))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, os.Stderr
		return cmd.Run()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	h := &harness{o: o, out: stdout, pinned: pinned}
	if !pinned {
		o.serverCPU, o.loadCPU = "", ""
	}
	res, err := h.run(ctx, why)
	if res == nil {
		return err
	}
	if err != nil {
		// Keep what was measured, but leave the docs alone.
		return errors.Join(err, writeResult(res, o.out), render(res, o.out, "", stdout))
	}
	if err := writeResult(res, o.out); err != nil {
		return err
	}
	return render(res, o.out, o.docs, stdout)
}

// placement decides whether to pin, and says why in words.
func placement(mode string) (bool, string) {
	n := runtime.NumCPU()
	_, lookErr := exec.LookPath("taskset")
	switch {
	case mode == "off":
		return false, fmt.Sprintf("not pinned (-pin off): server and load share the %d CPUs", n)
	case lookErr != nil:
		return false, fmt.Sprintf("not pinned (no taskset): server and load share the %d CPUs", n)
	case n < 2 && mode != "on":
		return false, "not pinned: one CPU, server and load share it (ratios still compare; latencies include the load generator's share)"
	}
	return true, "server pinned to one CPU, wrk and the open-loop generator on another (taskset)"
}

// readUptime is `uptime` and /proc/loadavg, for the record.
func readUptime() (string, string) {
	up, _ := exec.Command("uptime").Output()
	la, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(up)), strings.TrimSpace(string(la))
}
