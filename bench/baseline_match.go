package bench

import (
	"slices"
	"strings"
	"time"

	"github.com/prebid/openrtb/v20/adcom1"
	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/campaigns"
)

// Targeting, the obvious way: loop over every campaign of the snapshot and
// check it against the openrtb2 request with string comparisons. It applies
// the rules campaigns.Snapshot.Match documents -- status, flight, COPPA,
// dayparting, country, region, device type, OS, inventory (site/app),
// publisher, site and app allow and block lists, category allow and block
// (with parents), segments (not without consent, never under COPPA), deals
// and private auctions (deal wseat), creative formats and sizes, video and
// audio MIME types, secure, and the request's bcat, badv, bapp, battr,
// wseat/bseat -- so both handlers find the same candidates
// (TestBaselineAgrees checks it).

// Candidate is an eligible (campaign, creative) pair for one imp.
type Candidate struct {
	Campaign *campaigns.Campaign
	Creative *campaigns.Creative
	Deal     *openrtb2.Deal // nil: the open auction
	W, H     int64
}

// reqFacts are the request values every campaign is checked against,
// normalised once per request as the index does (country upper case,
// region and OS lower case, site domain lower case without "www.").
type reqFacts struct {
	br       *openrtb2.BidRequest
	country  string
	region   string
	device   int64 // 0: none
	os       string
	hasOS    bool
	site     string
	bundle   string
	pub      string
	cats     []string // site/app categories with parents, upper case
	segments []string // empty without user-level consent
	bcat     []string
	badv     []string
	now      time.Time
}

// newFacts gathers what targeting reads; segments only when personalize
// (the request's privacy decision allows it).
func newFacts(br *openrtb2.BidRequest, now time.Time, personalize bool) *reqFacts {
	f := &reqFacts{br: br, now: now}
	if g := requestGeo(br); g != nil {
		f.country, f.region = strings.ToUpper(g.Country), strings.ToLower(g.Region)
	}
	if d := br.Device; d != nil {
		if dt := int64(d.DeviceType); dt >= 1 && dt <= 7 {
			f.device = dt
		}
		f.os, f.hasOS = strings.ToLower(d.OS), d.OS != ""
	}
	var cats []string
	switch {
	case br.Site != nil:
		f.site = strings.TrimPrefix(strings.ToLower(br.Site.Domain), "www.")
		cats = br.Site.Cat
		if br.Site.Publisher != nil {
			f.pub = br.Site.Publisher.ID
		}
	case br.App != nil:
		f.bundle = br.App.Bundle
		cats = br.App.Cat
		if br.App.Publisher != nil {
			f.pub = br.App.Publisher.ID
		}
	}
	for _, c := range cats {
		c = strings.ToUpper(c)
		f.cats = append(f.cats, c)
		if p, _, ok := strings.Cut(c, "-"); ok && p != "" {
			f.cats = append(f.cats, p)
		}
	}
	if br.User != nil && personalize {
		for _, d := range br.User.Data {
			for _, s := range d.Segment {
				f.segments = append(f.segments, s.ID)
			}
		}
	}
	for _, c := range br.BCat {
		f.bcat = append(f.bcat, strings.ToUpper(c))
	}
	for _, a := range br.BAdv {
		f.badv = append(f.badv, strings.ToLower(a))
	}
	return f
}

// match appends the candidates for imp, looping over every campaign.
func (b *Baseline) match(dst []Candidate, f *reqFacts, imp *openrtb2.Imp) []Candidate {
	br := f.br
	if len(br.WSeat) > 0 && !slices.Contains(br.WSeat, b.cfg.Seat) || b.cfg.Seat != "" && slices.Contains(br.BSeat, b.cfg.Seat) {
		return dst
	}
	for _, c := range b.cfg.Campaigns.Campaigns {
		if !b.campaignEligible(c, f) {
			continue
		}
		deal, ok := b.pickDeal(c, imp)
		if !ok {
			continue
		}
		for _, cr := range c.Creatives {
			if w, h, ok := creativeFits(cr, imp, f); ok {
				dst = append(dst, Candidate{Campaign: c, Creative: cr, Deal: deal, W: w, H: h})
			}
		}
	}
	return dst
}

// campaignEligible checks everything that depends on the campaign and the
// request but not on the imp.
func (b *Baseline) campaignEligible(c *campaigns.Campaign, f *reqFacts) bool {
	br, t := f.br, &c.Targeting
	if c.Status != campaigns.StatusActive ||
		!c.Start.IsZero() && f.now.Before(c.Start) || !c.End.IsZero() && !f.now.Before(c.End) {
		return false
	}
	if br.Regs != nil && br.Regs.COPPA != 0 && !c.AllowCOPPA {
		return false
	}
	hasSite, hasApp := br.Site != nil, br.App != nil
	if !in(t.Countries, f.country) || !in(t.Regions, f.region) ||
		len(t.DeviceTypes) > 0 && !slices.Contains(t.DeviceTypes, f.device) ||
		len(t.OS) > 0 && (!f.hasOS || !slices.Contains(t.OS, f.os)) ||
		!in(t.Publishers, f.pub) ||
		hasSite && !in(t.SiteAllow, f.site) || hasApp && !in(t.AppAllow, f.bundle) ||
		len(t.CatAllow) > 0 && !anyIn(t.CatAllow, f.cats) ||
		len(t.Segments) > 0 && !anyIn(t.Segments, f.segments) {
		return false
	}
	if isApp := !hasSite && hasApp; t.Site != t.App && (t.Site && !hasSite || t.App && !isApp) {
		return false // inventory restricted to the other kind (a request with both is a site)
	}
	if hasSite && f.site != "" && slices.Contains(t.SiteBlock, f.site) ||
		hasApp && f.bundle != "" && slices.Contains(t.AppBlock, f.bundle) ||
		anyIn(t.CatBlock, f.cats) {
		return false
	}
	if t.Dayparting {
		lt := f.now.In(c.TimeZone)
		if !t.Days[lt.Weekday()] || !t.Hours[lt.Hour()] {
			return false
		}
	}
	return true
}

// in reports whether a restricted list (empty: unrestricted) holds v.
func in(list []string, v string) bool {
	return len(list) == 0 || v != "" && slices.Contains(list, v)
}

func anyIn(list, vals []string) bool {
	for _, v := range vals {
		if slices.Contains(list, v) {
			return true
		}
	}
	return false
}

// pickDeal returns the first of the imp's deals (open to our seat) that the
// campaign targets; ok is false when the campaign cannot bid on the imp
// without one.
func (b *Baseline) pickDeal(c *campaigns.Campaign, imp *openrtb2.Imp) (*openrtb2.Deal, bool) {
	private := false
	if p := imp.PMP; p != nil {
		private = p.PrivateAuction != 0
		for i := range p.Deals {
			d := &p.Deals[i]
			if len(d.WSeat) > 0 && !slices.Contains(d.WSeat, b.cfg.Seat) {
				continue
			}
			if d.ID != "" && slices.Contains(c.Targeting.Deals, d.ID) {
				return d, true
			}
		}
	}
	return nil, c.Targeting.OpenAuction && !private
}

// creativeFits checks a creative against the imp's format and the request's
// blocks, returning the size to bid with.
func creativeFits(cr *campaigns.Creative, imp *openrtb2.Imp, f *reqFacts) (w, h int64, ok bool) {
	if imp.Secure != nil && *imp.Secure != 0 && !cr.Secure {
		return 0, 0, false
	}
	for _, c := range cr.Cat {
		p, _, _ := strings.Cut(c, "-")
		if slices.Contains(f.bcat, c) || slices.Contains(f.bcat, p) {
			return 0, 0, false
		}
	}
	if anyIn(cr.ADomain, f.badv) || cr.Bundle != "" && slices.Contains(f.br.BApp, cr.Bundle) {
		return 0, 0, false
	}
	switch cr.Format {
	case campaigns.FormatBanner:
		if imp.Banner == nil || attrBlocked(cr.Attr, imp.Banner.BAttr) {
			return 0, 0, false
		}
		return bannerFit(cr.Sizes, imp.Banner)
	case campaigns.FormatVideo:
		v := imp.Video
		if v == nil || attrBlocked(cr.Attr, v.BAttr) || !mimeFits(cr.MIMEs, v.MIMEs) {
			return 0, 0, false
		}
		if deref(v.W) <= 0 && len(cr.Sizes) > 0 {
			return cr.Sizes[0].W, cr.Sizes[0].H, true
		}
		return deref(v.W), deref(v.H), true
	case campaigns.FormatNative:
		if imp.Native == nil || attrBlocked(cr.Attr, imp.Native.BAttr) {
			return 0, 0, false
		}
		return 0, 0, true
	case campaigns.FormatAudio:
		if imp.Audio == nil || !mimeFits(cr.MIMEs, imp.Audio.MIMEs) {
			return 0, 0, false
		}
		return 0, 0, true
	}
	return 0, 0, false
}

func bannerFit(sizes []campaigns.Size, b *openrtb2.Banner) (int64, int64, bool) {
	bw, bh := deref(b.W), deref(b.H)
	if bw <= 0 && bh <= 0 && len(b.Format) == 0 {
		return sizes[0].W, sizes[0].H, true // the imp gives no size
	}
	for _, s := range sizes {
		if s.W == bw && s.H == bh {
			return s.W, s.H, true
		}
	}
	for _, fm := range b.Format {
		for _, s := range sizes {
			if s.W == fm.W && s.H == fm.H {
				return s.W, s.H, true
			}
		}
	}
	return 0, 0, false
}

func attrBlocked(attr []int64, battr []adcom1.CreativeAttribute) bool {
	for _, a := range attr {
		if slices.Contains(battr, adcom1.CreativeAttribute(a)) {
			return true
		}
	}
	return false
}

func mimeFits(have, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}
