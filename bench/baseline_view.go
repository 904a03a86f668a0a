package bench

import (
	"encoding/json"
	"slices"

	"github.com/prebid/openrtb/v20/adcom1"
	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/ortb"
)

// The baseline scores with the same features.ExtractImp as the bidder, which
// reads an ortb.Request. toView converts a decoded openrtb2.BidRequest into
// one the straightforward, allocating way (a fresh Request and fresh byte
// slices per request), folding the 2.5 ext twins as ortb.Parser does
// (regs.ext.gdpr, regs.ext.us_privacy, user.ext.consent). One documented
// difference: openrtb2.Geo.UTCOffset is a plain int64, so an explicit
// utcoffset of 0 reads as absent here.

func toView(br *openrtb2.BidRequest) *ortb.Request {
	r := &ortb.Request{
		ID: s2b(br.ID), TMax: br.TMax, AT: br.AT, Test: br.Test != 0,
		Cur: strs(br.Cur), BCat: strs(br.BCat), ACat: strs(br.ACat), BAdv: strs(br.BAdv), BApp: strs(br.BApp),
		WSeat: strs(br.WSeat), BSeat: strs(br.BSeat),
		Device: ortb.Device{DNT: ortb.Unset, LMT: ortb.Unset},
		Regs:   ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset},
	}
	if r.AT == 0 {
		r.AT = 2
	}
	for i := range br.Imp {
		r.Imps = append(r.Imps, impView(&br.Imp[i]))
	}
	if s := br.Site; s != nil {
		r.HasSite = true
		r.Site = ortb.Site{ID: s2b(s.ID), Domain: s2b(s.Domain), Page: s2b(s.Page), Cat: strs(s.Cat), Publisher: pubView(s.Publisher)}
	}
	if a := br.App; a != nil {
		r.HasApp = true
		r.App = ortb.App{ID: s2b(a.ID), Bundle: s2b(a.Bundle), Domain: s2b(a.Domain), Cat: strs(a.Cat), Publisher: pubView(a.Publisher)}
	}
	if d := br.Device; d != nil {
		r.HasDevice = true
		r.Device = ortb.Device{UA: s2b(d.UA), IP: s2b(d.IP), IFA: s2b(d.IFA), DeviceType: int64(d.DeviceType),
			Make: s2b(d.Make), Model: s2b(d.Model), OS: s2b(d.OS), OSV: s2b(d.OSV),
			Language: s2b(d.Language), W: d.W, H: d.H, DNT: flag(d.DNT), LMT: flag(d.Lmt), ATTS: extATTS(d.Ext)}
		if d.ConnectionType != nil {
			r.Device.ConnType = int64(*d.ConnectionType)
		}
	}
	if u := br.User; u != nil {
		r.HasUser = true
		r.User = ortb.User{ID: s2b(u.ID), BuyerUID: s2b(u.BuyerUID), Yob: u.Yob, Gender: s2b(u.Gender)}
		r.User.Consent, r.User.ConsentExt = twin(u.Consent, extString(u.Ext, "consent"))
		if u.Geo != nil {
			r.User.Country = s2b(u.Geo.Country)
		}
		for _, d := range u.Data {
			for _, s := range d.Segment {
				if s.ID != "" {
					r.User.Segments = append(r.User.Segments, []byte(s.ID))
				}
			}
		}
	}
	if geo := requestGeo(br, true); geo != nil {
		r.Device.HasGeo, r.Device.GeoFromUser = true, br.Device == nil || br.Device.Geo == nil
		r.Device.Geo = ortb.Geo{Country: s2b(geo.Country), Region: s2b(geo.Region), City: s2b(geo.City),
			UTCOffset: geo.UTCOffset, HasUTCOffset: geo.UTCOffset != 0}
		if geo.Lat != nil {
			r.Device.Geo.Lat = *geo.Lat
		}
		if geo.Lon != nil {
			r.Device.Geo.Lon = *geo.Lon
		}
	}
	if g := br.Regs; g != nil {
		r.Regs = ortb.Regs{COPPA: boolFlag(g.COPPA != 0), GDPR: regsGDPR(g)}
		r.Regs.USPrivacy, r.Regs.USPrivacyExt = twin(g.USPrivacy, extString(g.Ext, "us_privacy"))
		r.Regs.GPP, r.Regs.GPPExt = twin(g.GPP, extString(g.Ext, "gpp"))
		for _, id := range g.GPPSID {
			r.Regs.GPPSID = append(r.Regs.GPPSID, int64(id))
		}
		var ext struct {
			SID []json.RawMessage `json:"gpp_sid"`
		}
		if json.Unmarshal(g.Ext, &ext) == nil && ext.SID != nil {
			sids := []int64{}
			for _, e := range ext.SID {
				n, ok := extInt(e)
				if !ok {
					sids = nil // a wrongly typed element: ignored whole, as in ortb.Parser
					break
				}
				sids = append(sids, n)
			}
			if sids != nil && !slices.Equal(r.Regs.GPPSID, sids) {
				r.Regs.GPPSID = append(r.Regs.GPPSID, sids...) // either list's sections apply, as in ortb.Parser
			}
		}
	}
	return r
}

func impView(m *openrtb2.Imp) ortb.Imp {
	imp := ortb.Imp{ID: s2b(m.ID), TagID: s2b(m.TagID), BidFloor: m.BidFloor, BidFloorCur: s2b(m.BidFloorCur),
		Secure: flag(m.Secure), Instl: m.Instl != 0}
	if b := m.Banner; b != nil {
		imp.HasBanner = true
		imp.Banner = ortb.Banner{W: deref(b.W), H: deref(b.H), BAttr: attrs(b.BAttr)}
		if b.Pos != nil {
			imp.Banner.Pos = int64(*b.Pos)
		}
		for _, f := range b.Format {
			imp.Banner.Format = append(imp.Banner.Format, ortb.Size{W: f.W, H: f.H})
		}
	}
	if v := m.Video; v != nil {
		imp.HasVideo = true
		imp.Video = ortb.Video{MIMEs: strs(v.MIMEs), MinDuration: v.MinDuration, MaxDuration: v.MaxDuration,
			W: deref(v.W), H: deref(v.H), Placement: int64(v.Placement), Plcmt: int64(v.Plcmt),
			Linearity: int64(v.Linearity), BAttr: attrs(v.BAttr)}
		for _, p := range v.Protocols {
			imp.Video.Protocols = append(imp.Video.Protocols, int64(p))
		}
		if len(imp.Video.Protocols) == 0 && v.Protocol > 0 { // 2.5's single protocol
			imp.Video.Protocols = append(imp.Video.Protocols, int64(v.Protocol))
		}
	}
	if a := m.Audio; a != nil {
		imp.HasAudio = true
		imp.Audio = ortb.Audio{MIMEs: strs(a.MIMEs)}
	}
	if n := m.Native; n != nil {
		imp.HasNative = true
		imp.Native = ortb.Native{Request: s2b(n.Request), Ver: s2b(n.Ver), BAttr: attrs(n.BAttr)}
	}
	if p := m.PMP; p != nil {
		imp.PrivateAuction = p.PrivateAuction != 0
		for _, d := range p.Deals {
			imp.Deals = append(imp.Deals, ortb.Deal{ID: s2b(d.ID), BidFloor: d.BidFloor, BidFloorCur: s2b(d.BidFloorCur), WSeat: strs(d.WSeat)})
		}
	}
	return imp
}

func pubView(p *openrtb2.Publisher) ortb.Publisher {
	if p == nil {
		return ortb.Publisher{}
	}
	return ortb.Publisher{ID: s2b(p.ID), Domain: s2b(p.Domain)}
}

// requestGeo is device.geo, else user.geo where user-level data is allowed
// (personalize; the user's home location is a profile field).
func requestGeo(br *openrtb2.BidRequest, personalize bool) *openrtb2.Geo {
	if br.Device != nil && br.Device.Geo != nil {
		return br.Device.Geo
	}
	if br.User != nil && personalize {
		return br.User.Geo
	}
	return nil
}

// twin folds a 2.5 ext field into its 2.6 one as ortb.Parser does: the ext
// value where the 2.6 one is empty, else the 2.6 one and the ext one when it
// differs.
func twin(v26, ext string) (v, other []byte) {
	switch {
	case v26 == "":
		return s2b(ext), nil
	case ext == "" || ext == v26:
		return s2b(v26), nil
	}
	return s2b(v26), s2b(ext)
}

// regsGDPR is regs.gdpr (2.6), else regs.ext.gdpr (2.5: a number or
// "0"/"1"); either one saying 1 applies GDPR, as in ortb.Parser.
func regsGDPR(g *openrtb2.Regs) int8 {
	ext := extGDPR(g.Ext)
	if g.GDPR != nil && ext != ortb.True {
		return flag(g.GDPR)
	}
	return ext
}

func extGDPR(raw json.RawMessage) int8 {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ortb.Unset
	}
	switch v := m["gdpr"].(type) {
	case float64:
		return boolFlag(v != 0)
	case string:
		switch v {
		case "0":
			return ortb.False
		case "1":
			return ortb.True
		}
	}
	return ortb.Unset
}

// extString reads a string member of an ext object; anything else is "".
func extString(ext json.RawMessage, key string) string {
	if len(ext) == 0 {
		return ""
	}
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

func boolFlag(b bool) int8 {
	if b {
		return ortb.True
	}
	return ortb.False
}

func flag(p *int8) int8 {
	if p == nil {
		return ortb.Unset
	}
	return boolFlag(*p != 0)
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func s2b(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func strs(in []string) [][]byte {
	var out [][]byte
	for _, s := range in {
		out = append(out, s2b(s))
	}
	return out
}

func attrs(in []adcom1.CreativeAttribute) []int64 {
	var out []int64
	for _, a := range in {
		out = append(out, int64(a))
	}
	return out
}

// extATTS reads device.ext.atts as the parser does: an integer, else 0
// (App Tracking Transparency: 1 restricted and 2 denied limit tracking,
// package privacy).
func extATTS(ext json.RawMessage) int64 {
	var m map[string]json.RawMessage
	if json.Unmarshal(ext, &m) != nil {
		return 0
	}
	n, _ := extInt(m["atts"])
	return n
}

// extInt reads an ext integer as ortb.Parser does: a number with no
// fraction, a string of up to 18 digits, null as 0.
func extInt(raw json.RawMessage) (int64, bool) {
	if string(raw) == "null" {
		return 0, true
	}
	var n int64
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
