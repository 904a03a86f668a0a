package main

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/simulator"
)

// Without -out, run and replay write under a directory git ignores: the
// README's replay command has no -out, and run in a checkout it must not
// leave untracked files behind.
func TestDefaultOutIsIgnored(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f flags
	bind(fs, &f, true)
	out := fs.Lookup("out").DefValue
	if filepath.IsAbs(out) {
		t.Fatalf("-out defaults to an absolute path %q", out)
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout:", err)
	}
	probe := filepath.Join(strings.TrimSpace(string(root)), out, "report.json")
	if err := exec.Command("git", "check-ignore", "-q", probe).Run(); err != nil {
		t.Errorf("-out defaults to %q, which git does not ignore (%v)", out, err)
	}
}

// gen's -sim-start defaults to now, as its help says and as run and trainlog
// do: without it the file's sim_ts was the zero time (year 1,
// -62135596800), which replay hands to the ground truth (local hour) and to
// the training log's ts.
func TestGenSimStartDefaultsToNow(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gen.jsonl")
	if err := cmdGen([]string{"-n", "3", "-seed", "2", "-out", out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var l simulator.GenLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(time.Unix(l.SimTS, 0)); d < -time.Minute || d > time.Minute {
			t.Fatalf("sim_ts %d (%s), want about now", l.SimTS, time.Unix(l.SimTS, 0).UTC())
		}
	}
}

// -competitors 0 is a market with no competing bidders (every valid bid at
// the floor wins), not the default of 4: the 0 was read as "unset".
func TestCompetitorsZeroMeansNone(t *testing.T) {
	f, err := parseRun(t, "-competitors", "0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := simulator.NewRunner(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Config().Market.MeanBidders; got != 0 {
		t.Fatalf("-competitors 0: mean competitors %v, want 0", got)
	}
}

// -render-delay 0 and -click-delay 0 fire the bill, pixels and click at
// once (as -notice-delay 0 does the win), not after the defaults' 100 ms and
// 500 ms: the 0 was read as "unset".
func TestZeroDelaysMeanNone(t *testing.T) {
	f, err := parseRun(t, "-render-delay", "0", "-click-delay", "0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := simulator.NewRunner(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Config(); c.RenderDelay > 0 || c.ClickDelay > 0 {
		t.Fatalf("-render-delay 0 -click-delay 0: %v and %v, want none", c.RenderDelay, c.ClickDelay)
	}
}

// -ctr-scale 0 is a flat ground truth and -ctr-base 0 is refused: both were
// read as unset (1 and 0.01), silently.
func TestCTRFlagsZero(t *testing.T) {
	f, err := parseRun(t, "-ctr-scale", "0", "-ctr-base", "0.02")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []simulator.ImpContext{{Format: "video"}, {Format: "banner"}} {
		if got := f.cfg.Truth.CTR(c); math.Abs(got-0.02) > 1e-12 {
			t.Errorf("-ctr-scale 0: CTR of %+v is %v, want the flat 0.02", c, got)
		}
	}
	for _, bad := range [][]string{{"-ctr-base", "0"}, {"-ctr-base", "1"}, {"-ctr-scale", "-1"}} {
		if _, err := parseRun(t, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// parseRun parses run's flags (a target first, then args) and finishes
// them; the error is finish's.
func parseRun(t *testing.T, args ...string) (flags, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f flags
	bind(fs, &f, true)
	if err := fs.Parse(append([]string{"-target", "http://127.0.0.1:1/openrtb2/bid"}, args...)); err != nil {
		t.Fatal(err)
	}
	return f, f.finish()
}
