package privacy

import (
	"errors"
	"testing"
	"time"

	"github.com/prebid/go-gpp/constants"
	"github.com/prebid/go-gpp/sections"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/prebid/go-gpp/sections/uspnat"
	"github.com/prebid/go-gpp/sections/usput"

	"github.com/openbidder/openbidder/ortb"
)

// Public TC strings (as they appear in ../shared/ortb-samples and the IAB
// TCF documentation), decoded by hand in TestPublicTCStrings.
const (
	// IAB example: purposes 1-3 consented, vendors 2, 6 and 8.
	tcIABExample = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA"
	// A CMP's real string: purposes 1-10 consented, 623 vendors (1, 2 and 4
	// among them, 3 not), then a publisher-TC segment.
	tcRealCMP = "CPCfkEbPCfkEbERACAENBbCsAP_AAH_AAAAAHetf_X_fb39j-_59_9t0eY1f9_7_v-wzjhfds-8NyPvX_L8X42M7PF36pq4KuR4Eu3LBIQFlHOHUTUmw6okVrTPsak2Mr7NKJ7LEinMbe2dYGHtfn91TuZKYr_7s_9fz__-v_v__79f3r-3_3_vp9X---_e_V399xKB3QBJhqXwAWYljgSTRpVCiBCFYSHQCgAooBhaJrCAhYFOyuAj1BAwAQGoCMCIEGIKMWAQAAAQBIREBIAeCARAEQCAAEAKkBCAAiYBBYAWBgEAAoBoWIEUAQgSEGRwVHKYEBEi0UE8lYAlF3sYYQhlFgBQKP6KjARKEAAAA.YAAAAAAAAAAA"
	// The string the simulator sends: valid TCF v2, no purpose, no vendor.
	tcNothing = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
	// Truncated (its bit field promises 1027 vendors), and a TCF v1 string.
	tcTruncated = "CPItQrlPItQrlAKAfAENBhCsAP_AAHLAAAiQIBtf_X__bX9j"
	tcV1        = "BOPVK28OPVK28ABABAENA8-AAAADkCNQCGoQAAQ"
)

const vendor = 42

func TestPublicTCStrings(t *testing.T) {
	cases := []struct {
		s      string
		vendor uint16
		want   tcfVerdict
	}{
		{tcIABExample, 8, tcfVerdict{ok: true, uses: FreqCap}}, // purposes 1-3: no 4, so no personalization
		{tcIABExample, 3, tcfVerdict{ok: true, uses: None}},    // not one of its vendors
		{tcRealCMP, 1, tcfVerdict{ok: true, uses: All}},
		{tcRealCMP, 3, tcfVerdict{ok: true, uses: None}}, // wrong vendor
		{tcNothing, 1, tcfVerdict{ok: true, uses: None}},
		{tcTruncated, 1, tcfVerdict{}},
		{tcV1, 1, tcfVerdict{}},
	}
	for _, c := range cases {
		if got := decodeTCF(c.s, c.vendor); got != c.want {
			t.Errorf("%.20s... vendor %d: %+v, want %+v", c.s, c.vendor, got, c.want)
		}
	}
}

// req is a request's privacy signals.
type req struct {
	coppa, gdpr int8
	consent     string
	usp, gpp    string
	sid         []int64
	gpc         bool
	country     string // device.geo.country
}

func (r req) build() *ortb.Request {
	or := &ortb.Request{Regs: ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset}}
	flag := func(f int8) int8 {
		switch f {
		case 0:
			return ortb.Unset
		case no:
			return ortb.False
		}
		return f
	}
	or.Regs.COPPA, or.Regs.GDPR = flag(r.coppa), flag(r.gdpr)
	or.Regs.USPrivacy, or.Regs.GPP, or.Regs.GPPSID, or.Regs.GPC = b(r.usp), b(r.gpp), r.sid, r.gpc
	or.User.Consent = b(r.consent)
	or.Device.Geo.Country = b(r.country)
	return or
}

func b(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

const (
	yes = ortb.True
	no  = int8(-2) // 0 in the struct means "unset", so false is spelled out (build reads it as ortb.False)
)

func TestDecide(t *testing.T) {
	all := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	us := func(edit func(c *uspnat.USPNATCoreSegment, gpc *bool)) string { return gppStringOf(usnatSec(edit)) }
	saleOut := func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SaleOptOut = 1 }
	cases := []struct {
		name   string
		vendor int
		r      req
		want   Decision
	}{
		// No signal, or signals that do not apply.
		{"no regs", vendor, req{}, Decision{All, Allowed}},
		{"gdpr 0, junk consent", vendor, req{gdpr: no, consent: "gdprConsentString"}, Decision{All, Allowed}},
		{"gdpr 0, device in Germany", vendor, req{gdpr: no, country: "DEU"}, Decision{All, Allowed}},
		{"gdpr unset, device in the USA", vendor, req{country: "USA"}, Decision{All, Allowed}},

		// regs.gdpr unset (OpenRTB: unknown), but the request says GDPR may
		// apply: a TC string, or a device in the EEA, the UK or Switzerland.
		{"gdpr unset, junk consent", vendor, req{consent: "gdprConsentString"}, Decision{None, GDPRMalformed}},
		{"gdpr unset, consent string", vendor, req{consent: all}, Decision{All, Allowed}},
		{"gdpr unset, nothing consented", vendor, req{consent: tcNothing}, Decision{None, GDPRDenied}},
		{"gdpr unset, device in Germany", vendor, req{country: "DEU"}, Decision{None, GDPRNoConsent}},
		{"gdpr unset, device in France, alpha-2 lowercase", vendor, req{country: "fr"}, Decision{None, GDPRNoConsent}},
		{"gdpr unset, device in the UK, consent", vendor, req{country: "GBR", consent: all}, Decision{All, Allowed}},
		{"gdpr unset, device in Switzerland, no vendor id", 0, req{country: "CHE"}, Decision{None, GDPRNoVendorID}},
		{"coppa 0", vendor, req{coppa: no}, Decision{All, Allowed}},

		// COPPA wins over everything.
		{"coppa", vendor, req{coppa: yes, gdpr: yes, consent: all}, Decision{None, COPPA}},

		// TCF v2 under GDPR, vendor 42 configured.
		{"tcf: purposes 1-4 and vendor consent", vendor, req{gdpr: yes, consent: all}, Decision{All, Allowed}},
		{"tcf: no consent string", vendor, req{gdpr: yes}, Decision{None, GDPRNoConsent}},
		{"tcf: no vendor id configured", 0, req{gdpr: yes, consent: all}, Decision{None, GDPRNoVendorID}},
		{"tcf: nothing consented", vendor, req{gdpr: yes, consent: tcNothing}, Decision{None, GDPRDenied}},
		{"tcf: wrong vendor", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{41, 43}}.encode()}, Decision{None, GDPRDenied}},
		{"tcf: vendor above max vendor id", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{7}}.encode()}, Decision{None, GDPRDenied}},
		{"tcf: vendors as a range", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{1, vendor, 900}, rangeVendors: true}.encode()}, Decision{All, Allowed}},
		{"tcf: purposes 1-2 only", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2}, vendors: []int{vendor}}.encode()}, Decision{FreqCap, GDPRDenied}},
		{"tcf: purpose 2 by legitimate interest", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1}, li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{vendor}}.encode()}, Decision{FreqCap, GDPRDenied}},
		{"tcf: purpose 2 LI, not for this vendor", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1}, li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{41}}.encode()}, Decision{None, GDPRDenied}},
		{"tcf: purposes 3-4 by LI are not enough (v2.2)", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2}, li: []int{3, 4}, vendors: []int{vendor}, vendorsLI: []int{vendor}}.encode()}, Decision{FreqCap, GDPRDenied}},
		{"tcf: no purpose 1", vendor, req{gdpr: yes, consent: tcString{purposes: []int{2, 3, 4}, vendors: []int{vendor}}.encode()}, Decision{None, GDPRDenied}},
		{"tcf: publisher forbids purpose 2 for us", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor},
			restrictions: []restriction{{2, restrictNotAllowed, []int{vendor}}}}.encode()}, Decision{Personalize, GDPRDenied}},
		{"tcf: publisher requires consent for purpose 2, only LI", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 3, 4}, li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{vendor},
			restrictions: []restriction{{2, restrictConsent, []int{vendor}}}}.encode()}, Decision{Personalize, GDPRDenied}},
		{"tcf: publisher requires LI for purpose 4", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor},
			restrictions: []restriction{{4, restrictLI, []int{vendor}}}}.encode()}, Decision{FreqCap, GDPRDenied}},
		{"tcf: restriction on another vendor", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor},
			restrictions: []restriction{{2, restrictNotAllowed, []int{41}}}}.encode()}, Decision{All, Allowed}},
		{"tcf: policy version 2 (TCF 2.0) string", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}, policy: 2}.encode()}, Decision{All, Allowed}},
		{"tcf: purpose one treatment is not consent", vendor, req{gdpr: yes, consent: tcString{purposes: []int{2, 3, 4}, vendors: []int{vendor}, p1Treatment: true}.encode()}, Decision{None, GDPRDenied}},
		{"tcf: real CMP string, vendor 1", 1, req{gdpr: yes, consent: tcRealCMP}, Decision{All, Allowed}},
		{"tcf: real CMP string, vendor 3", 3, req{gdpr: yes, consent: tcRealCMP}, Decision{None, GDPRDenied}},
		{"tcf: IAB example, vendor 8", 8, req{gdpr: yes, consent: tcIABExample}, Decision{FreqCap, GDPRDenied}},
		{"tcf: with other segments", vendor, req{gdpr: yes, consent: all + ".YAAAAAAAAAAA"}, Decision{All, Allowed}},

		// Malformed TC strings: no consent, never an error.
		{"tcf malformed: placeholder", vendor, req{gdpr: yes, consent: "gdprConsentString"}, Decision{None, GDPRMalformed}},
		{"tcf malformed: truncated", vendor, req{gdpr: yes, consent: tcTruncated}, Decision{None, GDPRMalformed}},
		{"tcf malformed: TCF v1", vendor, req{gdpr: yes, consent: tcV1}, Decision{None, GDPRMalformed}},
		{"tcf malformed: two characters", vendor, req{gdpr: yes, consent: "CP"}, Decision{None, GDPRMalformed}},
		{"tcf malformed: not base64", vendor, req{gdpr: yes, consent: "C%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%"}, Decision{None, GDPRMalformed}},
		{"tcf malformed: cut short", vendor, req{gdpr: yes, consent: all[:len(all)-8]}, Decision{None, GDPRMalformed}},

		// us_privacy.
		{"usp: notice, no opt-out", vendor, req{usp: "1YNN"}, Decision{All, Allowed}},
		{"usp: not applicable", vendor, req{usp: "1---"}, Decision{All, Allowed}},
		{"usp: opted out", vendor, req{usp: "1YYN"}, Decision{None, USPrivacyOptOut}},
		{"usp: opted out, lowercase", vendor, req{usp: "1nyy"}, Decision{None, USPrivacyOptOut}},
		{"usp malformed: placeholder", vendor, req{usp: "uspConsentString"}, Decision{None, USPrivacyMalformed}},
		{"usp malformed: version 2", vendor, req{usp: "2YNN"}, Decision{None, USPrivacyMalformed}},
		{"usp malformed: short", vendor, req{usp: "1YN"}, Decision{None, USPrivacyMalformed}},
		{"usp opt-out beside valid tcf", vendor, req{gdpr: yes, consent: all, usp: "1YYY"}, Decision{None, USPrivacyOptOut}},

		// Global Privacy Control outside GPP (regs.ext.gpc): an opt-out,
		// even beside a us_privacy string that allows everything.
		{"gpc", vendor, req{gpc: true}, Decision{None, GPCOptOut}},
		{"gpc beside usp 1YNN", vendor, req{usp: "1YNN", gpc: true}, Decision{None, GPCOptOut}},
		{"gpc beside valid tcf", vendor, req{gdpr: yes, consent: all, gpc: true}, Decision{None, GPCOptOut}},

		// GPP US sections.
		{"gpp usnat: no opt-out", vendor, req{gpp: us(nil), sid: []int64{7}}, Decision{All, Allowed}},
		// Sections 3 (header) and 4 (signal integrity) need not be listed;
		// listing them is allowed (4 read as a missing section before).
		{"gpp usnat: gpp_sid lists 3 and 4 too", vendor, req{gpp: us(nil), sid: []int64{3, 4, 7}}, Decision{All, Allowed}},
		{"gpp usnat: IAB example", vendor, req{gpp: "DBABL~BVVqAAEABCA.QA", sid: []int64{7}}, Decision{All, Allowed}},
		{"gpp usnat: sale opt-out", vendor, req{gpp: us(saleOut), sid: []int64{7}}, Decision{None, GPPOptOut}},
		{"gpp usnat: opt-out, no gpp_sid (every section applies)", vendor, req{gpp: us(saleOut)}, Decision{None, GPPOptOut}},
		{"gpp usnat: opt-out in a section that does not apply", vendor, req{gpp: gppStringOf(usnatSec(saleOut), caSec(nil)), sid: []int64{8}}, Decision{All, Allowed}},
		{"gpp usnat: version 2 layout", vendor, req{gpp: us(func(c *uspnat.USPNATCoreSegment, _ *bool) { c.Version = 2 }), sid: []int64{7}}, Decision{None, GPPUnsupported}},
		{"gpp usca: sharing opt-out", vendor, req{gpp: gppStringOf(caSec(func(c *uspca.USPCACoreSegment) { c.SharingOptOut = 1 })), sid: []int64{8}}, Decision{None, GPPOptOut}},
		{"gpp usca: clean", vendor, req{gpp: gppStringOf(caSec(nil)), sid: []int64{8}}, Decision{All, Allowed}},
		{"gpp usva: targeted advertising opt-out", vendor, req{gpp: gppStringOf(vaSec(func(c *sections.CommonUSCoreSegment) { c.TargetedAdvertisingOptOut = 1 })), sid: []int64{9}}, Decision{None, GPPOptOut}},
		{"gpp usva: clean", vendor, req{gpp: gppStringOf(vaSec(nil)), sid: []int64{9}}, Decision{All, Allowed}},
		{"gpp usco: GPC", vendor, req{gpp: gppStringOf(coSec(nil, true)), sid: []int64{10}}, Decision{None, GPPOptOut}},
		{"gpp usct: known child", vendor, req{gpp: gppStringOf(ctSec(func(c *sections.CommonUSCoreSegment) { c.KnownChildSensitiveDataConsents[0] = 1 })), sid: []int64{12}}, Decision{None, GPPOptOut}},
		{"gpp usut: sale notice not given", vendor, req{gpp: gppStringOf(utSec(func(c *usput.USPUTCoreSegment) { c.SaleOptOutNotice = 2 })), sid: []int64{11}}, Decision{None, GPPOptOut}},
		{"gpp usut: clean", vendor, req{gpp: gppStringOf(utSec(nil)), sid: []int64{11}}, Decision{All, Allowed}},
		{"gpp uspv1: opted out", vendor, req{gpp: gppStringOf(rawSection{constants.SectionUSPV1, "1YYN"}), sid: []int64{6}}, Decision{None, GPPOptOut}},
		{"gpp uspv1: no opt-out", vendor, req{gpp: gppStringOf(rawSection{constants.SectionUSPV1, "1YNN"}), sid: []int64{6}}, Decision{All, Allowed}},
		{"gpp: section listed but absent", vendor, req{gpp: gppStringOf(caSec(nil)), sid: []int64{7}}, Decision{None, GPPMalformed}},
		{"gpp: gpp_sid without a string", vendor, req{sid: []int64{7}}, Decision{None, GPPMalformed}},
		{"gpp: undecodable usnat section", vendor, req{gpp: gppStringOf(rawSection{constants.SectionUSPNAT, "!!"}), sid: []int64{7}}, Decision{None, GPPMalformed}},
		{"gpp: section this bidder cannot read", vendor, req{gpp: gppStringOf(rawSection{13, "BAAAAAA"}), sid: []int64{13}}, Decision{None, GPPUnsupported}},
		{"gpp: unreadable section that does not apply", vendor, req{gpp: gppStringOf(rawSection{13, "BAAAAAA"}, caSec(nil)), sid: []int64{8}}, Decision{All, Allowed}},
		{"gpp: gpp_sid beyond 63", vendor, req{gpp: us(nil), sid: []int64{7, 64}}, Decision{None, GPPUnsupported}},
		{"gpp: gpp_sid -1 and 3 name no section", vendor, req{gpp: us(nil), sid: []int64{-1, 3}}, Decision{All, Allowed}},
		{"gpp malformed: placeholder", vendor, req{gpp: "gppString", sid: []int64{7}}, Decision{None, GPPMalformed}},
		{"gpp malformed: bad header", vendor, req{gpp: "header~1YNN", sid: []int64{6}}, Decision{None, GPPMalformed}},
		{"gpp malformed: header counts two sections, one sent", vendor, req{gpp: "DBABzw~1YNN"}, Decision{None, GPPMalformed}},

		// TCF inside GPP.
		{"gpp tcfeuv2: listed, valid", vendor, req{gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}), sid: []int64{2}}, Decision{All, Allowed}},
		{"gpp tcfeuv2: listed, nothing consented", vendor, req{gpp: "DBABMA~" + tcNothing, sid: []int64{2}}, Decision{None, GDPRDenied}},
		{"gpp tcfeuv2: no gpp_sid, gdpr 1", vendor, req{gdpr: yes, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all})}, Decision{All, Allowed}},
		{"gpp tcfeuv2: no gpp_sid, so it applies", vendor, req{gpp: "DBABMA~" + tcNothing}, Decision{None, GDPRDenied}},
		// Both sent: each must allow a use (the audit found user.consent
		// winning over a GPP section that refused everything).
		{"gpp tcfeuv2 and user.consent: the stricter applies", vendor, req{gdpr: yes, consent: all, gpp: "DBABMA~" + tcNothing, sid: []int64{2}}, Decision{None, GDPRDenied}},
		{"gpp tcfeuv2 and user.consent: the stricter applies, either way", vendor, req{gdpr: yes, consent: tcNothing, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}), sid: []int64{2}}, Decision{None, GDPRDenied}},
		{"gpp tcfeuv2 and user.consent: both allow", vendor, req{gdpr: yes, consent: all, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}), sid: []int64{2}}, Decision{All, Allowed}},
		{"gpp tcfeuv2 malformed beside a valid user.consent", vendor, req{gdpr: yes, consent: all, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, "CP"}), sid: []int64{2}}, Decision{None, GDPRMalformed}},
		{"gpp tcfeuv2: malformed", vendor, req{gpp: gppStringOf(rawSection{constants.SectionTCFEU2, "CP"}), sid: []int64{2}}, Decision{None, GDPRMalformed}},
		{"gpp_sid 2 without any TC string", vendor, req{sid: []int64{2}}, Decision{None, GDPRNoConsent}},
		{"gpp tcfeuv2 + usnat opt-out", vendor, req{gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}, usnatSec(saleOut)), sid: []int64{2, 7}}, Decision{None, GPPOptOut}},
	}
	policies := map[int][2]*Policy{}
	for _, c := range cases {
		ps, ok := policies[c.vendor]
		if !ok {
			ps = [2]*Policy{newPolicy(t, Options{VendorID: c.vendor}), newPolicy(t, Options{VendorID: c.vendor, CacheEntries: -1})}
			policies[c.vendor] = ps
		}
		for i, p := range ps {
			for pass := range 2 { // decoded, then (with a cache) from the cache
				got := p.Decide(c.r.build())
				if got != c.want {
					t.Errorf("%s (cache %v, pass %d): %v, want %v", c.name, i == 0, pass, got, c.want)
				}
				p.cache.wait()
			}
		}
	}
}

func (d Decision) String() string { return useName(d.Uses) + "/" + d.Why.String() }

func useName(u Use) string {
	switch u {
	case All:
		return "all"
	case FreqCap:
		return "freqcap"
	case Personalize:
		return "personalize"
	}
	return "none"
}

func newPolicy(t testing.TB, o Options) *Policy {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestOptions(t *testing.T) {
	for _, c := range []struct {
		o  Options
		ok bool
	}{
		{Options{}, true},
		{Options{VendorID: 65535, CacheEntries: -1, CacheTTL: time.Minute}, true},
		{Options{VendorID: -1}, false},
		{Options{VendorID: 65536}, false},
		{Options{CacheTTL: -time.Second}, true}, // no expiry
	} {
		_, err := New(c.o)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrOptions) {
			t.Errorf("New(%+v) = %v, want ok %v", c.o, err, c.ok)
		}
	}
}

// The cache holds one entry per distinct string and kind: a repeated string
// is not decoded again, and junk sent both as a TC string and as a GPP
// string is decided as each.
func TestCacheDecodesOnce(t *testing.T) {
	p := newPolicy(t, Options{VendorID: vendor})
	all := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	for range 3 {
		if d := p.Decide(req{gdpr: yes, consent: all}.build()); d != (Decision{All, Allowed}) {
			t.Fatal(d)
		}
		p.cache.wait()
	}
	if s := p.Stats(); s.Decodes != 1 || s.Malformed != 0 {
		t.Fatalf("stats %+v, want one decode", s)
	}
	junk := "gdprConsentString"
	for range 2 {
		if d := p.Decide(req{gdpr: yes, consent: junk, gpp: junk}.build()); d != (Decision{None, GPPMalformed}) {
			t.Fatal(d)
		}
		p.cache.wait()
	}
	if s := p.Stats(); s.Decodes < 3 || s.Malformed < 2 {
		t.Fatalf("stats %+v, want the junk decoded as both kinds", s)
	}
	p.Close()
	if d := p.Decide(req{gdpr: yes, consent: all}.build()); d != (Decision{All, Allowed}) {
		t.Fatalf("after Close: %v", d) // uncached, still right
	}
}

// TestBidderStrings pins the literal consent strings bidder/privacy_test.go
// uses to what they were built as.
func TestBidderStrings(t *testing.T) {
	saleOut := func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SaleOptOut = 1 }
	for _, c := range []struct{ literal, built string }{
		{"CO5rKAAO5rKAAAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA", tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{42}}.encode()},
		{"CO5rKAAO5rKAAAHABBENBkEgAPAAAAAAAAAAAVgAAAAAAoAAAAA", tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{41, 43}}.encode()},
		{"CO5rKAAO5rKAAAHABBENBkEgAMAAAAAAAAAAAVAAAAAAAQAAAAA", tcString{purposes: []int{1, 2}, vendors: []int{42}}.encode()},
		{"DBABLA~BVVaAAAAAgA.QA", gppStringOf(usnatSec(saleOut))},
		{"DBABLA~BVVqAAAAAgA.QA", gppStringOf(usnatSec(nil))},
	} {
		if c.literal != c.built {
			t.Errorf("literal %s, built %s", c.literal, c.built)
		}
	}
}
