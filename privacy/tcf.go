package privacy

import (
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
}

// and is what v and w both allow (two strings for one request), ok only
// when both decoded.
func (v tcfVerdict) and(w tcfVerdict) tcfVerdict {
	return tcfVerdict{ok: v.ok && w.ok, uses: v.uses & w.uses, basic: v.basic && w.basic, train: v.train && w.train}
}

// decodeTCF decodes a TCF v2 consent string (core segment; other segments
// are ignored) and evaluates it for vendor. Anything that does not decode as
// v2, a TCF v1 string included, is !ok. It allocates.
func decodeTCF(s string, vendor uint16) tcfVerdict {
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
	uses, basic, train := tcfUses(m, vendor)
	return tcfVerdict{ok: true, uses: uses, basic: basic, train: train}
}

// tcfUses applies the purpose table of docs/privacy.md to a decoded string;
// basic says whether purpose 2 has a legal basis (Options.RequirePurpose2).
func tcfUses(m tcf2.ConsentMetadata, vendor uint16) (uses Use, basic, train bool) {
	if vendor == 0 {
		return None, false, false
	}
	restricted := func(p consentconstants.Purpose, kind uint8) bool {
		return m.CheckPubRestriction(uint8(p), kind, vendor)
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
