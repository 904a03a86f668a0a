package privacy

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/prebid/go-gdpr/bitutils"
	"github.com/prebid/go-gdpr/consentconstants"
	tcf2 "github.com/prebid/go-gdpr/vendorconsent/tcf2"
)

// The TCF v2.2 purposes the bidder's uses need (docs/privacy.md says why).
const (
	purposeStorage     = consentconstants.Purpose(1)  // store and/or access information on a device: consent only
	purposeBasicAds    = consentconstants.Purpose(2)  // use limited data to select advertising (frequency capping): consent or legitimate interest
	purposeAdsProfile  = consentconstants.Purpose(3)  // create profiles for personalised advertising: consent only
	purposePersonalAds = consentconstants.Purpose(4)  // use profiles to select personalised advertising: consent only
	purposeImprove     = consentconstants.Purpose(10) // develop and improve services (training the model): consent or legitimate interest
)

// Publisher restriction types (TCF v2 core string, PubRestrictionEntry).
const (
	restrictNotAllowed = 0 // purpose flatly not allowed by the publisher
	restrictConsent    = 1 // require consent
	restrictLI         = 2 // require legitimate interest
)

// tcfVerdict is what one TC string allows vendor: ok says it decoded;
// basic, that vendor has a legal basis for purpose 2 (select ads at all).
type tcfVerdict struct {
	ok    bool
	uses  Use
	basic bool
	train bool // purpose 10 has a basis: the row log may keep the user-level slots
	// undisclosed: written since tcfV23Deadline without the Disclosed
	// Vendors segment (malformed, or read as before v2.3 with
	// AllowMissingDisclosedVendors): counted, so an operator sees how much
	// traffic the option decides.
	undisclosed bool
}

// and is what v and w both allow (two strings for one request), ok only
// when both decoded.
func (v tcfVerdict) and(w tcfVerdict) tcfVerdict {
	return tcfVerdict{ok: v.ok && w.ok, uses: v.uses & w.uses, basic: v.basic && w.basic, train: v.train && w.train,
		undisclosed: v.undisclosed || w.undisclosed}
}

// tcfV23Deadline is the day TCF v2.3 made the Disclosed Vendors segment
// mandatory: a TC string created on or after it without the segment is
// invalid; one created before stays valid. The bidder reads a string as
// written since the deadline when its Created or its LastUpdated is on or
// after it (Created alone is the IAB's rule; a string updated since was
// written by a CMP bound by v2.3; LastUpdated alone let a string created
// after the deadline, with an earlier LastUpdated, through).
var tcfV23Deadline = time.Date(2026, time.February, 28, 0, 0, 0, 0, time.UTC)

// decodeTCF decodes a TCF v2 consent string and evaluates it for vendor:
// the core segment with github.com/prebid/go-gdpr, the Disclosed Vendors
// segment (TCF v2.3) with disclosedVendor, since go-gdpr v1.12.1 reads the
// core segment only. Anything that does not decode as v2, a TCF v1 string
// included, is !ok, and so is a string written on or after tcfV23Deadline
// without a Disclosed Vendors segment unless allowUndisclosed. A vendor the
// segment does not list has no legal basis at all: it was not shown to the
// user, whatever its consent and legitimate-interest bits say. It allocates.
func decodeTCF(s string, vendor uint16, allowUndisclosed bool) tcfVerdict {
	if !tcf2.IsConsentV2(s) {
		return tcfVerdict{}
	}
	c, err := tcf2.ParseString(s)
	if err != nil {
		return tcfVerdict{}
	}
	m, isMeta := c.(tcf2.ConsentMetadata)
	if !isMeta {
		return tcfVerdict{}
	}
	var rest string
	if i := strings.IndexByte(s, '.'); i >= 0 {
		rest = s[i+1:]
	}
	present, disclosed, ok := disclosedVendor(rest, vendor)
	undisclosed := ok && !present && writtenSinceV23(m)
	switch {
	case !ok:
		return tcfVerdict{}
	case undisclosed && !allowUndisclosed:
		return tcfVerdict{undisclosed: true}
	case present && !disclosed:
		return tcfVerdict{ok: true}
	}
	restr, ok := pubRestrictions(s[:len(s)-len(rest)], vendor)
	if !ok {
		return tcfVerdict{}
	}
	uses, basic, train := tcfUses(m, vendor, restr)
	return tcfVerdict{ok: true, uses: uses, basic: basic, train: train, undisclosed: undisclosed}
}

// writtenSinceV23 reports whether m was created or last updated on or after
// tcfV23Deadline.
func writtenSinceV23(m tcf2.ConsentMetadata) bool {
	return !m.Created().Before(tcfV23Deadline) || !m.LastUpdated().Before(tcfV23Deadline)
}

// TC string segment types (the first 3 bits of each segment after the core).
const (
	segDisclosedVendors = 1
	segAllowedVendors   = 2 // deprecated since TCF v2.2; read past
	segPublisherTC      = 3
)

// disclosedVendor reads the segments after a TC string's core one
// ("seg.seg", without the core) and says whether one is a Disclosed Vendors
// segment and whether it lists vendor. ok is false when a segment is not
// base64url, has an unknown type, or the Disclosed Vendors segment is
// repeated or cut short. An empty segment (a trailing '.') is skipped.
func disclosedVendor(segs string, vendor uint16) (present, in, ok bool) {
	for segs != "" {
		seg := segs
		if i := strings.IndexByte(segs, '.'); i >= 0 {
			seg, segs = segs[:i], segs[i+1:]
		} else {
			segs = ""
		}
		if seg == "" {
			continue
		}
		seg = strings.TrimRight(seg, "=")
		typ, valid := segmentType(seg)
		if !valid {
			return false, false, false
		}
		switch typ {
		case segDisclosedVendors:
			if present {
				return false, false, false
			}
			present = true
			data, err := base64.RawURLEncoding.DecodeString(seg)
			if err != nil {
				return false, false, false
			}
			if in, ok = vendorInSection(data, 3, vendor); !ok {
				return false, false, false
			}
		case segAllowedVendors, segPublisherTC:
		default:
			return false, false, false
		}
	}
	return present, in, true
}

// segmentType returns the SegmentType (the first 3 bits) of a segment
// without decoding it (a segment it only reads past costs no allocation: a
// 16 KiB string of thousands of them allocated once each); valid says the
// segment is base64url, without padding, of at least one whole byte.
func segmentType(seg string) (typ byte, valid bool) {
	if len(seg) < 2 || len(seg)%4 == 1 {
		return 0, false
	}
	for i := 0; i < len(seg); i++ {
		if b64url[seg[i]] < 0 {
			return 0, false
		}
	}
	return byte(b64url[seg[0]]) >> 3, true
}

// b64url maps a base64url character to its 6-bit value, anything else to -1.
var b64url = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// vendorInSection reads a vendor section (MaxVendorId, IsRangeEncoding, then
// a bit field or range entries, the layout of the core segment's vendor
// consents) starting at bit start of data, and says whether it holds vendor;
// ok is false when data ends inside it or an entry starts at 0, ends before it
// starts or past MaxVendorId (overlapping entries are read, as the IAB's library
// reads them).
func vendorInSection(data []byte, start uint, vendor uint16) (in, ok bool) {
	bit := func(i uint) (bool, bool) {
		if i/8 >= uint(len(data)) {
			return false, false
		}
		return data[i/8]&(0x80>>(i%8)) != 0, true
	}
	maxID, err := bitutils.ParseUInt16(data, start)
	if err != nil {
		return false, false
	}
	isRange, ok := bit(start + 16)
	if !ok {
		return false, false
	}
	pos := start + 17
	if !isRange {
		if maxID > 0 {
			if _, ok := bit(pos + uint(maxID) - 1); !ok {
				return false, false
			}
		}
		if vendor == 0 || vendor > maxID {
			return false, true
		}
		in, _ = bit(pos + uint(vendor) - 1)
		return in, true
	}
	in, _, ok = rangeEntries(data, pos, maxID, vendor)
	return in, ok
}

// rangeEntries reads NumEntries (12 bits) at bit pos of data, then that many
// range entries (IsARange, StartOrOnlyVendorId, EndVendorId where IsARange),
// says whether one holds vendor, and returns the bit after them; ok is false
// when data ends inside them or an entry starts at 0, ends before it starts
// or past maxID (overlapping entries are read, as the IAB's library reads
// them).
func rangeEntries(data []byte, pos uint, maxID, vendor uint16) (in bool, end uint, ok bool) {
	n, err := bitutils.ParseUInt12(data, pos)
	if err != nil {
		return false, 0, false
	}
	pos += 12
	for range n {
		if pos/8 >= uint(len(data)) {
			return false, 0, false
		}
		isARange := data[pos/8]&(0x80>>(pos%8)) != 0
		first, err := bitutils.ParseUInt16(data, pos+1)
		if err != nil {
			return false, 0, false
		}
		last := first
		pos += 17
		if isARange {
			if last, err = bitutils.ParseUInt16(data, pos); err != nil {
				return false, 0, false
			}
			pos += 16
		}
		if first == 0 || last < first || last > maxID {
			return false, 0, false
		}
		if vendor >= first && vendor <= last {
			in = true
		}
	}
	return in, pos, true
}

// tcfUses applies the purpose table of docs/privacy.md to a decoded string;
// basic says whether purpose 2 has a legal basis (Options.RequirePurpose2).
//
// restr is the publisher restrictions for vendor (pubRestrictions): go-gdpr's
// own lookup keeps one record per (purpose, type), the last one.
func tcfUses(m tcf2.ConsentMetadata, vendor uint16, restr pubRestricted) (uses Use, basic, train bool) {
	if vendor == 0 {
		return None, false, false
	}
	restricted := func(p consentconstants.Purpose, kind uint8) bool {
		return restr[kind]&(1<<uint(p)) != 0
	}
	// consent: the user consented to the purpose and to the vendor, and the
	// publisher neither forbids the purpose nor requires legitimate interest.
	consent := func(p consentconstants.Purpose) bool {
		return m.PurposeAllowed(p) && m.VendorConsent(vendor) &&
			!restricted(p, restrictNotAllowed) && !restricted(p, restrictLI)
	}
	// legitimate interest: disclosed for the purpose and the vendor, not
	// objected to, and the publisher neither forbids the purpose nor
	// requires consent.
	legInt := func(p consentconstants.Purpose) bool {
		return m.PurposeLITransparency(p) && m.VendorLegitInterest(vendor) &&
			!restricted(p, restrictNotAllowed) && !restricted(p, restrictConsent)
	}
	basic = consent(purposeBasicAds) || legInt(purposeBasicAds)
	train = consent(purposeImprove) || legInt(purposeImprove)
	if consent(purposeStorage) && basic {
		uses |= FreqCap
	}
	if consent(purposeStorage) && consent(purposeAdsProfile) && consent(purposePersonalAds) {
		uses |= Personalize
	}
	return uses, basic, train
}

// pubRestricted holds, per restriction type (restrictNotAllowed,
// restrictConsent, restrictLI), the purposes (bit p for purpose p, 0 to 63)
// a TC string's publisher restrictions apply to one vendor.
type pubRestricted [3]uint64

// pubRestrictions reads the publisher restrictions of a TC string's core
// segment (core: the string up to its first '.', which may end in it) for
// vendor, merging every record that names a purpose and restriction type:
// the IAB's reference decoder (@iabtechlabtcf/core) merges records that
// repeat a (purpose, type), where go-gdpr v1.12.1 keeps the last one only,
// so a restriction on vendor in an earlier record was lost (an outside
// audit). ok is false when the core does not decode or ends inside a
// section (go-gdpr has read the same bits without an error by then).
func pubRestrictions(core string, vendor uint16) (r pubRestricted, ok bool) {
	core = strings.TrimSuffix(core, ".")
	var buf [512]byte // a core segment with a bit field of 2,000 vendors fits: no allocation
	data := buf[:]
	if n := base64.RawURLEncoding.DecodedLen(len(core)); n > len(buf) {
		data = make([]byte, n)
	}
	dn, err := base64.RawURLEncoding.Decode(data, []byte(core))
	if err != nil {
		return r, false
	}
	data = data[:dn]
	// The vendor consent section starts at bit 213, after the fixed fields
	// (TCF v2 core segment), and the legitimate-interest section follows it.
	pos, ok := vendorSectionEnd(data, 213)
	if !ok {
		return r, false
	}
	if pos, ok = vendorSectionEnd(data, pos); !ok {
		return r, false
	}
	n, err := bitutils.ParseUInt12(data, pos)
	if err != nil {
		return r, false
	}
	pos += 12
	for range n {
		head, err := bitutils.ParseByte8(data, pos)
		if err != nil {
			return r, false
		}
		purpose, kind := head>>2, head&3
		var in bool
		if in, pos, ok = rangeEntries(data, pos+8, 0xffff, vendor); !ok {
			return r, false
		}
		if in && kind <= restrictLI {
			r[kind] |= 1 << purpose
		}
	}
	return r, true
}

// vendorSectionEnd returns the bit after a vendor section (MaxVendorId,
// IsRangeEncoding, then a bit field or range entries) that starts at bit
// start of data; ok is false when data ends inside it.
func vendorSectionEnd(data []byte, start uint) (end uint, ok bool) {
	maxID, err := bitutils.ParseUInt16(data, start)
	if err != nil || (start+16)/8 >= uint(len(data)) {
		return 0, false
	}
	pos := start + 17
	if data[(start+16)/8]&(0x80>>((start+16)%8)) == 0 { // a bit field
		end = pos + uint(maxID)
		return end, (end+7)/8 <= uint(len(data))
	}
	_, end, ok = rangeEntries(data, pos, maxID, 0)
	return end, ok
}
