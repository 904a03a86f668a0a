package budget

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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

	f := func(line, want string) {
		t.Helper()
		if got := networkConnKind(line); got != want {
			t.Errorf("networkConnKind(%q) = %q, want %q", line, got, want)
		}
	}
	f("127.0.0.1:51234 - cid:17 - Client parser ERROR, state=0, i=0: proto='\"GARBAGE\"...'", "cid:")
	f("[::1]:4222 - cid:3 - \"v1.37.0:go\" - TLS handshake error: EOF", "cid:")
	f("10.0.0.1:4222 - wid:9 - authentication error", "wid:")
	f("10.0.0.1:1883 - mid_ws:12 - bad packet", "mid_ws:")
	f("pipe - cid:1 - Slow Consumer Detected", "")
	f("10.0.0.2:6222 - rid:4 - Route connection error", "rid:")
	f("127.0.0.1:35436 - rid:24 - authentication error", "rid:")
	f("JetStream cluster no metadata leader", "")
	f("a - cid: - x", "")
	f("a - rid:7x - x", "")
}

// The same for the route listener: a flood of bad connections to it (a
// failed route login, protocol garbage) is counted and summed up in one
// RouteErrorsMsg line, not logged once per connection. Three nodes, since
// a clustered JetStream server is not ready alone; only the first logs.
func TestEmbeddedSumsUpRouteConnectionErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	var buf lockedBuffer
	var count atomic.Uint64
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var first *server.Server
	var firstPort int
	for attempt := 0; attempt < 3 && first == nil; attempt++ { // a picked port can be taken before it binds
		ports := []int{freePort(t), freePort(t), freePort(t)}
		var routes []string
		for _, p := range ports {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
		var srvs []*server.Server
		var err error
		for i := range 3 {
			o := EmbeddedOptions{ServerName: fmt.Sprintf("r%d", i), StoreDir: t.TempDir(), Port: -1,
				ReadyTimeout: 30 * time.Second, ClusterName: "route-log-test", ClusterPort: ports[i], Routes: routes,
				ClusterUser: "route", ClusterPassword: "route-secret"}
			if i == 0 {
				o.Log, o.RouteErrors, o.ClientLogEvery = log, &count, time.Hour
			}
			var s *server.Server
			if s, err = StartEmbedded(o); err != nil {
				break
			}
			srvs = append(srvs, s)
		}
		for _, s := range srvs {
			t.Cleanup(s.Shutdown) // the first is shut down below too: it may be twice
		}
		if err != nil {
			for _, s := range srvs {
				s.Shutdown()
			}
			t.Logf("cluster start attempt %d: %v", attempt+1, err)
			continue
		}
		first, firstPort = srvs[0], ports[0]
	}
	if first == nil {
		t.Fatal("no cluster")
	}
	before := count.Load()
	start := len(buf.String())
	const n = 60
	floodClients(t, fmt.Sprintf("127.0.0.1:%d", firstPort), n)
	if got := count.Load() - before; got < n {
		t.Errorf("counted %d route errors during the flood, want at least %d", got, n)
	}
	if during := buf.String()[start:]; strings.Contains(during, "rid:") {
		t.Errorf("route connection lines logged one by one during the flood:\n%s", during)
	}
	first.Shutdown()
	first.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), RouteErrorsMsg) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var sums []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, RouteErrorsMsg) {
			sums = append(sums, line)
		}
	}
	if len(sums) != 1 || !strings.Contains(sums[0], "level=WARN") || !strings.Contains(sums[0], "first=") ||
		!strings.Contains(sums[0], "total="+strconv.FormatUint(count.Load(), 10)) {
		t.Errorf("want one WARN summary line with the total and a sample, got %q", sums)
	}
}
