package campaigns

import (
	"bytes"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/openbidder/openbidder/ortb"
)

// Candidate is an eligible (campaign, creative) pair for one imp.
type Candidate struct {
	Campaign *Campaign
	Creative *Creative
	// Deal is the imp's deal the bid is for (it points into the request and
	// is valid only during it); nil for the open auction.
	Deal *ortb.Deal
	// W, H is the size to bid with: the matched banner size, the video
	// player size from the imp, or 0.
	W, H int64
	// Alts are the other ways this creative may bid on the imp when Deal's
	// floor is out of its reach, in the order to try them: bit i (i < 63)
	// for imp.Deals[i], a later deal (request order) that the campaign
	// targets and that allows the creative, as Deal does; bit 63
	// (AltOpenAuction) for the open auction, where the campaign and the imp
	// allow one. Deals from the 64th of an imp on are not offered. 0 for an
	// open-auction candidate: there is nothing after it.
	Alts uint64
}

// AltOpenAuction is Candidate.Alts' bit for the open auction.
const AltOpenAuction = uint64(1) << 63

// NextAlt moves c to its next way to bid (Alts, lowest bit first: the
// imp's later deals in request order, then the open auction) and reports
// false when none is left. imp is the imp c was matched for.
func (c *Candidate) NextAlt(imp *ortb.Imp) bool {
	if c.Alts == 0 {
		return false
	}
	i := bits.TrailingZeros64(c.Alts)
	c.Alts &^= 1 << i
	switch {
	case i == 63: // AltOpenAuction, the last
		c.Deal = nil
		return true
	case i >= len(imp.Deals): // not the imp c was matched for
		c.Alts = 0
		return false
	}
	c.Deal = &imp.Deals[i]
	return true
}

// Scratch is per-worker reusable state for Match. The zero value is usable;
// it grows to the snapshot's size on first use and then never allocates.
// Not safe for concurrent use.
type Scratch struct {
	// Examined counts the campaigns Match looked at in its last call: the
	// posting lists it walked, never the whole snapshot.
	Examined int
	// Seat, when not nil, is the buyer seat Match and Begin check wseat,
	// bseat and deal wseat against instead of the snapshot's (a seat per
	// exchange). It must stay valid until the walk ends.
	Seat []byte
	// Exchange is the name of the exchange the request came through (the
	// bidder's ?exchange=, when it names a configured exchange); nil: none.
	// A campaign with targeting.exchanges matches only a listed name.
	Exchange []byte

	epoch    uint32
	seen     []uint32 // by campaign index: epoch when examined
	zoneMark []uint32 // by zone: epoch when zoneHow was computed
	zoneHow  []int32  // weekday*24 + hour in that zone
	buf      []byte
	key      []byte
	vals     [numDims][]uint32
	na       [numDims]bool
	deals    []*ortb.Deal // parallel to vals[dDeal]
	dealIx   []int        // parallel to vals[dDeal]: the deal's index in imp.Deals
	dealIDs  []uint32     // dealValues: each of imp.Deals' ids (0: unknown)
	dealDups []uint32     // dealValues: the known ids imp.Deals lists more than once, sorted
	bcat     []uint32
	acat     []uint32 // ids of the request's acat found in the index
	hasACat  bool     // the request lists allowed categories
	badv     []uint32
	bapp     []uint32
	siteBlk  []uint32 // the site's domain, its page's host, and their parents (siteValues)
	wlang    [][]byte // the request's wlang and wlangb (they point into it)
	wlangb   [][]byte
	hasBCat  bool  // the request lists blocked categories
	bcatTax  int64 // their taxonomy (request cattax; 1 when absent)
	catTax   int64 // taxonomy of the site/app categories, pagecat and sectioncat (1 when absent)
	hasCats  bool  // the request's site/app lists categories (cat, pagecat or sectioncat)
	cntTax   int64 // taxonomy of the content's categories (1 when absent)
	hasCnt   bool  // the request's site/app content lists categories
	now      time.Time
	nowNanos int64
	walk     walk     // Begin/Next
	pageIDs  []uint32 // the host of site.page and its parents (siteValues; with site allow lists)
	pageHost bool     // site.page names a host (with site allow lists)
	anyTime  bool     // Targeted: flight and dayparting are not checked
	offOnly  bool     // TargetedOffSchedule: campaigns live at now are skipped
	// The imp, index and marks epoch whose values vals holds (match, Begin):
	// TargetedOffSchedule right after the walk of that imp reuses them.
	valsImp   *ortb.Imp
	valsIx    *index
	valsEpoch uint32
	probe     []Candidate // Targeted's
}

// NewScratch returns an empty Scratch.
func NewScratch() *Scratch { return &Scratch{} }

// Match appends to dst every (campaign, creative) pair eligible for imp of
// req at time now, and returns the extended slice. It honours status, flight,
// dayparting, geo (country, region, metro, city), device type, OS, language,
// connection type, carrier, inventory (site, app, dooh), publisher, site/app
// allow and block lists, DOOH venue types, categories (in their taxonomy),
// rewarded imps, formats and sizes, video and audio constraints (duration,
// rqddurs, protocols, plcmt, skippability, pods), the native request's
// required assets, deals and private auctions, segments (not without
// consent), COPPA, and the request's bcat, badv, bapp, battr, btype, wlang
// and wlangb, wseat/bseat and secure. Floors and currency are the caller's. It makes no allocation once
// sc has grown.
func (s *Snapshot) Match(dst []Candidate, req *ortb.Request, imp *ortb.Imp, now time.Time, sc *Scratch) []Candidate {
	return s.match(dst, req, imp, now, sc, false)
}

// Targeted reports whether some campaign's targeting takes imp of req,
// whatever the campaigns' flight and dayparting: Match at any time of any
// campaign's schedule (a campaign whose file says status: paused is not in
// the index; an operator's pause is the bidder's, after Match, and does not
// count here either way). The bidder's traffic forecast counts the
// requests some campaign could bid on this way, so a flood no campaign
// targets does not shape the plans, and the hours when no campaign is live
// (before a flight's start, outside its hours) are not learned as hours
// without traffic. It stops at the first match, and makes no allocation
// once sc has grown.
func (s *Snapshot) Targeted(req *ortb.Request, imp *ortb.Imp, now time.Time, sc *Scratch) bool {
	return s.targeted(req, imp, now, sc, false)
}

// TargetedOffSchedule is Targeted for a caller that has already walked the
// imp at now (Match, or Begin and Next to the end) and found no candidate:
// only the campaigns outside their flight or dayparting at now are checked
// in full, those live at now are skipped on their schedule alone. Targeted
// is Match's candidates at now, or this (TestTargetedIgnoresSchedules).
func (s *Snapshot) TargetedOffSchedule(req *ortb.Request, imp *ortb.Imp, now time.Time, sc *Scratch) bool {
	return s.targeted(req, imp, now, sc, true)
}

func (s *Snapshot) targeted(req *ortb.Request, imp *ortb.Imp, now time.Time, sc *Scratch, offOnly bool) bool {
	sc.anyTime, sc.offOnly = true, offOnly
	sc.probe = s.match(sc.probe[:0], req, imp, now, sc, true)
	sc.anyTime, sc.offOnly = false, false
	return len(sc.probe) > 0
}

// match is Match; first: return at the first campaign with a candidate.
func (s *Snapshot) match(dst []Candidate, req *ortb.Request, imp *ortb.Imp, now time.Time, sc *Scratch, first bool) []Candidate {
	sc.Examined = 0
	ix := &s.idx
	seat := sc.seat(ix)
	if !seatAllowed(req.WSeat, req.BSeat, seat) {
		return dst
	}
	if sc.offOnly && sc.valsImp == imp && sc.valsIx == ix && sc.valsEpoch == sc.epoch && sc.nowNanos == now.UnixNano() {
		// The caller's walk of this imp at now left the request's values
		// (TargetedOffSchedule): new marks only.
		sc.nextEpoch()
	} else {
		sc.begin(ix, now)
		sc.requestValues(ix, req, imp, seat)
	}
	sc.valsImp, sc.valsIx, sc.valsEpoch = imp, ix, sc.epoch
	if len(sc.seen) < len(ix.camps) { // Match only: the ranked walk needs no marks
		sc.seen = make([]uint32, len(ix.camps)+len(ix.camps)/4)
	}
	for d := range numDims {
		if sc.na[d] {
			continue
		}
		for _, v := range sc.vals[d] {
			for _, r := range ix.list(d, v) {
				ci := ix.byRank[r]
				if sc.seen[ci] == sc.epoch {
					continue
				}
				sc.seen[ci] = sc.epoch
				sc.Examined++
				n := len(dst)
				if dst = s.matchCampaign(dst, &ix.camps[ci], req, imp, sc); first && len(dst) > n {
					return dst
				}
			}
		}
	}
	return dst
}

// seat is the buyer seat of this match: Scratch.Seat, else the snapshot's.
func (sc *Scratch) seat(ix *index) []byte {
	if sc.Seat != nil {
		return sc.Seat
	}
	return ix.seat
}

func seatAllowed(wseat, bseat [][]byte, seat []byte) bool {
	if len(wseat) > 0 && !containsBytes(wseat, seat) {
		return false
	}
	return len(seat) == 0 || !containsBytes(bseat, seat)
}

func containsBytes(list [][]byte, v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, x := range list {
		if bytes.Equal(x, v) {
			return true
		}
	}
	return false
}

// nextEpoch starts new marks (seen, zoneMark).
func (sc *Scratch) nextEpoch() {
	sc.epoch++
	if sc.epoch == 0 { // wrapped: forget every mark
		clear(sc.seen)
		clear(sc.zoneMark)
		sc.epoch = 1
	}
}

func (sc *Scratch) begin(ix *index, now time.Time) {
	sc.nextEpoch()
	if len(sc.zoneMark) < len(ix.zones) {
		sc.zoneMark = make([]uint32, len(ix.zones)+4)
		sc.zoneHow = make([]int32, len(ix.zones)+4)
	}
	sc.now, sc.nowNanos = now, now.UnixNano()
	for d := range sc.vals {
		sc.vals[d] = sc.vals[d][:0]
		sc.na[d] = false
	}
	sc.deals, sc.dealIx = sc.deals[:0], sc.dealIx[:0]
	sc.bcat, sc.acat, sc.badv, sc.bapp = sc.bcat[:0], sc.acat[:0], sc.badv[:0], sc.bapp[:0]
	sc.siteBlk = sc.siteBlk[:0]
	sc.pageIDs, sc.pageHost = sc.pageIDs[:0], false
	sc.hasACat = false
	sc.hasBCat, sc.bcatTax, sc.catTax, sc.hasCats = false, 1, 1, false
	sc.cntTax, sc.hasCnt = 1, false
	sc.wlang, sc.wlangb = nil, nil
}

// tax is a request's cattax: 1 (IAB Content Category Taxonomy 1.0) when
// absent.
func tax(t int64) int64 {
	if t == 0 {
		return 1
	}
	return t
}

// Case folding applied to request values before dictionary look-up.
const (
	foldNone = iota
	foldLower
	foldUpper
	foldSite // lower case, without a leading "www."
)

// lookup finds the id of a request value in a dictionary (0: unknown).
// m[string(b)] does not allocate.
func (sc *Scratch) lookup(d dict, b []byte, fold int) uint32 {
	if len(b) == 0 {
		return 0
	}
	if fold == foldSite {
		b = idnASCII(b)
	}
	if fold != foldNone {
		sc.buf = sc.buf[:0]
		for _, c := range b {
			switch {
			case fold == foldUpper && 'a' <= c && c <= 'z':
				c -= 'a' - 'A'
			case fold != foldUpper && 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			sc.buf = append(sc.buf, c)
		}
		b = sc.buf
		if fold == foldSite && len(b) > 4 && string(b[:4]) == "www." {
			b = b[4:]
		}
	}
	return d[string(b)]
}

func (sc *Scratch) add(d dim, id uint32) {
	if id != 0 {
		sc.vals[d] = append(sc.vals[d], id)
	}
}

func (sc *Scratch) requestValues(ix *index, req *ortb.Request, imp *ortb.Imp, seat []byte) {
	geo := &req.Device.Geo // device.geo, else user.geo: filled even without a device
	sc.add(dCountry, sc.lookup(ix.dicts[dCountry], geo.Country, foldUpper))
	sc.add(dRegion, sc.lookup(ix.dicts[dRegion], geo.Region, foldLower))
	sc.add(dMetro, sc.lookup(ix.dicts[dMetro], geo.Metro, foldLower))
	sc.add(dCity, sc.lookup(ix.dicts[dCity], geo.City, foldLower))
	if req.HasDevice {
		d := &req.Device
		if dt := d.DeviceType; dt >= 1 && dt <= 7 {
			sc.add(dDevice, uint32(dt))
		}
		sc.add(dOS, sc.lookup(ix.dicts[dOS], d.OS, foldLower))
		lang := d.Language
		if len(lang) == 0 {
			lang = d.LangB
		}
		sc.add(dLang, sc.lookup(ix.dicts[dLang], primaryTag(lang), foldLower))
		if ct := d.ConnType; ct >= 1 && ct <= 7 {
			sc.add(dConn, uint32(ct))
		}
		sc.add(dCarrier, sc.lookup(ix.dicts[dCarrier], d.Carrier, foldLower))
	}
	sc.add(dExchange, sc.lookup(ix.dicts[dExchange], sc.Exchange, foldNone))
	sc.inventoryValues(ix, req)
	// A second belt (the bidder removes segments first when the privacy
	// decision denies personalisation): under GDPR with no TC string at
	// all, segments are not read. A GPP string may carry the TC string
	// (section 2); the decision reads it, so it is not refused here. Nor
	// are the decision's other ways into GDPR (no regs.gdpr beside a TC
	// string or a device in the EEA): package privacy applies them, and the
	// bidder drops the segments before Match (Request.DropUserLevel).
	userData := req.Regs.COPPA != ortb.True && !(req.Regs.GDPR == ortb.True && len(req.User.Consent) == 0 && len(req.Regs.GPP) == 0)
	if userData && req.HasUser {
		for _, seg := range req.User.Segments {
			sc.add(dSeg, sc.lookup(ix.dicts[dSeg], seg, foldNone))
		}
	}
	sc.dealValues(ix, imp, seat)
	sc.formatValues(ix, imp)
	sc.blockValues(ix, req)
}

// primaryTag is the language of an ISO 639 code or a BCP 47 tag: "en" of
// "en", "en-US" or "en_US".
func primaryTag(b []byte) []byte {
	for i, c := range b {
		if c == '-' || c == '_' {
			return b[:i]
		}
	}
	return b
}

// inventoryValues looks up what the request is (site, else app, else dooh),
// its publisher, site or bundle, venue types and categories.
func (sc *Scratch) inventoryValues(ix *index, req *ortb.Request) {
	var pub []byte
	var cats [][]byte
	var catTax int64
	var more *ortb.PageCats
	kind := invNone
	switch {
	case req.HasSite:
		kind = invSite
		sc.siteValues(ix, &req.Site)
		pub, cats, catTax, more = req.Site.Publisher.ID, req.Site.Cat, req.Site.CatTax, &req.Site.PageCats
	case req.HasApp:
		kind = invApp
		sc.add(dApp, sc.lookup(ix.dicts[dApp], appKey(req.App.Bundle), foldLower)) // as appBundles wrote the lists
		pub, cats, catTax, more = req.App.Publisher.ID, req.App.Cat, req.App.CatTax, &req.App.PageCats
	case req.HasDOOH:
		kind = invDOOH
		pub, more = req.DOOH.Publisher.ID, &req.DOOH.PageCats
		for _, v := range req.DOOH.VenueType {
			sc.add(dVenue, sc.lookup(ix.dicts[dVenue], v, foldLower))
		}
	}
	sc.add(dInventory, uint32(kind))
	sc.na[dSite], sc.na[dApp], sc.na[dVenue] = !req.HasSite, !req.HasApp, kind != invDOOH
	sc.add(dPub, sc.lookup(ix.dicts[dPub], pub, foldNone))
	sc.catTax, sc.hasCats = tax(catTax), len(cats) > 0
	for _, c := range cats {
		sc.addCategory(ix, dCat, sc.catTax, c)
	}
	if more == nil {
		return
	}
	// The page's, section's and content's categories count as the site's:
	// a block must hold on a page the request says is in it.
	sc.hasCats = sc.hasCats || len(more.PageCat) > 0
	for _, c := range more.PageCat {
		sc.addCategory(ix, dCat, sc.catTax, c)
	}
	sc.cntTax, sc.hasCnt = tax(more.ContentCatTax), len(more.ContentCat) > 0
	for _, c := range more.ContentCat {
		sc.addCategory(ix, dCat, sc.cntTax, c)
	}
}

// otherTax tells whether the request's categories (site or app, page,
// section, content) are in a taxonomy other than t.
func (sc *Scratch) otherTax(t int64) bool {
	return sc.hasCats && sc.catTax != t || sc.hasCnt && sc.cntTax != t
}

// dealValues keeps the imp's deals we know and may bid on (deal wseat). A
// deal id the imp lists more than once is kept under none of its listings:
// a bid names its deal by id alone, and the exchange may hold it to either
// listing's floor, fixed price, seats or advertisers (the bidder took the
// listing it could clear: deal-1 at a floor of 20 and again without one got
// 9 on deal-1, at fixed prices of 5 and 12 it got 5; an outside audit).
func (sc *Scratch) dealValues(ix *index, imp *ortb.Imp, seat []byte) {
	lids, dups := sc.dealIDs[:0], sc.dealDups[:0] // every listing's id (0: unknown); ids listed twice
	for i := range imp.Deals {
		lids = append(lids, sc.lookup(ix.dicts[dDeal], imp.Deals[i].ID, foldNone))
	}
	if len(lids) > 1 {
		dups = append(dups, lids...)
		slices.Sort(dups)
		n := 0
		for i := 1; i < len(dups); i++ {
			if dups[i] != 0 && dups[i] == dups[i-1] && (n == 0 || dups[n-1] != dups[i]) {
				dups[n] = dups[i]
				n++
			}
		}
		dups = dups[:n]
	}
	sc.dealIDs, sc.dealDups = lids, dups
	for i := range imp.Deals {
		dl := &imp.Deals[i]
		if len(dl.WSeat) > 0 && !containsBytes(dl.WSeat, seat) {
			continue
		}
		if id := lids[i]; id != 0 && (len(dups) == 0 || !contains(dups, id)) {
			sc.vals[dDeal] = append(sc.vals[dDeal], id)
			sc.deals = append(sc.deals, dl)
			sc.dealIx = append(sc.dealIx, i)
			normWADomain(dl)
		}
	}
}

// maxWADomain bounds the wadomain entries read: each creative of a
// campaign on the deal is compared with each entry, so a request naming
// 15,000 took 550 ms for 1,000 creatives (the review). Entries past it are
// dropped: fewer advertisers allowed, never more.
const maxWADomain = 256

// normWADomain cuts d.WADomain to maxWADomain entries and writes each as
// adomainsAllowed compares it (advDomain, then without "www."), once per
// request instead of once per creative; it is idempotent.
func normWADomain(d *ortb.Deal) {
	if len(d.WADomain) > maxWADomain {
		d.WADomain = d.WADomain[:maxWADomain]
	}
	for j, w := range d.WADomain {
		w = idnASCII(advDomain(w))
		if len(w) >= 4 && foldEqual("www.", w[:4]) {
			w = w[4:]
		}
		d.WADomain[j] = w
	}
}

// siteValues looks up the site: its domain, as an allow list compares it
// (exact, but for the case, a leading "www." and the forms advDomain reads:
// a scheme, a port, a final dot), and for block lists also each parent of
// that domain and the host of site.page with its parents. An outside
// audit's blocked-site.example. (a final dot), :443, sub.blocked-site.example
// and a page on the blocked site with another site.domain each got a bid
// from a campaign that blocks blocked-site.example; badv blocked such forms
// already. An allow list stays exact: a miss there is no bid. Without any
// site block list in the snapshot, only the domain's own id is looked up.
//
// An allow list must also take the host of site.page, or a parent of it,
// where the page names one: a request whose site.domain was an allowed
// site and whose page was on another got a bid (an outside targeting
// audit), where block lists already read the page.
func (sc *Scratch) siteValues(ix *index, site *ortb.Site) {
	d := ix.dicts[dSite]
	if ix.siteAllows {
		host := advDomain(site.Page)
		sc.pageHost = len(host) > 0
		if sc.pageHost {
			sc.pageIDs, _ = sc.appendParents(sc.pageIDs[:0], d, host)
		}
	}
	if !ix.siteBlocks {
		sc.add(dSite, sc.lookup(d, advDomain(site.Domain), foldSite))
		return
	}
	var id uint32
	sc.siteBlk, id = sc.appendParents(sc.siteBlk, d, advDomain(site.Domain))
	sc.add(dSite, id)
	sc.siteBlk, _ = sc.appendParents(sc.siteBlk, d, advDomain(site.Page))
}

// appendParents appends the ids in d of name (lookup's foldSite) and of
// each of its parents that is still a domain (has a dot), and returns
// name's own id too. A listed entry is a domain name (at most 253 bytes):
//
//   - of a name longer than that, only a suffix that fits can be one: the
//     walk starts at the first label that leaves one (a review: padding a
//     blocked site's subdomain past 253 bytes escaped the list; the name was
//     looked up whole only, one look-up a label would cost its length);
//   - a name with a label IDNA refuses (a_b.bücher.example) does not
//     convert to punycode as a whole: its parents are then converted one by
//     one, the last maxIDNParents of them (a review: a blocked Unicode
//     entry's subdomain escaped the list so). Each converts with an
//     allocation, so they are bounded; the ASCII walk is map look-ups only.
func (sc *Scratch) appendParents(dst []uint32, d dict, name []byte) (_ []uint32, id uint32) {
	id = sc.lookup(d, name, foldSite) // leaves the folded name in sc.buf
	if id != 0 {
		dst = append(dst, id)
	}
	if len(name) == 0 {
		return dst, id
	}
	if len(name) > maxDomainBytes {
		for i := len(name) - maxDomainBytes; i < len(name); i++ {
			if labelStart(name, i) {
				dst, _ = sc.appendParents(dst, d, name[i:])
				break
			}
		}
		return dst, id
	}
	b := sc.buf
	if !isASCII(b) { // the whole name did not convert
		n := 0
		for i := len(name) - 1; i > 0 && n < maxIDNParents; i-- {
			if labelStart(name, i) {
				n++
				if p := sc.lookup(d, name[i:], foldSite); p != 0 {
					dst = append(dst, p)
				}
			}
		}
		return dst, id
	}
	if len(b) > 4 && string(b[:4]) == "www." {
		b = b[4:]
	}
	for i := bytes.IndexByte(b, '.'); i >= 0; i = bytes.IndexByte(b, '.') {
		b = b[i+1:]
		if bytes.IndexByte(b, '.') < 0 {
			break
		}
		if p := d[string(b)]; p != 0 {
			dst = append(dst, p)
		}
	}
	return dst, id
}

// maxIDNParents bounds appendParents' conversions of a name that does not
// convert as a whole: its last 16 parents (a listed entry of more labels
// than that is not matched by such a name's subdomains).
const maxIDNParents = 16

// labelStart tells whether a label of name starts at i: after a dot, or one
// of the dots IDNA reads as one (U+3002, U+FF0E, U+FF61).
func labelStart(name []byte, i int) bool {
	if i <= 0 || i >= len(name) {
		return false
	}
	if name[i-1] == '.' {
		return true
	}
	if i < 3 {
		return false
	}
	switch string(name[i-3 : i]) {
	case "\u3002", "\uff0e", "\uff61":
		return true
	}
	return false
}

// isASCII tells whether b has no byte over 0x7f.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

var schemeSep = []byte("://")

// advDomain is the domain a badv entry names, as exchanges write it: also
// as a URL (https://acme.example/), with a port, a final dot (acme.example.)
// or spaces around it; lookup then folds the case and a leading "www.".
// Before, such an entry matched nothing, and the blocked advertiser's ad
// bid. Also scheme-relative (//acme.example) and with user information
// (http://u@acme.example), which an outside audit found let the blocked
// advertiser bid. It slices b, allocating nothing.
func advDomain(b []byte) []byte {
	b = bytes.TrimSpace(b)
	// A scheme only before any path, query or fragment: a page whose
	// query names another URL (r?u=https://x.example/) is on its own host
	// (a review: it was read as x.example's).
	if i := bytes.Index(b, schemeSep); i >= 0 && !bytes.ContainsAny(b[:i], "/?#") {
		b = b[i+len(schemeSep):]
	}
	b = bytes.TrimLeft(b, "/")
	if i := bytes.IndexAny(b, "/?#"); i >= 0 {
		b = b[:i]
	}
	if i := bytes.LastIndexByte(b, '@'); i >= 0 {
		b = b[i+1:]
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 {
		b = b[:i]
	}
	// "*.acme.example" and ".acme.example" name acme.example and its
	// subdomains, as a plain entry does (they matched nothing).
	return bytes.TrimLeft(bytes.TrimRight(b, "."), "*.")
}

// maxDomainBytes is the longest a domain name may be (RFC 1035: 253
// characters written out, in ASCII).
const maxDomainBytes = 253

// dsaRefuses tells whether a request that requires DSA transparency
// (regs.ext.dsa.dsarequired 2 or 3) refuses cc's bid: cc has none to send,
// or the publisher cannot render the notice (pubrender 0) and the bidder's
// ads do not render it either (adrender 0). An exchange drops such a bid.
func dsaRefuses(cc *ccamp, req *ortb.Request) bool {
	return req.Regs.DSARequired >= 2 && (!cc.dsa || req.Regs.DSAPubRender == 0)
}

// idnASCII is an internationalised domain name as DNS and campaign files
// write it (münchen.example as xn--mnchen-3ya.example, in lower case), so
// that a request's badv, wadomain or site domain written in Unicode matches
// a campaign's ASCII one: before, a badv of münchen.example let that
// advertiser's ad bid. Only a name with a byte over 0x7f is converted (and
// allocates); one that does not convert is returned as it is, matching
// nothing it did not match before. One longer than a DNS name may be (253
// bytes) matches nothing and is not converted: the punycode encoder's time
// grows with the square of a label's length, and a 20 KB Unicode
// site.domain cost 0.3 s a conversion (a review).
func idnASCII(b []byte) []byte {
	if len(b) > maxDomainBytes || isASCII(b) {
		return b
	}
	s, err := idna.Lookup.ToASCII(string(b))
	if err != nil {
		return b
	}
	return []byte(s)
}

// appKey is the app a bapp entry or a creative's bundle names, for
// comparison (in lower case, by the caller): the store id out of a store
// URL (Google Play's details?id=, else the URL's last path segment, the App
// Store's idNNN), and an App Store number without its "id". Exchanges write
// bapp as their publishers do; compared exactly, "com.Example.Game", the
// Play URL or "id123" let an ad for the blocked com.example.game or 123
// through.
func appKey(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if bytes.IndexByte(b, '/') >= 0 { // a URL: a bundle id has no '/'
		if i := bytes.Index(b, []byte("?id=")); i >= 0 {
			b = b[i+4:]
		} else if i := bytes.Index(b, []byte("&id=")); i >= 0 {
			b = b[i+4:]
		} else {
			if i := bytes.IndexAny(b, "?#"); i >= 0 {
				b = b[:i]
			}
			b = bytes.TrimRight(b, "/")
			b = b[bytes.LastIndexByte(b, '/')+1:]
		}
		if i := bytes.IndexAny(b, "&#"); i >= 0 {
			b = b[:i]
		}
	}
	if len(b) > 2 && (b[0]|0x20) == 'i' && (b[1]|0x20) == 'd' && allDigits(b[2:]) {
		b = b[2:]
	}
	return b
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// blockValues looks up the request's bcat and acat (in its taxonomy), badv
// and bapp, and keeps its wlang and wlangb.
func (sc *Scratch) blockValues(ix *index, req *ortb.Request) {
	sc.wlang, sc.wlangb = req.WLang, req.WLangB
	sc.hasBCat, sc.bcatTax = len(req.BCat) > 0, tax(req.CatTax)
	for _, c := range req.BCat {
		if id := sc.catID(ix, sc.bcatTax, c); id != 0 {
			sc.bcat = append(sc.bcat, id)
		}
	}
	sc.hasACat = len(req.ACat) > 0
	for _, c := range req.ACat {
		if id := sc.catID(ix, sc.bcatTax, c); id != 0 {
			sc.acat = append(sc.acat, id)
		}
	}
	for _, a := range req.BAdv {
		if id := sc.lookup(ix.adomain, advDomain(a), foldSite); id != 0 {
			sc.badv = append(sc.badv, id)
		}
	}
	for _, a := range req.BApp {
		if id := sc.lookup(ix.bundle, appKey(a), foldLower); id != 0 {
			sc.bapp = append(sc.bapp, id)
		}
	}
	// contains searches a sorted set: bapp and acat are looked up with it
	// (bcat and badv are the values intersects looks up in the creative's
	// sorted sets). In request order, a bapp of more than 8 known bundles
	// let a blocked app's ad through (TestBAppManyKnownBundles).
	slices.Sort(sc.bapp)
	slices.Sort(sc.acat)
}

// addCategory adds a request category of taxonomy t and, in IAB 1.0, its
// parent (IAB1 for IAB1-2).
func (sc *Scratch) addCategory(ix *index, d dim, t int64, c []byte) {
	c = bytes.TrimSpace(c) // for the parent's lookup too
	sc.add(d, sc.catID(ix, t, c))
	if i := bytes.IndexByte(c, '-'); t == 1 && i > 0 {
		sc.add(d, sc.lookup(ix.dicts[dCat], c[:i], foldUpper))
	}
}

// catID looks up a category of taxonomy t (catKey).
func (sc *Scratch) catID(ix *index, t int64, c []byte) uint32 {
	c = bytes.TrimSpace(c) // " IAB3 " names IAB3 (it blocked nothing)
	if t == 1 {
		return sc.lookup(ix.dicts[dCat], c, foldUpper)
	}
	if len(c) == 0 {
		return 0
	}
	sc.key = strconv.AppendInt(sc.key[:0], t, 10)
	sc.key = append(sc.key, ':')
	sc.key = append(sc.key, c...)
	return ix.dicts[dCat][string(sc.key)]
}

func (sc *Scratch) formatValues(ix *index, imp *ortb.Imp) {
	fd := ix.dicts[dFormat]
	if imp.HasBanner {
		b := &imp.Banner
		n := 0
		if b.W > 0 && b.H > 0 {
			sc.add(dFormat, sc.sizeID(fd, b.W, b.H))
			n++
		}
		for _, f := range b.Format {
			if f.W > 0 && f.H > 0 {
				sc.add(dFormat, sc.sizeID(fd, f.W, f.H))
				n++
			}
		}
		if n == 0 || len(b.Format) == 0 && b.HasRange() {
			// No size, or 2.5's range beside a preferred one: any banner
			// size may fit (bannerSize checks it).
			sc.add(dFormat, fd["b:*"])
		}
	}
	if imp.HasVideo {
		sc.add(dFormat, fd["video"])
	}
	if imp.HasNative {
		sc.add(dFormat, fd["native"])
	}
	if imp.HasAudio {
		sc.add(dFormat, fd["audio"])
	}
}

func (sc *Scratch) sizeID(fd dict, w, h int64) uint32 {
	sc.buf = append(sc.buf[:0], "b:"...)
	sc.buf = strconv.AppendInt(sc.buf, w, 10)
	sc.buf = append(sc.buf, 'x')
	sc.buf = strconv.AppendInt(sc.buf, h, 10)
	return fd[string(sc.buf)]
}

// matchCampaign checks one campaign on every dimension and appends its
// matching creatives.
func (s *Snapshot) matchCampaign(dst []Candidate, cc *ccamp, req *ortb.Request, imp *ortb.Imp, sc *Scratch) []Candidate {
	switch live := cc.active && sc.nowNanos >= cc.start && sc.nowNanos < cc.end; {
	case !sc.anyTime && !live:
		return dst
	case sc.offOnly && live && (!cc.daypart || sc.inDaypart(&s.idx, cc)):
		return dst // live at now: the caller's walk at now found nothing here
	}
	if req.Regs.COPPA == ortb.True && !cc.coppa || dsaRefuses(cc, req) {
		return dst
	}
	ix := &s.idx
	for m := cc.restricted; m != 0; m &= m - 1 {
		d := bits.TrailingZeros16(m)
		if !sc.na[d] && !intersects(ix.set(cc, d), sc.vals[d]) {
			return dst
		}
	}
	if !intersects(ix.set(cc, int(dFormat)), sc.vals[dFormat]) {
		return dst
	}
	if set := ix.set(cc, int(dInventory)); len(set) > 0 && !intersects(set, sc.vals[dInventory]) {
		return dst
	}
	if req.HasSite && sc.pageHost && cc.restricted&(1<<dSite) != 0 && !intersects(ix.set(cc, int(dSite)), sc.pageIDs) {
		return dst // the page is not on an allowed site (siteValues)
	}
	if req.HasSite && intersects(ix.set(cc, sSiteBlock), sc.siteBlk) ||
		req.HasApp && intersects(ix.set(cc, sAppBlock), sc.vals[dApp]) ||
		intersects(ix.set(cc, sCatBlock), sc.vals[dCat]) {
		return dst
	}
	if cc.off[sCatBlock] != cc.off[sCatBlock+1] && sc.otherTax(cc.catTax) {
		return dst // its block list cannot be checked against another taxonomy
	}
	if cc.rewarded != 0 && (cc.rewarded > 0) != imp.Rwdd {
		return dst
	}
	if cc.daypart && !sc.anyTime && !sc.inDaypart(ix, cc) {
		return dst
	}
	deal, first := sc.firstDeal(ix, cc)
	if deal == nil && (!cc.open || imp.PrivateAuction) {
		return dst
	}
	for ci := cc.crLo; ci < cc.crHi; ci++ {
		ccr := &ix.crs[ci]
		d, at, ok := sc.creativeDeal(ix, cc, imp, ccr.cr, deal, first)
		if !ok {
			continue
		}
		if w, h, ok := sc.creativeFits(ix, ccr, imp); ok {
			var alts uint64
			if d != nil {
				alts = sc.dealAlts(ix, cc, imp, ccr.cr, at+1)
			}
			dst = append(dst, Candidate{Campaign: cc.c, Creative: ccr.cr, Deal: d, W: w, H: h, Alts: alts})
		}
	}
	return dst
}

// firstDeal is the first of the imp's deals (request order) that campaign cc
// targets, and its index; nil if none.
func (sc *Scratch) firstDeal(ix *index, cc *ccamp) (*ortb.Deal, int) {
	for i, id := range sc.vals[dDeal] {
		if contains(ix.set(cc, int(dDeal)), id) {
			return sc.deals[i], i
		}
	}
	return nil, 0
}

// creativeDeal is the deal creative cr of campaign cc bids on for imp:
// deal (the campaign's first deal on the imp, at index first; nil for none)
// unless the deal names the advertisers it allows (2.6 wadomain) and cr's
// are not all among them; then the campaign's next deal on the imp that
// allows them, else the open auction (nil) where the campaign and the imp
// allow one. at is the deal's index among the imp's known deals (sc.deals).
// ok is false when cr can bid on none.
func (sc *Scratch) creativeDeal(ix *index, cc *ccamp, imp *ortb.Imp, cr *Creative, deal *ortb.Deal, first int) (d *ortb.Deal, at int, ok bool) {
	if deal == nil || len(deal.WADomain) == 0 || adomainsAllowed(cr.ADomain, deal.WADomain) {
		return deal, first, true
	}
	if at := sc.dealAllowing(ix, cc, cr, first+1); at >= 0 {
		return sc.deals[at], at, true
	}
	return nil, 0, cc.open && !imp.PrivateAuction
}

// dealAllowing returns the index (in sc.deals) of the first of the imp's
// deals from index from on (request order) that campaign cc targets and
// whose wadomain, if it has one, allows creative cr; -1 if none.
func (sc *Scratch) dealAllowing(ix *index, cc *ccamp, cr *Creative, from int) int {
	for i := from; i < len(sc.vals[dDeal]); i++ {
		if sc.dealTakes(ix, cc, cr, i) {
			return i
		}
	}
	return -1
}

// dealTakes says whether creative cr of campaign cc may bid on sc.deals[i]:
// the campaign targets it, and its wadomain, if it has one, allows cr.
func (sc *Scratch) dealTakes(ix *index, cc *ccamp, cr *Creative, i int) bool {
	d := sc.deals[i]
	return contains(ix.set(cc, int(dDeal)), sc.vals[dDeal][i]) && (len(d.WADomain) == 0 || adomainsAllowed(cr.ADomain, d.WADomain))
}

// dealAlts is Candidate.Alts for creative cr of campaign cc on a deal at
// index from-1 of sc.deals: the later deals dealAllowing would take, then
// the open auction where the campaign and the imp allow one.
func (sc *Scratch) dealAlts(ix *index, cc *ccamp, imp *ortb.Imp, cr *Creative, from int) uint64 {
	var alts uint64
	for i := from; i < len(sc.vals[dDeal]); i++ {
		if at := sc.dealIx[i]; at < 63 && sc.dealTakes(ix, cc, cr, i) {
			alts |= 1 << at
		}
	}
	if cc.open && !imp.PrivateAuction {
		alts |= AltOpenAuction
	}
	return alts
}

// adomainsAllowed says whether every one of a creative's advertiser
// domains is in a deal's wadomain (normWADomain has written its entries
// without what advDomain strips and a leading "www."): the same domain or a
// subdomain of one, the letter case aside. It allocates nothing.
func adomainsAllowed(ad []string, allowed [][]byte) bool {
	for _, a := range ad {
		if len(a) >= 4 && foldEqual(a[:4], []byte("www.")) {
			a = a[4:]
		}
		ok := false
		for _, w := range allowed { // normalised by normWADomain
			n := len(w)
			if n > 0 && (len(a) == n || len(a) > n && a[len(a)-n-1] == '.') && foldEqual(a[len(a)-n:], w) {
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

// foldEqual compares a and b, ASCII letters in either case.
func foldEqual(a string, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func (sc *Scratch) inDaypart(ix *index, cc *ccamp) bool {
	if sc.zoneMark[cc.zone] != sc.epoch {
		t := sc.now.In(ix.zones[cc.zone])
		sc.zoneHow[cc.zone] = int32(t.Weekday())*24 + int32(t.Hour())
		sc.zoneMark[cc.zone] = sc.epoch
	}
	how := sc.zoneHow[cc.zone]
	return cc.hours[how/24]&(1<<(how%24)) != 0
}

// creativeFits checks a creative against the imp's format and the request's
// blocks, returning the size to bid with.
func (sc *Scratch) creativeFits(ix *index, ccr *ccreative, imp *ortb.Imp) (w, h int64, ok bool) {
	if imp.Secure == ortb.True && !ccr.secure {
		return 0, 0, false
	}
	if sc.hasBCat && ccr.catTax != 0 && ccr.catTax != sc.bcatTax {
		return 0, 0, false // its categories cannot be checked against bcat's taxonomy
	}
	if sc.hasACat && !sc.catsAllowed(ix, ccr) {
		return 0, 0, false
	}
	if len(sc.bcat) > 0 && intersects(ix.arena[ccr.catOff[0]:ccr.catOff[1]], sc.bcat) ||
		len(sc.badv) > 0 && intersects(ix.arena[ccr.catOff[1]:ccr.catOff[2]], sc.badv) ||
		ccr.bundle != 0 && contains(sc.bapp, ccr.bundle) || !sc.languageAllowed(ccr.lang) {
		return 0, 0, false
	}
	cr := ccr.cr
	switch ccr.format {
	case FormatBanner:
		if !imp.HasBanner || attrBlocked(ccr.attr, imp.Banner.BAttr) || btypeBlocked(ccr.btype, imp.Banner.BType) || !mraidOK(cr, imp.Banner.API) {
			return 0, 0, false
		}
		return bannerSize(ccr.sizes, &imp.Banner, imp.Instl)
	case FormatVideo:
		v := &imp.Video
		if !imp.HasVideo || attrBlocked(ccr.attr, v.BAttr) || !mimeOK(ccr.mimes, v.MIMEs) || !deliveryOK(cr.Delivery, v.Delivery) || !apiOK(cr, v.API) ||
			!mediaFits(cr, v.MinDuration, v.MaxDuration, v.Protocols, &v.Pod) || !videoFits(cr, v) {
			return 0, 0, false
		}
		if v.W <= 0 || v.H <= 0 { // the player's size is not known whole
			if len(ccr.sizes) > 0 {
				return ccr.sizes[0].W, ccr.sizes[0].H, true
			}
			return 0, 0, true // none: the bid gives no w and h
		}
		return v.W, v.H, true
	case FormatNative:
		if !imp.HasNative || attrBlocked(ccr.attr, imp.Native.BAttr) || !cr.Native.fits(&imp.Native) {
			return 0, 0, false
		}
		return 0, 0, true
	case FormatAudio:
		a := &imp.Audio
		if !imp.HasAudio || attrBlocked(ccr.attr, a.BAttr) || !mimeOK(ccr.mimes, a.MIMEs) || !deliveryOK(cr.Delivery, a.Delivery) ||
			!mediaFits(cr, a.MinDuration, a.MaxDuration, a.Protocols, &a.Pod) {
			return 0, 0, false
		}
		return 0, 0, true
	}
	return 0, 0, false
}

// deliveryOK checks a video or audio creative's delivery methods against the
// player's (imp.video.delivery, audio.delivery): one in common, or either
// list empty (the player takes any; the creative's files do not say).
// Unread before, a progressive-only creative bid on streaming-only players
// (an outside conformance audit).
func deliveryOK(cr, imp []int64) bool {
	return len(imp) == 0 || len(cr) == 0 || anyInt(cr, imp)
}

// mediaFits checks what video and audio share: protocols (a creative whose
// protocol is unknown fits no imp that lists protocols), duration (rqddurs
// when given, else min/max; an unknown duration fits only an imp that
// constrains none; poddur bounds it too), and the creative's pod and slot
// positions. An imp that is not in a pod (no podid or slotinpod) holds one
// ad: the first and the last of its break.
func mediaFits(cr *Creative, minDur, maxDur int64, protocols []int64, p *ortb.Pod) bool {
	if len(protocols) > 0 && !anyInt(cr.Protocols, protocols) {
		return false
	}
	d := cr.Duration
	switch {
	case len(p.RqdDurs) > 0:
		if !slices.Contains(p.RqdDurs, d) || d == 0 {
			return false
		}
	case minDur > 0 && d < minDur, maxDur > 0 && (d > maxDur || d == 0):
		return false
	}
	if p.PodDur > 0 && (d > p.PodDur || d == 0) {
		return false
	}
	if len(cr.PodSeq) > 0 && !slices.Contains(cr.PodSeq, p.PodSeq) {
		return false
	}
	if len(cr.SlotInPod) > 0 && (len(p.PodID) > 0 || p.SlotInPod != 0) {
		switch p.SlotInPod {
		case 1, -1:
			return slices.Contains(cr.SlotInPod, p.SlotInPod)
		case 2: // first or last: the exchange decides which
			return len(cr.SlotInPod) == 2
		default:
			return false // any slot
		}
	}
	return true
}

// catsAllowed tells whether every category of the creative is in the
// request's acat, or in IAB 1.0 has its parent there (acat IAB7 allows
// IAB7-44). A creative without categories, or with categories in another
// taxonomy than acat's, cannot be shown to be allowed: it does not fit.
func (sc *Scratch) catsAllowed(ix *index, ccr *ccreative) bool {
	pairs := ix.arena[ccr.catOff[2]:ccr.catOff[3]]
	if len(pairs) == 0 || ccr.catTax != sc.bcatTax {
		return false
	}
	for i := 0; i < len(pairs); i += 2 {
		if !contains(sc.acat, pairs[i]) && (pairs[i+1] == 0 || !contains(sc.acat, pairs[i+1])) {
			return false
		}
	}
	return true
}

// plcmt is the imp's 2.6 video plcmt, or where it has none, what its 2.5
// placement says for sure: in-banner (2), in-article (3) and in-feed (4)
// play without video content, plcmt 4 (no content/standalone). 2.5's
// in-stream (1) covered what 2.6 splits into instream (1) and accompanying
// content (2), and its 5 interstitials (3) and floating players beside
// content (2): they stay unknown (0), so a creative that names its
// placements does not bid on them (the targeting audit: a 2.5 request
// never matched a creative with plcmt).
func plcmt(v *ortb.Video) int64 {
	if v.Plcmt != 0 {
		return v.Plcmt
	}
	if p := v.Placement; p >= 2 && p <= 4 {
		return 4
	}
	return 0
}

// videoFits checks the video placement, linearity and skippability. An imp
// that asks for linear (1) or non-linear (2) ads gets only creatives whose
// VAST is that kind (one of unknown kind fits only an imp that asks none).
func videoFits(cr *Creative, v *ortb.Video) bool {
	if len(cr.Plcmt) > 0 && !slices.Contains(cr.Plcmt, plcmt(v)) {
		return false
	}
	if v.Linearity > 0 && cr.Linearity != v.Linearity {
		return false
	}
	switch cr.Skippable {
	case 1:
		return v.Skip == ortb.True
	case -1:
		return v.Skip != ortb.True
	}
	return true
}

func anyInt(have, want []int64) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// FullScreen tells whether s is a size an interstitial imp that gives no
// size of its own may get: IAB's full-screen mobile and tablet units.
func FullScreen(s Size) bool {
	switch s {
	case Size{320, 480}, Size{480, 320}, Size{768, 1024}, Size{1024, 768}:
		return true
	}
	return false
}

func bannerSize(sizes []Size, b *ortb.Banner, instl bool) (int64, int64, bool) {
	ranged := b.HasRange()
	if b.W == 0 && b.H == 0 && len(b.Format) == 0 && !ranged {
		// The imp gives no size (a negative one is no size of ours: no
		// bid): any size, but an interstitial (full screen) gets only a
		// full-screen one (it got the first, a 320x50 banner on the IAB's
		// own sample; an outside audit).
		for _, s := range sizes {
			if !instl || FullScreen(s) {
				return s.W, s.H, true
			}
		}
		return 0, 0, false
	}
	for _, s := range sizes {
		if s.W == b.W && s.H == b.H {
			return s.W, s.H, true
		}
	}
	for _, f := range b.Format {
		for _, s := range sizes {
			if s.W == f.W && s.H == f.H {
				return s.W, s.H, true
			}
		}
	}
	if ranged && len(b.Format) == 0 {
		// OpenRTB 2.5: on an axis with a min or max, w (or h) is only the
		// preferred size and any size in the range fits; on an axis with
		// neither, w (or h) is exact when given.
		for _, s := range sizes {
			if axisFits(s.W, b.W, b.WMin, b.WMax) && axisFits(s.H, b.H, b.HMin, b.HMax) {
				return s.W, s.H, true
			}
		}
	}
	return 0, 0, false
}

// axisFits: v within [lo, hi] when either bound is set (0 is none), else
// equal to exact when that is given, else anything.
func axisFits(v, exact, lo, hi int64) bool {
	if lo <= 0 && hi <= 0 {
		return exact == 0 || v == exact // a negative size is no size of ours
	}
	return (lo <= 0 || v >= lo) && (hi <= 0 || v <= hi)
}

// languageAllowed says whether an ad in lang may run where the request
// allows the languages wlang (ISO 639-1) and wlangb (BCP 47; its primary
// subtag is compared): each list the request sends must name it, in any
// case. An ad that declares no language ("") or none to speak of ("xx") is
// not refused: the lists restrict languages, and it has none.
func (sc *Scratch) languageAllowed(lang string) bool {
	if lang == "" || lang == "xx" {
		return true
	}
	return langListed(sc.wlang, lang) && langListed(sc.wlangb, lang)
}

// langListed: an empty list allows any language.
func langListed(list [][]byte, lang string) bool {
	if len(list) == 0 {
		return true
	}
	for _, l := range list {
		if strings.EqualFold(ortb.B2S(primaryTag(bytes.TrimSpace(l))), lang) {
			return true
		}
	}
	return false
}

// btypeBlocked says whether the imp's btype blocks a creative of the banner
// ad types in mask; a creative that declares none is not blocked.
func btypeBlocked(mask uint8, btype []int64) bool {
	for _, t := range btype {
		if t >= 1 && t <= 4 && mask&(1<<t) != 0 {
			return true
		}
	}
	return false
}

func attrBlocked(attr, battr []int64) bool {
	for _, a := range attr {
		for _, b := range battr {
			if a == b {
				return true
			}
		}
	}
	return false
}

// mimeOK: an imp that lists MIME types must list one of the creative's
// (lower case), in any letter case (RFC 2045: video/MP4 is video/mp4).
func mimeOK(have []string, want [][]byte) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		w = bytes.TrimSpace(w)
		for _, h := range have {
			if strings.EqualFold(ortb.B2S(w), h) {
				return true
			}
		}
	}
	return false
}
