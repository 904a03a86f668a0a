//go:build !race

package bidder

import (
	"strings"
	"testing"
)

// The paths this range added to the bid path allocate nothing: a deal
// fallback at the gate and at pricing, floor_currency, and a first-price
// bid for an exchange at min_to_win: none through the real signer.
func TestHandlerAllocsDealFallbackAndFloorCurrency(t *testing.T) {
	base := string(readReq(t, "site-banner.json"))
	deals := func(private int, d string) []byte {
		return []byte(strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
			`"bidfloor":0.5,"bidfloorcur":"USD","pmp":{"private_auction":`+string(rune('0'+private))+`,"deals":[`+d+`]}`, 1))
	}
	first := func(b []byte) []byte { return []byte(strings.Replace(string(b), `"at":2`, `"at":1`, 1)) }
	ts := newTestServer(t, func(c *Config) {
		c.Pricing.FirstPriceShade = 0.9
		c.Exchanges = map[string]ExchangeConfig{"gb": {FloorCurrency: "GBP"}}
	})
	ts.money.holds = nil
	for _, c := range []struct {
		name string
		body []byte
		uri  string
	}{
		{"gate fallback to a later deal", deals(1, `{"id":"deal-7","bidfloor":4.5},{"id":"deal-8","bidfloor":3.5}`), ""},
		{"price fallback to a later deal", first(deals(1, `{"id":"deal-7","bidfloor":3.8},{"id":"deal-8","bidfloor":3.5}`)), ""},
		{"floor_currency", []byte(strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`, `"bidfloor":1.5`, 1)), "/openrtb2/bid?exchange=gb"},
	} {
		ctx, run := bidReplay(ts.handle, c.body)
		if c.uri != "" {
			ctx.Request.SetRequestURI(c.uri)
		}
		run()
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("%s: status %d %s", c.name, ctx.Response.StatusCode(), ctx.Response.Header.Peek("x-nobid-reason"))
		}
		if n := allocs(run); n != 0 {
			t.Errorf("%s: %v allocations per bid, want 0", c.name, n)
		}
	}
	s, _ := budgetTestServer(t, func(c *Config) {
		withShading(c)
		c.Exchanges = map[string]ExchangeConfig{"outcomes": {Macros: MacrosConfig{MinToWin: "none"}}}
	})
	rts := &testServer{Server: s}
	ctx, run := bidReplay(rts.handle, firstPrice(t, "alloc"))
	ctx.Request.SetRequestURI("/openrtb2/bid?exchange=outcomes")
	run()
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("min_to_win none: status %d", ctx.Response.StatusCode())
	}
	if !strings.Contains(string(ctx.Response.Body()), "~") {
		t.Fatalf("no ~ in %s", ctx.Response.Body())
	}
	if n := allocs(run); n != 0 {
		t.Errorf("min_to_win none, real signer: %v allocations per bid, want 0", n)
	}
}
