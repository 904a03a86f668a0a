package campaigns

import (
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// Targeting explanations: for one imp of a request, every campaign of the
// snapshot with the first rule that excluded it, in the order Match checks
// them, or its eligible candidates. It is built on Match's own pieces (the
// request's values, the per-campaign id sets, matchCampaign itself for the
// eligible ones) and is for operators (POST /admin/explain): it allocates,
// walks every campaign, and is never on the bid path.

// Rule names of a Verdict, besides the targeting dimensions' (dimRule).
const (
	RuleSeat       = "seat"           // the request's wseat/bseat exclude the bidder's seat
	RuleStatus     = "status"         // paused
	RuleFlight     = "flight"         // outside its start/end
	RuleCOPPA      = "coppa"          // a COPPA request and the campaign does not allow it
	RuleDSA        = "dsa"            // the request requires DSA transparency the campaign cannot give
	RuleSiteBlock  = "site_block"     // the site is on its block list
	RuleAppBlock   = "app_block"      // the app is on its block list
	RuleCatBlock   = "category_block" // a request category is on its block list
	RuleDayparting = "dayparting"     // outside its days and hours (its time zone)
	RuleRewarded   = "rewarded"       // the imp's rwdd is not what the campaign wants
	RuleCreative   = "creative"       // no creative passes the imp and the request's blocks
	RuleOther      = "other"          // excluded by a check this explanation does not name (a bug: see TestExplainAgreesWithMatch)
)

// dimRule names each targeting dimension as a rule. A dimension without a
// name here is reported as "dimension N" (TestExplainNamesEveryDimension).
var dimRule = [numDims]string{
	dCountry: "country", dRegion: "region", dDevice: "device_type", dOS: "os", dPub: "publisher",
	dSite: "site", dApp: "app", dCat: "category", dSeg: "segments", dDeal: "deal", dFormat: "format",
	dInventory: "inventory", dMetro: "metro", dCity: "city", dLang: "language", dConn: "connection_type",
	dCarrier: "carrier", dVenue: "venue_type", dExchange: "exchange",
}

func ruleOf(d dim) string {
	if int(d) < len(dimRule) && dimRule[d] != "" {
		return dimRule[d]
	}
	return "dimension " + strconv.Itoa(int(d))
}

// Verdict is one campaign's targeting outcome for one imp.
type Verdict struct {
	Campaign *Campaign
	// Rule is the first rule that excluded the campaign; "" when eligible.
	Rule string
	// Detail says what the rule wanted (the campaign's values, the
	// creatives' reasons), briefly.
	Detail string
	// Examined: Match looks at this campaign for this imp (it is posted
	// under one of the request's values); the others cannot match.
	Examined bool
	// Candidates are its eligible (creative) candidates, as Match returns
	// them; empty unless Rule is "".
	Candidates []Candidate
}

// Explain returns a Verdict for every campaign of the snapshot, in
// snapshot order, for imp of req at time now. seat is the buyer seat to
// check wseat, bseat and deal wseat against, as Scratch.Seat; nil: the
// snapshot's. exchange is the request's exchange, as Scratch.Exchange.
func (s *Snapshot) Explain(req *ortb.Request, imp *ortb.Imp, now time.Time, seat, exchange []byte) []Verdict {
	ix := &s.idx
	out := make([]Verdict, len(ix.camps))
	sc := Scratch{Seat: seat, Exchange: exchange}
	if !seatAllowed(req.WSeat, req.BSeat, sc.seat(ix)) {
		for i := range ix.camps {
			out[i] = Verdict{Campaign: ix.camps[i].c, Rule: RuleSeat, Detail: "seat " + strconv.Quote(string(sc.seat(ix)))}
		}
		return out
	}
	s.Match(nil, req, imp, now, &sc) // marks the campaigns it examines, and leaves the request's values in sc
	names := reverseDicts(ix)
	for i := range ix.camps {
		cc := &ix.camps[i]
		v := Verdict{Campaign: cc.c, Examined: sc.seen[i] == sc.epoch}
		if v.Candidates = s.matchCampaign(nil, cc, req, imp, &sc); len(v.Candidates) == 0 {
			v.Rule, v.Detail = s.why(cc, req, imp, &sc, names)
			if v.Rule == "" {
				v.Rule = RuleOther
			}
		}
		out[i] = v
	}
	return out
}

// why names the first check of matchCampaign that cc fails, in its order;
// "" when it fails none.
func (s *Snapshot) why(cc *ccamp, req *ortb.Request, imp *ortb.Imp, sc *Scratch, names *[numDims][]string) (string, string) {
	ix := &s.idx
	switch {
	case !cc.active:
		return RuleStatus, cc.c.Status.String()
	case sc.nowNanos < cc.start || sc.nowNanos >= cc.end:
		return RuleFlight, flightDetail(cc.c)
	case req.Regs.COPPA == ortb.True && !cc.coppa:
		return RuleCOPPA, "allow_coppa is false"
	case dsaRefuses(cc, req) && !cc.dsa:
		return RuleDSA, "the request requires DSA transparency (regs.ext.dsa.dsarequired " + strconv.Itoa(int(req.Regs.DSARequired)) + ") and the campaign has no dsa"
	case dsaRefuses(cc, req):
		return RuleDSA, "the request requires DSA transparency and the publisher cannot render it (pubrender 0); the bidder's ads do not render it either"
	}
	for m := cc.restricted; m != 0; m &= m - 1 {
		d := bits.TrailingZeros16(m)
		if !sc.na[d] && !intersects(ix.set(cc, d), sc.vals[d]) {
			return ruleOf(dim(d)), "wants " + setNames(names, dim(d), ix.set(cc, d))
		}
	}
	if !intersects(ix.set(cc, int(dFormat)), sc.vals[dFormat]) {
		return ruleOf(dFormat), "has " + setNames(names, dFormat, ix.set(cc, int(dFormat)))
	}
	if set := ix.set(cc, int(dInventory)); len(set) > 0 && !intersects(set, sc.vals[dInventory]) {
		return ruleOf(dInventory), "wants " + setNames(names, dInventory, set)
	}
	if req.HasSite && sc.pageHost && cc.restricted&(1<<dSite) != 0 && !intersects(ix.set(cc, int(dSite)), sc.pageIDs) {
		return ruleOf(dSite), "wants " + setNames(names, dSite, ix.set(cc, int(dSite))) + " (site.page is on another site)"
	}
	switch {
	case req.HasSite && intersects(ix.set(cc, sSiteBlock), sc.siteBlk):
		return RuleSiteBlock, "blocks " + setNames(names, dSite, ix.set(cc, sSiteBlock))
	case req.HasApp && intersects(ix.set(cc, sAppBlock), sc.vals[dApp]):
		return RuleAppBlock, "blocks " + setNames(names, dApp, ix.set(cc, sAppBlock))
	case intersects(ix.set(cc, sCatBlock), sc.vals[dCat]):
		return RuleCatBlock, "blocks " + setNames(names, dCat, ix.set(cc, sCatBlock))
	case cc.off[sCatBlock] != cc.off[sCatBlock+1] && sc.otherTax(cc.catTax):
		return RuleCatBlock, "its block list is in another taxonomy (cattax " + strconv.Itoa(int(cc.catTax)) + ")"
	case cc.rewarded != 0 && (cc.rewarded > 0) != imp.Rwdd:
		if cc.rewarded > 0 {
			return RuleRewarded, "wants rewarded inventory"
		}
		return RuleRewarded, "wants inventory that is not rewarded"
	case cc.daypart && !sc.inDaypart(ix, cc):
		return RuleDayparting, "not at " + sc.now.In(ix.zones[cc.zone]).Format("Mon 15:04 MST")
	}
	deal, first := sc.firstDeal(ix, cc)
	if deal == nil && (!cc.open || imp.PrivateAuction) {
		if imp.PrivateAuction {
			return ruleOf(dDeal), "private auction: none of the imp's deals is the campaign's"
		}
		return ruleOf(dDeal), "deals only: wants " + setNames(names, dDeal, ix.set(cc, int(dDeal)))
	}
	var why []string
	for ci := cc.crLo; ci < cc.crHi; ci++ {
		ccr := &ix.crs[ci]
		if _, _, ok := sc.creativeDeal(ix, cc, imp, ccr.cr, deal, first); !ok {
			why = append(why, ccr.cr.ID+": its adomain is not in the wadomain of any of the campaign's deals on the imp")
			continue
		}
		r := sc.creativeWhy(ix, ccr, imp)
		if r == "" {
			return "", ""
		}
		why = append(why, ccr.cr.ID+": "+r)
	}
	return RuleCreative, strings.Join(why, "; ")
}

// creativeWhy is creativeFits' reason: the first check the creative fails,
// "" when it fits.
func (sc *Scratch) creativeWhy(ix *index, ccr *ccreative, imp *ortb.Imp) string {
	if _, _, ok := sc.creativeFits(ix, ccr, imp); ok {
		return ""
	}
	switch {
	case imp.Secure == ortb.True && !ccr.secure:
		return "not secure"
	case sc.hasBCat && ccr.catTax != 0 && ccr.catTax != sc.bcatTax:
		return "categories in another taxonomy than bcat's"
	case sc.hasACat && !sc.catsAllowed(ix, ccr):
		return "acat"
	case len(sc.bcat) > 0 && intersects(ix.arena[ccr.catOff[0]:ccr.catOff[1]], sc.bcat):
		return "bcat"
	case len(sc.badv) > 0 && intersects(ix.arena[ccr.catOff[1]:ccr.catOff[2]], sc.badv):
		return "badv"
	case ccr.bundle != 0 && contains(sc.bapp, ccr.bundle):
		return "bapp"
	case !sc.languageAllowed(ccr.lang):
		return "language " + ccr.lang + " not in wlang/wlangb"
	}
	var battr []int64
	switch ccr.format {
	case FormatBanner:
		if !imp.HasBanner {
			return "format " + ccr.format.String()
		}
		battr = imp.Banner.BAttr
	case FormatVideo:
		if !imp.HasVideo {
			return "format " + ccr.format.String()
		}
		battr = imp.Video.BAttr
	case FormatNative:
		if !imp.HasNative {
			return "format " + ccr.format.String()
		}
		battr = imp.Native.BAttr
	case FormatAudio:
		if !imp.HasAudio {
			return "format " + ccr.format.String()
		}
		battr = imp.Audio.BAttr
	}
	switch {
	case attrBlocked(ccr.attr, battr):
		return "battr"
	case ccr.format == FormatBanner && btypeBlocked(ccr.btype, imp.Banner.BType):
		return "btype"
	case ccr.format == FormatBanner && !mraidOK(ccr.cr, imp.Banner.API):
		return "api"
	case ccr.format == FormatBanner:
		return "size"
	case ccr.format == FormatVideo && !mimeOK(ccr.mimes, imp.Video.MIMEs),
		ccr.format == FormatAudio && !mimeOK(ccr.mimes, imp.Audio.MIMEs):
		return "mimes"
	case ccr.format == FormatVideo && !deliveryOK(ccr.cr.Delivery, imp.Video.Delivery),
		ccr.format == FormatAudio && !deliveryOK(ccr.cr.Delivery, imp.Audio.Delivery):
		return "delivery"
	case ccr.format == FormatVideo && !apiOK(ccr.cr, imp.Video.API):
		return "api"
	case ccr.format == FormatVideo && !mediaFits(ccr.cr, imp.Video.MinDuration, imp.Video.MaxDuration, imp.Video.Protocols, &imp.Video.Pod),
		ccr.format == FormatAudio && !mediaFits(ccr.cr, imp.Audio.MinDuration, imp.Audio.MaxDuration, imp.Audio.Protocols, &imp.Audio.Pod):
		return "protocol, duration or pod position"
	case ccr.format == FormatVideo:
		return "video placement, linearity or skip"
	case ccr.format == FormatNative:
		return "native assets"
	}
	return "does not fit"
}

func flightDetail(c *Campaign) string {
	var b strings.Builder
	if !c.Start.IsZero() {
		b.WriteString("starts " + c.Start.UTC().Format(time.RFC3339))
	}
	if !c.End.IsZero() {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString("ends " + c.End.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// reverseDicts maps every dimension's ids back to their values.
func reverseDicts(ix *index) *[numDims][]string {
	var names [numDims][]string
	for d, dict := range ix.dicts {
		names[d] = make([]string, len(dict)+1)
		for v, id := range dict {
			names[d][id] = v
		}
	}
	return &names
}

// setNames lists a campaign's id set of dimension d as values (at most 12).
func setNames(names *[numDims][]string, d dim, set []uint32) string {
	vals := make([]string, 0, len(set))
	for _, id := range set {
		switch {
		case d == dInventory && id == invSite:
			vals = append(vals, "site")
		case d == dInventory && id == invApp:
			vals = append(vals, "app")
		case int(id) < len(names[d]) && names[d][id] != "":
			vals = append(vals, names[d][id])
		default:
			vals = append(vals, strconv.Itoa(int(id)))
		}
	}
	sort.Strings(vals)
	if len(vals) > 12 {
		vals = append(vals[:12], "...")
	}
	return "[" + strings.Join(vals, " ") + "]"
}
