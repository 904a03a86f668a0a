//go:build !race

package bidder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
	"github.com/valyala/fasthttp"
)

// The whole handler, through a reused RequestCtx, allocates nothing once
// warm: for bids and no-bids, site and app, banner, video and native, and
// requests whose consent strings the privacy cache has seen.
func TestHandlerAllocs(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { withVendor(c); goldenExchanges(c) })
	ts.money.holds = nil // do not record
	site := readReq(t, "site-banner.json")
	video := []byte(strings.Replace(string(readReq(t, "app-video.json")), `"user":{"id":"u-2"}`, `"user":{"id":"u-2","consent":"`+tcAll+`"}`, 1))
	gpp := []byte(strings.Replace(string(site), `"user":{"id":"u-1"}`, `"user":{"id":"u-1"},"regs":{"gpp":"`+gppClean+`","gpp_sid":[7],"us_privacy":"1YNN"}`, 1))
	cases := []struct {
		name   string
		body   []byte
		status int
		gzip   bool
		uri    string // default /openrtb2/bid
	}{
		{"site banner bid", site, 200, false, ""},
		{"site banner bid gzip", gzipped(t, site), 200, true, ""},
		{"app video bid (cached TC string)", video, 200, false, ""},
		{"site banner bid (cached GPP string)", gpp, 200, false, ""},
		{"malformed consent (cached)", []byte(strings.Replace(string(video), tcAll, "gdprConsentString", 1)), 204, false, ""},
		{"app video no-bid (frequency cap)", readReq(t, "app-video.json"), 204, false, ""},
		{"native bid", readReq(t, "native-eur.json"), 200, false, ""},
		{"multi-imp bid", readReq(t, "multi-imp.json"), 200, false, ""},
		{"no campaign", []byte(strings.Replace(string(site), `"country":"USA"`, `"country":"BRA"`, 1)), 204, false, ""},
		{"bad request", []byte(`{"id":"x","imp":[{"id":"1","bidfloor":"1"}]}`), 400, false, ""},
		{"native assets bid", readReq(t, "native-assets.json"), 200, false, ""},
		{"video pod bid", readReq(t, "video-pod.json"), 200, false, ""},
		{"dooh qty bid", readReq(t, "dooh-qty.json"), 200, false, ""},
		{"exchange rules bid", readReq(t, "exchange-bid.json"), 200, false, "/openrtb2/bid?exchange=strict"},
		{"exchange nbr no-bid", readReq(t, "exchange-nbr.json"), 200, false, "/openrtb2/bid?exchange=strict"},
	}
	for _, c := range cases {
		var ctx fasthttp.RequestCtx
		// As fasthttp.Server sets them (ReduceMemoryUsage off): buffers stay
		// with the context instead of churning through global pools.
		ctx.Request.KeepBodyBuffer, ctx.Response.KeepBodyBuffer = true, true
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/openrtb2/bid")
		if c.uri != "" {
			ctx.Request.SetRequestURI(c.uri)
		}
		if c.gzip {
			ctx.Request.Header.Set("Content-Encoding", "gzip")
		}
		run := func() {
			ctx.Response.Reset()
			ctx.Request.SetBody(c.body)
			ts.handle(&ctx)
		}
		run()
		ts.privacy.Wait() // the first sight of a consent string decodes it and offers it to the cache
		if got := ctx.Response.StatusCode(); got != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.name, got, c.status, ctx.Response.Body())
		}
		if c.status == 400 {
			continue // the error path may allocate its message
		}
		if n := allocs(run); n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", c.name, n)
		}
	}
}

// The same through the real budget manager and the real token signer, at
// second price and at first price with shading on (its notices carry the
// segment key and the tag binding it to the tokens).
func TestHandlerAllocsRealBudget(t *testing.T) {
	s, _ := budgetTestServer(t, withShading)
	ts := &testServer{Server: s}
	for _, body := range [][]byte{readReq(t, "site-banner.json"), firstPrice(t, "alloc")} {
		if n := bidAllocs(t, ts, body); n != 0 {
			t.Errorf("%v allocations per bid through the real budget, want 0", n)
		}
	}
}

// bidAllocs is allocs of ts answering body again (bidReplay), which must
// bid.
func bidAllocs(t *testing.T, ts *testServer, body []byte) float64 {
	t.Helper()
	ctx, run := bidReplay(ts.handle, body)
	run()
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d %s", ctx.Response.StatusCode(), ctx.Response.Header.Peek("x-nobid-reason"))
	}
	return allocs(run)
}

// bidReplay is a request context posting body to the bid endpoint, with
// its buffers kept as fasthttp.Server keeps them, and a run that answers it
// again through handle: what the allocation guards measure.
func bidReplay(handle func(*fasthttp.RequestCtx), body []byte) (*fasthttp.RequestCtx, func()) {
	ctx := new(fasthttp.RequestCtx)
	ctx.Request.KeepBodyBuffer, ctx.Response.KeepBodyBuffer = true, true
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/openrtb2/bid")
	return ctx, func() {
		ctx.Response.Reset()
		ctx.Request.SetBody(body)
		handle(ctx)
	}
}

// allocs is the least of three testing.AllocsPerRun measurements, taken
// with the collector off. The runtime counts every goroutine's allocations,
// so a background goroutine left by an earlier test (a server shutting down)
// can only add to one measurement, while an allocation on the measured path
// shows in all three; and a collection those goroutines trigger empties the
// sync.Pool of request contexts, whose refill is not the steady state.
func allocs(f func()) float64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	least := testing.AllocsPerRun(200, f)
	for i := 0; i < 2 && least > 0; i++ {
		least = min(least, testing.AllocsPerRun(200, f))
	}
	return least
}

// With model.row_log on (every bid sampled), the handler still allocates
// nothing: the bid path copies its record into a pre-allocated slot, and
// the writer goroutine (counted too: AllocsPerRun sees every goroutine)
// appends the CRC in place and writes through a reused buffer. Records the
// writer has not taken yet are dropped, not waited for.
func TestHandlerAllocsRowLog(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.money.holds = nil
	ctx, cancel := context.WithCancel(context.Background())
	rl, err := newRowLog(ctx, rowLogTestConfig(t.TempDir()), features.Width, features.SchemaVersion,
		func(ctr.Scored) string { return "model-a" }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer rl.wait()
	defer cancel()
	ts.mon.rows = rl
	site := readReq(t, "site-banner.json")
	rc, run := bidReplay(ts.handle, site)
	run()
	if rc.Response.StatusCode() != 200 {
		t.Fatalf("status %d %s", rc.Response.StatusCode(), rc.Response.Header.Peek("x-nobid-reason"))
	}
	if n := allocs(run); n != 0 {
		t.Errorf("%v allocations per bid with the row log on, want 0", n)
	}
	if rl.offered.Load() < 200 {
		t.Fatalf("row log offered %d records, want every bid", rl.offered.Load())
	}
}

// A first-price bid priced from a warm curve (the segment past its
// min_observations) allocates nothing either: TestHandlerAllocsRealBudget's
// first-price request is cold, so the curve's path was not under the guard
// the docs cite (an outside audit).
func TestHandlerAllocsWarmShading(t *testing.T) {
	s, _ := budgetTestServer(t, withShading)
	ts := &testServer{Server: s}
	ts.train(t, 12, 1.0)
	body := firstPrice(t, "alloc-warm")
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(body)))
	if b.Price >= 2 {
		t.Fatalf("bid %v: not shaded below the 2.00 value, the curve is not warm", b.Price)
	}
	if n := bidAllocs(t, ts, body); n != 0 {
		t.Errorf("%v allocations per shaded bid, want 0", n)
	}
}

// bid.ext is written by hand on the bid path: with pricing.reveal_pctr
// (off by default, so TestHandlerAllocs no longer reaches it) and with the
// campaign's DSA transparency beside it, the handler still allocates
// nothing, and every combination is one well-formed ext object.
func TestHandlerAllocsBidExt(t *testing.T) {
	site := string(readReq(t, "site-banner.json"))
	dsaReq := []byte(strings.TrimSuffix(strings.TrimSpace(site), "}") + `,"regs":{"ext":{"dsa":{"dsarequired":2,"pubrender":1}}}}`)
	for _, reveal := range []bool{false, true} {
		ts := newTestServer(t, func(c *Config) { c.Pricing.RevealPCTR = reveal })
		ts.money.holds = nil // do not record
		var withDSA []campaigns.Config
		for _, c := range testCampaignConfigs(t) {
			c.DSA = &campaigns.DSAConfig{Behalf: "Acme", Paid: "Acme"}
			withDSA = append(withDSA, c)
		}
		snap, err := campaigns.Compile(withDSA)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.SetCampaigns(snap); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			body []byte
			ext  string // bid.ext's members, in order
		}{
			{"no dsa asked", []byte(site), map[bool]string{false: "", true: "pctr"}[reveal]},
			{"dsa asked", dsaReq, map[bool]string{false: "dsa", true: "pctr,dsa"}[reveal]},
		} {
			var ctx fasthttp.RequestCtx
			ctx.Request.KeepBodyBuffer, ctx.Response.KeepBodyBuffer = true, true
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/openrtb2/bid")
			run := func() {
				ctx.Response.Reset()
				ctx.Request.SetBody(c.body)
				ts.handle(&ctx)
			}
			run()
			if got := ctx.Response.StatusCode(); got != 200 {
				t.Fatalf("reveal_pctr %v, %s: status %d: %s", reveal, c.name, got, ctx.Response.Body())
			}
			var resp struct {
				SeatBid []struct {
					Bid []struct {
						Ext json.RawMessage `json:"ext"`
					} `json:"bid"`
				} `json:"seatbid"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &resp); err != nil {
				t.Fatalf("reveal_pctr %v, %s: %v: %s", reveal, c.name, err, ctx.Response.Body())
			}
			var keys []string
			if ext := resp.SeatBid[0].Bid[0].Ext; len(ext) > 0 {
				dec := json.NewDecoder(bytes.NewReader(ext))
				dec.Token() // {
				for dec.More() {
					k, _ := dec.Token()
					keys = append(keys, k.(string))
					var v json.RawMessage
					if err := dec.Decode(&v); err != nil {
						t.Fatalf("reveal_pctr %v, %s: bid.ext %s: %v", reveal, c.name, ext, err)
					}
				}
			}
			if got := strings.Join(keys, ","); got != c.ext {
				t.Errorf("reveal_pctr %v, %s: bid.ext members %q, want %q", reveal, c.name, got, c.ext)
			}
			if n := allocs(run); n != 0 {
				t.Errorf("reveal_pctr %v, %s: %v allocations per request, want 0", reveal, c.name, n)
			}
		}
	}
}
