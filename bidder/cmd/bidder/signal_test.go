package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openbidder/openbidder/budget"
)

// lockedBuffer is a bytes.Buffer the child's output goroutine writes while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A signal while the bidder starts. Signals were caught only once Start had
// returned, and Start serves before it returns and waits up to
// budget.start_timeout for the budget store: a SIGHUP in that window killed
// the process, a SIGTERM skipped the drain. Now a SIGHUP is kept for after
// the start, and a SIGTERM cancels the start and exits 0.
func TestSignalDuringStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBidder(t)
	root, _ := filepath.Abs("../../..")
	dead := freeAddr(t) // nothing listens there: the budget store never comes up
	cfg := fmt.Sprintf(`campaigns_dir: %[1]s/bidder/testdata/campaigns
watch_every: -1s
model: {gbdt: %[1]s/configs/models/gbdt.manifest.json, provider: "off"}
budget: {nats_urls: ["nats://%[2]s"], start_timeout: 2m}
notices: {key: signal-test-notice-key-0123}
`, root, dead)
	path := filepath.Join(t.TempDir(), "bidder.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "-config", path, "-listen", freeAddr(t), "-admin-listen", freeAddr(t))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	retries := func() int { return strings.Count(logs.String(), "budget store not ready") }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("%s: the bidder exited (%v):\n%s", what, err, logs.String())
			default:
			}
			if time.Now().After(end) {
				t.Fatalf("%s: not within 30 s:\n%s", what, logs.String())
			}
		}
	}
	waitFor("start waiting on the budget store", func() bool { return retries() > 0 })
	cmd.Process.Signal(syscall.SIGHUP)
	n := retries()
	waitFor("still starting after SIGHUP", func() bool { return retries() > n })
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("SIGTERM during start: %v, want exit 0:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM during start:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down during start") {
		t.Errorf("no shutdown logged:\n%s", logs.String())
	}
}

// A SIGHUP while the bidder starts is kept for after the start: the
// campaign set is reloaded once the budget store came up. The directory
// watch is off, so only that reload drops the campaign file removed before
// the signal.
func TestSighupDuringStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBidder(t)
	root, _ := filepath.Abs("../../..")
	dir := t.TempDir()
	camps := filepath.Join(dir, "campaigns")
	if err := os.CopyFS(camps, os.DirFS(filepath.Join(root, "bidder/testdata/campaigns"))); err != nil {
		t.Fatal(err)
	}
	later := freeAddr(t) // the budget store comes up here once the signal is in
	cfg := fmt.Sprintf(`campaigns_dir: %[1]s
watch_every: -1s
model: {gbdt: %[2]s/configs/models/gbdt.manifest.json, provider: "off"}
budget: {nats_urls: ["nats://%[3]s"], start_timeout: 2m}
notices: {key: signal-test-notice-key-0123}
`, camps, root, later)
	path := filepath.Join(dir, "bidder.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	listen := freeAddr(t)
	cmd := exec.Command(bin, "-config", path, "-listen", listen, "-admin-listen", freeAddr(t))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitLog := func(what, s string) {
		t.Helper()
		for end := time.Now().Add(60 * time.Second); !strings.Contains(logs.String(), s); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: no %q within 60 s:\n%s", what, s, logs.String())
			}
		}
	}
	waitLog("start waiting on the budget store", "budget store not ready")
	if err := os.Remove(filepath.Join(camps, "acme.yaml")); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	host, port, _ := strings.Cut(later, ":")
	p, _ := strconv.Atoi(port)
	srv, err := budget.StartEmbedded(budget.EmbeddedOptions{StoreDir: filepath.Join(dir, "nats"), Host: host, Port: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	waitLog("start", `msg="bidder listening"`)
	waitLog("the reload after the start", `msg="campaigns published" campaigns=5`)
}

// A SIGTERM during a storm of SIGHUPs (a config tool re-signalling in a
// loop, a reload per file written) still shuts the bidder down. The signals
// shared one channel of two slots, and the runtime drops a signal whose
// channel is full: while a reload ran, two queued SIGHUPs filled it and the
// SIGTERM was lost, so the bidder never drained (readiness stayed 200 and
// the orchestrator's SIGKILL came later, with notices in flight).
func TestSigtermDuringSighupStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBidder(t)
	root, _ := filepath.Abs("../../..")
	dir := t.TempDir()
	camps := filepath.Join(dir, "campaigns")
	if err := os.MkdirAll(camps, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "bidder/testdata/campaigns/acme.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Enough campaigns that a reload takes a while: the window in which
	// signals queue behind it.
	for i := range 300 {
		b := bytes.Replace(src, []byte("id: acme-banner"), fmt.Appendf(nil, "id: acme-%d", i), 1)
		b = bytes.Replace(b, []byte("id: acme-300x250"), fmt.Appendf(nil, "id: acme-%d-300x250", i), 1)
		if err := os.WriteFile(filepath.Join(camps, fmt.Sprintf("acme-%d.yaml", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "bidder.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `campaigns_dir: %s
watch_every: -1s
model: {gbdt: %s/configs/models/gbdt.manifest.json, provider: "off"}
budget: {store_dir: %s/nats}
lifecycle: {drain_delay: -1s}
`, camps, root, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSignalProc(t, bin, root, cfg)
	p.waitListening(t)
	cmd, logs := p.cmd, p.logs
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the storm, until the test ends
		for {
			select {
			case <-stop:
				return
			default:
				cmd.Process.Signal(syscall.SIGHUP)
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	for end := time.Now().Add(60 * time.Second); strings.Count(logs.String(), `msg="campaigns published"`) < 5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the storm reloaded nothing within 60 s:\n%s", logs.String())
		}
	}
	p.stopCleanly(t)
}

// A SIGHUP before Run catches signals (while the config is read: here a
// FIFO that no one writes yet, so the read waits) does not kill the bidder.
// Its default action ended the process: an outside audit killed it with a
// SIGHUP 5 and 20 ms after its start. Written, the config then starts a
// bidder that a SIGTERM stops cleanly.
func TestSighupBeforeConfigIsRead(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBidder(t)
	root, _ := filepath.Abs("../../..")
	dir := t.TempDir()
	path := filepath.Join(dir, "bidder.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	p := startSignalProc(t, bin, root, path)
	cmd := p.cmd
	// Past the runtime's start (main has run once SIGHUP is ignored, or 2 s
	// on), then the signal.
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(status); err == nil && sigIgnored(string(b), syscall.SIGHUP) {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		t.Fatalf("a SIGHUP while the config was read ended the bidder: %v\n%s", p.err, p.logs.String())
	case <-time.After(300 * time.Millisecond):
	}
	cfg := fmt.Sprintf("campaigns_dir: %[1]s/bidder/testdata/campaigns\nwatch_every: -1s\n"+
		"model: {gbdt: %[1]s/configs/models/gbdt.manifest.json, provider: \"off\"}\n"+
		"budget: {store_dir: %[2]s/nats}\nnotices: {key: signal-test-notice-key-0123}\nlifecycle: {drain_delay: -1s}\n", root, dir)
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(cfg)
	w.Close()
	p.waitListening(t)
	p.stopCleanly(t)
}

// sigIgnored reads /proc/PID/status's SigIgn mask for sig.
func sigIgnored(status string, sig syscall.Signal) bool {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && m&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// signalProc is a bidder binary a signal test started, logging to logs;
// exited is closed when it has ended, and err is then how (overload_test.go's
// bidderProc writes its config and does not follow its exit).
type signalProc struct {
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited chan struct{}
	err    error
}

// startSignalProc starts bin -config cfg in root on free ports; the test's
// cleanup kills it if it still runs.
func startSignalProc(t *testing.T, bin, root, cfg string) *signalProc {
	t.Helper()
	p := &signalProc{logs: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "-config", cfg, "-listen", freeAddr(t), "-admin-listen", freeAddr(t))
	p.cmd.Dir = root
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// waitListening waits up to 60 s for the bidder to serve.
func (p *signalProc) waitListening(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); !strings.Contains(p.logs.String(), `msg="bidder listening"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no start within 60 s:\n%s", p.logs.String())
		}
	}
}

// stopCleanly sends SIGTERM and wants exit status 0 within 30 s.
func (p *signalProc) stopCleanly(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", p.err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM (%d reloads):\n%.2000s", strings.Count(p.logs.String(), `msg="campaigns published"`), p.logs.String())
	}
}
