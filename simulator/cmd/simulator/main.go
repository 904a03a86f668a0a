// Command simulator is an OpenRTB exchange simulator for load, latency,
// pacing and model-quality tests of a bidder. See docs/simulator.md.
//
//	simulator run    -target URL[,URL] -rate N -duration D -seed S -out DIR [-log DIR] [-admin URL]
//	simulator replay -in FILE.jsonl -target URL[,URL] [-rate N] -out DIR
//	simulator gen    -n N -seed S -out FILE.jsonl
//	simulator trainlog -n N -seed S -log DIR [-sim-span 24h] [-campaigns 20 -creatives 5]
//	simulator sink   -addr 127.0.0.1:8099 [-bid-prob P] [-delay D] [-for D]
//	simulator ab     -bidder bin/bidder -config configs/bidder.yaml -campaigns DIR -out DIR [run flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/openbidder/openbidder/simulator"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:], false)
	case "replay":
		err = cmdRun(os.Args[2:], true)
	case "gen":
		err = cmdGen(os.Args[2:])
	case "sink":
		err = cmdSink(os.Args[2:])
	case "trainlog":
		err = cmdTrainLog(os.Args[2:])
	case "ab":
		err = cmdAB(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: simulator <command> [flags]

commands:
  run     send generated traffic open loop to bidders, run auctions, write DIR/report.json and plots
  replay  like run, with requests from a gen file (-in FILE.jsonl)
  gen     write generated bid requests as JSONL
  trainlog write the training log of a sink that bids on everything, without HTTP (-n requests into -log DIR)
  sink    start a minimal loopback bidder (204 or bids) for load-tool comparisons and demos
  ab      bid shading A/B: start the bidder per run, same traffic with shading off and on, binding and loose
          budgets; DIR/ab.json, ab.md, ab.svg and each run's report (docs/shading.md)

'simulator <command> -help' lists the flags and their defaults.
`)
}

// flags binds every model flag onto cfg.
type flags struct {
	cfg                    simulator.Config
	outcomes               bool // bindOutcomes bound the -ctr-* flags
	targets, admin, out    string
	tmaxMs                 int
	simStart               string
	noticeDup, noticeLoss  float64
	noticeLate             float64
	firstPrice, v26, deals float64
	minToWin               float64
}

// defaultOut is where run and replay write without -out: under out/, which
// git ignores, so a README command run in a checkout leaves no stray files.
const defaultOut = "out/sim"

func bind(fs *flag.FlagSet, f *flags, withTargets bool) {
	d, t, n := simulator.DefaultConfig, simulator.DefaultTraffic, simulator.DefaultNotices
	c := &f.cfg
	if withTargets {
		fs.StringVar(&f.targets, "target", "", "bidder URL(s), comma separated, round robin (e.g. http://127.0.0.1:8080/openrtb2/bid)")
		fs.StringVar(&f.admin, "admin", "", "bidder admin base URL(s), comma separated; GET /admin/budget each second for budget and pacing plan")
		fs.StringVar(&c.AdminToken, "admin-token", os.Getenv("BIDDER_ADMIN_TOKEN"), "bearer token of the admin listener (default $BIDDER_ADMIN_TOKEN); a run whose admin URL does not answer stops before sending")
		fs.StringVar(&f.out, "out", defaultOut, "output directory for report.json and SVG plots")
		fs.StringVar(&c.LogDir, "log", "", "write training logs (impressions.jsonl) into this directory")
		fs.DurationVar(&c.Duration, "duration", d.Duration, "sending window; the run then waits for answers and notices (bounded) and stops")
		fs.Int64Var(&c.MaxRequests, "max-requests", 0, "hard cap on requests (0 = 3 x rate x duration + 100)")
		fs.IntVar(&c.MaxInflight, "max-inflight", d.MaxInflight, "bound on requests awaiting an answer; requests due beyond it are dropped and counted")
		fs.IntVar(&c.ConnsPerHost, "conns", 0, "keep-alive connections per target (0 = max-inflight)")
		fs.DurationVar(&c.Spin, "spin", 0, "send waits shorter than this busy-wait instead of sleeping: sub-ms timers wake up to 1ms late; 1ms gives a precise schedule at the cost of up to a core")
		fs.IntVar(&f.tmaxMs, "tmax", 0, "override tmax in ms for timeout accounting (0 = each request's own tmax, see -req-tmax)")
		fs.DurationVar(&c.Grace, "grace", d.Grace, "how long past tmax an answer is still awaited (it counts as a timeout)")
		bindOutcomes(fs, f)
		fs.BoolVar(&c.AllowNonLocal, "allow-nonlocal", false, "allow targets, admin and notice URLs outside loopback")
		fs.DurationVar(&c.RenderDelay, "render-delay", d.RenderDelay, "mean delay from win notice to render")
		fs.DurationVar(&c.ClickDelay, "click-delay", d.ClickDelay, "mean delay from render to click")
		fs.DurationVar(&c.Notices.Delay, "notice-delay", n.Delay, "mean (exponential) delay of nurl/lurl after the auction")
		fs.Float64Var(&f.noticeDup, "notice-dup", n.DupProb, "probability a notice is sent twice")
		fs.Float64Var(&f.noticeLoss, "notice-loss", n.LossProb, "probability a notice is never sent")
		fs.Float64Var(&f.noticeLate, "notice-late", n.LateProb, "probability a notice is sent -notice-late-delay late")
		fs.DurationVar(&c.Notices.LateDelay, "notice-late-delay", n.LateDelay, "extra delay of late notices")
		fs.IntVar(&c.Notices.Workers, "notice-workers", n.Workers, "concurrent notice senders")
		fs.Float64Var(&f.minToWin, "min-to-win", d.MinToWinShare, "share of publishers whose exchange substitutes ${AUCTION_MIN_TO_WIN} in win and loss notices")
	}
	fs.Float64Var(&c.Rate, "rate", d.Rate, "mean requests per second (Poisson arrivals)")
	fs.Uint64Var(&c.Seed, "seed", d.Seed, "random seed (traffic, auctions, notices, clicks)")
	fs.Float64Var(&c.GzipShare, "gzip", d.GzipShare, "share of requests sent with Content-Encoding: gzip")
	fs.Float64Var(&c.Diurnal, "diurnal", 0, "diurnal amplitude 0..1 (0 = constant rate)")
	fs.Float64Var(&c.PeakHour, "peak-hour", d.PeakHour, "UTC hour of the diurnal peak")
	fs.Float64Var(&c.TimeScale, "time-scale", d.TimeScale, "simulated seconds per real second (2880 = a day in 30s)")
	fs.StringVar(&f.simStart, "sim-start", "", "simulated start time, RFC 3339 (default now)")
	fs.IntVar(&c.Traffic.Publishers, "publishers", t.Publishers, "number of publishers")
	fs.Float64Var(&c.Traffic.PublisherZipf, "publisher-zipf", t.PublisherZipf, "Zipf exponent of publisher popularity")
	fs.IntVar(&c.Traffic.Users, "users", t.Users, "number of users")
	fs.Float64Var(&c.Traffic.UserZipf, "user-zipf", t.UserZipf, "Zipf exponent of user activity")
	fs.Float64Var(&c.Traffic.AppShare, "app-share", t.AppShare, "share of publishers that are apps")
	fs.Float64Var(&f.v26, "v26-share", t.V26Share, "share of publishers sending OpenRTB 2.6 (rest 2.5)")
	fs.Float64Var(&f.firstPrice, "first-price-share", t.FirstPriceShare, "share of publishers with first-price auctions (at=1)")
	fs.Float64Var(&f.deals, "deal-share", t.DealShare, "share of publishers with deals")
	fs.Float64Var(&c.Traffic.FloorMedianUSD, "floor", t.FloorMedianUSD, "median floor CPM in USD (log-normal over publishers)")
	fs.Int64Var(&c.Traffic.TMaxMs, "req-tmax", t.TMaxMs, "typical tmax (ms) written into requests; each publisher uses 0.8, 1, 1.2, 1.5 or 2 times it")
}

// bindOutcomes binds what decides auctions, renders and clicks (run and
// trainlog).
func bindOutcomes(fs *flag.FlagSet, f *flags) {
	d, m, c := simulator.DefaultConfig, simulator.DefaultMarket, &f.cfg
	f.outcomes = true
	fs.Float64Var(&c.RenderProb, "render-prob", d.RenderProb, "probability a won ad renders (burl and impression trackers fire, billed)")
	fs.Float64Var(&c.Market.MeanBidders, "competitors", m.MeanBidders, "mean number of competing bidders per imp (Poisson; 0 = none)")
	fs.IntVar(&c.Market.FixedBidders, "competitors-fixed", 0, "exact number of competitors (overrides -competitors when > 0)")
	fs.Float64Var(&c.Truth.Base, "ctr-base", 0.01, "ground-truth base CTR (the CTR when every attribute term is 0; the traffic mean is about 1.5-2 times it)")
	fs.Uint64Var(&c.Truth.Seed, "ctr-seed", 0, "ground-truth model seed (hash weights); fixed so logs of different runs agree")
	fs.Float64Var(&c.Truth.Scale, "ctr-scale", 1, "ground-truth spread: multiplies every attribute term (0.5 flatter, 2 sharper, 0 a flat CTR of -ctr-base)")
	fs.DurationVar(&c.DriftAt, "drift-at", 0, "simulated time after -sim-start from which the world drifts: the ground truth's publisher and OS terms change sign and publisher popularity shifts 10 ranks (0 = never)")
}

// zeroAsNeg maps an explicit 0 to the "explicitly zero" marker of the config.
func zeroAsNeg(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}

func (f *flags) finish() error {
	c := &f.cfg
	c.Traffic.V26Share, c.Traffic.FirstPriceShare, c.Traffic.DealShare = zeroAsNeg(f.v26), zeroAsNeg(f.firstPrice), zeroAsNeg(f.deals)
	c.Traffic.AppShare = zeroAsNeg(c.Traffic.AppShare)
	c.Notices.DupProb, c.Notices.LossProb, c.Notices.LateProb = zeroAsNeg(f.noticeDup), zeroAsNeg(f.noticeLoss), zeroAsNeg(f.noticeLate)
	if c.Notices.Delay == 0 {
		c.Notices.Delay = -1
	}
	if c.RenderProb == 0 {
		c.RenderProb = -1
	}
	if c.RenderDelay == 0 { // -render-delay 0, -click-delay 0: at once
		c.RenderDelay = -1
	}
	if c.ClickDelay == 0 {
		c.ClickDelay = -1
	}
	c.MinToWinShare = zeroAsNeg(f.minToWin)
	c.Market.MeanBidders = zeroAsNeg(c.Market.MeanBidders) // -competitors 0: none
	if f.outcomes {                                        // the -ctr-* flags were bound (not gen's)
		if !(c.Truth.Base > 0 && c.Truth.Base < 1) {
			// 0 was read as unset (0.01): a CTR is a probability in (0, 1)
			return fmt.Errorf("-ctr-base %v: want a CTR in (0, 1)", c.Truth.Base)
		}
		if !(c.Truth.Scale >= 0) {
			return fmt.Errorf("-ctr-scale %v: want 0 (flat) or more", c.Truth.Scale)
		}
		c.Truth.Scale = zeroAsNeg(c.Truth.Scale) // -ctr-scale 0: flat, not the default 1
	}
	c.TMax = time.Duration(f.tmaxMs) * time.Millisecond
	if f.simStart != "" {
		t, err := time.Parse(time.RFC3339, f.simStart)
		if err != nil {
			return fmt.Errorf("-sim-start: %w", err)
		}
		c.SimStart = t
	}
	c.Targets, c.Admin = split(f.targets), split(f.admin)
	return nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func cmdRun(args []string, replay bool) error {
	name := "run"
	if replay {
		name = "replay"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f flags
	bind(fs, &f, true)
	var in, values string
	var loops int
	fs.StringVar(&values, "values", "", "bidder campaign directory (e.g. configs/campaigns): values impressions for the report's surplus figures")
	if replay {
		fs.StringVar(&in, "in", "", "JSONL file written by gen")
		fs.IntVar(&loops, "loops", 1, "times to replay the file (without -duration the window covers the whole file)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.finish(); err != nil {
		return err
	}
	if replay {
		rate, durationSet := 0.0, false
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "rate":
				rate = f.cfg.Rate
			case "duration":
				durationSet = true
			}
		})
		src, err := openReplay(in, rate, f.cfg.Seed, loops)
		if err != nil {
			return err
		}
		f.cfg.Source = src
		if !durationSet { // long enough for the whole file, loops included
			span := src.Span()*float64(max(loops, 1)) + 1
			if rate > 0 {
				span = 2*float64(src.Len()*max(loops, 1))/rate + 1
			}
			f.cfg.Duration = time.Duration(span * float64(time.Second))
		}
		if rate == 0 {
			f.cfg.Rate = max(float64(src.Len())/f.cfg.Duration.Seconds(), 1) // sizes the request cap only
			f.cfg.MaxRequests = int64(src.Len() * max(loops, 1))
		}
	}
	if values != "" {
		v, err := simulator.LoadCampaignValues(values)
		if err != nil {
			return err
		}
		f.cfg.Values = v
	}
	f.cfg.Progress = os.Stderr
	r, err := simulator.NewRunner(f.cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := r.Run(ctx)
	if err != nil {
		return err
	}
	if err := rep.WriteFiles(f.out); err != nil {
		return err
	}
	rep.WriteSummary(os.Stdout)
	fmt.Printf("wrote %s/report.json and %s\n", f.out, strings.Join(rep.Plots, ", "))
	return nil
}

func openReplay(path string, rate float64, seed uint64, loops int) (*simulator.ReplaySource, error) {
	if path == "" {
		return nil, errors.New("replay needs -in FILE.jsonl")
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return simulator.NewReplaySource(fh, rate, seed, loops)
}

func cmdGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	var f flags
	bind(fs, &f, false)
	n := fs.Int("n", 1000, "number of requests")
	out := fs.String("out", "-", "output file (- = stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.finish(); err != nil {
		return err
	}
	if f.cfg.SimStart.IsZero() { // as run and trainlog: the simulated clock starts now
		f.cfg.SimStart = time.Now()
	}
	w := os.Stdout
	if *out != "-" {
		fh, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer fh.Close()
		w = fh
	}
	return simulator.Generate(w, f.cfg, *n)
}

func cmdSink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	var c simulator.SinkConfig
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8099", "listen address (loopback)")
	fs.Float64Var(&c.BidProb, "bid-prob", 0, "probability of answering with bids (0 = always 204)")
	fs.Float64Var(&c.Price, "price", 1, "bid CPM in USD")
	fs.Float64Var(&c.PCTR, "pctr", 0.02, "bid.ext.pctr")
	fs.IntVar(&c.Campaigns, "campaigns", 3, "number of campaign ids to rotate")
	fs.IntVar(&c.Creatives, "creatives", 1, "creatives per campaign")
	fs.DurationVar(&c.Delay, "delay", 0, "added delay before each bid answer")
	forD := fs.Duration("for", 10*time.Minute, "stop after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := simulator.CheckHost("http://"+c.Addr, false); err != nil {
		return err
	}
	s, err := simulator.StartSink(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "sink listening on %s for %s\n", s.URL(), *forD)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(*forD):
	}
	return s.Close()
}

func cmdTrainLog(args []string) error {
	fs := flag.NewFlagSet("trainlog", flag.ContinueOnError)
	var f flags
	bind(fs, &f, false)
	bindOutcomes(fs, &f)
	var c simulator.TrainLogConfig
	fs.Int64Var(&c.Requests, "n", 100000, "number of requests")
	fs.Int64Var(&c.Skip, "skip", 0, "generate the first N requests without logging them: -n A+B -skip A continues a log of -n A (same -time-scale, or the whole run's -sim-span)")
	fs.StringVar(&c.Dir, "log", "", "write impressions.jsonl into this directory (required)")
	fs.Float64Var(&c.Sink.Price, "price", 50, "the sink's bid CPM in USD (50 wins every auction of the default market)")
	fs.IntVar(&c.Sink.Campaigns, "campaigns", 20, "campaign ids the sink rotates over")
	fs.IntVar(&c.Sink.Creatives, "creatives", 5, "creatives per campaign")
	fs.IntVar(&c.Workers, "workers", 0, "goroutines building lines (0 = GOMAXPROCS; the output does not depend on it)")
	span := fs.Duration("sim-span", 0, "simulated time the requests cover: sets -time-scale to span x rate / n")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Dir == "" {
		return errors.New("trainlog: -log DIR is required")
	}
	if err := f.finish(); err != nil {
		return err
	}
	if *span > 0 && c.Requests > 0 {
		f.cfg.TimeScale = span.Seconds() * f.cfg.Rate / float64(c.Requests)
	}
	if f.cfg.SimStart.IsZero() {
		f.cfg.SimStart = time.Now()
	}
	c.Sim = f.cfg
	start := time.Now()
	res, err := simulator.WriteTrainLog(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "trainlog: %d requests, %d imps, %d won, %d impressions, %d clicks (mean true CTR %.5f), simulated %s to %s, in %s\n",
		res.Requests, res.Imps, res.Won, res.Rendered, res.Clicks, res.MeanTrueCTR,
		time.Unix(res.SimStart, 0).UTC().Format(time.RFC3339), time.Unix(res.SimEnd, 0).UTC().Format(time.RFC3339),
		time.Since(start).Round(time.Millisecond))
	return nil
}

func cmdAB(args []string) error {
	fs := flag.NewFlagSet("ab", flag.ContinueOnError)
	var f flags
	bind(fs, &f, true)
	var c simulator.ABConfig
	fs.StringVar(&c.Bidder, "bidder", "bin/bidder", "bidder binary, started once per run")
	fs.StringVar(&c.BidderConfig, "config", "configs/bidder.yaml", "bidder config each run starts from (ports, store, campaigns and pricing.shading.enabled are set per run)")
	fs.StringVar(&c.Campaigns, "campaigns", "configs/experiments/shading", "campaign directory: budgets rewritten per regime, bid strategies value impressions")
	binding := fs.Float64("binding-budget", simulator.DefaultRegimes[0].DailyBudget, "daily budget per campaign (its currency, ASAP pacing) of the binding regime")
	loose := fs.Float64("loose-budget", simulator.DefaultRegimes[1].DailyBudget, "daily budget per campaign of the loose regime")
	regimes := fs.String("regimes", "binding,loose", "regimes to run, in order")
	fs.DurationVar(&c.Warmup, "warmup", 20*time.Second, "traffic sent to each fresh bidder before its measured run (another stream, other campaign ids, loose budgets); negative: none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.finish(); err != nil {
		return err
	}
	if f.out == defaultOut {
		f.out = "out/shading-ab"
	}
	c.Out, c.Sim, c.Log = f.out, f.cfg, os.Stderr
	for _, name := range split(*regimes) {
		switch name {
		case "binding":
			c.Regimes = append(c.Regimes, simulator.ABRegime{Name: name, DailyBudget: *binding})
		case "loose":
			c.Regimes = append(c.Regimes, simulator.ABRegime{Name: name, DailyBudget: *loose})
		default:
			return fmt.Errorf("ab: unknown regime %q (binding, loose)", name)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := simulator.RunAB(ctx, c)
	if err != nil {
		return err
	}
	rep.WriteTable(os.Stdout)
	fmt.Printf("wrote %s/ab.json, ab.md, ab.svg and one directory per run\n", c.Out)
	return nil
}
