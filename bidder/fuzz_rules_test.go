package bidder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/campaigns"
)

// FuzzBidKeepsTheRules edits real requests (the example, testdata/requests)
// with a program of edits read from the fuzz input: floors and their
// currencies, deals (repeated ids included), block lists, attributes, sizes,
// video and audio constraints, currencies, auction type, repeated imps. Any
// 200 must keep the request's rules (oracleCheck, as TestSampleBidsKeepTheRules
// checks them), and a deal bid must keep every listing of its deal id: the
// bid names the deal by id alone.
func FuzzBidKeepsTheRules(f *testing.F) {
	var bodies []map[string]any
	files, _ := filepath.Glob("testdata/requests/*.json")
	files = append([]string{"../configs/examples/bid-request.json"}, files...)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			bodies = append(bodies, m)
		}
	}
	if len(bodies) == 0 {
		f.Fatal("no requests")
	}
	rates := map[string]float64{"USD": 1, "EUR": 1.08, "GBP": 1.27}
	ts := newTestServer(f, func(c *Config) {
		c.Currency.Rates = rates
		c.Exchanges = map[string]ExchangeConfig{"example-adx": {}} // luxemotors-pmp's deals are there
	})
	snap, err := campaigns.LoadDir("../configs/campaigns", campaigns.WithSeat("openbidder"))
	if err != nil {
		f.Fatal(err)
	}
	if err := ts.SetCampaigns(snap); err != nil {
		f.Fatal(err)
	}
	var cats, advs []any
	for _, c := range snap.Campaigns {
		for _, a := range c.ADomain {
			advs = append(advs, a)
		}
		for _, cr := range c.Creatives {
			for _, k := range cr.Cat {
				cats = append(cats, k)
			}
		}
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte{10, 0, 11, 5, 10, 0})               // deal-1 twice, the first with a floor of 20
	f.Add(uint8(0), []byte{10, 0, 12, 2, 10, 0, 12, 4, 15, 1}) // deal-1 twice at fixed prices 5 and 12
	f.Add(uint8(1), []byte{1, 4, 3, 2, 5, 7, 6, 1})            // floors, bcat, battr
	f.Add(uint8(2), []byte{7, 3, 8, 1, 9, 2})
	f.Fuzz(func(t *testing.T, which uint8, prog []byte) {
		if len(prog) > 64 {
			prog = prog[:64]
		}
		var m map[string]any
		b, _ := json.Marshal(bodies[int(which)%len(bodies)])
		json.Unmarshal(b, &m)
		m["tmax"] = 5000
		for i := 0; i+1 < len(prog); i += 2 {
			fuzzEdit(m, prog[i], prog[i+1], cats, advs)
		}
		body, _ := json.Marshal(m)
		r := ts.do("POST", "/openrtb2/bid?exchange=example-adx", body, "x-openrtb-version", "2.6")
		if r.StatusCode() != 200 {
			return
		}
		var req openrtb2.BidRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		resp := decodeResponse(t, r)
		probs := oracleCheck(&req, resp, rates, oracleMutation{name: "fuzz"})
		probs = append(probs, everyDealListing(&req, resp, rates)...)
		for _, p := range probs {
			t.Errorf("%s\nrequest: %s", p, body)
		}
	})
}

// fuzzEdit applies one edit (op, arg) to the request m.
func fuzzEdit(m map[string]any, op, arg byte, cats, advs []any) {
	floors := []any{0.0, 0.5, 5.0, 9.0, 12.0, 20.0, 1e-7, -1.0, 8.999999}
	curs := []any{"USD", "EUR", "GBP", "JPY", ""}
	dealIDs := []any{"deal-1", "deal-2", "nope"}
	imps, _ := m["imp"].([]any)
	var imp map[string]any
	if len(imps) > 0 {
		imp, _ = imps[int(arg>>6)%len(imps)].(map[string]any)
	}
	pick := func(l []any) any { return l[int(arg)%len(l)] }
	deals := func() []any {
		if imp == nil {
			return nil
		}
		pmp, _ := imp["pmp"].(map[string]any)
		if pmp == nil {
			pmp = map[string]any{}
			imp["pmp"] = pmp
		}
		d, _ := pmp["deals"].([]any)
		return d
	}
	setDeals := func(d []any) {
		if imp != nil {
			imp["pmp"].(map[string]any)["deals"] = d
		}
	}
	lastDeal := func() map[string]any {
		d := deals()
		if len(d) == 0 {
			return nil
		}
		x, _ := d[len(d)-1].(map[string]any)
		return x
	}
	switch op % 16 {
	case 0:
		if imp != nil {
			imp["bidfloor"] = pick(floors)
		}
	case 1:
		if imp != nil {
			imp["bidfloorcur"] = pick(curs)
		}
	case 2:
		m["bcat"] = append(asList(m["bcat"]), pick(cats))
	case 3:
		m["badv"] = append(asList(m["badv"]), strings.ToUpper(pick(advs).(string)))
	case 4:
		if imp != nil {
			for _, k := range []string{"banner", "video", "audio", "native"} {
				if o, ok := imp[k].(map[string]any); ok {
					o["battr"] = append(asList(o["battr"]), int(arg%18))
				}
			}
		}
	case 5:
		sizes := [][2]int{{300, 250}, {728, 90}, {320, 50}, {300, 600}, {970, 250}, {160, 600}, {320, 480}, {1, 1}}
		if imp != nil {
			if o, ok := imp["banner"].(map[string]any); ok {
				s := sizes[int(arg)%len(sizes)]
				if arg&0x20 != 0 {
					o["w"], o["h"] = s[0], s[1]
					delete(o, "format")
				} else {
					o["format"] = []any{map[string]any{"w": s[0], "h": s[1]}}
					delete(o, "w")
					delete(o, "h")
				}
			}
		}
	case 6:
		if imp != nil {
			for _, k := range []string{"video", "audio"} {
				if o, ok := imp[k].(map[string]any); ok {
					switch arg % 4 {
					case 0:
						o["maxduration"] = int(arg%40) + 1
					case 1:
						o["minduration"] = int(arg % 40)
					case 2:
						o["protocols"] = []any{int(arg%10) + 1}
					case 3:
						o["mimes"] = []any{pick([]any{"video/mp4", "video/webm", "audio/mpeg", "audio/mp4"})}
					}
				}
			}
		}
	case 7:
		m["cur"] = []any{pick(curs)}
	case 8:
		m["at"] = int(arg%3) + 1
	case 9:
		if len(imps) > 0 && len(imps) < 4 {
			b, _ := json.Marshal(imps[0])
			var c any
			json.Unmarshal(b, &c)
			m["imp"] = append(imps, c)
		}
	case 10:
		setDeals(append(deals(), map[string]any{"id": pick(dealIDs)}))
	case 11:
		if d := lastDeal(); d != nil {
			d["bidfloor"] = pick(floors)
		}
	case 12:
		if d := lastDeal(); d != nil {
			d["at"] = 3
			d["bidfloor"] = pick(floors)
		}
	case 13:
		if d := lastDeal(); d != nil {
			d["wseat"] = []any{pick([]any{"openbidder", "someone-else"})}
		}
	case 14:
		if d := lastDeal(); d != nil {
			d["wadomain"] = []any{pick(append([]any{"nobody.example"}, advs...))}
		}
	case 15:
		if imp != nil {
			if pmp, ok := imp["pmp"].(map[string]any); ok {
				pmp["private_auction"] = int(arg % 2)
			}
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// everyDealListing lists what a deal bid breaks of any listing of its deal
// id in its imp: each listing's floor (with its fixed price), seat and
// advertisers.
func everyDealListing(req *openrtb2.BidRequest, resp *openrtb2.BidResponse, rates map[string]float64) []string {
	var out []string
	cur := resp.Cur
	if cur == "" {
		cur = "USD"
	}
	for _, sb := range resp.SeatBid {
		for _, b := range sb.Bid {
			if b.DealID == "" {
				continue
			}
			for _, imp := range req.Imp {
				if imp.ID != b.ImpID || imp.PMP == nil {
					continue
				}
				for _, d := range imp.PMP.Deals {
					if d.ID != b.DealID {
						continue
					}
					if len(d.WSeat) > 0 && !slicesContains(d.WSeat, sb.Seat) {
						out = append(out, fmt.Sprintf("bid on deal %s, one listing of which is for seats %v", d.ID, d.WSeat))
					}
					if len(d.WADomain) > 0 {
						for _, a := range b.ADomain {
							if !foldContains(d.WADomain, a) {
								out = append(out, fmt.Sprintf("bid on deal %s for %s, one listing of which allows %v", d.ID, a, d.WADomain))
							}
						}
					}
					fcur := d.BidFloorCur
					if fcur == "" {
						fcur = "USD"
					}
					floor := d.BidFloor
					if floor <= 0 {
						floor, fcur = imp.BidFloor, imp.BidFloorCur
						if fcur == "" {
							fcur = "USD"
						}
					}
					if fr, ok := rates[fcur]; ok && floor > 0 {
						min := floor * fr / rates[cur]
						if b.Price < min*(1-1e-12) {
							out = append(out, fmt.Sprintf("price %v %s under a listing of deal %s at %v %s", b.Price, cur, d.ID, floor, fcur))
						}
						if d.AT == 3 && d.BidFloor > 0 && b.Price > min+1e-6 {
							out = append(out, fmt.Sprintf("price %v %s over a fixed-price listing of deal %s at %v %s", b.Price, cur, d.ID, floor, fcur))
						}
					}
				}
			}
		}
	}
	return out
}

// A deal id listed twice in one imp gets no bid on that deal: the bid names
// the deal by id alone, and the exchange may hold it to either listing's
// floor, fixed price, seats or advertisers. Before, the bidder took the
// listing it could clear: deal-1 at a floor of 20 and again without one got
// 9 on deal-1, fixed prices of 5 and 12 got 5 (an outside audit).
func TestRepeatedDealIDGetsNoDealBid(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Exchanges = map[string]ExchangeConfig{"example-adx": {}} })
	snap, err := campaigns.LoadDir("../configs/campaigns", campaigns.WithSeat("openbidder"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../configs/examples/bid-request.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(deals []any) *openrtb2.BidResponse {
		var m map[string]any
		json.Unmarshal(raw, &m)
		m["tmax"] = 5000
		m["imp"].([]any)[0].(map[string]any)["pmp"] = map[string]any{"private_auction": 1, "deals": deals}
		body, _ := json.Marshal(m)
		r := ts.do("POST", "/openrtb2/bid?exchange=example-adx", body)
		if r.StatusCode() != 200 {
			return nil
		}
		return decodeResponse(t, r)
	}
	d := func(kv ...any) map[string]any {
		m := map[string]any{"id": "deal-1"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	if resp := post([]any{d()}); resp == nil || onlyBid(t, resp).DealID != "deal-1" {
		t.Fatalf("deal-1 listed once: no bid on it (%+v)", resp)
	}
	for name, deals := range map[string][]any{
		"floor 20, then none":            {d("bidfloor", 20), d()},
		"none, then floor 20":            {d(), d("bidfloor", 20)},
		"fixed 5, then fixed 12":         {d("at", 3, "bidfloor", 5), d("at", 3, "bidfloor", 12)},
		"another seat's, then ours":      {d("wseat", []any{"someone-else"}), d()},
		"another advertiser's, then any": {d("wadomain", []any{"nobody.example"}), d()},
		"the same twice":                 {d(), d()},
		"among others":                   {map[string]any{"id": "x"}, d("bidfloor", 20), map[string]any{"id": "y"}, d()},
	} {
		if resp := post(deals); resp != nil {
			for _, sb := range resp.SeatBid {
				for _, b := range sb.Bid {
					if b.DealID == "deal-1" {
						t.Errorf("%s: bid %v on deal-1", name, b.Price)
					}
				}
			}
		}
	}
	// Another deal of the imp, listed once, still bids.
	if resp := post([]any{d("bidfloor", 20), d(), map[string]any{"id": "deal-2"}}); resp == nil || onlyBid(t, resp).DealID != "deal-2" {
		t.Fatalf("deal-2 beside a repeated deal-1: no bid on it (%+v)", resp)
	}
}
