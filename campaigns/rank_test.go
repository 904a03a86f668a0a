package campaigns

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// rateRanker converts UpperMicros to a response currency the way the bidder
// does (rounding down; unknown currencies cannot bid).
type rateRanker struct {
	cs    []*Campaign // the snapshot's, by Index
	resp  string
	rates map[string]float64
}

func (r *rateRanker) Bound(i int) int64 {
	c := r.cs[i]
	v := c.UpperMicros()
	if c.Currency == r.resp {
		return v
	}
	f, ok := r.rates[c.Currency]
	if !ok {
		return -1
	}
	return int64(math.Floor(float64(v) * f / r.rates[r.resp]))
}

// walkAll runs a ranked walk to its end.
func walkAll(s *Snapshot, req *ortb.Request, imp *ortb.Imp, sc *Scratch, rk Ranker) []Candidate {
	var out []Candidate
	s.Begin(req, imp, monday15, sc, rk)
	for {
		var ok bool
		if out, ok = s.Next(out, sc); !ok {
			return out
		}
	}
}

// rankOrder sorts candidates into the order the ranked walk promises:
// bound descending, then Rank, then creative order.
func rankOrder(s *Snapshot, cs []Candidate, rk Ranker) {
	slices.SortStableFunc(cs, func(a, b Candidate) int {
		if c := cmp.Compare(rk.Bound(b.Campaign.Index), rk.Bound(a.Campaign.Index)); c != 0 {
			return c
		}
		if c := cmp.Compare(s.Rank(a.Campaign), s.Rank(b.Campaign)); c != 0 {
			return c
		}
		return cmp.Compare(a.Creative.Index, b.Creative.Index)
	})
}

// The ranked walk yields exactly Match's candidates, in the promised order,
// for several response currencies (the generated set mixes USD, EUR and
// GBP, with many equal max bids, so ties and conversions both occur).
func TestRankedWalkAgreesWithMatch(t *testing.T) {
	_, s := large(t)
	rates := map[string]float64{"USD": 1, "EUR": 1.1, "GBP": 1.25, "JPY": 0.0067}
	cs := s.Campaigns
	rankers := []*rateRanker{{cs, "USD", rates}, {cs, "EUR", rates}, {cs, "GBP", rates}, {cs, "JPY", rates},
		{cs, "USD", map[string]float64{"USD": 1, "EUR": 1.1}}} // GBP campaigns cannot bid: last
	r := rand.New(rand.NewPCG(7, 7))
	var sc, ref Scratch
	compared := 0
	for i := range 300 {
		req, imp := randomRequest(r)
		want := s.Match(nil, req, imp, monday15, &ref)
		rk := rankers[i%len(rankers)]
		rankOrder(s, want, rk)
		got := walkAll(s, req, imp, &sc, rk)
		if len(got) != len(want) {
			t.Fatalf("request %d: walk %d candidates, Match %d\n%v\n%v", i, len(got), len(want), candKeys(got), candKeys(want))
		}
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("request %d (%s): candidate %d is %s/%s (bound %d, rank %d), want %s/%s (bound %d, rank %d)", i, rk.resp, j,
					got[j].Campaign.ID, got[j].Creative.ID, rk.Bound(got[j].Campaign.Index), s.Rank(got[j].Campaign),
					want[j].Campaign.ID, want[j].Creative.ID, rk.Bound(want[j].Campaign.Index), s.Rank(want[j].Campaign))
			}
		}
		if sc.Examined != ref.Examined {
			t.Fatalf("request %d: walk examined %d campaigns, Match %d", i, sc.Examined, ref.Examined)
		}
		compared += len(got)
	}
	if compared < 1000 {
		t.Fatalf("only %d candidates compared", compared)
	}
}

// A walk stopped after a few candidates examines a few campaigns, however
// many are eligible.
func TestRankedWalkStopsEarly(t *testing.T) {
	_, s := large(t)
	req, imp := siteRequest(), bannerImp(300, 250)
	imp.Banner.Format = []ortb.Size{{W: 320, H: 50}, {W: 728, H: 90}}
	var sc Scratch
	all := s.Match(nil, req, imp, monday15, &sc)
	examinedAll := sc.Examined
	rk := &rateRanker{s.Campaigns, "USD", map[string]float64{"USD": 1, "EUR": 1.1, "GBP": 1.25}}
	s.Begin(req, imp, monday15, &sc, rk)
	var got []Candidate
	for len(got) < 8 {
		var ok bool
		if got, ok = s.Next(got, &sc); !ok {
			break
		}
	}
	if len(all) < 100 || len(got) < 8 {
		t.Fatalf("%d eligible, %d taken: the request should match many", len(all), len(got))
	}
	if sc.Examined > examinedAll/4 {
		t.Errorf("took %d candidates of %d after examining %d campaigns (Match examines %d)", len(got), len(all), sc.Examined, examinedAll)
	}
	t.Logf("%d eligible of %d examined; the first %d after examining %d", len(all), examinedAll, len(got), sc.Examined)
}

// Ranks follow currency, then UpperMicros descending, then Index.
func TestRankOrder(t *testing.T) {
	_, s := large(t)
	for r := 1; r < len(s.idx.byRank); r++ {
		a, b := s.Campaigns[s.idx.byRank[r-1]], s.Campaigns[s.idx.byRank[r]]
		ok := a.Currency < b.Currency || a.Currency == b.Currency &&
			(a.UpperMicros() > b.UpperMicros() || a.UpperMicros() == b.UpperMicros() && a.Index < b.Index)
		if !ok || s.Rank(a) != r-1 || s.Rank(b) != r {
			t.Fatalf("rank %d: %s %s %d (index %d) before %s %s %d (index %d)", r, a.ID, a.Currency, a.UpperMicros(), a.Index,
				b.ID, b.Currency, b.UpperMicros(), b.Index)
		}
	}
}
