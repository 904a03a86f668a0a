package bidder

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/ortb"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readReq(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/requests", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeResponse decodes a 200 body into the schema of record, as an
// exchange-side client (Prebid Server) would: a wrongly typed field fails.
func decodeResponse(t testing.TB, r *fasthttp.Response) *openrtb2.BidResponse {
	t.Helper()
	if r.StatusCode() != 200 {
		t.Fatalf("status %d (%s), want 200; body %q", r.StatusCode(), r.Header.Peek("x-nobid-reason"), r.Body())
	}
	var resp openrtb2.BidResponse
	dec := json.NewDecoder(bytes.NewReader(r.Body()))
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("response does not decode into openrtb2.BidResponse: %v\n%s", err, r.Body())
	}
	for _, sb := range resp.SeatBid {
		for _, b := range sb.Bid {
			if b.CrID == "" || b.MType == 0 || b.ID == "" || b.ImpID == "" || b.Price <= 0 {
				t.Fatalf("bid lacks a field an exchange requires: %+v", b)
			}
		}
	}
	return &resp
}

func onlyBid(t testing.TB, resp *openrtb2.BidResponse) openrtb2.Bid {
	t.Helper()
	if len(resp.SeatBid) != 1 || len(resp.SeatBid[0].Bid) != 1 {
		t.Fatalf("want one bid, got %+v", resp.SeatBid)
	}
	return resp.SeatBid[0].Bid[0]
}

// The answer's version follows a 2.5 request's (it answered 2.6 to every
// request before), and an earlier 2.x's gets 2.5, the oldest the bidder
// speaks (a 2.4 request was answered 2.6).
func TestAnswerVersion(t *testing.T) {
	ts := newTestServer(t, nil)
	for sent, want := range map[string]string{"2.5": "2.5", "2.5.1": "2.5", "2.4": "2.5", "2.3.1": "2.5", "2.0": "2.5",
		"2.6": "2.6", "": "2.6", "2.50": "2.6", "2.6.1": "2.6", "2.7": "2.6", "2.": "2.6", "2.5x": "2.6", "3.0": "2.6", "1.5": "2.6"} {
		if v := string(ts.bidInTime(readReq(t, "site-banner.json"), "x-openrtb-version", sent).Header.Peek("x-openrtb-version")); v != want {
			t.Errorf("a request of version %q: answered %q, want %q", sent, v, want)
		}
	}
}

func TestBidSiteBanner(t *testing.T) {
	ts := newTestServer(t, nil)
	r := ts.bid(readReq(t, "site-banner.json"), "x-openrtb-version", "2.6")
	if v := string(r.Header.Peek("x-openrtb-version")); v != "2.6" {
		t.Errorf("x-openrtb-version %q on the answer, want 2.6 (OpenRTB 2.6 asks for it on responses)", v)
	}
	// On every answer of the endpoint: a 403 (answered by ctx.Error, which
	// resets the headers) lacked it (the review of 7aa64ff).
	if r := ts.bid(readReq(t, "site-banner.json"), "Origin", "https://page.example"); r.StatusCode() != 403 ||
		string(r.Header.Peek("x-openrtb-version")) != "2.6" {
		t.Errorf("a 403: x-openrtb-version %q (status %d), want 2.6", r.Header.Peek("x-openrtb-version"), r.StatusCode())
	}
	resp := decodeResponse(t, r)
	if resp.ID != "req-site-banner" || resp.BidID == "" || resp.Cur != "USD" {
		t.Fatalf("response header fields: id %q bidid %q cur %q", resp.ID, resp.BidID, resp.Cur)
	}
	if resp.SeatBid[0].Seat != "openbidder" {
		t.Errorf("seat %q", resp.SeatBid[0].Seat)
	}
	b := onlyBid(t, resp)
	checks := []struct {
		name string
		ok   bool
	}{
		{"impid", b.ImpID == "1"},
		{"price is the fixed CPM", b.Price == 2},
		{"crid", b.CrID == "acme-300x250"},
		{"cid", b.CID == "acme-banner"},
		{"adomain", len(b.ADomain) == 1 && b.ADomain[0] == "acme.example"},
		{"cat", len(b.Cat) == 1 && b.Cat[0] == "IAB2"},
		{"size", b.W == 300 && b.H == 250},
		{"mtype banner", b.MType == openrtb2.MarkupBanner},
		{"nurl", strings.HasPrefix(b.NURL, "http://127.0.0.1:8080/notice/win?t=") && strings.HasSuffix(b.NURL, "&p=${AUCTION_PRICE}")},
		{"burl", strings.Contains(b.BURL, "/notice/bill?t=") && strings.Contains(b.BURL, "${AUCTION_PRICE}")},
		{"lurl", strings.Contains(b.LURL, "/notice/loss?t=") && strings.HasSuffix(b.LURL, "&r=${AUCTION_LOSS}")},
		{"adm click", strings.Contains(b.AdM, `<a href="http://127.0.0.1:8080/notice/click?t=`)},
		{"adm pixel", strings.Contains(b.AdM, `<img src="http://127.0.0.1:8080/notice/imp?t=`)},
		{"no ext: pctr is not revealed by default", len(b.Ext) == 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: bid %+v", c.name, b)
		}
	}
	if len(ts.money.holds) != 1 || ts.money.holds[0] != 2000 {
		t.Errorf("holds %v, want one hold of 2000 micros ($2 CPM / 1000)", ts.money.holds)
	}
}

func TestBidVideoAppFirstPrice(t *testing.T) {
	ts := newTestServer(t, withVendor)
	req := readReq(t, "app-video.json")
	// GDPR applies and no consent: no user key, so the capped campaign
	// cannot count this user and must not bid.
	r := ts.bid(req)
	if r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != "frequency_cap" {
		t.Fatalf("gdpr without consent: status %d reason %q, want 204 frequency_cap", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	withConsent := bytes.Replace(req, []byte(`"user":{"id":"u-2"}`), []byte(`"user":{"id":"u-2","consent":"`+tcAll+`"}`), 1)
	b := onlyBid(t, decodeResponse(t, ts.bid(withConsent)))
	// target CPC 0.80 x pCTR 0.02 x 1000 = 16 CPM, capped by max bid 10.
	if b.Price != 10 || b.MType != openrtb2.MarkupVideo || b.CrID != "globex-video" || b.W != 640 || b.H != 360 {
		t.Fatalf("video bid %+v", b)
	}
	if !strings.Contains(b.AdM, "<Impression><![CDATA[http://127.0.0.1:8080/notice/imp?t=") || !strings.Contains(b.AdM, "<ClickThrough><![CDATA[http://127.0.0.1:8080/notice/click?t=") {
		t.Fatalf("VAST lacks trackers: %s", b.AdM)
	}
}

// A 2.5 request naming its player's one protocol in video.protocol: a VAST
// 3.0 creative is bid only where the player plays VAST 3.0 (the field was not
// read, and every protocol was taken).
func TestBidVideoProtocol25(t *testing.T) {
	ts := newTestServer(t, withVendor)
	req := bytes.Replace(readReq(t, "app-video.json"), []byte(`"user":{"id":"u-2"}`), []byte(`"user":{"id":"u-2","consent":"`+tcAll+`"}`), 1)
	for protocol, bid := range map[string]bool{"2": false, "3": true} {
		body := bytes.Replace(req, []byte(`"protocols":[2,3,5,6]`), []byte(`"protocol":`+protocol), 1)
		if bytes.Equal(body, req) {
			t.Fatal("the fixture's protocols changed")
		}
		if r := ts.bidInTime(body); (r.StatusCode() == 200) != bid {
			t.Errorf("video.protocol %s: status %d (%s), want a bid %v", protocol, r.StatusCode(), r.Header.Peek("x-nobid-reason"), bid)
		}
	}
}

func TestBidNativeInRequestCurrency(t *testing.T) {
	ts := newTestServer(t, nil)
	resp := decodeResponse(t, ts.bid(readReq(t, "native-eur.json")))
	b := onlyBid(t, resp)
	if resp.Cur != "EUR" || b.Price != 1.5 || b.MType != openrtb2.MarkupNative {
		t.Fatalf("cur %s bid %+v", resp.Cur, b)
	}
	// Native 1.2: the response object is the root of adm.
	var native struct {
		Ver         string               `json:"ver"`
		Link        struct{ URL string } `json:"link"`
		ImpTrackers []string             `json:"imptrackers"`
	}
	if err := json.Unmarshal([]byte(b.AdM), &native); err != nil {
		t.Fatalf("native adm is not JSON: %v: %s", err, b.AdM)
	}
	if native.Ver != "1.2" || !strings.Contains(native.Link.URL, "/notice/click?t=") || len(native.ImpTrackers) != 1 {
		t.Fatalf("native trackers: %+v", native)
	}
}

func TestBidMultiImp(t *testing.T) {
	ts := newTestServer(t, nil)
	resp := decodeResponse(t, ts.bidInTime(readReq(t, "multi-imp.json")))
	got := map[string]string{}
	for _, b := range resp.SeatBid[0].Bid {
		got[b.ImpID] = b.CrID
	}
	want := map[string]string{"a": "acme-300x250", "b": "globex-320x50"}
	if len(got) != len(want) || got["a"] != want["a"] || got["b"] != want["b"] {
		t.Fatalf("bids by imp %v, want %v", got, want)
	}
}

func TestGzipRequest(t *testing.T) {
	ts := newTestServer(t, nil)
	body := readReq(t, "site-banner.json")
	for _, ce := range []string{"gzip", "GZIP", "x-gzip"} { // RFC 9110 8.4.1.3: x-gzip is gzip
		onlyBid(t, decodeResponse(t, ts.bidInTime(gzipped(t, body), "Content-Encoding", ce)))
	}
	onlyBid(t, decodeResponse(t, ts.bidInTime(body, "Content-Encoding", "identity")))
}

func TestNoBidReasons(t *testing.T) {
	base := string(readReq(t, "site-banner.json"))
	f := func(name, body string, setup func(*testServer), want string) {
		t.Helper()
		ts := newTestServer(t, nil)
		if setup != nil {
			setup(ts)
		}
		r := ts.bid([]byte(body))
		if r.StatusCode() != 204 || len(r.Body()) != 0 {
			t.Fatalf("%s: status %d body %q, want 204 and no body", name, r.StatusCode(), r.Body())
		}
		if got := string(r.Header.Peek("x-nobid-reason")); got != want {
			t.Fatalf("%s: reason %q, want %q", name, got, want)
		}
		var rs reason
		for i, n := range reasonNames {
			if n == want {
				rs = reason(i)
			}
		}
		if ts.m.nobids[rs].load() != 1 {
			t.Fatalf("%s: no-bid counter for %s not incremented", name, want)
		}
	}
	f("floor above max bid", strings.Replace(base, `"bidfloor":0.5`, `"bidfloor":9`, 1), nil, "below_floor")
	f("unknown floor currency", strings.Replace(base, `"bidfloorcur":"USD"`, `"bidfloorcur":"XXX"`, 1), nil, "currency")
	f("no allowed currency", strings.Replace(base, `"cur":["USD"]`, `"cur":["CHF"]`, 1), nil, "currency")
	f("tmax too short", strings.Replace(base, `"tmax":200`, `"tmax":10`, 1), nil, "tmax")
	f("country not targeted", strings.Replace(base, `"country":"USA"`, `"country":"BRA"`, 1), nil, "no_campaign")
	f("pacing says not now", base, func(ts *testServer) { ts.money.deny = reasonPaced }, "paced")
	f("no hold possible", base, func(ts *testServer) { ts.money.noHold = true }, "budget")
	f("model too slow", base, func(ts *testServer) { ts.score.err = ctr.ErrDeadline }, "deadline")
	f("model broken", base, func(ts *testServer) { ts.score.err = ctr.ErrUnavailable }, "model_error")
	f("not ready", base, func(ts *testServer) { ts.catalog.Store(nil) }, "not_ready")
}

func TestBadRequests(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxBodyBytes = 4096 })
	bomb := gzipped(t, bytes.Repeat([]byte(" "), 1<<20))
	f := func(name string, body []byte, want int, hdr ...string) {
		t.Helper()
		r := ts.bidInTime(body, hdr...)
		if r.StatusCode() != want {
			t.Fatalf("%s: status %d body %q, want %d", name, r.StatusCode(), r.Body(), want)
		}
		if want == 400 && (len(r.Body()) == 0 || bytes.Count(r.Body(), []byte("\n")) != 1) {
			t.Fatalf("%s: want a one-line reason, got %q", name, r.Body())
		}
	}
	f("malformed json", []byte(`{"id":`), 400)
	f("not an object", []byte(`[1,2]`), 400)
	f("missing id", []byte(`{"imp":[{"id":"1"}]}`), 400)
	f("no imps", []byte(`{"id":"x","imp":[]}`), 400)
	f("imp without id", []byte(`{"id":"x","imp":[{"banner":{"w":1,"h":1}}]}`), 400)
	f("wrong type floor", []byte(`{"id":"x","imp":[{"id":"1","bidfloor":"1.5"}]}`), 400)
	f("wrong type devicetype", []byte(`{"id":"x","imp":[{"id":"1"}],"device":{"devicetype":"phone"}}`), 400)
	f("unknown encoding", []byte(`{}`), 400, "Content-Encoding", "br")
	f("broken gzip", []byte("\x1f\x8b\x08garbage"), 400, "Content-Encoding", "gzip")
	f("gzip bomb", bomb, 413, "Content-Encoding", "gzip")
	f("body over limit", bytes.Repeat([]byte("a"), 5000), 413)
	if r := ts.do("GET", "/openrtb2/bid", nil); r.StatusCode() != 405 || string(r.Header.Peek("Allow")) != "POST" {
		t.Fatalf("GET bid: %d, Allow %q; want 405, Allow POST", r.StatusCode(), r.Header.Peek("Allow"))
	}
	if r := ts.do("GET", "/nope", nil); r.StatusCode() != 404 {
		t.Fatalf("unknown path: %d", r.StatusCode())
	}
	if ts.m.panics.load() != 0 {
		t.Fatal("handler panicked")
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	ts := newTestServer(t, nil)
	body := strings.Replace(string(readReq(t, "site-banner.json")), `"at":2`, `"at":2,"ext":"a string ext","future":{"x":[1,{"y":null}]}`, 1)
	onlyBid(t, decodeResponse(t, ts.bidInTime([]byte(body))))
}

func TestHealthAndReady(t *testing.T) {
	ts := newTestServer(t, nil)
	if r := ts.do("GET", "/healthz", nil); r.StatusCode() != 200 {
		t.Fatalf("healthz %d", r.StatusCode())
	}
	if r := ts.do("GET", "/readyz", nil); r.StatusCode() != 200 {
		t.Fatalf("readyz %d %s", r.StatusCode(), r.Body())
	}
	ts.scorer.Store(nil)
	if r := ts.do("GET", "/readyz", nil); r.StatusCode() != 503 || !bytes.Contains(r.Body(), []byte("model")) {
		t.Fatalf("readyz without model: %d %s", r.StatusCode(), r.Body())
	}
}

// Every real request in ../shared/ortb-samples gets 200, 204 or 400, never a
// 5xx or a panic; a 200 decodes into the schema of record.
func TestSharedSamples(t *testing.T) {
	dir := "../../shared/ortb-samples"
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Skip("no ../shared/ortb-samples beside the checkout")
	}
	ts := newTestServer(t, nil)
	counts := map[int]int{}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := ts.bidInTime(body)
		counts[r.StatusCode()]++
		switch r.StatusCode() {
		case 200:
			decodeResponse(t, r)
		case 204:
		case 400:
			if len(bytes.TrimSpace(r.Body())) == 0 {
				t.Errorf("%s: 400 without a reason", f)
			}
		default:
			t.Errorf("%s: status %d %q", f, r.StatusCode(), r.Body())
		}
	}
	if ts.m.panics.load() != 0 {
		t.Fatalf("%d panics", ts.m.panics.load())
	}
	t.Logf("%d samples: %v", len(files), counts)
}

var tokenRE = regexp.MustCompile(`t=[A-Za-z0-9_-]+`)

// goldenExchanges are the per-exchange rules of the golden test: a request
// whose NAME.uri sidecar says /openrtb2/bid?exchange=strict gets them.
func goldenExchanges(c *Config) {
	c.Exchanges = map[string]ExchangeConfig{"strict": {Seat: "strict-seat", Currency: "EUR", DefaultTMax: 250 * time.Millisecond,
		ChargeOn: "win", NBR: true, Macros: MacrosConfig{Price: "{AUCTION_PRICE}", Loss: "none"}}}
}

// Golden files: request in, response out (tokens masked). NAME.uri, when
// present, is the request's URI (an exchange's bid URL).
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/requests/*.json")
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, goldenExchanges)
			ts.seq.Store(0) // bid ids as the golden files have them (a process numbers from its start's microsecond)
			uri := "/openrtb2/bid"
			if b, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".uri"); err == nil {
				uri = strings.TrimSpace(string(b))
			}
			r := ts.do("POST", uri, readReq(t, name))
			got := []byte{}
			if r.StatusCode() == 200 {
				var v any
				if err := json.Unmarshal(r.Body(), &v); err != nil {
					t.Fatal(err)
				}
				got, _ = json.MarshalIndent(v, "", "  ")
				got = tokenRE.ReplaceAll(got, []byte("t=TOKEN"))
			}
			got = append([]byte(strings.TrimSpace(string(r.Header.Peek("x-nobid-reason")))+"\n"), got...)
			golden := filepath.Join("testdata/golden", strings.TrimSuffix(name, ".json")+".response")
			if *update {
				os.MkdirAll("testdata/golden", 0o755)
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("response differs from %s:\n%s", golden, got)
			}
		})
	}
}

// rt9Tail is the rest of a request whose banner imps acme-banner bids on.
const rt9Tail = `"site":{"id":"s1","domain":"site-3.example.com","publisher":{"id":"pub-3"}},"device":{"devicetype":2,"os":"Windows","geo":{"country":"USA"}},"user":{"id":"u-1"}`

const rt9Banner = `"banner":{"w":300,"h":250}`

// An imp id two imps share names neither of them to an exchange: one that
// indexes the request's imps by id (the last one wins a map) reads a bid
// on it against the other imp, its floor and its format. No imp whose id
// another imp of the request repeats gets a bid, wherever the repeat is
// (past limits.max_imps included); the others still do.
func TestRepeatedImpIDNamesNoBid(t *testing.T) {
	ts := newTestServer(t, nil)
	f := func(name, imps string, want ...string) {
		t.Helper()
		r := ts.bidInTime([]byte(`{"id":"r","imp":[` + imps + `],` + rt9Tail + `}`))
		var got []string
		if r.StatusCode() == 200 {
			for _, sb := range decodeResponse(t, r).SeatBid {
				for _, b := range sb.Bid {
					got = append(got, b.ImpID)
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: bids on imps %v, want %v (status %d %s)", name, got, want, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		}
	}
	f("the repeat has a higher floor",
		`{"id":"1",`+rt9Banner+`,"bidfloor":0.1},{"id":"1",`+rt9Banner+`,"bidfloor":4}`)
	f("the repeat is video",
		`{"id":"1",`+rt9Banner+`},{"id":"1","video":{"mimes":["video/mp4"],"w":640,"h":480}}`)
	f("the repeat is an identical imp",
		`{"id":"1",`+rt9Banner+`},{"id":"1",`+rt9Banner+`}`)
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf(`{"id":"i%d",%s}`, i, rt9Banner))
	}
	many[19] = `{"id":"i0",` + rt9Banner + `,"bidfloor":4}` // past max_imps (16)
	var want []string
	for i := 1; i < 16; i++ {
		want = append(want, fmt.Sprintf("i%d", i))
	}
	f("the repeat is past max_imps", strings.Join(many, ","), want...)
}

// A fixed-price deal (pmp.deals[].at 3) bids its agreed price, not the
// campaign's value: hooli-deal values the imp at 4.00, and before deal.at
// was read it bid 4.00 on a 3.50 deal, holding more than the exchange
// charges (and some exchanges drop a bid off the deal price). It holds the
// deal price, learns nothing from it (no g= in its notices), and a deal
// price over the value gets no bid.
func TestFixedPriceDeal(t *testing.T) {
	for _, at := range []string{"1", "2"} {
		t.Run("at="+at, func(t *testing.T) {
			ts := newTestServer(t, withShading)
			base := strings.Replace(string(readReq(t, "site-banner.json")), `"at":2`, `"at":`+at, 1)
			body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
				`"bidfloor":5,"bidfloorcur":"USD","pmp":{"private_auction":1,"deals":[{"id":"deal-7","bidfloor":3.5,"at":3}]}`, 1)
			if body == base {
				t.Fatal("fixture changed")
			}
			b := onlyBid(t, decodeResponse(t, ts.bidInTime([]byte(body))))
			if b.DealID != "deal-7" || b.CID != "hooli-deal" || b.Price != 3.5 {
				t.Fatalf("fixed-price deal bid %+v, want hooli-deal at 3.5", b)
			}
			if got := ts.money.holds[len(ts.money.holds)-1]; got != 3500 {
				t.Errorf("hold %d micros, want 3500 (the deal price's impression)", got)
			}
			if strings.Contains(b.NURL, "&g=") || strings.Contains(b.LURL, "MIN_TO_WIN") {
				t.Errorf("a fixed-price deal's notices ask to learn: %s", b.NURL)
			}
			// /admin/explain replays the same price.
			a := explainBody(t, ts, body)
			if w := a.Imps[0]; w.Winner != "hooli-deal" || w.PriceMicros != 3_500_000 {
				t.Errorf("explain's best %s at %d micros, want hooli-deal at 3500000", w.Winner, w.PriceMicros)
			}
			for _, e := range a.Imps[0].Campaigns {
				if e.ID == "hooli-deal" && (e.Shading == nil || e.Shading.Mode != "fixed_deal" || e.ChargeMicros != 3500) {
					t.Errorf("explain's hooli-deal entry: shading %+v, charge %d", e.Shading, e.ChargeMicros)
				}
			}
			// The same deal without at: the campaign's value, as before.
			b = onlyBid(t, decodeResponse(t, ts.bidInTime([]byte(strings.Replace(body, `,"at":3}`, `}`, 1)))))
			if at == "2" && b.Price != 4 || b.Price < 3.5 || b.Price > 4 {
				t.Fatalf("deal without at bid %v", b.Price)
			}
			// Agreed above the campaign's value: no bid.
			if r := ts.bidInTime([]byte(strings.Replace(body, `"bidfloor":3.5`, `"bidfloor":4.5`, 1))); r.StatusCode() != 204 {
				t.Fatalf("fixed price above the value: %d %s", r.StatusCode(), r.Body())
			}
		})
	}
}

// A deal's at (1 or 2) overrides the request's auction type: a first-price
// deal in a second-price request is shaded (and learns), a second-price deal
// in a first-price request bids its value and does not learn; explain says
// the same. Before, only the request's at was read (an outside audit: a
// first-price deal bid the whole 9.00 value unshaded).
func TestDealAuctionTypeOverridesRequest(t *testing.T) {
	for _, c := range []struct {
		reqAT, dealAT string
		price         float64
		mode          string
	}{
		{"2", "1", 3.2, "first_price_shade"},
		{"1", "2", 4, "none"},
		{"1", "1", 3.2, "first_price_shade"},
		{"2", "2", 4, "none"},
	} {
		t.Run("request at="+c.reqAT+", deal at="+c.dealAT, func(t *testing.T) {
			base := strings.Replace(string(readReq(t, "site-banner.json")), `"at":2`, `"at":`+c.reqAT, 1)
			body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
				`"bidfloor":0.5,"bidfloorcur":"USD","pmp":{"private_auction":1,"deals":[{"id":"deal-7","bidfloor":1,"at":`+c.dealAT+`}]}`, 1)
			if body == base {
				t.Fatal("fixture changed")
			}
			ts := newTestServer(t, func(cfg *Config) { cfg.Pricing.FirstPriceShade = 0.8 })
			b := onlyBid(t, decodeResponse(t, ts.bidInTime([]byte(body))))
			if b.DealID != "deal-7" || b.CID != "hooli-deal" || b.Price != c.price {
				t.Fatalf("bid %+v, want hooli-deal on deal-7 at %v", b, c.price)
			}
			a := explainBody(t, ts, body)
			for _, e := range a.Imps[0].Campaigns {
				if e.ID == "hooli-deal" && (e.Shading == nil || e.Shading.Mode != c.mode) {
					t.Errorf("explain's hooli-deal shading %+v, want %s", e.Shading, c.mode)
				}
			}
			// With learned shading on, only a first-price deal's notices learn.
			ts = newTestServer(t, withShading)
			b = onlyBid(t, decodeResponse(t, ts.bidInTime([]byte(body))))
			if learns := strings.Contains(b.NURL, "&g="); learns != (c.mode != "none") {
				t.Errorf("nurl %s: learns %v, want %v", b.NURL, learns, c.mode != "none")
			}
		})
	}
}

// A deal's floor without its own bidfloorcur is in USD: it does not
// inherit imp.bidfloorcur (OpenRTB 2.6, 3.2.12). It was read in the imp's
// currency, so a 3.50 fixed-price deal on an imp floored in EUR bid
// 3.85 USD (an outside audit saw a 10 USD deal on a JPY imp bid 0.067).
func TestDealFloorCurrencyDefaultsToUSD(t *testing.T) {
	ts := newTestServer(t, withShading)
	base := string(readReq(t, "site-banner.json"))
	body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
		`"bidfloor":5,"bidfloorcur":"EUR","pmp":{"private_auction":1,"deals":[{"id":"deal-7","bidfloor":3.5,"at":3}]}`, 1)
	if body == base {
		t.Fatal("fixture changed")
	}
	b := onlyBid(t, decodeResponse(t, ts.bidInTime([]byte(body))))
	if b.DealID != "deal-7" || b.Price != 3.5 {
		t.Fatalf("fixed-price deal with no floor currency: %+v, want deal-7 at 3.5 (USD)", b)
	}
	a := explainBody(t, ts, body)
	if w := a.Imps[0]; w.Winner != "hooli-deal" || w.PriceMicros != 3_500_000 {
		t.Errorf("explain's best %s at %d micros, want hooli-deal at 3500000", w.Winner, w.PriceMicros)
	}
	// Its own currency still counts: 3.5 EUR is 3.85 USD.
	b = onlyBid(t, decodeResponse(t, ts.bidInTime([]byte(strings.Replace(body, `"bidfloor":3.5,"at":3`, `"bidfloor":3.5,"bidfloorcur":"EUR","at":3`, 1)))))
	if b.Price != 3.85 {
		t.Fatalf("a 3.5 EUR fixed-price deal bid %v USD, want 3.85", b.Price)
	}
}

// OpenRTB 2.6 duration floors: a durfloors range holding the creative's
// duration replaces the imp's floor (up or down), and mincpmpersec times
// the duration raises it. tvpods bids a fixed 20.00 with a 15 s spot in
// slot 2 of the fixture's pod. They were not read: an outside audit's
// 15 s spot bid 12 USD under a 20 USD floor for its duration.
func TestDurationFloors(t *testing.T) {
	ts := newTestServer(t, nil)
	base := string(readReq(t, "video-pod.json"))
	// The pod's second slot alone, second price.
	start := strings.Index(base, `{"id":"slot-2"`)
	end := strings.Index(base, `,{"id":"slot-3"`)
	if start < 0 || end < 0 {
		t.Fatal("fixture changed")
	}
	one := `{"id":"req-dur","at":2,"tmax":400,"imp":[` + base[start:end] + `]` + base[strings.Index(base, `,"app":`):]
	for _, c := range []struct {
		name, video string
		floor       string
		bid         bool
	}{
		{"no duration floors", ``, "10", true},
		{"a range holding 15 s above the bid", `"durfloors":[{"maxdur":15,"bidfloor":25}],`, "10", false},
		{"a range for longer spots only", `"durfloors":[{"mindur":16,"bidfloor":25}],`, "10", true},
		{"a range holding 15 s below the imp floor", `"durfloors":[{"mindur":10,"maxdur":20,"bidfloor":5}],`, "30", true},
		{"overlapping ranges: the highest", `"durfloors":[{"maxdur":20,"bidfloor":5},{"mindur":15,"bidfloor":21}],`, "1", false},
		{"per second above the bid", `"mincpmpersec":1.5,`, "10", false},
		{"per second under the bid", `"mincpmpersec":1.2,`, "10", true},
		// A range needs a bound (2.6): null or {} is no range, and does not
		// drop the imp's floor.
		{"null range under a floor above the bid", `"durfloors":[null,{}],`, "30", false},
	} {
		body := strings.Replace(one, `"video":{`, `"video":{`+c.video, 1)
		body = strings.Replace(body, `"bidfloor":10`, `"bidfloor":`+c.floor, 1)
		r := ts.bid([]byte(body))
		if !c.bid {
			if r.StatusCode() != 204 {
				t.Errorf("%s: %d %s, want no bid", c.name, r.StatusCode(), r.Body())
			}
			continue
		}
		if r.StatusCode() != 200 {
			t.Errorf("%s: %d %s, want a bid", c.name, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
			continue
		}
		if b := onlyBid(t, decodeResponse(t, r)); b.CrID != "tvpods-any-15" || b.Price != 20 || b.Dur != 15 {
			t.Errorf("%s: bid %s at %v (dur %d), want tvpods-any-15 at 20", c.name, b.CrID, b.Price, b.Dur)
		}
	}
}

// A deal's wadomain (2.6) names the advertisers allowed on it: a creative
// whose adomain is not among them (the same domain or a subdomain; case,
// "www.", a scheme or a final dot aside) does not bid on the deal. It was
// not read: an outside audit's deal for another brand got hooli's bid.
func TestDealAllowedAdvertisers(t *testing.T) {
	ts := newTestServer(t, nil)
	base := string(readReq(t, "site-banner.json"))
	for _, c := range []struct {
		wadomain string
		bid      bool
	}{
		{``, true},
		{`"wadomain":["other.example"],`, false},
		{`"wadomain":["other.example","hooli.example"],`, true},
		{`"wadomain":["HOOLI.Example."],`, true},
		{`"wadomain":["https://www.hooli.example/"],`, true},
		{`"wadomain":["example"],`, true},
		{`"wadomain":["li.example"],`, false},
		{`"wadomain":["shop.hooli.example"],`, false},
		// At most 256 entries are read (each creative is compared with
		// each): past them, an advertiser is not allowed, never more.
		{`"wadomain":[` + strings.Repeat(`"other.example",`, 10) + `"hooli.example"],`, true},
		{`"wadomain":[` + strings.Repeat(`"other.example",`, 256) + `"hooli.example"],`, false},
	} {
		body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
			`"bidfloor":5,"bidfloorcur":"USD","pmp":{"private_auction":1,"deals":[{`+c.wadomain+`"id":"deal-7","bidfloor":3.5}]}`, 1)
		if body == base {
			t.Fatal("fixture changed")
		}
		r := ts.bidInTime([]byte(body))
		if !c.bid {
			if r.StatusCode() != 204 {
				t.Errorf("%.60s: %d, want no bid", c.wadomain, r.StatusCode())
			}
			continue
		}
		if b := onlyBid(t, decodeResponse(t, r)); b.DealID != "deal-7" || b.CID != "hooli-deal" {
			t.Errorf("%s: bid %+v, want hooli-deal on deal-7", c.wadomain, b)
		}
	}
	// The campaign's next deal on the imp is tried when the first one's
	// wadomain leaves its creative out: only the first was, and the bid on
	// deal-8 below was never made.
	for _, c := range []struct {
		second, deal string
	}{
		{`{"id":"deal-8","bidfloor":3.5}`, "deal-8"},
		{`{"id":"deal-8","bidfloor":3.5,"wadomain":["hooli.example"]}`, "deal-8"},
		{`{"id":"deal-8","bidfloor":3.5,"wadomain":["other.example"]}`, ""},
		{`{"id":"deal-9","bidfloor":3.5}`, ""}, // not one of the campaign's deals
	} {
		body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
			`"bidfloor":5,"bidfloorcur":"USD","pmp":{"private_auction":1,"deals":[{"id":"deal-7","bidfloor":3.5,"wadomain":["other.example"]},`+c.second+`]}`, 1)
		r := ts.bidInTime([]byte(body))
		var e *explainCampaign
		a := explainBody(t, ts, body)
		for i := range a.Imps[0].Campaigns {
			if a.Imps[0].Campaigns[i].ID == "hooli-deal" {
				e = &a.Imps[0].Campaigns[i]
			}
		}
		if c.deal == "" {
			if r.StatusCode() != 204 {
				t.Errorf("%s: %d, want no bid", c.second, r.StatusCode())
			}
			// /admin/explain names the rule; it said "other".
			if c.second != `{"id":"deal-9","bidfloor":3.5}` && (e == nil || e.Rule != "creative" || !strings.Contains(e.Detail, "wadomain")) {
				t.Errorf("%s: explain's hooli-deal entry %+v, want rule creative naming wadomain", c.second, e)
			}
			continue
		}
		if b := onlyBid(t, decodeResponse(t, r)); b.DealID != c.deal || b.CID != "hooli-deal" {
			t.Errorf("%s: bid %+v, want hooli-deal on %s", c.second, b, c.deal)
		}
		if e == nil || e.Deal != c.deal || e.Status != "priced" {
			t.Errorf("%s: explain's hooli-deal entry %+v, want priced on %s", c.second, e, c.deal)
		}
	}
}

// A fixed-price deal (at 3) bids its agreed price whatever the duration
// floors: before, a deal fixed at 10 bid 15 with mincpmpersec 0.5 on a 30 s
// spot, and 6 under a durfloors range at 6 (the review of the change).
func TestFixedPriceDealIgnoresDurationFloors(t *testing.T) {
	ts := newTestServer(t, nil)
	src, err := os.ReadFile("testdata/campaigns/tvpods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	deal := strings.Replace(string(src), "id: tvpods\n", "id: tvdeal\n", 1)
	deal = strings.ReplaceAll(deal, "id: tvpods-", "id: tvdeal-")
	deal = strings.Replace(deal, "targeting:\n", "targeting:\n  deals: [deal-9]\n  open_auction: false\n", 1)
	setCampaignFiles(t, ts, map[string]string{"tvdeal.yaml": deal})
	base := string(readReq(t, "video-pod.json"))
	start, end := strings.Index(base, `{"id":"slot-2"`), strings.Index(base, `,{"id":"slot-3"`)
	if start < 0 || end < 0 {
		t.Fatal("fixture changed")
	}
	imp := strings.Replace(base[start:end], `"bidfloor":10,"secure":1}`, `"bidfloor":10,"secure":1,"pmp":{"private_auction":1,"deals":[`+
		`{"id":"deal-9","bidfloor":10,"at":3,"mincpmpersec":0.9,"durfloors":[{"maxdur":15,"bidfloor":6}]}]}}`, 1)
	body := `{"id":"req-fixed-dur","at":2,"tmax":400,"imp":[` + imp + `]` + base[strings.Index(base, `,"app":`):]
	b := onlyBid(t, decodeResponse(t, ts.bid([]byte(body))))
	if b.DealID != "deal-9" || b.Price != 10 {
		t.Fatalf("fixed-price deal with duration floors: %s at %v on %q, want 10 on deal-9", b.CrID, b.Price, b.DealID)
	}
}

func TestDealBid(t *testing.T) {
	ts := newTestServer(t, nil)
	base := string(readReq(t, "site-banner.json"))
	// The deal's floor (3.50) replaces the imp floor (5.00, above every open-auction bid).
	body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`, `"bidfloor":5,"bidfloorcur":"USD","pmp":{"private_auction":1,"deals":[{"id":"deal-7","bidfloor":3.5}]}`, 1)
	b := onlyBid(t, decodeResponse(t, ts.bid([]byte(body))))
	if b.DealID != "deal-7" || b.CID != "hooli-deal" || b.Price != 4 {
		t.Fatalf("deal bid %+v", b)
	}
	// A deal floor above the deal campaign's bid: nothing, and the private
	// auction keeps open-auction campaigns out.
	body = strings.Replace(body, `"bidfloor":3.5`, `"bidfloor":4.5`, 1)
	if r := ts.bid([]byte(body)); r.StatusCode() != 204 {
		t.Fatalf("deal floor above the bid: %d %s", r.StatusCode(), r.Body())
	}
}

// A campaign's deal whose floor is out of its reach gives way to the
// campaign's next deal on the imp (request order), then to the open
// auction where the campaign and the imp allow one. Only the first deal
// the campaign targeted was tried: its high floor meant no bid, though a
// later deal or the open auction would have taken one (an outside audit).
// hooli-deal bids a fixed 4.00 on deal-7 or deal-8, never in the open
// auction; the imp's own floor is 0.50.
func TestDealFallsBackToLaterWays(t *testing.T) {
	base := string(readReq(t, "site-banner.json"))
	req := func(private int, deals string) string {
		body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
			`"bidfloor":0.5,"bidfloorcur":"USD","pmp":{"private_auction":`+strconv.Itoa(private)+`,"deals":[`+deals+`]}`, 1)
		if body == base {
			t.Fatal("fixture changed")
		}
		return body
	}
	type want struct {
		deal  string // "": the open auction
		price float64
		bid   bool
		cid   string // "": hooli-deal
	}
	check := func(ts *testServer, name, body string, w want) {
		t.Helper()
		r := ts.bidInTime([]byte(body))
		a := explainBody(t, ts, body)
		if !w.bid {
			if r.StatusCode() != 204 {
				t.Errorf("%s: %d %s, want no bid", name, r.StatusCode(), r.Body())
			}
			if a.Imps[0].Winner == "hooli-deal" {
				t.Errorf("%s: explain's winner is hooli-deal, the bid path's none", name)
			}
			return
		}
		if r.StatusCode() != 200 {
			t.Errorf("%s: %d %s, want a bid", name, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
			return
		}
		if w.cid == "" {
			w.cid = "hooli-deal"
		}
		b := onlyBid(t, decodeResponse(t, r))
		if b.CID != w.cid || b.DealID != w.deal || b.Price != w.price {
			t.Errorf("%s: bid %s on %q at %v, want %s on %q at %v", name, b.CID, b.DealID, b.Price, w.cid, w.deal, w.price)
		}
		var e *explainCampaign
		for i := range a.Imps[0].Campaigns {
			if c := &a.Imps[0].Campaigns[i]; c.ID == w.cid && c.Status == "priced" {
				e = c
			}
		}
		if e == nil || !e.Winner || e.Deal != w.deal || e.PriceMicros != int64(w.price*1e6) {
			t.Errorf("%s: explain's %s %+v, want the winner on %q at %v", name, w.cid, e, w.deal, w.price)
		}
	}

	ts := newTestServer(t, nil)
	for _, c := range []struct {
		name, deals string
		w           want
	}{
		{"first deal in reach", `{"id":"deal-7","bidfloor":3.5},{"id":"deal-8","bidfloor":3}`, want{"deal-7", 4, true, ""}},
		{"first deal over the bid", `{"id":"deal-7","bidfloor":4.5},{"id":"deal-8","bidfloor":3.5}`, want{"deal-8", 4, true, ""}},
		{"its deal after one not its own", `{"id":"deal-7","bidfloor":4.5},{"id":"deal-9","bidfloor":1},{"id":"deal-8","bidfloor":2}`, want{"deal-8", 4, true, ""}},
		{"every deal over the bid", `{"id":"deal-7","bidfloor":4.5},{"id":"deal-8","bidfloor":4.01}`, want{}},
		{"a later deal's wadomain leaves it out", `{"id":"deal-7","bidfloor":4.5},{"id":"deal-8","bidfloor":1,"wadomain":["other.example"]}`, want{}},
		{"a later deal's floor in an unknown currency", `{"id":"deal-7","bidfloor":4.5},{"id":"deal-8","bidfloor":1,"bidfloorcur":"XXX"}`, want{}},
		{"a deal in an unknown currency, then one in reach", `{"id":"deal-7","bidfloor":1,"bidfloorcur":"XXX"},{"id":"deal-8","bidfloor":3.5}`, want{"deal-8", 4, true, ""}},
	} {
		check(ts, c.name, req(1, c.deals), c.w) // a private auction keeps acme out; hooli-deal has no open auction anyway
	}

	// The same campaign also bidding in the open auction: after its deals,
	// the open auction, unless the imp is a private auction.
	src, err := os.ReadFile("testdata/campaigns/hooli.yaml")
	if err != nil {
		t.Fatal(err)
	}
	open := strings.Replace(string(src), "open_auction: false", "open_auction: true", 1)
	setCampaignFiles(t, ts, map[string]string{"hooli.yaml": open})
	high := `{"id":"deal-7","bidfloor":4.5},{"id":"deal-8","bidfloor":4.2}`
	check(ts, "open auction after its deals", req(0, high), want{"", 4, true, ""})
	check(ts, "private auction", req(1, high), want{})
	check(ts, "a deal in reach before the open auction", req(0, `{"id":"deal-7","bidfloor":4.5},{"id":"deal-8","bidfloor":3.9}`), want{"deal-8", 4, true, ""})
	check(ts, "the open floor over the bid too", strings.Replace(req(0, high), `"bidfloor":0.5,`, `"bidfloor":4.1,`, 1), want{})

	// Priced under the deal's floor though its bound reaches it: a first-price
	// auction bids 0.9 of the value, 3.60, under deal-7's 3.80: deal-8 takes
	// it, and the open auction after it.
	ts = newTestServer(t, func(c *Config) { c.Pricing.FirstPriceShade = 0.9 })
	first := func(b string) string { return strings.Replace(b, `"at":2`, `"at":1`, 1) }
	check(ts, "priced under the first deal", first(req(1, `{"id":"deal-7","bidfloor":3.8},{"id":"deal-8","bidfloor":3.5}`)), want{"deal-8", 3.6, true, ""})
	check(ts, "priced under every deal, private", first(req(1, `{"id":"deal-7","bidfloor":3.8},{"id":"deal-8","bidfloor":3.7}`)), want{})
	// acme's fixed 2.00, 1.80 once shaded, takes the open auction: hooli-deal's
	// higher fixed CPM, not sure to clear its floor once shaded, no longer
	// keeps it from being scored.
	check(ts, "priced under every deal, acme open", first(req(0, `{"id":"deal-7","bidfloor":3.8},{"id":"deal-8","bidfloor":3.7}`)), want{"", 1.8, true, "acme-banner"})
	// A second-price deal in the first-price request bids the whole value.
	check(ts, "a later second-price deal", first(req(1, `{"id":"deal-7","bidfloor":3.8},{"id":"deal-8","bidfloor":3.9,"at":2}`)), want{"deal-8", 4, true, ""})
	setCampaignFiles(t, ts, map[string]string{"hooli.yaml": open})
	check(ts, "priced under every deal, open auction", first(req(0, `{"id":"deal-7","bidfloor":3.8},{"id":"deal-8","bidfloor":3.7}`)), want{"", 3.6, true, ""})
}

// tmax is the exchange's time limit in milliseconds: a huge one (no limit
// to speak of) leaves the internal budget as the deadline. tmax beyond 292
// years overflowed time.Duration, and the wrapped value put the deadline
// before the arrival: no bid, reason tmax.
func TestHugeTMaxLeavesTheInternalBudget(t *testing.T) {
	ts := newTestServer(t, nil)
	arrival := time.Unix(1_800_000_000, 0)
	want := arrival.Add(ts.cfg.Limits.InternalBudget)
	for _, tmax := range []int64{200, 1e10, 9_223_372_036_855, 1e13, 1e15, math.MaxInt64} {
		req := ortb.Request{TMax: tmax}
		if got := ts.deadline(&req, ts.exchanges[""], arrival); !got.Equal(want) {
			t.Errorf("tmax %d: deadline %v after arrival, want %v", tmax, got.Sub(arrival), want.Sub(arrival))
		}
	}
}

// An exchange that decodes with encoding/json reads a repeated "imp" into
// the imps the first one left: the floor of 5.00 below stays, and a 2.00
// bid under it would lose the auction it was held for. A member the bidder
// reads given twice is refused (400), as is one whose null would have
// dropped a floor that encoding/json keeps.
func TestRepeatedMemberRefused(t *testing.T) {
	ts := newTestServer(t, nil)
	for body, why := range map[string]string{
		`{"id":"r","imp":[{"id":"1",` + rt9Banner + `,"bidfloor":5}],"imp":[{"id":"1",` + rt9Banner + `}],` + rt9Tail + `}`: "imp: given more than once",
		`{"id":"r","imp":[{"id":"1",` + rt9Banner + `,"bidfloor":5,"bidfloor":null}],` + rt9Tail + `}`:                      "imp[0].bidfloor: given more than once",
		`{"id":"r","imp":[{"id":"1",` + rt9Banner + `}],"BCAT":["IAB1"],` + rt9Tail + `}`:                                   `bcat: written "BCAT"`,
	} {
		r := ts.bidInTime([]byte(body))
		if got := string(r.Header.Peek("x-nobid-reason")); r.StatusCode() != 400 || !strings.Contains(got, why) {
			t.Errorf("status %d %q, want 400 %q; body %s", r.StatusCode(), got, why, r.Body())
		}
	}
}

// A request with both a site and an app is refused (400), not bid as the
// site with the app's block lists unchecked.
func TestSiteAndAppRefused(t *testing.T) {
	ts := newTestServer(t, nil)
	body := `{"id":"r","imp":[{"id":"1",` + rt9Banner + `}],"app":{"bundle":"com.blocked","publisher":{"id":"pub-3"}},` + rt9Tail + `}`
	if r := ts.bidInTime([]byte(body)); r.StatusCode() != 400 || !bytes.Contains(r.Body(), []byte("site")) {
		t.Fatalf("site and app: %d %q, want 400 naming them", r.StatusCode(), r.Body())
	}
}

// imp.exp is how long after the auction the impression may be shown, and
// billed. A billing notice later after the bid than notices.token_ttl or the
// longest notices.dedup_window is refused (403) and charged nothing, so a
// bid on an imp whose exp is longer (DOOH screens play hours later) could
// be shown and billed by the exchange without its charge ever reaching the
// budget. Nor may it be longer than notices.hold_ttl: the hold went back
// to the lease when it ended, bids spent it again, and the bill charged
// over the budget (an outside audit: 3x a daily budget with exp 3600). Such
// an imp gets no bid; one within every window still does.
func TestImpExpPastTheChargeWindowNoBid(t *testing.T) {
	for _, c := range []struct {
		hold       time.Duration
		bid, nobid []string
	}{
		{0, []string{"0", "60", "120"}, []string{"121", "3600"}}, // hold_ttl 2m by default
		// A longer hold (DOOH): token_ttl 24h and the longest dedup window,
		// 2h, bound it.
		{3 * time.Hour, []string{"300", "7200"}, []string{"7201", "86400", "9223372036854775807"}},
	} {
		ts := newTestServer(t, func(cfg *Config) {
			if c.hold > 0 {
				cfg.Notices.HoldTTL, cfg.Budget.LeaseTTL = c.hold, 2*c.hold
			}
		})
		f := func(exp string, want int) {
			t.Helper()
			body := `{"id":"r","imp":[{"id":"1",` + rt9Banner + `,"exp":` + exp + `}],` + rt9Tail + `}`
			if r := ts.bidInTime([]byte(body)); r.StatusCode() != want {
				t.Errorf("hold_ttl %v, exp %s: %d %s, want %d", c.hold, exp, r.StatusCode(), r.Header.Peek("x-nobid-reason"), want)
			}
		}
		for _, e := range c.bid {
			f(e, 200)
		}
		for _, e := range c.nobid {
			f(e, 204)
		}
	}
}

// An imp with secure=1 wants every URL of the bid over https: the markup's
// pixel and click URLs and the notice URLs all come from public_url. With an
// http public_url on a host other than loopback (an outside conformance
// audit: 72 secure sample bids with http URLs) it gets no bid, counted and
// explained; an https one, or loopback (a local set-up), still bids, and so
// does an imp without secure=1.
func TestSecureImpNeedsHTTPSPublicURL(t *testing.T) {
	for _, c := range []struct {
		url       string
		secureBid bool
	}{
		{"http://bidder.example.com", false},
		{"http://bidder.example.com:8080/rtb", false},
		{"http://10.1.2.3:8080", false},
		{"https://bidder.example.com", true},
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080", true},
	} {
		ts := newTestServer(t, func(cfg *Config) { cfg.PublicURL = c.url })
		demo := newTestServer(t, func(cfg *Config) { cfg.PublicURL, cfg.SecureImpsOverHTTP = c.url, true })
		for _, secure := range []string{"0", "1"} {
			body := `{"id":"r","imp":[{"id":"1",` + rt9Banner + `,"secure":` + secure + `}],` + rt9Tail + `}`
			want := 200
			if secure == "1" && !c.secureBid {
				want = 204
			}
			r := ts.bidInTime([]byte(body))
			if r.StatusCode() != want || want == 204 && string(r.Header.Peek("x-nobid-reason")) != "insecure" {
				t.Errorf("public_url %s, secure %s: %d %s, want %d (insecure)", c.url, secure, r.StatusCode(), r.Header.Peek("x-nobid-reason"), want)
			}
			if r := demo.bid([]byte(body)); r.StatusCode() != 200 {
				t.Errorf("public_url %s, secure %s, secure_imps_over_http: %d %s, want a bid", c.url, secure, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
			}
			if r.StatusCode() == 200 && !bytes.Contains(r.Body(), []byte(`"nurl":"`+strings.TrimSuffix(c.url, "/"))) {
				t.Errorf("public_url %s: the bid's nurl is not under it: %s", c.url, r.Body())
			}
			if secure == "1" && !c.secureBid {
				a := explainBody(t, ts, body)
				if len(a.Imps) != 1 || a.Imps[0].Skipped != "secure imp, http public_url" || a.NoBidReason != "insecure" {
					t.Errorf("public_url %s: explain %+v (%s), want the imp skipped for it", c.url, a.Imps, a.NoBidReason)
				}
			}
		}
		if n, wantN := ts.m.insecureImp.load(), map[bool]uint64{false: 1, true: 0}[c.secureBid]; n != wantN {
			t.Errorf("public_url %s: imps_insecure_total %d, want %d", c.url, n, wantN)
		}
	}
}

// explainBody is ts's /admin/explain answer to the bid request body, every
// campaign listed.
func explainBody(t *testing.T, ts *testServer, body string) *explainAnswer {
	t.Helper()
	var p ortb.Parser
	var req ortb.Request
	if err := p.Parse([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	a, _ := ts.explain(&req, explainOptions{now: time.Now(), all: true})
	return a
}

// In an ad pod an earlier imp may take a fixed-CPM creative (podRefuses), so
// the one fixed-CPM candidate per imp that keepBest keeps elsewhere left the
// later imps nothing to bid (an outside conformance audit: a pod of
// fixed-CPM campaigns got one bid). Two campaigns with a 15 s spot each:
// the pod's three slots now get three distinct creatives.
func TestPodOfFixedCPMCampaignsFillsItsSlots(t *testing.T) {
	ts := newTestServer(t, nil)
	tv, err := os.ReadFile("testdata/campaigns/tvpods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tv2 := strings.NewReplacer("id: tvpods", "id: tvpods2", "tvpods-", "tvpods2-").Replace(string(tv))
	setCampaignFiles(t, ts, map[string]string{"tvpods.yaml": string(tv), "tvpods2.yaml": tv2})
	for _, exhaustive := range []bool{false, true} {
		ts.cfg.Pricing.ExhaustiveScan = exhaustive
		r := ts.bidInTime(readReq(t, "video-pod.json"))
		if r.StatusCode() != 200 {
			t.Fatalf("exhaustive %v: %d %s", exhaustive, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		}
		crs := map[string]string{}
		for _, sb := range decodeResponse(t, r).SeatBid {
			for _, b := range sb.Bid {
				crs[b.ImpID] = b.CrID
			}
		}
		seen := map[string]bool{}
		for _, cr := range crs {
			seen[cr] = true
		}
		if len(crs) != 3 || len(seen) != 3 {
			t.Errorf("exhaustive %v: bids by slot %v, want the pod's three slots with three creatives", exhaustive, crs)
		}
	}
}

// A dynamic pod (poddur, maxseq on each of its imps) gets bids whose
// durations sum to poddur at most, and maxseq of them at most (an outside
// audit: three imps of a 30 s pod each got a bid, 30 s and twice 15 s, and
// the exchange dropped what did not fit). Three fixed-CPM campaigns: a
// 30 s creative at 20.00, 15 s creatives at 15.00 and 12.00.
func TestDynamicPodBidsFitItsDuration(t *testing.T) {
	ts := newTestServer(t, nil)
	tv, err := os.ReadFile("testdata/campaigns/tvpods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	one := func(id, cpm, dur string) string {
		c := strings.NewReplacer("id: tvpods", "id: "+id, "tvpods-", id+"-", `"20.00"`, `"`+cpm+`"`).Replace(string(tv))
		first := c[:strings.Index(c, "  - id: ")]
		cr := c[strings.Index(c, "  - id: "+id+"-any-15"):strings.Index(c, "targeting:")]
		cr = strings.NewReplacer("00:00:15", "00:00:"+dur, id+"-any-15", id+"-spot").Replace(cr)
		return first + cr + c[strings.Index(c, "targeting:"):]
	}
	setCampaignFiles(t, ts, map[string]string{
		"a.yaml": one("pod-a", "20.00", "30"), "b.yaml": one("pod-b", "15.00", "15"), "c.yaml": one("pod-c", "12.00", "15")})
	body, err := os.ReadFile("testdata/requests/video-pod.json")
	if err != nil {
		t.Fatal(err)
	}
	// Every slot any slot, so that each creative fits each imp alone.
	body = []byte(strings.NewReplacer(`"slotinpod":1,`, ``, `"slotinpod":-1,`, ``, `"slotinpod":0,`, ``).Replace(string(body)))
	for _, c := range []struct {
		lim  string
		want []string // the creatives bid, slot by slot
	}{
		{`"poddur":30,`, []string{"pod-a-spot"}},
		{`"poddur":45,`, []string{"pod-a-spot", "pod-b-spot"}},
		{`"poddur":60,`, []string{"pod-a-spot", "pod-b-spot", "pod-c-spot"}},
		{`"poddur":60,"maxseq":2,`, []string{"pod-a-spot", "pod-b-spot"}},
		{`"maxseq":1,`, []string{"pod-a-spot"}},
		{``, []string{"pod-a-spot", "pod-b-spot", "pod-c-spot"}}, // a structured pod
	} {
		for _, exhaustive := range []bool{false, true} {
			ts.cfg.Pricing.ExhaustiveScan = exhaustive
			r := ts.bidInTime(bytes.ReplaceAll(body, []byte(`"video":{`), []byte(`"video":{`+c.lim)))
			if r.StatusCode() != 200 {
				t.Fatalf("%s exhaustive %v: %d %s", c.lim, exhaustive, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
			}
			bySlot := map[string]string{}
			for _, sb := range decodeResponse(t, r).SeatBid {
				for _, b := range sb.Bid {
					bySlot[b.ImpID] = b.CrID
				}
			}
			var got []string
			for _, imp := range []string{"slot-1", "slot-2", "slot-3"} {
				if cr, ok := bySlot[imp]; ok {
					got = append(got, cr)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s exhaustive %v: bids %v, want %v", c.lim, exhaustive, got, c.want)
			}
		}
	}
}

// setCampaignFiles replaces ts's campaigns with the files (name: YAML).
func setCampaignFiles(t *testing.T, ts *testServer, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := campaigns.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
}

// An imp no campaign may bid on is answered imp_refused, by the bid path
// and by explain: a repeated imp id, an id over 255 bytes, exp past the
// charge window, a qty.multiplier outside the limits or on a site request.
// Before, these read no_campaign or budget (the conformance and money
// audits).
func TestImpRefusedReason(t *testing.T) {
	base := string(readReq(t, "site-banner.json"))
	imp := `{"id":"1","banner":{"w":300,"h":250,"format":[{"w":300,"h":250}]},"bidfloor":0.5,"bidfloorcur":"USD","secure":1}`
	if !strings.Contains(base, imp) {
		t.Fatal("fixture changed")
	}
	long := strings.Repeat("x", 256)
	for _, c := range []struct{ name, old, new, want string }{
		{"repeated imp id", imp, imp + "," + imp, "invalid_imp"},
		{"imp id over 255 bytes", `"id":"1",`, `"id":"` + long + `",`, "invalid_imp"},
		{"exp past the charge window", `"secure":1}`, `"secure":1,"exp":3600}`, "imp_refused"},
		{"qty.multiplier over the limit", `"secure":1}`, `"secure":1,"qty":{"multiplier":5000}}`, "imp_refused"},
		{"qty.multiplier on a site request", `"secure":1}`, `"secure":1,"qty":{"multiplier":5}}`, "imp_refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := strings.Replace(base, c.old, c.new, 1)
			if body == base {
				t.Fatal("no change")
			}
			ts := newTestServer(t, nil)
			r := ts.bidInTime([]byte(body))
			if r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != c.want {
				t.Fatalf("%d %q, want 204 %s", r.StatusCode(), r.Header.Peek("x-nobid-reason"), c.want)
			}
			if a := explainBody(t, ts, body); a.NoBidReason != c.want {
				t.Fatalf("explain: no-bid reason %q, want %s: %s", a.NoBidReason, c.want, a)
			}
		})
	}
}

// bid.ext.pctr tells an exchange a CPC campaign's value: it is written only
// where pricing.reveal_pctr or the exchange's own pctr says so (an outside
// audit floored requests just under the value it read, undoing shading).
func TestRevealPCTR(t *testing.T) {
	on, off := true, false
	for _, tc := range []struct {
		global   bool
		path     string
		revealed bool
	}{
		{false, "/openrtb2/bid", false},
		{true, "/openrtb2/bid", true},
		{false, "/openrtb2/bid?exchange=sandbox", true},   // exchanges.sandbox.pctr: true
		{true, "/openrtb2/bid?exchange=private", false},   // exchanges.private.pctr: false
		{true, "/openrtb2/bid?exchange=plain", true},      // unset: pricing.reveal_pctr
		{false, "/openrtb2/bid?exchange=unlisted", false}, // the defaults
	} {
		ts := newTestServer(t, func(c *Config) {
			c.Pricing.RevealPCTR = tc.global
			c.Exchanges = map[string]ExchangeConfig{"sandbox": {PCTR: &on}, "private": {PCTR: &off}, "plain": {}}
		})
		r := ts.do("POST", tc.path, readReq(t, "site-banner.json"))
		if r.StatusCode() != 200 {
			t.Fatalf("%s: %d %s", tc.path, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		}
		b := onlyBid(t, decodeResponse(t, r))
		if got := string(b.Ext) == `{"pctr":0.02}`; got != tc.revealed || !got && len(b.Ext) != 0 {
			t.Errorf("reveal_pctr %v, %s: bid.ext %s, want pctr revealed %v", tc.global, tc.path, b.Ext, tc.revealed)
		}
	}
}

// The traffic forecast counts a request when some campaign's targeting takes
// it, whatever the campaigns' flights and hours: counting every request let
// a flood no campaign could bid on shape every forecast campaign's plan (an
// outside pricing audit), and counting only what live campaigns matched
// learned the hours before a flight's start, or outside its dayparting, as
// hours without traffic (a review of that first fix).
func TestForecastCountsTargetedRequests(t *testing.T) {
	base := string(readReq(t, "site-banner.json"))
	brazil := strings.Replace(base, `"country":"USA"`, `"country":"BRA"`, 1)
	now := time.Now().UTC()
	edit := func(f func(*campaigns.Config)) []campaigns.Config {
		var cs []campaigns.Config
		for _, c := range testCampaignConfigs(t) {
			f(&c)
			cs = append(cs, c)
		}
		return cs
	}
	later := edit(func(c *campaigns.Config) {
		c.Flight = campaigns.FlightConfig{Start: now.Add(48 * time.Hour).Format(time.RFC3339)}
	})
	var otherHours []int
	for h := range 24 {
		if h != now.Hour() && h != now.Add(time.Hour).Hour() { // the test may cross an hour
			otherHours = append(otherHours, h)
		}
	}
	offHours := edit(func(c *campaigns.Config) {
		c.TimeZone = "UTC"
		c.Targeting.Dayparting = &campaigns.DaypartConf{Hours: otherHours}
	})
	for _, tc := range []struct {
		name, body, reason string
		camps              []campaigns.Config // nil: the test campaigns
		counted            bool
	}{
		{"a bid", base, "", nil, true},
		{"country not targeted", brazil, "no_campaign", nil, false},
		{"matched, below the floor", strings.Replace(base, `"bidfloor":0.5`, `"bidfloor":500`, 1), "below_floor", nil, true},
		{"every flight starts later", base, "no_campaign", later, true},
		{"every flight starts later, country not targeted", brazil, "no_campaign", later, false},
		{"outside every campaign's hours", base, "no_campaign", offHours, true},
		{"outside every campaign's hours, country not targeted", brazil, "no_campaign", offHours, false},
	} {
		ts := newTestServer(t, nil)
		if tc.camps != nil {
			snap, err := campaigns.Compile(tc.camps)
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.SetCampaigns(snap); err != nil {
				t.Fatal(err)
			}
		}
		r := ts.bidInTime([]byte(tc.body))
		if got := string(r.Header.Peek("x-nobid-reason")); got != tc.reason {
			t.Fatalf("%s: no-bid reason %q, want %q", tc.name, got, tc.reason)
		}
		// bidInTime posts again after a stall: counted at least once.
		if got := ts.money.observed.Load(); (got > 0) != tc.counted {
			t.Errorf("%s: the forecast counted %d, want counted %v", tc.name, got, tc.counted)
		}
	}
}

// A restarted process under the same instance id gives new bid ids: it
// numbered responses from 0, and the first bid before and after a restart
// were both INSTANCE-1 (an outside audit).
func TestBidIDsDifferAcrossRestarts(t *testing.T) {
	first := func() string {
		ts := newTestServer(t, nil)
		r := ts.do("POST", "/openrtb2/bid", readReq(t, "site-banner.json"))
		if r.StatusCode() != 200 {
			t.Fatalf("status %d", r.StatusCode())
		}
		var resp struct {
			BidID string `json:"bidid"`
		}
		if err := json.Unmarshal(r.Body(), &resp); err != nil || resp.BidID == "" {
			t.Fatalf("bidid %q: %v", resp.BidID, err)
		}
		return resp.BidID
	}
	a := first()
	time.Sleep(2 * time.Microsecond)
	if b := first(); a == b {
		t.Errorf("two processes under one instance id both answered bidid %q", a)
	}
}
