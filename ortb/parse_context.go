package ortb

import (
	"math"

	"github.com/valyala/fastjson"
)

func siteField(s *Site, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "id":
		return getString(k, v, &s.ID)
	case "domain":
		return getString(k, v, &s.Domain)
	case "page":
		return getString(k, v, &s.Page)
	case "cat":
		return getStrings(k, v, &s.Cat)
	case "cattax":
		return getInt(k, v, &s.CatTax)
	case "publisher":
		return parsePublisher(&s.Publisher, k, v)
	case "pagecat", "sectioncat", "content":
		return s.PageCats.field(k, v)
	}
	return errUnread
}

func appField(a *App, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "id":
		return getString(k, v, &a.ID)
	case "bundle":
		return getString(k, v, &a.Bundle)
	case "domain":
		return getString(k, v, &a.Domain)
	case "cat":
		return getStrings(k, v, &a.Cat)
	case "cattax":
		return getInt(k, v, &a.CatTax)
	case "publisher":
		return parsePublisher(&a.Publisher, k, v)
	case "pagecat", "sectioncat", "content":
		return a.PageCats.field(k, v)
	}
	return errUnread
}

func doohField(d *DOOH, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "id":
		return getString(k, v, &d.ID)
	case "domain":
		return getString(k, v, &d.Domain)
	case "venuetype":
		return getStrings(k, v, &d.VenueType)
	case "venuetypetax":
		return getInt(k, v, &d.VenueTypeTax)
	case "publisher":
		return parsePublisher(&d.Publisher, k, v)
	case "content":
		return d.PageCats.field(k, v)
	}
	return errUnread
}

func parsePublisher(p *Publisher, k []byte, v *fastjson.Value) error {
	if isNull(v) {
		*p = Publisher{}
		return nil
	}
	o, err := getObject(k, v)
	if o == nil {
		return err
	}
	return within("publisher", visit(o, func(k []byte, v *fastjson.Value) error {
		switch string(k) {
		case "id":
			return getString(k, v, &p.ID)
		case "domain":
			return getString(k, v, &p.Domain)
		}
		return errUnread
	}))
}

func deviceField(d *Device, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "ua":
		return getString(k, v, &d.UA)
	case "ip":
		return getString(k, v, &d.IP)
	case "ifa":
		return getString(k, v, &d.IFA)
	case "devicetype":
		return getInt(k, v, &d.DeviceType)
	case "make":
		return getString(k, v, &d.Make)
	case "model":
		return getString(k, v, &d.Model)
	case "os":
		return getString(k, v, &d.OS)
	case "osv":
		return getString(k, v, &d.OSV)
	case "language":
		return getString(k, v, &d.Language)
	case "langb":
		return getString(k, v, &d.LangB)
	case "carrier":
		return getString(k, v, &d.Carrier)
	case "connectiontype":
		return getInt(k, v, &d.ConnType)
	case "w":
		return getInt(k, v, &d.W)
	case "h":
		return getInt(k, v, &d.H)
	case "dnt":
		return getFlag(k, v, &d.DNT)
	case "lmt":
		return getFlag(k, v, &d.LMT)
	case "ext":
		// atts only; ext is free-form, so a wrong type is no signal.
		d.ATTS = 0
		if ext := extObject(v); ext != nil {
			return within("ext", visit(ext, func(k []byte, v *fastjson.Value) error {
				if string(k) != "atts" {
					return errUnread
				}
				d.ATTS, _ = extInt(v) // a number, or a string of digits ("2")
				return nil
			}))
		}
		return nil
	case "geo":
		ok, err := parseGeo(&d.Geo, k, v)
		d.HasGeo = ok
		return err
	}
	return errUnread
}

// parseGeo reads a geo object; ok reports that it was an object (null
// empties g).
func parseGeo(g *Geo, k []byte, v *fastjson.Value) (ok bool, err error) {
	if isNull(v) {
		*g = Geo{}
		return false, nil
	}
	o, err := getObject(k, v)
	if o == nil {
		return false, err
	}
	return true, within("geo", visit(o, func(k []byte, v *fastjson.Value) error {
		switch string(k) {
		case "country":
			return getString(k, v, &g.Country)
		case "region":
			return getString(k, v, &g.Region)
		case "metro":
			return getString(k, v, &g.Metro)
		case "city":
			return getString(k, v, &g.City)
		case "utcoffset":
			g.HasUTCOffset = !isNull(v)
			return getInt(k, v, &g.UTCOffset)
		case "lat":
			return getFloat(k, v, &g.Lat)
		case "lon":
			return getFloat(k, v, &g.Lon)
		}
		return errUnread
	}))
}

func (p *Parser) userField(u *User, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "id":
		return getString(k, v, &u.ID)
	case "buyeruid":
		return getString(k, v, &u.BuyerUID)
	case "yob":
		return getInt(k, v, &u.Yob)
	case "gender":
		return getString(k, v, &u.Gender)
	case "consent":
		return getString(k, v, &u.Consent)
	case "geo":
		ok, err := parseGeo(&p.userGeo, k, v)
		p.hasUserGeo = ok
		return err
	case "data":
		return within("data", userData(u, v))
	case "ext":
		p.extConsent = nil
		if ext := extObject(v); ext != nil {
			return within("ext", visit(ext, p.userExtField))
		}
		return nil
	}
	return errUnread
}

// userData flattens user.data[].segment[].id into u.Segments, skipping empty
// ids and null elements.
func userData(u *User, v *fastjson.Value) error {
	data, err := getArray(nil, v)
	if err != nil {
		return err
	}
	u.Segments = u.Segments[:0]
	for i, d := range data {
		o, err := getObject(nil, d)
		if o == nil {
			if err != nil {
				return withinIndex(i, err)
			}
			continue
		}
		start := len(u.Segments)
		if err := visit(o, func(k []byte, v *fastjson.Value) error {
			if string(k) == "segment" {
				u.Segments = u.Segments[:start]
				return within("segment", segments(u, v))
			}
			return errUnread
		}); err != nil {
			return withinIndex(i, err)
		}
	}
	return nil
}

func segments(u *User, v *fastjson.Value) error {
	segs, err := getArray(nil, v)
	if err != nil {
		return err
	}
	for i, s := range segs {
		o, err := getObject(nil, s)
		if o == nil {
			if err != nil {
				return withinIndex(i, err)
			}
			continue
		}
		var id []byte
		if err := visit(o, func(k []byte, v *fastjson.Value) error {
			if string(k) == "id" {
				return getString(k, v, &id)
			}
			return errUnread
		}); err != nil {
			return withinIndex(i, err)
		}
		if len(id) > 0 {
			u.Segments = append(u.Segments, id)
		}
	}
	return nil
}

func (p *Parser) regsField(r *Regs, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "coppa":
		return getFlag(k, v, &r.COPPA)
	case "gdpr":
		return getFlag(k, v, &r.GDPR)
	case "us_privacy":
		return getString(k, v, &r.USPrivacy)
	case "gpp":
		return getString(k, v, &r.GPP)
	case "gpp_sid":
		return getInts(k, v, &r.GPPSID)
	case "ext":
		p.extGDPR, p.extUSPriv, p.extGPP, p.extGPC = Unset, nil, nil, false
		p.extGPPSID, p.hasExtSID = p.extGPPSID[:0], false
		p.extDSAReq, p.extDSAPub = Unset, Unset
		if ext := extObject(v); ext != nil {
			return within("ext", visit(ext, p.regsExtField))
		}
		return nil
	}
	return errUnread
}

// userExtField reads user.ext.consent, the 2.5 twin of user.consent; a
// consent that is not a string is ignored (ext is free-form).
func (p *Parser) userExtField(k []byte, v *fastjson.Value) error {
	if string(k) != "consent" {
		return errUnread
	}
	p.extConsent = nil
	if v.Type() == fastjson.TypeString {
		p.extConsent, _ = v.StringBytes()
	}
	return nil
}

// regsExtField reads the 2.5 twins in regs.ext. Wrong types are ignored (ext
// is free-form), except gdpr's: a gdpr that is there says GDPR applies
// unless it is 0, "0" or false; any other value (1, "1", true, and what
// cannot be read, "yes", "", an object) applies it, since read as unset it
// would let user-level data through where the sender may have meant GDPR to
// apply; null is absent. gpp_sid must be an array of integers (a wrongly
// typed element drops the whole array).
func (p *Parser) regsExtField(k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "gdpr":
		switch v.Type() {
		case fastjson.TypeNull:
		case fastjson.TypeNumber:
			p.extGDPR = True
			if f, err := v.Float64(); err == nil && f == 0 {
				p.extGDPR = False
			}
		case fastjson.TypeString:
			p.extGDPR = True
			if s, _ := v.StringBytes(); string(s) == "0" {
				p.extGDPR = False
			}
		case fastjson.TypeFalse:
			p.extGDPR = False
		default: // true, an object, an array
			p.extGDPR = True
		}
	case "us_privacy":
		if v.Type() == fastjson.TypeString {
			p.extUSPriv, _ = v.StringBytes()
		}
	case "gpc":
		// Global Privacy Control as Prebid forwards it: "1" (a number 1
		// or true too); anything else is no signal.
		switch v.Type() {
		case fastjson.TypeString:
			s, _ := v.StringBytes()
			p.extGPC = string(s) == "1"
		case fastjson.TypeNumber:
			f, err := v.Float64()
			p.extGPC = err == nil && f == 1
		case fastjson.TypeTrue:
			p.extGPC = true
		}
	case "gpp":
		if v.Type() == fastjson.TypeString {
			p.extGPP, _ = v.StringBytes()
		}
	case "dsa":
		p.extDSAReq, p.extDSAPub = Unset, Unset
		switch v.Type() {
		case fastjson.TypeObject:
			o, _ := v.Object()
			return within("dsa", visit(o, p.dsaField))
		case fastjson.TypeNull:
		default:
			// A dsa the bidder cannot read may still require
			// transparency: read the strict way (dsaField).
			p.extDSAReq, p.extDSAPub = dsaUnreadReq, dsaUnreadPub
		}
	case "gpp_sid":
		// An array of integers or strings of digits ([2], ["2"]: a
		// section id written as a string still names its section, which
		// would otherwise not apply); else ignored whole (ext is
		// free-form).
		p.extGPPSID = p.extGPPSID[:0]
		p.hasExtSID = false
		if v.Type() != fastjson.TypeArray {
			break
		}
		a, _ := v.Array()
		p.hasExtSID = true
		for _, e := range a {
			n, ok := extInt(e)
			if !ok {
				p.extGPPSID, p.hasExtSID = p.extGPPSID[:0], false
				break
			}
			p.extGPPSID = append(p.extGPPSID, n)
		}
	default:
		return errUnread
	}
	return nil
}

// field reads pagecat, sectioncat (appended, in either order) and content.
func (c *PageCats) field(k []byte, v *fastjson.Value) error {
	if string(k) != "content" {
		return appendStrings(k, v, &c.PageCat)
	}
	if isNull(v) {
		c.ContentCat, c.ContentCatTax = c.ContentCat[:0], 0
		return nil
	}
	o, err := getObject(k, v)
	if o == nil {
		return err
	}
	return within("content", visit(o, func(k []byte, v *fastjson.Value) error {
		switch string(k) {
		case "cat":
			return getStrings(k, v, &c.ContentCat)
		case "cattax":
			return getInt(k, v, &c.ContentCatTax)
		}
		return errUnread
	}))
}

// dsaField reads regs.ext.dsa's dsarequired and pubrender: a whole number
// (2, 2.0, 2e0: what an encoder writes for an integer) or a string of digits;
// above 3 is read as 3 (dsarequired's 3, required: the exchange would drop a
// bid without the transparency it asks for); null is absent. A value it
// cannot read (2.5, -1, true, " 2", an object) is read the strict way, as it
// is for a dsa that is not an object: dsarequired 3, pubrender 0 (the
// publisher will not render it), so that a bid goes out only with its
// transparency and one whose notice nobody would render not at all. An
// outside audit's dsarequired 2.0 got a bid from a campaign without DSA
// data.
func (p *Parser) dsaField(k []byte, v *fastjson.Value) error {
	var dst *int8
	switch string(k) {
	case "dsarequired":
		dst = &p.extDSAReq
	case "pubrender":
		dst = &p.extDSAPub
	default:
		return errUnread
	}
	switch n, ok := dsaInt(v); {
	case v.Type() == fastjson.TypeNull:
		*dst = Unset
	case ok:
		*dst = n
	case dst == &p.extDSAReq:
		*dst = dsaUnreadReq
	default:
		*dst = dsaUnreadPub
	}
	return nil
}

// How dsaField reads a dsarequired or pubrender it cannot read.
const (
	dsaUnreadReq = 3
	dsaUnreadPub = 0
)

// dsaInt reads a DSA value: a whole number from 0 or a string of digits
// (extInt), at most 3.
func dsaInt(v *fastjson.Value) (int8, bool) {
	if v.Type() == fastjson.TypeNumber {
		f, err := v.Float64()
		if err != nil || f < 0 || f != math.Trunc(f) || math.IsInf(f, 0) { // 1e400 is +Inf to fastjson
			return 0, false
		}
		return int8(min(f, 3)), true
	}
	n, ok := extInt(v)
	if !ok || v.Type() == fastjson.TypeNull {
		return 0, false
	}
	return int8(min(n, 3)), true
}

// extInt reads an ext integer the way exchanges write them: a number written
// as an integer, or a string of at most 18 digits (no sign); null is 0. ok is
// false for anything else.
func extInt(v *fastjson.Value) (n int64, ok bool) {
	switch v.Type() {
	case fastjson.TypeNull:
		return 0, true
	case fastjson.TypeNumber:
		return toInt(v)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		if len(b) == 0 || len(b) > 18 {
			return 0, false
		}
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		return n, true
	}
	return 0, false
}
