package budget

import (
	"errors"
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
