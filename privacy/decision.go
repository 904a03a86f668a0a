// Package privacy decides, once per bid request, which user-level uses of the
// request's data its privacy signals allow: COPPA (regs.coppa), GDPR through
// an IAB TCF v2 consent string (user.consent, or the tcfeuv2 section of a GPP
// string), the CCPA string (regs.us_privacy) and the US sections of an IAB GPP
// string (regs.gpp with regs.gpp_sid). TCF strings are decoded with
// github.com/prebid/go-gdpr, GPP strings with github.com/prebid/go-gpp.
//
// The rules, the TCF purposes each use needs and why are in docs/privacy.md.
// In short: a string that does not decode means no consent (never an error
// for the caller); every regime that applies must allow a use.
//
// Decoding allocates. A Policy keeps what it decoded per distinct string in a
// bounded cache (ristretto), so a string seen before costs a hash and a
// lookup and allocates nothing; a first-seen string allocates while it is
// decoded.
package privacy

// Use is one use of user-level data. Each needs its own legal basis.
type Use uint8

const (
	// FreqCap: a user id (user.id, user.buyeruid, device.ifa) keys the
	// frequency-cap counts of the user.
	FreqCap Use = 1 << iota
	// Personalize: user-level model features (has_user_id, segments,
	// user_age, gender, user) and targeting on user.data segments.
	Personalize

	// All is every use; None is no user-level use at all.
	All  = FreqCap | Personalize
	None = Use(0)
)

// Reason says why a use is not allowed. A Decision carries the first regime,
// in the order below, that took a use away.
type Reason uint8

const (
	Allowed            Reason = iota // every use allowed
	COPPA                            // regs.coppa = 1
	USPrivacyMalformed               // regs.us_privacy is not a valid CCPA string
	USPrivacyOptOut                  // regs.us_privacy opts out of sale
	GPPMalformed                     // regs.gpp does not decode, or an applicable US section is missing or does not decode
	GPPUnsupported                   // an applicable GPP section this bidder cannot read (it could carry an opt-out)
	GPPOptOut                        // an applicable GPP US section opts out, lacks a notice, or marks a known child
	GDPRNoVendorID                   // GDPR applies and privacy.vendor_id is 0
	GDPRNoConsent                    // GDPR applies and there is no TC string
	GDPRMalformed                    // the TC string does not decode as TCF v2
	GDPRDenied                       // decoded, but a needed purpose, vendor consent or legitimate interest is missing
	GPCOptOut                        // regs.ext.gpc: Global Privacy Control, an opt-out of sale and sharing
	TrackingLimited                  // device.lmt=1, device.dnt=1, or App Tracking Transparency restricted or denied: no personalization

	numReasons
)

var reasonNames = [numReasons]string{
	"allowed", "coppa", "us_privacy_malformed", "us_privacy_opt_out", "gpp_malformed", "gpp_unsupported",
	"gpp_opt_out", "gdpr_no_vendor_id", "gdpr_no_consent", "gdpr_malformed", "gdpr_denied", "gpc_opt_out",
	"tracking_limited",
}

// NumReasons is the number of Reason values, for per-reason counters.
const NumReasons = int(numReasons)

// String is the reason's metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Decision is what a request allows: the uses, and why any is missing.
// NoBid, only with Options.RequirePurpose2, says that GDPR applies and the
// bidder has no legal basis for TCF purpose 2 (use limited data to select
// advertising): no bid at all, not even a contextual one.
type Decision struct {
	Uses  Use
	Why   Reason
	NoBid bool
	// NoTrain: GDPR applies, personalisation is allowed, and TCF purpose 10
	// (develop and improve services) has no basis for the vendor: the
	// request's user-level features may score it, but not be kept as
	// training data (the bidder's row log zeroes them).
	NoTrain bool
}

// Allows reports whether every use in u is allowed.
func (d Decision) Allows(u Use) bool { return d.Uses&u == u }

// restrict narrows d to uses; the first regime that takes a use away names
// the reason.
func (d *Decision) restrict(uses Use, why Reason) {
	if d.Uses&^uses != 0 && d.Why == Allowed {
		d.Why = why
	}
	d.Uses &= uses
}
