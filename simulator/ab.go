package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// The A/B run of bid shading: the same traffic and seed against the bidder
// twice per budget regime, pricing.shading off and on, each run on a freshly
// started bidder process with an empty budget store (so budgets start
// equal), and a report with both side by side. The bidder is a binary
// started by path and spoken to over HTTP, like every other run.

// ErrAB wraps A/B set-up problems.
var ErrAB = errors.New("simulator: ab")

// ABRegime is one budget regime: every campaign's daily budget (in its own
// currency) with ASAP pacing, so a budget that binds runs out during the run.
type ABRegime struct {
	Name        string  `json:"name"`
	DailyBudget float64 `json:"daily_budget"`
}

// ABConfig is one A/B experiment.
type ABConfig struct {
	Bidder       string     // bidder binary
	BidderConfig string     // the bidder YAML each run starts from
	Campaigns    string     // campaign directory: budgets rewritten per regime, values for surplus
	Out          string     // output directory
	Regimes      []ABRegime // default: binding 2, loose 1e6
	Sim          Config     // traffic, seed, rate, duration: the same for every run (Targets, Admin, Values are set here)
	// Warmup is sent to each fresh bidder before the measured run (default
	// 20s; negative: none): another stream of requests from the same world
	// (Config.Stream 1), bid on by the same campaigns under other ids with
	// loose budgets. It warms the process, and the shading arm's curves, as
	// a bidder that has been running would be; then the measured campaigns
	// are loaded (SIGHUP) with the regime's budgets and nothing spent.
	Warmup       time.Duration
	ReadyTimeout time.Duration // wait for a started bidder to answer /readyz (default 90s)
	Log          io.Writer     // progress lines; nil: none
}

// ABArm is one run's result.
type ABArm struct {
	Shading  bool   `json:"shading"`
	Dir      string `json:"dir"` // its report.json and plots
	Requests int64  `json:"requests"`
	Timeouts int64  `json:"timeouts"`
	// All is every auction; FirstPrice the first-price ones only (second
	// price bids the value either way).
	All        AuctionReport `json:"all"`
	FirstPrice AuctionReport `json:"first_price"`
	// BudgetUSD is the campaigns' daily budgets in USD; SpendShare the
	// run's spend over it.
	BudgetUSD  float64 `json:"budget_usd"`
	SpendShare float64 `json:"spend_share"`
	// ShadingMetrics is the bidder's openbidder_shading_* series at the end.
	ShadingMetrics map[string]float64 `json:"shading_metrics,omitempty"`
}

// ABRegimeResult is both arms of one regime and the change from off to on
// (on / off - 1) of the figures that matter.
type ABRegimeResult struct {
	Regime ABRegime           `json:"regime"`
	Off    ABArm              `json:"off"`
	On     ABArm              `json:"on"`
	Change map[string]float64 `json:"change"`
}

// ABReport is DIR/ab.json.
type ABReport struct {
	Started time.Time        `json:"started"`
	Command string           `json:"command,omitempty"`
	Config  map[string]any   `json:"config"`
	Regimes []ABRegimeResult `json:"regimes"`
	Notes   []string         `json:"notes"`
}

// DefaultRegimes are the two regimes of docs/shading.md.
var DefaultRegimes = []ABRegime{{Name: "binding", DailyBudget: 2}, {Name: "loose", DailyBudget: 1e6}}

// RunAB runs the experiment and writes DIR/ab.json, ab.md, ab.svg and one
// directory per run.
func RunAB(ctx context.Context, cfg ABConfig) (*ABReport, error) {
	if cfg.Bidder == "" || cfg.BidderConfig == "" || cfg.Campaigns == "" || cfg.Out == "" {
		return nil, fmt.Errorf("%w: bidder, bidder config, campaigns and out are required", ErrAB)
	}
	if len(cfg.Regimes) == 0 {
		cfg.Regimes = DefaultRegimes
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 90 * time.Second
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 20 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Sim.SimStart.IsZero() {
		cfg.Sim.SimStart = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) // both arms see the same simulated hours
	}
	values, err := LoadCampaignValues(cfg.Campaigns)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "simulator-ab-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	rep := &ABReport{Started: time.Now(), Config: map[string]any{"bidder": cfg.Bidder, "bidder_config": cfg.BidderConfig,
		"campaigns": cfg.Campaigns, "rate": cfg.Sim.Rate, "duration_s": cfg.Sim.Duration.Seconds(), "seed": cfg.Sim.Seed,
		"time_scale": cfg.Sim.TimeScale, "sim_start": cfg.Sim.SimStart, "min_to_win_share": cfg.Sim.MinToWinShare,
		"truth_base": cfg.Sim.Truth.Base, "warmup_s": max(cfg.Warmup, 0).Seconds()}}
	for _, rg := range cfg.Regimes {
		res := ABRegimeResult{Regime: rg}
		for _, on := range []bool{false, true} {
			arm, err := runArm(ctx, cfg, rg, on, values, work)
			if err != nil {
				return nil, fmt.Errorf("%w: %s, shading %v: %v", ErrAB, rg.Name, on, err)
			}
			if on {
				res.On = arm
			} else {
				res.Off = arm
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		res.Change = abChange(res.Off, res.On)
		rep.Regimes = append(rep.Regimes, res)
	}
	rep.Notes = abNotes
	return rep, rep.WriteFiles(cfg.Out)
}

var abNotes = []string{
	"Each run starts a fresh bidder with an empty budget store; both arms see the same requests, competing bids and click draws (same seed).",
	"Spend is billed (rendered) impressions at their clearing price; price per impression = spend / impressions.",
	"Value: surplus_true values an impression at its ground-truth CTR (the advertiser's worth: CTR x CPC x 1000, or the fixed CPM); surplus_bidder at the bid's pCTR capped at max bid (the bidder's own value). Surplus = value - billed price.",
	"expected_clicks is the sum of the impressions' ground-truth CTR: the clicks bought without the noise of the click draws.",
	"Before each measured run a warm-up (another request stream from the same world, campaigns under other ids, loose budgets) warms the process and, with shading on, the curves; then the measured campaigns are loaded with the regime's budgets and nothing spent. Segments still cold bid unshaded and count in the figures.",
}

// runArm runs one arm on a fresh bidder.
func runArm(ctx context.Context, cfg ABConfig, rg ABRegime, shading bool, values map[string]CampaignValue, work string) (ABArm, error) {
	name := rg.Name + "-" + map[bool]string{false: "off", true: "on"}[shading]
	dir := filepath.Join(cfg.Out, name)
	wd := filepath.Join(work, name)
	camps := filepath.Join(wd, "campaigns")
	if err := os.MkdirAll(camps, 0o755); err != nil {
		return ABArm{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ABArm{}, err
	}
	budgetUSD, err := writeCampaigns(cfg.Campaigns, camps, rg.DailyBudget, "")
	if err != nil {
		return ABArm{}, err
	}
	if cfg.Warmup > 0 { // the warm-up set first; the measured one after it
		if err := clearDir(camps); err != nil {
			return ABArm{}, err
		}
		if _, err := writeCampaigns(cfg.Campaigns, camps, DefaultRegimes[1].DailyBudget, "-warmup"); err != nil {
			return ABArm{}, err
		}
	}
	listen, admin := freeAddr(), freeAddr()
	confPath := filepath.Join(wd, "bidder.yaml")
	if err := writeBidderConfig(cfg.BidderConfig, confPath, map[string]any{
		"listen": listen, "admin_listen": admin, "public_url": "http://" + listen, "campaigns_dir": camps,
		"watch_every": "-1s", "budget.store_dir": filepath.Join(wd, "nats"), "notices.key_file": filepath.Join(wd, "notice.key"),
		"pricing.shading.enabled": shading, "lifecycle.drain_delay": "-1s",
		"pricing.reveal_pctr": true, // the report's value at pCTR reads bid.ext.pctr
	}); err != nil {
		return ABArm{}, err
	}
	logf, err := os.Create(filepath.Join(dir, "bidder.log"))
	if err != nil {
		return ABArm{}, err
	}
	defer logf.Close()
	cmd := exec.Command(cfg.Bidder, "-config", confPath, "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return ABArm{}, err
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(45 * time.Second):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
	defer stop()
	fmt.Fprintf(cfg.Log, "ab: %s: bidder pid %d on %s (admin %s), waiting for /readyz\n", name, cmd.Process.Pid, listen, admin)
	if err := waitReady(ctx, "http://"+listen+"/readyz", cfg.ReadyTimeout); err != nil {
		return ABArm{}, fmt.Errorf("bidder not ready (see %s): %w", filepath.Join(dir, "bidder.log"), err)
	}
	if cfg.Warmup > 0 {
		if err := warmUp(ctx, cfg, name, listen, admin, filepath.Join(dir, "warmup")); err != nil {
			return ABArm{}, err
		}
		if err := clearDir(camps); err != nil {
			return ABArm{}, err
		}
		if _, err := writeCampaigns(cfg.Campaigns, camps, rg.DailyBudget, ""); err != nil {
			return ABArm{}, err
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return ABArm{}, err
		}
		if err := waitBudgets(ctx, "http://"+admin, values, rg.DailyBudget, cfg.ReadyTimeout); err != nil {
			return ABArm{}, fmt.Errorf("measured campaigns not loaded after the warm-up: %w", err)
		}
	}
	sim := cfg.Sim
	sim.Targets, sim.Admin, sim.Values = []string{"http://" + listen + "/openrtb2/bid"}, []string{"http://" + admin}, values
	sim.Progress = cfg.Log
	r, err := NewRunner(sim)
	if err != nil {
		return ABArm{}, err
	}
	fmt.Fprintf(cfg.Log, "ab: %s: %v at %v/s, seed %d\n", name, sim.Duration, sim.Rate, sim.Seed)
	out, err := r.Run(ctx)
	if err != nil {
		return ABArm{}, err
	}
	if err := out.WriteFiles(dir); err != nil {
		return ABArm{}, err
	}
	arm := ABArm{Shading: shading, Dir: dir, Requests: out.Requests, Timeouts: out.Timeouts,
		All: out.Auctions["all"], FirstPrice: out.Auctions["first_price"], BudgetUSD: budgetUSD,
		ShadingMetrics: scrapeShading("http://" + admin + "/metrics")}
	if budgetUSD > 0 {
		arm.SpendShare = arm.All.SpendUSD / budgetUSD
	}
	if err := stop(); err != nil {
		fmt.Fprintf(cfg.Log, "ab: %s: bidder exit: %v\n", name, err)
	}
	return arm, nil
}

// warmUp sends the warm-up stream and keeps its report in dir.
func warmUp(ctx context.Context, cfg ABConfig, name, listen, admin, dir string) error {
	sim := cfg.Sim
	sim.Stream, sim.Duration, sim.MaxRequests, sim.Values = 1, cfg.Warmup, 0, nil
	sim.Targets, sim.Admin, sim.Progress = []string{"http://" + listen + "/openrtb2/bid"}, []string{"http://" + admin}, cfg.Log
	r, err := NewRunner(sim)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "ab: %s: warm-up %v (stream 1, campaigns *-warmup)\n", name, cfg.Warmup)
	rep, err := r.Run(ctx)
	if err != nil {
		return err
	}
	return rep.WriteFiles(dir)
}

// waitBudgets polls the admin budget view until every campaign of values
// is there with the daily budget given (the reload took).
func waitBudgets(ctx context.Context, admin string, values map[string]CampaignValue, daily float64, timeout time.Duration) error {
	poll := newAdminPoller([]string{admin}, "")
	want := int64(math.Round(daily * 1e6))
	deadline := time.Now().Add(timeout)
	for {
		views, _ := poll.fetch()
		got := mergeAdmin(views)
		missing := ""
		for id := range values {
			if c, ok := got[id]; !ok || c.DailyBudgetMicros != want {
				missing = id
				break
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("campaign %s has no daily budget of %v", missing, daily)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func clearDir(dir string) error {
	names, err := campaignFiles(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil {
			return err
		}
	}
	return nil
}

// abChange is on / off - 1 of the headline figures (NaN where off is 0).
func abChange(off, on ABArm) map[string]float64 {
	rel := func(a, b float64) float64 {
		if a == 0 {
			return math.NaN()
		}
		return b/a - 1
	}
	c := map[string]float64{
		"clicks_per_usd":                      rel(off.All.ClicksPerUSD, on.All.ClicksPerUSD),
		"expected_clicks_per_usd":             rel(off.All.ExpectedClicksPerUSD, on.All.ExpectedClicksPerUSD),
		"price_per_impression":                rel(off.All.PricePerImpression, on.All.PricePerImpression),
		"impressions":                         rel(float64(off.All.Impressions), float64(on.All.Impressions)),
		"clicks":                              rel(float64(off.All.Clicks), float64(on.All.Clicks)),
		"expected_clicks":                     rel(off.All.ExpectedClicks, on.All.ExpectedClicks),
		"spend":                               rel(off.All.SpendUSD, on.All.SpendUSD),
		"win_rate":                            rel(off.All.WinRate, on.All.WinRate),
		"first_price_price_per_impression":    rel(off.FirstPrice.PricePerImpression, on.FirstPrice.PricePerImpression),
		"first_price_expected_clicks_per_usd": rel(off.FirstPrice.ExpectedClicksPerUSD, on.FirstPrice.ExpectedClicksPerUSD),
	}
	if off.All.SurplusTrueUSD != nil && on.All.SurplusTrueUSD != nil {
		c["surplus_true_usd_difference"] = *on.All.SurplusTrueUSD - *off.All.SurplusTrueUSD
	}
	if off.All.SurplusBidderUSD != nil && on.All.SurplusBidderUSD != nil { // null where a bid carried no ext.pctr
		c["surplus_bidder_usd_difference"] = *on.All.SurplusBidderUSD - *off.All.SurplusBidderUSD
	}
	for k, v := range c {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(c, k) // JSON has no NaN
		}
	}
	return c
}

// writeCampaigns copies the campaign files of src into dst with budget
// {daily: daily}, pacing asap and suffix appended to every id, and returns
// the active campaigns' daily budgets in USD.
func writeCampaigns(src, dst string, daily float64, suffix string) (float64, error) {
	names, err := campaignFiles(src)
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("no campaign files in %s", src)
	}
	total := 0.0
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return 0, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		m["budget"] = map[string]any{"daily": strconv.FormatFloat(daily, 'f', 2, 64)}
		if id, ok := m["id"].(string); ok {
			m["id"] = id + suffix
		}
		m["pacing"] = map[string]any{"mode": "asap"}
		if st, _ := m["status"].(string); st == "" || st == "active" {
			cur, _ := m["currency"].(string)
			total += ToUSD(daily, orUSD(cur))
		}
		out, err := yaml.Marshal(m)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(name)), out, 0o644); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// writeBidderConfig writes base with the dotted-path fields of set changed.
func writeBidderConfig(base, dst string, set map[string]any) error {
	b, err := os.ReadFile(base)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", base, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	for path, v := range set {
		parts := strings.Split(path, ".")
		cur := m
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = v
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, out, 0o600)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls url until it answers 200 or the timeout passes.
func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scrapeShading reads the openbidder_shading_* series from a /metrics page.
func scrapeShading(url string) map[string]float64 {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, line := range bytes.Split(body, []byte("\n")) {
		s := string(line)
		if !strings.HasPrefix(s, "openbidder_shading_") {
			continue
		}
		i := strings.LastIndexByte(s, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(s[i+1:], 64); err == nil {
			out[strings.TrimPrefix(s[:i], "openbidder_")] = v
		}
	}
	return out
}

// WriteFiles writes ab.json, ab.md (a table) and ab.svg into dir.
func (r *ABReport) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ab.json"), b, 0o644); err != nil {
		return err
	}
	var md bytes.Buffer
	r.WriteTable(&md)
	if err := os.WriteFile(filepath.Join(dir, "ab.md"), md.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ab.svg"), r.svg(), 0o644)
}

// abRow is one line of the side-by-side table.
type abRow struct {
	name string
	get  func(a ABArm) float64
	fmt  string
	diff bool // change as a difference (surplus may be negative), not a ratio
}

var abRows = []abRow{
	{"requests", func(a ABArm) float64 { return float64(a.Requests) }, "%.0f", false},
	{"bids", func(a ABArm) float64 { return float64(a.All.Bids) }, "%.0f", false},
	{"win rate", func(a ABArm) float64 { return a.All.WinRate }, "%.4f", false},
	{"impressions", func(a ABArm) float64 { return float64(a.All.Impressions) }, "%.0f", false},
	{"clicks", func(a ABArm) float64 { return float64(a.All.Clicks) }, "%.0f", false},
	{"expected clicks", func(a ABArm) float64 { return a.All.ExpectedClicks }, "%.1f", false},
	{"spend USD", func(a ABArm) float64 { return a.All.SpendUSD }, "%.2f", false},
	{"spend / daily budgets", func(a ABArm) float64 { return a.SpendShare }, "%.4f", false},
	{"clicks per USD", func(a ABArm) float64 { return a.All.ClicksPerUSD }, "%.3f", false},
	{"expected clicks per USD", func(a ABArm) float64 { return a.All.ExpectedClicksPerUSD }, "%.3f", false},
	{"price per impression USD", func(a ABArm) float64 { return a.All.PricePerImpression }, "%.5f", false},
	{"surplus USD (true value)", func(a ABArm) float64 { return orNaN(a.All.SurplusTrueUSD) }, "%.2f", true},
	{"surplus USD (bidder's value)", func(a ABArm) float64 { return orNaN(a.All.SurplusBidderUSD) }, "%.2f", true},
	{"first price: impressions", func(a ABArm) float64 { return float64(a.FirstPrice.Impressions) }, "%.0f", false},
	{"first price: win rate", func(a ABArm) float64 { return a.FirstPrice.WinRate }, "%.4f", false},
	{"first price: mean bid CPM", func(a ABArm) float64 { return a.FirstPrice.MeanBidCPM }, "%.3f", false},
	{"first price: price per impression USD", func(a ABArm) float64 { return a.FirstPrice.PricePerImpression }, "%.5f", false},
	{"first price: expected clicks per USD", func(a ABArm) float64 { return a.FirstPrice.ExpectedClicksPerUSD }, "%.3f", false},
	{"first price: surplus USD (true value)", func(a ABArm) float64 { return orNaN(a.FirstPrice.SurplusTrueUSD) }, "%.2f", true},
	{"timeouts", func(a ABArm) float64 { return float64(a.Timeouts) }, "%.0f", false},
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// WriteTable writes the side-by-side table (Markdown).
func (r *ABReport) WriteTable(w io.Writer) {
	for _, rg := range r.Regimes {
		fmt.Fprintf(w, "### %s budgets (daily %s per campaign, ASAP)\n\n", rg.Regime.Name, strconv.FormatFloat(rg.Regime.DailyBudget, 'f', -1, 64))
		fmt.Fprintf(w, "| | shading off | shading on | change |\n|---|---|---|---|\n")
		for _, row := range abRows {
			a, b := row.get(rg.Off), row.get(rg.On)
			ch := ""
			switch {
			case math.IsNaN(a) || math.IsNaN(b):
			case row.diff:
				ch = fmt.Sprintf("%+.2f USD", b-a)
			case a != 0:
				ch = fmt.Sprintf("%+.1f%%", 100*(b/a-1))
			}
			fmt.Fprintf(w, "| %s | "+row.fmt+" | "+row.fmt+" | %s |\n", row.name, a, b, ch)
		}
		fmt.Fprintln(w)
	}
}

// svg draws, per regime, the on/off ratio of the headline figures as bars
// around 1 (same style as the run plots).
func (r *ABReport) svg() []byte {
	metrics := []struct {
		name string
		get  func(a ABArm) float64
	}{
		{"clicks/USD", func(a ABArm) float64 { return a.All.ClicksPerUSD }},
		{"exp. clicks/USD", func(a ABArm) float64 { return a.All.ExpectedClicksPerUSD }},
		{"price/imp", func(a ABArm) float64 { return a.All.PricePerImpression }},
		{"impressions", func(a ABArm) float64 { return float64(a.All.Impressions) }},
		{"spend", func(a ABArm) float64 { return a.All.SpendUSD }},
		{"win rate", func(a ABArm) float64 { return a.All.WinRate }},
		{"FP price/imp", func(a ABArm) float64 { return a.FirstPrice.PricePerImpression }},
	}
	const panelW, panelH, L, T, B = 460.0, 340.0, 60.0, 50.0, 80.0
	W := panelW * float64(max(len(r.Regimes), 1))
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`, W, panelH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`)
	for pi, rg := range r.Regimes {
		x0 := float64(pi) * panelW
		pw, ph := panelW-L-20, panelH-T-B
		ratios := make([]float64, len(metrics))
		lo, hi := 0.5, 1.5
		for i, m := range metrics {
			a, c := m.get(rg.Off), m.get(rg.On)
			ratios[i] = math.NaN()
			if a > 0 {
				ratios[i] = c / a
				lo, hi = math.Min(lo, ratios[i]-0.1), math.Max(hi, ratios[i]+0.1)
			}
		}
		y := func(v float64) float64 { return T + ph*(hi-v)/(hi-lo) }
		fmt.Fprintf(&b, `<text x="%.1f" y="20" font-size="14">%s budgets: shading on / off</text>`, x0+L, rg.Regime.Name)
		for _, g := range []float64{lo, 1, hi} {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ccc"/><text x="%.1f" y="%.1f" text-anchor="end">%.2f</text>`,
				x0+L, x0+L+pw, y(g), y(g), x0+L-5, y(g)+4, g)
		}
		bw := pw / float64(len(metrics))
		for i, m := range metrics {
			v := ratios[i]
			cx := x0 + L + bw*(float64(i)+0.5)
			if !math.IsNaN(v) {
				top, h := y(math.Max(v, 1)), math.Abs(y(v)-y(1))
				color := palette[0]
				if v < 1 {
					color = palette[1]
				}
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, cx-bw*0.35, top, bw*0.7, h, color)
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%+.0f%%</text>`, cx, y(v)+map[bool]float64{true: -4, false: 12}[v >= 1], 100*(v-1))
			}
			fmt.Fprintf(&b, `<text transform="translate(%.1f,%.1f) rotate(35)" font-size="11">%s</text>`, cx-8, T+ph+14, m.name)
		}
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}
