package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
	"github.com/prebid/openrtb/v20/openrtb2"
)

// The baseline's traffic forecast count follows the bidder's: with every
// campaign off its schedule (half before their flights, half outside their
// dayparting), nothing is live, and the baseline's targeted (its campaign
// loop without flights and dayparting) says what
// campaigns.Snapshot.Targeted says on every agreement request.
func TestBaselineTargetedAgrees(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) // a Monday
	cfgs := GenerateCampaigns(1000)
	for i := range cfgs {
		if i%2 == 0 {
			cfgs[i].Flight = campaigns.FlightConfig{Start: now.Add(48 * time.Hour).Format(time.RFC3339)}
		} else {
			cfgs[i].TimeZone = "UTC"
			cfgs[i].Targeting.Dayparting = &campaigns.DaypartConf{Days: []string{"sat"}}
		}
	}
	snap, err := campaigns.Compile(cfgs, campaigns.WithSeat(Seat))
	if err != nil {
		t.Fatal(err)
	}
	f := fixture(t, 1000, "nomodel", 0) // its budget manager has these campaign ids
	base, err := NewBaseline(BaselineConfig{Campaigns: snap, Scorer: ConstScorer{P: 0.02}, Budget: f.Budget,
		NoticeKey: []byte("bench-key"), Seat: Seat, InstanceID: "bench", Base: "USD", Rates: Rates})
	if err != nil {
		t.Fatal(err)
	}
	var p ortb.Parser
	var req ortb.Request
	var sc campaigns.Scratch
	n, targeted := 0, 0
	for name, body := range agreementRequests(t, true) {
		var br openrtb2.BidRequest
		if json.Unmarshal(body, &br) != nil || validate(&br) != nil || p.Parse(body, &req) != nil {
			continue
		}
		personalize := base.priv.Decide(&req).Allows(privacy.Personalize)
		if !personalize {
			req.User.Segments = req.User.Segments[:0]
		}
		facts := newFacts(&br, now, personalize)
		fast := false
		for i := range min(len(br.Imp), len(req.Imps), base.cfg.MaxImps) {
			if len(snap.Match(nil, &req, &req.Imps[i], now, &sc)) > 0 {
				t.Fatalf("%s imp %d: a candidate while every campaign is off its schedule", name, i)
			}
			fast = fast || snap.Targeted(&req, &req.Imps[i], now, &sc)
		}
		if got := base.targeted(facts); got != fast {
			t.Errorf("%s: Snapshot.Targeted %v, the baseline's targeted %v", name, fast, got)
		}
		n++
		if fast {
			targeted++
		}
	}
	t.Logf("%d requests, %d targeted", n, targeted)
	if targeted == 0 || targeted == n {
		t.Fatalf("%d of %d requests targeted: the test does not tell", targeted, n)
	}
}
