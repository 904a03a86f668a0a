package bidder

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
)

// rowScorer predicts a pCTR that depends on the row, so candidates' prices
// differ, and records a digest of every row it scores.
type rowScorer struct {
	mu   sync.Mutex
	rows []uint64
}

func (r *rowScorer) Score(_ time.Time, rows, out []float32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range out {
		h := uint64(14695981039346656037)
		for _, x := range rows[i*40 : (i+1)*40] {
			h = (h ^ uint64(math.Float32bits(x))) * 1099511628211
		}
		r.rows = append(r.rows, h)
		out[i] = 0.001 + float32(h%1000)/20000
	}
	return nil
}
func (r *rowScorer) Width() int   { return 40 }
func (r *rowScorer) Name() string { return "rows" }

func (r *rowScorer) take() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.rows
	r.rows = nil
	return out
}

// gateMoney gates deterministically by campaign: some are paced, some out
// of budget, some frequency capped, so that both scans see failures.
type gateMoney struct{ fakeMoney }

func (g *gateMoney) allow(ci int, maxCharge int64, now time.Time, _ uint64) reason {
	switch {
	case ci%7 == 3:
		return reasonPaced
	case ci%11 == 5:
		return reasonBudget
	}
	return reasonNone
}
func (g *gateMoney) freqLeft(ci int, user uint64, now time.Time) int64 {
	if user == 0 || ci%13 == 1 {
		return 0
	}
	return math.MaxInt64
}

// pruneServer is a bidder over n generated campaigns with a deterministic
// gate and a row-dependent scorer, scanning exhaustively or not.
func pruneServer(t *testing.T, snap *campaigns.Snapshot, k int, exhaustive bool) (*testServer, *rowScorer) {
	t.Helper()
	ts := newTestServer(t, func(c *Config) {
		c.Seat = "openbidder"
		c.Pricing.MaxScoredPerImp = k
		c.Pricing.ExhaustiveScan = exhaustive
		c.Limits.InternalBudget = time.Second // outcomes are compared: no stall may turn a bid into a no-bid
	})
	gm := &gateMoney{}
	ts.bind = func(*campaigns.Snapshot) (money, error) { return gm, nil }
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
	sc := &rowScorer{}
	ts.SetScorer(sc)
	return ts, sc
}

// pruneRequests are varied requests over the generated vocabulary: site and
// app, several publishers, banner sizes, video, native, deals with their own
// floors, floors in several currencies, response currencies, two imps.
func pruneRequests(n int) [][]byte {
	r := rand.New(rand.NewPCG(3, 9))
	// The 2.6 fields come from their own stream, so every other drawn field
	// is what it always was.
	r26 := rand.New(rand.NewPCG(26, 6))
	var out [][]byte
	countries := campaigns.VocabCountries
	oses := campaigns.VocabOS
	for i := range n {
		pub := 1 + r.IntN(40)
		inv := fmt.Sprintf(`"site":{"id":"s","domain":"site-%d.example.com","cat":["IAB%d"],"publisher":{"id":"pub-%d"}}`, pub, 1+r.IntN(24), pub)
		if r.IntN(3) == 0 {
			inv = fmt.Sprintf(`"app":{"id":"a","bundle":"com.example.app%d","publisher":{"id":"pub-%d"}}`, pub, pub)
		}
		imp := func(id string) string {
			floor := []string{"0", "0.3", "0.8", "1.5", "3", "6", "9.5", "20"}[r.IntN(8)]
			cur := []string{"USD", "USD", "EUR", "GBP"}[r.IntN(4)]
			var media string
			switch r.IntN(6) {
			case 0:
				media = `"video":{"mimes":["video/mp4"],"w":640,"h":360}`
			case 1:
				media = `"native":{"request":"{}"}`
			default:
				sz := strings.Split(campaigns.VocabBannerSizes[r.IntN(len(campaigns.VocabBannerSizes))], "x")
				media = fmt.Sprintf(`"banner":{"w":%s,"h":%s,"format":[{"w":%s,"h":%s},{"w":300,"h":250}]}`, sz[0], sz[1], sz[0], sz[1])
			}
			pmp := ""
			if r.IntN(3) == 0 {
				var deals []string
				for range 1 + r.IntN(3) {
					deals = append(deals, fmt.Sprintf(`{"id":"deal-%d","bidfloor":%s,"bidfloorcur":%q%s}`, 1+r.IntN(100),
						[]string{"0", "0.2", "1", "4", "12"}[r.IntN(5)], []string{"USD", "EUR", ""}[r.IntN(3)],
						[]string{"", "", `,"at":3`}[r26.IntN(3)])) // fixed-price deals
				}
				pmp = fmt.Sprintf(`,"pmp":{"private_auction":%d,"deals":[%s]}`, r.IntN(2), strings.Join(deals, ","))
			}
			return fmt.Sprintf(`{"id":%q,%s,"bidfloor":%s,"bidfloorcur":%q,"secure":1%s}`, id, media, floor, cur, pmp)
		}
		imps := imp("1")
		if r.IntN(4) == 0 {
			imps += "," + imp("2")
		}
		user := fmt.Sprintf(`"user":{"id":"u-%d","data":[{"segment":[{"id":"seg-%d"},{"id":"seg-%d"}]}]}`, r.IntN(50), 1+r.IntN(50), 1+r.IntN(50))
		if r.IntN(5) == 0 {
			user = `"user":{}`
		}
		resp := []string{`"cur":["USD"],`, `"cur":["EUR"],`, `"cur":["GBP","USD"],`, ``}[r.IntN(4)]
		body := fmt.Sprintf(`{"id":"r%d","at":%d,"tmax":500,%s"imp":[%s],%s,`+
			`"device":{"devicetype":%d,"os":%q,"geo":{"country":%q}},%s}`,
			i, 1+r.IntN(2), resp, imps, inv, []int{1, 2, 4}[r.IntN(3)], oses[r.IntN(len(oses))], countries[r.IntN(len(countries))], user)
		out = append(out, []byte(with26(r26, body)))
	}
	return out
}

// with26 adds OpenRTB 2.6 and geo fields the index targets to a request:
// metro, city, language (or langb), connection type, carrier, rewarded imps,
// DOOH in place of the site or app (with a venue type and a qty), each to a
// share of the requests.
func with26(r *rand.Rand, body string) string {
	pick := func(v []string) string { return v[r.IntN(len(v))] }
	geo := ""
	if r.IntN(3) == 0 {
		geo += fmt.Sprintf(`,"metro":%q`, pick(campaigns.VocabMetros))
	}
	if r.IntN(3) == 0 {
		geo += fmt.Sprintf(`,"city":%q`, strings.ToUpper(pick(campaigns.VocabCities)[:1])+pick(campaigns.VocabCities)[1:])
	}
	body = strings.Replace(body, `"geo":{"country":`, `"geo":{`+strings.TrimPrefix(geo+`,"country":`, ","), 1)
	dev := ""
	switch r.IntN(4) {
	case 0:
		dev += fmt.Sprintf(`"language":%q,`, pick(campaigns.VocabLanguages))
	case 1:
		dev += fmt.Sprintf(`"langb":"%s-XX",`, pick(campaigns.VocabLanguages))
	}
	if r.IntN(2) == 0 {
		dev += fmt.Sprintf(`"connectiontype":%d,`, 1+r.IntN(7))
	}
	if r.IntN(3) == 0 {
		dev += fmt.Sprintf(`"carrier":%q,`, strings.ToUpper(pick(campaigns.VocabCarriers)))
	}
	body = strings.Replace(body, `"device":{`, `"device":{`+dev, 1)
	if r.IntN(4) == 0 {
		body = strings.ReplaceAll(body, `"secure":1`, `"secure":1,"rwdd":1`)
	}
	if r.IntN(8) == 0 {
		for _, k := range []string{`"site":{`, `"app":{`} {
			if i := strings.Index(body, k); i >= 0 {
				// The object's own id and publisher stay: a member given
				// twice is refused (ortb's visit).
				dooh := fmt.Sprintf(`"dooh":{"venuetype":[%q],`, pick(campaigns.VocabVenueTypes))
				body = body[:i] + dooh + body[i+len(k):]
				break
			}
		}
		body = strings.ReplaceAll(body, `"secure":1`, fmt.Sprintf(`"secure":1,"qty":{"multiplier":%g}`, []float64{1, 2.5, 14.2}[r.IntN(3)]))
	}
	return body
}

// bidKey is what "the same answer" means: status and no-bid reason, and
// every bid's imp, campaign, creative, price and size.
func bidKey(t *testing.T, status int, nobid, body []byte) string {
	t.Helper()
	if status != 200 {
		return fmt.Sprintf("%d %s", status, nobid)
	}
	var resp struct {
		Cur     string
		SeatBid []struct {
			Bid []struct {
				ImpID, CID, CrID string
				Price            float64
				W, H             int
			}
		}
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var bids []string
	for _, sb := range resp.SeatBid {
		for _, b := range sb.Bid {
			bids = append(bids, fmt.Sprintf("%s:%s/%s@%.6f %dx%d", b.ImpID, b.CID, b.CrID, b.Price, b.W, b.H))
		}
	}
	slices.Sort(bids)
	return resp.Cur + " " + strings.Join(bids, " ")
}

// The ranked walk with its early stop (collectBest) bids exactly what
// gating every eligible candidate does (collectAll): same status and reason,
// same bids, and the same rows scored in the same order, for several
// max_scored_per_imp, over generated campaigns in three currencies with
// deterministic gate failures, deals with their own floors and response
// currencies other than the campaigns'. It also gates fewer candidates.
func TestRankedWalkBidsAsExhaustiveScan(t *testing.T) {
	gen := campaigns.Generate(3000, 4)
	snap, err := campaigns.Compile(gen, campaigns.WithSeat("openbidder"))
	if err != nil {
		t.Fatal(err)
	}
	// Campaigns that target a 2.6 or geo field the index added: some must
	// bid, or the agreement says nothing about those fields.
	targets26 := map[string]bool{}
	for _, c := range gen {
		tg := &c.Targeting
		if len(tg.Metros)+len(tg.Cities)+len(tg.Languages)+len(tg.ConnectionTypes)+len(tg.Carriers)+len(tg.VenueTypes) > 0 ||
			tg.Rewarded != nil || slices.Contains(tg.Inventory, "dooh") {
			targets26[c.ID] = true
		}
	}
	reqs := pruneRequests(400)
	for _, k := range []int{1, 2, 8} {
		best, bestRows := pruneServer(t, snap, k, false)
		all, allRows := pruneServer(t, snap, k, true)
		bids, nobids, reasons, bids26 := 0, 0, map[string]int{}, 0
		for i, body := range reqs {
			rb, ra := best.bid(body), all.bid(body)
			kb := bidKey(t, rb.StatusCode(), rb.Header.Peek("x-nobid-reason"), rb.Body())
			ka := bidKey(t, ra.StatusCode(), ra.Header.Peek("x-nobid-reason"), ra.Body())
			if kb != ka {
				t.Fatalf("k=%d request %d: ranked walk %q, exhaustive %q\n%s", k, i, kb, ka, body)
			}
			if gb, ga := bestRows.take(), allRows.take(); !slices.Equal(gb, ga) {
				t.Fatalf("k=%d request %d: scored %d rows %x, exhaustive %d rows %x\n%s", k, i, len(gb), gb, len(ga), ga, body)
			}
			if rb.StatusCode() == 200 {
				bids++
				for c := range targets26 {
					if strings.Contains(kb, ":"+c+"/") {
						bids26++
					}
				}
			} else {
				nobids++
				reasons[string(rb.Header.Peek("x-nobid-reason"))]++
			}
		}
		gatedBest, gatedAll := gated(best.Server), gated(all.Server)
		t.Logf("k=%d: %d bids (%d by campaigns targeting 2.6 fields), %d no-bids %v; candidates refused at the gate: %d ranked, %d exhaustive", k, bids, bids26, nobids, reasons, gatedBest, gatedAll)
		if bids < 100 || reasons["below_floor"] == 0 || reasons["no_campaign"] == 0 || bids26 < 10 {
			t.Errorf("k=%d: the requests do not cover bids and no-bids: %d bids (%d by campaigns targeting 2.6 fields), %v", k, bids, bids26, reasons)
		}
		if gatedBest >= gatedAll {
			t.Errorf("k=%d: the ranked walk refused %d candidates at the gate, the exhaustive scan %d: it stopped no earlier", k, gatedBest, gatedAll)
		}
	}
}

// gated sums the per-campaign no-bid counters: candidates refused at the gate.
func gated(s *Server) uint64 {
	var n uint64
	for _, st := range s.catalog.Load().stats {
		for r := range numReasons {
			n += st.nobids(r)
		}
	}
	return n
}

// The ranker's bound is rates.convertMicros of the campaign's upper bound,
// for every campaign and response currency (gate and the ranked walk rely
// on it), and -1 exactly where convertMicros fails.
func TestRankerBoundIsConvertMicros(t *testing.T) {
	snap, err := campaigns.Compile(campaigns.Generate(500, 2))
	if err != nil {
		t.Fatal(err)
	}
	cat := newCatalog(snap, newMetrics(), nil)
	for _, table := range []map[string]float64{
		{"USD": 1, "EUR": 1.1, "GBP": 1.25, "JPY": 0.0067},
		{"USD": 1, "EUR": 1.08},              // GBP campaigns cannot be converted
		{"USD": 1, "EUR": 1e13, "GBP": 1.25}, // EUR bounds in USD saturate (they overflowed to negative)
	} {
		rt := newRates(CurrencyConfig{Base: "USD", Rates: table})
		for _, resp := range append(slices.Sorted(maps.Keys(table)), "CHF") { // CHF: not in the table
			var rk ranker
			rk.reset(rt, cat, []byte(resp))
			for _, c := range snap.Campaigns {
				want, ok := rt.convertMicros(c.UpperMicros(), c.Currency, []byte(resp))
				if !ok {
					want = -1
				}
				if got := rk.Bound(c.Index); got != want || (ok && got < 0) {
					t.Fatalf("%s %s in %s: bound %d, convertMicros %d", c.ID, c.Currency, resp, got, want)
				}
			}
		}
	}
}
