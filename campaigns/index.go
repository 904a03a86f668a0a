package campaigns

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The targeting index.
//
// Every targeting dimension has a dictionary (normalised value -> dense id
// from 1) and posting lists (value id -> campaigns, stored as their ranks in
// ascending order for the ranked walk, rank.go). Each active
// campaign is posted in exactly one dimension, its anchor: the restricted
// dimension it is most selective on (fewest values relative to the
// dimension's usual cardinality), among those where every request the
// campaign can match must carry one of its values. Format is always a valid
// anchor, so every campaign has one. Match looks up the request's values in
// every dimension and walks only those posting lists, so the campaigns it
// examines are the ones that name one of the request's values in their anchor
// dimension; each is then checked on every dimension with O(1) lookups into
// small sorted per-campaign id sets.

type dim uint8

const (
	dCountry dim = iota
	dRegion
	dMetro
	dCity
	dDevice
	dOS
	dLang
	dConn
	dCarrier
	dPub
	dSite
	dApp
	dCat
	dSeg
	dVenue
	dExchange
	dDeal // dimensions before dDeal are checked by ccamp.restricted (a uint16: at most 16, checked below)
	dFormat
	dInventory
	numDims
)

// ccamp.restricted has a bit for each dimension before dDeal: a 17th does
// not compile.
const _ = uint16(1 << (dDeal - 1))

// Per-campaign id sets beyond the dimensions (dDeal's slot holds the deals).
const (
	sSiteBlock = int(numDims) + iota
	sAppBlock
	sCatBlock
	numSets
)

// typicalCardinality estimates how many distinct values a dimension has in
// traffic; a campaign naming k values of a dimension matches about
// k/cardinality of requests. Used only to choose anchors.
var typicalCardinality = [numDims]float64{
	dCountry: 20, dRegion: 200, dMetro: 210, dCity: 5000, dDevice: 4, dOS: 5, dLang: 30, dConn: 5,
	dCarrier: 50, dPub: 2000, dSite: 2000, dApp: 2000, dCat: 20, dSeg: 500, dVenue: 100, dExchange: 5, dDeal: 10000,
	dFormat: 6, dInventory: 3,
}

// Inventory values: what the request is (site before app before dooh, when
// it sends more than one), or none of them.
const (
	invSite = 1
	invApp  = 2
	invDOOH = 3
	invNone = 4
)

// catKey is the dictionary key of a category of taxonomy tax: the id itself
// for IAB 1.0 (tax 1), else "tax:id".
func catKey(tax int64, c string) string {
	if tax == 1 {
		return c
	}
	return strconv.FormatInt(tax, 10) + ":" + c
}

type dict map[string]uint32

func (d dict) intern(s string) uint32 {
	if id, ok := d[s]; ok {
		return id
	}
	id := uint32(len(d) + 1)
	d[s] = id
	return id
}

type index struct {
	dicts   [numDims]dict // nil for dDevice and dInventory (ids are the values)
	adomain dict
	bundle  dict // creatives' app bundles as appKey reads them, lower case (bapp)
	// post[d][v]..post[d][v+1] bounds, in postings, the ranks of the active
	// campaigns anchored on value v of dimension d, ascending (see rank.go).
	post     [numDims][]uint32
	postings []int32
	camps    []ccamp
	crs      []ccreative // by Creative.Index
	zones    []*time.Location
	seat     []byte   // Snapshot.Seat
	arena    []uint32 // every campaign's id sets, back to back
	// siteBlocks: some campaign has a site block list (siteValues walks a
	// site's parents and its page's host only then).
	siteBlocks bool
	// siteAllows: some campaign has a site allow list (siteValues looks up
	// the page's host and its parents for it too).
	siteAllows bool
	// The ranking (rank.go): byRank[r] is the campaign index of rank r,
	// rank[ci] the rank of campaign ci; currency group g holds the ranks
	// [groupEnd[g-1], groupEnd[g]).
	byRank   []int32
	rank     []int32
	groupEnd []int32
}

// ccamp is a campaign compiled for matching.
type ccamp struct {
	c      *Campaign
	active bool
	anchor dim
	// off bounds the campaign's sorted id sets in index.arena: set i is
	// arena[off[i]:off[i+1]]; empty means unrestricted.
	off [numSets + 1]uint32
	// restricted has bit d set for every dimension d < dDeal with a set.
	restricted uint16
	group      uint16 // currency group in the ranking
	open       bool
	coppa      bool
	dsa        bool  // has DSA transparency (Campaign.DSA)
	rewarded   int8  // Targeting.Rewarded
	catTax     int64 // taxonomy of its category lists
	start      int64 // unix nanos, inclusive
	end        int64 // unix nanos, exclusive
	zone       int32
	daypart    bool
	hours      [7]uint32 // bit h set: hour h of that weekday allowed
	// crLo, crHi bound its creatives' indexes (a campaign's creatives are
	// numbered consecutively).
	crLo, crHi int32
}

// ccreative is a creative compiled for the imp's format and the request's
// blocks. It copies what Match reads so the check stays in this array.
type ccreative struct {
	cr     *Creative
	format Format
	secure bool
	catTax int64     // taxonomy of its categories; 0 when it has none
	bundle uint32    // app dictionary id of Creative.Bundle, 0 if none
	catOff [4]uint32 // arena[catOff[0]:catOff[1]] category ids with parents, then [1]:[2] adomain ids with parent domains, then [2]:[3] each category's (id, parent id or 0)
	sizes  []Size
	attr   []int64
	mimes  []string
	lang   string // Creative.Language: "" not declared
	btype  uint8  // bit t: it is banner ad type t (1..4)
}

func buildIndex(cs []*Campaign) index {
	var ix index
	for d := range ix.dicts {
		if !valueDim(dim(d)) {
			ix.dicts[d] = dict{}
		}
	}
	ix.adomain = dict{}
	ix.bundle = dict{}
	zoneIdx := map[*time.Location]int{}
	ix.camps = make([]ccamp, len(cs))
	ncr := 0
	for _, c := range cs {
		ncr += len(c.Creatives)
	}
	ix.crs = make([]ccreative, 0, ncr)
	for i, c := range cs {
		ix.camps[i] = ix.compileCampaign(c, zoneIdx)
	}
	ix.arena = slices.Clone(ix.arena) // drop the spare capacity of growing it
	ix.rankCampaigns(cs)
	ix.postAnchors()
	return ix
}

// postAnchors builds the posting lists: every active campaign under each
// value of its anchor dimension, in rank order.
func (ix *index) postAnchors() {
	total := uint32(0)
	for d := range ix.post {
		n := len(ix.dicts[d]) + 1
		switch dim(d) {
		case dDevice, dConn:
			n = 8
		case dInventory:
			n = invNone + 1
		}
		ix.post[d] = make([]uint32, n+1)
	}
	for i := range ix.camps {
		cc := &ix.camps[i]
		if cc.active {
			for _, v := range ix.set(cc, int(cc.anchor)) {
				ix.post[cc.anchor][v+1]++
			}
		}
	}
	for d := range ix.post { // counts to offsets into one shared array
		p := ix.post[d]
		for v := range p {
			total += p[v]
			p[v] = total
		}
	}
	ix.postings = make([]int32, total)
	fill := make([][]uint32, len(ix.post))
	for d := range ix.post {
		fill[d] = slices.Clone(ix.post[d])
	}
	for r, ci := range ix.byRank {
		cc := &ix.camps[ci]
		if !cc.active {
			continue
		}
		for _, v := range ix.set(cc, int(cc.anchor)) {
			ix.postings[fill[cc.anchor][v]] = int32(r)
			fill[cc.anchor][v]++
		}
	}
}

// valueDim reports a dimension whose ids are the OpenRTB values themselves
// (no dictionary).
func valueDim(d dim) bool { return d == dDevice || d == dConn || d == dInventory }

// list is the posting list of value v of dimension d (ranks, ascending).
func (ix *index) list(d dim, v uint32) []int32 {
	p := ix.post[d]
	if int(v)+1 >= len(p) {
		return nil
	}
	return ix.postings[p[v]:p[v+1]]
}

// set returns a campaign's id set i (a dimension or sSiteBlock...).
func (ix *index) set(cc *ccamp, i int) []uint32 { return ix.arena[cc.off[i]:cc.off[i+1]] }

func (ix *index) ids(d dim, vals []string) []uint32 {
	if len(vals) == 0 {
		return nil
	}
	out := make([]uint32, 0, len(vals))
	for _, v := range vals {
		out = append(out, ix.dicts[d].intern(v))
	}
	return sortIDs(out)
}

func sortIDs(s []uint32) []uint32 {
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func (ix *index) compileCampaign(c *Campaign, zoneIdx map[*time.Location]int) ccamp {
	t := &c.Targeting
	cc := ccamp{c: c, active: c.Status == StatusActive, open: t.OpenAuction, coppa: c.AllowCOPPA, dsa: c.DSA != nil,
		rewarded: t.Rewarded, catTax: t.CatTax, start: math.MinInt64, end: math.MaxInt64}
	if !c.Start.IsZero() {
		cc.start = c.Start.UnixNano()
	}
	if !c.End.IsZero() {
		cc.end = c.End.UnixNano()
	}
	var sets [numSets][]uint32
	sets[dCountry] = ix.ids(dCountry, t.Countries)
	sets[dRegion] = ix.ids(dRegion, t.Regions)
	sets[dMetro] = ix.ids(dMetro, t.Metros)
	sets[dCity] = ix.ids(dCity, t.Cities)
	sets[dDevice] = valueIDs(t.DeviceTypes)
	sets[dOS] = ix.ids(dOS, t.OS)
	sets[dLang] = ix.ids(dLang, t.Languages)
	sets[dConn] = valueIDs(t.ConnTypes)
	sets[dCarrier] = ix.ids(dCarrier, t.Carriers)
	sets[dPub] = ix.ids(dPub, t.Publishers)
	sets[dSite] = ix.ids(dSite, t.SiteAllow)
	sets[dApp] = ix.ids(dApp, t.AppAllow)
	sets[dCat] = ix.ids(dCat, catKeys(t.CatTax, t.CatAllow))
	sets[dSeg] = ix.ids(dSeg, t.Segments)
	sets[dVenue] = ix.ids(dVenue, t.VenueTypes)
	sets[dExchange] = ix.ids(dExchange, t.Exchanges)
	sets[dInventory] = inventorySet(t)
	sets[sSiteBlock] = ix.ids(dSite, t.SiteBlock)
	ix.siteBlocks = ix.siteBlocks || len(t.SiteBlock) > 0
	ix.siteAllows = ix.siteAllows || len(t.SiteAllow) > 0
	sets[sAppBlock] = ix.ids(dApp, t.AppBlock)
	sets[sCatBlock] = ix.ids(dCat, catKeys(t.CatTax, t.CatBlock))
	sets[dDeal] = ix.ids(dDeal, t.Deals)
	var formats []string
	cc.crLo, cc.crHi = int32(len(ix.crs)), int32(len(ix.crs))
	for _, cr := range c.Creatives {
		if cr.Index != len(ix.crs) {
			panic("campaigns: creatives not numbered in campaign order")
		}
		formats = append(formats, formatKeys(cr)...)
		ix.crs = append(ix.crs, ix.compileCreative(cr))
		cc.crHi++
	}
	sets[dFormat] = ix.ids(dFormat, formats)
	for i, set := range sets {
		cc.off[i] = uint32(len(ix.arena))
		ix.arena = append(ix.arena, set...)
		if i < int(dDeal) && len(set) > 0 {
			cc.restricted |= 1 << i
		}
	}
	cc.off[numSets] = uint32(len(ix.arena))
	if t.Dayparting {
		cc.daypart = true
		for d := range 7 {
			for h := range 24 {
				if t.Days[d] && t.Hours[h] {
					cc.hours[d] |= 1 << h
				}
			}
		}
	}
	z, ok := zoneIdx[c.TimeZone]
	if !ok {
		z = len(ix.zones)
		zoneIdx[c.TimeZone] = z
		ix.zones = append(ix.zones, c.TimeZone)
	}
	cc.zone = int32(z)
	cc.anchor = chooseAnchor(&sets, cc.open, t)
	return cc
}

func valueIDs(vals []int64) []uint32 {
	var out []uint32
	for _, v := range vals {
		out = append(out, uint32(v))
	}
	return sortIDs(out)
}

func catKeys(tax int64, cats []string) []string {
	if tax == 1 {
		return cats
	}
	out := make([]string, len(cats))
	for i, c := range cats {
		out[i] = catKey(tax, c)
	}
	return out
}

// inventorySet is the inventory values a campaign allows; empty when it
// allows all of them. A request with neither site, app nor dooh counts as
// inventory only for campaigns that allow both site and app (as before
// dooh existed).
func inventorySet(t *Targeting) []uint32 {
	var out []uint32
	if t.Site {
		out = append(out, invSite)
	}
	if t.App {
		out = append(out, invApp)
	}
	if t.DOOH {
		out = append(out, invDOOH)
	}
	if t.Site && t.App {
		out = append(out, invNone)
	}
	if len(out) == invNone {
		return nil
	}
	return out
}

func chooseAnchor(sets *[numSets][]uint32, open bool, t *Targeting) dim {
	best, bestScore := dFormat, float64(len(sets[dFormat]))/typicalCardinality[dFormat]
	for d := range numDims {
		switch {
		case len(sets[d]) == 0:
			continue
		case d == dDeal && open:
			continue // it also bids in the open auction, without a deal
		case d == dSite && (t.App || t.DOOH), d == dApp && (t.Site || t.DOOH), d == dVenue && (t.Site || t.App):
			continue // requests of another kind never check this list
		case d == dInventory && len(sets[d]) > 2:
			continue // site and app: every ordinary request
		}
		if s := float64(len(sets[d])) / typicalCardinality[d]; s < bestScore {
			best, bestScore = d, s
		}
	}
	return best
}

func formatKeys(cr *Creative) []string {
	switch cr.Format {
	case FormatBanner:
		keys := []string{"b:*"}
		for _, s := range cr.Sizes {
			keys = append(keys, "b:"+strconv.FormatInt(s.W, 10)+"x"+strconv.FormatInt(s.H, 10))
		}
		return keys
	case FormatVideo:
		return []string{"video"}
	case FormatNative:
		return []string{"native"}
	case FormatAudio:
		return []string{"audio"}
	}
	return nil
}

func (ix *index) compileCreative(cr *Creative) ccreative {
	cc := ccreative{cr: cr, format: cr.Format, secure: cr.Secure, sizes: cr.Sizes, attr: cr.Attr, mimes: cr.MIMEs,
		lang: cr.Language}
	for _, t := range cr.BType {
		cc.btype |= 1 << t
	}
	var cats []string
	var pairs []uint32 // per category: its id, and its IAB 1.0 parent's or 0 (acat)
	for _, c := range cr.Cat {
		if cr.CatTax != 1 {
			cats = append(cats, catKey(cr.CatTax, c))
			pairs = append(pairs, ix.dicts[dCat].intern(catKey(cr.CatTax, c)), 0)
			continue
		}
		cats = append(cats, c)
		parent := uint32(0)
		if p, _, ok := strings.Cut(c, "-"); ok {
			cats = append(cats, p)
			parent = ix.dicts[dCat].intern(p)
		}
		pairs = append(pairs, ix.dicts[dCat].intern(c), parent)
	}
	if len(cats) > 0 {
		cc.catTax = cr.CatTax
	}
	var adv []uint32
	for _, d := range cr.ADomain {
		// The domain and each parent that is still a domain (has a dot):
		// a request's badv of acme.example blocks shop.acme.example.
		for ; strings.Contains(d, "."); _, d, _ = strings.Cut(d, ".") {
			adv = append(adv, ix.adomain.intern(d))
		}
	}
	cc.catOff[0] = uint32(len(ix.arena))
	ix.arena = append(ix.arena, ix.ids(dCat, cats)...)
	cc.catOff[1] = uint32(len(ix.arena))
	ix.arena = append(ix.arena, sortIDs(adv)...)
	cc.catOff[2] = uint32(len(ix.arena))
	ix.arena = append(ix.arena, pairs...)
	cc.catOff[3] = uint32(len(ix.arena))
	if cr.Bundle != "" {
		cc.bundle = ix.bundle.intern(strings.ToLower(string(appKey([]byte(cr.Bundle)))))
	}
	return cc
}

// contains reports whether sorted set holds v.
func contains(set []uint32, v uint32) bool {
	if len(set) <= 8 {
		for _, x := range set {
			if x == v {
				return true
			}
		}
		return false
	}
	lo, hi := 0, len(set)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if set[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(set) && set[lo] == v
}

// intersects reports whether any of vals is in the sorted set.
func intersects(set, vals []uint32) bool {
	for _, v := range vals {
		if contains(set, v) {
			return true
		}
	}
	return false
}
