package simulator

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prebid/openrtb/v20/openrtb2"
)

func TestMinToWin(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   AuctionInput
		want float64
	}{
		{"a cent above the best competitor", AuctionInput{Floor: 0.5, Others: []float64{1.2, 0.8}}, 1.21},
		{"the floor when nobody bids above it", AuctionInput{Floor: 0.5, Others: []float64{0.3}}, 0.5},
		{"the floor when nobody bids", AuctionInput{Floor: 0.7}, 0.7},
		{"a cent with neither", AuctionInput{}, 0.01},
		{"the increment given", AuctionInput{Others: []float64{2}, MinIncrease: 0.05}, 2.05},
	} {
		got := MinToWin(tc.in)
		if math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: MinToWin = %v, want %v", tc.name, got, tc.want)
		}
		// It is what it says: that bid wins, one increment less does not.
		in := tc.in
		in.OurBid, in.FirstPrice = got, true
		if !RunAuction(in).Won {
			t.Errorf("%s: a bid of MinToWin %v loses", tc.name, got)
		}
		inc := tc.in.MinIncrease
		if inc == 0 {
			inc = 0.01
		}
		in.OurBid = got - inc
		if in.OurBid > 0 && RunAuction(in).Won {
			t.Errorf("%s: a bid of %v under MinToWin wins", tc.name, in.OurBid)
		}
	}
}

func TestSubstituteMinToWin(t *testing.T) {
	m := Macros{Price: 2, Loss: 102, MinToWin: 1.2345678}
	if got := Substitute("m=${AUCTION_MIN_TO_WIN}&r=${AUCTION_LOSS}", m); got != "m=1.234568&r=102" {
		t.Errorf("got %q", got)
	}
	m.MinToWin = 0 // an exchange that does not send it leaves the macro
	if got := Substitute("m=${AUCTION_MIN_TO_WIN}", m); got != "m=${AUCTION_MIN_TO_WIN}" {
		t.Errorf("got %q", got)
	}
}

func TestSendsMinToWinShare(t *testing.T) {
	for _, share := range []float64{0, 0.5, 1} {
		r := &Runner{cfg: Config{Seed: 3, MinToWinShare: share}}
		n, yes := 2000, 0
		for i := 1; i <= n; i++ {
			req := &openrtb2.BidRequest{Site: &openrtb2.Site{Publisher: &openrtb2.Publisher{ID: "pub-" + strconv.Itoa(i)}}}
			sends := r.sendsMinToWin(req)
			if sends {
				yes++
			}
			if r.sendsMinToWin(req) != sends {
				t.Fatal("not a fixed property of the publisher")
			}
		}
		sd := math.Sqrt(share * (1 - share) / float64(n))
		if got := float64(yes) / float64(n); math.Abs(got-share) > 4*sd+1e-9 {
			t.Errorf("share %v: %v of publishers send it", share, got)
		}
	}
}

func TestLoadCampaignValues(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.yaml":   "id: cpc\nbid_strategy: {kind: target_cpc, cpc: \"1.50\"}\nmax_bid_cpm: \"9.00\"\n",
		"b.yaml":   "id: cpm\ncurrency: EUR\nbid_strategy: {kind: fixed_cpm, cpm: \"2.00\"}\nmax_bid_cpm: \"3\"\n",
		"c.yml":    "id: cpa\nbid_strategy: {kind: target_cpa, cpa: \"25\", conversion_rate: 0.04}\n",
		"notes.md": "not a campaign",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, err := LoadCampaignValues(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 3 {
		t.Fatalf("values %+v", v)
	}
	for _, tc := range []struct {
		cid    string
		ctr    float64
		capped bool
		want   float64
	}{
		{"cpc", 0.01, false, 15},  // 0.01 x 1.50 x 1000
		{"cpc", 0.01, true, 9},    // capped at max bid
		{"cpm", 0.5, false, 2.16}, // EUR 2.00 in USD
		{"cpa", 0.01, false, 10},  // 0.01 x 0.04 x 25 x 1000
	} {
		if got := v[tc.cid].CPMUSD(tc.ctr, tc.capped); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s at ctr %v (capped %v): %v, want %v", tc.cid, tc.ctr, tc.capped, got, tc.want)
		}
	}
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("id: x\nbid_strategy: {kind: fixed_cpm, cpm: \"two\"}\n"), 0o644)
	if _, err := LoadCampaignValues(dir); err == nil {
		t.Fatal("a bad amount loaded")
	}
}
