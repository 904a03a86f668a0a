package bidder

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// The handler's cost with the kill switch (test campaigns, fake money and
// scorer): without a control source (the baseline), followed with nothing
// paused, with another campaign paused (the per-candidate table is built and
// read), with the bidding campaign paused (its candidate refused), and with
// all bidding paused (204 before parsing).
func BenchmarkKillSwitch(b *testing.B) {
	site := readReq(b, "site-banner.json")
	for _, c := range []struct {
		name   string
		follow bool
		pause  string // campaign id; "*" all
		status int
	}{
		{"baseline", false, "", 200},
		{"nothing_paused", true, "", 200},
		{"other_paused", true, "globex-cpc", 200},
		{"campaign_paused", true, "acme-banner", 204},
		{"all_paused", true, "*", 204},
	} {
		b.Run(c.name, func(b *testing.B) {
			ts := newTestServer(b, nil)
			ts.money.holds = nil
			if c.follow {
				ctl := newFakeControl()
				ts.followControl(ctl)
				switch c.pause {
				case "":
				case "*":
					ctl.set("", true)
				default:
					ctl.set(c.pause, true)
				}
			}
			var ctx fasthttp.RequestCtx
			ctx.Request.KeepBodyBuffer, ctx.Response.KeepBodyBuffer = true, true
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/openrtb2/bid")
			b.ReportAllocs()
			b.SetBytes(int64(len(site)))
			for b.Loop() {
				ctx.Response.Reset()
				ctx.Request.SetBody(site)
				ts.handle(&ctx)
			}
			if ctx.Response.StatusCode() != c.status {
				b.Fatalf("status %d, want %d", ctx.Response.StatusCode(), c.status)
			}
		})
	}
}
