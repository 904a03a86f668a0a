package bidder

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/campaigns"
)

// DSA transparency (regs.ext.dsa, the IAB's extension for the EU Digital
// Services Act): a request that requires it (dsarequired 2 or 3) gets bids
// only from campaigns that give it, each carrying bid.ext.dsa, and none
// where the publisher cannot render the notice (pubrender 0: the bidder's
// ads do not render it); one that only supports it (1) gets bid.ext.dsa
// from the campaigns that give it. Exchanges drop a bid without the
// transparency they require (a privacy audit: the bidder read no dsa).
func TestBidDSATransparency(t *testing.T) {
	for _, reveal := range []bool{false, true} { // bid.ext with dsa alone, and beside pctr
		t.Run(fmt.Sprintf("reveal_pctr=%v", reveal), func(t *testing.T) {
			testBidDSATransparency(t, reveal)
		})
	}
}

func testBidDSATransparency(t *testing.T, reveal bool) {
	ts := newTestServer(t, func(c *Config) { c.Pricing.RevealPCTR = reveal })
	plain := testCampaignConfigs(t)
	var withDSA []campaigns.Config
	for _, c := range plain {
		c.DSA = &campaigns.DSAConfig{Behalf: `Acme "Shoes" GmbH`, Paid: "Acme Holding"}
		withDSA = append(withDSA, c)
	}
	base := string(readReq(t, "site-banner.json"))
	body := func(dsa string) []byte {
		if dsa == "" {
			return []byte(base)
		}
		return []byte(strings.TrimSuffix(strings.TrimSpace(base), "}") + `,"regs":{"ext":{"dsa":` + dsa + `}}}`)
	}
	type bidExt struct {
		PCTR *float64
		DSA  *struct {
			Behalf, Paid string
			AdRender     *int
		}
	}
	for _, tc := range []struct {
		name, dsa string
		camps     []campaigns.Config
		bid, ext  bool
	}{
		{"required, no campaign gives it", `{"dsarequired":3,"pubrender":2}`, plain, false, false},
		{"required, given", `{"dsarequired":2,"pubrender":2,"datatopub":2}`, withDSA, true, true},
		{"required, the publisher cannot render it", `{"dsarequired":3,"pubrender":0}`, withDSA, false, false},
		{"required, pubrender absent", `{"dsarequired":"2"}`, withDSA, true, true},
		{"supported", `{"dsarequired":1,"pubrender":1}`, withDSA, true, true},
		{"supported, the publisher cannot render it", `{"dsarequired":1,"pubrender":0}`, withDSA, true, false},
		{"supported, none given", `{"dsarequired":1}`, plain, true, false},
		{"not asked", "", withDSA, true, false},
		{"not required", `{"dsarequired":0}`, withDSA, true, false},
		// As encoders write integers (an outside audit's 2.0 got a bid
		// from a campaign without DSA data), and what cannot be read.
		{"required as 2.0", `{"dsarequired":2.0,"pubrender":1}`, plain, false, false},
		{"required as 2.0, given", `{"dsarequired":2.0,"pubrender":1.0}`, withDSA, true, true},
		{"unreadable dsarequired", `{"dsarequired":true,"pubrender":1}`, plain, false, false},
		{"unreadable dsarequired, given", `{"dsarequired":"2 ","pubrender":1}`, withDSA, true, true},
		{"unreadable pubrender", `{"dsarequired":2,"pubrender":"yes"}`, withDSA, false, false},
		{"dsa not an object", `[{"dsarequired":2,"pubrender":1}]`, withDSA, false, false},
	} {
		snap, err := campaigns.Compile(tc.camps)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.SetCampaigns(snap); err != nil {
			t.Fatal(err)
		}
		resp := ts.bidInTime(body(tc.dsa))
		if got := resp.StatusCode() == 200; got != tc.bid {
			t.Errorf("%s: status %d (%s), want a bid %v", tc.name, resp.StatusCode(), resp.Header.Peek("x-nobid-reason"), tc.bid)
			continue
		}
		if !tc.bid {
			continue
		}
		b := onlyBid(t, decodeResponse(t, resp))
		var ext bidExt
		if len(b.Ext) == 0 && (reveal || tc.ext) {
			t.Fatalf("%s: no bid.ext", tc.name)
		}
		if err := json.Unmarshal(b.Ext, &ext); len(b.Ext) > 0 && err != nil {
			t.Fatalf("%s: bid.ext %s: %v", tc.name, b.Ext, err)
		}
		if (ext.PCTR != nil) != reveal {
			t.Errorf("%s: bid.ext %s, want pctr %v", tc.name, b.Ext, reveal)
		}
		if (ext.DSA != nil) != tc.ext {
			t.Errorf("%s: bid.ext %s, want dsa %v", tc.name, b.Ext, tc.ext)
		} else if tc.ext && (ext.DSA.Behalf != `Acme "Shoes" GmbH` || ext.DSA.Paid != "Acme Holding" || ext.DSA.AdRender == nil || *ext.DSA.AdRender != 0) {
			t.Errorf("%s: bid.ext.dsa %s", tc.name, b.Ext)
		}
	}
}
