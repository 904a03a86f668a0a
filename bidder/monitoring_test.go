package bidder

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
)

// The monitoring files shipped for operators (deploy/monitoring): the
// alert rules pass promtool, their unit tests pass, and every openbidder_
// name they or the Grafana dashboard use is on a running bidder's page.

const monitoringDir = "../deploy/monitoring"

// exercise sends a bid request that bids and one whose floor no campaign
// can meet (a per-campaign below_floor no-bid), so the page shows the
// series that appear with traffic.
func exercise(t *testing.T, app *App) int {
	t.Helper()
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	high := bytes.Replace(body, []byte(`"bidfloor":0.5`), []byte(`"bidfloor":5000`), 1)
	if bytes.Equal(high, body) {
		t.Fatal("site-banner.json has no bidfloor 0.5 to raise")
	}
	u := "http://" + app.Addr() + "/openrtb2/bid"
	if code, _, why := post(t, u, body); code != 200 {
		t.Fatalf("bid: %d %s", code, why)
	}
	if code, _, why := post(t, u, high); code != 204 {
		t.Fatalf("bid over every campaign's price: %d %s", code, why)
	}
	return 2
}

// pageNames are the names on a /metrics page: its series (histograms'
// _bucket, _sum and _count) and its families (from the TYPE lines).
func pageNames(page string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(page, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

var openbidderName = regexp.MustCompile(`openbidder_[a-z0-9_]*[a-z0-9]`)

func TestMonitoringNamesExist(t *testing.T) {
	// The model's batch series exist with an ONNX model loaded: with the
	// library here (the default path, relative, finds none from this
	// directory; the test passed only after another test had loaded one).
	lib := cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
	if err := ctr.ONNXAvailable(lib); err != nil {
		t.Skip("no ONNX Runtime (make onnxruntime):", err)
	}
	app := startApp(t, func(c *Config) { c.Model.ONNXLibrary = lib })
	exercise(t, app)
	code, page := get(t, "http://"+app.AdminAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	have := pageNames(string(page))
	for _, f := range []string{"openbidder.rules.yml", "openbidder.rules_test.yml", "openbidder-dashboard.json"} {
		b, err := os.ReadFile(filepath.Join(monitoringDir, f))
		if err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		for _, n := range openbidderName.FindAllString(string(b), -1) {
			used[n] = true
		}
		if len(used) < 5 {
			t.Fatalf("%s uses only %d openbidder_ names", f, len(used))
		}
		for n := range used {
			if !have[n] {
				t.Errorf("%s uses %s, which a running bidder does not show", f, n)
			}
		}
	}
}

// The dashboard is Grafana 10/11 JSON with a Prometheus datasource
// variable, and every query names it.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(monitoringDir, "openbidder-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	var d struct {
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name, Type string
				Query      any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int      `json:"id"`
			Type    string   `json:"type"`
			Title   string   `json:"title"`
			Targets []target `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q", d.SchemaVersion, d.UID, d.Title)
	}
	ds := false
	for _, v := range d.Templating.List {
		ds = ds || (v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus")
	}
	if !ds {
		t.Error("no Prometheus datasource variable")
	}
	ids := map[int]bool{}
	var all string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %q on datasource %q", p.Title, tg.Expr, tg.Datasource.UID)
			}
			all += tg.Expr + "\n"
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"openbidder_requests_total", "openbidder_bid_responses_total", "openbidder_nobids_total",
		"openbidder_request_duration_seconds_bucket", "openbidder_model_fallbacks_total", "openbidder_feature_psi",
		"openbidder_budget_spent_today_micros", "openbidder_budget_pacing_target_micros", "openbidder_budget_nats_connected"} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel queries %s", want)
		}
	}
}

// promtool checks the rules and the example config, and runs the rules'
// unit tests.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): alert rules not checked")
	}
	for _, args := range [][]string{
		{"check", "rules", "openbidder.rules.yml"},
		{"test", "rules", "openbidder.rules_test.yml"},
		{"check", "config", "prometheus.example.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoringDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b, _ := os.ReadFile(filepath.Join(monitoringDir, "openbidder.rules.yml"))
	for _, a := range []string{"OpenbidderNoBidSpike", "OpenbidderModelFallbackRate", "OpenbidderFeatureDrift",
		"OpenbidderFailClosed", "OpenbidderLatencyP99OverDeadline", "OpenbidderBudgetStoreLag"} {
		if !bytes.Contains(b, []byte("alert: "+a+"\n")) {
			t.Errorf("no alert %s", a)
		}
	}
}

// A real Prometheus scrapes a running bidder and answers PromQL over its
// series.
func TestPrometheusScrapesBidder(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus): scrape not tested")
	}
	app := startApp(t, nil)
	sent := exercise(t, app)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: openbidder
    static_configs: [{targets: [%q]}]
`, app.AdminAddr())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startPrometheus(t, bin, dir)
	query := func(q string) []float64 {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil // not listening yet
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" {
			return nil
		}
		var out []float64
		for _, x := range r.Data.Result {
			if s, ok := x.Value[1].(string); ok {
				if v, err := strconv.ParseFloat(s, 64); err == nil {
					out = append(out, v)
				}
			}
		}
		return out
	}
	want := func(q string, ok func([]float64) bool) {
		t.Helper()
		var got []float64
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if got = query(q); ok(got) {
				return
			}
		}
		t.Fatalf("%s: %v", q, got)
	}
	want(`sum(openbidder_requests_total{job="openbidder"})`, func(v []float64) bool { return len(v) == 1 && v[0] == float64(sent) })
	want(`openbidder_build_info{go!=""} * on (instance) up`, func(v []float64) bool { return len(v) == 1 && v[0] == 1 })
	want(`histogram_quantile(0.99, sum by (le) (rate(openbidder_request_duration_seconds_bucket[1m])))`,
		func(v []float64) bool { return len(v) == 1 }) // answers (NaN while no request in the window)
	want(`count(process_resident_memory_bytes) + count(go_goroutines)`, func(v []float64) bool { return len(v) == 1 && v[0] == 2 })
}

// startPrometheus runs Prometheus with dir's prometheus.yml on a free
// loopback port until the test ends, and returns its address. The port is
// free when picked but may be taken before Prometheus binds it (another test
// or process), so a Prometheus that exits before it listens is started again
// on another port, up to three times.
func startPrometheus(t *testing.T, bin, dir string) string {
	t.Helper()
	for try := 1; ; try++ {
		addr, exited, log := startPrometheusOnce(t, bin, dir)
		if !exited {
			return addr
		}
		if try == 3 {
			t.Fatalf("prometheus exited before listening, %d tries; last log:\n%s", try, log)
		}
		t.Logf("prometheus exited before listening on %s (try %d), trying another port", addr, try)
	}
}

// startPrometheusOnce starts Prometheus on a port just found free and waits
// until it accepts connections (exited false) or exits (exited true, with its
// log).
func startPrometheusOnce(t *testing.T, bin, dir string) (addr string, exited bool, logText string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	log := &syncBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		select {
		case <-done:
			return addr, true, log.String()
		case <-time.After(100 * time.Millisecond):
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			lines := strings.Split(log.String(), "\n")
			t.Logf("prometheus log:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return addr, false, ""
}
