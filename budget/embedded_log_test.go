package budget

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
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
	n := natsLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
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
