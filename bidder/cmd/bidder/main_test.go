package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	builtBin string
	buildErr error
	buildOut []byte
	building sync.Once
)

// buildBidder compiles this command once per test binary run.
func buildBidder(t *testing.T) string {
	t.Helper()
	building.Do(func() {
		dir, err := os.MkdirTemp("", "bidder-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "bidder")
		buildOut, buildErr = exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestCheckConfigExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBidder(t)
	cmd := exec.Command(bin, "-config", "configs/bidder.yaml", "-check-config")
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "config ok") {
		t.Fatalf("bundled config: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("id: broken\nbid_strategy: {kind: nope}\nmax_bid_cpm: \"1\"\nbudget: {daily: \"1\"}\ncreatives: []\n"), 0o644)
	cfg := filepath.Join(dir, "bidder.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("campaigns_dir: %s\nmodel: {gbdt: configs/models/gbdt.manifest.json, provider: \"off\"}\n", dir)), 0o644)
	cmd = exec.Command(bin, "-config", cfg, "-check-config")
	cmd.Dir = "../../.."
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("broken campaign: exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(string(out), "broken.yaml") || !strings.Contains(string(out), "bid_strategy") {
		t.Fatalf("the error does not name the file and field:\n%s", out)
	}
	// A config problem does not hide the campaigns' and models' (README:
	// "exit 0 or every problem"): before, -check-config stopped at the
	// config's own and listed neither the broken campaign nor the model.
	os.WriteFile(cfg, []byte(fmt.Sprintf("campaigns_dir: %s\nlimits: {max_body_bytes: -5}\nmodel: {gbdt: %s, provider: \"off\"}\n", dir, filepath.Join(dir, "missing.json"))), 0o644)
	cmd = exec.Command(bin, "-config", cfg, "-check-config")
	cmd.Dir = "../../.."
	out, err = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("bad config and campaign: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"limits.max_body_bytes", "broken.yaml", "model.gbdt"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-check-config with several problems does not name %q:\n%s", want, out)
		}
	}
	// Several instances sharing a budget store without a shared notice key.
	os.WriteFile(cfg, []byte("model: {gbdt: configs/models/gbdt.manifest.json, provider: \"off\"}\nbudget: {nats_urls: [nats://10.0.0.1:4222]}\n"), 0o644)
	cmd = exec.Command(bin, "-config", cfg, "-check-config")
	cmd.Dir = "../../.."
	out, err = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "notices.key") {
		t.Fatalf("multi-instance without a shared key: exit %d, want 1 naming notices.key\n%s", code, out)
	}
	// A notice key file others can read.
	key := filepath.Join(dir, "notice.key")
	os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o644)
	os.WriteFile(cfg, []byte(fmt.Sprintf("model: {gbdt: configs/models/gbdt.manifest.json, provider: \"off\"}\nnotices: {key_file: %s}\n", key)), 0o644)
	cmd = exec.Command(bin, "-config", cfg, "-check-config")
	cmd.Dir = "../../.."
	out, err = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "chmod 600") {
		t.Fatalf("a 0644 notice key file: exit %d, want 1 with the fix\n%s", code, out)
	}
}

// The binary serves on -listen, reloads campaigns on SIGHUP and shuts down
// cleanly on SIGTERM: readiness 503 while still serving for the drain
// delay, which a second SIGTERM cuts short.
func TestServeReloadShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBidder(t)
	root, _ := filepath.Abs("../../..")
	dir := t.TempDir()
	camps := filepath.Join(dir, "campaigns")
	os.MkdirAll(camps, 0o755)
	src, err := os.ReadFile(filepath.Join(root, "bidder/testdata/campaigns/acme.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(camps, "acme.yaml"), src, 0o644)
	listen, admin := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "bidder.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`campaigns_dir: %s
watch_every: -1s
limits: {internal_budget: 150ms}
model: {gbdt: %s/configs/models/gbdt.manifest.json, provider: "off"}
budget: {store_dir: %s/nats}
lifecycle: {drain_delay: 1h}
`, camps, root, dir)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", cfg, "-listen", listen, "-admin-listen", admin, "-log-format", "json")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	poll(t, func() bool { c, _ := do("GET", "http://"+listen+"/readyz", nil); return c == 200 })
	req, _ := os.ReadFile(filepath.Join(root, "bidder/testdata/requests/site-banner.json"))
	if c, body := do("POST", "http://"+listen+"/openrtb2/bid", req); c != 200 {
		t.Fatalf("bid: %d %s\n%s", c, body, logs.String())
	}
	// Pause the campaign on disk; SIGHUP applies it (the file watch is off).
	os.WriteFile(filepath.Join(camps, "acme.yaml"), bytes.Replace(src, []byte("currency: USD"), []byte("currency: USD\nstatus: paused"), 1), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	poll(t, func() bool { c, _ := do("POST", "http://"+listen+"/openrtb2/bid", req); return c == 204 })
	if c, body := do("GET", "http://"+admin+"/metrics", nil); c != 200 || !strings.Contains(body, "openbidder_requests_total") {
		t.Fatalf("metrics on -admin-listen: %d", c)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	poll(t, func() bool { c, _ := do("GET", "http://"+listen+"/readyz", nil); return c == 503 })
	if c, body := do("POST", "http://"+listen+"/openrtb2/bid", req); c != 204 {
		t.Fatalf("bid while draining: %d %s", c, body)
	}
	cmd.Process.Signal(syscall.SIGTERM) // cuts the 1h drain delay short
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	for _, want := range []string{"shutting down", "draining", "second signal", "budget closed", "ctr: model loaded"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("no %q in the log:\n%s", want, logs.String())
		}
	}
	// -log-format json: every line, from every part, is one JSON object.
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("not a JSON log line: %q", line)
		}
	}
}

func do(method, url string, body []byte) (int, string) {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func poll(t *testing.T, cond func() bool) {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// -version prints the version and commit the build was stamped with, and
// the Go version; unstamped, it still answers.
func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(buildBidder(t), "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "bidder ") || !strings.Contains(string(out), runtime.Version()+")") {
		t.Fatalf("unstamped -version: %v %q", err, out)
	}
	bin := filepath.Join(t.TempDir(), "bidder")
	const pkg = "github.com/openbidder/openbidder/bidder"
	if b, err := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X "+pkg+".version=v1.2.3-test -X "+pkg+".commit=0123abcd", ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	out, err = exec.Command(bin, "-version").CombinedOutput()
	if want := "bidder v1.2.3-test (commit 0123abcd, " + runtime.Version() + ")\n"; err != nil || string(out) != want {
		t.Fatalf("-version: %v %q, want %q", err, out, want)
	}
}
