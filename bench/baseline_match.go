package bench

import (
	"encoding/json"
	"math"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/prebid/openrtb/v20/adcom1"
	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/campaigns"
)

// Targeting, the obvious way: loop over every campaign of the snapshot and
// check it against the openrtb2 request with string comparisons. It applies
// the rules campaigns.Snapshot.Match documents -- status, flight, COPPA,
// dayparting, country, region, metro, city, device type, OS, language,
// connection type, carrier, inventory (site/app/dooh), DOOH venue types,
// publisher, site and app allow and block lists, category allow and block
// (with parents, in their taxonomy), rewarded imps, segments (not without
// consent, never under COPPA), deals and private auctions (deal wseat),
// creative formats and sizes, video and audio MIME types, durations,
// protocols, pods, placement and skip, native assets, secure, and the
// request's bcat and acat (in their taxonomy), badv, bapp, battr, btype, wlang and
// wlangb, wseat/bseat -- so both
// handlers find the same candidates (TestBaselineAgrees checks it).

// Candidate is an eligible (campaign, creative) pair for one imp.
type Candidate struct {
	Campaign *campaigns.Campaign
	Creative *campaigns.Creative
	Deal     *openrtb2.Deal // nil: the open auction
	W, H     int64
	// Later and Open are the ways to bid after Deal when its floor is out
	// of reach (the bidder's Candidate.Alts): the campaign's later deals
	// on the imp that allow the creative, in request order, then the open
	// auction where the campaign and the imp allow one.
	Later []*openrtb2.Deal
	Open  bool
}

// next moves c to its next way to bid, false when none is left.
func (c *Candidate) next() bool {
	switch {
	case len(c.Later) > 0:
		c.Deal, c.Later = c.Later[0], c.Later[1:]
	case c.Open:
		c.Deal, c.Open = nil, false
	default:
		return false
	}
	return true
}

// reqFacts are the request values every campaign is checked against,
// normalised once per request as the index does (country upper case,
// region and OS lower case, site domain lower case without "www.").
type reqFacts struct {
	br       *openrtb2.BidRequest
	country  string
	region   string
	metro    string
	city     string
	device   int64  // 0: none
	lang     string // primary language subtag, lower case
	conn     int64  // 0: none
	carrier  string
	kind     int // 1 site, 2 app, 3 dooh, 4 none
	venues   []string
	catTax   int64 // taxonomy of cats (cat, pagecat, sectioncat)
	hasCats  bool
	cntTax   int64 // taxonomy of the content's categories
	hasCnt   bool
	bcatTax  int64
	os       string
	hasOS    bool
	site     string
	siteBlk  []string // site and the page's host, with their parents (siteParents)
	page     []string // the page's host with its parents
	bundle   string
	pub      string
	cats     []string // site/app categories: IAB 1.0 upper case with parents, else "TAX:cat"
	segments []string // empty without user-level consent
	bcat     []string
	acat     []string
	badv     []string
	bapp     []string // appKey of each bapp entry
	anyTime  bool     // targeted: flight and dayparting are not checked
	now      time.Time
	// regs.ext.dsa's dsarequired and pubrender (-1: absent), as the
	// bidder reads them (ortb.Parser: an integer or a string of digits,
	// above 3 read as 3).
	dsaRequired, dsaPubRender int
}

// newFacts gathers what targeting reads; segments only when personalize
// (the request's privacy decision allows it).
func newFacts(br *openrtb2.BidRequest, now time.Time, personalize bool) *reqFacts {
	f := &reqFacts{br: br, now: now, dsaRequired: -1, dsaPubRender: -1}
	if br.Regs != nil {
		f.dsaRequired, f.dsaPubRender = regsDSA(br.Regs.Ext)
	}
	if g := requestGeo(br, personalize); g != nil {
		f.country, f.region = strings.ToUpper(g.Country), strings.ToLower(g.Region)
		f.metro, f.city = strings.ToLower(g.Metro), strings.ToLower(g.City)
	}
	if d := br.Device; d != nil {
		if dt := int64(d.DeviceType); dt >= 1 && dt <= 7 {
			f.device = dt
		}
		f.os, f.hasOS = strings.ToLower(d.OS), d.OS != ""
		lang := d.Language
		if lang == "" {
			lang = d.LangB
		}
		if i := strings.IndexAny(lang, "-_"); i >= 0 {
			lang = lang[:i]
		}
		f.lang = strings.ToLower(lang)
		if d.ConnectionType != nil && *d.ConnectionType >= 1 && *d.ConnectionType <= 7 {
			f.conn = int64(*d.ConnectionType)
		}
		f.carrier = strings.ToLower(d.Carrier)
	}
	var cats, cnt []string
	var catTax, cntTax int64
	f.kind = 4
	switch {
	case br.Site != nil:
		f.kind = 1
		catTax = int64(br.Site.CatTax)
		f.site = advDomain(br.Site.Domain)
		f.page = siteParents(advDomain(br.Site.Page))
		f.siteBlk = append(siteParents(f.site), f.page...)
		cats = slices.Concat(br.Site.Cat, br.Site.PageCat, br.Site.SectionCat)
		if br.Site.Content != nil {
			cnt, cntTax = br.Site.Content.Cat, int64(br.Site.Content.CatTax)
		}
		if br.Site.Publisher != nil {
			f.pub = br.Site.Publisher.ID
		}
	case br.App != nil:
		f.kind = 2
		catTax = int64(br.App.CatTax)
		f.bundle = appKey(br.App.Bundle)
		cats = slices.Concat(br.App.Cat, br.App.PageCat, br.App.SectionCat)
		if br.App.Content != nil {
			cnt, cntTax = br.App.Content.Cat, int64(br.App.Content.CatTax)
		}
		if br.App.Publisher != nil {
			f.pub = br.App.Publisher.ID
		}
	case br.DOOH != nil:
		f.kind = 3
		for _, v := range br.DOOH.VenueType {
			f.venues = append(f.venues, strings.ToLower(v))
		}
		if br.DOOH.Publisher != nil {
			f.pub = br.DOOH.Publisher.ID
		}
		if br.DOOH.Content != nil {
			cnt, cntTax = br.DOOH.Content.Cat, int64(br.DOOH.Content.CatTax)
		}
	}
	f.catTax, f.hasCats = taxonomy(catTax), len(cats) > 0
	f.cntTax, f.hasCnt = taxonomy(cntTax), len(cnt) > 0
	f.addCats(f.catTax, cats)
	f.addCats(f.cntTax, cnt) // the content's categories count as the site's (campaigns.Scratch.inventoryValues)
	if br.User != nil && personalize {
		for _, d := range br.User.Data {
			for _, s := range d.Segment {
				f.segments = append(f.segments, s.ID)
			}
		}
	}
	f.bcatTax = taxonomy(int64(br.CatTax))
	for _, c := range br.BCat {
		if f.bcatTax != 1 {
			f.bcat = append(f.bcat, catKey(f.bcatTax, c))
			continue
		}
		f.bcat = append(f.bcat, strings.ToUpper(c))
	}
	for _, c := range br.ACat {
		if f.bcatTax != 1 {
			f.acat = append(f.acat, catKey(f.bcatTax, c))
			continue
		}
		f.acat = append(f.acat, strings.ToUpper(c))
	}
	for _, a := range br.BApp {
		f.bapp = append(f.bapp, appKey(a))
	}
	for _, a := range br.BAdv {
		f.badv = append(f.badv, advDomain(a))
	}
	return f
}

// prebidRewarded reads imp.ext.prebid.is_rewarded_inventory, Prebid's 2.5
// twin of rwdd (1 or true), as the bidder's parser does.
func prebidRewarded(ext json.RawMessage) bool {
	var m struct {
		Prebid struct {
			R any `json:"is_rewarded_inventory"`
		} `json:"prebid"`
	}
	if len(ext) == 0 || json.Unmarshal(ext, &m) != nil {
		return false
	}
	return m.Prebid.R == 1.0 || m.Prebid.R == true
}

// targeted tells whether the pacing forecast counts the request, as the
// bidder's: some campaign's targeting takes one of its imps, whatever the
// campaigns' flights and dayparting.
func (b *Baseline) targeted(f *reqFacts) bool {
	f.anyTime = true
	defer func() { f.anyTime = false }()
	for i := range f.br.Imp[:min(len(f.br.Imp), b.cfg.MaxImps)] {
		if len(b.match(nil, f, &f.br.Imp[i])) > 0 {
			return true
		}
	}
	return false
}

// match appends the candidates for imp, looping over every campaign.
func (b *Baseline) match(dst []Candidate, f *reqFacts, imp *openrtb2.Imp) []Candidate {
	br := f.br
	if len(br.WSeat) > 0 && !slices.Contains(br.WSeat, b.cfg.Seat) || b.cfg.Seat != "" && slices.Contains(br.BSeat, b.cfg.Seat) {
		return dst
	}
	rewarded := imp.Rwdd != 0 || prebidRewarded(imp.Ext) // any nonzero, as the parser reads it
	for _, c := range b.cfg.Campaigns.Campaigns {
		if !b.campaignEligible(c, f) {
			continue
		}
		if r := c.Targeting.Rewarded; r != 0 && (r > 0) != rewarded {
			continue
		}
		deal, ok := b.pickDeal(c, imp)
		if !ok {
			continue
		}
		for _, cr := range c.Creatives {
			d := deal
			if d != nil && len(d.WADomain) > 0 && !wadomainAllows(cr.ADomain, d.WADomain) {
				// As the bidder: the campaign's next deal that allows the
				// creative, else the open auction only, where allowed.
				d = b.dealAllowing(c, imp, cr, d)
				if d == nil && (!c.Targeting.OpenAuction || imp.PMP != nil && imp.PMP.PrivateAuction != 0) {
					continue
				}
			}
			if w, h, ok := creativeFits(cr, imp, f); ok {
				cand := Candidate{Campaign: c, Creative: cr, Deal: d, W: w, H: h}
				if d != nil {
					for l := b.dealAllowing(c, imp, cr, d); l != nil; l = b.dealAllowing(c, imp, cr, l) {
						if dealIndex(imp, l) < 63 { // the bidder offers only an imp's first 63 deals (Candidate.Alts)
							cand.Later = append(cand.Later, l)
						}
					}
					cand.Open = c.Targeting.OpenAuction && (imp.PMP == nil || imp.PMP.PrivateAuction == 0)
				}
				dst = append(dst, cand)
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
		!f.anyTime && (!c.Start.IsZero() && f.now.Before(c.Start) || !c.End.IsZero() && !f.now.Before(c.End)) {
		return false
	}
	if br.Regs != nil && br.Regs.COPPA != 0 && !c.AllowCOPPA {
		return false
	}
	if f.dsaRequired >= 2 && (c.DSA == nil || f.dsaPubRender == 0) {
		return false // DSA transparency required, none to give or nobody to render it
	}
	hasSite, hasApp := br.Site != nil, br.App != nil
	if !in(t.Countries, f.country) || !in(t.Regions, f.region) ||
		!in(t.Metros, f.metro) || !in(t.Cities, f.city) || !in(t.Languages, f.lang) || !in(t.Carriers, f.carrier) ||
		len(t.ConnTypes) > 0 && !slices.Contains(t.ConnTypes, f.conn) ||
		f.kind == 3 && len(t.VenueTypes) > 0 && !anyIn(t.VenueTypes, f.venues) ||
		len(t.DeviceTypes) > 0 && !slices.Contains(t.DeviceTypes, f.device) ||
		len(t.OS) > 0 && (!f.hasOS || !slices.Contains(t.OS, f.os)) ||
		!in(t.Publishers, f.pub) ||
		hasSite && !in(t.SiteAllow, f.site) || hasSite && len(t.SiteAllow) > 0 && len(f.page) > 0 && !anyIn(t.SiteAllow, f.page) ||
		hasApp && !in(t.AppAllow, f.bundle) ||
		len(t.CatAllow) > 0 && !anyIn(catKeys(t.CatTax, t.CatAllow), f.cats) ||
		len(t.Segments) > 0 && !anyIn(t.Segments, f.segments) ||
		len(t.Exchanges) > 0 { // the baseline serves no named exchange: such a campaign never matches
		return false
	}
	// Inventory: a request with both site and app is a site; one with
	// neither site, app nor dooh only for campaigns that allow site and app.
	if !(t.Site && t.App && t.DOOH) && !(f.kind == 1 && t.Site || f.kind == 2 && t.App || f.kind == 3 && t.DOOH || f.kind == 4 && t.Site && t.App) {
		return false
	}
	if hasSite && anyIn(t.SiteBlock, f.siteBlk) ||
		hasApp && f.bundle != "" && slices.Contains(t.AppBlock, f.bundle) ||
		anyIn(catKeys(t.CatTax, t.CatBlock), f.cats) {
		return false
	}
	if len(t.CatBlock) > 0 && (f.hasCats && f.catTax != t.CatTax || f.hasCnt && f.cntTax != t.CatTax) {
		return false // a block list in another taxonomy cannot be checked
	}
	if t.Dayparting && !f.anyTime {
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
			if d.ID != "" && slices.Contains(c.Targeting.Deals, d.ID) && !dealRepeated(imp, d.ID) {
				return d, true
			}
		}
	}
	return nil, c.Targeting.OpenAuction && !private
}

// dealRepeated tells whether imp lists deal id more than once (wseat
// aside): such a deal is bid on under none of its listings.
func dealRepeated(imp *openrtb2.Imp, id string) bool {
	n := 0
	for i := range imp.PMP.Deals {
		if imp.PMP.Deals[i].ID == id {
			n++
		}
	}
	return n > 1
}

// dealIndex is d's index in imp's deals (d points into them).
func dealIndex(imp *openrtb2.Imp, d *openrtb2.Deal) int {
	for i := range imp.PMP.Deals {
		if &imp.PMP.Deals[i] == d {
			return i
		}
	}
	return -1
}

// dealAllowing returns the first deal after after in imp's list (request
// order) that pickDeal would take for c and whose wadomain, if it has one,
// allows cr; nil if none.
func (b *Baseline) dealAllowing(c *campaigns.Campaign, imp *openrtb2.Imp, cr *campaigns.Creative, after *openrtb2.Deal) *openrtb2.Deal {
	deals := imp.PMP.Deals
	i := 0
	for i < len(deals) && &deals[i] != after {
		i++
	}
	for i++; i < len(deals); i++ {
		d := &deals[i]
		if len(d.WSeat) > 0 && !slices.Contains(d.WSeat, b.cfg.Seat) || d.ID == "" || !slices.Contains(c.Targeting.Deals, d.ID) ||
			dealRepeated(imp, d.ID) {
			continue
		}
		if len(d.WADomain) == 0 || wadomainAllows(cr.ADomain, d.WADomain) {
			return d
		}
	}
	return nil
}

// acatAllows tells whether every category of the creative is in the
// request's acat (or, in IAB 1.0, its parent is), in acat's taxonomy.
func acatAllows(cr *campaigns.Creative, f *reqFacts) bool {
	if len(cr.Cat) == 0 || cr.CatTax != f.bcatTax {
		return false
	}
	for _, c := range cr.Cat {
		if cr.CatTax != 1 {
			if !slices.Contains(f.acat, catKey(cr.CatTax, c)) {
				return false
			}
			continue
		}
		p, _, _ := strings.Cut(c, "-")
		if !slices.Contains(f.acat, c) && !slices.Contains(f.acat, p) {
			return false
		}
	}
	return true
}

// creativeFits checks a creative against the imp's format and the request's
// blocks, returning the size to bid with.
func creativeFits(cr *campaigns.Creative, imp *openrtb2.Imp, f *reqFacts) (w, h int64, ok bool) {
	if imp.Secure != nil && *imp.Secure != 0 && !cr.Secure {
		return 0, 0, false
	}
	if len(f.br.BCat) > 0 && len(cr.Cat) > 0 && cr.CatTax != f.bcatTax {
		return 0, 0, false // bcat in another taxonomy cannot be checked
	}
	for _, c := range cr.Cat {
		if cr.CatTax != 1 {
			if slices.Contains(f.bcat, catKey(cr.CatTax, c)) {
				return 0, 0, false
			}
			continue
		}
		p, _, _ := strings.Cut(c, "-")
		if slices.Contains(f.bcat, c) || slices.Contains(f.bcat, p) {
			return 0, 0, false
		}
	}
	if anyIn(cr.ADomain, f.badv) || cr.Bundle != "" && slices.Contains(f.bapp, appKey(cr.Bundle)) {
		return 0, 0, false
	}
	if len(f.br.ACat) > 0 && !acatAllows(cr, f) {
		return 0, 0, false
	}
	if !langListed(f.br.WLang, cr.Language) || !langListed(f.br.WLangB, cr.Language) {
		return 0, 0, false
	}
	switch cr.Format {
	case campaigns.FormatBanner:
		if imp.Banner == nil || attrBlocked(cr.Attr, imp.Banner.BAttr) || btypeBlocked(cr.BType, imp.Banner.BType) || !mraidFits(cr.MRAID, imp.Banner.API) {
			return 0, 0, false
		}
		return bannerFit(cr.Sizes, imp.Banner, imp.Instl != 0)
	case campaigns.FormatVideo:
		v := imp.Video
		if v == nil || attrBlocked(cr.Attr, v.BAttr) || !mimeFits(cr.MIMEs, v.MIMEs) || !deliveryFits(cr.Delivery, v.Delivery) || !apiFits(cr.VPAID, v.API) ||
			!timedFits(cr, v.MinDuration, v.MaxDuration, v.Protocols, v.RqdDurs, v.PodDur, int64(v.PodSeq), v.PodID, int64(v.SlotInPod)) {
			return 0, 0, false
		}
		p := int64(v.Plcmt)
		if p == 0 && v.Placement >= 2 && v.Placement <= 4 {
			p = 4 // 2.5 in-banner, in-article, in-feed: no content (the index's plcmt)
		}
		if len(cr.Plcmt) > 0 && !slices.Contains(cr.Plcmt, p) {
			return 0, 0, false
		}
		if v.Linearity > 0 && cr.Linearity != int64(v.Linearity) {
			return 0, 0, false
		}
		if skip := v.Skip != nil && *v.Skip == 1; cr.Skippable == 1 && !skip || cr.Skippable == -1 && skip {
			return 0, 0, false
		}
		if deref(v.W) <= 0 || deref(v.H) <= 0 {
			if len(cr.Sizes) > 0 {
				return cr.Sizes[0].W, cr.Sizes[0].H, true
			}
			return 0, 0, true
		}
		return deref(v.W), deref(v.H), true
	case campaigns.FormatNative:
		if imp.Native == nil || attrBlocked(cr.Attr, imp.Native.BAttr) || !nativeFits(cr, imp.Native.Request) {
			return 0, 0, false
		}
		return 0, 0, true
	case campaigns.FormatAudio:
		a := imp.Audio
		if a == nil || attrBlocked(cr.Attr, a.BAttr) || !mimeFits(cr.MIMEs, a.MIMEs) || !deliveryFits(cr.Delivery, a.Delivery) ||
			!timedFits(cr, a.MinDuration, a.MaxDuration, a.Protocols, a.RqdDurs, a.PodDur, int64(a.PodSeq), a.PodID, int64(a.SlotInPod)) {
			return 0, 0, false
		}
		return 0, 0, true
	}
	return 0, 0, false
}

func bannerFit(sizes []campaigns.Size, b *openrtb2.Banner, instl bool) (int64, int64, bool) {
	bw, bh := deref(b.W), deref(b.H)
	ranged := b.WMin > 0 || b.WMax > 0 || b.HMin > 0 || b.HMax > 0
	if bw == 0 && bh == 0 && len(b.Format) == 0 && !ranged {
		for _, s := range sizes { // the imp gives no size: any, or a full-screen one for an interstitial
			if !instl || campaigns.FullScreen(s) {
				return s.W, s.H, true
			}
		}
		return 0, 0, false
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
	if ranged && len(b.Format) == 0 { // 2.5: on an axis with a range, w or h is then only preferred
		fits := func(v, exact, lo, hi int64) bool {
			if lo <= 0 && hi <= 0 {
				return exact == 0 || v == exact
			}
			return (lo <= 0 || v >= lo) && (hi <= 0 || v <= hi)
		}
		for _, s := range sizes {
			if fits(s.W, bw, b.WMin, b.WMax) && fits(s.H, bh, b.HMin, b.HMax) {
				return s.W, s.H, true
			}
		}
	}
	return 0, 0, false
}

// langListed says whether an ad in lang may run where the request allows
// the languages list (wlang, or wlangb: BCP 47, its primary subtag
// compared), in any case; an empty list allows any, and an ad with no
// declared language ("") or none to speak of ("xx") is never refused.
func langListed(list []string, lang string) bool {
	if len(list) == 0 || lang == "" || lang == "xx" {
		return true
	}
	return slices.ContainsFunc(list, func(l string) bool {
		primary := strings.TrimSpace(l)
		if i := strings.IndexAny(primary, "-_"); i >= 0 {
			primary = primary[:i]
		}
		return strings.EqualFold(primary, lang)
	})
}

// btypeBlocked says whether the imp's btype names one of the creative's
// declared banner ad types.
func btypeBlocked(types []int64, btype []openrtb2.BannerAdType) bool {
	return slices.ContainsFunc(types, func(t int64) bool { return slices.Contains(btype, openrtb2.BannerAdType(t)) })
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
		w = strings.TrimSpace(w)
		for _, h := range have {
			if strings.EqualFold(w, h) {
				return true
			}
		}
	}
	return false
}

func taxonomy(t int64) int64 {
	if t == 0 {
		return 1
	}
	return t
}

// catKey is a category of a taxonomy other than IAB 1.0, compared exactly.
func catKey(tax int64, c string) string {
	if tax == 1 {
		return c
	}
	return strconv.FormatInt(tax, 10) + ":" + c
}

func catKeys(tax int64, cats []string) []string {
	out := make([]string, len(cats))
	for i, c := range cats {
		out[i] = catKey(tax, c)
	}
	return out
}

// timedFits checks a video or audio creative against the imp: protocols
// (a creative of unknown protocol fits no imp listing some), duration
// (rqddurs when given, else min/max; poddur bounds it; an unknown duration
// fits only an imp constraining none), and the pods and slots the creative
// may take (an imp outside a pod holds one ad, first and last).
func timedFits(cr *campaigns.Creative, minDur, maxDur int64, protocols []adcom1.MediaCreativeSubtype, rqd []int64, podDur, podSeq int64, podID string, slot int64) bool {
	if len(protocols) > 0 {
		ok := false
		for _, p := range protocols {
			ok = ok || slices.Contains(cr.Protocols, int64(p))
		}
		if !ok {
			return false
		}
	}
	d := cr.Duration
	if len(rqd) > 0 {
		if d == 0 || !slices.Contains(rqd, d) {
			return false
		}
	} else if minDur > 0 && d < minDur || maxDur > 0 && (d == 0 || d > maxDur) {
		return false
	}
	if podDur > 0 && (d == 0 || d > podDur) {
		return false
	}
	if len(cr.PodSeq) > 0 && !slices.Contains(cr.PodSeq, podSeq) {
		return false
	}
	if len(cr.SlotInPod) == 0 || podID == "" && slot == 0 {
		return true
	}
	switch slot {
	case 1, -1:
		return slices.Contains(cr.SlotInPod, slot)
	case 2:
		return slices.Contains(cr.SlotInPod, 1) && slices.Contains(cr.SlotInPod, -1)
	}
	return false
}

// nativeAsset is one asset of a Native 1.x request or response.
type nativeAsset struct {
	ID       int64 `json:"id"`
	Required int64 `json:"required"`
	Title    *struct {
		Len  int64  `json:"len"`
		Text string `json:"text"`
	} `json:"title"`
	Img *struct {
		Type  int64    `json:"type"`
		URL   string   `json:"url"`
		W     int64    `json:"w"`
		H     int64    `json:"h"`
		WMin  int64    `json:"wmin"`
		HMin  int64    `json:"hmin"`
		MIMEs []string `json:"mimes"`
	} `json:"img"`
	Data *struct {
		Type  int64  `json:"type"`
		Len   int64  `json:"len"`
		Value string `json:"value"`
	} `json:"data"`
}

type nativeDoc struct {
	Assets []nativeAsset `json:"assets"`
	Native *nativeDoc    `json:"native"`
}

// nativeFits reads the imp's native request the obvious way (encoding/json;
// the 1.2 form, the 1.0/1.1 {"native":{...}} form, or either encoded twice)
// and checks that the creative fills every required asset and at least one
// (a request without assets takes any native creative). The creative's
// assets are read back from its default-layout markup.
func nativeFits(cr *campaigns.Creative, request string) bool {
	var twice string
	if json.Unmarshal([]byte(request), &twice) == nil {
		request = twice
	}
	var doc nativeDoc
	if strings.TrimSpace(request) != "" && json.Unmarshal([]byte(request), &doc) != nil {
		return false
	}
	if doc.Native != nil {
		doc = *doc.Native
	}
	if len(doc.Assets) == 0 {
		return true
	}
	have := creativeAssets(cr)
	filled := 0
	for _, a := range doc.Assets {
		if slices.ContainsFunc(have, func(c nativeAsset) bool { return assetFills(c, a) }) {
			filled++
		} else if a.Required == 1 {
			return false
		}
	}
	return filled > 0
}

func assetFills(c, a nativeAsset) bool {
	switch {
	case a.Title != nil:
		return c.Title != nil && (a.Title.Len <= 0 || int64(utf8.RuneCountInString(c.Title.Text)) <= a.Title.Len)
	case a.Img != nil:
		want := a.Img.Type
		switch want {
		case 0:
			want = 3 // main
		case 2:
			want = 1 // logo: the icon
		}
		if c.Img == nil || c.Img.Type != want || !imgMIMEFits(c.Img.URL, a.Img.MIMEs) {
			return false
		}
		if a.Img.WMin > 0 || a.Img.HMin > 0 {
			return c.Img.W >= a.Img.WMin && c.Img.H >= a.Img.HMin
		}
		return (a.Img.W <= 0 || c.Img.W == a.Img.W) && (a.Img.H <= 0 || c.Img.H == a.Img.H)
	case a.Data != nil:
		return c.Data != nil && c.Data.Type == a.Data.Type && (a.Data.Len <= 0 || int64(utf8.RuneCountInString(c.Data.Value)) <= a.Data.Len)
	}
	return false
}

// creativeAssets are a native creative's assets, from its default layout.
func creativeAssets(cr *campaigns.Creative) []nativeAsset {
	var adm string
	if json.Unmarshal(append(append([]byte(`"`), campaigns.AppendNative(nil, cr, nil, nil, nil)...), '"'), &adm) != nil {
		return nil
	}
	var doc nativeDoc
	if json.Unmarshal([]byte(adm), &doc) != nil {
		return nil
	}
	return doc.Assets
}

// wadomainAllows says whether every one of the creative's domains is a
// deal's wadomain entry or a subdomain of one, the first 256 entries read
// as the bidder normalises them (campaigns.normWADomain).
func wadomainAllows(ad []string, allowed []string) bool {
	allowed = allowed[:min(len(allowed), 256)]
	for _, a := range ad {
		a = strings.TrimPrefix(strings.ToLower(a), "www.")
		ok := false
		for _, w := range allowed {
			if w = advDomain(w); w != "" && (a == w || strings.HasSuffix(a, "."+w)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// appKey is the app a bapp entry or a creative's bundle names, as the
// bidder reads it (campaigns.appKey, compared in lower case): Google Play's
// details?id= or a URL's last path segment, and an App Store number
// without its "id".
func appKey(a string) string {
	a = strings.TrimSpace(a)
	if strings.Contains(a, "/") {
		if _, id, ok := strings.Cut(a, "?id="); ok {
			a = id
		} else if _, id, ok := strings.Cut(a, "&id="); ok {
			a = id
		} else {
			a, _, _ = strings.Cut(a, "?")
			a, _, _ = strings.Cut(a, "#")
			a = strings.TrimRight(a, "/")
			a = a[strings.LastIndex(a, "/")+1:]
		}
		a, _, _ = strings.Cut(a, "&")
		a, _, _ = strings.Cut(a, "#")
	}
	if len(a) > 2 && strings.EqualFold(a[:2], "id") && strings.Trim(a[2:], "0123456789") == "" {
		a = a[2:]
	}
	return strings.ToLower(a)
}

// advDomain is the domain a badv or wadomain entry names, as the bidder
// reads it (campaigns.advDomain and its lookup): lower case, also written
// as a URL, with a port, a final dot, a leading "*." or ".", or "www.".
func advDomain(a string) string {
	a = strings.ToLower(strings.TrimSpace(a))
	if scheme, rest, ok := strings.Cut(a, "://"); ok && !strings.ContainsAny(scheme, "/?#") {
		a = rest
	}
	a = strings.TrimLeft(a, "/")
	if i := strings.IndexAny(a, "/?#"); i >= 0 {
		a = a[:i]
	}
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		a = a[i+1:]
	}
	if i := strings.IndexByte(a, ':'); i >= 0 {
		a = a[:i]
	}
	return idnASCII(strings.TrimPrefix(strings.TrimLeft(strings.TrimRight(a, "."), "*."), "www."))
}

// siteParents is d (advDomain's) and each parent of it that is still a
// domain (has a dot), as the bidder checks a site block list
// (campaigns.appendParents): of a name over 253 bytes, the parents from the
// first label that leaves 253 bytes or fewer; of a name IDNA refuses as a
// whole (still not ASCII), its last 16 parents each converted on its own.
func siteParents(d string) []string {
	if d == "" {
		return nil
	}
	out := []string{d}
	if len(d) > 253 {
		for i := len(d) - 253; i < len(d); i++ {
			if labelStart(d, i) {
				return append(out, siteParents(advDomain(d[i:]))...)
			}
		}
		return out
	}
	if strings.IndexFunc(d, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
		n := 0
		for i := len(d) - 1; i > 0 && n < 16; i-- {
			if labelStart(d, i) {
				n++
				out = append(out, strings.TrimPrefix(idnASCII(d[i:]), "www."))
			}
		}
		return out
	}
	for _, rest, ok := strings.Cut(d, "."); ok && strings.Contains(rest, "."); _, rest, ok = strings.Cut(rest, ".") {
		out = append(out, rest)
	}
	return out
}

// labelStart tells whether a label of d starts at i: after a dot, or a dot
// IDNA reads as one (U+3002, U+FF0E, U+FF61).
func labelStart(d string, i int) bool {
	if i <= 0 || i >= len(d) {
		return false
	}
	if d[i-1] == '.' {
		return true
	}
	return i >= 3 && (d[i-3:i] == "\u3002" || d[i-3:i] == "\uff0e" || d[i-3:i] == "\uff61")
}

// regsDSA reads regs.ext.dsa's dsarequired and pubrender as the bidder does:
// a whole number or a string of digits, above 3 read as 3; -1 where absent
// or null; anything else, or a dsa that is not an object, the strict way
// (dsarequired 3, pubrender 0).
func regsDSA(ext json.RawMessage) (req, pub int) {
	var e struct {
		DSA json.RawMessage `json:"dsa"`
	}
	req, pub = -1, -1
	if json.Unmarshal(ext, &e) != nil || e.DSA == nil || string(e.DSA) == "null" {
		return
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(e.DSA, &d) != nil {
		return 3, 0
	}
	read := func(raw json.RawMessage, strict int) int {
		if raw == nil || string(raw) == "null" {
			return -1
		}
		var n float64
		if json.Unmarshal(raw, &n) == nil {
			if n >= 0 && n == math.Trunc(n) {
				return int(min(n, 3))
			}
			return strict
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" && len(s) <= 18 && strings.Trim(s, "0123456789") == "" {
			v, _ := strconv.ParseInt(s, 10, 64)
			return int(min(v, 3))
		}
		return strict
	}
	return read(d["dsarequired"], 3), read(d["pubrender"], 0)
}

// idnASCII writes an internationalised domain name in ASCII (punycode), as
// the bidder reads badv, wadomain and the site's domain; one that does not
// convert, or is longer than a domain name may be (253 bytes), stays as it
// is.
func idnASCII(d string) string {
	if len(d) > 253 {
		return d
	}
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			if a, err := idna.Lookup.ToASCII(d); err == nil {
				return strings.TrimPrefix(a, "www.")
			}
			return d
		}
	}
	return d
}

// addCats adds categories of taxonomy tax to f.cats: IAB 1.0 upper case with
// its parent, else "TAX:cat".
func (f *reqFacts) addCats(tax int64, cats []string) {
	for _, c := range cats {
		if tax != 1 {
			f.cats = append(f.cats, catKey(tax, c))
			continue
		}
		c = strings.ToUpper(c)
		f.cats = append(f.cats, c)
		if p, _, ok := strings.Cut(c, "-"); ok && p != "" {
			f.cats = append(f.cats, p)
		}
	}
}

// deliveryFits is the bidder's deliveryOK on the schema's types: one method
// in common, or either list empty.
func deliveryFits(cr []int64, imp []adcom1.DeliveryMethod) bool {
	if len(imp) == 0 || len(cr) == 0 {
		return true
	}
	for _, d := range imp {
		if slices.Contains(cr, int64(d)) {
			return true
		}
	}
	return false
}

// imgMIMEFits is the bidder's native image type rule: a creative image
// whose URL ends in .jpg/.jpeg, .png, .gif or .webp must have a type the
// asset's mimes list (image/jpg read as image/jpeg); any other image, or an
// asset without mimes, fits.
func imgMIMEFits(u string, mimes []string) bool {
	if len(mimes) == 0 {
		return true
	}
	p, err := url.Parse(u)
	if err != nil {
		return true
	}
	t := map[string]string{".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp"}[strings.ToLower(path.Ext(p.Path))]
	if t == "" {
		return true
	}
	return slices.ContainsFunc(mimes, func(m string) bool {
		m = strings.ToLower(strings.TrimSpace(m))
		return m == t || m == "image/jpg" && t == "image/jpeg"
	})
}

// apiFits is the bidder's apiOK on the schema's types: a VPAID-only
// creative needs VPAID 1.0 or 2.0 in video.api.
func apiFits(vpaid bool, api []adcom1.APIFramework) bool {
	return !vpaid || slices.Contains(api, adcom1.APIVPAID10) || slices.Contains(api, adcom1.APIVPAID20)
}

// mraidFits is the bidder's mraidOK on the schema's types: markup that
// loads mraid.js needs MRAID 1.0, 2.0 or 3.0 in banner.api.
func mraidFits(mraid bool, api []adcom1.APIFramework) bool {
	return !mraid || slices.Contains(api, adcom1.APIMRAID10) || slices.Contains(api, adcom1.APIMRAID20) || slices.Contains(api, adcom1.APIMRAID30)
}
