package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// oneRequest is a Source of a single crafted request.
type oneRequest struct {
	req  *openrtb2.BidRequest
	done bool
}

func (o *oneRequest) Next() (*Outgoing, float64, bool) {
	if o.done {
		return nil, 0, false
	}
	o.done = true
	body, _ := json.Marshal(o.req)
	return &Outgoing{Seq: 1, Body: body, Version: "2.6", Req: o.req}, 0, true
}

// A deal's own auction type (pmp.deals[].at, OpenRTB: it overrides the
// request's) decides how a bid on it clears: the generated deals say at=1,
// and a bid on one in a second-price request was cleared at second price
// (the winner paid a cent above the runner-up, not its bid) and reported
// under second_price, while the bidder, reading the deal's at as OpenRTB
// says, shaded it as a first-price bid and learned from its notices.
func TestDealAuctionTypeDecidesClearing(t *testing.T) {
	for _, tc := range []struct {
		reqAT, dealAT int64
		first         bool
	}{{2, 1, true}, {1, 2, false}, {2, 0, false}, {1, 0, true}} {
		t.Run(fmt.Sprintf("request_at_%d_deal_at_%d", tc.reqAT, tc.dealAT), func(t *testing.T) {
			var mu sync.Mutex
			var prices []string
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/win" {
					mu.Lock()
					prices = append(prices, r.URL.Query().Get("p"))
					mu.Unlock()
					return
				}
				io.Copy(io.Discard, r.Body)
				fmt.Fprintf(w, `{"id":"r1","cur":"USD","seatbid":[{"seat":"s","bid":[{"id":"b1","impid":"1","price":50,`+
					`"dealid":"d1","cid":"c1","crid":"cr1","nurl":"%s/win?p=${AUCTION_PRICE}"}]}]}`, srv.URL)
			}))
			t.Cleanup(srv.Close)
			req := &openrtb2.BidRequest{ID: "r1", AT: tc.reqAT, TMax: 1000, Imp: []openrtb2.Imp{{ID: "1", BidFloor: 0.1,
				Banner: &openrtb2.Banner{W: ptr(int64(300)), H: ptr(int64(250))},
				PMP:    &openrtb2.PMP{Deals: []openrtb2.Deal{{ID: "d1", BidFloor: 1, BidFloorCur: "USD", AT: tc.dealAT}}}}}}
			rep := run(t, Config{Targets: []string{srv.URL}, Rate: 10, Duration: time.Second, Seed: 1,
				Source: &oneRequest{req: req}, TMax: time.Second, Market: Market{FixedBidders: 1, Bid: DefaultMarket.Bid},
				Notices: NoticeConfig{Delay: time.Millisecond, DupProb: -1, LossProb: -1, LateProb: -1}})
			if rep.Wins != 1 {
				t.Fatalf("wins %d, want 1", rep.Wins)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(prices) != 1 {
				t.Fatalf("win notices %v, want 1", prices)
			}
			if got := prices[0] == "50"; got != tc.first {
				t.Errorf("clearing price %s: first price %v, want %v", prices[0], got, tc.first)
			}
			if got := rep.Auctions["first_price"].Bids; (got == 1) != tc.first {
				t.Errorf("first_price bids %d, want first price %v", got, tc.first)
			}
		})
	}
}
