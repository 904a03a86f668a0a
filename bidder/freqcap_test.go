package bidder

import (
	"strings"
	"testing"
	"time"
)

// A frequency cap bounds the impressions a user sees, so one request must
// not bid a capped campaign on more of its imps than the user has left:
// with globex-cpc capped at 3 an hour, a request of six 320x50 imps got six
// globex bids, and six wins showed the ad six times (found by the red-team
// pass with a multi-imp request).
func TestFreqCapHoldsWithinARequest(t *testing.T) {
	s, _ := budgetTestServer(t)
	ts := &testServer{Server: s}
	imp := `{"id":"I","banner":{"w":320,"h":50},"bidfloor":0.1,"secure":1}`
	var imps []string
	for _, id := range []string{"1", "2", "3", "4", "5", "6"} {
		imps = append(imps, strings.Replace(imp, `"I"`, `"`+id+`"`, 1))
	}
	body := []byte(`{"id":"req-fc","imp":[` + strings.Join(imps, ",") + `],"site":{"domain":"site-1.example.com","publisher":{"id":"pub-1"}},` +
		`"device":{"devicetype":2,"os":"Linux","geo":{"country":"GBR"}},"user":{"id":"u-capped"}}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.bid(body)
		if r.StatusCode() == 200 {
			n := 0
			for _, sb := range decodeResponse(t, r).SeatBid {
				for _, b := range sb.Bid {
					if b.CID == "globex-cpc" {
						n++
					}
				}
			}
			if n == 0 || n > 3 {
				t.Fatalf("globex-cpc (frequency cap 3) bid on %d imps of one request, want 1 to 3", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bid within 10 s: %d %s", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
