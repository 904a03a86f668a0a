package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/bench"
	"github.com/openbidder/openbidder/campaigns"
)

// bidderProc is the built binary running one config.
type bidderProc struct {
	listen, admin string
	cmd           *exec.Cmd
	logs          *bytes.Buffer
}

// startBidder writes cfg (the listen addresses are added) and starts the
// binary from the repository root, pinned to the CPU list cpus ("" none).
func startBidder(t *testing.T, cfg, cpus string) *bidderProc {
	t.Helper()
	bin := buildBidder(t)
	root, _ := filepath.Abs("../../..")
	p := &bidderProc{listen: freeAddr(t), admin: freeAddr(t), logs: &bytes.Buffer{}}
	path := filepath.Join(t.TempDir(), "bidder.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{bin, "-config", path, "-listen", p.listen, "-admin-listen", p.admin}
	if cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Dir = root
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	poll(t, func() bool { c, _ := do("GET", "http://"+p.listen+"/readyz", nil); return c == 200 })
	return p
}

// stop sends SIGTERM and waits.
func (p *bidderProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("bidder exit: %v\n%s", err, p.logs)
	}
}

// metric reads one sample of /metrics ("name{labels}" as written).
func (p *bidderProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	_, body := do("GET", "http://"+p.admin+"/metrics", nil)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// held sums held_micros over /admin/budget.
func (p *bidderProc) held(t *testing.T) int64 {
	t.Helper()
	_, body := do("GET", "http://"+p.admin+"/admin/budget", nil)
	var v struct {
		Campaigns []struct {
			Held int64 `json:"held_micros"`
		} `json:"campaigns"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("/admin/budget: %v: %s", err, body)
	}
	var n int64
	for _, c := range v.Campaigns {
		n += c.Held
	}
	return n
}

var lurlRE = regexp.MustCompile(`"lurl":"([^"]+)"`)

// releaseAll sends the loss notice of every 200 answer (as an exchange does
// for a lost auction) and returns how many.
func releaseAll(t *testing.T, p *bidderProc, answers []answer) int {
	t.Helper()
	var paths []string
	for _, a := range answers {
		for _, m := range lurlRE.FindAllSubmatch(a.body, -1) {
			u, err := url.Parse(strings.NewReplacer("${AUCTION_PRICE}", "0", "${AUCTION_LOSS}", "102").Replace(string(m[1])))
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, u.RequestURI())
		}
	}
	if len(paths) == 0 {
		return 0
	}
	res := runLoad(loadOpts{addr: p.listen, conns: 16, rate: 1e6, total: len(paths), max: time.Minute,
		req: func(i int) (string, string, []byte) { return "GET", paths[i], nil }})
	for _, a := range res {
		if a.err != nil || a.status != 200 {
			t.Fatalf("loss notice: %d %v", a.status, a.err)
		}
	}
	return len(paths)
}

// Overload, bounded and short: an admission target no request can meet
// forces the limit to its minimum, so a burst is shed (204 overload,
// counted); every answer is a 200 or a 204; and once the lost bids' loss
// notices are in, nothing is held: neither a shed, a late nor an answered
// request leaks a hold.
func TestOverloadShedsAndLeaksNoHold(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.NumCPU() < 2 {
		// The bidder inherits this process's CPUs. On one, its handlers
		// (GBDT only: none waits on a batch) never overlap, so the
		// concurrency limit has nothing to shed (seen under taskset -c 0).
		t.Skip("needs two CPUs for requests to overlap")
	}
	root, _ := filepath.Abs("../../..")
	p := startBidder(t, fmt.Sprintf(`campaigns_dir: %[1]s/bidder/testdata/campaigns
watch_every: -1s
limits: {internal_budget: 150ms, admission: {min_limit: 1, max_limit: 2, target: 100us}}
model: {gbdt: %[1]s/configs/models/gbdt.manifest.json, provider: "off"}
lifecycle: {drain_delay: -1s}
budget: {store_dir: %[2]s/nats}
`, root, t.TempDir()), "")
	req, err := os.ReadFile(filepath.Join(root, "bidder/testdata/requests/site-banner.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Requests overlap only while the bidder gets both CPUs; on a machine
	// busy with other work a whole burst can run one request at a time and
	// shed nothing, so a burst is tried up to three times (new auction ids
	// each time). Every answer of every burst is checked and released.
	var answers []answer
	count := map[string]int{}
	for try := 0; try < 3 && count["204 overload"] == 0; try++ {
		body := func(i int) (string, string, []byte) {
			return "POST", "/openrtb2/bid", bytes.Replace(req, []byte(`"req-site-banner"`), fmt.Appendf(nil, `"ov-%d-%d"`, try, i), 1)
		}
		burst := runLoad(loadOpts{addr: p.listen, conns: 32, rate: 20000, total: 3000, max: 5 * time.Second, req: body, keep: true})
		for _, a := range burst {
			switch {
			case a.status == -1:
				count["not sent"]++
			case a.err != nil:
				t.Fatalf("request failed: %v", a.err)
			case a.status == 200:
				count["200"]++
			case a.status == 204:
				count["204 "+a.reason]++
			default:
				t.Fatalf("status %d %s", a.status, a.reason)
			}
		}
		answers = append(answers, burst...)
		t.Logf("answers after burst %d: %v", try+1, count)
	}
	if count["204 overload"] == 0 {
		t.Fatalf("nothing shed under overload in three bursts: %v", count)
	}
	if got := p.metric(t, `openbidder_nobids_total{reason="overload"}`); got != float64(count["204 overload"]) {
		t.Fatalf("metrics count %v sheds, clients saw %d", got, count["204 overload"])
	}
	released := releaseAll(t, p, answers)
	if h := p.held(t); h != 0 {
		t.Fatalf("held %d micros after %d loss notices: a hold leaked", h, released)
	}
	p.stop(t)
}

// TestOverloadMeasure drives the real bidder (1,000 generated campaigns,
// the bundled models) at twice its measured capacity, open loop, with the
// server pinned to CPU 0; run the test itself on CPU 1:
//
//	BIDDER_OVERLOAD=1 taskset -c 1 go test -run TestOverloadMeasure -v -timeout 10m ./bidder/cmd/bidder/
//
// Each round measures the capacity (closed loop, admission off) and the HTTP
// floor, then offers OVERLOAD_FACTOR (2) x capacity for OVERLOAD_DURATION
// (10s) to a fresh bidder with admission on, then one with it off, for
// contrast. It reports (and checks, for admission on) the p99 client-side
// of all answers, the shed rate, the server-side time of shed answers, and
// that nothing is held after the lost bids' notices. OVERLOAD_ROUNDS (1),
// OVERLOAD_CONNS (512, each with its own share of the schedule),
// OVERLOAD_SERVER_CPUS (0), OVERLOAD_CONFIG (more config lines),
// OVERLOAD_BUDGET (more budget fields, ", sync_period: 2s"), OVERLOAD_PROFILE
// (a path prefix: a CPU profile of the server during each run). Timings need a quiet machine: the log gives the
// load average of each run.
func TestOverloadMeasure(t *testing.T) {
	if os.Getenv("BIDDER_OVERLOAD") == "" {
		t.Skip("set BIDDER_OVERLOAD=1 (a measurement: about a minute)")
	}
	camps := t.TempDir()
	for _, c := range bench.GenerateCampaigns(1000) {
		data, err := campaigns.MarshalConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(camps, c.ID+".yaml"), data, 0o644)
	}
	cpus := envOr("OVERLOAD_SERVER_CPUS", "0")
	dur := envDur("OVERLOAD_DURATION", 10*time.Second)
	cfg := func(admission string) string {
		return fmt.Sprintf(`campaigns_dir: %s
watch_every: -1s
currency: {rates: {USD: 1, EUR: 1.1, GBP: 1.25}}
limits: {admission: %s}
lifecycle: {drain_delay: -1s}
budget: {store_dir: %s/nats%s}
%s
`, camps, admission, t.TempDir(), os.Getenv("OVERLOAD_BUDGET"), os.Getenv("OVERLOAD_CONFIG"))
	}
	tmpl := bench.SiteBanner("0.5")
	phase := 0 // auction ids unique across runs: a repeated (auction, imp) would be a duplicate notice
	bids := func() func(int) (string, string, []byte) {
		phase++
		p := phase
		return func(i int) (string, string, []byte) {
			return "POST", "/openrtb2/bid", bytes.Replace(tmpl, []byte(`"a3f9c2e1-7b4d-4e8a-9c1f-2d6b8e0a5f31"`), fmt.Appendf(nil, `"m%d-%d"`, p, i), 1)
		}
	}
	healthz := func(int) (string, string, []byte) { return "GET", "/healthz", nil }
	factor, _ := strconv.ParseFloat(envOr("OVERLOAD_FACTOR", "2"), 64)
	rounds, _ := strconv.Atoi(envOr("OVERLOAD_ROUNDS", "1"))
	for round := 1; round <= rounds; round++ {
		// Capacity: as fast as 64 connections go, admission off; and the HTTP
		// floor (GET /healthz) the same way, to see what a shed can cost at best.
		p := startBidder(t, cfg("{disable: true}"), cpus)
		closed := func(req func(int) (string, string, []byte)) float64 {
			start := time.Now()
			res := runLoad(loadOpts{addr: p.listen, conns: 64, rate: 1e6, total: 1 << 20, max: 5 * time.Second, cut: true, req: req})
			return float64(sent(res)) / time.Since(start).Seconds()
		}
		closed(bids()) // warm up
		capacity := closed(bids())
		floor := closed(healthz)
		p.stop(t)
		t.Logf("round %d (load average %s): capacity (closed loop, 64 connections, admission off) %.0f req/s; GET /healthz the same way %.0f req/s",
			round, loadavg(), capacity, floor)
		rate := factor * capacity
		for _, mode := range []struct{ name, admission string }{{"admission on (defaults)", "{}"}, {"admission off", "{disable: true}"}} {
			overloadRun(t, cfg(mode.admission), cpus, mode.name, mode.admission == "{}", rate, capacity, dur, bids)
		}
	}
}

// overloadRun warms a fresh bidder up at half its capacity, then offers it
// rate for dur, open loop; with check, it releases every bid (loss notices)
// and checks the targets.
func overloadRun(t *testing.T, cfg, cpus, name string, check bool, rate, capacity float64, dur time.Duration, bids func() func(int) (string, string, []byte)) {
	p := startBidder(t, cfg, cpus)
	defer p.stop(t)
	warm := runLoad(loadOpts{addr: p.listen, conns: 64, rate: capacity / 2, total: int(capacity), max: 2 * time.Second, req: bids(), keep: true})
	load := loadavg()
	if prof := os.Getenv("OVERLOAD_PROFILE"); prof != "" { // a CPU profile of the server during the run
		go func() {
			_, body := do("GET", "http://"+p.admin+"/debug/pprof/profile?seconds="+strconv.Itoa(int(dur.Seconds())-1), nil)
			os.WriteFile(prof+"-"+strings.ReplaceAll(name, " ", "_")+".pprof", []byte(body), 0o644)
		}()
	}
	conns, _ := strconv.Atoi(envOr("OVERLOAD_CONNS", "512"))
	answers := runLoad(loadOpts{addr: p.listen, conns: conns, rate: rate, total: int(rate * dur.Seconds()), max: dur + time.Second, req: bids(), keep: true})
	r := summarize(answers)
	t.Logf("  %s, open loop at %.0f req/s on %d connections for %v (load average %s): %s", name, rate, conns, dur, load, r)
	t.Logf("    server: p99 bucket (le, seconds) of shed duration %g, of queue wait %g; admission limit at the end %v",
		p.bucketQuantile(t, "openbidder_shed_duration_seconds", 0.99), p.bucketQuantile(t, "openbidder_request_queue_seconds", 0.99),
		p.metric(t, "openbidder_admission_limit"))
	if !check {
		return
	}
	released := releaseAll(t, p, append(answers, warm...))
	held := p.held(t)
	t.Logf("    %d loss notices, then held %d micros", released, held)
	if r.p99 > 10*time.Millisecond || held != 0 || r.errors > 0 {
		t.Errorf("%s: p99 %v (want <= 10ms), held %d (want 0), %d errors", name, r.p99, held, r.errors)
	}
	if q := p.bucketQuantile(t, "openbidder_shed_duration_seconds", 0.99); q > 0.001 {
		t.Errorf("shed answers take up to %g s server-side (p99 bucket), want under 1 ms", q)
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

type loadSummary struct {
	sent, errors, shed, late, bids           int
	p50, p99, p999, p99bids, p99shed, p99rtt time.Duration
}

func (r loadSummary) String() string {
	rd := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d sent, %d errors; %d bids (200), %d shed (%.1f%%), %d late; latency from due time p50 %v p99 %v p99.9 %v; p99 of 200s %v, of sheds %v; p99 write-to-answer %v",
		r.sent, r.errors, r.bids, r.shed, 100*float64(r.shed)/float64(max(r.sent, 1)), r.late,
		rd(r.p50), rd(r.p99), rd(r.p999), rd(r.p99bids), rd(r.p99shed), rd(r.p99rtt))
}

func summarize(answers []answer) loadSummary {
	var r loadSummary
	var all, bids, shed, rtt []time.Duration
	for _, a := range answers {
		if a.status == -1 {
			continue
		}
		r.sent++
		if a.err != nil {
			r.errors++
			continue
		}
		all, rtt = append(all, a.lat), append(rtt, a.rtt)
		switch {
		case a.status == 200:
			r.bids++
			bids = append(bids, a.lat)
		case a.reason == "overload":
			r.shed++
			shed = append(shed, a.lat)
		case a.reason == "late":
			r.late++
		}
	}
	r.p50, r.p99, r.p999 = pct(all, 0.5), pct(all, 0.99), pct(all, 0.999)
	r.p99bids, r.p99shed, r.p99rtt = pct(bids, 0.99), pct(shed, 0.99), pct(rtt, 0.99)
	return r
}

func sent(answers []answer) int {
	n := 0
	for _, a := range answers {
		if a.status > 0 && a.err == nil {
			n++
		}
	}
	return n
}

// bucketQuantile is the upper bound ("le", seconds) of the histogram bucket
// holding the q-quantile of a /metrics histogram; 0 when it is empty.
func (p *bidderProc) bucketQuantile(t *testing.T, name string, q float64) float64 {
	t.Helper()
	_, body := do("GET", "http://"+p.admin+"/metrics", nil)
	re := regexp.MustCompile(regexp.QuoteMeta(name) + `_bucket\{le="([^"]+)"\} (\d+)`)
	ms := re.FindAllStringSubmatch(body, -1)
	if len(ms) == 0 {
		return 0
	}
	total, _ := strconv.ParseFloat(ms[len(ms)-1][2], 64)
	for _, m := range ms {
		if v, _ := strconv.ParseFloat(m[2], 64); total > 0 && v >= q*total {
			le, _ := strconv.ParseFloat(m[1], 64) // "+Inf" parses as +Inf
			return le
		}
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envDur(k string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return d
	}
	return def
}
