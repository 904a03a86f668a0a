package bidder

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ortb"
)

// postExplain sends a request to POST /admin/explain and decodes the answer.
func postExplain(t *testing.T, url, token string, body []byte) (int, *explainAnswer) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-openrtb-version", "2.6")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	var a explainAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("explain: %v: %s", err, b)
	}
	return resp.StatusCode, &a
}

func findCampaign(a *explainAnswer, id string) *explainCampaign {
	for i := range a.Imps {
		for k := range a.Imps[i].Campaigns {
			if e := &a.Imps[i].Campaigns[k]; e.ID == id {
				return e
			}
		}
	}
	return nil
}

// budgetMoneyState is what a bid's hold, or a pacing draw's demand, would
// change in /admin/budget and the counters.
func budgetMoneyState(app *App) (held, spent int64, c budget.Counters) {
	for _, st := range app.budget.Status() {
		held += st.HeldMicros
		spent += st.SpentMicros
	}
	c = app.budget.Counters()
	c.LeaseSteps, c.LeaseGrants, c.LeaseDenials, c.LedgerGroups = 0, 0, 0, 0 // the sync loop's own work
	return held, spent, c
}

// The example campaigns and the example request: explain names the rule
// that drops each campaign, prices the rest, places no hold, and its
// highest price is the bid /openrtb2/bid then answers, campaign and price.
func TestExplainExampleRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"gbdt", nil},
		{"onnx>gbdt", func(c *Config) { c.Model.ONNXLibrary = "../lib/onnxruntime/libonnxruntime.so.1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.edit != nil {
				if _, err := os.Stat("../lib/onnxruntime/libonnxruntime.so.1"); err != nil {
					t.Skip("no ONNX Runtime library (make onnxruntime)")
				}
			}
			app := startApp(t, func(c *Config) {
				c.CampaignsDir = "../configs/campaigns"
				if tc.edit != nil {
					tc.edit(c)
				}
			})
			body, err := os.ReadFile("../configs/examples/bid-request.json")
			if err != nil {
				t.Fatal(err)
			}
			held0, spent0, c0 := budgetMoneyState(app)
			code, a := postExplain(t, "http://"+app.AdminAddr()+"/admin/explain?all=1", "", body)
			if code != 200 {
				t.Fatalf("explain: %d", code)
			}
			if held, spent, c := budgetMoneyState(app); held != held0 || spent != spent0 || c != c0 {
				t.Errorf("explain changed the budget: held %d->%d spent %d->%d counters %+v -> %+v", held0, held, spent0, spent, c0, c)
			}
			models := 1
			if app.onnx != nil { // once ONNX Runtime is loaded in the process, the default path finds it too
				models = 2
			}
			checkExplainExample(t, a, models)
			// The bid: the same campaign, creative and price.
			code, resp, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body)
			if code != 200 {
				t.Fatalf("bid: %d %s (explain said %v %s)", code, why, a.Bid, a.NoBidReason)
			}
			var br openrtb2.BidResponse
			if err := json.Unmarshal(resp, &br); err != nil {
				t.Fatal(err)
			}
			b := br.SeatBid[0].Bid[0]
			w := a.Imps[0]
			if b.CID != w.Winner || b.CrID != w.Creative || int64(math.Round(b.Price*1e6)) != w.PriceMicros {
				t.Errorf("bid %s/%s at %v; explain's best %s/%s at %d micros", b.CID, b.CrID, b.Price, w.Winner, w.Creative, w.PriceMicros)
			}
			// Explained after the bid, the bid's hold shows and the winner is the same.
			if held, _, _ := budgetMoneyState(app); held == held0 {
				t.Error("the bid placed no hold")
			}
		})
	}
}

func checkExplainExample(t *testing.T, a *explainAnswer, models int) {
	t.Helper()
	if !a.Bid || len(a.Imps) != 1 || a.Imps[0].Winner == "" || a.Currency.Response != "USD" || a.Privacy.Reason == "" {
		t.Fatalf("answer: bid %v imps %d reason %q currency %+v privacy %+v: %s", a.Bid, len(a.Imps), a.NoBidReason, a.Currency, a.Privacy, a)
	}
	if len(a.Models) != models {
		t.Errorf("models %+v, want %d", a.Models, models)
	}
	// Dropped by targeting: Japan only (country), paused, the breakfast
	// daypart is not checked here (it depends on the hour).
	for id, rule := range map[string]string{"sakura-japan-desktop": "country", "travelco-uk-cpc": "country", "wintersale-paused": "status",
		"streamly-video": "format", "podwave-audio": "format"} {
		e := findCampaign(a, id)
		if e == nil || e.Status != "dropped" || e.Rule != rule {
			t.Errorf("%s: %+v, want dropped by %s", id, e, rule)
		}
	}
	priced := 0
	for _, e := range a.Imps[0].Campaigns {
		if e.Status != "priced" {
			continue
		}
		priced++
		if len(e.Features) != 41 || len(e.PCTR) != len(a.Models) || e.ModelUsed == "" || e.Budget == nil || e.Shading == nil {
			t.Errorf("%s priced without its figures: %+v", e.ID, e)
		}
		for _, m := range a.Models {
			c := e.Contributions[m.Name]
			if !m.Explained || c == nil || len(c.Top) == 0 || c.Error != "" {
				t.Errorf("%s: model %s: contributions %+v", e.ID, m.Name, c)
				continue
			}
			// The explanation adds up to the model's prediction.
			if p := 1 / (1 + math.Exp(-c.Logit)); math.Abs(p-e.PCTR[m.Name]) > 1e-5 {
				t.Errorf("%s: model %s: contributions add up to %v, pctr %v", e.ID, m.Name, p, e.PCTR[m.Name])
			}
		}
		if e.Budget.Decision != budget.DecisionOK {
			t.Errorf("%s priced with budget %v", e.ID, e.Budget.Decision)
		}
	}
	if priced == 0 {
		t.Fatalf("nothing priced: %s", a)
	}
}

// moneyCalls counts the bid path's money calls that change state; explain
// must make none.
type moneyCalls struct {
	fakeMoney
	allows, holds, explains int
}

func (m *moneyCalls) allow(ci int, maxCharge int64, now time.Time, _ uint64) reason {
	m.allows++
	return reasonNone
}

func (m *moneyCalls) hold(ci int, amount int64, user uint64, now time.Time) (uint64, reason) {
	m.holds++
	return 1, reasonNone
}

func (m *moneyCalls) explain(ci int, maxCharge int64, now time.Time, _ uint64) budget.Explanation {
	m.explains++
	return budget.Explanation{Decision: budget.DecisionOK, Participation: 1, NextDraw: true}
}

// Explain asks the budget its side-effect-free question, never Allow or
// Hold, and counts nothing in the bid path's metrics.
func TestExplainTakesNoDrawAndPlacesNoHold(t *testing.T) {
	ts := newTestServer(t, nil)
	mc := &moneyCalls{}
	ts.Server.bind = func(*campaigns.Snapshot) (money, error) { return mc, nil }
	if err := ts.SetCampaigns(ts.catalog.Load().snap); err != nil {
		t.Fatal(err)
	}
	var p ortb.Parser
	var req ortb.Request
	if err := p.Parse(readReq(t, "site-banner.json"), &req); err != nil {
		t.Fatal(err)
	}
	before := ts.m.requests.load() + ts.m.bids.load()
	a, code := ts.Server.explain(&req, explainOptions{now: time.Now(), top: 3})
	if code != 200 || !a.Bid {
		t.Fatalf("explain: %d %s %s", code, a.NoBidReason, a)
	}
	if mc.allows != 0 || mc.holds != 0 || mc.explains == 0 {
		t.Errorf("allow %d, hold %d, explain %d calls", mc.allows, mc.holds, mc.explains)
	}
	if after := ts.m.requests.load() + ts.m.bids.load(); after != before {
		t.Errorf("explain counted requests or bids: %d -> %d", before, after)
	}
	// The test server's bid agrees.
	resp := ts.bidInTime(readReq(t, "site-banner.json"))
	br := decodeResponse(t, resp)
	if b := onlyBid(t, br); b.CID != a.Imps[0].Winner || int64(math.Round(b.Price*1e6)) != a.Imps[0].PriceMicros {
		t.Errorf("bid %s at %v, explain %s at %d", b.CID, b.Price, a.Imps[0].Winner, a.Imps[0].PriceMicros)
	}
}

// The kill switch: a paused campaign's candidates are gated "paused" (and
// not counted as refused), all paused explains a 204 paused; explain agrees
// with the bid path at each step.
func TestExplainKillSwitch(t *testing.T) {
	ts := newTestServer(t, nil)
	ctl := newFakeControl()
	ts.followControl(ctl)
	var p ortb.Parser
	explain := func() *explainAnswer {
		t.Helper()
		var req ortb.Request
		if err := p.Parse(readReq(t, "site-banner.json"), &req); err != nil {
			t.Fatal(err)
		}
		a, code := ts.Server.explain(&req, explainOptions{now: time.Now(), top: 3})
		if code != 200 {
			t.Fatalf("explain: %d", code)
		}
		return a
	}
	bidNoBid := func() string {
		t.Helper()
		r := ts.bidInTime(readReq(t, "site-banner.json"))
		if r.StatusCode() != 200 {
			return string(r.Header.Peek("x-nobid-reason"))
		}
		return onlyBid(t, decodeResponse(t, r)).CID
	}

	if a := explain(); !a.Bid || a.Imps[0].Winner != "acme-banner" || bidNoBid() != "acme-banner" {
		t.Fatalf("before any pause: explain %v %q", a.Bid, a.Imps[0].Winner)
	}
	ctl.set("acme-banner", true)
	counted := ts.pausedCandidates("acme-banner")
	a := explain()
	if e := findCampaign(a, "acme-banner"); e == nil || e.Status != "gated" || e.Rule != "paused" {
		t.Fatalf("acme paused: %+v", e)
	}
	if ts.pausedCandidates("acme-banner") != counted {
		t.Error("explain counted a paused candidate")
	}
	if a.Bid || a.NoBidReason != "paused" || bidNoBid() != "paused" {
		t.Errorf("acme paused: explain bid %v %q, the bid path %q", a.Bid, a.NoBidReason, bidNoBid())
	}
	// Two imps, each with its own reason: the last imp's names the
	// request's, in explain as in the bid path (explain kept the first
	// imp's: a review).
	two := bytes.Replace(readReq(t, "site-banner.json"), []byte(`"imp":[`),
		[]byte(`"imp":[{"id":"0","banner":{"w":320,"h":50},"bidfloor":20,"bidfloorcur":"USD","secure":1},`), 1)
	var req ortb.Request
	if err := p.Parse(two, &req); err != nil {
		t.Fatal(err)
	}
	a, _ = ts.Server.explain(&req, explainOptions{now: time.Now(), top: 3})
	r := ts.bidInTime(two)
	if got := string(r.Header.Peek("x-nobid-reason")); r.StatusCode() != 204 || got != "paused" || a.NoBidReason != got {
		t.Errorf("imp 0 under its floor, imp 1 paused: bid path %d %q, explain %q; want paused from both", r.StatusCode(), got, a.NoBidReason)
	}
	ctl.set("acme-banner", false)
	ctl.set("", true)
	if a := explain(); a.Bid || a.NoBidReason != "paused" || len(a.Imps) != 0 || bidNoBid() != "paused" {
		t.Errorf("all paused: explain bid %v %q, %d imps", a.Bid, a.NoBidReason, len(a.Imps))
	}
	ctl.set("", false)
	if a := explain(); !a.Bid || a.Imps[0].Winner != "acme-banner" {
		t.Errorf("resumed: explain %v %q", a.Bid, a.NoBidReason)
	}
}

// A body over max_body_bytes gets 413 on the admin listener too, read by
// clients that send the whole body first (it was a reset: broken pipe).
func TestExplainBodyTooLarge(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH: skipping the Python client check")
	}
	app := startApp(t, nil)
	// 8 MiB: more than the loopback socket buffers take in, so the client
	// is still sending when the server answers.
	pythonSees413(t, py, app.AdminAddr(), "/admin/explain", 8<<20)
}

// A body the bid path refuses for its count of JSON values is refused by
// explain too, with the same reason: explaining it as a bid described a
// request no exchange could get a bid for (an outside audit).
func TestExplainRefusesTooManyValues(t *testing.T) {
	app := startApp(t, nil)
	body := `{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250}}],"ext":[` + strings.Repeat("1,", 100_000) + `1]}`
	code, resp, why := post(t, "http://"+app.Addr()+"/openrtb2/bid", []byte(body))
	if code != 400 || why != errTooManyValues {
		t.Fatalf("bid path: %d %q %s", code, why, resp)
	}
	req, err := http.NewRequest("POST", "http://"+app.AdminAddr()+"/admin/explain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	got, _ := io.ReadAll(r.Body)
	if r.StatusCode != 400 || strings.TrimSpace(string(got)) != errTooManyValues {
		t.Fatalf("explain: %d %q, want 400 %q", r.StatusCode, got, errTooManyValues)
	}
}

// POST /admin/explain is an admin path: behind the bearer token, POST only.
func TestExplainBehindAdminToken(t *testing.T) {
	app := startApp(t, func(c *Config) { c.AdminToken = "explain-token-0123456789" })
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + app.AdminAddr() + "/admin/explain"
	if code, _ := postExplain(t, url, "", body); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
	if code, _ := postExplain(t, url, "wrong", body); code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d", code)
	}
	code, a := postExplain(t, url, "explain-token-0123456789", body)
	if code != 200 || a.Imps[0].Winner != "acme-banner" {
		t.Fatalf("with the token: %d %v", code, a)
	}
	if code, _ := postExplain(t, url, "explain-token-0123456789", []byte(`{"id":`)); code != http.StatusBadRequest {
		t.Errorf("malformed request: %d", code)
	}
	r, _ := http.NewRequest("GET", url, nil)
	r.Header.Set("Authorization", "Bearer explain-token-0123456789")
	if resp, err := http.DefaultClient.Do(r); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", resp, err)
	}
}

// Explain follows ?exchange=NAME's seat as the bid path does: a request
// whose wseat names only that exchange's seat excludes every campaign by
// seat under the defaults and bids under the exchange.
func TestExplainUsesTheExchangeSeat(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Exchanges = map[string]ExchangeConfig{"adx": {Seat: "adx-seat"}}
	})
	explain := func(exchange string) *explainAnswer {
		var p ortb.Parser
		var req ortb.Request
		if err := p.Parse(readReq(t, "site-banner.json"), &req); err != nil {
			t.Fatal(err)
		}
		req.WSeat = [][]byte{[]byte("adx-seat")}
		a, code := ts.Server.explain(&req, explainOptions{now: time.Now(), ex: ts.exchangeNamed([]byte(exchange))})
		if code != 200 {
			t.Fatalf("explain %q: %d", exchange, code)
		}
		return a
	}
	a := explain("")
	if a.Bid || len(a.Imps) != 1 {
		t.Fatalf("default seat: bid %v, %s", a.Bid, a)
	}
	n := a.Imps[0].NotExamined["seat"]
	for _, e := range a.Imps[0].Campaigns {
		if e.Rule != "seat" {
			t.Fatalf("default seat: %s excluded by %q, want seat", e.ID, e.Rule)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("default seat: no campaign excluded by seat: %s", a)
	}
	if a := explain("adx"); !a.Bid {
		t.Fatalf("adx's seat: no bid (%s): %s", a.NoBidReason, a)
	}
}

// at= past what the campaign clock holds (2262) is refused, not explained
// wrongly.
func TestExplainAtBounds(t *testing.T) {
	app := startApp(t, nil)
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	for at, want := range map[string]int{
		"2300-01-01T00:00:00Z":          http.StatusBadRequest,
		"1900-01-01T00:00:00Z":          http.StatusBadRequest,
		"9999-12-31T23:59:59Z":          http.StatusBadRequest,
		time.Now().Format(time.RFC3339): http.StatusOK,
	} {
		code, _ := postExplain(t, "http://"+app.AdminAddr()+"/admin/explain?at="+url.QueryEscape(at), "", body)
		if code != want {
			t.Errorf("at=%s: %d, want %d", at, code, want)
		}
	}
	// A top= that is not a count is refused, not read as the default
	// (the QA pass: top=-1 answered 200 with 5).
	for top, want := range map[string]int{"-1": http.StatusBadRequest, "x": http.StatusBadRequest,
		"0": http.StatusOK, "2": http.StatusOK} {
		code, _ := postExplain(t, "http://"+app.AdminAddr()+"/admin/explain?top="+top, "", body)
		if code != want {
			t.Errorf("top=%s: %d, want %d", top, code, want)
		}
	}
}

// drawMoney paces by the request's draw: odd draws are paced. It records
// the draws the bid path and explain asked for.
type drawMoney struct {
	fakeMoney
	allowed, explained []uint64
}

func (m *drawMoney) allow(ci int, maxCharge int64, now time.Time, draw uint64) reason {
	m.allowed = append(m.allowed, draw)
	if draw%2 == 1 {
		return reasonPaced
	}
	return reasonNone
}

func (m *drawMoney) explain(ci int, maxCharge int64, now time.Time, draw uint64) budget.Explanation {
	m.explained = append(m.explained, draw)
	if draw%2 == 1 {
		return budget.Explanation{Decision: budget.DecisionPaced, Participation: 0.5}
	}
	return budget.Explanation{Decision: budget.DecisionOK, Participation: 0.5, NextDraw: true}
}

// Every candidate of a request (each creative, each imp) is gated with the
// request's one participation draw, and explain reads the draw the next
// request takes, so explain and the bid agree for paced campaigns (an
// outside audit: one draw per creative and imp made a campaign take part
// in more requests than pacing set, and explain, reading one draw,
// disagreed with the bid on 5-9 of the 813 samples).
func TestExplainAndBidTakeTheRequestsOneDraw(t *testing.T) {
	ts := newTestServer(t, nil)
	dm := &drawMoney{}
	ts.Server.bind = func(*campaigns.Snapshot) (money, error) { return dm, nil }
	if err := ts.SetCampaigns(ts.catalog.Load().snap); err != nil {
		t.Fatal(err)
	}
	body := readReq(t, "multi-imp.json")
	var p ortb.Parser
	bids := 0
	for i := range 6 {
		var a *explainAnswer
		var resp *fasthttp.Response
		for try := 0; ; try++ {
			dm.allowed, dm.explained = dm.allowed[:0], dm.explained[:0]
			var req ortb.Request
			if err := p.Parse(body, &req); err != nil {
				t.Fatal(err)
			}
			var code int
			a, code = ts.Server.explain(&req, explainOptions{now: time.Now(), top: 3})
			if code != 200 || len(dm.explained) < 2 {
				t.Fatalf("round %d: explain %d, asked %d candidates", i, code, len(dm.explained))
			}
			resp = ts.bid(body)
			if try == 5 || resp.StatusCode() != 204 || !stalledReason[string(resp.Header.Peek("x-nobid-reason"))] {
				break
			}
			// A stall of a loaded machine (tmax before the draw, late after
			// it): explain and bid again.
		}
		if len(dm.allowed) < 2 {
			t.Fatalf("round %d: the bid gated %d candidates, want several", i, len(dm.allowed))
		}
		d := dm.explained[0]
		for _, x := range append(append([]uint64(nil), dm.explained...), dm.allowed...) {
			if x != d {
				t.Fatalf("round %d: draws explain %v, bid %v: want one draw, %d", i, dm.explained, dm.allowed, d)
			}
		}
		if got := resp.StatusCode() == 200; got != a.Bid || got != (d%2 == 0) {
			t.Fatalf("round %d, draw %d: bid %v (%d), explain %v", i, d, got, resp.StatusCode(), a.Bid)
		}
		if a.Bid {
			bids++
		}
	}
	if bids == 0 || bids == 6 {
		t.Fatalf("%d of 6 rounds bid: the draws did not alternate", bids)
	}
}

// Explain replays the ad pod: a creative an earlier imp of the pod already
// bids is not an imp's winner, nor is one that would overrun the pod's
// duration or maxseq (podRefuses), so explain names the bids /openrtb2/bid
// makes. Before, each imp's winner was chosen alone: on video-pod.json with
// tvpods, explain named a winner for a slot the bid path leaves empty.
func TestExplainReplaysThePod(t *testing.T) {
	ts := newTestServer(t, nil)
	body, err := os.ReadFile("testdata/requests/video-pod.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, lim := range []string{``, `"poddur":30,`, `"maxseq":1,`} {
		b := bytes.ReplaceAll(body, []byte(`"video":{`), []byte(`"video":{`+lim))
		a := explainBody(t, ts, string(b))
		want := map[string]string{}
		for _, ei := range a.Imps {
			if ei.Winner != "" {
				want[ei.ID] = ei.Creative
			}
		}
		got := map[string]string{}
		if r := ts.bidInTime(b); r.StatusCode() == 200 {
			for _, sb := range decodeResponse(t, r).SeatBid {
				for _, bd := range sb.Bid {
					got[bd.ImpID] = bd.CrID
				}
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: bid %v, explain named %v", lim, got, want)
		}
	}
}
