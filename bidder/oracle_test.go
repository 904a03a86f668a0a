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

// oracleMutation edits a sample request (decoded as a map) before it is
// bid on; privacy says the request allows no user-level data.
type oracleMutation struct {
	name    string
	privacy bool
	nobid   bool            // no bid is allowed at all
	forbid  map[string]bool // creatives (crid) that may not bid
	edit    func(m map[string]any)
}

func oracleImps(m map[string]any, f func(imp map[string]any)) {
	a, _ := m["imp"].([]any)
	for _, x := range a {
		if imp, ok := x.(map[string]any); ok {
			f(imp)
		}
	}
}

func oracleFloor(v any, cur string) func(m map[string]any) {
	return func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			imp["bidfloor"] = v
			if cur == "" {
				delete(imp, "bidfloorcur")
			} else {
				imp["bidfloorcur"] = cur
			}
		})
	}
}

func oracleSegments(regs map[string]any) func(m map[string]any) {
	return func(m map[string]any) {
		u, _ := m["user"].(map[string]any)
		if u == nil {
			u = map[string]any{}
			m["user"] = u
		}
		if u["id"] == nil {
			u["id"] = "oracle-user"
		}
		u["data"] = []any{map[string]any{"id": "d", "segment": []any{map[string]any{"id": "seg-1"}, map[string]any{"id": "seg-2"}}}}
		if regs != nil {
			m["regs"] = regs
		}
	}
}

var oracleMutations = []oracleMutation{
	{name: "as is", edit: func(map[string]any) {}},
	{name: "floor 300 JPY", edit: oracleFloor(300.0, "JPY")},
	{name: "floor 1.5 EUR", edit: oracleFloor(1.5, "EUR")},
	{name: "floor 2 without currency", edit: oracleFloor(2.0, "")},
	{name: "floor in an unknown currency", nobid: true, edit: oracleFloor(0.01, "XXX")},
	{name: "floor 1e-7", edit: oracleFloor(1e-7, "")},
	{name: "floor 1e308", nobid: true, edit: oracleFloor(1e308, "USD")},
	{name: "floor -1", edit: oracleFloor(-1.0, "USD")},
	{name: "cur EUR", edit: func(m map[string]any) { m["cur"] = []any{"EUR"} }},
	{name: "cur JPY, USD", edit: func(m map[string]any) { m["cur"] = []any{"JPY", "USD"} }},
	{name: "cur unknown", nobid: true, edit: func(m map[string]any) { m["cur"] = []any{"XXX"} }},
	{name: "test=1", edit: func(m map[string]any) { m["test"] = 1 }},
	{name: "at=1", edit: func(m map[string]any) { m["at"] = 1 }},
	{name: "repeated imp", edit: func(m map[string]any) {
		if a, _ := m["imp"].([]any); len(a) > 0 {
			b, _ := json.Marshal(a[0])
			var c any
			json.Unmarshal(b, &c)
			m["imp"] = append(a, c)
		}
	}},
	{name: "coppa", nobid: true, edit: func(m map[string]any) { m["regs"] = map[string]any{"coppa": 1} }},
	{name: "segments", edit: oracleSegments(nil)},
	{name: "segments, gdpr without consent", privacy: true, edit: oracleSegments(map[string]any{"gdpr": 1})},
	{name: "segments, ext.gdpr without consent", privacy: true, edit: oracleSegments(map[string]any{"ext": map[string]any{"gdpr": 1}})},
	{name: "segments, ext.gdpr \"yes\" without consent", privacy: true, edit: oracleSegments(map[string]any{"ext": map[string]any{"gdpr": "yes"}})},
	{name: "segments, us_privacy opt-out", privacy: true, edit: oracleSegments(map[string]any{"us_privacy": "1YYN"})},
	{name: "segments, malformed gpp", privacy: true, edit: oracleSegments(map[string]any{"gpp": "x", "gpp_sid": []any{7}})},
	{name: "wseat of another", nobid: true, edit: func(m map[string]any) { m["wseat"] = []any{"someone-else"} }},
	{name: "bseat of ours", nobid: true, edit: func(m map[string]any) { m["bseat"] = []any{"openbidder"} }},
	{name: "private auction, unknown deal", nobid: true, edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			imp["pmp"] = map[string]any{"private_auction": 1, "deals": []any{map[string]any{"id": "nope"}}}
		})
	}},
	{name: "deal for another seat", nobid: true, edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			imp["pmp"] = map[string]any{"private_auction": 1, "deals": []any{map[string]any{"id": "deal-1", "wseat": []any{"x"}}}}
		})
	}},
	{name: "deal floor 3 EUR", edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			imp["pmp"] = map[string]any{"private_auction": 1, "deals": []any{map[string]any{"id": "deal-1", "bidfloor": 3.0, "bidfloorcur": "EUR"}}}
		})
	}},
	{name: "fixed-price deal 2 EUR", edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			imp["pmp"] = map[string]any{"deals": []any{map[string]any{"id": "deal-1", "at": 3, "bidfloor": 2.0, "bidfloorcur": "EUR"}}}
		})
	}},
	{name: "deal for another advertiser (wadomain)", nobid: true, edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			imp["pmp"] = map[string]any{"private_auction": 1, "deals": []any{map[string]any{"id": "deal-1", "wadomain": []any{"nobody.invalid"}}}}
		})
	}},
	{name: "video duration floors", edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			delete(imp, "banner")
			delete(imp, "native")
			delete(imp, "audio")
			imp["video"] = map[string]any{"mimes": []any{"video/mp4"}, "w": 640, "h": 360, "mincpmpersec": 0.05,
				"durfloors": []any{map[string]any{"maxdur": 15, "bidfloor": 0.4}, map[string]any{"mindur": 16, "bidfloor": 0.9}, nil}}
		})
	}},
	{name: "acat IAB22, IAB13, IAB2, IAB7", edit: func(m map[string]any) { delete(m, "bcat"); m["acat"] = []any{"IAB22", "IAB13", "iab2", "IAB7"} }},
	{name: "acat none known", nobid: true, edit: func(m map[string]any) { delete(m, "bcat"); m["acat"] = []any{"IAB0-0"} }},
	{name: "video non-linear only", edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			if v, ok := imp["video"].(map[string]any); ok {
				v["linearity"] = 2
			}
		})
	}},
	{name: "video only", edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			delete(imp, "banner")
			delete(imp, "native")
			delete(imp, "audio")
			imp["video"] = map[string]any{"mimes": []any{"video/mp4"}, "w": 640, "h": 360}
		})
	}},
	{name: "native only", edit: func(m map[string]any) {
		oracleImps(m, func(imp map[string]any) {
			delete(imp, "banner")
			delete(imp, "video")
			delete(imp, "audio")
			imp["native"] = map[string]any{"request": `{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":90}}]}`}
		})
	}},
	{name: "wlang DE, fr", edit: func(m map[string]any) { m["wlang"] = []any{"DE", "fr"} }},
	{name: "wlangb ja-JP", edit: func(m map[string]any) { m["wlangb"] = []any{"ja-JP"} }},
	{name: "battr 1-17", edit: func(m map[string]any) {
		var l []any
		for k := 1; k <= 17; k++ {
			l = append(l, k)
		}
		oracleImps(m, func(imp map[string]any) {
			for _, f := range []string{"banner", "video", "audio", "native"} {
				if o, ok := imp[f].(map[string]any); ok {
					o["battr"] = l
				}
			}
		})
	}},
}

// oracleBlocks adds the block lists that name every category and
// advertiser of snap's creatives (by their mutation names).
func oracleBlocks(snap *campaigns.Snapshot) []oracleMutation {
	var cats, advs []any
	typed := map[string]bool{} // banners that declare a banner ad type
	for _, c := range snap.Campaigns {
		for _, a := range c.ADomain {
			advs = append(advs, strings.ToUpper(a))
		}
		for _, cr := range c.Creatives {
			for _, k := range cr.Cat {
				cats = append(cats, k)
			}
			if len(cr.BType) > 0 {
				typed[cr.ID] = true
			}
		}
	}
	parents := make([]any, len(cats))
	for i, c := range cats {
		parents[i], _, _ = strings.Cut(c.(string), "-")
	}
	return []oracleMutation{
		{name: "bcat all", nobid: true, edit: func(m map[string]any) { m["bcat"] = cats }},
		{name: "bcat all parents", nobid: true, edit: func(m map[string]any) { m["bcat"] = parents }},
		{name: "bcat all, cattax 2", nobid: true, edit: func(m map[string]any) { m["bcat"], m["cattax"] = cats, 2 }},
		{name: "badv all, upper case", nobid: true, edit: func(m map[string]any) { m["badv"] = advs }},
		{name: "bapp of the app advertised", edit: func(m map[string]any) { m["bapp"] = []any{"com.gamehub.dragons"} }},
		{name: "btype 1-4", forbid: typed, edit: func(m map[string]any) {
			oracleImps(m, func(imp map[string]any) {
				if o, ok := imp["banner"].(map[string]any); ok {
					o["btype"] = []any{1, 2, 3, 4}
				}
			})
		}},
	}
}

// Every bid on the real requests of ../shared/ortb-samples, as they are and
// edited, keeps the request's rules: a floor (a deal's on a deal bid),
// converted from its currency (USD when it names none) with the configured
// rates, in a currency the request allows; one bid per imp, of the imp's
// kind and one of its sizes; nothing blocked (bcat, badv, bapp, battr, btype, wlang and
// wlangb, seats); no open bid in a private auction; nothing held on test=1; no
// user-level campaign where privacy takes user data away; no bid where none
// may be. Run with currency.base USD and JPY (a floor without bidfloorcur
// was read in the base before 7b0f89b).
func TestSampleBidsKeepTheRules(t *testing.T) {
	files, _ := filepath.Glob("../../shared/ortb-samples/*.json")
	if len(files) == 0 {
		t.Skip("no ../shared/ortb-samples beside the checkout")
	}
	if raceEnabled { // a sample in eight: the race detector makes the whole run ~19 s
		var some []string
		for i := 0; i < len(files); i += 8 {
			some = append(some, files[i])
		}
		files = some
	}
	usd := map[string]float64{"USD": 1, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}
	for _, base := range []string{"USD", "JPY"} {
		rates := map[string]float64{}
		for k, v := range usd {
			rates[k] = v / usd[base]
		}
		ts := newTestServer(t, func(c *Config) { c.Currency.Base, c.Currency.Rates = base, rates })
		snap, err := campaigns.LoadDir("../configs/campaigns", campaigns.WithSeat("openbidder"))
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.SetCampaigns(snap); err != nil {
			t.Fatal(err)
		}
		bids := 0
		for _, mu := range append(oracleMutations, oracleBlocks(snap)...) {
			for _, f := range files {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				if json.Unmarshal(raw, &m) != nil {
					continue // a wart encoding/json refuses: TestSharedSamples covers it
				}
				mu.edit(m)
				body, _ := json.Marshal(m)
				held := len(ts.money.holds)
				r := ts.bidInTime(body)
				if r.StatusCode() != 200 {
					continue
				}
				var req openrtb2.BidRequest
				if json.Unmarshal(body, &req) != nil {
					continue
				}
				resp := decodeResponse(t, r)
				for _, p := range oracleCheck(&req, resp, rates, mu) {
					t.Errorf("base %s, %s, %s: %s", base, mu.name, filepath.Base(f), p)
				}
				if req.Test == 1 && len(ts.money.holds) == held && held < cap(ts.money.holds) {
					t.Errorf("base %s, %s, %s: a test=1 bid held nothing (test_requests: billable, the default)", base, mu.name, filepath.Base(f))
				}
				bids++
			}
		}
		if bids == 0 {
			t.Fatalf("base %s: no bids at all: the oracle checked nothing", base)
		}
	}
}

// oracleCheck lists what resp's bids break of req's rules.
func oracleCheck(req *openrtb2.BidRequest, resp *openrtb2.BidResponse, rates map[string]float64, mu oracleMutation) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	cur := resp.Cur
	if cur == "" {
		cur = "USD"
	}
	if len(req.Cur) > 0 && !slicesContains(req.Cur, cur) {
		bad("currency %s not in %v", cur, req.Cur)
	}
	if len(req.Cur) == 0 && cur != "USD" && len(resp.SeatBid) > 0 {
		// No exchange here prefers a currency: a request that names none
		// is answered in OpenRTB's default, whatever the base.
		bad("request names no currency, answered in %s", cur)
	}
	seen := map[string]bool{}
	for _, sb := range resp.SeatBid {
		for _, b := range sb.Bid {
			if mu.nobid {
				bad("bid by %s", b.CID)
			}
			if mu.forbid[b.CrID] {
				bad("creative %s may not bid", b.CrID)
			}
			if l := b.Language; l != "" && l != "xx" && (len(req.WLang) > 0 && !foldContains(req.WLang, l) ||
				len(req.WLangB) > 0 && !foldContains(primaryTags(req.WLangB), l)) {
				bad("language %s not in wlang %v / wlangb %v", l, req.WLang, req.WLangB)
			}
			if mu.privacy && (b.CID == "brightbank-segments" || b.CID == "fitpulse-freqcap") {
				bad("user-level campaign %s", b.CID)
			}
			if seen[b.ImpID] {
				bad("two bids on imp %s", b.ImpID)
			}
			seen[b.ImpID] = true
			var imp *openrtb2.Imp
			for i := range req.Imp {
				if req.Imp[i].ID == b.ImpID {
					if imp != nil {
						bad("bid on imp id %s, which names two imps", b.ImpID)
					}
					imp = &req.Imp[i]
				}
			}
			if imp == nil {
				bad("bid on unknown imp %s", b.ImpID)
				continue
			}
			floor, fcur := imp.BidFloor, imp.BidFloorCur
			fixed := false // a fixed-price deal: the price is its floor
			// Duration floors (2.6): the imp's video or audio ones, or
			// the deal's for a deal bid, in that floor's currency.
			var durFloors []openrtb2.DurFloors
			var perSec float64
			dcur := imp.BidFloorCur
			switch {
			case b.MType == openrtb2.MarkupVideo && imp.Video != nil:
				durFloors, perSec = imp.Video.DurFloors, imp.Video.MinCPMPerSec
			case b.MType == openrtb2.MarkupAudio && imp.Audio != nil:
				durFloors, perSec = imp.Audio.DurFloors, imp.Audio.MinCPMPerSec
			}
			switch {
			case b.DealID != "":
				found := false
				if imp.PMP != nil {
					for _, d := range imp.PMP.Deals {
						if d.ID == b.DealID {
							found = true
							for _, a := range b.ADomain {
								ok := len(d.WADomain) == 0
								for _, w := range d.WADomain {
									w = strings.TrimPrefix(strings.ToLower(w), "www.")
									ok = ok || w != "" && (strings.EqualFold(a, w) || strings.HasSuffix(strings.ToLower(a), "."+w))
								}
								if !ok {
									bad("bid on deal %s for %s, not in its wadomain %v", d.ID, a, d.WADomain)
								}
							}
							durFloors, perSec, dcur = d.DurFloors, d.MinCPMPerSec, d.BidFloorCur
							if d.BidFloor > 0 {
								// deal.bidfloorcur does not inherit
								// imp.bidfloorcur: absent, it is USD.
								floor, fcur = d.BidFloor, d.BidFloorCur
								fixed = d.AT == 3
							}
						}
					}
				}
				if !found {
					bad("deal %s not offered", b.DealID)
				}
			case imp.PMP != nil && imp.PMP.PrivateAuction == 1:
				bad("open bid in a private auction")
			}
			if fcur == "" {
				fcur = "USD"
			}
			if dcur == "" {
				dcur = "USD"
			}
			if !fixed && b.Dur > 0 && (b.MType == openrtb2.MarkupVideo || b.MType == openrtb2.MarkupAudio) && rates[dcur] > 0 && rates[fcur] > 0 {
				// In the floor's currency: a matching range replaces it,
				// the per-second floor raises it.
				best := -1.0
				for _, f := range durFloors {
					if f.MinDur <= 0 && f.MaxDur <= 0 {
						continue
					}
					if (f.MinDur <= 0 || b.Dur >= f.MinDur) && (f.MaxDur <= 0 || b.Dur <= f.MaxDur) && f.BidFloor > best {
						best = f.BidFloor
					}
				}
				if best >= 0 {
					floor = best * rates[dcur] / rates[fcur]
				}
				floor = max(floor, perSec*float64(b.Dur)*rates[dcur]/rates[fcur])
			}
			if floor > 0 {
				fr, ok := rates[fcur]
				if !ok {
					bad("bid over a floor in %s, a currency without a rate", fcur)
				} else if min := floor * fr / rates[cur]; b.Price < min*(1-1e-12) {
					bad("price %v %s under the floor %v %s (%v %s)", b.Price, cur, floor, fcur, min, cur)
				} else if fixed && b.Price > min+1e-6 {
					bad("price %v %s over the fixed deal price %v %s (%v %s)", b.Price, cur, floor, fcur, min, cur)
				}
			}
			for _, c := range b.Cat {
				for _, bc := range req.BCat {
					if strings.EqualFold(c, bc) {
						bad("blocked category %s", c)
					}
				}
			}
			if len(req.ACat) > 0 && len(b.Cat) == 0 {
				bad("a bid without categories under acat %v", req.ACat)
			}
			for _, c := range b.Cat {
				if len(req.ACat) > 0 && !foldContains(req.ACat, c) && !foldContains(req.ACat, strings.SplitN(c, "-", 2)[0]) {
					bad("category %s not in acat %v", c, req.ACat)
				}
			}
			for _, a := range b.ADomain {
				for _, ba := range req.BAdv {
					if strings.EqualFold(a, ba) {
						bad("blocked advertiser %s", a)
					}
				}
			}
			if b.Bundle != "" && slicesContains(req.BApp, b.Bundle) {
				bad("blocked bundle %s", b.Bundle)
			}
			out = append(out, oracleKind(imp, &b)...)
		}
	}
	return out
}

// oracleKind checks a bid's markup type, size and attributes against imp.
func oracleKind(imp *openrtb2.Imp, b *openrtb2.Bid) []string {
	var out []string
	var battr []int
	switch b.MType {
	case openrtb2.MarkupBanner:
		if imp.Banner == nil {
			return []string{"banner bid on an imp without banner"}
		}
		bn := imp.Banner
		fits := bn.W != nil && bn.H != nil && *bn.W == b.W && *bn.H == b.H ||
			(bn.W == nil || *bn.W == 0) && (bn.H == nil || *bn.H == 0) && len(bn.Format) == 0
		for _, f := range bn.Format {
			fits = fits || f.W == b.W && f.H == b.H
		}
		if !fits {
			out = append(out, fmt.Sprintf("size %dx%d fits no format", b.W, b.H))
		}
		for _, a := range bn.BAttr {
			battr = append(battr, int(a))
		}
	case openrtb2.MarkupVideo:
		if imp.Video == nil {
			return []string{"video bid on an imp without video"}
		}
		for _, a := range imp.Video.BAttr {
			battr = append(battr, int(a))
		}
		if imp.Video.Linearity == 2 && strings.Contains(b.AdM, "<Linear") {
			out = append(out, "a linear VAST on an imp that asks for non-linear ads")
		}
	case openrtb2.MarkupAudio:
		if imp.Audio == nil {
			return []string{"audio bid on an imp without audio"}
		}
	case openrtb2.MarkupNative:
		if imp.Native == nil {
			return []string{"native bid on an imp without native"}
		}
	}
	for _, a := range b.Attr {
		for _, ba := range battr {
			if int(a) == ba {
				out = append(out, fmt.Sprintf("blocked attribute %d", a))
			}
		}
	}
	return out
}

func primaryTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		p, _, _ := strings.Cut(t, "-")
		out = append(out, p)
	}
	return out
}

func slicesContains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func foldContains(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}
