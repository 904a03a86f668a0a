package bidder

import (
	"strings"
	"testing"
)

// A fixed-CPM campaign on a fixed-price deal bids the deal price, not its
// CPM: it does not outbid another fixed-CPM campaign whatever the model
// says, and must not keep it from being scored (keepBest, slot.sure).
// hooli-deal (fixed 4.00) on deal-7 at a fixed 1.50; acme-banner (fixed
// 2.00) in the open auction over a 0.50 floor: price() takes the higher
// bid, acme's 2.00.
func TestFixedPriceDealDoesNotKeepOutAHigherFixedBid(t *testing.T) {
	base := string(readReq(t, "site-banner.json"))
	body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
		`"bidfloor":0.5,"bidfloorcur":"USD","pmp":{"private_auction":0,"deals":[{"id":"deal-7","bidfloor":1.5,"at":3}]}`, 1)
	if body == base {
		t.Fatal("fixture changed")
	}
	ts := newTestServer(t, nil)
	r := ts.bidInTime([]byte(body))
	if r.StatusCode() != 200 {
		t.Fatalf("%d %q, want a bid", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	b := onlyBid(t, decodeResponse(t, r))
	if b.CID != "acme-banner" || b.Price != 2 {
		t.Errorf("bid %s on %q at %v, want acme-banner in the open auction at 2.00 (hooli-deal's fixed-price deal bids 1.50)", b.CID, b.DealID, b.Price)
	}
	a := explainBody(t, ts, body)
	if a.Imps[0].Winner != "acme-banner" {
		t.Errorf("explain's winner %q, want acme-banner", a.Imps[0].Winner)
	}
}

// Under learned shading a fixed-CPM candidate's first-price bid is the
// curve's optimum clamped into [its floor, its value]: hooli-deal (fixed
// 4.00) on a first-price deal with a 0.60 floor is shaded to near the
// competition's ~1.00, while acme-banner (fixed 2.00) in the open auction
// faces a 1.90 floor and bids at least that. The higher bid is acme's; the
// sure rule kept it from being scored.
func TestLearnedShadingFixedCPMDoesNotKeepOutAHigherBid(t *testing.T) {
	ts := newTestServer(t, withShading)
	ts.train(t, 12, 1.0)
	base := string(firstPrice(t, "warm-deal"))
	body := strings.Replace(base, `"bidfloor":0.5,"bidfloorcur":"USD"`,
		`"bidfloor":1.9,"bidfloorcur":"USD","pmp":{"private_auction":0,"deals":[{"id":"deal-7","bidfloor":0.6}]}`, 1)
	if body == base {
		t.Fatal("fixture changed")
	}
	r := ts.bidInTime([]byte(body))
	if r.StatusCode() != 200 {
		t.Fatalf("%d %q, want a bid", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	b := onlyBid(t, decodeResponse(t, r))
	if b.CID != "acme-banner" || b.Price < 1.9 {
		t.Errorf("bid %s on %q at %v, want acme-banner in the open auction at 1.90 or more", b.CID, b.DealID, b.Price)
	}
}
