package privacy

import (
	"strings"
	"testing"

	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/constants"
	"github.com/prebid/go-gpp/sections"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/prebid/go-gpp/sections/uspco"
	"github.com/prebid/go-gpp/sections/uspct"
	"github.com/prebid/go-gpp/sections/uspnat"
	"github.com/prebid/go-gpp/sections/usput"
	"github.com/prebid/go-gpp/sections/uspva"
)

// GPP strings are built with go-gpp's own encoder (the decoder's twin), and
// checked against the IAB's published examples in TestGPPExamples.

// usnatSec is a US national section in which the user was given every
// notice and opted out of nothing; edit changes it.
func usnatSec(edit func(c *uspnat.USPNATCoreSegment, gpc *bool)) gpp.Section {
	s := uspnat.USPNAT{SectionID: constants.SectionUSPNAT, CoreSegment: uspnat.USPNATCoreSegment{
		Version: 1, SharingNotice: 1, SaleOptOutNotice: 1, SharingOptOutNotice: 1, TargetedAdvertisingOptOutNotice: 1,
		SensitiveDataProcessingOptOutNotice: 1, SensitiveDataLimitUseNotice: 1,
		SaleOptOut: 2, SharingOptOut: 2, TargetedAdvertisingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 12), KnownChildSensitiveDataConsents: make([]byte, 2),
		MspaCoveredTransaction: 2,
	}, GPCSegment: sections.CommonUSGPCSegment{SubsectionType: 1}}
	if edit != nil {
		edit(&s.CoreSegment, &s.GPCSegment.Gpc)
	}
	return s
}

func caSec(edit func(c *uspca.USPCACoreSegment)) gpp.Section {
	s := uspca.USPCA{SectionID: constants.SectionUSPCA, CoreSegment: uspca.USPCACoreSegment{
		Version: 1, SaleOptOutNotice: 1, SharingOptOutNotice: 1, SensitiveDataLimitUseNotice: 1,
		SaleOptOut: 2, SharingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 9), KnownChildSensitiveDataConsents: make([]byte, 2), MspaCoveredTransaction: 2,
	}, GPCSegment: sections.CommonUSGPCSegment{SubsectionType: 1}}
	if edit != nil {
		edit(&s.CoreSegment)
	}
	return s
}

// stateCore is the core segment Virginia, Colorado and Connecticut share.
func stateCore(sensitive, child int, edit func(c *sections.CommonUSCoreSegment)) sections.CommonUSCoreSegment {
	c := sections.CommonUSCoreSegment{Version: 1, SharingNotice: 1, SaleOptOutNotice: 1, TargetedAdvertisingOptOutNotice: 1,
		SaleOptOut: 2, TargetedAdvertisingOptOut: 2, SensitiveDataProcessing: make([]byte, sensitive),
		KnownChildSensitiveDataConsents: make([]byte, child), MspaCoveredTransaction: 2}
	if edit != nil {
		edit(&c)
	}
	return c
}

func vaSec(edit func(c *sections.CommonUSCoreSegment)) gpp.Section {
	return uspva.USPVA{SectionID: constants.SectionUSPVA, CoreSegment: stateCore(8, 1, edit)}
}

func coSec(edit func(c *sections.CommonUSCoreSegment), gpc bool) gpp.Section {
	return uspco.USPCO{SectionID: constants.SectionUSPCO, CoreSegment: stateCore(7, 1, edit),
		GPCSegment: sections.CommonUSGPCSegment{SubsectionType: 1, Gpc: gpc}}
}

func ctSec(edit func(c *sections.CommonUSCoreSegment)) gpp.Section {
	return uspct.USPCT{SectionID: constants.SectionUSPCT, CoreSegment: stateCore(8, 3, edit),
		GPCSegment: sections.CommonUSGPCSegment{SubsectionType: 1}}
}

func utSec(edit func(c *usput.USPUTCoreSegment)) gpp.Section {
	s := usput.USPUT{SectionID: constants.SectionUSPUT, CoreSegment: usput.USPUTCoreSegment{
		Version: 1, SharingNotice: 1, SaleOptOutNotice: 1, TargetedAdvertisingOptOutNotice: 1,
		SensitiveDataProcessingOptOutNotice: 1, SaleOptOut: 2, TargetedAdvertisingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 8), MspaCoveredTransaction: 2,
	}}
	if edit != nil {
		edit(&s.CoreSegment)
	}
	return s
}

// rawSection is a section carried as its text: tcfeuv2 (a TC string),
// uspv1 ("1YNN"), or one go-gpp does not know.
type rawSection struct {
	id constants.SectionID
	v  string
}

func (r rawSection) GetID() constants.SectionID { return r.id }
func (r rawSection) GetValue() string           { return r.v }
func (r rawSection) Encode(bool) []byte         { return []byte(r.v) }

// TestGPPExamples: the IAB's published GPP examples decode to what the
// specification says they carry.
func TestGPPExamples(t *testing.T) {
	cases := []struct {
		s       string
		present uint64
		optOut  uint64
	}{
		{"DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", 1 << 2, 0},            // tcfeuv2
		{"DBACNYA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN", 1<<2 | 1<<6, 0}, // tcfeuv2 + uspv1
		// usnat: notices given, no opt-out, but MspaCoveredTransaction 0, no
		// value the field has (1 yes, 2 no): refused, as Prebid refuses it.
		{"DBABL~BVVqAAEABCA.QA", 1 << 7, 1 << 7},
		{"DBABTA~1YYN", 1 << 6, 1 << 6}, // uspv1 opted out
		{gppStringOf(usnatSec(func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SaleOptOut = 1 })), 1 << 7, 1 << 7}, // encoder round trip
	}
	for _, c := range cases {
		g := decodeGPP(c.s, 42, false)
		if !g.ok || g.present != c.present || g.optOut != c.optOut || g.bad != 0 || g.unsupported != 0 {
			t.Errorf("%s: %+v, want present %b opt-out %b", c.s, g, c.present, c.optOut)
		}
	}
}

// gppStringOf encodes sections into a GPP string.
func gppStringOf(secs ...gpp.Section) string {
	s, err := gpp.Encode(secs)
	if err != nil {
		panic(err)
	}
	return s
}

// TestUSNatRule: each clause of the US rule, one section at a time.
func TestUSNatRule(t *testing.T) {
	type edit = func(c *uspnat.USPNATCoreSegment, gpc *bool)
	cases := []struct {
		name string
		edit edit
		deny bool
	}{
		{"notices given, no opt-out", nil, false},
		{"sale opt-out", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SaleOptOut = 1 }, true},
		{"sharing opt-out", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SharingOptOut = 1 }, true},
		{"targeted advertising opt-out", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.TargetedAdvertisingOptOut = 1 }, true},
		{"sale notice not given", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SaleOptOutNotice = 2 }, true},
		{"sharing notice not given", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SharingNotice = 2 }, true},
		{"no notice applied yet 'did not opt out'", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.TargetedAdvertisingOptOutNotice = 0 }, true},
		{"opt-outs not applicable", func(c *uspnat.USPNATCoreSegment, _ *bool) {
			c.SaleOptOutNotice, c.SaleOptOut, c.SharingOptOutNotice, c.SharingOptOut = 0, 0, 0, 0
			c.TargetedAdvertisingOptOutNotice, c.TargetedAdvertisingOptOut = 0, 0
		}, false},
		{"GPC", func(_ *uspnat.USPNATCoreSegment, gpc *bool) { *gpc = true }, true},
		{"MSPA service-provider mode", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.MspaServiceProviderMode = 1 }, true},
		{"MSPA opt-out mode", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.MspaOptOutOptionMode = 1 }, false},
		{"MSPA covered transaction", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.MspaCoveredTransaction = 1 }, false},
		{"MSPA covered transaction 0 (no such value)", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.MspaCoveredTransaction = 0 }, true},
		{"no sharing notice applied yet 'did not opt out' of sharing", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SharingNotice = 0 }, true},
		{"no sharing notice applied, sharing opt-out not applicable", func(c *uspnat.USPNATCoreSegment, _ *bool) {
			c.SharingNotice, c.SharingOptOutNotice, c.SharingOptOut = 0, 0, 0
		}, false},
		{"known child under 13", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.KnownChildSensitiveDataConsents[1] = 2 }, true},
		{"known child 13-16 consented", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.KnownChildSensitiveDataConsents[0] = 2 }, true},
		{"personal data 'consent'", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.PersonalDataConsents = 2 }, true},
		{"personal data no consent", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.PersonalDataConsents = 1 }, false},
		{"sensitive: racial origin not consented", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SensitiveDataProcessing[0] = 1 }, true},
		{"sensitive: genetic data present", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SensitiveDataProcessing[5] = 2 }, true},
		{"sensitive: precise geo opted out (geo is not user data)", func(c *uspnat.USPNATCoreSegment, _ *bool) { c.SensitiveDataProcessing[7] = 1 }, false},
		{"sensitive consent without its notice", func(c *uspnat.USPNATCoreSegment, _ *bool) {
			c.SensitiveDataProcessingOptOutNotice, c.SensitiveDataProcessing[2] = 0, 2
		}, true},
	}
	for _, c := range cases {
		s := gppStringOf(usnatSec(c.edit))
		g := decodeGPP(s, 0, false)
		if !g.ok || g.bad != 0 {
			t.Fatalf("%s: %s does not decode: %+v", c.name, s, g)
		}
		if got := g.optOut != 0; got != c.deny {
			t.Errorf("%s (%s): denies %v, want %v", c.name, s, got, c.deny)
		}
	}
}

// fibCode is n's Fibonacci code (weights 1, 2, 3, 5, ... then a closing 1).
func fibCode(n int) []byte {
	w := []int{1, 2}
	for w[len(w)-1] < n {
		w = append(w, w[len(w)-1]+w[len(w)-2])
	}
	code := make([]byte, len(w))
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] <= n {
			code[i], n = 1, n-w[i]
		}
	}
	for len(code) > 1 && code[len(code)-1] == 0 {
		code = code[:len(code)-1]
	}
	return append(code, 1)
}

// header encodes a GPP header listing ranges of section ids.
func header(ranges ...[2]int) string {
	var bb bits
	bb.int(3, 6)
	bb.int(1, 6)
	bb.int(len(ranges), 12)
	max := 0
	for _, r := range ranges {
		bb.flag(r[0] != r[1])
		bb = append(bb, fibCode(r[0]-max)...)
		if r[0] != r[1] {
			bb = append(bb, fibCode(r[1]-r[0])...)
		}
		max = r[1]
	}
	for len(bb)%6 != 0 {
		bb = append(bb, 0)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	out := make([]byte, 0, len(bb)/6)
	for i := 0; i < len(bb); i += 6 {
		v := 0
		for _, x := range bb[i : i+6] {
			v = v<<1 | int(x)
		}
		out = append(out, alphabet[v])
	}
	return string(out)
}

// TestGPPHeaderSane: headers go-gpp would loop on for ever, or recurse on
// for minutes, are refused before go-gpp sees them; honest ones pass.
func TestGPPHeaderSane(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{"DBABMA~x", true},
		{"DBACNYA~x~y", true},
		{"DBABL~x", true},
		{header([2]int{7, 7}) + "~x", true},
		{header([2]int{2, 2}, [2]int{7, 8}) + "~x~y~z", true},
		{header([2]int{7, 9}) + "~x~y~z", true},
		{header([2]int{7, 9}) + "~x~y", false},                    // three ids, two sections
		{header([2]int{2, 2}, [2]int{7, 7}) + "~x", false},        // two ids, one section
		{header([2]int{1, 65535}) + "~x", false},                  // go-gpp: a uint16 loop that never ends
		{header([2]int{1000, 1030}) + "~x", false},                // ids past maxSectionID
		{"DAPAAAAAAAAAAAVAAAAAAAQAAAAA~1YNA", false},              // FuzzDecide: a 100-bit zero run, exponential in go-gpp
		{"D" + strings.Repeat("A", 80) + "~x", false},             // too long for a header
		{"header~1YNN", false}, {"gppString", false}, {"", false}, // not a header
		{"DBA~x", false}, // too short
	}
	for _, c := range cases {
		if got := gppHeaderSane(c.s); got != c.want {
			t.Errorf("gppHeaderSane(%q) = %v, want %v", c.s, got, c.want)
		}
	}
	for _, c := range cases[3:6] { // the encoder agrees with go-gpp
		if g := decodeGPP(strings.Replace(c.s, "~x", "~1YNN", 1), 0, false); !g.ok {
			t.Errorf("%s: go-gpp does not read the header as encoded", c.s)
		}
	}
}

// TestGPPShapeBounded: a string of more sections, or of more segments in a
// section, than any CMP writes is malformed before go-gpp decodes it (an
// outside audit: 1,023 one-letter sections cost 3,900 allocations, go-gpp
// formatting an error for each after one that did not decode; a usnat
// section and 16,000 dots, a 16,001-string split); honest shapes pass.
func TestGPPShapeBounded(t *testing.T) {
	usnat := gppStringOf(usnatSec(nil)) // "DBABL~core.gpc"
	tc := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	sectionsOf := func(n int, v string) string {
		var secs []gpp.Section
		for id := 1; id <= n; id++ {
			s := v
			if id == int(constants.SectionUSPNAT) {
				s = strings.SplitN(usnat, "~", 2)[1]
			}
			secs = append(secs, rawSection{constants.SectionID(id), s})
		}
		return gppStringOf(secs...)
	}
	p, err := New(Options{VendorID: vendor, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct {
		name string
		s    string
		ok   bool
	}{
		{"usnat", usnat, true},
		{"64 sections", sectionsOf(64, "A"), true},
		{"tcfeuv2 of 4 segments", gppStringOf(rawSection{constants.SectionTCFEU2, tc + ".IAAA.QAAA.YAAAAAAAAAAA"}), true},
		{"1023 sections", sectionsOf(1023, "A"), false},
		{"65 sections", sectionsOf(65, "A"), false},
		{"usnat and 16000 dots", usnat + strings.Repeat(".", 16000), false},
		{"usnat of 9 segments", usnat + strings.Repeat(".QA", 7), false},
	} {
		if got := gppHeaderSane(c.s); got != c.ok {
			t.Errorf("%s: gppHeaderSane = %v, want %v", c.name, got, c.ok)
		}
		if c.ok {
			continue
		}
		r := req{gpp: c.s}.build()
		if d := p.Decide(r); d.Why != GPPMalformed {
			t.Errorf("%s: %v, want gpp_malformed", c.name, d)
		}
		if a := testing.AllocsPerRun(10, func() { p.Decide(r) }); a > 2 {
			t.Errorf("%s: %v allocations a decision, want it refused before go-gpp decodes it", c.name, a)
		}
	}
}

// usnat version 2 (16 sensitive categories, 3 known-child consents, every
// later field moved) is read with its own layout: the IAB's reference
// library (@iabgpp/cmpapi 3.2.0, GppModel with the notices given, no
// opt-out, MSPA covered transaction 1) writes it only in that version, which
// go-gpp v0.2.0 read as unsupported (an outside audit). Each string is the
// library's encoding of the field its name says; the rule is Prebid's for
// version 2 (categories 13 and 15 need consent, 14 and 16 may not apply),
// with the bidder's one change (any known child refuses).
func TestUSNatVersion2(t *testing.T) {
	for _, c := range []struct {
		name, s string
		deny    bool
	}{
		{"notices given, no opt-out", "DBABLA~CVVqAAAAAABA.QA", false},
		{"sale opt-out", "DBABLA~CVVaAAAAAABA.QA", true},
		{"targeted advertising notice not given", "DBABLA~CVlqAAAAAABA.QA", true},
		{"category 1 no consent", "DBABLA~CVVqQAAAAABA.QA", true},
		{"category 12 applies", "DBABLA~CVVqAAACAABA.QA", true},
		{"category 13 no consent", "DBABLA~CVVqAAAAQABA.QA", true},
		{"category 13 consent", "DBABLA~CVVqAAAAgABA.QA", false},
		{"category 14 applies", "DBABLA~CVVqAAAAIABA.QA", true},
		{"category 15 no consent", "DBABLA~CVVqAAAABABA.QA", true},
		{"category 16 applies", "DBABLA~CVVqAAAAAQBA.QA", true},
		{"known child 13 to 16, no consent", "DBABLA~CVVqAAAAAEBA.QA", true},
		{"known child 16 to 17, consent", "DBABLA~CVVqAAAAAAhA.QA", true},
		{"personal data consents 2", "DBABLA~CVVqAAAAAAJA.QA", true},
		{"service-provider mode", "DBABLA~CVVqAAAAAABE.QA", true},
		{"global privacy control", "DBABLA~CVVqAAAAAABA.YA", true},
	} {
		g := decodeGPP(c.s, 42, false)
		want := map[bool]uint64{false: 0, true: 1 << 7}[c.deny]
		if !g.ok || g.present != 1<<7 || g.bad != 0 || g.unsupported != 0 || g.optOut != want {
			t.Errorf("%s (%s): %+v, want read, opt-out %v", c.name, c.s, g, c.deny)
		}
	}
	// Cut short after version 1's length (60 bits): malformed, not read
	// with version 1's layout.
	if g := decodeGPP("DBABLA~CVVqAAAAAA", 42, false); g.bad != 1<<7 {
		t.Errorf("a version 2 section cut short: %+v, want malformed", g)
	}
}
