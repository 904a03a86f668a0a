package simulator

import (
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// An imp's auction draws (its competitors' bids) are its own: the second imp
// of a request meets the same competitors whether or not the bidder bid on
// the first, so that two runs over the same traffic and seed (simulator ab:
// shading off and on) see the same market on every imp, not only on
// single-imp requests.
func TestAuctionDrawsPerImp(t *testing.T) {
	second := func(bidFirst bool) (wins, wonMicros int64) {
		r, err := NewRunner(Config{Targets: []string{"http://127.0.0.1:9/openrtb2/bid"}, Rate: 1, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		r.stats = NewStats(time.Now(), 0)
		r.notifier = NewNotifier(NoticeConfig{}, false)
		defer r.notifier.Close(time.Now())
		for seq := uint64(1); seq <= 400; seq++ {
			og := &Outgoing{Seq: seq, Req: &openrtb2.BidRequest{ID: "r", AT: 2,
				Imp: []openrtb2.Imp{{ID: "0", Banner: &openrtb2.Banner{}}, {ID: "1", Banner: &openrtb2.Banner{}}}}}
			bids := []openrtb2.Bid{{ImpID: "1", CID: "c1", Price: 4.5}}
			if bidFirst {
				bids = append(bids, openrtb2.Bid{ImpID: "0", CID: "c0", Price: 4.5})
			}
			r.runAuctions(og, time.Now(), &openrtb2.BidResponse{Cur: "USD", SeatBid: []openrtb2.SeatBid{{Bid: bids}}}, "USD")
		}
		c := r.stats.camps["c1"]
		return c.Wins, c.WonMicros
	}
	w1, m1 := second(false)
	w2, m2 := second(true)
	if w1 == 0 || w1 == 400 {
		t.Fatalf("second imp won %d of 400: the test shows nothing", w1)
	}
	if w1 != w2 || m1 != m2 {
		t.Errorf("second imp: %d wins, %d micros without a bid on the first; %d wins, %d micros with one", w1, m1, w2, m2)
	}
}
