package budget

import (
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two embedded servers on one store directory each took the records for
// their own: two bidders started on one store_dir (a restart that did not
// wait for the old process, found by the red-team pass) both served bids
// and granted leases from the same pool without seeing each other. The
// second now fails to start; once the first has shut down, a server starts
// there again.
func TestEmbeddedStoreLocked(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, dir, -1)
	if srv, err := StartEmbedded(EmbeddedOptions{StoreDir: dir, Port: -1, ReadyTimeout: 30 * time.Second}); !errors.Is(err, ErrStoreInUse) {
		if srv != nil {
			srv.Shutdown()
		}
		t.Fatalf("second server on one store: %v, want ErrStoreInUse", err)
	}
	first.Shutdown()
	again := startServer(t, dir, -1)
	again.Shutdown()
}

// A client port already taken ends the start with nats-server's reason, not
// a wait of the whole ReadyTimeout ending in "not ready" (an outside audit:
// 10 s, then no cause).
func TestEmbeddedPortTakenSaysWhy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	for _, log := range []*slog.Logger{nil, slog.New(slog.DiscardHandler)} {
		srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Host: "127.0.0.1", Port: port, ReadyTimeout: time.Minute, Log: log})
		if srv != nil {
			srv.Shutdown()
		}
		if err == nil || !strings.Contains(err.Error(), "budget: embedded nats: ") || !strings.Contains(err.Error(), strconv.Itoa(port)) {
			t.Fatalf("port taken: %v, want nats-server's reason naming the port", err)
		}
	}
}
