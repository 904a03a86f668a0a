//go:build !race

package bidder

import (
	"testing"
)

// The kill switch's gate allocates nothing: with a campaign paused (its
// candidate refused, another campaign bids or the request no-bids) and with
// all bidding paused.
func TestKillSwitchAllocs(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.money.holds = nil // do not record
	ctl := newFakeControl()
	ts.followControl(ctl)
	site := readReq(t, "site-banner.json")
	cases := []struct {
		name   string
		pause  string // campaign id; "*" all
		status int
	}{
		{"nothing paused", "", 200},
		{"the bidding campaign paused", "acme-banner", 204},
		{"another campaign paused", "globex-cpc", 200},
		{"all paused", "*", 204},
	}
	for _, c := range cases {
		ctl = newFakeControl()
		ts.followControl(ctl)
		switch c.pause {
		case "":
		case "*":
			ctl.set("", true)
		default:
			ctl.set(c.pause, true)
		}
		ctx, run := bidReplay(ts.handle, site)
		run()
		if got := ctx.Response.StatusCode(); got != c.status {
			t.Fatalf("%s: status %d, want %d", c.name, got, c.status)
		}
		if n := allocs(run); n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", c.name, n)
		}
	}
}
