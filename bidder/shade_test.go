package bidder

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/shading"
	"github.com/prebid/openrtb/v20/openrtb2"
)

// withShading turns pricing.shading on with curves warm after 5 notices.
func withShading(c *Config) {
	c.Pricing.Shading = ShadingConfig{Enabled: true, MinObservations: 5}
}

// firstPrice is site-banner.json as a first-price auction (acme bids its
// fixed 2.00 CPM over a 0.50 floor) with auction id id.
func firstPrice(t *testing.T, id string) []byte {
	t.Helper()
	s := strings.Replace(string(readReq(t, "site-banner.json")), `"at":2`, `"at":1`, 1)
	return []byte(strings.Replace(s, `"req-site-banner"`, strconv.Quote(id), 1))
}

// fire sends a notice URL from a bid with the macros substituted; m = ""
// leaves ${AUCTION_MIN_TO_WIN} as an exchange that does not know it would.
func (ts *testServer) fire(t *testing.T, raw, price, loss, m string) {
	t.Helper()
	raw = strings.NewReplacer("${AUCTION_PRICE}", price, "${AUCTION_LOSS}", loss).Replace(raw)
	if m != "" {
		raw = strings.ReplaceAll(raw, "${AUCTION_MIN_TO_WIN}", m)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r := ts.do("GET", u.RequestURI(), nil); r.StatusCode() != 200 {
		t.Fatalf("notice %s: status %d %s", u.RequestURI(), r.StatusCode(), r.Body())
	}
}

// train places n first-price bids and reports each as lost with the
// minimum bid to win m (the competition's price), so the segment learns a
// curve centred on m.
func (ts *testServer) train(t *testing.T, n int, m float64) {
	t.Helper()
	for i := 0; i < n; i++ {
		b := onlyBid(t, decodeResponse(t, ts.bid(firstPrice(t, "train-"+strconv.Itoa(i)))))
		// Alternate either side of m so the curve has some spread.
		mm := m * (1 + 0.2*float64(i%3-1))
		if mm < b.Price {
			ts.fire(t, b.NURL, strconv.FormatFloat(b.Price, 'f', -1, 64), "", strconv.FormatFloat(mm, 'f', 6, 64))
		} else {
			ts.fire(t, b.LURL, "0", "102", strconv.FormatFloat(mm, 'f', 6, 64))
		}
	}
}

func segmentParam(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(strings.NewReplacer("${", "", "}", "").Replace(raw))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("g")
}

func TestShadingColdSegmentBidsValue(t *testing.T) {
	ts := newTestServer(t, withShading)
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(firstPrice(t, "cold"))))
	if b.Price != 2 {
		t.Fatalf("cold segment bid %v, want the unshaded 2", b.Price)
	}
	for _, u := range []string{b.NURL, b.BURL, b.LURL} {
		if g := segmentParam(t, u); !strings.Contains(u, "&m=${AUCTION_MIN_TO_WIN}&g=") || len(g) < 34 || g[32] != '.' {
			t.Errorf("notice URL %q lacks the min-to-win macro or the segment", u)
		}
	}
	if !strings.HasSuffix(b.LURL, "&r=${AUCTION_LOSS}") {
		t.Errorf("lurl %q", b.LURL)
	}
}

func TestShadingLearnsAndShades(t *testing.T) {
	ts := newTestServer(t, withShading)
	ts.train(t, 12, 1.0)
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(firstPrice(t, "warm"))))
	key, ok := shading.ParseKey([]byte(segmentParam(t, b.NURL)[:32]))
	if !ok {
		t.Fatalf("segment in %q", b.NURL)
	}
	c, warm := ts.shade.Lookup(key)
	if !warm || c.Level != shading.LevelPlacement {
		t.Fatalf("curve %+v warm %v after training", c, warm)
	}
	want := math.Floor(c.Optimal(2e6, 0.5e6)) / 1e6
	if b.Price >= 2 || b.Price < 0.5 || math.Abs(b.Price-want) > 1e-6 {
		t.Fatalf("warm segment bid %v, want the curve's optimum %v in [0.5, 2)", b.Price, want)
	}
	// The hold is the shaded price (campaign USD micros per impression).
	if h := ts.money.holds[len(ts.money.holds)-1]; h != int64(math.Ceil(b.Price*1e3)) {
		t.Fatalf("hold %d micros for a %v CPM bid", h, b.Price)
	}
	// Training bid i saw i notices: the first 5 were cold (min_observations).
	if cold, warm := ts.shadeStats.bids[shading.LevelCold].load(), ts.shadeStats.bids[shading.LevelPlacement].load(); cold != 5 || warm != 8 {
		t.Fatalf("bids by curve: cold %d, placement %d; want 5 and 8", cold, warm)
	}
}

func TestShadingNeverUnderFloorNorAboveValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    float64 // the competition's price
	}{
		{"competition far below the floor", 0.05},
		{"competition far above the value", 40},
		{"competition near the value", 1.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, withShading)
			ts.train(t, 12, tc.m)
			b := onlyBid(t, decodeResponse(t, ts.bidInTime(firstPrice(t, "x"))))
			if b.Price < 0.5 || b.Price > 2 {
				t.Fatalf("bid %v outside [floor 0.5, value 2]", b.Price)
			}
			if tc.m < 0.5 && b.Price != 0.5 {
				t.Fatalf("bid %v, want the floor when nobody competes above it", b.Price)
			}
		})
	}
}

func TestShadingOffAtSecondPrice(t *testing.T) {
	ts := newTestServer(t, withShading)
	ts.train(t, 12, 1.0)
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(readReq(t, "site-banner.json")))) // at=2, same segment
	if b.Price != 2 {
		t.Fatalf("second-price bid %v, want the value 2", b.Price)
	}
	if strings.Contains(b.NURL, "&g=") || strings.Contains(b.LURL, "MIN_TO_WIN") {
		t.Fatalf("second-price notice URLs carry shading feedback: %q %q", b.NURL, b.LURL)
	}
}

func TestShadingDisabledBidsFixedShade(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Pricing.FirstPriceShade = 0.8 })
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(firstPrice(t, "off"))))
	if b.Price != 1.6 || strings.Contains(b.NURL, "&g=") {
		t.Fatalf("shading off: bid %v nurl %q, want 0.8 x 2 and no feedback", b.Price, b.NURL)
	}
	if ts.shade != nil {
		t.Fatal("a model without pricing.shading.enabled")
	}
}

// twoSegmentBids places two first-price bids, auction idA on pub-3 and idB
// on pub-4, and returns them with the segments their notices carry.
func twoSegmentBids(t *testing.T, ts *testServer, idA, idB string) (a, b openrtb2.Bid, ka, kb shading.Key) {
	t.Helper()
	other := []byte(strings.Replace(string(firstPrice(t, idB)), `"pub-3"`, `"pub-4"`, 1))
	a = onlyBid(t, decodeResponse(t, ts.bid(firstPrice(t, idA))))
	b = onlyBid(t, decodeResponse(t, ts.bid(other)))
	ka, _ = shading.ParseKey([]byte(segmentParam(t, a.NURL)[:32]))
	kb, _ = shading.ParseKey([]byte(segmentParam(t, b.NURL)[:32]))
	return a, b, ka, kb
}

// Each notice teaches its own segment, once; only competitive losses count.
func TestShadingNoticeFeedback(t *testing.T) {
	ts := newTestServer(t, withShading)
	a, b, ka, kb := twoSegmentBids(t, ts, "a-1", "b-1")
	if ka == kb || ka.Placement == 0 || kb.Placement == 0 {
		t.Fatalf("segments of pub-3 and pub-4: %+v %+v", ka, kb)
	}
	n := func(k shading.Key) int { p, _ := ts.shade.Inspect(k); return p.N }

	ts.fire(t, a.LURL, "0", "100", "3") // below floor: says nothing about competition
	if n(ka) != 0 {
		t.Fatalf("a below-floor loss was learned")
	}
	ts.fire(t, a.NURL, "2", "", "1.25") // the win, with min to win
	ts.fire(t, a.NURL, "2", "", "1.25") // resent
	ts.fire(t, a.BURL, "2", "", "")     // its bill, no min to win
	if n(ka) != 1 || n(kb) != 0 {
		t.Fatalf("after one impression of a: a %d, b %d observations, want 1 and 0", n(ka), n(kb))
	}
	if p, _ := ts.shade.Inspect(ka); math.Abs(p.Mu-math.Log(1.25e6)) > 1e-9 {
		t.Fatalf("a's curve centred at %v, want ln(1.25e6): the exact min to win", p.Mu)
	}
	ts.fire(t, b.LURL, "3", "102", "") // lost to a higher bid, no min to win: censored
	if n(kb) != 1 {
		t.Fatalf("b's competitive loss not learned")
	}
	if c := ts.shade.Counts(); c[shading.Learned] != 2 || c[shading.Duplicate] != 2 {
		t.Fatalf("feedback counts %v, want 2 learned, 2 duplicates", c)
	}
	// The money path saw every notice.
	if len(ts.sink.events) != 5 {
		t.Fatalf("sink events %v", ts.sink.events)
	}
}

// A notice whose segment was changed teaches no curve: g= is bound to the
// bid's token, so one notice URL cannot steer another segment's curve, with
// another bid's g= or a made-up one. It is counted invalid; the money path
// is as before.
func TestShadingBadSegmentIgnored(t *testing.T) {
	ts := newTestServer(t, withShading)
	a := onlyBid(t, decodeResponse(t, ts.bidInTime(firstPrice(t, "a-1"))))
	other := []byte(strings.Replace(string(firstPrice(t, "b-1")), `"pub-3"`, `"pub-4"`, 1))
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(other)))
	segA, segB := segmentParam(t, a.NURL), segmentParam(t, b.NURL)
	kb, _ := shading.ParseKey([]byte(segB[:32]))
	n := func(k shading.Key) int { p, _ := ts.shade.Inspect(k); return p.N }
	bad := []string{"zz", strings.Repeat("0", 32), segA[:31], segB, segB[:32], segB[:32] + segA[32:],
		strings.Repeat("1", 32), segA[:32], segA + "A"}
	for i, g := range bad {
		u := strings.Replace(a.NURL, "&g="+segA, "&g="+g, 1)
		ts.fire(t, u, "2", "", strconv.Itoa(i+1))
	}
	if n(kb) != 0 {
		t.Fatalf("a's notice with b's segment taught b's curve (%d observations)", n(kb))
	}
	if c := ts.shade.Counts(); c != [shading.NumResults]uint64{shading.Invalid: uint64(len(bad))} {
		t.Fatalf("changed segments: counts %v, want %d invalid and nothing learned", c, len(bad))
	}
	ts.fire(t, strings.Replace(a.NURL, "&g="+segA, "&g=", 1), "2", "", "1") // none: not a learning notice
	if c := ts.shade.Counts(); c[shading.Learned] != 0 || c[shading.Invalid] != uint64(len(bad)) {
		t.Fatalf("an empty segment: counts %v", c)
	}
	ts.fire(t, b.LURL, "0", "102", "3") // b's own notice still teaches b
	if n(kb) != 1 {
		t.Fatalf("b's own notice not learned")
	}
	if len(ts.sink.events) != len(bad)+2 {
		t.Fatalf("the money path saw %d notices, want %d", len(ts.sink.events), len(bad)+2)
	}
}

// The same with the real token signer: a bid's own g= teaches its curve,
// one moved from another bid is refused as invalid, and both notices are
// settled as before.
func TestShadingSegmentBoundRealSigner(t *testing.T) {
	s, _ := budgetTestServer(t, withShading)
	ts := &testServer{Server: s}
	body := func(id, pub string) []byte {
		return []byte(strings.Replace(string(firstPrice(t, id)), `"pub-3"`, strconv.Quote(pub), 1))
	}
	a := onlyBid(t, decodeResponse(t, ts.bidInTime(body("real-a", "pub-3"))))
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(body("real-b", "pub-4"))))
	segA, segB := segmentParam(t, a.NURL), segmentParam(t, b.NURL)
	kb, _ := shading.ParseKey([]byte(segB[:32]))
	ts.fire(t, strings.Replace(a.LURL, "&g="+segA, "&g="+segB, 1), "0", "102", "3")
	if p, _ := ts.shade.Inspect(kb); p.N != 0 {
		t.Fatalf("a's loss notice with b's segment taught b's curve")
	}
	ts.fire(t, b.LURL, "0", "102", "3")
	if p, _ := ts.shade.Inspect(kb); p.N != 1 {
		t.Fatalf("b's own notice not learned")
	}
	if c := ts.shade.Counts(); c[shading.Learned] != 1 || c[shading.Invalid] != 1 {
		t.Fatalf("counts %v, want 1 learned, 1 invalid", c)
	}
}

func TestShadeStepExplains(t *testing.T) {
	ts := newTestServer(t, withShading)
	ts.train(t, 12, 1.0)
	bc := ts.getBidCtx()
	defer ts.putBidCtx(bc)
	if err := bc.parser.Parse(firstPrice(t, "explain"), &bc.req); err != nil {
		t.Fatal(err)
	}
	bc.now = time.Now()
	if r := ts.Server.bid(bc, bc.now.Add(time.Second)); r != reasonNone {
		t.Fatalf("no bid: %v", r)
	}
	st := ts.explainShade(bc, bc.best[0].slot)
	if !st.FirstPrice || !st.Enabled || st.Level != "placement" || st.ValueMicros != 2e6 || st.FloorMicros != 5e5 ||
		st.PriceMicros != bc.best[0].price || st.Observations != 12 || len(st.Segment) != 32 {
		t.Fatalf("step %+v, bid %d", st, bc.best[0].price)
	}
	if !(st.WinProbAtPrice > 0 && st.WinProbAtPrice < st.WinProbAtValue && st.ExpectedSurplusMicros > 0) {
		t.Fatalf("curve numbers %+v", st)
	}
}

func BenchmarkShadedPrice(b *testing.B) {
	ts := newTestServer(b, withShading)
	key := shading.KeyOf(shading.Segment{Currency: []byte("USD"), Publisher: []byte("pub-3"), Placement: []byte("1"), Format: shading.FormatBanner})
	for i := 0; i < 10; i++ {
		ts.shade.Observe(shading.Observation{Key: key, Bid: 2e6, MinToWin: 1e6 * (1 + 0.1*float64(i%3))}, time.Now())
	}
	bc := ts.getBidCtx()
	if err := bc.parser.Parse([]byte(strings.Replace(string(readReq(b, "site-banner.json")), `"at":2`, `"at":1`, 1)), &bc.req); err != nil {
		b.Fatal(err)
	}
	bc.now = time.Now()
	if r := ts.Server.bid(bc, bc.now.Add(time.Hour)); r != reasonNone || !bc.shade[0].warm {
		b.Fatalf("no warm bid: %v", r)
	}
	b.ReportAllocs()
	for b.Loop() {
		bc.shade[0].set = false // look the curve up again each time
		ts.shadedPrice(bc, 0, -1)
	}
}

// POST /admin/explain prices a first-price request with the learned curve,
// as the bid path does: same winner, same shaded price, and the curve that
// chose it.
func TestExplainShowsLearnedShading(t *testing.T) {
	ts := newTestServer(t, withShading)
	ts.train(t, 12, 1.0)
	var p ortb.Parser
	var req ortb.Request
	if err := p.Parse(firstPrice(t, "explain"), &req); err != nil {
		t.Fatal(err)
	}
	a, code := ts.Server.explain(&req, explainOptions{now: time.Now(), top: 1})
	if code != 200 || !a.Bid || len(a.Imps) != 1 {
		t.Fatalf("explain: %d %s %s", code, a.NoBidReason, a)
	}
	b := onlyBid(t, decodeResponse(t, ts.bidInTime(firstPrice(t, "bid"))))
	ei := a.Imps[0]
	if ei.Winner != b.CID || ei.PriceMicros != int64(math.Round(b.Price*1e6)) {
		t.Fatalf("explained %s at %d micros, bid %s at %v", ei.Winner, ei.PriceMicros, b.CID, b.Price)
	}
	for _, e := range ei.Campaigns {
		if !e.Winner {
			continue
		}
		sh := e.Shading
		if sh == nil || sh.Mode != "learned" || sh.Curve == nil || sh.Curve.Level != "placement" ||
			sh.Curve.PriceMicros != ei.PriceMicros || !(sh.Factor > 0 && sh.Factor < 1) {
			t.Fatalf("winner's shading %+v (curve %+v)", sh, sh.Curve)
		}
		return
	}
	t.Fatalf("no winner entry: %s", a)
}

// A segment's exchange is a configured exchanges.NAME: a name not
// configured learns in the defaults' segment, so a request cannot mint
// segments by inventing names.
func TestShadeSegmentExchangeIsConfigured(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		withShading(c)
		c.Exchanges = map[string]ExchangeConfig{"adx": {}}
	})
	key := func(name string) shading.Key {
		bc := ts.getBidCtx()
		defer ts.putBidCtx(bc)
		if err := bc.parser.Parse(firstPrice(t, "seg"), &bc.req); err != nil {
			t.Fatal(err)
		}
		bc.ex, bc.resp = ts.exchangeNamed([]byte(name)), []byte("USD")
		return ts.impShadeOf(bc, 0).key
	}
	def, unknown, adx := key(""), key("made-up"), key("adx")
	if def != unknown {
		t.Errorf("an unconfigured exchange name got its own segment")
	}
	if def == adx {
		t.Errorf("a configured exchange shares the defaults' segment")
	}
}

// A replayed notice, or a bill raising its win's price, is not learned
// again after the model's window of recent impressions has forgotten the
// impression: the money path's verdict that it is not the impression's
// first stops it, for as long as notices are accepted at all. Without
// that, a holder of one notice URL could move a curve every few seconds
// with a made-up minimum to win.
func TestShadingReplayAfterTheWindowIsNotLearned(t *testing.T) {
	ts := newTestServer(t, withShading)
	a, b, ka, kb := twoSegmentBids(t, ts, "r-1", "r-2")
	n := func(k shading.Key) int { p, _ := ts.shade.Inspect(k); return p.N }

	ts.fire(t, a.NURL, "1.5", "", "1.25")
	ts.fire(t, b.LURL, "3", "102", "")
	if n(ka) != 1 || n(kb) != 1 {
		t.Fatalf("first notices: a %d, b %d observations, want 1 and 1", n(ka), n(kb))
	}
	// Other impressions take every slot of the model's window.
	for id := uint64(1); id <= 1<<16; id++ {
		ts.shade.Observe(shading.Observation{Key: shading.Key{Placement: 7, Publisher: 7}, ID: id, Bid: 1e6}, time.Now())
	}
	ts.fire(t, a.NURL, "1.5", "", "0.5") // the same win, a made-up min to win
	ts.fire(t, a.BURL, "2", "", "")      // its bill, at a higher price: not news about winning
	ts.fire(t, b.LURL, "3", "102", "")
	if n(ka) != 1 || n(kb) != 1 {
		t.Fatalf("after the replays: a %d, b %d observations, want 1 and 1", n(ka), n(kb))
	}
	if p, _ := ts.shade.Inspect(ka); math.Abs(p.Mu-math.Log(1.25e6)) > 1e-9 {
		t.Fatalf("a's curve moved to %v by a replay", p.Mu)
	}
}

// exchanges.NAME.macros.min_to_win: "none" asks an exchange for no m= (its
// minimum-to-win reports tracked the bid and ratcheted the curve up: the
// pricing audit), and the curve then learns from outcomes alone; another
// macro is put in its place.
func TestShadingMinToWinMacro(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		withShading(c)
		c.Exchanges = map[string]ExchangeConfig{
			"outcomes": {Macros: MacrosConfig{MinToWin: "none"}},
			"own":      {Macros: MacrosConfig{MinToWin: "{MTW}"}},
		}
	})
	for _, tc := range []struct{ path, want string }{
		{"/openrtb2/bid?exchange=outcomes", "&g="},
		{"/openrtb2/bid?exchange=own", "&m={MTW}&g="},
		{"/openrtb2/bid", "&m=${AUCTION_MIN_TO_WIN}&g="},
	} {
		r := ts.do("POST", tc.path, firstPrice(t, "mtw-"+tc.path))
		if r.StatusCode() != 200 {
			t.Fatalf("%s: %d %s", tc.path, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		}
		b := onlyBid(t, decodeResponse(t, r))
		for _, u := range []string{b.NURL, b.BURL, b.LURL} {
			if !strings.Contains(u, tc.want) || tc.want == "&g=" && strings.Contains(u, "&m=") {
				t.Errorf("%s: notice URL %q, want %q", tc.path, u, tc.want)
			}
		}
	}
	// Without m=, a win is learned, as its outcome.
	before := ts.shade.Counts()[shading.Learned]
	b := onlyBid(t, decodeResponse(t, ts.do("POST", "/openrtb2/bid?exchange=outcomes", firstPrice(t, "mtw-learn"))))
	ts.fire(t, b.NURL, "2", "", "")
	if after := ts.shade.Counts()[shading.Learned]; after != before+1 {
		t.Errorf("a win without m=: learned %d -> %d, want one more", before, after)
	}
}

// A notice of an exchange that asks no minimum bid to win (macros.
// min_to_win: none) is learned as its outcome alone, even when an m= is
// added to it: its g= says the bid asked none (segSepNoMTW), bound to the
// token, so moving it to the other form is refused. Before, the token did
// not record the setting and an added m= was learned from (an outside
// audit).
func TestShadingMinToWinNoneIgnoresAnAddedM(t *testing.T) {
	cfg := func(c *Config) {
		withShading(c)
		c.Exchanges = map[string]ExchangeConfig{"outcomes": {Macros: MacrosConfig{MinToWin: "none"}}}
	}
	// Two servers with the same keys learn one win each: as given, and with
	// m=0.10 added. Their curves must be the same where m= is not asked,
	// and differ where it is (the check can see an m= read).
	curve := func(path, add string) (shading.Curve, string) { // add: "" or "&m=..."
		ts := newTestServer(t, cfg)
		b := onlyBid(t, decodeResponse(t, ts.do("POST", path, firstPrice(t, "mtw-none"))))
		g := b.NURL[strings.Index(b.NURL, "&g=")+3:]
		key, _, _, ok := splitSegment([]byte(g))
		if !ok {
			t.Fatalf("%s: g= %q", path, g)
		}
		if strings.Contains(b.NURL, "${AUCTION_MIN_TO_WIN}") {
			ts.fire(t, b.NURL, "2", "", strings.TrimPrefix(add, "&m=")) // the exchange fills it
		} else {
			ts.fire(t, b.NURL+add, "2", "", "")
		}
		p, _ := ts.shade.Inspect(key)
		return p, g
	}
	for _, c := range []struct {
		path string
		same bool
	}{
		{"/openrtb2/bid?exchange=outcomes", true},
		{"/openrtb2/bid", false},
	} {
		plain, _ := curve(c.path, "")
		added, g := curve(c.path, "&m=0.10")
		if plain.N != 1 || added.N != 1 {
			t.Fatalf("%s: observations %d and %d, want 1 each", c.path, plain.N, added.N)
		}
		if same := math.Abs(plain.Mu-added.Mu) < 1e-9; same != c.same {
			t.Errorf("%s (g=%s): mu %v as given, %v with m=0.10 added; want the same: %v", c.path, g, plain.Mu, added.Mu, c.same)
		}
	}
	// The g= of such a bid moved to the form that reads m=: not bound.
	ts := newTestServer(t, cfg)
	b := onlyBid(t, decodeResponse(t, ts.do("POST", "/openrtb2/bid?exchange=outcomes", firstPrice(t, "mtw-moved"))))
	if !strings.Contains(b.NURL, string(segSepNoMTW)) {
		t.Fatalf("nurl %q has no %q", b.NURL, segSepNoMTW)
	}
	before := ts.shade.Counts()
	ts.fire(t, strings.Replace(b.NURL, string(segSepNoMTW), string(segSep), 1)+"&m=0.10", "2", "", "")
	after := ts.shade.Counts()
	if after[shading.Learned] != before[shading.Learned] || after[shading.Invalid] != before[shading.Invalid]+1 {
		t.Errorf("a moved g=: learned %d -> %d, invalid %d -> %d; want it refused", before[shading.Learned], after[shading.Learned],
			before[shading.Invalid], after[shading.Invalid])
	}
}

// A loss notice that comes after notices.dedup_window.loss has passed since
// its bid is not learned: the money path may have forgotten the impression
// by then (a loss notice is accepted for token_ttl, 24h, but its impression
// remembered for dedup_window.loss, 15m), so a replay could not be told
// from a first notice, and the model's own window of recent impressions is
// evicted by other traffic (or by the sender's own notices). Before, two
// loss URLs whose impression ids share a slot of that window, replayed in
// turn every dedup_window.loss, were each learned again every time with a
// made-up m= (reproduced against a running bidder with dedup_window 3s:
// learned 1, 2, 3, ... 8 for two URLs). A bill may still come as late as
// the longest window, and is learned.
func TestShadingLossAfterTheDedupWindowIsNotLearned(t *testing.T) {
	const w = 50 * time.Millisecond
	ts := newTestServer(t, func(c *Config) {
		withShading(c)
		c.Notices.DedupWindow = DedupWindowConfig{Win: time.Hour, Bill: time.Hour, Loss: w}
	})
	a, b, ka, kb := twoSegmentBids(t, ts, "r-1", "r-2")
	n := func(k shading.Key) int { p, _ := ts.shade.Inspect(k); return p.N }

	ts.fire(t, a.LURL, "3", "102", "2.5")
	if n(ka) != 1 {
		t.Fatalf("first loss: %d observations, want 1", n(ka))
	}
	mu0, _ := ts.shade.Inspect(ka)
	time.Sleep(2 * w)
	// What the budget does once the loss window has passed: the impression
	// is forgotten, and a replay reads as a first notice.
	ts.sink.mu.Lock()
	ts.sink.lost, ts.sink.charges = nil, nil
	ts.sink.mu.Unlock()
	// Other impressions take every slot of the model's window.
	for id := uint64(1); id <= 1<<16; id++ {
		ts.shade.Observe(shading.Observation{Key: shading.Key{Placement: 7, Publisher: 7}, ID: id, Bid: 1e6}, time.Now())
	}
	ts.fire(t, a.LURL, "3", "102", "30") // the same loss, a made-up min to win
	if n(ka) != 1 {
		t.Fatalf("after the window: a %d observations, want 1", n(ka))
	}
	if p, _ := ts.shade.Inspect(ka); p.Mu != mu0.Mu {
		t.Fatalf("a's curve moved from %v to %v by a replay", mu0.Mu, p.Mu)
	}
	ts.fire(t, b.BURL, "1.5", "", "1.25") // b's first notice: a bill, late but within the bill window
	if n(kb) != 1 {
		t.Fatalf("a late bill: b %d observations, want 1", n(kb))
	}
}
