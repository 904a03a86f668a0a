//go:build !race

package bidder

import (
	"strings"
	"testing"

	"github.com/openbidder/openbidder/shading"
)

// The whole handler with shading on allocates nothing once warm: cold and
// warm first-price segments, and second price.
func TestHandlerAllocsShading(t *testing.T) {
	ts := newTestServer(t, withShading)
	ts.money.holds = nil // do not record
	cold := []byte(strings.Replace(string(firstPrice(t, "cold")), `"pub-3"`, `"pub-9"`, 1))
	ts.train(t, 12, 1.0) // warms pub-3's placement
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"first price, warm segment", firstPrice(t, "alloc")},
		{"first price, cold segment", cold},
		{"second price", readReq(t, "site-banner.json")},
		{"multi-imp", readReq(t, "multi-imp.json")},
	} {
		ctx, run := bidReplay(ts.handle, c.body)
		run()
		if got := ctx.Response.StatusCode(); got != 200 {
			t.Fatalf("%s: status %d: %s", c.name, got, ctx.Response.Body())
		}
		if n := allocs(run); n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", c.name, n)
		}
	}
	if ts.shadeStats.bids[shading.LevelPlacement].load() < 200 {
		t.Fatal("no bid was priced by a warm curve")
	}
}
