package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// TestScoredPerImp measures (it logs, and asserts nothing about the
// numbers) what pricing.max_scored_per_imp = k gives up: the bidder scores
// only the k eligible candidates with the highest possible bid (keepBest).
// For each request every candidate is scored with the GBDT; then, for each
// k, the winner among the top k by upper bound is compared with the true
// winner: how often it is the same price, and the share of the true
// winning price kept. docs/benchmarks.md quotes the table.
func TestScoredPerImp(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("a measurement: run it without -race and -short")
	}
	ks := []int{1, 2, 4, 8, 16, 32}
	for _, n := range []int{1000, 10000} {
		f := fixture(t, n, "gbdt200-nodeadline", 256)
		same := make([]int, len(ks))
		kept := make([]float64, len(ks))
		auctions, eligible, capped, priced := 0, 0, 0, 0
		var pctr float64
		for name, body := range agreementRequests(t, false) {
			if !strings.Contains(name, " pub ") {
				continue // the synthetic site and app variants
			}
			var br openrtb2.BidRequest
			if err := json.Unmarshal(body, &br); err != nil {
				t.Fatal(err)
			}
			a := f.Baseline.Auction(&br, time.Now())
			for imp := range br.Imp {
				var slots []Slot
				for _, s := range a.Slots {
					if s.Imp == imp {
						slots = append(slots, s)
					}
				}
				best := maxPrice(slots)
				if best == 0 {
					continue
				}
				auctions++
				eligible += len(slots)
				for _, s := range slots {
					if s.Price > 0 {
						priced++
						pctr += float64(s.PCTR)
						if s.Price == s.Upper {
							capped++
						}
					}
				}
				// Highest upper bound first; among equal bounds the order is
				// the index's, which the stable sort keeps.
				slices.SortStableFunc(slots, func(x, y Slot) int { return cmp.Compare(y.Upper, x.Upper) })
				for i, k := range ks {
					p := maxPrice(slots[:min(k, len(slots))])
					if p == best {
						same[i]++
					}
					kept[i] += float64(p) / float64(best)
				}
			}
		}
		if auctions == 0 {
			t.Fatalf("%d campaigns: no auctions with a bid", n)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d campaigns, %d imps with a bid, %.1f scored per imp on average (at most 256); mean pCTR %.4f; %.0f%% of prices at their upper bound (fixed CPM, or value capped by max bid):\n",
			n, auctions, float64(eligible)/float64(auctions), pctr/float64(max(priced, 1)), 100*float64(capped)/float64(max(priced, 1)))
		for i, k := range ks {
			fmt.Fprintf(&b, "  k=%-3d same winning price %5.1f%%  price kept %5.1f%%\n", k, 100*float64(same[i])/float64(auctions), 100*kept[i]/float64(auctions))
		}
		t.Log(b.String())
	}
}

func maxPrice(slots []Slot) int64 {
	var p int64
	for _, s := range slots {
		p = max(p, s.Price)
	}
	return p
}
