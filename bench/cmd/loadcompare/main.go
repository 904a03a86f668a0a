// Command loadcompare starts the bidder's fasthttp handler and the net/http +
// encoding/json baseline (package bench) on 127.0.0.1 random ports, over the
// same generated campaigns, scorer and budget, and drives each with the same
// bounded closed-loop load: keep-alive connections, each sending the same
// bid request one after another. It prints req/s, p50, p99 and the ratio.
//
//	go run ./bench/cmd/loadcompare -campaigns 1000 -model gbdt200 -conns 4 -n 5000
//
// Run it from the repository root (the model path is relative). Client and
// servers share the machine's cores; the two servers run one after another,
// in rounds, so drift in a shared machine's load spreads over both.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/openbidder/openbidder/bench"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadcompare:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadcompare", flag.ContinueOnError)
	n := fs.Int("campaigns", 1000, "generated campaigns")
	model := fs.String("model", "gbdt200", "gbdt200 (the bundled GBDT) or nomodel (a constant pCTR)")
	manifest := fs.String("gbdt", "configs/models/gbdt.manifest.json", "GBDT manifest")
	conns := fs.Int("conns", 4, "keep-alive connections (closed loop, one request in flight each)")
	perConn := fs.Int("n", 5000, "requests per connection")
	maxTime := fs.Duration("max-time", 15*time.Second, "time bound per server and round")
	warmup := fs.Int("warmup", 200, "unmeasured requests per connection first")
	rounds := fs.Int("rounds", 2, "rounds (each runs both servers)")
	floor := fs.String("floor", "0.5", "imp.bidfloor of the request (50: every candidate below floor, a no-bid)")
	pin := fs.Bool("pin", false, "servers pinned to CPU 0, the load generator in a child process pinned to CPU 1 (taskset)")
	floors := fs.Bool("floors", false, "also drive two trivial servers answering 204 (fasthttp and net/http): the HTTP floor")
	client := fs.String("client", "", "internal: drive host:port and print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := bench.LoadConfig{Conns: *conns, PerConn: *perConn, MaxTime: *maxTime, Warmup: *warmup, Body: bench.SiteBanner(*floor)}
	if *client != "" {
		res, err := bench.Drive(*client, cfg)
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(res)
	}
	if *pin && os.Getenv(roleEnv) == "" {
		return reexec(out, append([]string{"-c", "0"}, args...))
	}
	drive := bench.Drive
	if *pin {
		drive = func(addr string, cfg bench.LoadConfig) (bench.LoadResult, error) { return pinnedClient(addr, args) }
	}
	var sc ctr.Scorer = bench.ConstScorer{P: 0.02}
	switch *model {
	case "gbdt200":
		g, err := ctr.LoadGBDT(*manifest, features.SchemaVersion, features.Width)
		if err != nil {
			return err
		}
		sc = g
	case "nomodel":
	default:
		return fmt.Errorf("-model %q: want gbdt200 or nomodel", *model)
	}
	f, err := bench.NewFixture(bench.Options{Campaigns: *n, Scorer: sc})
	if err != nil {
		return err
	}
	defer f.Close()
	srv, err := bench.Serve(f)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "loadcompare: %d campaigns, model %s, %d connections x %d requests (bound %s), %d-byte request, %d rounds, pinned %v\n",
		*n, *model, *conns, *perConn, *maxTime, len(cfg.Body), *rounds, *pin)
	fmt.Fprintf(out, "%-6s %-24s %9s %10s %10s %10s %7s\n", "round", "server", "requests", "req/s", "p50", "p99", "bid%")
	targets := []struct{ name, addr string }{{"fasthttp (openbidder)", srv.Fast}, {"net/http+encoding/json", srv.Baseline}}
	if *floors {
		fl, err := startFloors()
		if err != nil {
			return err
		}
		defer fl.close()
		targets = append(targets, struct{ name, addr string }{"fasthttp 204 floor", fl.fast}, struct{ name, addr string }{"net/http 204 floor", fl.std})
	}
	var fast, base []float64
	for r := 1; r <= *rounds; r++ {
		for _, s := range targets {
			res, err := drive(s.addr, cfg)
			if err != nil {
				return err
			}
			if res.Other > 0 {
				return fmt.Errorf("%s: %d answers were neither 200 nor 204", s.name, res.Other)
			}
			fmt.Fprintf(out, "%-6d %-24s %9d %10.0f %10s %10s %7.2f\n", r, s.name, res.Requests, res.ReqPerSec(),
				res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond), 100*float64(res.OK)/float64(max(res.Requests, 1)))
			if res.NoBid > 0 && *floor == "0.5" && s.addr != "" && (s.addr == srv.Fast || s.addr == srv.Baseline) {
				fmt.Fprintf(out, "       no-bids by reason: %v\n", res.NoBidReasons)
			}
			switch s.addr {
			case srv.Fast:
				fast = append(fast, res.ReqPerSec())
			case srv.Baseline:
				base = append(base, res.ReqPerSec())
			}
		}
	}
	fmt.Fprintf(out, "throughput ratio fasthttp/baseline: %.1fx (mean of rounds: %.0f vs %.0f req/s)\n", mean(fast)/mean(base), mean(fast), mean(base))
	return nil
}

const roleEnv = "LOADCOMPARE_PINNED"

// reexec runs this program again under taskset with the given arguments.
func reexec(out io.Writer, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("taskset", append([]string{args[0], args[1], self}, args[2:]...)...)
	cmd.Env = append(os.Environ(), roleEnv+"=1")
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	return cmd.Run()
}

// pinnedClient drives addr from a child process pinned to CPU 1.
func pinnedClient(addr string, args []string) (bench.LoadResult, error) {
	var buf bytes.Buffer
	err := reexec(&buf, append([]string{"-c", strconv.Itoa(1)}, append(args, "-client", addr)...))
	var res bench.LoadResult
	if err == nil {
		err = json.Unmarshal(buf.Bytes(), &res)
	}
	return res, err
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}
