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
		{tcIABExample, 8, tcfVerdict{ok: true, uses: FreqCap, basic: true}},       // purposes 1-3: no 4, so no personalization
		{tcIABExample, 3, tcfVerdict{ok: true, uses: None}},                       // not one of its vendors
		{tcRealCMP, 1, tcfVerdict{ok: true, uses: All, basic: true, train: true}}, // purposes 1-10
		{tcRealCMP, 3, tcfVerdict{ok: true, uses: None}},                          // wrong vendor
		{tcNothing, 1, tcfVerdict{ok: true, uses: None}},
		{tcTruncated, 1, tcfVerdict{}},
		{tcV1, 1, tcfVerdict{}},
	}
	for _, c := range cases {
		if got := decodeTCF(c.s, c.vendor, false); got != c.want {
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
	// 2.5 ext twins that differ from the 2.6 field (ortb keeps them), and
	// user.geo.country.
	uspExt, gppExt, consentExt, userCountry string
	lmt, dnt                                int8 // device.lmt, device.dnt (0: unset)
	atts                                    int64
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
	or.Device.LMT, or.Device.DNT, or.Device.ATTS = flag(r.lmt), flag(r.dnt), r.atts
	or.Regs.USPrivacyExt, or.Regs.GPPExt, or.User.ConsentExt, or.User.Country = b(r.uspExt), b(r.gppExt), b(r.consentExt), b(r.userCountry)
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
		{"no regs", vendor, req{}, Decision{Uses: All, Why: Allowed}},
		{"gdpr 0, junk consent", vendor, req{gdpr: no, consent: "gdprConsentString"}, Decision{Uses: All, Why: Allowed}},
		{"gdpr 0, device in Germany", vendor, req{gdpr: no, country: "DEU"}, Decision{Uses: All, Why: Allowed}},
		{"gdpr unset, device in the USA", vendor, req{country: "USA"}, Decision{Uses: All, Why: Allowed}},

		// regs.gdpr unset (OpenRTB: unknown), but the request says GDPR may
		// apply: a TC string, or a device in the EEA, the UK or Switzerland.
		{"gdpr unset, junk consent", vendor, req{consent: "gdprConsentString"}, Decision{Uses: None, Why: GDPRMalformed}},
		{"gdpr unset, consent string", vendor, req{consent: all}, Decision{Uses: All, Why: Allowed}},
		{"gdpr unset, nothing consented", vendor, req{consent: tcNothing}, Decision{Uses: None, Why: GDPRDenied}},
		{"gdpr unset, device in Germany", vendor, req{country: "DEU"}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gdpr unset, device in France, alpha-2 lowercase", vendor, req{country: "fr"}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gdpr unset, device in the UK, consent", vendor, req{country: "GBR", consent: all}, Decision{Uses: All, Why: Allowed}},
		{"gdpr unset, device in Switzerland, no vendor id", 0, req{country: "CHE"}, Decision{Uses: None, Why: GDPRNoVendorID}},
		{"gdpr unset, device in Réunion", vendor, req{country: "REU"}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gdpr unset, device in the UK, EU code", vendor, req{country: "uk"}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gdpr unset, a NUL after an alpha-2 code", vendor, req{country: "DE\x00"}, Decision{Uses: All, Why: Allowed}},
		{"coppa 0", vendor, req{coppa: no}, Decision{Uses: All, Why: Allowed}},

		// COPPA wins over everything.
		{"coppa", vendor, req{coppa: yes, gdpr: yes, consent: all}, Decision{Uses: None, Why: COPPA}},

		// TCF v2 under GDPR, vendor 42 configured.
		{"tcf: purposes 1-4 and vendor consent", vendor, req{gdpr: yes, consent: all}, Decision{Uses: All, Why: Allowed}},
		{"tcf: no consent string", vendor, req{gdpr: yes}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"tcf: no vendor id configured", 0, req{gdpr: yes, consent: all}, Decision{Uses: None, Why: GDPRNoVendorID}},
		{"tcf: nothing consented", vendor, req{gdpr: yes, consent: tcNothing}, Decision{Uses: None, Why: GDPRDenied}},
		{"tcf: wrong vendor", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{41, 43}}.encode()}, Decision{Uses: None, Why: GDPRDenied}},
		{"tcf: vendor above max vendor id", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{7}}.encode()}, Decision{Uses: None, Why: GDPRDenied}},
		{"tcf: vendors as a range", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{1, vendor, 900}, rangeVendors: true}.encode()}, Decision{Uses: All, Why: Allowed}},
		{"tcf: purposes 1-2 only", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2}, vendors: []int{vendor}}.encode()}, Decision{Uses: FreqCap, Why: GDPRDenied}},
		{"tcf: purpose 2 by legitimate interest", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1}, li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{vendor}}.encode()}, Decision{Uses: FreqCap, Why: GDPRDenied}},
		{"tcf: purpose 2 LI, not for this vendor", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1}, li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{41}}.encode()}, Decision{Uses: None, Why: GDPRDenied}},
		{"tcf: purposes 3-4 by LI are not enough (v2.2)", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2}, li: []int{3, 4}, vendors: []int{vendor}, vendorsLI: []int{vendor}}.encode()}, Decision{Uses: FreqCap, Why: GDPRDenied}},
		{"tcf: no purpose 1", vendor, req{gdpr: yes, consent: tcString{purposes: []int{2, 3, 4}, vendors: []int{vendor}}.encode()}, Decision{Uses: None, Why: GDPRDenied}},
		{"tcf: publisher forbids purpose 2 for us", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor},
			restrictions: []restriction{{2, restrictNotAllowed, []int{vendor}}}}.encode()}, Decision{Uses: Personalize, Why: GDPRDenied}},
		{"tcf: publisher requires consent for purpose 2, only LI", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 3, 4}, li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{vendor},
			restrictions: []restriction{{2, restrictConsent, []int{vendor}}}}.encode()}, Decision{Uses: Personalize, Why: GDPRDenied}},
		{"tcf: publisher requires LI for purpose 4", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor},
			restrictions: []restriction{{4, restrictLI, []int{vendor}}}}.encode()}, Decision{Uses: FreqCap, Why: GDPRDenied}},
		{"tcf: restriction on another vendor", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor},
			restrictions: []restriction{{2, restrictNotAllowed, []int{41}}}}.encode()}, Decision{Uses: All, Why: Allowed}},
		{"tcf: policy version 2 (TCF 2.0) string", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}, policy: 2}.encode()}, Decision{Uses: All, Why: Allowed}},
		{"tcf: purpose one treatment is not consent", vendor, req{gdpr: yes, consent: tcString{purposes: []int{2, 3, 4}, vendors: []int{vendor}, p1Treatment: true}.encode()}, Decision{Uses: None, Why: GDPRDenied}},
		{"tcf: real CMP string, vendor 1", 1, req{gdpr: yes, consent: tcRealCMP}, Decision{Uses: All, Why: Allowed}},
		{"tcf: real CMP string, vendor 3", 3, req{gdpr: yes, consent: tcRealCMP}, Decision{Uses: None, Why: GDPRDenied}},
		{"tcf: IAB example, vendor 8", 8, req{gdpr: yes, consent: tcIABExample}, Decision{Uses: FreqCap, Why: GDPRDenied}},
		{"tcf: with other segments", vendor, req{gdpr: yes, consent: all + ".YAAAAAAAAAAA"}, Decision{Uses: All, Why: Allowed}},

		// Malformed TC strings: no consent, never an error.
		{"tcf malformed: placeholder", vendor, req{gdpr: yes, consent: "gdprConsentString"}, Decision{Uses: None, Why: GDPRMalformed}},
		{"tcf malformed: truncated", vendor, req{gdpr: yes, consent: tcTruncated}, Decision{Uses: None, Why: GDPRMalformed}},
		{"tcf malformed: TCF v1", vendor, req{gdpr: yes, consent: tcV1}, Decision{Uses: None, Why: GDPRMalformed}},
		{"tcf malformed: two characters", vendor, req{gdpr: yes, consent: "CP"}, Decision{Uses: None, Why: GDPRMalformed}},
		{"tcf malformed: not base64", vendor, req{gdpr: yes, consent: "C%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%"}, Decision{Uses: None, Why: GDPRMalformed}},
		{"tcf malformed: cut short", vendor, req{gdpr: yes, consent: all[:len(all)-8]}, Decision{Uses: None, Why: GDPRMalformed}},

		// us_privacy.
		{"usp: notice, no opt-out", vendor, req{usp: "1YNN"}, Decision{Uses: All, Why: Allowed}},
		{"usp: not applicable", vendor, req{usp: "1---"}, Decision{Uses: All, Why: Allowed}},
		{"usp: opted out", vendor, req{usp: "1YYN"}, Decision{Uses: None, Why: USPrivacyOptOut}},

		// Conflicting 2.6 and 2.5 ext signals: each must allow (an outside
		// audit got user-level bids from every one of these), and user.geo's
		// country where device.geo names none.
		{"usp 1NNN, ext opted out", vendor, req{usp: "1NNN", uspExt: "1YYN"}, Decision{Uses: None, Why: USPrivacyOptOut}},
		{"usp opted out, ext 1NNN", vendor, req{usp: "1YYN", uspExt: "1NNN"}, Decision{Uses: None, Why: USPrivacyOptOut}},
		{"consent all, ext consent nothing", vendor, req{gdpr: yes, consent: all, consentExt: tcNothing}, Decision{Uses: None, Why: GDPRDenied}},
		{"consent all, ext consent all", vendor, req{gdpr: yes, consent: all, consentExt: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor, 43}}.encode()}, Decision{Uses: All, Why: Allowed}},
		{"gpp allows, ext gpp opts out", vendor, req{gpp: us(nil), gppExt: us(saleOut), sid: []int64{7}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp allows, ext gpp malformed", vendor, req{gpp: us(nil), gppExt: "junk", sid: []int64{7}}, Decision{Uses: None, Why: GPPMalformed}},
		{"gdpr unset, user.geo in Germany", vendor, req{userCountry: "DEU"}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gdpr unset, device in the USA, user.geo in Germany", vendor, req{country: "USA", userCountry: "deu"}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gdpr unset, device in Gibraltar", vendor, req{country: "GIB"}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gdpr unset, device in Jersey, alpha-2", vendor, req{country: "je"}, Decision{Uses: None, Why: GDPRNoConsent}},

		// A device that limits tracking, or Do Not Track: no personalization
		// on any user id, frequency capping stays (an outside audit: lmt=1
		// still targeted segments).
		{"lmt", vendor, req{lmt: yes}, Decision{Uses: FreqCap, Why: TrackingLimited}},
		{"lmt 0", vendor, req{lmt: no}, Decision{Uses: All, Why: Allowed}},
		{"dnt", vendor, req{dnt: yes}, Decision{Uses: FreqCap, Why: TrackingLimited}},
		{"atts denied", vendor, req{atts: 2}, Decision{Uses: FreqCap, Why: TrackingLimited}},
		{"atts authorized", vendor, req{atts: 3}, Decision{Uses: All, Why: Allowed}},
		{"lmt under an opt-out: the opt-out is the reason", vendor, req{lmt: yes, usp: "1YYN"}, Decision{Uses: None, Why: USPrivacyOptOut}},
		{"usp: opted out, lowercase", vendor, req{usp: "1nyy"}, Decision{Uses: None, Why: USPrivacyOptOut}},
		{"usp malformed: placeholder", vendor, req{usp: "uspConsentString"}, Decision{Uses: None, Why: USPrivacyMalformed}},
		{"usp malformed: version 2", vendor, req{usp: "2YNN"}, Decision{Uses: None, Why: USPrivacyMalformed}},
		{"usp malformed: short", vendor, req{usp: "1YN"}, Decision{Uses: None, Why: USPrivacyMalformed}},
		{"usp opt-out beside valid tcf", vendor, req{gdpr: yes, consent: all, usp: "1YYY"}, Decision{Uses: None, Why: USPrivacyOptOut}},

		// Global Privacy Control outside GPP (regs.ext.gpc): an opt-out,
		// even beside a us_privacy string that allows everything.
		{"gpc", vendor, req{gpc: true}, Decision{Uses: None, Why: GPCOptOut}},
		{"gpc beside usp 1YNN", vendor, req{usp: "1YNN", gpc: true}, Decision{Uses: None, Why: GPCOptOut}},
		{"gpc beside valid tcf", vendor, req{gdpr: yes, consent: all, gpc: true}, Decision{Uses: None, Why: GPCOptOut}},

		// GPP US sections.
		{"gpp usnat: no opt-out", vendor, req{gpp: us(nil), sid: []int64{7}}, Decision{Uses: All, Why: Allowed}},
		// Sections 3 (header) and 4 (signal integrity) need not be listed;
		// listing them is allowed (4 read as a missing section before).
		{"gpp usnat: gpp_sid lists 3 and 4 too", vendor, req{gpp: us(nil), sid: []int64{3, 4, 7}}, Decision{Uses: All, Why: Allowed}},
		// The IAB's usnat example says MspaCoveredTransaction 0, no value
		// the field has: refused, as Prebid's rule refuses it.
		{"gpp usnat: IAB example", vendor, req{gpp: "DBABL~BVVqAAEABCA.QA", sid: []int64{7}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usca: MSPA covered transaction 0", vendor, req{gpp: gppStringOf(caSec(func(c *uspca.USPCACoreSegment) { c.MspaCoveredTransaction = 0 })), sid: []int64{8}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usva: MSPA covered transaction 0", vendor, req{gpp: gppStringOf(vaSec(func(c *sections.CommonUSCoreSegment) { c.MspaCoveredTransaction = 0 })), sid: []int64{9}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usut: MSPA covered transaction 0", vendor, req{gpp: gppStringOf(utSec(func(c *usput.USPUTCoreSegment) { c.MspaCoveredTransaction = 0 })), sid: []int64{11}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usnat: sale opt-out", vendor, req{gpp: us(saleOut), sid: []int64{7}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usnat: opt-out, no gpp_sid (every section applies)", vendor, req{gpp: us(saleOut)}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usnat: opt-out in a section that does not apply", vendor, req{gpp: gppStringOf(usnatSec(saleOut), caSec(nil)), sid: []int64{8}}, Decision{Uses: All, Why: Allowed}},
		{"gpp usnat: version 2 (the IAB reference library's)", vendor, req{gpp: "DBABLA~CVVqAAAAAABA.QA", sid: []int64{7}}, Decision{Uses: All, Why: Allowed}},
		{"gpp usnat: version 2, sale opt-out", vendor, req{gpp: "DBABLA~CVVaAAAAAABA.QA", sid: []int64{7}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usnat: version 3", vendor, req{gpp: us(func(c *uspnat.USPNATCoreSegment, _ *bool) { c.Version = 3 }), sid: []int64{7}}, Decision{Uses: None, Why: GPPUnsupported}},
		{"gpp usca: sharing opt-out", vendor, req{gpp: gppStringOf(caSec(func(c *uspca.USPCACoreSegment) { c.SharingOptOut = 1 })), sid: []int64{8}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usca: clean", vendor, req{gpp: gppStringOf(caSec(nil)), sid: []int64{8}}, Decision{Uses: All, Why: Allowed}},
		{"gpp usva: targeted advertising opt-out", vendor, req{gpp: gppStringOf(vaSec(func(c *sections.CommonUSCoreSegment) { c.TargetedAdvertisingOptOut = 1 })), sid: []int64{9}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usva: clean", vendor, req{gpp: gppStringOf(vaSec(nil)), sid: []int64{9}}, Decision{Uses: All, Why: Allowed}},
		{"gpp usco: GPC", vendor, req{gpp: gppStringOf(coSec(nil, true)), sid: []int64{10}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usct: known child", vendor, req{gpp: gppStringOf(ctSec(func(c *sections.CommonUSCoreSegment) { c.KnownChildSensitiveDataConsents[0] = 1 })), sid: []int64{12}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usut: sale notice not given", vendor, req{gpp: gppStringOf(utSec(func(c *usput.USPUTCoreSegment) { c.SaleOptOutNotice = 2 })), sid: []int64{11}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp usut: clean", vendor, req{gpp: gppStringOf(utSec(nil)), sid: []int64{11}}, Decision{Uses: All, Why: Allowed}},
		{"gpp uspv1: opted out", vendor, req{gpp: gppStringOf(rawSection{constants.SectionUSPV1, "1YYN"}), sid: []int64{6}}, Decision{Uses: None, Why: GPPOptOut}},
		{"gpp uspv1: no opt-out", vendor, req{gpp: gppStringOf(rawSection{constants.SectionUSPV1, "1YNN"}), sid: []int64{6}}, Decision{Uses: All, Why: Allowed}},
		{"gpp: section listed but absent", vendor, req{gpp: gppStringOf(caSec(nil)), sid: []int64{7}}, Decision{Uses: None, Why: GPPMalformed}},
		{"gpp: gpp_sid without a string", vendor, req{sid: []int64{7}}, Decision{Uses: None, Why: GPPMalformed}},
		{"gpp: undecodable usnat section", vendor, req{gpp: gppStringOf(rawSection{constants.SectionUSPNAT, "!!"}), sid: []int64{7}}, Decision{Uses: None, Why: GPPMalformed}},
		{"gpp: section this bidder cannot read", vendor, req{gpp: gppStringOf(rawSection{13, "BAAAAAA"}), sid: []int64{13}}, Decision{Uses: None, Why: GPPUnsupported}},
		{"gpp: unreadable section that does not apply", vendor, req{gpp: gppStringOf(rawSection{13, "BAAAAAA"}, caSec(nil)), sid: []int64{8}}, Decision{Uses: All, Why: Allowed}},
		{"gpp: gpp_sid beyond 63", vendor, req{gpp: us(nil), sid: []int64{7, 64}}, Decision{Uses: None, Why: GPPUnsupported}},
		{"gpp: gpp_sid -1 and 3 name no section", vendor, req{gpp: us(nil), sid: []int64{-1, 3}}, Decision{Uses: All, Why: Allowed}},
		{"gpp malformed: placeholder", vendor, req{gpp: "gppString", sid: []int64{7}}, Decision{Uses: None, Why: GPPMalformed}},
		{"gpp malformed: bad header", vendor, req{gpp: "header~1YNN", sid: []int64{6}}, Decision{Uses: None, Why: GPPMalformed}},
		{"gpp malformed: header counts two sections, one sent", vendor, req{gpp: "DBABzw~1YNN"}, Decision{Uses: None, Why: GPPMalformed}},

		// TCF inside GPP.
		{"gpp tcfeuv2: listed, valid", vendor, req{gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}), sid: []int64{2}}, Decision{Uses: All, Why: Allowed}},
		{"gpp tcfeuv2: listed, nothing consented", vendor, req{gpp: "DBABMA~" + tcNothing, sid: []int64{2}}, Decision{Uses: None, Why: GDPRDenied}},
		{"gpp tcfeuv2: no gpp_sid, gdpr 1", vendor, req{gdpr: yes, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all})}, Decision{Uses: All, Why: Allowed}},
		{"gpp tcfeuv2: no gpp_sid, so it applies", vendor, req{gpp: "DBABMA~" + tcNothing}, Decision{Uses: None, Why: GDPRDenied}},
		// Both sent: each must allow a use (the audit found user.consent
		// winning over a GPP section that refused everything).
		{"gpp tcfeuv2 and user.consent: the stricter applies", vendor, req{gdpr: yes, consent: all, gpp: "DBABMA~" + tcNothing, sid: []int64{2}}, Decision{Uses: None, Why: GDPRDenied}},
		{"gpp tcfeuv2 and user.consent: the stricter applies, either way", vendor, req{gdpr: yes, consent: tcNothing, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}), sid: []int64{2}}, Decision{Uses: None, Why: GDPRDenied}},
		{"gpp tcfeuv2 and user.consent: both allow", vendor, req{gdpr: yes, consent: all, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}), sid: []int64{2}}, Decision{Uses: All, Why: Allowed}},
		{"gpp tcfeuv2 malformed beside a valid user.consent", vendor, req{gdpr: yes, consent: all, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, "CP"}), sid: []int64{2}}, Decision{Uses: None, Why: GDPRMalformed}},
		{"gpp tcfeuv2: malformed", vendor, req{gpp: gppStringOf(rawSection{constants.SectionTCFEU2, "CP"}), sid: []int64{2}}, Decision{Uses: None, Why: GDPRMalformed}},
		{"gpp_sid 2 without any TC string", vendor, req{sid: []int64{2}}, Decision{Uses: None, Why: GDPRNoConsent}},
		// A tcfeuv2 section gpp_sid does not list does not apply to the
		// request (GPP: gpp_sid lists the sections to apply): under regs.gdpr
		// 1 it is no TC string for it, so no consent (an outside audit got
		// segment-targeted bids from gpp_sid [-1] and [6]). Beside a
		// user.consent it still must allow a use (a doubt, resolved the
		// restrictive way).
		// regs.gpp and a different regs.ext.gpp, only one with a tcfeuv2
		// section: without user.consent, the other carries no TC string, and
		// each string must allow a use (an outside audit got user-level bids
		// from the ext string's consent beside a 2.6 string without one).
		{"gpp twins: only ext has tcfeuv2", vendor, req{gdpr: yes, gpp: "DBABLA~CVVqAAAAAABA.QA", gppExt: "DBABMA~" + all, sid: []int64{2}}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gpp twins: only the 2.6 string has tcfeuv2", vendor, req{gdpr: yes, gpp: "DBABMA~" + all, gppExt: "DBABLA~CVVqAAAAAABA.QA", sid: []int64{2}}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gpp twins: only ext has tcfeuv2, user.consent", vendor, req{gdpr: yes, consent: all, gpp: "DBABLA~CVVqAAAAAABA.QA", gppExt: "DBABMA~" + all, sid: []int64{2}}, Decision{Uses: All, Why: Allowed}},
		{"gpp twins: both have tcfeuv2", vendor, req{gdpr: yes, gpp: "DBABMA~" + all, gppExt: gppStringOf(rawSection{constants.SectionTCFEU2, all}, rawSection{constants.SectionUSPV1, "1YNN"}), sid: []int64{2}}, Decision{Uses: All, Why: Allowed}},
		{"gpp tcfeuv2 not listed, gdpr 1", vendor, req{gdpr: yes, gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}, rawSection{constants.SectionUSPV1, "1YNN"}), sid: []int64{6}}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gpp tcfeuv2, gpp_sid -1, gdpr 1", vendor, req{gdpr: yes, gpp: "DBABMA~" + all, sid: []int64{-1}}, Decision{Uses: None, Why: GDPRNoConsent}},
		{"gpp tcfeuv2, gpp_sid -1, gdpr 1, user.consent", vendor, req{gdpr: yes, consent: all, gpp: "DBABMA~" + all, sid: []int64{-1}}, Decision{Uses: All, Why: Allowed}},
		{"gpp tcfeuv2 not listed, refusing, beside user.consent", vendor, req{gdpr: yes, consent: all, gpp: "DBABMA~" + tcNothing, sid: []int64{-1}}, Decision{Uses: None, Why: GDPRDenied}},
		{"gpp tcfeuv2 + usnat opt-out", vendor, req{gpp: gppStringOf(rawSection{constants.SectionTCFEU2, all}, usnatSec(saleOut)), sid: []int64{2, 7}}, Decision{Uses: None, Why: GPPOptOut}},
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
				got.NoTrain = false // TestNoTrainWithoutPurpose10's
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

// With RequirePurpose2, GDPR without a legal basis for purpose 2 (no vendor
// id, no string, a malformed one, neither consent nor legitimate interest,
// or the publisher forbidding it) is no bid at all; with one, or outside
// GDPR, the decision is as without the option. Off, nothing is NoBid.
func TestRequirePurpose2(t *testing.T) {
	all := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	cases := []struct {
		name   string
		vendor int
		r      req
		noBid  bool
	}{
		{"no gdpr", vendor, req{}, false},
		{"us_privacy opt-out", vendor, req{usp: "1YYN"}, false},
		{"coppa", vendor, req{coppa: yes}, false},
		{"coppa, gdpr, no string", vendor, req{coppa: yes, gdpr: yes}, true},
		{"coppa, device in Germany, no string", vendor, req{coppa: yes, country: "DEU"}, true},
		{"coppa, gdpr, consent", vendor, req{coppa: yes, gdpr: yes, consent: all}, false},
		{"gdpr, consent", vendor, req{gdpr: yes, consent: all}, false},
		{"gdpr, purpose 2 only, by legitimate interest", vendor, req{gdpr: yes, consent: tcString{li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{vendor}}.encode()}, false},
		{"gdpr, no string", vendor, req{gdpr: yes}, true},
		{"gdpr, no vendor id", 0, req{gdpr: yes, consent: all}, true},
		{"gdpr, malformed", vendor, req{gdpr: yes, consent: "gdprConsentString"}, true},
		{"gdpr, nothing consented", vendor, req{gdpr: yes, consent: tcNothing}, true},
		{"gdpr, purposes 1, 3, 4 without 2", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 3, 4}, vendors: []int{vendor}}.encode()}, true},
		{"gdpr, publisher forbids purpose 2", vendor, req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor},
			restrictions: []restriction{{2, restrictNotAllowed, []int{vendor}}}}.encode()}, true},
		{"gdpr unset, device in Germany, no string", vendor, req{country: "DEU"}, true},
		{"gpp tcfeuv2 refusing, user.consent allowing", vendor, req{gdpr: yes, consent: all, gpp: "DBABMA~" + tcNothing, sid: []int64{2}}, true},
	}
	for _, c := range cases {
		strict := newPolicy(t, Options{VendorID: c.vendor, RequirePurpose2: true})
		lax := newPolicy(t, Options{VendorID: c.vendor})
		got, want := strict.Decide(c.r.build()), lax.Decide(c.r.build())
		if got.NoBid != c.noBid {
			t.Errorf("%s: NoBid %v, want %v", c.name, got.NoBid, c.noBid)
		}
		if want.NoBid || got.Uses != want.Uses || got.Why != want.Why {
			t.Errorf("%s: strict %+v, lax %+v: want the same uses and reason, and no NoBid without the option", c.name, got, want)
		}
	}
}

// The row log keeps user-level features as training data only where TCF
// purpose 10 (develop and improve services) has a basis, consent or
// legitimate interest, for the vendor (an outside privacy audit: purposes
// 1-4 only, and the logged row kept the user bucket, age and gender).
// Outside GDPR, or without personalisation, NoTrain stays false (the slots
// are empty anyway where user-level data is not allowed).
func TestNoTrainWithoutPurpose10(t *testing.T) {
	p := newPolicy(t, Options{VendorID: vendor})
	for _, c := range []struct {
		name    string
		r       req
		noTrain bool
	}{
		{"gdpr, purposes 1-4", req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()}, true},
		{"gdpr, purposes 1-4 and 10", req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4, 10}, vendors: []int{vendor}}.encode()}, false},
		{"gdpr, purposes 1-4, 10 by legitimate interest", req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 3, 4}, li: []int{10},
			vendors: []int{vendor}, vendorsLI: []int{vendor}}.encode()}, false},
		{"gdpr, purpose 10 but no personalisation", req{gdpr: yes, consent: tcString{purposes: []int{1, 2, 10}, vendors: []int{vendor}}.encode()}, false},
		{"gdpr, no string", req{gdpr: yes}, false},
		{"no gdpr", req{}, false},
	} {
		if got := p.Decide(c.r.build()); got.NoTrain != c.noTrain {
			t.Errorf("%s: %+v, want NoTrain %v", c.name, got, c.noTrain)
		}
		p.cache.wait()
	}
}

// The cache holds one entry per distinct string and kind: a repeated string
// is not decoded again, and junk sent both as a TC string and as a GPP
// string is decided as each.
func TestCacheDecodesOnce(t *testing.T) {
	p := newPolicy(t, Options{VendorID: vendor})
	all := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	for range 3 {
		if d := p.Decide(req{gdpr: yes, consent: all}.build()); d != (Decision{Uses: All, Why: Allowed, NoTrain: true}) { // no purpose 10
			t.Fatal(d)
		}
		p.cache.wait()
	}
	if s := p.Stats(); s.Decodes != 1 || s.Malformed != 0 {
		t.Fatalf("stats %+v, want one decode", s)
	}
	junk := "gdprConsentString"
	for range 2 {
		if d := p.Decide(req{gdpr: yes, consent: junk, gpp: junk}.build()); d != (Decision{Uses: None, Why: GPPMalformed}) {
			t.Fatal(d)
		}
		p.cache.wait()
	}
	if s := p.Stats(); s.Decodes < 3 || s.Malformed < 2 {
		t.Fatalf("stats %+v, want the junk decoded as both kinds", s)
	}
	p.Close()
	if d := p.Decide(req{gdpr: yes, consent: all}.build()); d != (Decision{Uses: All, Why: Allowed, NoTrain: true}) {
		t.Fatalf("after Close: %v", d) // uncached, still right
	}
}

// TestBidderStrings pins the literal consent strings bidder/privacy_test.go
// uses to what they were built as.
func TestBidderStrings(t *testing.T) {
	saleOut := func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SaleOptOut = 1 }
	march2 := time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct{ literal, built string }{
		{"CO5rKAAO5rKAAAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA", tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{42}}.encode()},
		{"CO5rKAAO5rKAAAHABBENBkEgAPAAAAAAAAAAAVgAAAAAAoAAAAA", tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{41, 43}}.encode()},
		{"CO5rKAAO5rKAAAHABBENBkEgAMAAAAAAAAAAAVAAAAAAAQAAAAA", tcString{purposes: []int{1, 2}, vendors: []int{42}}.encode()},
		{"CQgcD4AQgcD4AAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA", tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{42}, updated: march2}.encode()},
		{"CQgcD4AQgcD4AAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA.IAVAAAAAAAQ", tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{42}, updated: march2, segments: []string{disclosedSegment([]int{42}, nil)}}.encode()},
		{"CQgcD4AQgcD4AAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA.IAVgAAAAAAo", tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{42}, updated: march2, segments: []string{disclosedSegment([]int{41, 43}, nil)}}.encode()},
		{"DBABLA~BVVaAAAAAgA.QA", gppStringOf(usnatSec(saleOut))},
		{"DBABLA~BVVqAAAAAgA.QA", gppStringOf(usnatSec(nil))},
	} {
		if c.literal != c.built {
			t.Errorf("literal %s, built %s", c.literal, c.built)
		}
	}
}
