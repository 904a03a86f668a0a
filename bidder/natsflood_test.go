package bidder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/budget"
)

// Anyone who reaches budget.embedded_listen can make nats-server log: a
// flood of bad connections (protocol garbage, a TLS hello, a bad CONNECT)
// is counted in /metrics and summed up in one warning, and a real error
// logged before the flood is still on the status page afterwards.
func TestNATSClientFloodKeepsRecentErrors(t *testing.T) {
	// The port is picked free, closed, then bound by the embedded server:
	// another process may take it in between (port 0 would mean "do not
	// listen"), and the start then fails at once naming it: up to three
	// ports are tried.
	var (
		app  *App
		port int
		logs *syncBuffer
	)
	for attempt := 0; app == nil; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		logs = &syncBuffer{}
		app, err = tryStartAppLog(t, func(c *Config) { c.Budget.EmbeddedListen = fmt.Sprintf("127.0.0.1:%d", port) },
			slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil && (attempt == 2 || !strings.Contains(err.Error(), strconv.Itoa(port))) {
			t.Fatal(err)
		}
	}
	// Clients without auth on it: warned at start (any local process has
	// the budget through it).
	if !strings.Contains(logs.String(), "budget.embedded_listen takes clients without auth") {
		t.Fatalf("no warning of an embedded_listen without auth:\n%s", logs.String())
	}
	const real = "a real error before the flood"
	app.log.Error(real)

	const n = 2 * recentErrorsKept
	bad := [][]byte{
		[]byte("GARBAGE\r\n"),
		{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00, '\r', '\n'},
		[]byte("CONNECT {not json\r\n"),
	}
	for i := range n {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(bad[i%len(bad)]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil { // until the server closes it
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
	}

	_, page := get(t, "http://"+app.AdminAddr()+"/metrics")
	m := regexp.MustCompile(`(?m)^openbidder_nats_client_errors_total (\d+)$`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no openbidder_nats_client_errors_total in /metrics")
	}
	if got, _ := strconv.Atoi(string(m[1])); got < n {
		t.Errorf("openbidder_nats_client_errors_total %d, want at least %d", got, n)
	}
	if lines := strings.Count(logs.String(), "component=nats"); lines > 0 {
		t.Errorf("%d nats lines logged during the flood of %d connections, want none before the summary:\n%.2000s", lines, n, logs.String())
	}
	_, body := get(t, "http://"+app.AdminAddr()+"/admin/status")
	var doc statusDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if !hasError(doc.Errors, real) {
		t.Errorf("the status page lost %q to the flood: %+v", real, doc.Errors)
	}

	// The summary comes every minute, and once more at shutdown.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	app.Close(ctx)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), budget.ClientErrorsMsg) })
	if lines := strings.Count(logs.String(), "component=nats"); lines != 1 {
		t.Errorf("%d nats lines, want the one summary:\n%.2000s", lines, logs.String())
	}
	recs, _ := app.errs.ring.recent()
	summaries := 0
	for _, r := range recs {
		if r.Msg == budget.ClientErrorsMsg {
			summaries++
		}
	}
	if !hasError(recs, real) || summaries != 1 {
		t.Errorf("recent errors after the flood: %+v", recs)
	}
}

func hasError(recs []errorRecord, msg string) bool {
	for _, r := range recs {
		if r.Msg == msg {
			return true
		}
	}
	return false
}

// The embedded server's summary line keeps one place in the ring, its
// newest: repeated every minute it pushes nothing else out.
func TestRecentErrorsSummaryKeepsOnePlace(t *testing.T) {
	h := newRecentErrors(slog.NewTextHandler(io.Discard, nil), 3)
	log := slog.New(h)
	log.Error("a")
	log.Warn(budget.ClientErrorsMsg, "count", 1)
	log.Error("b")
	for i := range 10 {
		log.Warn(budget.ClientErrorsMsg, "count", i+2)
	}
	got, total := h.ring.recent()
	if total != 13 || len(got) != 3 || got[0].Msg != budget.ClientErrorsMsg || got[0].Attrs != "count=11" ||
		got[1].Msg != "b" || got[2].Msg != "a" {
		t.Fatalf("ring %d %+v", total, got)
	}
	log.Error("c")
	log.Error("d")
	log.Warn(budget.ClientErrorsMsg, "count", 12)
	got, _ = h.ring.recent()
	if len(got) != 3 || got[0].Attrs != "count=12" || got[1].Msg != "d" || got[2].Msg != "c" {
		t.Fatalf("ring %+v", got)
	}
	// The route connections' summary keeps a place of its own the same way.
	for i := range 5 {
		log.Warn(budget.RouteErrorsMsg, "count", i+1)
	}
	got, _ = h.ring.recent()
	if len(got) != 3 || got[0].Msg != budget.RouteErrorsMsg || got[0].Attrs != "count=5" ||
		got[1].Msg != budget.ClientErrorsMsg || got[2].Msg != "d" {
		t.Fatalf("ring %+v", got)
	}
}
