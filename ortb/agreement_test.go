package ortb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prebid/openrtb/v20/native1/request"
	"github.com/prebid/openrtb/v20/openrtb2"
)

// samplesDir holds real-world requests beside the project (see its README).
const samplesDir = "../../shared/ortb-samples"

// TestAgreementWithSchema decodes every fixture and every shared sample both
// with Parser and with encoding/json into openrtb2.BidRequest (the schema of
// record) and compares every field the view holds. One Parser and one Request
// serve all files, forwards and backwards, so state leaking from one parse
// into the next shows up as a difference.
func TestAgreementWithSchema(t *testing.T) {
	files := fixtureFiles(t)
	samples, err := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) == 0 {
		t.Logf("no shared samples under %s: fixtures only", samplesDir)
	}
	files = append(files, samples...)

	var p Parser
	var req Request
	var stats agreementStats
	for pass := range 2 {
		for i := range files {
			f := files[i]
			if pass == 1 {
				f = files[len(files)-1-i]
			}
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkAgreement(t, &p, &req, filepath.Base(f), body, &stats, pass == 0)
		}
	}
	stats.log(t)
	if stats.agreed == 0 {
		t.Fatal("no file parsed and agreed")
	}
}

type agreementStats struct {
	agreed         int
	rejectedBoth   map[string]int // encoding/json rejects; so do we (our reason)
	oursOnly       int            // encoding/json rejects, we parse
	invalidByRules map[string]int // encoding/json decodes, our required-member rules reject
	covered        map[string]int // how many agreed files exercise each feature
}

// cover counts the features an agreed request exercises, to show what the
// comparison covered.
func (s *agreementStats) cover(r *Request, body []byte) {
	if s.covered == nil {
		s.covered = map[string]int{}
	}
	add := func(name string, ok bool) {
		if ok {
			s.covered[name]++
		}
	}
	add("site", r.HasSite)
	add("app", r.HasApp)
	add("multi-imp", len(r.Imps) > 1)
	add("regs.gdpr or regs.ext.gdpr", r.Regs.GDPR != Unset)
	add("regs.ext.gdpr", strings.Contains(string(body), `"ext":{"gdpr"`))
	add("us_privacy", len(r.Regs.USPrivacy) > 0)
	add("gpp", len(r.Regs.GPP) > 0)
	add("gpp_sid", len(r.Regs.GPPSID) > 0)
	add("regs.ext.gpp_sid", extHasSID(body))
	add("consent", len(r.User.Consent) > 0)
	add("coppa", r.Regs.COPPA == True)
	add("segments", len(r.User.Segments) > 0)
	add("geo", r.Device.HasGeo)
	add("geo from user.geo", r.Device.HasGeo && !hasDeviceGeo(body))
	add("bcat/badv/bapp", len(r.BCat)+len(r.BAdv)+len(r.BApp) > 0)
	add("dooh", r.HasDOOH)
	add("dooh.venuetype", len(r.DOOH.VenueType) > 0)
	add("cattax (request, site or app)", r.CatTax+r.Site.CatTax+r.App.CatTax != 0)
	add("pagecat, sectioncat or content.cat", len(r.Site.PageCat)+len(r.App.PageCat)+len(r.Site.ContentCat)+len(r.App.ContentCat) > 0)
	add("geo.city", len(r.Device.Geo.City) > 0)
	add("geo.metro", len(r.Device.Geo.Metro) > 0)
	add("device.language or langb", len(r.Device.Language)+len(r.Device.LangB) > 0)
	add("device.carrier", len(r.Device.Carrier) > 0)
	add("device.connectiontype", r.Device.ConnType != 0)
	for i := range r.Imps {
		imp := &r.Imps[i]
		add("imp rwdd", imp.Rwdd)
		add("imp qty", imp.HasQty)
		add("imp video duration", imp.HasVideo && imp.Video.MinDuration+imp.Video.MaxDuration > 0)
		add("imp video protocols", len(imp.Video.Protocols) > 0)
		add("imp video plcmt", imp.Video.Plcmt != 0)
		add("imp video skip", imp.Video.Skip != Unset)
		add("imp video/audio pod (podid, podseq, slotinpod, rqddurs, poddur)", podSet(&imp.Video.Pod) || podSet(&imp.Audio.Pod))
		add("imp audio duration or protocols", imp.Audio.MinDuration+imp.Audio.MaxDuration > 0 || len(imp.Audio.Protocols) > 0)
		add("imp native request read (NativeOK)", imp.Native.Status == NativeOK)
		add("imp native request with assets", len(imp.Native.Assets) > 0)
		add("imp native request unreadable (NativeBad)", imp.Native.Status == NativeBad)
		add("imp native 1.0/1.1 wrapped", imp.Native.Wrapped)
		add("imp banner", imp.HasBanner)
		add("imp banner.format", len(imp.Banner.Format) > 0)
		add("imp video", imp.HasVideo)
		add("imp audio", imp.HasAudio)
		add("imp native", imp.HasNative)
		add("imp deals", len(imp.Deals) > 0)
		add("imp bidfloorcur not USD", len(imp.BidFloorCur) > 0 && string(imp.BidFloorCur) != "USD")
		add("imp negative floor", imp.BidFloor < 0)
	}
}

func podSet(p *Pod) bool {
	return len(p.PodID) > 0 || p.PodSeq != 0 || p.SlotInPod != 0 || len(p.RqdDurs) > 0 || p.PodDur > 0
}

// extHasSID reports a regs.ext.gpp_sid member.
func extHasSID(body []byte) bool {
	var loose struct {
		Regs *struct {
			Ext struct {
				SID json.RawMessage `json:"gpp_sid"`
			} `json:"ext"`
		} `json:"regs"`
	}
	return json.Unmarshal(body, &loose) == nil && loose.Regs != nil && len(loose.Regs.Ext.SID) > 0
}

func hasDeviceGeo(body []byte) bool {
	var loose struct {
		Device *struct {
			Geo json.RawMessage `json:"geo"`
		} `json:"device"`
	}
	return json.Unmarshal(body, &loose) == nil && loose.Device != nil && len(loose.Device.Geo) > 0 && string(loose.Device.Geo) != "null"
}

func (s *agreementStats) log(t *testing.T) {
	t.Helper()
	t.Logf("agreed on %d files; encoding/json rejected %d (we rejected %d of them, parsed %d); "+
		"we rejected %d that encoding/json decodes, by the required-member rules",
		s.agreed, sum(s.rejectedBoth)+s.oursOnly, sum(s.rejectedBoth), s.oursOnly, sum(s.invalidByRules))
	for _, m := range []map[string]int{s.rejectedBoth, s.invalidByRules, s.covered} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("  %3d x %s", m[k], k)
		}
	}
}

func sum(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// checkAgreement parses body both ways and compares; count says whether to
// record statistics (the second, backwards pass only checks).
func checkAgreement(t *testing.T, p *Parser, req *Request, name string, body []byte, s *agreementStats, count bool) {
	t.Helper()
	var br openrtb2.BidRequest
	schemaErr := json.Unmarshal(body, &br)
	err := p.Parse(body, req)
	if schemaErr != nil {
		// encoding/json rejects it: we must fail cleanly or parse.
		if err == nil {
			if len(req.ID) == 0 || len(req.Imps) == 0 {
				t.Errorf("%s: parsed without id or imps", name)
			}
			if count {
				s.oursOnly++
			}
			return
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error wraps no sentinel: %v", name, err)
		}
		if count {
			if s.rejectedBoth == nil {
				s.rejectedBoth = map[string]int{}
			}
			s.rejectedBoth[reasonClass(err)]++
		}
		return
	}
	want, rule := fromSchema(&br, body)
	if rule != "" {
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), rule) {
			t.Errorf("%s: want ErrInvalid %q, got %v", name, rule, err)
		}
		if count {
			if s.invalidByRules == nil {
				s.invalidByRules = map[string]int{}
			}
			s.invalidByRules[reasonClass(err)]++
		}
		return
	}
	if err != nil {
		t.Errorf("%s: encoding/json decodes it, Parse says %v", name, err)
		return
	}
	reconcileNative(req, want)
	var diffs []string
	diffValues("", reflect.ValueOf(*req), reflect.ValueOf(*want), &diffs)
	for _, d := range diffs {
		t.Errorf("%s: %s", name, d)
	}
	if count && len(diffs) == 0 {
		s.agreed++
		s.cover(req, body)
	}
}

// reasonClass drops array indexes and values from an error, so that the
// statistics group alike reasons.
func reasonClass(err error) string {
	msg := err.Error()
	var fe *FieldError
	if errors.As(err, &fe) {
		msg = fe.Path + ": " + fe.Reason
		if i := strings.Index(msg, ", got "); i >= 0 && !strings.Contains("object array string number bool", msg[i+6:]) {
			msg = msg[:i+6] + "<value>"
		}
	}
	var b strings.Builder
	skip := false
	for _, c := range msg {
		switch {
		case c == '[':
			skip = true
			b.WriteString("[]")
		case c == ']':
			skip = false
		case !skip:
			b.WriteRune(c)
		}
	}
	msg = b.String()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// fromSchema builds the view the parser must produce from the schema's
// decoding, applying the documented folding rules independently. rule is
// non-empty when the required-member rules must reject the request.
func fromSchema(br *openrtb2.BidRequest, body []byte) (*Request, string) {
	r := &Request{
		ID: s2bOrNil(br.ID), TMax: br.TMax, AT: br.AT, Test: br.Test != 0, CatTax: int64(br.CatTax),
		Cur: strs(br.Cur), BCat: strs(br.BCat), ACat: strs(br.ACat), BAdv: strs(br.BAdv), BApp: strs(br.BApp),
		WSeat: strs(br.WSeat), BSeat: strs(br.BSeat), WLang: strs(br.WLang), WLangB: strs(br.WLangB),
		Device: Device{DNT: Unset, LMT: Unset},
		Regs:   Regs{COPPA: Unset, GDPR: Unset, DSARequired: Unset, DSAPubRender: Unset},
	}
	if r.AT == 0 {
		r.AT = 2
	}
	if br.ID == "" {
		return nil, "id: missing or empty"
	}
	if len(br.Imp) == 0 {
		return nil, "imp: missing or empty"
	}
	for i := range br.Imp {
		if br.Imp[i].ID == "" {
			return nil, fmt.Sprintf("imp[%d].id: missing or empty", i)
		}
		r.Imps = append(r.Imps, impFromSchema(&br.Imp[i]))
	}
	if n := b2i(br.Site != nil) + b2i(br.App != nil) + b2i(br.DOOH != nil); n > 1 {
		return nil, "site, app, dooh: more than one present"
	}
	if s := br.Site; s != nil {
		r.HasSite = true
		r.Site = Site{ID: s2bOrNil(s.ID), Domain: s2bOrNil(s.Domain), Page: s2bOrNil(s.Page), Cat: strs(s.Cat),
			CatTax: int64(s.CatTax), Publisher: pubFromSchema(s.Publisher),
			PageCats: pageCatsFromSchema(s.PageCat, s.SectionCat, s.Content)}
	}
	if a := br.App; a != nil {
		r.HasApp = true
		r.App = App{ID: s2bOrNil(a.ID), Bundle: s2bOrNil(a.Bundle), Domain: s2bOrNil(a.Domain), Cat: strs(a.Cat),
			CatTax: int64(a.CatTax), Publisher: pubFromSchema(a.Publisher),
			PageCats: pageCatsFromSchema(a.PageCat, a.SectionCat, a.Content)}
	}
	if d := br.DOOH; d != nil {
		r.HasDOOH = true
		r.DOOH = DOOH{ID: s2bOrNil(d.ID), Domain: s2bOrNil(d.Domain), VenueType: strs(d.VenueType),
			Publisher: pubFromSchema(d.Publisher), PageCats: pageCatsFromSchema(nil, nil, d.Content)}
		if d.VenueTypeTax != nil {
			r.DOOH.VenueTypeTax = int64(*d.VenueTypeTax)
		}
	}
	var geo *openrtb2.Geo
	if d := br.Device; d != nil {
		r.HasDevice = true
		r.Device = Device{UA: s2bOrNil(d.UA), IP: s2bOrNil(d.IP), IFA: s2bOrNil(d.IFA), DeviceType: int64(d.DeviceType),
			Make: s2bOrNil(d.Make), Model: s2bOrNil(d.Model), OS: s2bOrNil(d.OS), OSV: s2bOrNil(d.OSV),
			Language: s2bOrNil(d.Language), LangB: s2bOrNil(d.LangB), Carrier: s2bOrNil(d.Carrier),
			W: d.W, H: d.H, DNT: flag(d.DNT), LMT: flag(d.Lmt), ATTS: extATTS(d.Ext)}
		if d.ConnectionType != nil {
			r.Device.ConnType = int64(*d.ConnectionType)
		}
		geo = d.Geo
	}
	if u := br.User; u != nil {
		r.HasUser = true
		r.User = User{ID: s2bOrNil(u.ID), BuyerUID: s2bOrNil(u.BuyerUID), Yob: u.Yob, Gender: s2bOrNil(u.Gender),
			Consent: s2bOrNil(u.Consent)}
		r.User.Consent, r.User.ConsentExt = twinOf(u.Consent, extString(u.Ext, "consent"))
		if u.Geo != nil {
			r.User.Country = s2bOrNil(u.Geo.Country)
		}
		for _, d := range u.Data {
			for _, s := range d.Segment {
				if s.ID != "" {
					r.User.Segments = append(r.User.Segments, []byte(s.ID))
				}
			}
		}
		if geo == nil {
			geo = u.Geo
		}
	}
	if geo != nil {
		r.Device.HasGeo, r.Device.GeoFromUser = true, geo != deviceGeo(br)
		r.Device.Geo = Geo{Country: s2bOrNil(geo.Country), Region: s2bOrNil(geo.Region), Metro: s2bOrNil(geo.Metro), City: s2bOrNil(geo.City),
			UTCOffset: geo.UTCOffset, HasUTCOffset: hasUTCOffset(body, geo == deviceGeo(br))}
		if geo.Lat != nil {
			r.Device.Geo.Lat = *geo.Lat
		}
		if geo.Lon != nil {
			r.Device.Geo.Lon = *geo.Lon
		}
	}
	if g := br.Regs; g != nil {
		r.Regs = Regs{COPPA: coppaFlag(body, g.COPPA), GDPR: flag(g.GDPR), USPrivacy: s2bOrNil(g.USPrivacy), GPP: s2bOrNil(g.GPP),
			GPPSID: ints(g.GPPSID)}
		if e := extGDPR(g.Ext); g.GDPR == nil || e == True {
			r.Regs.GDPR = max(r.Regs.GDPR, e) // either one saying 1 applies GDPR
		}
		r.Regs.USPrivacy, r.Regs.USPrivacyExt = twinOf(g.USPrivacy, extString(g.Ext, "us_privacy"))
		r.Regs.GPP, r.Regs.GPPExt = twinOf(g.GPP, extString(g.Ext, "gpp"))
		if ext := extInts(g.Ext, "gpp_sid"); ext != nil && !slices.Equal(r.Regs.GPPSID, ext) {
			r.Regs.GPPSID = append(r.Regs.GPPSID, ext...) // either list's sections apply
		}
		r.Regs.GPC = extGPC(g.Ext)
		r.Regs.DSARequired, r.Regs.DSAPubRender = extDSA(g.Ext)
	}
	return r, ""
}

// extDSA reads regs.ext.dsa's dsarequired and pubrender as the parser does
// (dsaField): a whole number from 0 or a string of digits (extIntOf), above 3
// read as 3; null or absent Unset; anything else, or a dsa that is not an
// object, dsarequired 3 and pubrender 0.
func extDSA(ext json.RawMessage) (req, pub int8) {
	req, pub = Unset, Unset
	var m map[string]json.RawMessage
	if json.Unmarshal(ext, &m) != nil || m["dsa"] == nil || string(m["dsa"]) == "null" {
		return
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(m["dsa"], &d) != nil {
		return 3, 0
	}
	read := func(raw json.RawMessage, strict int8) int8 {
		if raw == nil || string(raw) == "null" {
			return Unset
		}
		var f float64
		if json.Unmarshal(raw, &f) == nil {
			if f >= 0 && f == math.Trunc(f) {
				return int8(min(f, 3))
			}
			return strict
		}
		if n, ok := extIntOf(raw); ok && n >= 0 {
			return int8(min(n, 3))
		}
		return strict
	}
	return read(d["dsarequired"], 3), read(d["pubrender"], 0)
}

// extATTS reads device.ext.atts: an integer, else 0.
func extATTS(ext json.RawMessage) int64 {
	var m map[string]json.RawMessage
	if json.Unmarshal(ext, &m) != nil {
		return 0
	}
	n, _ := extIntOf(m["atts"])
	return n
}

// extIntOf reads an ext integer as the parser does (extInt): a number with
// no fraction, a string of up to 18 digits, null as 0.
func extIntOf(raw json.RawMessage) (int64, bool) {
	var n int64
	if string(raw) == "null" {
		return 0, true
	}
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// extGPC reads regs.ext.gpc as Prebid forwards it: "1", 1 or true.
func extGPC(ext json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(ext, &m) != nil {
		return false
	}
	var v any
	if json.Unmarshal(m["gpc"], &v) != nil {
		return false
	}
	return v == "1" || v == 1.0 || v == true
}

// extRewarded reads imp.ext.prebid.is_rewarded_inventory, Prebid's 2.5
// twin of rwdd: 1 or true.
func extRewarded(ext json.RawMessage) bool {
	var m struct {
		Prebid struct {
			R any `json:"is_rewarded_inventory"`
		} `json:"prebid"`
	}
	if json.Unmarshal(ext, &m) != nil {
		return false
	}
	return m.Prebid.R == 1.0 || m.Prebid.R == true
}

func impFromSchema(m *openrtb2.Imp) Imp {
	imp := Imp{ID: s2bOrNil(m.ID), TagID: s2bOrNil(m.TagID), BidFloor: m.BidFloor, BidFloorCur: s2bOrNil(m.BidFloorCur),
		Secure: flag(m.Secure), Instl: m.Instl != 0, Rwdd: m.Rwdd != 0 || extRewarded(m.Ext), Exp: m.Exp, Video: Video{Skip: Unset}}
	if q := m.Qty; q != nil {
		imp.HasQty = true
		imp.Qty = Qty{Multiplier: q.Multiplier, SourceType: int64(q.SourceType), Vendor: s2bOrNil(q.Vendor)}
	}
	if b := m.Banner; b != nil {
		imp.HasBanner = true
		imp.Banner = Banner{W: deref(b.W), H: deref(b.H), BAttr: ints(b.BAttr), BType: ints(b.BType), API: ints(b.API),
			WMin: b.WMin, WMax: b.WMax, HMin: b.HMin, HMax: b.HMax}
		if b.Pos != nil {
			imp.Banner.Pos = int64(*b.Pos)
		}
		for _, f := range b.Format {
			imp.Banner.Format = append(imp.Banner.Format, Size{W: f.W, H: f.H})
		}
	}
	if v := m.Video; v != nil {
		imp.HasVideo = true
		imp.Video = Video{MIMEs: strs(v.MIMEs), MinDuration: v.MinDuration, MaxDuration: v.MaxDuration,
			Protocols: ints(v.Protocols), Protocol: int64(v.Protocol), W: deref(v.W), H: deref(v.H), Placement: int64(v.Placement),
			Plcmt: int64(v.Plcmt), Linearity: int64(v.Linearity), BAttr: ints(v.BAttr), Delivery: ints(v.Delivery), API: ints(v.API),
			Skip: flag(v.Skip), SkipMin: v.SkipMin, SkipAfter: v.SkipAfter,
			Pod: Pod{PodID: s2bOrNil(v.PodID), PodSeq: int64(v.PodSeq), SlotInPod: int64(v.SlotInPod),
				PodDur: v.PodDur, MaxSeq: v.MaxSeq, RqdDurs: v.RqdDurs,
				DurFloors: durFloors(v.DurFloors), MinCPMPerSec: v.MinCPMPerSec}}
		if len(imp.Video.Protocols) == 0 && imp.Video.Protocol > 0 { // 2.5's single protocol
			imp.Video.Protocols = []int64{imp.Video.Protocol}
		}
	}
	if a := m.Audio; a != nil {
		imp.HasAudio = true
		imp.Audio = Audio{MIMEs: strs(a.MIMEs), MinDuration: a.MinDuration, MaxDuration: a.MaxDuration,
			Protocols: ints(a.Protocols), BAttr: ints(a.BAttr), Delivery: ints(a.Delivery),
			Pod: Pod{PodID: s2bOrNil(a.PodID), PodSeq: int64(a.PodSeq), SlotInPod: int64(a.SlotInPod),
				PodDur: a.PodDur, MaxSeq: a.MaxSeq, RqdDurs: a.RqdDurs,
				DurFloors: durFloors(a.DurFloors), MinCPMPerSec: a.MinCPMPerSec}}
	}
	if n := m.Native; n != nil {
		imp.HasNative = true
		imp.Native = Native{Request: s2bOrNil(n.Request), Ver: s2bOrNil(n.Ver), BAttr: ints(n.BAttr)}
		imp.Native.Status, imp.Native.Wrapped, imp.Native.Assets = nativeFromSchema(n.Request)
	}
	if p := m.PMP; p != nil {
		imp.PrivateAuction = p.PrivateAuction != 0
		for _, d := range p.Deals {
			imp.Deals = append(imp.Deals, Deal{ID: s2bOrNil(d.ID), BidFloor: d.BidFloor,
				BidFloorCur: s2bOrNil(d.BidFloorCur), WSeat: strs(d.WSeat), AT: d.AT,
				WADomain: strs(d.WADomain), DurFloors: durFloors(d.DurFloors), MinCPMPerSec: d.MinCPMPerSec})
		}
	}
	return imp
}

// durFloors is the schema's durfloors in the view's form (nil when none).
func durFloors(fs []openrtb2.DurFloors) []DurFloor {
	var out []DurFloor
	for _, f := range fs {
		out = append(out, DurFloor{MinDur: f.MinDur, MaxDur: f.MaxDur, BidFloor: f.BidFloor})
	}
	return out
}

// nativeFromSchema decodes a native request string with the Native 1.2
// request type of record (the 1.0/1.1 {"native":{...}} form unwrapped, a
// string holding the document decoded once more) and builds what Parse must
// hold: every asset's id and required flag, and its kind with the members of
// that kind when exactly one of title, img, video and data is given. When
// the full type rejects the document, the part of it the view holds is
// decoded with the same types (looseNative): Parse does not read the rest.
func nativeFromSchema(s string) (NativeStatus, bool, []NativeAsset) {
	if s == "" {
		return NativeAbsent, false, nil
	}
	doc := []byte(s)
	var inner string
	if json.Unmarshal(doc, &inner) == nil {
		if inner == "" {
			return NativeBad, false, nil
		}
		doc = []byte(inner)
	}
	if !json.Valid(doc) {
		// Parse, like fastjson, skips members it does not read without
		// checking their syntax (the documented leniency of the whole
		// request): either answer is right.
		return nativeEither, false, nil
	}
	var loose any
	if json.Unmarshal(doc, &loose) == nil && hasFoldableKey(loose) || hasRepeatedKey(doc) {
		// encoding/json matches keys without regard to case and keeps the
		// last of repeated ones; Parse matches the spec's spelling exactly
		// (as for the request itself): either answer is right.
		return nativeEither, false, nil
	}
	wrapped := false
	var top map[string]json.RawMessage
	if json.Unmarshal(doc, &top) != nil || top == nil {
		return NativeBad, false, nil
	}
	if w := bytes.TrimSpace(top["native"]); len(w) > 0 && w[0] == '{' {
		doc, wrapped = w, true
	}
	var nr request.Request
	if err := json.Unmarshal(doc, &nr); err == nil {
		var out []NativeAsset
		for _, a := range nr.Assets {
			na := NativeAsset{ID: a.ID, Required: a.Required != 0}
			if a.Title != nil {
				na.Kind, na.Len = AssetTitle, a.Title.Len
			}
			if a.Img != nil {
				na.Kind, na.Type, na.W, na.H, na.WMin, na.HMin = AssetImg, int64(a.Img.Type), a.Img.W, a.Img.H, a.Img.WMin, a.Img.HMin
				for _, m := range a.Img.MIMEs {
					na.MIMEs |= ImgMIMEBit(bytes.TrimSpace([]byte(m)))
				}
			}
			if a.Video != nil {
				na.Kind = AssetVideo
			}
			if a.Data != nil {
				na.Kind, na.Type, na.Len = AssetData, int64(a.Data.Type), a.Data.Len
			}
			out = append(out, oneKind(na, a.Title != nil, a.Img != nil, a.Video != nil, a.Data != nil))
		}
		return NativeOK, wrapped, out
	}
	var ln looseNative
	if json.Unmarshal(doc, &ln) != nil {
		return NativeBad, false, nil // Wrapped is only ever set with NativeOK (types.go)
	}
	var out []NativeAsset
	for _, a := range ln.Assets {
		na := NativeAsset{ID: a.ID, Required: a.Required != 0}
		if a.Title != nil {
			na.Kind, na.Len = AssetTitle, a.Title.Len
		}
		if a.Img != nil {
			na.Kind, na.Type, na.W, na.H, na.WMin, na.HMin = AssetImg, a.Img.Type, a.Img.W, a.Img.H, a.Img.WMin, a.Img.HMin
		}
		if a.Video != nil {
			na.Kind = AssetVideo
		}
		if a.Data != nil {
			na.Kind, na.Type, na.Len = AssetData, a.Data.Type, a.Data.Len
		}
		out = append(out, oneKind(na, a.Title != nil, a.Img != nil, a.Video != nil, a.Data != nil))
	}
	return NativeOK, wrapped, out
}

// nativeEither marks a native document that is not valid JSON: Parse may
// read it (NativeOK) or not (NativeBad).
const nativeEither NativeStatus = 255

// reconcileNative takes Parse's reading of the native documents the schema
// side cannot judge (nativeEither).
func reconcileNative(got, want *Request) {
	for i := range want.Imps {
		if n := &want.Imps[i].Native; n.Status == nativeEither && i < len(got.Imps) {
			*n = got.Imps[i].Native
		}
	}
}

// oneKind keeps an asset's kind only when exactly one kind was given.
func oneKind(na NativeAsset, kinds ...bool) NativeAsset {
	n := 0
	for _, k := range kinds {
		if k {
			n++
		}
	}
	if n != 1 {
		return NativeAsset{ID: na.ID, Required: na.Required}
	}
	return na
}

// looseNative is the part of a native request the view holds, with the
// schema's types.
type looseNative struct {
	Assets []struct {
		ID       int64 `json:"id"`
		Required int8  `json:"required"`
		Title    *struct {
			Len int64 `json:"len"`
		} `json:"title"`
		Img *struct {
			Type int64 `json:"type"`
			W    int64 `json:"w"`
			H    int64 `json:"h"`
			WMin int64 `json:"wmin"`
			HMin int64 `json:"hmin"`
		} `json:"img"`
		Video *struct{} `json:"video"` // presence only, but an object: a number or string is a wrong type (the view's rule)
		Data  *struct {
			Type int64 `json:"type"`
			Len  int64 `json:"len"`
		} `json:"data"`
	} `json:"assets"`
}

func pubFromSchema(p *openrtb2.Publisher) Publisher {
	if p == nil {
		return Publisher{}
	}
	return Publisher{ID: s2bOrNil(p.ID), Domain: s2bOrNil(p.Domain)}
}

func deviceGeo(br *openrtb2.BidRequest) *openrtb2.Geo {
	if br.Device == nil {
		return nil
	}
	return br.Device.Geo
}

// hasUTCOffset and coppaFlag recover presence, which the schema's plain
// integer fields lose, from a second loose decoding.
func hasUTCOffset(body []byte, fromDevice bool) bool {
	var loose struct {
		Device *struct {
			Geo *struct {
				UTCOffset *json.RawMessage `json:"utcoffset"`
			} `json:"geo"`
		} `json:"device"`
		User *struct {
			Geo *struct {
				UTCOffset *json.RawMessage `json:"utcoffset"`
			} `json:"geo"`
		} `json:"user"`
	}
	if json.Unmarshal(body, &loose) != nil {
		return false
	}
	if fromDevice {
		return loose.Device.Geo.UTCOffset != nil
	}
	return loose.User.Geo.UTCOffset != nil
}

func coppaFlag(body []byte, coppa int8) int8 {
	var loose struct {
		Regs *struct {
			COPPA *json.RawMessage `json:"coppa"`
		} `json:"regs"`
	}
	if json.Unmarshal(body, &loose) != nil || loose.Regs == nil || loose.Regs.COPPA == nil {
		return Unset
	}
	if coppa != 0 {
		return True
	}
	return False
}

// extString reads a string member of an ext object; anything else is "".
func extString(ext json.RawMessage, key string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(ext, &m) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(m[key], &s) != nil {
		return ""
	}
	return s
}

// extInts reads an array-of-integers member of an ext object; anything else
// (a wrongly typed element included) is nil.
func extInts(ext json.RawMessage, key string) []int64 {
	var m map[string]json.RawMessage
	if json.Unmarshal(ext, &m) != nil {
		return nil
	}
	var raw []json.RawMessage
	if json.Unmarshal(m[key], &raw) != nil || raw == nil {
		return nil
	}
	out := []int64{}
	for _, e := range raw {
		n, ok := extIntOf(e)
		if !ok {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// extGDPR reads regs.ext.gdpr: a number (nonzero true), "0"/"1" or a boolean.
func extGDPR(ext json.RawMessage) int8 {
	var m map[string]any
	if json.Unmarshal(ext, &m) != nil {
		return Unset
	}
	switch v := m["gdpr"].(type) {
	case float64:
		if v != 0 {
			return True
		}
		return False
	case string:
		switch v {
		case "0":
			return False
		case "1":
			return True
		}
	case bool:
		if v {
			return True
		}
		return False
	}
	return Unset
}

func flag(p *int8) int8 {
	switch {
	case p == nil:
		return Unset
	case *p != 0:
		return True
	}
	return False
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func s2bOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func strs(in []string) [][]byte {
	var out [][]byte
	for _, s := range in {
		out = append(out, s2bOrNil(s))
	}
	return out
}

func ints[T ~int | ~int8 | ~int64](in []T) []int64 {
	var out []int64
	for _, v := range in {
		out = append(out, int64(v))
	}
	return out
}

// diffValues appends a line per differing leaf of a and b. A nil and an empty
// slice are equal; []byte compares as a string.
func diffValues(path string, a, b reflect.Value, out *[]string) {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			diffValues(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i), out)
		}
	case reflect.Slice:
		if a.Type().Elem().Kind() == reflect.Uint8 {
			if string(a.Bytes()) != string(b.Bytes()) {
				*out = append(*out, fmt.Sprintf("%s: got %q, want %q", path, a.Bytes(), b.Bytes()))
			}
			return
		}
		if a.Len() != b.Len() {
			*out = append(*out, fmt.Sprintf("%s: got %d elements, want %d", path, a.Len(), b.Len()))
			return
		}
		for i := range a.Len() {
			diffValues(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i), out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: got %v, want %v", path, a.Interface(), b.Interface()))
		}
	}
}

// fixtureFiles lists the project's own fixtures.
func fixtureFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) < 12 {
		t.Fatalf("want at least 12 fixtures under testdata, got %d (%v)", len(files), err)
	}
	return files
}

func pageCatsFromSchema(page, section []string, c *openrtb2.Content) PageCats {
	out := PageCats{PageCat: strs(append(append([]string(nil), page...), section...))}
	if c != nil {
		out.ContentCat, out.ContentCatTax = strs(c.Cat), int64(c.CatTax)
	}
	return out
}

// twinOf is the parser's fold of a 2.6 field and its 2.5 ext twin: the ext
// value where the 2.6 one is empty, else the 2.6 one and the ext one when
// it differs.
func twinOf(v26, ext string) (v, other []byte) {
	switch {
	case v26 == "":
		return s2bOrNil(ext), nil
	case ext == "" || ext == v26:
		return s2bOrNil(v26), nil
	}
	return s2bOrNil(v26), s2bOrNil(ext)
}
