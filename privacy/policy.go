package privacy

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// ErrOptions wraps every invalid Options.
var ErrOptions = errors.New("privacy: invalid options")

// Defaults of Options.
const (
	DefaultCacheEntries = 100_000
	DefaultCacheTTL     = time.Hour
)

// Options configure a Policy. A zero field means its default.
type Options struct {
	// VendorID is the bidder's IAB Europe Global Vendor List id, whose
	// vendor consent a TC string must carry. 0: none registered, so no
	// user-level use wherever GDPR applies.
	VendorID int
	// CacheEntries bounds the decoded strings kept (default 100,000); a
	// negative value keeps none (every string is decoded each time).
	CacheEntries int
	// CacheTTL is how long a decoded string is kept (default 1h); a
	// negative value keeps it until the cache evicts it for another, which
	// saves a clock read on every cache hit (ristretto checks the expiry).
	CacheTTL time.Duration
	// RequirePurpose2: where GDPR applies, a request whose TC string gives
	// VendorID no legal basis for TCF purpose 2 (use limited data to select
	// advertising), or that has none, or with VendorID 0, gets
	// Decision.NoBid. Off, such a request allows a contextual bid (no
	// user-level data).
	RequirePurpose2 bool
	// AllowMissingDisclosedVendors reads a TC string created or last updated on or after
	// 2026-02-28 without the Disclosed Vendors segment (mandatory since TCF
	// v2.3) by its core segment alone, as before v2.3. Off (the default),
	// such a string is malformed. A segment that is there is always honoured:
	// a vendor it does not list has no legal basis.
	AllowMissingDisclosedVendors bool
}

// Validate reports what is wrong with o.
func (o Options) Validate() error {
	var errs []error
	if o.VendorID < 0 || o.VendorID > 0xffff {
		errs = append(errs, fmt.Errorf("%w: vendor_id %d is not a GVL id (0 to 65535)", ErrOptions, o.VendorID))
	}
	return errors.Join(errs...)
}

// Policy decides requests for one vendor id. It is safe for concurrent use.
type Policy struct {
	vendor    uint16
	requireP2 bool
	undisc    bool   // Options.AllowMissingDisclosedVendors
	cache     *cache // nil: decode every time
	stats     struct {
		decodes, malformed, recovered, undisclosed atomic.Uint64
	}
}

// New returns a Policy for o; Close releases its cache.
func New(o Options) (*Policy, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	p := &Policy{vendor: uint16(o.VendorID), requireP2: o.RequirePurpose2, undisc: o.AllowMissingDisclosedVendors}
	if o.CacheEntries > 0 {
		p.cache = newCache(int64(o.CacheEntries), max(o.CacheTTL, 0)) // 0: no expiry
	}
	return p, nil
}

// Close stops the cache's background work. Decide keeps working (uncached).
func (p *Policy) Close() {
	if p.cache != nil {
		p.cache.close()
	}
}

// Wait blocks until the decisions offered to the cache so far are in it (or
// refused by it): for tests and warm-up, never the bid path.
func (p *Policy) Wait() { p.cache.wait() }

// VendorID is the vendor id the Policy evaluates TC strings for.
func (p *Policy) VendorID() int { return int(p.vendor) }

// Stats counts strings decoded (cache misses), those that did not decode
// (or carried a section that did not), decoder panics recovered (each
// also counted as malformed), and TC strings (alone or in a GPP string)
// written since 2026-02-28 without TCF v2.3's Disclosed Vendors segment
// (malformed too, unless AllowMissingDisclosedVendors).
type Stats struct {
	Decodes, Malformed, Recovered, Undisclosed uint64
}

// Stats returns the counters so far.
func (p *Policy) Stats() Stats {
	return Stats{p.stats.decodes.Load(), p.stats.malformed.Load(), p.stats.recovered.Load(), p.stats.undisclosed.Load()}
}

// Decide returns what req allows. The rules are in the package doc and
// docs/privacy.md. It allocates nothing unless it decodes a string not in
// the cache.
func (p *Policy) Decide(req *ortb.Request) Decision {
	r := &req.Regs
	coppa := r.COPPA == ortb.True
	if coppa && !p.requireP2 {
		return Decision{Uses: None, Why: COPPA}
	}
	d := Decision{Uses: All}
	if coppa {
		// No user-level use, but with RequirePurpose2 GDPR's legal basis for
		// purpose 2 is still needed for a bid at all (gdpr below sets NoBid):
		// returning here let a child's request in the EEA get a bid without one.
		d.restrict(None, COPPA)
	}
	// A 2.5 ext twin that differs from its 2.6 field (USPrivacyExt,
	// GPPExt, ConsentExt) is read too: each string must allow a use.
	for _, usp := range [2][]byte{r.USPrivacy, r.USPrivacyExt} {
		if len(usp) == 0 {
			continue
		}
		switch optOut, ok := uspOptOut(usp); {
		case !ok:
			d.restrict(None, USPrivacyMalformed)
		case optOut:
			d.restrict(None, USPrivacyOptOut)
		}
	}
	if r.GPC {
		// Outside GPP (inside it, a US section's Gpc field is read below):
		// binding as an opt-out of sale and sharing under CCPA/CPRA and
		// Colorado's law, so no user-level use, wherever the user is.
		d.restrict(None, GPCOptOut)
	}
	g, applies := p.gppCheck(&d, r, r.GPP)
	oneTCF := false // of two GPP strings, one has a tcfeuv2 section and one has none
	if len(r.GPPExt) > 0 {
		g2, applies2 := p.gppCheck(&d, r, r.GPPExt)
		applies |= applies2
		switch tcf := uint64(1) << sidTCFEU; {
		case g2.present&tcf == 0:
			oneTCF = g.present&tcf != 0
		case g.present&tcf != 0:
			g.tcf = g.tcf.and(g2.tcf) // both strings' tcfeuv2 must allow
		default:
			g.tcf, oneTCF = g2.tcf, true
		}
		g.present |= g2.present
	}
	if gdprApplies(req, applies) {
		p.gdpr(&d, req, &g, applies, oneTCF)
	}
	// The device asks for limited tracking (lmt, OpenRTB: "tracking must be
	// limited per commercial guidelines"; App Tracking Transparency
	// restricted or denied) or sends Do Not Track: no personalization on
	// any user id (segments, user-level features); frequency capping, which
	// only counts what this user was shown, stays. Before, only the ifa was
	// hidden, and user.id, buyeruid and segments were still used (an
	// outside audit).
	if req.Device.TrackingLimited() || req.Device.DNT == ortb.True {
		d.restrict(FreqCap, TrackingLimited)
	}
	return d
}

// gppCheck restricts d by one GPP string's US sections and returns its
// summary and the sections that apply (gpp_sid, else the string's own).
func (p *Policy) gppCheck(d *Decision, r *ortb.Regs, gpp []byte) (g gppSummary, applies uint64) {
	applies, listedWide := sidMask(r.GPPSID)
	if len(gpp) > 0 {
		g = p.gpp(gpp)
		if len(r.GPPSID) == 0 { // no list: every section in the string applies
			applies, listedWide = g.present, g.wide
		}
	}
	us := applies &^ (1<<sidTCFEU | 1<<sidSignalIntegrity)
	switch {
	case len(gpp) > 0 && !g.ok:
		d.restrict(None, GPPMalformed)
	case us&^g.present != 0 || us&g.bad != 0: // listed but absent (or no string), or undecodable
		d.restrict(None, GPPMalformed)
	case us&g.unsupported != 0 || listedWide:
		d.restrict(None, GPPUnsupported)
	case us&g.optOut != 0:
		d.restrict(None, GPPOptOut)
	}
	return g, applies
}

// gdprApplies tells whether GDPR applies to req: regs.gdpr (or 2.5's
// regs.ext.gdpr; the parser reads either one saying 1 as 1) is 1, GPP's
// tcfeuv2 section applies, or regs.gdpr is absent (OpenRTB: unknown) and
// the request itself says GDPR may apply, with a TC string (only a CMP under
// GDPR writes one) or a device's or user's country in the EEA, the UK,
// Switzerland, Gibraltar, Jersey, Guernsey or the Isle of Man. An explicit 0
// is taken at its word: the geo is the exchange's guess too.
func gdprApplies(req *ortb.Request, applies uint64) bool {
	switch r := &req.Regs; {
	case r.GDPR == ortb.True || applies&(1<<sidTCFEU) != 0:
		return true
	case r.GDPR == ortb.Unset:
		// device.geo's country, or user.geo's (the user's home): either in
		// the EEA is a sign GDPR applies (an outside audit's device.geo
		// without a country and user.geo in Germany got user-level bids).
		return len(req.User.Consent) > 0 || gdprCountry(req.Device.Geo.Country) || gdprCountry(req.User.Country)
	}
	return false
}

// gdprCountry tells whether an ISO-3166-1 country code (alpha-3, as OpenRTB
// asks; alpha-2, as some exchanges send; any letter case) is in the EEA, the
// UK or Switzerland, where GDPR (or the UK's and Swiss laws modelled on it,
// which TCF serves too) applies.
func gdprCountry(c []byte) bool {
	if len(c) != 2 && (len(c) != 3 || c[2] == 0) {
		return false
	}
	var k [3]byte
	for i, b := range c {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		k[i] = b
	}
	return gdprCountries[k]
}

// gdprCountries: the 27 EU members, their outermost regions and Åland that
// ISO codes apart (French Guiana, Guadeloupe, Martinique, Réunion, Mayotte,
// Saint-Martin), Iceland, Liechtenstein and Norway (the EEA), the UK and
// Switzerland, Gibraltar, Jersey, Guernsey and the Isle of Man (laws modelled
// on GDPR), by alpha-3 and alpha-2 code (alpha-2 keys end in a zero
// byte); and EL and UK, the EU's own codes for Greece and the UK, which
// some exchanges send.
var gdprCountries = func() map[[3]byte]bool {
	m := map[[3]byte]bool{}
	for _, pair := range []string{
		"AUT AT", "BEL BE", "BGR BG", "HRV HR", "CYP CY", "CZE CZ", "DNK DK", "EST EE", "FIN FI",
		"FRA FR", "DEU DE", "GRC GR", "HUN HU", "IRL IE", "ITA IT", "LVA LV", "LTU LT", "LUX LU",
		"MLT MT", "NLD NL", "POL PL", "PRT PT", "ROU RO", "SVK SK", "SVN SI", "ESP ES", "SWE SE",
		"ISL IS", "LIE LI", "NOR NO", "GBR GB", "CHE CH",
		"GUF GF", "GLP GP", "MTQ MQ", "REU RE", "MYT YT", "MAF MF", "ALA AX",
		"GIB GI", "JEY JE", "GGY GG", "IMN IM",
		"GRC EL", "GBR UK",
	} {
		m[[3]byte{pair[0], pair[1], pair[2]}] = true
		m[[3]byte{pair[4], pair[5], 0}] = true
	}
	return m
}()

// gdpr restricts d by the TC strings: user.consent and the GPP string's
// tcfeuv2 section. When both are sent, both must allow a use (a CMP does not
// write two different strings for one user, so two that differ are a doubt,
// resolved the restrictive way), and both must decode. Alone, the tcfeuv2
// section is the request's TC string only where it applies (applies: gpp_sid,
// else the string's own sections): a section gpp_sid leaves out is not to be
// applied, and gave consent under regs.gdpr 1 before (an outside audit).
// Nor is it where the request sends two GPP strings (regs.gpp and a
// different regs.ext.gpp) and only one has it (oneTCF): read alone, the
// other gives no consent, and each string must allow a use.
func (p *Policy) gdpr(d *Decision, req *ortb.Request, g *gppSummary, applies uint64, oneTCF bool) {
	v, why := tcfVerdict{}, GDPRDenied
	inGPP := g.present&(1<<sidTCFEU) != 0
	switch {
	case p.vendor == 0:
		why = GDPRNoVendorID
	case len(req.User.Consent) > 0:
		v = p.tcf(req.User.Consent)
		if len(req.User.ConsentExt) > 0 {
			v = v.and(p.tcf(req.User.ConsentExt)) // user.ext.consent differs: both must allow
		}
		if inGPP {
			v = v.and(g.tcf)
		}
	case inGPP && applies&(1<<sidTCFEU) != 0 && !oneTCF:
		v = g.tcf
	default:
		why = GDPRNoConsent
	}
	if why == GDPRDenied && !v.ok {
		why = GDPRMalformed
	}
	// A verdict that is not ok allows nothing: no use, no purpose 2 basis.
	d.restrict(v.uses, why)
	d.NoBid = p.requireP2 && !v.basic
	d.NoTrain = d.Allows(Personalize) && !v.train
}

// sidMask turns gpp_sid into a section mask. Ids of 0 and below, the
// header's id 3 and the signal-integrity id 4 (OpenRTB 2.6: they need not be
// listed, so listing them is allowed) name no section and are skipped; wide
// reports an id of 64 or more (a section this bidder cannot read).
func sidMask(sids []int64) (mask uint64, wide bool) {
	for _, id := range sids {
		switch {
		case id <= 0 || id == int64(sidHeader) || id == int64(sidSignalIntegrity):
		case id >= 64:
			wide = true
		default:
			mask |= 1 << uint(id)
		}
	}
	return mask, wide
}

// maxStringLen bounds the consent strings decoded: a TC string with every
// vendor of the GVL in a bit field is under 1 KiB, a GPP string with a
// dozen sections a few. Longer ones are malformed, not decoded or cached.
const maxStringLen = 16 << 10

// tcf returns the verdict for a TC string, decoding it on a cache miss.
func (p *Policy) tcf(s []byte) tcfVerdict {
	if len(s) > maxStringLen {
		return tcfVerdict{}
	}
	if e, ok := p.cache.get(s, kindTCF); ok {
		return e.tcf
	}
	var v tcfVerdict
	p.decode(func() { v = decodeTCF(string(s), p.vendor, p.undisc) })
	if !v.ok {
		p.stats.malformed.Add(1)
	}
	if v.undisclosed {
		p.stats.undisclosed.Add(1)
	}
	p.cache.set(s, entry{kind: kindTCF, tcf: v})
	return v
}

// gpp returns the summary of a GPP string, decoding it on a cache miss.
func (p *Policy) gpp(s []byte) gppSummary {
	if len(s) > maxStringLen {
		return gppSummary{}
	}
	if e, ok := p.cache.get(s, kindGPP); ok {
		return e.gpp
	}
	var g gppSummary
	p.decode(func() { g = decodeGPP(string(s), p.vendor, p.undisc) })
	if !g.ok || g.bad != 0 || (g.present&(1<<sidTCFEU) != 0 && !g.tcf.ok) {
		p.stats.malformed.Add(1)
	}
	if g.tcf.undisclosed {
		p.stats.undisclosed.Add(1)
	}
	p.cache.set(s, entry{kind: kindGPP, gpp: g})
	return g
}

// decode runs f, turning a decoder panic on hostile input into a result
// that is not ok (f's zero result): a consent string never takes the
// bidder down.
func (p *Policy) decode(f func()) {
	p.stats.decodes.Add(1)
	defer func() {
		if recover() != nil {
			p.stats.recovered.Add(1)
		}
	}()
	f()
}
