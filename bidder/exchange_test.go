package bidder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ortb"
)

// A DOOH play reaching imp.qty.multiplier people is charged for all of
// them: the hold, the token and the charge carry the multiplied amount, the
// bid price stays the CPM of one impression, and the budget's rules (the
// clearing price's share of the hold, never above it) are unchanged. Through
// the real budget store, with an exchange that charges on the win notice.
func TestDOOHQtyCharge(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Exchanges = map[string]ExchangeConfig{"ooh": {ChargeOn: "win"}} })
	body := readReq(t, "dooh-qty.json") // screens-dooh: 5.00 CPM; qty 12.5
	url := "http://" + app.Addr() + "/openrtb2/bid?exchange=ooh"
	bid := func(id string, body []byte) openrtb2.Bid {
		t.Helper()
		code, resp, why := post(t, url, []byte(strings.Replace(string(body), "req-dooh", id, 1)))
		if code != 200 {
			t.Fatalf("%s: %d %s", id, code, why)
		}
		var br openrtb2.BidResponse
		if err := json.Unmarshal(resp, &br); err != nil {
			t.Fatal(err)
		}
		return br.SeatBid[0].Bid[0]
	}
	b := bid("d1", body)
	if b.Price != 5 {
		t.Fatalf("price %v, want the CPM of one impression (5)", b.Price)
	}
	// The hold: 5.00 CPM is 5,000 micros an impression, x 12.5 = 62,500.
	if _, held := spent(t, app, "screens-dooh"); held != 62_500 {
		t.Fatalf("held %d micros, want 62500", held)
	}
	// Cleared at 4.00: four fifths of the hold.
	if code, _ := get(t, substitute(b.NURL, "4.00")); code != 200 {
		t.Fatalf("win notice: %d", code)
	}
	// The hold's rest (12,500) stays reserved for the impression until the
	// hold expires: a later, higher notice of it is drawn from it.
	if s, held := spent(t, app, "screens-dooh"); s != 50_000 || held != 12_500 {
		t.Fatalf("after the win at 4.00: spent %d, held %d; want 50000 and the hold's rest 12500", s, held)
	}
	// A clearing price above the bid is charged at the hold, never more.
	b = bid("d2", body)
	get(t, substitute(b.NURL, "9.00"))
	if s, _ := spent(t, app, "screens-dooh"); s != 50_000+62_500 {
		t.Fatalf("after a win above the bid: spent %d, want %d", s, 50_000+62_500)
	}
	// Without qty, one impression.
	b = bid("d3", []byte(strings.Replace(string(body), `"qty":{"multiplier":12.5,"sourcetype":1,"vendor":"measure.example"},`, "", 1)))
	get(t, substitute(b.NURL, "5.00"))
	if s, _ := spent(t, app, "screens-dooh"); s != 50_000+62_500+5_000 {
		t.Fatalf("after a win without qty: spent %d, want %d", s, 50_000+62_500+5_000)
	}
	// An exchange that charges on billing (the default): the win charges
	// provisionally and the burl settles the same multiplied amount once.
	url = "http://" + app.Addr() + "/openrtb2/bid"
	b = bid("d4", body)
	get(t, substitute(b.NURL, "4.00"))
	if code, _ := get(t, substitute(b.BURL, "4.00")); code != 200 {
		t.Fatalf("billing notice: %d", code)
	}
	get(t, substitute(b.BURL, "4.00")) // a replay changes nothing
	// held: d1's and d4's rests (12,500 each) until their holds expire.
	if s, held := spent(t, app, "screens-dooh"); s != 50_000+62_500+5_000+50_000 || held != 25_000 {
		t.Fatalf("after win and billing at 4.00: spent %d, held %d; want %d and 25000", s, held, 50_000+62_500+5_000+50_000)
	}
}

// The hold of one impression times the multiplier, rounded up: it is also
// the most its notices charge (it was rounded down, so the ledger fell
// behind the exchange's bill at low prices: an outside audit). No qty or a
// multiplier of 0 is one impression, and one outside [min_qty, max_qty]
// (negative, NaN, infinite, absurd) is refused.
func TestImpCharge(t *testing.T) {
	lim := &LimitsConfig{MinQty: 0.01, MaxQty: 1000}
	for _, c := range []struct {
		v    float64
		m    float64
		has  bool
		hold int64
		ok   bool
	}{
		{5_000_000, 0, false, 5_000, true},
		{5_000_000, 0, true, 5_000, true},
		{5_000_000, 1, true, 5_000, true},
		{8_926_346, 0, false, 8_927, true}, // 8,926.346 micros: held and charged at most 8,927
		{5_000_000, 12.5, true, 62_500, true},
		{1_234_567, 3.3, true, 4_075, true}, // 4,074,071.1 micros CPM -> 4,074.07
		{5_000_000, 1000, true, 5_000_000, true},
		{5_000_000, 0.01, true, 50, true},
		{5_000_000, 0.5, true, 2_500, true},
		{999, 0, false, 1, true}, // under a micro an impression: a micro
		{1_234_567, -2, true, 0, false},
		{5_000_000, 1000.5, true, 0, false},
		{5_000_000, 0.009, true, 0, false},
		{5_000_000, 1e300, true, 0, false},
		{5_000_000, math.Inf(1), true, 0, false},
		{5_000_000, math.NaN(), true, 0, false},
		{math.MaxInt64 / 2, 1000, true, 0, false}, // does not fit
	} {
		imp := &ortb.Imp{HasQty: c.has, Qty: ortb.Qty{Multiplier: c.m}}
		hold, ok := impCharge(c.v, imp, lim)
		if hold != c.hold || ok != c.ok {
			t.Errorf("impCharge(%v, x%v) = %d, %v; want %d, %v", c.v, c.m, hold, ok, c.hold, c.ok)
		}
	}
}

// A request whose qty.multiplier is absurd, forged or malformed gets no bid
// on that imp and holds nothing; a sane one bids with the multiplied hold.
func TestDOOHBadQtyNoBid(t *testing.T) {
	ts := newTestServer(t, nil)
	body := string(readReq(t, "dooh-qty.json"))
	const q = `"multiplier":12.5`
	for _, c := range []struct {
		mult   string
		status int
		hold   int64
	}{
		{"1000", 200, 5_000_000},
		{"1e9", 204, 0},
		{"1001", 204, 0},
		{"-12.5", 204, 0},
		{"0.001", 204, 0},
		{"0.5", 200, 2_500},
	} {
		ts.money.holds = ts.money.holds[:0]
		r := ts.bidInTime([]byte(strings.Replace(body, q, `"multiplier":`+c.mult, 1)))
		if r.StatusCode() != c.status {
			t.Errorf("x%s: status %d %s, want %d", c.mult, r.StatusCode(), r.Header.Peek("x-nobid-reason"), c.status)
			continue
		}
		var held int64
		for _, h := range ts.money.holds {
			held += h
		}
		if held != c.hold {
			t.Errorf("x%s: held %v, want %d", c.mult, ts.money.holds, c.hold)
		}
	}
	if n := ts.m.badQty.load(); n != 4 {
		t.Errorf("imps_bad_qty_total %d, want 4", n)
	}
}

// The gate asks the budget for the multiplied maximum charge.
func TestDOOHGateAsksMultipliedCharge(t *testing.T) {
	ts := newTestServer(t, nil)
	rec := &allowRecorder{fakeMoney: ts.money}
	ts.bind = func(*campaigns.Snapshot) (money, error) { return rec, nil }
	snap, err := campaigns.LoadDir("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
	if r := ts.bidInTime(readReq(t, "dooh-qty.json")); r.StatusCode() != 200 {
		t.Fatalf("status %d %s", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	if len(rec.asked) != 1 || rec.asked[0] != 62_500 {
		t.Fatalf("allow asked for %v, want [62500]", rec.asked)
	}
	if len(ts.money.holds) != 1 || ts.money.holds[0] != 62_500 {
		t.Fatalf("holds %v, want [62500]", ts.money.holds)
	}
}

type allowRecorder struct {
	*fakeMoney
	asked []int64
}

func (a *allowRecorder) allow(ci int, maxCharge int64, now time.Time, _ uint64) reason {
	a.asked = append(a.asked, maxCharge)
	return a.fakeMoney.allow(ci, maxCharge, now, 0)
}

// Per-exchange rules, resolved from ?exchange=NAME: seat (seatbid.seat and
// wseat), currency preference, default tmax, charge_on, nbr and macros; an
// unknown name gets the defaults.
func TestExchangeRules(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Exchanges = map[string]ExchangeConfig{
			"strict": {Seat: "strict-seat", Currency: "GBP", DefaultTMax: 10 * time.Millisecond, NBR: true,
				Macros: MacrosConfig{Price: "%%PRICE%%", Loss: "none"}},
			"plain": {},
		}
	})
	site := string(readReq(t, "site-banner.json"))
	noCur := strings.Replace(site, `"cur":["USD"],`, "", 1)
	for _, c := range []struct {
		name, uri, body string
		check           func(t *testing.T, resp *openrtb2.BidResponse, status int, reason string)
	}{
		{"defaults", "/openrtb2/bid", noCur, func(t *testing.T, r *openrtb2.BidResponse, _ int, _ string) {
			b := r.SeatBid[0].Bid[0]
			if r.SeatBid[0].Seat != "openbidder" || r.Cur != "USD" || !strings.Contains(b.NURL, "&p=${AUCTION_PRICE}") ||
				!strings.HasSuffix(b.LURL, "&r=${AUCTION_LOSS}") {
				t.Errorf("seat %q cur %q nurl %q lurl %q", r.SeatBid[0].Seat, r.Cur, b.NURL, b.LURL)
			}
		}},
		{"unknown name", "/openrtb2/bid?exchange=nobody", noCur, func(t *testing.T, r *openrtb2.BidResponse, _ int, _ string) {
			if r.SeatBid[0].Seat != "openbidder" || r.Cur != "USD" {
				t.Errorf("seat %q cur %q", r.SeatBid[0].Seat, r.Cur)
			}
		}},
		{"strict: seat, currency, macros", "/openrtb2/bid?exchange=strict", noCur, func(t *testing.T, r *openrtb2.BidResponse, _ int, _ string) {
			b := r.SeatBid[0].Bid[0]
			if r.SeatBid[0].Seat != "strict-seat" || r.Cur != "GBP" || b.Price != 1.6 || !strings.HasSuffix(b.NURL, "&p=%%PRICE%%") ||
				strings.Contains(b.LURL, "&r=") {
				t.Errorf("seat %q cur %q price %v nurl %q lurl %q", r.SeatBid[0].Seat, r.Cur, b.Price, b.NURL, b.LURL)
			}
		}},
		{"strict: a currency the request does not allow", "/openrtb2/bid?exchange=strict", site, func(t *testing.T, r *openrtb2.BidResponse, _ int, _ string) {
			if r.Cur != "USD" {
				t.Errorf("cur %q, want USD (the request allows only it)", r.Cur)
			}
		}},
		{"strict: wseat names its seat", "/openrtb2/bid?exchange=strict", strings.Replace(site, `"cur"`, `"wseat":["strict-seat"],"cur"`, 1),
			func(t *testing.T, r *openrtb2.BidResponse, status int, _ string) {
				if status != 200 || len(r.SeatBid) != 1 {
					t.Errorf("status %d", status)
				}
			}},
		{"default seat not in that wseat", "/openrtb2/bid", strings.Replace(site, `"cur"`, `"wseat":["strict-seat"],"cur"`, 1),
			func(t *testing.T, _ *openrtb2.BidResponse, status int, reason string) {
				if status != 204 || reason != "no_campaign" {
					t.Errorf("status %d %s, want 204 no_campaign", status, reason)
				}
			}},
		{"strict: its default tmax applies to a request without one", "/openrtb2/bid?exchange=strict", strings.Replace(noCur, `"tmax":200,`, "", 1),
			func(t *testing.T, r *openrtb2.BidResponse, status int, reason string) {
				// 10 ms is under the 15 ms network margin: no time to answer.
				if status != 200 || reason != "tmax" || r.NBR == nil || *r.NBR != 15 {
					t.Errorf("status %d reason %q response %+v", status, reason, r)
				}
			}},
		{"defaults: limits.default_tmax for a request without one", "/openrtb2/bid", strings.Replace(noCur, `"tmax":200,`, "", 1),
			func(t *testing.T, r *openrtb2.BidResponse, status int, reason string) {
				if status != 200 || len(r.SeatBid) != 1 {
					t.Errorf("status %d reason %q", status, reason)
				}
			}},
		{"strict: nbr body", "/openrtb2/bid?exchange=strict", strings.Replace(noCur, `"bidfloor":0.5`, `"bidfloor":50`, 1),
			func(t *testing.T, r *openrtb2.BidResponse, status int, reason string) {
				if status != 200 || reason != "below_floor" || r.ID != "req-site-banner" || r.NBR == nil || *r.NBR != 0 || len(r.SeatBid) != 0 {
					t.Errorf("status %d reason %q response %+v", status, reason, r)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do("POST", c.uri, []byte(c.body))
			var resp openrtb2.BidResponse
			if r.StatusCode() == 200 {
				if err := json.Unmarshal(r.Body(), &resp); err != nil {
					t.Fatalf("%v: %s", err, r.Body())
				}
			}
			c.check(t, &resp, r.StatusCode(), string(r.Header.Peek("x-nobid-reason")))
		})
	}
}

// Each no-bid reason's OpenRTB code in the nbr body; a request shed before
// parsing keeps its 204.
func TestNBRCodes(t *testing.T) {
	for r, want := range map[reason]int{
		reasonTMax: 15, reasonDeadline: 15, reasonLate: 15, reasonNotReady: 1, reasonModelError: 1, reasonFailClosed: 1,
		reasonFreqCap: 9, reasonNoMatch: 0, reasonBelowFloor: 0, reasonBudget: 0, reasonPaced: 0, reasonCurrency: 0, reasonFlight: 0, reasonPaused: 0,
		reasonInvalidImp: 2, reasonImpRefused: 0,
	} {
		var br openrtb2.BidResponse
		if err := json.Unmarshal(appendNBR(nil, []byte(`r"1`), r, false), &br); err != nil || br.ID != `r"1` || br.NBR == nil || int(*br.NBR) != want {
			t.Errorf("%v: %+v %v, want nbr %d", r, br, err, want)
		}
	}
	ts := newTestServer(t, func(c *Config) {
		c.Exchanges = map[string]ExchangeConfig{"strict": {NBR: true}}
		c.Limits.Admission.MaxLimit, c.Limits.Admission.MinLimit = 1, 1
	})
	// A tmax too short to answer: 15.
	body := strings.Replace(string(readReq(t, "site-banner.json")), `"tmax":200`, `"tmax":10`, 1)
	r := ts.do("POST", "/openrtb2/bid?exchange=strict", []byte(body))
	if r.StatusCode() != 200 || string(r.Body()) != `{"id":"req-site-banner","nbr":15}` {
		t.Fatalf("tmax: %d %s", r.StatusCode(), r.Body())
	}
	// OpenRTB 2.5's list ends at 10 (and 2.4's, ...): 0 (unknown) to such a
	// request (a 2.4 one was answered 15).
	for _, v := range []string{"2.5", "2.4", "2.3.1"} {
		r = ts.do("POST", "/openrtb2/bid?exchange=strict", []byte(body), "x-openrtb-version", v)
		if r.StatusCode() != 200 || string(r.Body()) != `{"id":"req-site-banner","nbr":0}` {
			t.Fatalf("tmax, %s: %d %s", v, r.StatusCode(), r.Body())
		}
	}
	// A malformed request stays a 400.
	if r := ts.do("POST", "/openrtb2/bid?exchange=strict", []byte(`{"id":"x"}`)); r.StatusCode() != 400 {
		t.Fatalf("malformed: %d", r.StatusCode())
	}
}

func TestExchangeConfigRejects(t *testing.T) {
	for _, c := range []struct {
		x    ExchangeConfig
		want string
	}{
		{ExchangeConfig{Currency: "CHF"}, `exchanges.x.currency: "CHF" is not in currency.rates`},
		{ExchangeConfig{FloorCurrency: "JPY"}, `exchanges.x.floor_currency: "JPY" is not in currency.rates`},
		{ExchangeConfig{DefaultTMax: -time.Millisecond}, "exchanges.x.default_tmax: -1ms must not be negative"},
		{ExchangeConfig{Seat: `a"b`}, "exchanges.x.seat"},
		{ExchangeConfig{Macros: MacrosConfig{Price: "${AUCTION PRICE}"}}, "exchanges.x.macros.price"},
		{ExchangeConfig{Macros: MacrosConfig{Loss: "a&b"}}, "exchanges.x.macros.loss"},
		{ExchangeConfig{Macros: MacrosConfig{MinToWin: "a b"}}, "exchanges.x.macros.min_to_win"},
		{ExchangeConfig{Macros: MacrosConfig{Price: "none"}}, "exchanges.x.macros.price: an exchange must send the clearing price"},
		{ExchangeConfig{ChargeOn: "imp"}, `exchanges.x.charge_on: "imp" is not billing or win`},
	} {
		cfg := &Config{Notices: NoticeConfig{Key: "k"}, Exchanges: map[string]ExchangeConfig{"x": c.x}}
		cfg.Currency.Rates = map[string]float64{"USD": 1, "EUR": 1.1}
		cfg.Defaults()
		err := cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.x, err, c.want)
		}
	}
}

// limits.bid_sources and exchanges.NAME.sources: a bid request from a TCP
// peer outside them gets 403 before it is parsed, places no hold and gets
// no notice URL; inside them it bids. An exchange's list replaces the
// default for requests naming it, so its name cannot be claimed from
// elsewhere.
func TestBidSources(t *testing.T) {
	body := readReq(t, "site-banner.json")
	for _, c := range []struct {
		name    string
		global  []string
		strict  []string
		uri     string
		allowed bool
	}{
		{"default: any source", nil, nil, "/openrtb2/bid", true},
		{"outside bid_sources", []string{"10.0.0.0/8", "192.0.2.7"}, nil, "/openrtb2/bid", false},
		{"inside bid_sources (an address)", []string{"10.0.0.0/8", "127.0.0.1"}, nil, "/openrtb2/bid", true},
		{"inside bid_sources (a prefix)", []string{"127.0.0.0/8"}, nil, "/openrtb2/bid?exchange=nobody", true},
		{"exchange's sources exclude it", nil, []string{"192.0.2.0/24"}, "/openrtb2/bid?exchange=strict", false},
		{"exchange's sources, another name", nil, []string{"192.0.2.0/24"}, "/openrtb2/bid?exchange=other", true},
		{"exchange's sources, no name", nil, []string{"192.0.2.0/24"}, "/openrtb2/bid", true},
		{"exchange's sources replace bid_sources", []string{"127.0.0.1"}, []string{"192.0.2.1"}, "/openrtb2/bid?exchange=strict", false},
		{"exchange's sources include it", []string{"192.0.2.1"}, []string{"127.0.0.1/32"}, "/openrtb2/bid?exchange=strict", true},
		{"an IPv4-mapped prefix", []string{"::ffff:127.0.0.0/104"}, nil, "/openrtb2/bid", true},
		{"an IPv4-mapped address", []string{"::ffff:127.0.0.1"}, nil, "/openrtb2/bid", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, func(cfg *Config) {
				cfg.Limits.BidSources = c.global
				cfg.Exchanges = map[string]ExchangeConfig{"strict": {Sources: c.strict}, "other": {}}
			})
			resp, err := http.Post("http://"+ts.serve(t)+c.uri, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			wantSourceRule(t, ts, resp, c.allowed, "source")
		})
	}
}

// A bid request from a web page (an Origin or Sec-Fetch-Site header: every
// browser POST carries Origin, every request Sec-Fetch-Site; an exchange
// sends neither, and Node's fetch only Sec-Fetch-Mode) gets 403 before it is parsed, places no hold and gets no
// notice URL, also with bid_sources open: a cross-site page could otherwise
// bid blind with a text/plain body, and a DNS-rebound one read the notice
// URLs and fire them. Lower-case names are the same headers.
func TestBidRefusesBrowserRequests(t *testing.T) {
	body := readReq(t, "site-banner.json")
	for _, c := range []struct {
		name    string
		headers map[string]string
		allowed bool
	}{
		{"an exchange", map[string]string{"Content-Type": "application/json"}, true},
		{"cross-site form or no-cors fetch", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"}, false},
		{"rebound page, same origin", map[string]string{"Content-Type": "text/plain", "Host": "rebind.evil.example", "origin": "http://rebind.evil.example"}, false},
		{"opaque origin", map[string]string{"Origin": "null"}, false},
		{"fetch metadata alone", map[string]string{"sec-fetch-site": "same-origin"}, false},
		// Node's built-in fetch (undici) sends sec-fetch-mode: cors on
		// every request, from a server too: an exchange may use it.
		{"Node's fetch", map[string]string{"Content-Type": "application/json", "sec-fetch-mode": "cors", "accept": "*/*", "user-agent": "node"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			req, err := http.NewRequest(http.MethodPost, "http://"+ts.serve(t)+"/openrtb2/bid", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.headers {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header[k] = []string{v}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			wantSourceRule(t, ts, resp, c.allowed, "browser")
		})
	}
}

// wantSourceRule checks the answer to the one bid request ts got: allowed,
// a 200 that held budget and counted no refusal; else a 403 whose body says
// why (why), before any hold or notice URL, counted once.
func wantSourceRule(t *testing.T, ts *testServer, resp *http.Response, allowed bool, why string) {
	t.Helper()
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	refused := ts.m.sourceRefused.load()
	if allowed {
		if resp.StatusCode != http.StatusOK || refused != 0 || len(ts.money.holds) == 0 {
			t.Fatalf("allowed: %d %q, refused %d, holds %v", resp.StatusCode, got, refused, ts.money.holds)
		}
		return
	}
	if resp.StatusCode != http.StatusForbidden || refused != 1 || len(ts.money.holds) != 0 || !bytes.Contains(got, []byte(why)) ||
		bytes.Contains(got, []byte("notice")) || ts.m.requests.load() != 1 {
		t.Fatalf("refused (%s): %d %q, refused %d, holds %v", why, resp.StatusCode, got, refused, ts.money.holds)
	}
}

func TestBidSourcesConfigRejects(t *testing.T) {
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Limits.BidSources = []string{"10.0.0.300"} }, `limits.bid_sources: "10.0.0.300" is neither`},
		{func(c *Config) { c.Limits.BidSources = []string{"10.0.0.0/33"} }, "limits.bid_sources"},
		{func(c *Config) { c.Exchanges = map[string]ExchangeConfig{"x": {Sources: []string{"adx.example"}}} }, "exchanges.x.sources"},
		{func(c *Config) { c.Notices.Sources = []string{"198.51.100.0/24", "adx.example"} }, `notices.sources: "adx.example" is neither`},
	} {
		cfg := &Config{Notices: NoticeConfig{Key: "k"}}
		cfg.Currency.Rates = map[string]float64{"USD": 1}
		c.edit(cfg)
		cfg.Defaults()
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, want %q", err, c.want)
		}
	}
}

// Which exchange's test_requests a test=1 request gets is the exchange its
// source was checked against: the first ?exchange= value, percent-decoded,
// by exact name. A free exchange with sources cannot be claimed from
// elsewhere by a second exchange= value, an escaped name or another case;
// a name that is not configured gets the default (billable: its bid holds).
// A free exchange's live requests hold too.
func TestTestRequestsFreeExchangeBySource(t *testing.T) {
	live := readReq(t, "site-banner.json")
	test := bytes.Replace(live, []byte(`"id":"req-site-banner"`), []byte(`"id":"req-test-mode","test":1`), 1)
	if bytes.Equal(test, live) {
		t.Fatal("the request has no id to mark test=1 after")
	}
	const (
		refused = iota
		free    // 200, nothing held
		held    // 200 and a hold
	)
	for _, c := range []struct {
		name    string
		sources []string
		uri     string
		body    []byte
		want    int
	}{
		{"free exchange from inside its sources", []string{"127.0.0.1"}, "/openrtb2/bid?exchange=integ", test, free},
		{"its live request", []string{"127.0.0.1"}, "/openrtb2/bid?exchange=integ", live, held},
		{"free exchange from outside its sources", []string{"192.0.2.0/24"}, "/openrtb2/bid?exchange=integ", test, refused},
		{"named first of two", []string{"192.0.2.0/24"}, "/openrtb2/bid?exchange=integ&exchange=other", test, refused},
		{"named second of two", []string{"192.0.2.0/24"}, "/openrtb2/bid?exchange=other&exchange=integ", test, held},
		{"percent-escaped name", []string{"192.0.2.0/24"}, "/openrtb2/bid?exchange=%69nteg", test, refused},
		{"another case", []string{"192.0.2.0/24"}, "/openrtb2/bid?exchange=INTEG", test, held},
		{"no name", []string{"192.0.2.0/24"}, "/openrtb2/bid", test, held},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, func(cfg *Config) {
				cfg.Exchanges = map[string]ExchangeConfig{"integ": {TestRequests: "free", Sources: c.sources}, "other": {}}
			})
			resp, err := http.Post("http://"+ts.serve(t)+c.uri, "application/json", bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var ok bool
			switch c.want {
			case refused:
				ok = resp.StatusCode == http.StatusForbidden && len(ts.money.holds) == 0
			case free:
				ok = resp.StatusCode == http.StatusOK && len(ts.money.holds) == 0
			case held:
				ok = resp.StatusCode == http.StatusOK && len(ts.money.holds) > 0
			}
			if !ok {
				t.Fatalf("%s: %d %.200q, holds %v; want %v", c.uri, resp.StatusCode, got, ts.money.holds, []string{"403", "200 free", "200 held"}[c.want])
			}
		})
	}
}

// A free test bid's notice tokens carry no user key: nothing of a free bid
// counts against frequency caps, and with no hold id its sealed user block
// was the same in every bid of one user (the privacy audit), a stable id
// in markup every page sees. A billable bid's token keeps the key.
func TestFreeTestBidTokensCarryNoUser(t *testing.T) {
	live := readReq(t, "site-banner.json")
	test := bytes.Replace(live, []byte(`"id":"req-site-banner"`), []byte(`"id":"req-test-mode","test":1`), 1)
	ts := newTestServer(t, func(cfg *Config) {
		cfg.Exchanges = map[string]ExchangeConfig{"integ": {TestRequests: "free", Sources: []string{"127.0.0.1"}}}
	})
	addr := ts.serve(t)
	user := func(body []byte) uint64 {
		t.Helper()
		resp, err := http.Post("http://"+addr+"/openrtb2/bid?exchange=integ", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var br openrtb2.BidResponse
		err = json.NewDecoder(resp.Body).Decode(&br)
		resp.Body.Close()
		if err != nil || len(br.SeatBid) == 0 {
			t.Fatalf("no bid: %d %v", resp.StatusCode, err)
		}
		tok, err := ts.signer.parseToken([]byte(tokensOf(t, br.SeatBid[0].Bid[0])[noticeImp]), nil, noticeImp, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok.User
	}
	if u := user(test); u != 0 {
		t.Errorf("a free test bid's token carries user key %x", u)
	}
	if u := user(live); u == 0 {
		t.Error("a billable bid's token lost its user key")
	}
}

// A qty.multiplier other than 1 is honoured only by campaigns that buy DOOH
// inventory: a site request whose imp said multiplier 1000 was bid by a
// site campaign, and one billing notice charged it 1000 impressions (an
// outside audit: 3,000,000 micros for a 3 CPM banner). Such a campaign now
// skips that imp; multiplier 1 (or none) bids as before. And only on a DOOH
// request: a campaign buying site and dooh inventory bid the site request
// and was charged 1000 impressions by one billing notice (a second audit).
func TestQtyMultiplierOnlyForDOOHCampaigns(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		dir := t.TempDir()
		files, _ := filepath.Glob("testdata/campaigns/*.yaml")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if mixed && filepath.Base(f) == "acme.yaml" {
				b = []byte(strings.Replace(string(b), "targeting:\n", "targeting:\n  inventory: [site, dooh]\n", 1))
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		app := startApp(t, func(c *Config) { c.CampaignsDir = dir })
		body, err := os.ReadFile("testdata/requests/site-banner.json")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			qty  string
			code int
		}{
			{`"qty":{"multiplier":1000},`, 204},
			{`"qty":{"multiplier":2.5},`, 204},
			{`"qty":{"multiplier":1},`, 200},
			{``, 200},
		} {
			b := strings.Replace(string(body), `"bidfloor":0.5,`, c.qty+`"bidfloor":0.5,`, 1)
			code, resp, why := post(t, "http://"+app.Addr()+"/openrtb2/bid", []byte(b))
			if code != c.code {
				t.Errorf("site banner with %q (acme buys dooh too: %v): %d %q %s, want %d", c.qty, mixed, code, why, resp, c.code)
			}
		}
	}
}

// A campaign's deals are its exchanges' (targeting.exchanges): the deal id
// sent by anyone else bids nothing. Before, any sender of deal-1 (no
// exchange name, or a made-up one) got luxemotors-pmp's fixed 9.00 CPM, and
// on at=3 set its price (an outside audit).
func TestDealsOnlyFromTheirExchange(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../configs/campaigns/luxemotors-pmp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pmp.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, func(c *Config) {
		c.CampaignsDir = dir
		c.Exchanges = map[string]ExchangeConfig{"example-adx": {}, "other": {}}
	})
	body := []byte(`{"id":"deal-spoof","imp":[{"id":"1","banner":{"w":300,"h":250},"secure":1,` +
		`"pmp":{"private_auction":1,"deals":[{"id":"deal-1","at":3,"bidfloor":8.99}]}}],` +
		`"site":{"id":"x","domain":"junk.example","publisher":{"id":"nobody"}},"device":{"ua":"x","ip":"198.51.100.1"}}`)
	for _, ex := range []string{"", "?exchange=made-up", "?exchange=other", "?exchange=example-adx"} {
		code, resp, reason := post(t, "http://"+app.Addr()+"/openrtb2/bid"+ex, body)
		if want := map[bool]int{true: 200, false: 204}[ex == "?exchange=example-adx"]; code != want {
			t.Fatalf("deal-1 %q: %d %s %s, want %d", ex, code, reason, resp, want)
		}
	}
}

// exchanges.NAME.floor_currency is the currency of that exchange's floors
// that name none (imp and deal bidfloor without bidfloorcur); elsewhere they
// are USD, as OpenRTB says. acme bids a fixed 2.00 USD and hooli-deal 4.00
// USD; 1 GBP is 1.25 USD here.
func TestExchangeFloorCurrency(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Exchanges = map[string]ExchangeConfig{"gb": {FloorCurrency: "GBP"}}
	})
	site := string(readReq(t, "site-banner.json"))
	floor := func(f string) string {
		body := strings.Replace(site, `"bidfloor":0.5,"bidfloorcur":"USD"`, f, 1)
		if body == site {
			t.Fatal("fixture changed")
		}
		return body
	}
	deal := floor(`"bidfloor":9,"bidfloorcur":"USD","pmp":{"private_auction":1,"deals":[{"id":"deal-7","bidfloor":3.5}]}`)
	for _, c := range []struct {
		name, uri, body string
		cid             string // "": no bid
	}{
		{"USD by default", "/openrtb2/bid", floor(`"bidfloor":1.7`), "acme-banner"},
		{"GBP 1.70 is over 2.00 USD", "/openrtb2/bid?exchange=gb", floor(`"bidfloor":1.7`), ""},
		{"GBP 1.50 is under it", "/openrtb2/bid?exchange=gb", floor(`"bidfloor":1.5`), "acme-banner"},
		{"a floor that names USD", "/openrtb2/bid?exchange=gb", floor(`"bidfloor":1.7,"bidfloorcur":"USD"`), "acme-banner"},
		{"a deal's floor, USD by default", "/openrtb2/bid", deal, "hooli-deal"},
		{"a deal's floor in GBP", "/openrtb2/bid?exchange=gb", deal, ""},
		{"a deal's floor that names USD", "/openrtb2/bid?exchange=gb", strings.Replace(deal, `"bidfloor":3.5}`, `"bidfloor":3.5,"bidfloorcur":"USD"}`, 1), "hooli-deal"},
	} {
		r := ts.do("POST", c.uri, []byte(c.body))
		if c.cid == "" {
			if r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != "below_floor" {
				t.Errorf("%s: %d %q, want 204 below_floor", c.name, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
			}
			continue
		}
		if r.StatusCode() != 200 {
			t.Errorf("%s: %d %q, want a bid", c.name, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
			continue
		}
		if b := onlyBid(t, decodeResponse(t, r)); b.CID != c.cid {
			t.Errorf("%s: bid from %s, want %s", c.name, b.CID, c.cid)
		}
	}
}
