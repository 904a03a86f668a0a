package bidder

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/budget"
)

// A fixed-CPM candidate that earlier imps of the request may use up (its
// campaign's frequency cap) does not keep the imp's other fixed-CPM
// candidates out: price skips it there (bidsBefore), and the imp got no
// bid. hooli-deal (fixed 4.00, open auction here, capped at 1 an hour)
// wins the first of two imps; acme-banner (fixed 2.00) takes the second.
func TestCappedFixedCPMDoesNotKeepOthersOutOfLaterImps(t *testing.T) {
	srv, m := budgetTestServer(t)
	ts := &testServer{Server: srv}
	hooli, err := os.ReadFile("testdata/campaigns/hooli.yaml")
	if err != nil {
		t.Fatal(err)
	}
	acme, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := strings.Replace(string(hooli), "open_auction: false", "open_auction: true", 1)
	h = strings.Replace(h, `budget: {daily: "50.00"}`, "budget: {daily: \"50.00\"}\nfrequency_cap: {count: 1, window: 1h}", 1)
	if !strings.Contains(h, "frequency_cap") || !strings.Contains(h, "open_auction: true") {
		t.Fatal("fixture changed")
	}
	setCampaignFiles(t, ts, map[string]string{"hooli.yaml": h, "acme.yaml": string(acme)})
	if err := m.SetCampaigns(budgetCampaigns(ts.catalog.Load().snap)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"hooli-deal", "acme-banner"} { // their leases
		for end := time.Now().Add(10 * time.Second); m.Allow(m.Handle(id), 1000, time.Now()) != budget.DecisionOK; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: no lease within 10 s", id)
			}
		}
	}
	base := string(readReq(t, "site-banner.json"))
	imp := `{"id":"1","banner":{"w":300,"h":250,"format":[{"w":300,"h":250}]},"bidfloor":0.5,"bidfloorcur":"USD","secure":1}`
	body := strings.Replace(base, imp, imp+","+strings.Replace(imp, `"id":"1"`, `"id":"2"`, 1), 1)
	if body == base {
		t.Fatal("fixture changed")
	}
	r := ts.bidInTime([]byte(body))
	if r.StatusCode() != 200 {
		t.Fatalf("%d %q, want bids", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	got := map[string]string{}
	for _, sb := range decodeResponse(t, r).SeatBid {
		for _, b := range sb.Bid {
			got[b.ImpID] = b.CID
		}
	}
	if got["1"] != "hooli-deal" || got["2"] != "acme-banner" {
		t.Errorf("bids by imp %v, want hooli-deal on 1 and acme-banner on 2", got)
	}
}

// In an ad pod the bid path keeps every fixed-CPM candidate (an earlier imp
// of the pod may take a creative: keepBest's oneFixed); explain's replay
// kept the first sure one and gated the rest as fixed_cpm_outbid (the
// review). video-pod.json's first slot fits both of tvpods' creatives.
func TestExplainKeepsFixedCPMCandidatesInAPod(t *testing.T) {
	ts := newTestServer(t, nil)
	a := explainBody(t, ts, string(readReq(t, "video-pod.json")))
	priced := 0
	for _, c := range a.Imps[0].Campaigns {
		if c.ID == "tvpods" {
			if c.Rule == "fixed_cpm_outbid" {
				t.Errorf("%s gated fixed_cpm_outbid in a pod", c.Creative)
			}
			if c.Status == "priced" {
				priced++
			}
		}
	}
	if priced != 2 {
		t.Errorf("%d of tvpods' candidates priced on the pod's first slot, want 2 (%+v)", priced, a.Imps[0].Campaigns)
	}
}
