// Command gencampaigns writes n generated, valid campaign files (one YAML file
// per campaign) for benchmarks and load tests:
//
//	go run ./campaigns/cmd/gencampaigns -n 10000 -seed 1 -out /tmp/campaigns
//
// The same -n and -seed always write the same files. For load measurements,
// -daily and -pacing replace every campaign's daily budget and pacing mode
// (bench/cmd/e2e uses -daily 100000000 -pacing asap, as the in-process
// benchmarks do, so that budgets and pacing do not turn bids into no-bids),
// leaving targeting, creatives and strategies as generated.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/openbidder/openbidder/campaigns"
)

func main() {
	n := flag.Int("n", 1000, "number of campaigns")
	seed := flag.Int64("seed", 1, "random seed")
	out := flag.String("out", "", "output directory (created if missing)")
	check := flag.Bool("check", true, "compile the generated set before writing")
	daily := flag.String("daily", "", "replace every campaign's daily budget (units of its currency, e.g. 100000000)")
	pacing := flag.String("pacing", "", "replace every campaign's pacing mode (even, forecast or asap)")
	flag.Parse()
	if *out == "" || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: gencampaigns -n N -seed S -out DIR")
		os.Exit(2)
	}
	if err := run(*n, *seed, *out, *check, override{daily: *daily, pacing: *pacing}); err != nil {
		slog.Error("gencampaigns", "err", err)
		os.Exit(1)
	}
}

// override replaces generated fields; empty fields leave them as generated.
type override struct{ daily, pacing string }

func run(n int, seed int64, out string, check bool, o override) error {
	cfgs := campaigns.Generate(n, seed)
	for i := range cfgs {
		if o.daily != "" {
			cfgs[i].Budget.Daily = campaigns.Amount(o.daily)
		}
		if o.pacing != "" {
			cfgs[i].Pacing.Mode = o.pacing
		}
	}
	if check {
		if _, err := campaigns.Compile(cfgs); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, c := range cfgs {
		data, err := campaigns.MarshalConfig(c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.ID, err)
		}
		if err := os.WriteFile(filepath.Join(out, c.ID+".yaml"), data, 0o644); err != nil {
			return err
		}
	}
	slog.Info("wrote campaigns", "n", n, "seed", seed, "dir", out)
	return nil
}
