package bidder

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHandlerKinds is the whole handler (fixed scorer, fake budget) per
// request kind: a banner for reference, and the 2.6 ones (native assets
// answered by id, a video pod, DOOH with qty, an exchange's nbr no-bid).
func BenchmarkHandlerKinds(b *testing.B) {
	ts := newTestServer(b, func(c *Config) { withVendor(c); goldenExchanges(c) })
	ts.money.holds = nil // do not record
	for _, c := range []struct{ name, file, uri string }{
		{"site-banner", "site-banner.json", "/openrtb2/bid"},
		{"native-assets", "native-assets.json", "/openrtb2/bid"},
		{"video-pod", "video-pod.json", "/openrtb2/bid"},
		{"dooh-qty", "dooh-qty.json", "/openrtb2/bid"},
		{"exchange-nbr", "exchange-nbr.json", "/openrtb2/bid?exchange=strict"},
	} {
		body := readReq(b, c.file)
		b.Run(c.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Request.KeepBodyBuffer, ctx.Response.KeepBodyBuffer = true, true
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI(c.uri)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				ctx.Request.SetBody(body)
				ts.handle(&ctx)
			}
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d %s", ctx.Response.StatusCode(), ctx.Response.Header.Peek("x-nobid-reason"))
			}
		})
	}
}
