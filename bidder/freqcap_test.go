package bidder

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
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
		`"device":{"devicetype":2,"os":"Linux","geo":{"country":"GBR"}},"regs":{"gdpr":0},"user":{"id":"u-capped"}}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.bidInTime(body)
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

// A bid counts against its campaign's frequency cap from the moment it is
// placed, not from its impression pixel: a user's requests before the first
// pixel fired (a page's slots, the same impression offered through several
// exchanges) each bid globex-cpc, capped at 3 an hour, and each of those bids
// could win and show. Its loss notice frees the count; its pixel turns it
// into an impression.
func TestFreqCapCountsPendingBids(t *testing.T) {
	s, _ := budgetTestServer(t)
	ts := &testServer{Server: s}
	n := 0
	body := func() []byte {
		n++
		return []byte(`{"id":"req-pend-` + strconv.Itoa(n) + `","imp":[{"id":"1","banner":{"w":320,"h":50},"bidfloor":0.1,"secure":1}],` +
			`"site":{"domain":"site-1.example.com","publisher":{"id":"pub-1"}},` +
			`"device":{"devicetype":2,"os":"Linux","geo":{"country":"GBR"}},"regs":{"gdpr":0},"user":{"id":"u-pending"}}`)
	}
	// globex answers the first request once its lease is in.
	var bids []openrtb2.Bid
	deadline := time.Now().Add(10 * time.Second)
	for len(bids) == 0 {
		if r := ts.bidInTime(body()); r.StatusCode() == 200 {
			b := onlyBid(t, decodeResponse(t, r))
			if b.CID != "globex-cpc" {
				t.Fatalf("first bid by %s, want globex-cpc", b.CID)
			}
			bids = append(bids, b)
		} else if time.Now().After(deadline) {
			t.Fatalf("no bid within 10 s: %d %s", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// next is the campaign that bids the next request ("" for none).
	next := func() string {
		t.Helper()
		r := ts.bidInTime(body())
		if r.StatusCode() != 200 {
			return ""
		}
		b := onlyBid(t, decodeResponse(t, r))
		if b.CID == "globex-cpc" {
			bids = append(bids, b)
		}
		return b.CID
	}
	for i := 2; i <= 3; i++ {
		if c := next(); c != "globex-cpc" {
			t.Fatalf("request %d of the user: %q bid, want globex-cpc (2 of its 3 pending)", i, c)
		}
	}
	if c := next(); c == "globex-cpc" {
		t.Fatal("a 4th globex-cpc bid with 3 pending and a cap of 3")
	}
	ts.fire(t, bids[0].LURL, "0", "102", "") // outbid: its count ends
	if c := next(); c != "globex-cpc" {
		t.Fatalf("after a loss: %q bid, want globex-cpc", c)
	}
	if c := next(); c == "globex-cpc" {
		t.Fatal("a bid over the cap after the loss was replaced")
	}
	ts.fire(t, bids[1].NURL, "1.00", "", "")
	pixel := between(bids[1].AdM, `<img src="`, `"`)
	ts.fire(t, pixel, "", "", "") // shown: an impression now, no longer pending
	if c := next(); c == "globex-cpc" {
		t.Fatal("a bid over the cap after an impression was counted")
	}
	ts.fire(t, bids[2].LURL, "0", "102", "")
	ts.fire(t, bids[2].LURL, "0", "102", "") // a replayed loss ends nothing more
	if c := next(); c != "globex-cpc" {
		t.Fatalf("after the third bid's loss: %q bid, want globex-cpc", c)
	}
	if c := next(); c == "globex-cpc" {
		t.Fatal("a replayed loss notice freed another count")
	}
	// One bid's pixel and its loss notice end its count once: the second of
	// them must not end another bid's (an outside audit showed a user 3
	// impressions under a cap of 2 this way). Two pending now (bids[3],
	// bids[4]) and one impression: the cap of 3 is reached.
	last := bids[len(bids)-1]
	ts.fire(t, between(last.AdM, `<img src="`, `"`), "", "", "") // shown: counted, its pending count ended
	ts.fire(t, last.LURL, "0", "102", "")                        // then its loss: ends nothing more
	if c := next(); c == "globex-cpc" {
		t.Fatal("a bid's pixel and its loss notice freed two counts")
	}
}

// globexBidder is a server whose pending counts lapse after 20 ms (so that
// only counted impressions stop bids) and a bid for user that tells
// whether globex-cpc (capped at 3 an hour) bid.
func globexBidder(t *testing.T, user string) (*testServer, func() (openrtb2.Bid, bool)) {
	s, _ := budgetTestServerWith(t, budget.Config{FreqPendingTTL: 20 * time.Millisecond})
	ts := &testServer{Server: s}
	n := 0
	return ts, func() (openrtb2.Bid, bool) {
		t.Helper()
		n++
		r := ts.bidInTime([]byte(`{"id":"req-` + user + `-` + strconv.Itoa(n) + `","imp":[{"id":"1","banner":{"w":320,"h":50},"bidfloor":0.1,"secure":1}],` +
			`"site":{"domain":"site-1.example.com","publisher":{"id":"pub-1"}},` +
			`"device":{"devicetype":2,"os":"Linux","geo":{"country":"GBR"}},"regs":{"gdpr":0},"user":{"id":"` + user + `"}}`))
		if r.StatusCode() != 200 {
			return openrtb2.Bid{}, false
		}
		b := onlyBid(t, decodeResponse(t, r))
		return b, b.CID == "globex-cpc"
	}
}

// firstGlobexBid is globexBidder's first globex-cpc bid: it answers once
// its lease is in (within 10 s).
func firstGlobexBid(t *testing.T, bid func() (openrtb2.Bid, bool)) openrtb2.Bid {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, ok := bid(); ok {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatal("no globex-cpc bid within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A billed impression counts toward the cap whether or not its pixel fires
// (a blocked tracker), and once when it does: the first of its bill and its
// pixel counts it. Only the pixel counted, and a user whose pixels never
// fired saw the campaign again each time the pending count lapsed (an
// outside audit: 6 billed impressions in a minute under a cap of 2 an hour).
// The pending TTL is short here so that only counted impressions stop bids.
func TestFreqCapCountsBilledImpressions(t *testing.T) {
	ts, bid := globexBidder(t, "u-billed")
	pixel := func(b openrtb2.Bid) { ts.fire(t, between(b.AdM, `<img src="`, `"`), "", "", "") }
	lapse := func() { time.Sleep(40 * time.Millisecond) } // past the pending TTL
	b1 := firstGlobexBid(t, bid)
	ts.fire(t, b1.BURL, "1.00", "", "") // billed, then its pixel: one impression
	pixel(b1)
	lapse()
	b2, ok := bid()
	if !ok {
		t.Fatal("second bid refused: a bill and its pixel counted twice?")
	}
	ts.fire(t, b2.BURL, "1.00", "", "") // billed, pixel blocked: one impression
	lapse()
	b3, ok := bid()
	if !ok {
		t.Fatal("third bid refused with two impressions and a cap of 3")
	}
	pixel(b3) // pixel, then its bill: one impression
	ts.fire(t, b3.BURL, "1.00", "", "")
	lapse()
	if _, ok := bid(); ok {
		t.Fatal("a fourth globex-cpc bid with three billed impressions and a cap of 3 an hour")
	}
}

// A won impression counts toward the cap when its win notice is all that
// comes (the charging notice on a charge-on-win exchange, which may never
// fire the billing URL; a provisional charge that stands on a billing
// one), once with its bill and pixel. Only a bill or a pixel counted: an
// outside audit's user, whose wins alone were charged, saw 2 new
// impressions every freq_pending_ttl under a cap of 2 an hour.
func TestFreqCapCountsWonImpressions(t *testing.T) {
	ts, bid := globexBidder(t, "u-won")
	b1 := firstGlobexBid(t, bid)
	lapse := func() { time.Sleep(40 * time.Millisecond) } // past the pending TTL
	ts.fire(t, b1.NURL, "1.00", "", "")                   // won: one impression
	ts.fire(t, b1.BURL, "1.00", "", "")                   // its bill and pixel count it no more
	ts.fire(t, between(b1.AdM, `<img src="`, `"`), "", "", "")
	lapse()
	b2, ok := bid()
	if !ok {
		t.Fatal("second bid refused: a win, its bill and its pixel counted more than once?")
	}
	ts.fire(t, b2.NURL, "1.00", "", "") // won, no bill, pixel blocked
	lapse()
	b3, ok := bid()
	if !ok {
		t.Fatal("third bid refused with two impressions and a cap of 3")
	}
	ts.fire(t, b3.NURL, "1.00", "", "")
	lapse()
	if _, ok := bid(); ok {
		t.Fatal("a fourth globex-cpc bid with three won impressions and a cap of 3 an hour")
	}
}

// A frequency cap is per person, and this buyer knows a person by its
// buyeruid on every exchange; user.id is each exchange's own id for them.
// The key took user.id first, so one person reached through four exchanges
// (four user.ids, one buyeruid) got four globex-cpc bids against a cap of 3
// (over HTTP on a built bidder: fitpulse-freqcap, capped at 2 an hour, bid
// and showed five times to one buyeruid under five exchange ids).
func TestFreqCapKeyedByBuyerUID(t *testing.T) {
	s, _ := budgetTestServer(t)
	ts := &testServer{Server: s}
	body := func(i int) []byte {
		return []byte(`{"id":"req-x-` + strconv.Itoa(i) + `","imp":[{"id":"1","banner":{"w":320,"h":50},"bidfloor":0.1,"secure":1}],` +
			`"site":{"domain":"site-1.example.com","publisher":{"id":"pub-1"}},` +
			`"device":{"devicetype":2,"os":"Linux","geo":{"country":"GBR"}},"regs":{"gdpr":0},` +
			`"user":{"id":"exchange-` + strconv.Itoa(i) + `-user","buyeruid":"ours-42"}}`)
	}
	// globex answers once its lease is in.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.bidInTime(body(0))
		if r.StatusCode() == 200 {
			if b := onlyBid(t, decodeResponse(t, r)); b.CID != "globex-cpc" {
				t.Fatalf("first bid by %s, want globex-cpc", b.CID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bid within 10 s: %d %s", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := 1
	for i := 1; i <= 3; i++ {
		if r := ts.bidInTime(body(i)); r.StatusCode() == 200 && onlyBid(t, decodeResponse(t, r)).CID == "globex-cpc" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("globex-cpc (cap 3) bid %d times for one buyeruid under 4 exchange user ids, want 3", n)
	}
}

// A user's concurrent requests (a page's slots, header bidding's parallel
// calls) each read how many impressions the user has left before any of
// them counted its bid: the check (freqLeft, at targeting) and the count
// (at the hold) were apart, so each request saw the last impression left
// and each bid. Over HTTP on a built bidder, 8 concurrent requests of one
// user got up to 8 fitpulse-freqcap bids against its cap of 2 (4 trials of
// 20). This test runs that interleaving in order: two requests' checks,
// then their holds. The second hold must be refused (frequency_cap).
func TestFreqCapConcurrentRequests(t *testing.T) {
	s, m := budgetTestServer(t)
	cat := s.catalog.Load()
	var camp *campaigns.Campaign
	for _, c := range cat.snap.Campaigns {
		if c.ID == "globex-cpc" {
			camp = c
		}
	}
	if camp == nil || camp.FreqCap.Count != 3 {
		t.Fatal("testdata has no globex-cpc capped at 3")
	}
	const user = 0x5eed
	now := time.Now()
	deadline := now.Add(10 * time.Second)
	for m.Allow(m.Handle(camp.ID), 1000, time.Now()) != budget.DecisionOK { // its lease
		if time.Now().After(deadline) {
			t.Fatal("no lease within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 2 { // two bids placed: one impression left
		if _, r := cat.money.hold(camp.Index, 1000, user, now); r != reasonNone {
			t.Fatalf("hold %d: %v", i, r)
		}
	}
	a := freqLeftFor(cat.money, camp, user, now) // request A's check
	b := freqLeftFor(cat.money, camp, user, now) // request B's, before A's hold
	if a != 1 || b != 1 {
		t.Fatalf("left %d and %d, want 1 each", a, b)
	}
	if _, r := cat.money.hold(camp.Index, 1000, user, now); r != reasonNone {
		t.Fatalf("request A's hold: %v, want placed", r)
	}
	if id, r := cat.money.hold(camp.Index, 1000, user, now); r != reasonFreqCap {
		t.Fatalf("request B's hold: id %d, %v; want refused (frequency_cap): the user's 4th bid against a cap of 3", id, r)
	}
}

// An impression pixel or a click of a bid whose loss notice came first (no
// win or bill) is answered and not counted: the markup cannot have been
// shown. Counted, the pixels of lost bids used up a user's cap (an outside
// audit: two lost bids' pixels, cap 2 an hour) and showed as impressions
// and clicks. A pixel of a bid with no loss still counts (the control).
func TestTrackersAfterALossAreNotCounted(t *testing.T) {
	ts, bid := globexBidder(t, "u-lost")
	b, ok := firstGlobexBid(t, bid), true
	pixel := func(b openrtb2.Bid) { ts.fire(t, between(b.AdM, `<img src="`, `"`), "", "", "") }
	click := func(b openrtb2.Bid) {
		u, err := url.Parse(between(b.AdM, `<a href="`, `"`))
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.do("GET", u.RequestURI(), nil); r.StatusCode() != 302 {
			t.Fatalf("click: %d", r.StatusCode())
		}
	}
	lapse := func() { time.Sleep(40 * time.Millisecond) } // past the pending TTL
	st := ts.m.campaign("globex-cpc")
	for i := range 4 { // a cap of 3
		ts.fire(t, b.LURL, "0", "102", "")
		pixel(b)
		click(b)
		lapse()
		if b, ok = bid(); !ok {
			t.Fatalf("bid %d refused after %d lost bids' pixels: counted toward the cap", i+2, i+1)
		}
	}
	if got := ts.m.trackersAfterLoss.load(); got != 8 || st.imps.load() != 0 || st.clicks.load() != 0 {
		t.Fatalf("after 4 lost bids' pixels and clicks: after-loss %d, impressions %d, clicks %d; want 8, 0, 0",
			got, st.imps.load(), st.clicks.load())
	}
	for i := range 3 {
		pixel(b) // shown, no loss: counted
		lapse()
		if b, ok = bid(); !ok && i < 2 {
			t.Fatalf("bid refused after %d impressions under a cap of 3", i+1)
		}
	}
	if ok {
		t.Fatal("a bid with three impressions counted and a cap of 3 an hour")
	}
}
