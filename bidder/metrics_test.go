package bidder

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/openbidder/openbidder/campaigns"
)

// Per-campaign counters: each campaign's fields are its own across blocks
// and stripes, summed over stripes, and they cost 512 bytes a campaign.
func TestCampaignStatsLayout(t *testing.T) {
	if per := unsafe.Sizeof(campBlock{}) / campBlockLen; per != stripes*64 {
		t.Fatalf("%d bytes per campaign, want %d", per, stripes*64)
	}
	m := newMetrics()
	const n = 2*campBlockLen + 7 // three blocks
	stats := make([]*campaignStats, n)
	for i := range stats {
		stats[i] = m.campaign(fmt.Sprintf("c%d", i))
	}
	if len(m.blocks) != 3 {
		t.Fatalf("%d blocks for %d campaigns", len(m.blocks), n)
	}
	reasons := []reason{reasonCurrency, reasonPaced, reasonBudget, reasonFreqCap, reasonBelowFloor, reasonFailClosed, reasonFlight}
	for i, st := range stats {
		for s := range 2 * stripes { // every stripe, twice
			for j := range i % 3 {
				st.bid(s + j)
			}
			for k, r := range reasons {
				if (i+k)%2 == 0 {
					st.nobid(s, r)
				}
			}
			st.nobid(s, reasonDeadline) // request-level: not counted per campaign
		}
	}
	for i, st := range stats {
		if got, want := st.bids(), uint64(2*stripes*(i%3)); got != want {
			t.Fatalf("campaign %d: %d bids, want %d", i, got, want)
		}
		for k, r := range reasons {
			want := uint64(0)
			if (i+k)%2 == 0 {
				want = 2 * stripes
			}
			if got := st.nobids(r); got != want {
				t.Fatalf("campaign %d: %d %s, want %d", i, got, r, want)
			}
		}
		if st.nobids(reasonDeadline) != 0 || st != m.campaign(fmt.Sprintf("c%d", i)) {
			t.Fatalf("campaign %d: a request-level reason counted, or a second record", i)
		}
	}
}

// Every reason a candidate can be refused for at the gate or at the hold
// has a per-campaign field.
func TestCampaignReasonsCounted(t *testing.T) {
	for _, r := range []reason{reasonCurrency, reasonPaced, reasonBudget, reasonFreqCap, reasonBelowFloor, reasonFailClosed, reasonFlight} {
		if campField[r] <= 0 {
			t.Errorf("%s is not counted per campaign", r)
		}
	}
	seen := map[int8]reason{}
	for r, f := range campField {
		if f > 0 {
			if o, dup := seen[f]; dup {
				t.Errorf("%s and %s share field %d", o, reason(r), f)
			}
			seen[f] = reason(r)
		}
	}
}

// Counters are kept by campaign id across reloads; a campaign new in the
// reload starts from zero; /metrics shows them.
func TestCampaignStatsSurviveReload(t *testing.T) {
	ts := newTestServer(t, nil)
	onlyBid(t, decodeResponse(t, ts.bidInTime(readReq(t, "site-banner.json"))))
	before := ts.catalog.Load()
	var won string
	for _, c := range before.snap.Campaigns {
		if before.stats[c.Index].bids() == 1 {
			won = c.ID
		}
	}
	if won == "" {
		t.Fatal("no campaign counted the bid")
	}
	// The same campaigns plus a new one.
	snap, err := campaigns.Compile(append(testCampaignConfigs(t), campaigns.Generate(1, 1)...))
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
	after := ts.catalog.Load()
	if after == before {
		t.Fatal("no new catalog")
	}
	c := after.snap.Campaign(won)
	if got := after.stats[c.Index]; got != before.stats[before.snap.Campaign(won).Index] || got.bids() != 1 {
		t.Fatalf("%s after reload: %d bids, record kept %v", won, got.bids(), got == before.stats[before.snap.Campaign(won).Index])
	}
	fresh := after.stats[after.snap.Campaign("gen-00000").Index]
	if fresh.bids() != 0 || fresh == after.stats[c.Index] {
		t.Fatalf("new campaign: %d bids, shares a record: %v", fresh.bids(), fresh == after.stats[c.Index])
	}
	page := metricsPage(t, ts.Server)
	if line := fmt.Sprintf("openbidder_campaign_bids_total{campaign=%q} 1\n", won); !strings.Contains(page, line) {
		t.Fatalf("/metrics lacks %q:\n%s", line, page)
	}
}
