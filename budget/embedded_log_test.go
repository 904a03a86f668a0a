package budget

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockedBuffer is written by the server's goroutines and read by the test.
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

// The embedded server logs through the logger it is given: notices at
// debug, warnings and errors at their level.
func TestEmbeddedLogsThroughTheGivenLogger(t *testing.T) {
	f := func(level slog.Level, wantBanner bool) {
		t.Helper()
		var buf lockedBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Log: log})
		if err != nil {
			t.Fatal(err)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		if got := strings.Contains(buf.String(), "Starting nats-server"); got != wantBanner {
			t.Errorf("level %v: banner logged %v, want %v:\n%s", level, got, wantBanner, buf.String())
		}
		if wantBanner && !strings.Contains(buf.String(), "component=nats") {
			t.Errorf("level %v: lines lack component=nats:\n%s", level, buf.String())
		}
	}
	f(slog.LevelDebug, true)
	f(slog.LevelInfo, false)

	var buf lockedBuffer
	n := natsLogger{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	n.Noticef("notice %d", 1)
	n.Warnf("warn %d", 2)
	n.Errorf("error %d", 3)
	n.Fatalf("fatal %d", 4)
	out := buf.String()
	for _, want := range []string{`level=WARN msg="warn 2"`, `level=ERROR msg="error 3"`, `level=ERROR msg="fatal 4"`} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "notice") {
		t.Errorf("a notice at warn level:\n%s", out)
	}
}

// floodClients opens n connections to addr one after the other, sends each
// bytes nats-server refuses, and reads until the server has closed it.
func floodClients(t *testing.T, addr string, n int) {
	t.Helper()
	bad := [][]byte{
		[]byte("GARBAGE\r\n"),
		{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00, '\r', '\n'}, // a TLS ClientHello's start
		[]byte("CONNECT {not json\r\n"),
	}
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(bad[i%len(bad)]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection %d: the server did not close it: %v", i, err)
		}
		c.Close()
	}
}

// A flood of bad client connections to the listener is counted and summed
// up in one line (on shutdown here; every ClientLogEvery while running),
// not logged once per connection; the server's other lines are untouched.
func TestEmbeddedSumsUpClientConnectionErrors(t *testing.T) {
	var buf lockedBuffer
	var count atomic.Uint64
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Port: -1, Log: log,
		ClientErrors: &count, ClientLogEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 150
	floodClients(t, srv.Addr().String(), n)
	if got := count.Load(); got < n {
		t.Errorf("counted %d client errors, want at least %d", got, n)
	}
	if lines := strings.Count(buf.String(), "\n"); lines > 0 {
		t.Errorf("%d lines logged during the flood, want none before the summary:\n%s", lines, buf.String())
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), ClientErrorsMsg) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := buf.String()
	if lines := strings.Count(out, "\n"); lines != 1 || !strings.Contains(out, "level=WARN") ||
		!strings.Contains(out, "count="+strconv.FormatUint(count.Load(), 10)) || !strings.Contains(out, "first=") {
		t.Errorf("want one WARN summary line with the count and a sample, got:\n%s", out)
	}

	f := func(line string, want bool) {
		t.Helper()
		if got := isNetworkClientLine(line); got != want {
			t.Errorf("isNetworkClientLine(%q) = %v, want %v", line, got, want)
		}
	}
	f("127.0.0.1:51234 - cid:17 - Client parser ERROR, state=0, i=0: proto='\"GARBAGE\"...'", true)
	f("[::1]:4222 - cid:3 - \"v1.37.0:go\" - TLS handshake error: EOF", true)
	f("10.0.0.1:4222 - wid:9 - authentication error", true)
	f("pipe - cid:1 - Slow Consumer Detected", false)
	f("10.0.0.2:6222 - rid:4 - Route connection error", false)
	f("JetStream cluster no metadata leader", false)
	f("a - cid: - x", false)
}
