package privacy

import (
	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/sections"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/prebid/go-gpp/sections/uspco"
	"github.com/prebid/go-gpp/sections/uspct"
	"github.com/prebid/go-gpp/sections/uspnat"
	"github.com/prebid/go-gpp/sections/usput"
	"github.com/prebid/go-gpp/sections/uspva"
)

// The GPP US sections (usnat, SID 7, and the states, SIDs 8 to 12) are read
// the way Prebid reads them for its transmitUfpd activity (docs.prebid.org,
// "Prebid US Compliance Support"): each state section is first normalized to
// the usnat fields, then one rule decides. Field values: 0 not applicable;
// for a notice 1 given, 2 not given; for an opt-out 1 opted out, 2 did not
// opt out; for a consent 1 no consent, 2 consent; for an MSPA mode 1 yes.

// null marks a usnat field the section does not have: it matches no value.
const null int8 = -1

// usnat is a US section normalized to the usnat (SID 7) fields. Sensitive is
// indexed by the usnat category number (1 to 16, 13 to 16 in usnat version 2
// only; 0 unused).
type usnat struct {
	saleNotice, sharingNotice, sharingOONotice, targetedNotice int8
	sensOONotice, sensLimitNotice                              int8
	sale, sharing, targeted                                    int8
	sensitive                                                  [17]int8
	child13to16, childUnder13, child16to17                     int8 // known-child consents (16 to 17: usnat version 2)
	personal                                                   int8 // personal data consents
	covered                                                    int8 // MSPA covered transaction: 1 yes, 2 no; 0 is no value the field has
	spMode                                                     int8 // MSPA service-provider mode
	gpc                                                        bool
}

// denies is Prebid's default transmitUfpd rule (user data, user ids and
// device ids) applied to a normalized section, with one change: a known
// child of 13 to 16 who consented is still refused (as COPPA is).
func (u *usnat) denies() bool {
	s := &u.sensitive
	switch {
	case u.spMode == 1 || u.gpc:
		return true // service-provider mode, or Global Privacy Control
	case u.covered == 0:
		return true // an MSPA covered transaction is 1 or 2: a CMP not to trust
	case optedOut(u.saleNotice, u.sale), optedOut(u.sharingOONotice, u.sharing), optedOut(u.targetedNotice, u.targeted):
		return true
	case u.sharingNotice == 2 || u.sensOONotice == 2 || u.sensLimitNotice == 2:
		return true // notice not given
	case u.sharingNotice == 0 && u.sharing == 2:
		return true // "did not opt out" of sharing where no sharing notice applied
	case known(u.child13to16) || known(u.childUnder13) || known(u.child16to17):
		return true // a known child
	case u.personal == 2:
		return true // "consent" to something that needs none: a CMP not to trust
	}
	for c := 1; c <= 16; c++ { // 13 to 16 are null in a version 1 section
		switch {
		case c != 8 && s[c] == 2 && (u.sensOONotice == 0 || u.sensLimitNotice == 0):
			return true // consent to sensitive data without the notice it needs
		case (c <= 5 || c == 11 || c == 13 || c == 15) && s[c] == 1:
			return true // no consent to a sensitive category
		case (c == 6 || c == 7 || c == 9 || c == 10 || c == 12 || c == 14 || c == 16) && (s[c] == 1 || s[c] == 2):
			return true // categories that have no place in an ad request
		}
	}
	return false
}

// known: a known-child field that applies (not 0, and the section has it).
func known(v int8) bool { return v != 0 && v != null }

// optedOut: opted out, notice not given, or "did not opt out" where no
// notice applied (so no choice was offered).
func optedOut(notice, optOut int8) bool {
	return optOut == 1 || notice == 2 || notice == 0 && optOut == 2
}

// usSection evaluates a go-gpp section. known says it is a US section
// decoded in a version whose layout is known (1, and usnat's 2, which adds
// sensitive categories that shift every later field), ok that it decoded
// (go-gpp leaves a zero section, SectionID 0, when it does not).
func usSection(s gpp.Section) (optOut, known, ok bool) {
	var u usnat
	var id, version byte
	switch v := s.(type) {
	case uspnat.USPNAT:
		id, version = byte(v.SectionID), v.CoreSegment.Version
		u = fromUSNat(&v.CoreSegment, v.GPCSegment.Gpc)
		if version == 2 {
			// go-gpp v0.2.0 reads every usnat section with version 1's
			// layout; version 2 (what the IAB's reference library writes)
			// is read again here with its own (usnatV2).
			var err error
			if u, err = usnatV2(v.Value, v.GPCSegment.Gpc); err != nil {
				return false, true, false
			}
			version = 1
		}
	case uspca.USPCA:
		id, version = byte(v.SectionID), v.CoreSegment.Version
		u = fromCA(&v.CoreSegment, v.GPCSegment.Gpc)
	case uspva.USPVA:
		id, version = byte(v.SectionID), v.CoreSegment.Version
		u = fromState(&v.CoreSegment, false, identity[:9])
	case uspco.USPCO:
		id, version = byte(v.SectionID), v.CoreSegment.Version
		u = fromState(&v.CoreSegment, v.GPCSegment.Gpc, identity[:8])
	case uspct.USPCT:
		id, version = byte(v.SectionID), v.CoreSegment.Version
		u = fromState(&v.CoreSegment, v.GPCSegment.Gpc, identity[:9])
		u.child13to16, u.childUnder13 = ctChild(v.CoreSegment.KnownChildSensitiveDataConsents)
	case usput.USPUT:
		id, version = byte(v.SectionID), v.CoreSegment.Version
		u = fromUT(&v.CoreSegment)
	default:
		return false, false, false
	}
	switch {
	case id == 0:
		return false, true, false
	case version != 1:
		return false, false, true
	}
	return u.denies(), true, true
}

// identity maps state category i to usnat category i; utMap is Utah's.
var (
	identity = [...]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	caMap    = [...]int{0, 9, 10, 8, 1, 12, 6, 7, 3, 4} // and CA 4 also to usnat 2
	utMap    = [...]int{0, 1, 2, 4, 5, 3, 6, 7, 8}
)

func nulls() usnat {
	u := usnat{saleNotice: null, sharingNotice: null, sharingOONotice: null, targetedNotice: null,
		sensOONotice: null, sensLimitNotice: null, sale: null, sharing: null, targeted: null,
		child13to16: null, childUnder13: null, child16to17: null, personal: null, covered: null, spMode: null}
	for i := range u.sensitive {
		u.sensitive[i] = null
	}
	return u
}

// sensitive copies a state's sensitive-data fields (state category i+1 at
// fields[i]) to their usnat categories.
func (u *usnat) setSensitive(fields []byte, to []int) {
	for i, v := range fields {
		if i+1 < len(to) {
			u.sensitive[to[i+1]] = int8(v)
		}
	}
}

func fromUSNat(c *uspnat.USPNATCoreSegment, gpc bool) usnat {
	u := nulls()
	u.saleNotice, u.sharingNotice, u.sharingOONotice = int8(c.SaleOptOutNotice), int8(c.SharingNotice), int8(c.SharingOptOutNotice)
	u.targetedNotice, u.sensOONotice, u.sensLimitNotice = int8(c.TargetedAdvertisingOptOutNotice), int8(c.SensitiveDataProcessingOptOutNotice), int8(c.SensitiveDataLimitUseNotice)
	u.sale, u.sharing, u.targeted = int8(c.SaleOptOut), int8(c.SharingOptOut), int8(c.TargetedAdvertisingOptOut)
	u.setSensitive(c.SensitiveDataProcessing, identity[:13])
	if len(c.KnownChildSensitiveDataConsents) == 2 {
		u.child13to16, u.childUnder13 = int8(c.KnownChildSensitiveDataConsents[0]), int8(c.KnownChildSensitiveDataConsents[1])
	}
	u.personal, u.spMode, u.gpc = int8(c.PersonalDataConsents), int8(c.MspaServiceProviderMode), gpc
	u.covered = int8(c.MspaCoveredTransaction)
	return u
}

func fromCA(c *uspca.USPCACoreSegment, gpc bool) usnat {
	u := nulls()
	u.saleNotice, u.sharingOONotice, u.sensLimitNotice = int8(c.SaleOptOutNotice), int8(c.SharingOptOutNotice), int8(c.SensitiveDataLimitUseNotice)
	u.sale, u.sharing = int8(c.SaleOptOut), int8(c.SharingOptOut)
	u.setSensitive(c.SensitiveDataProcessing, caMap[:])
	if len(c.SensitiveDataProcessing) >= 4 {
		u.sensitive[2] = int8(c.SensitiveDataProcessing[3])
	}
	u.child13to16, u.childUnder13 = stateChild(c.KnownChildSensitiveDataConsents...)
	u.personal, u.spMode, u.gpc = int8(c.PersonalDataConsents), int8(c.MspaServiceProviderMode), gpc
	u.covered = int8(c.MspaCoveredTransaction)
	return u
}

// fromState normalizes the core segment Virginia, Colorado and Connecticut
// share: no sharing opt-out, no limit-use notice.
func fromState(c *sections.CommonUSCoreSegment, gpc bool, to []int) usnat {
	u := nulls()
	u.saleNotice, u.sharingNotice, u.targetedNotice = int8(c.SaleOptOutNotice), int8(c.SharingNotice), int8(c.TargetedAdvertisingOptOutNotice)
	u.sale, u.targeted = int8(c.SaleOptOut), int8(c.TargetedAdvertisingOptOut)
	u.setSensitive(c.SensitiveDataProcessing, to)
	u.child13to16, u.childUnder13 = stateChild(c.KnownChildSensitiveDataConsents...)
	u.spMode, u.gpc, u.covered = int8(c.MspaServiceProviderMode), gpc, int8(c.MspaCoveredTransaction)
	return u
}

func fromUT(c *usput.USPUTCoreSegment) usnat {
	u := nulls()
	u.saleNotice, u.sharingNotice, u.targetedNotice = int8(c.SaleOptOutNotice), int8(c.SharingNotice), int8(c.TargetedAdvertisingOptOutNotice)
	u.sensOONotice = int8(c.SensitiveDataProcessingOptOutNotice)
	u.sale, u.targeted = int8(c.SaleOptOut), int8(c.TargetedAdvertisingOptOut)
	u.setSensitive(c.SensitiveDataProcessing, utMap[:])
	u.child13to16, u.childUnder13 = stateChild(c.KnownChildSensitiveDataConsents)
	u.spMode, u.covered = int8(c.MspaServiceProviderMode), int8(c.MspaCoveredTransaction)
	return u
}

// stateChild: a state that does not tell 13-16 from under 13 says "no
// consent" for both whenever any known-child field is set.
func stateChild(fields ...byte) (child13to16, childUnder13 int8) {
	for _, f := range fields {
		if f != 0 {
			return 1, 1
		}
	}
	return 0, 0
}

// ctChild: Connecticut tells the ages apart (fields: under 13, 13 to 16,
// 16 to 18 in Prebid's reading); consent for the older two is 13-16 consent.
func ctChild(f []byte) (child13to16, childUnder13 int8) {
	switch {
	case len(f) != 3:
		return 1, 1
	case f[0] == 0 && f[1] == 0 && f[2] == 0:
		return 0, 0
	case f[1] == 2 && f[2] == 2:
		return 2, 1
	}
	return 1, 1
}

// usnatV2 reads a usnat (SID 7) section of version 2 with go-gpp's bit
// reader: version 1's fields, with 16 sensitive categories instead of 12 and
// 3 known-child consents instead of 2 (the third: 16 to 17), which moves
// every later field (the IAB's GPP usnat specification; its reference
// library @iabgpp/cmpapi 3.2.0 writes these, and decodes the test strings of
// TestUSNatVersion2 to the fields they are named for).
func usnatV2(value string, gpc bool) (usnat, error) {
	core, _, err := sections.CreateBitStreams(value, true)
	if err != nil {
		return usnat{}, err
	}
	var f [10]byte // version, then the notices and opt-outs in order
	if f[0], err = core.ReadByte6(); err != nil {
		return usnat{}, err
	}
	for i := 1; i < len(f); i++ {
		if f[i], err = core.ReadByte2(); err != nil {
			return usnat{}, err
		}
	}
	sens, err := core.ReadTwoBitField(16)
	if err != nil {
		return usnat{}, err
	}
	child, err := core.ReadTwoBitField(3)
	if err != nil {
		return usnat{}, err
	}
	var tail [4]byte // personal data consents, covered, opt-out option mode, service-provider mode
	for i := range tail {
		if tail[i], err = core.ReadByte2(); err != nil {
			return usnat{}, err
		}
	}
	u := nulls()
	u.sharingNotice, u.saleNotice, u.sharingOONotice, u.targetedNotice = int8(f[1]), int8(f[2]), int8(f[3]), int8(f[4])
	u.sensOONotice, u.sensLimitNotice = int8(f[5]), int8(f[6])
	u.sale, u.sharing, u.targeted = int8(f[7]), int8(f[8]), int8(f[9])
	u.setSensitive(sens, identity[:])
	u.child13to16, u.childUnder13, u.child16to17 = int8(child[0]), int8(child[1]), int8(child[2])
	u.personal, u.covered, u.spMode, u.gpc = int8(tail[0]), int8(tail[1]), int8(tail[3]), gpc
	return u, nil
}
