package bidder

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// The handler's cost for a shed request beside a full bid (test campaigns,
// fake money and scorer): what admission saves per refused request, before
// the kernel's and fasthttp's share, which both pay.
func BenchmarkShedVsBid(b *testing.B) {
	site := readReq(b, "site-banner.json")
	for _, c := range []struct {
		name     string
		inflight int64
	}{{"bid", 0}, {"shed", 1}} {
		b.Run(c.name, func(b *testing.B) {
			ts := newTestServer(b, func(c *Config) { c.Limits.Admission = AdmissionConfig{MinLimit: 1, MaxLimit: 1} })
			ts.money.holds = nil
			ts.adm.inflight.Store(c.inflight)
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
			if want := map[string]int{"bid": 200, "shed": 204}[c.name]; ctx.Response.StatusCode() != want {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		})
	}
}
