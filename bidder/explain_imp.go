package bidder

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// The per-imp part of POST /admin/explain: targeting verdicts, the gates
// in the ranked walk's order (collectBest), features, every model's pCTR
// and contributions, and the price step.

type explainImp struct {
	ID          string            `json:"id"`
	Skipped     string            `json:"skipped,omitempty"` // why the bid path skips the imp
	FloorMicros int64             `json:"floor_micros"`      // response currency, CPM
	Campaigns   []explainCampaign `json:"campaigns"`
	// NotExamined counts, by rule, the campaigns that share no targeting
	// value with the request (the index never looks at them); all=1 lists them.
	NotExamined map[string]int `json:"not_examined_by_rule,omitempty"`
	Winner      string         `json:"winner,omitempty"`
	Creative    string         `json:"winner_creative,omitempty"`
	PriceMicros int64          `json:"price_micros,omitempty"`
}

// explainCampaign is one campaign, or one (campaign, creative) candidate.
type explainCampaign struct {
	ID       string `json:"id"`
	Creative string `json:"creative,omitempty"`
	Deal     string `json:"deal,omitempty"`
	// Status: dropped (a targeting rule), gated (a gate before the model:
	// floor, currency, frequency cap, pacing, budget, ...; or not scored:
	// max_scored_per_imp, fixed_cpm_outbid), priced (scored and priced;
	// Rule below_floor when the price is under the floor).
	Status      string              `json:"status"`
	Rule        string              `json:"rule,omitempty"`
	Detail      string              `json:"detail,omitempty"`
	Examined    bool                `json:"examined_by_index"`
	FloorMicros int64               `json:"floor_micros,omitempty"` // response currency, CPM (the deal's when one matched)
	UpperMicros int64               `json:"upper_micros,omitempty"` // highest possible bid, response currency, CPM
	Budget      *budget.Explanation `json:"budget,omitempty"`
	Features    map[string]float32  `json:"features,omitempty"`
	PCTR        map[string]float64  `json:"pctr,omitempty"` // by model name
	// InvalidPCTR is a model's answer that is not a probability (NaN,
	// infinite, negative, over 1), as text: the bid path's chain does not
	// use a model's answer to a call with one (ctr.ErrBadOutput).
	InvalidPCTR   map[string]string          `json:"invalid_pctr,omitempty"`
	ModelUsed     string                     `json:"model_used,omitempty"`
	Contributions map[string]*explainContrib `json:"contributions,omitempty"` // by model name
	ValueMicros   float64                    `json:"value_micros,omitempty"`  // campaign currency, CPM, before shading
	Shading       *explainShading            `json:"shading,omitempty"`
	PriceMicros   int64                      `json:"price_micros,omitempty"`  // response currency, CPM
	ChargeMicros  int64                      `json:"charge_micros,omitempty"` // the hold a bid places: campaign currency, per impression
	Winner        bool                       `json:"winner,omitempty"`

	slot int // into explainRun.slots; -1 none
}

type explainContrib struct {
	Bias  float64       `json:"bias"`
	Logit float64       `json:"logit"`
	Top   []explainTerm `json:"top"`
	Error string        `json:"error,omitempty"`
}

type explainTerm struct {
	Slot         string  `json:"slot"` // feature slot name; "a*b" for a wide cross; "deep" for the deep part
	Value        float32 `json:"value"`
	Contribution float64 `json:"contribution"`
}

// explainShading is what the price step did to the value.
type explainShading struct {
	// Mode: first_price_shade (at=1, the value times Factor), learned (at=1
	// with pricing.shading on: Curve says how the price was chosen; Factor
	// is price / value), fixed_deal (a deal at 3: the bid is the deal price;
	// Factor is price / value), or none (second price: the bid is the value).
	Mode   string     `json:"mode"`
	Factor float64    `json:"factor"`
	Curve  *ShadeStep `json:"curve,omitempty"`
}

// explainSlot is a candidate the bid path would score.
type explainSlot struct {
	imp, entry int // explainRun.imps[imp].Campaigns[entry]
	sl         slot
	pctr       map[string]float32
	bad        map[string]float32 // answers outside [0, 1]
	used       string
}

type explainRun struct {
	s      *Server
	cat    *catalog
	req    *ortb.Request
	resp   []byte
	user   uint64
	priv   privacy.Decision
	opt    explainOptions
	models []explainModel
	xs     map[*ctr.Manifest]*ctr.Explainer
	rk     ranker
	draw   uint64 // the participation draw of the next bid request (bidCtx.draw)

	out   []explainImp
	slots []explainSlot
	rows  []float32
	why   reason // the first gate failure (for the no-bid reason)
}

// imps explains targeting and the gates of every imp the bid path looks at.
func (x *explainRun) imps() []explainImp {
	imps := x.req.Imps
	if len(imps) > x.s.cfg.Limits.MaxImps {
		imps = imps[:x.s.cfg.Limits.MaxImps]
	}
	for i := range imps {
		imp := &imps[i]
		ei := explainImp{ID: string(imp.ID)}
		floor, ok := x.s.rates.toResponse(imp.BidFloor, imp.BidFloorCur, x.resp)
		_, qtyOK := qtyMultiplier(imp, &x.s.cfg.Limits)
		switch {
		case len(x.req.ID) > budget.MaxTokenID || len(imp.ID) > budget.MaxTokenID:
			ei.Skipped = "request or imp id over 255 bytes"
			x.why = reasonInvalidImp
		case sharedImpID(x.req, i):
			ei.Skipped = "repeated imp id"
			x.why = reasonInvalidImp
		case x.s.pastChargeWindow(imp):
			ei.Skipped = "exp past the charge window"
			x.why = reasonImpRefused
		case x.s.insecureImp(imp):
			ei.Skipped = "secure imp, http public_url"
			x.why = reasonInsecure
		case !qtyOK:
			ei.Skipped = "qty.multiplier outside limits.min_qty..max_qty"
			x.why = reasonImpRefused
		case !ok:
			ei.Skipped = reasonCurrency.String()
			x.why = reasonCurrency
		default:
			ei.FloorMicros = floor
		}
		x.out = append(x.out, ei)
		if ei.Skipped == "" {
			x.imp(i, imp, floor)
		}
	}
	return x.out
}

// imp fills x.out[i]: the targeting verdicts, then the gates.
func (x *explainRun) imp(i int, imp *ortb.Imp, floor int64) {
	ei := &x.out[i]
	var cands []campaigns.Candidate
	examined := map[int]bool{}
	for _, v := range x.cat.snap.Explain(x.req, imp, x.opt.now, x.seat(), x.opt.ex.name) {
		if v.Rule == "" {
			cands = append(cands, v.Candidates...)
			examined[v.Campaign.Index] = v.Examined
			continue
		}
		if !v.Examined && !x.opt.all {
			if ei.NotExamined == nil {
				ei.NotExamined = map[string]int{}
			}
			ei.NotExamined[v.Rule]++
			continue
		}
		ei.Campaigns = append(ei.Campaigns, explainCampaign{ID: v.Campaign.ID, Status: "dropped", Rule: v.Rule,
			Detail: v.Detail, Examined: v.Examined, slot: -1})
	}
	// The ranked walk's order (collectAll sorts Match's candidates so).
	slices.SortFunc(cands, func(a, b campaigns.Candidate) int {
		if c := cmp.Compare(x.rk.Bound(b.Campaign.Index), x.rk.Bound(a.Campaign.Index)); c != 0 {
			return c
		}
		if c := cmp.Compare(x.cat.snap.Rank(a.Campaign), x.cat.snap.Rank(b.Campaign)); c != 0 {
			return c
		}
		return cmp.Compare(a.Creative.Index, b.Creative.Index)
	})
	x.gates(i, imp, floor, cands, examined)
}

// gates replays collectBest over the candidates: gate each, keep the first
// max_scored_per_imp that pass (at most one fixed-CPM), stop at a bound
// below every floor.
func (x *explainRun) gates(i int, imp *ortb.Imp, floor int64, cands []campaigns.Candidate, examined map[int]bool) {
	ei := &x.out[i]
	bc := &bidCtx{resp: x.resp}
	lowest := x.s.lowestFloor(bc, imp, floor)
	k := x.s.cfg.Pricing.MaxScoredPerImp
	kept, fixed, stop := 0, false, ""
	// The imp's reason replaces the request's, as collect's does: the
	// last imp with a gated candidate names it (a review: explain kept the
	// first imp's, and a multi-imp request's two answers differed).
	impWhy := reasonNone
	for _, c := range cands {
		e := explainCampaign{ID: c.Campaign.ID, Creative: c.Creative.ID, Examined: examined[c.Campaign.Index], slot: -1}
		if c.Deal != nil {
			e.Deal = string(c.Deal.ID)
		}
		switch {
		case stop != "":
			e.Status, e.Rule = "gated", stop
		case fixed && c.Campaign.Strategy.Kind == campaigns.FixedCPM:
			e.Status, e.Rule, e.Detail = "gated", "fixed_cpm_outbid", "a fixed-CPM candidate with a higher bid is scored"
		default:
			sl, r := x.gate(imp, c, floor, &e)
			if r != reasonNone {
				e.Status, e.Rule = "gated", r.String()
				impWhy = firstReason(impWhy, r)
				if r == reasonBelowFloor && (sl.upper < lowest || sl.upper <= 0) {
					stop = reasonBelowFloor.String() // every later bound is at most this one
				}
				break
			}
			sl.at(i)
			e.Status, e.slot = "priced", len(x.slots)
			x.slots = append(x.slots, explainSlot{imp: i, entry: len(ei.Campaigns), sl: sl})
			kept++
			fixed = fixed || sl.sure && impPod(imp) == nil // as collectBest: not in an ad pod
			if kept == k {
				stop = "max_scored_per_imp"
			}
		}
		ei.Campaigns = append(ei.Campaigns, e)
	}
	if impWhy != reasonNone {
		x.why = impWhy
	}
}

// gate is Server.gate with budget's side-effect-free Explain in place of
// Allow; it fills e's floor, bound and budget figures.
func (x *explainRun) gate(imp *ortb.Imp, c campaigns.Candidate, floor int64, e *explainCampaign) (slot, reason) {
	camp := c.Campaign
	if pv := x.cat.pause.Load(); pv != nil && pv.camp[camp.Index] != nil { // cat.paused without its count
		return slot{}, reasonPaused
	}
	upper := x.rk.Bound(camp.Index)
	e.UpperMicros = upper
	if upper < 0 {
		return slot{}, reasonCurrency
	}
	open, alts := floor, c.Alts != 0
	e.FloorMicros, _ = x.s.optionFloor(open, imp, &c, x.resp) // its first way's
	floor, r := x.s.reachOption(&c, open, upper, imp, x.resp)
	if alts && r != reasonNone {
		e.Detail = "no way to bid has a floor in reach: its deal, the campaign's later deals on the imp, the open auction where allowed"
	}
	switch {
	case r == reasonBelowFloor:
		return slot{upper: upper}, r
	case r != reasonNone:
		return slot{}, r
	}
	e.FloorMicros = floor
	e.dealOf(c.Deal)
	money := x.cat.money
	freqLeft := freqLeftFor(money, camp, x.user, x.opt.now)
	if freqLeft <= 0 {
		return slot{}, reasonFreqCap
	}
	maxCharge, ok := impCharge(float64(x.cat.upper[camp.Index]), imp, &x.s.cfg.Limits)
	if !ok {
		e.Detail = "imp.qty.multiplier outside limits.min_qty..max_qty"
		return slot{}, reasonImpRefused
	}
	if !qtyFor(camp, x.req, imp) {
		e.Detail = "imp.qty.multiplier other than 1, on a request that is not dooh or for a campaign that does not buy dooh inventory"
		return slot{}, reasonImpRefused
	}
	r = reasonNone
	if me, ok := money.(moneyExplainer); ok {
		be := me.explain(camp.Index, maxCharge, x.opt.now, x.draw)
		e.Budget, r = &be, decisionReason(be.Decision)
	} else {
		r = money.allow(camp.Index, maxCharge, x.opt.now, x.draw)
	}
	if r != reasonNone {
		return slot{}, r
	}
	sl := slot{cand: c, floor: floor, open: open, upper: upper, fixed: camp.Strategy.Kind == campaigns.FixedCPM, freqLeft: freqLeft}
	sl.sure = x.s.surePrice(x.req, &sl)
	return sl, reasonNone
}

// dealOf names d (nil: the open auction) as the way e bids.
func (e *explainCampaign) dealOf(d *ortb.Deal) {
	e.Deal = ""
	if d != nil {
		e.Deal = string(d.ID)
	}
}

// score writes every kept candidate's feature row (as featurize does) and
// scores all of them, in the bid path's order, with every model.
func (x *explainRun) score(sc *scorerBox) {
	if len(x.slots) == 0 {
		return
	}
	models := x.models
	if len(models) == 0 { // a server without the App's models (tests): its scorer
		models = []explainModel{{role: "chain", scorer: sc.s}}
	}
	userLevel := x.priv.Allows(privacy.Personalize)
	var base [features.Width]float32
	last := -1
	for _, es := range x.slots {
		if es.imp != last {
			features.ExtractImp(base[:], x.req, &x.req.Imps[es.imp], x.opt.now, userLevel)
			last = es.imp
		}
		x.rows = features.AppendRow(x.rows, base[:], &x.cat.ads[es.sl.cand.Creative.Index])
	}
	n := len(x.slots)
	for j := range x.slots {
		x.slots[j].pctr = map[string]float32{}
	}
	for _, m := range models {
		out := make([]float32, n)
		if err := m.scorer.Score(time.Time{}, x.rows, out); err != nil {
			continue
		}
		// As the chain (ctr.ErrBadOutput): an answer with a pCTR outside
		// [0, 1] prices nothing; the next model's is used.
		valid := ctr.ValidPCTR(out)
		for j := range x.slots {
			es := &x.slots[j]
			if !ctr.ValidPCTR(out[j : j+1]) {
				if es.bad == nil {
					es.bad = map[string]float32{}
				}
				es.bad[m.scorer.Name()] = out[j]
				continue
			}
			es.pctr[m.scorer.Name()] = out[j]
			if es.used == "" && valid {
				es.used = m.scorer.Name() // the chain's order: primary, then fallback
			}
		}
	}
	for j := range x.slots {
		x.describe(j, models)
	}
}

// describe fills a scored candidate's features, pCTRs and contributions.
func (x *explainRun) describe(j int, models []explainModel) {
	es := &x.slots[j]
	e := &x.out[es.imp].Campaigns[es.entry]
	row := x.rows[j*features.Width : (j+1)*features.Width]
	e.Features = make(map[string]float32, features.Width)
	for k, v := range row {
		e.Features[features.Slots[k].Name] = v
	}
	e.PCTR, e.ModelUsed = map[string]float64{}, es.used
	for name, p := range es.pctr {
		e.PCTR[name] = float64(p)
	}
	for name, p := range es.bad {
		if e.InvalidPCTR == nil {
			e.InvalidPCTR = map[string]string{}
		}
		e.InvalidPCTR[name] = strconv.FormatFloat(float64(p), 'g', -1, 32)
	}
	for _, m := range models {
		xp := x.xs[m.manifest]
		p, scored := es.pctr[m.scorer.Name()]
		if xp == nil || !scored {
			continue
		}
		if e.Contributions == nil {
			e.Contributions = map[string]*explainContrib{}
		}
		ec := &explainContrib{}
		e.Contributions[m.scorer.Name()] = ec
		c, err := xp.Explain(row, p)
		if err != nil {
			ec.Error = err.Error()
			continue
		}
		if !finite(c.Bias) || !finite(c.Logit) {
			// JSON has no NaN or infinity: a model whose weights hold one
			// (its pCTR can still read 1 or 0) made the whole answer fail
			// to encode, an empty 200.
			ec.Error = fmt.Sprintf("non-finite logit %v (bias %v): the model holds a NaN or infinite weight for this row", c.Logit, c.Bias)
			continue
		}
		ec.Bias, ec.Logit = c.Bias, c.Logit
		for _, t := range c.Top(x.opt.top) {
			ec.Top = append(ec.Top, explainTerm{Slot: termName(t), Value: t.Value, Contribution: t.Logit})
		}
	}
}

func termName(t ctr.Contribution) string {
	switch {
	case t.Slot < 0:
		return "deep"
	case t.Slot2 >= 0:
		return features.Slots[t.Slot].Name + "*" + features.Slots[t.Slot2].Name
	}
	return features.Slots[t.Slot].Name
}

// shading is what the price step multiplies sl's value by without learned
// shading: in a first-price auction (at=1, or its deal's at: slot.firstPrice)
// pricing.first_price_shade, else nothing (second price: the bid is the
// value).
func (x *explainRun) shading(sl *slot) explainShading {
	if sl.firstPrice(x.req) {
		return explainShading{Mode: "first_price_shade", Factor: x.s.cfg.Pricing.FirstPriceShade}
	}
	return explainShading{Mode: "none", Factor: 1}
}

// winsBefore counts the imps before imp i that campaign id wins (bidsBefore).
func (x *explainRun) winsBefore(i int, id string) int64 {
	n := int64(0)
	for j := 0; j < i && j < len(x.out); j++ {
		if x.out[j].Winner == id {
			n++
		}
	}
	return n
}

// price replays Server.price: value, shading, conversion, floor, the best
// per imp. It places no hold. It returns whether the dry run bids and, if
// not, why.
func (x *explainRun) price() (bool, string) {
	bc := x.shadeCtx()
	var win []int // per imp, the slot it bids so far (-1: none), for podRefuses
	for j := range x.slots {
		es := &x.slots[j]
		e := &x.out[es.imp].Campaigns[es.entry]
		p32, ok := es.pctr[es.used]
		if !ok {
			e.Status, e.Rule = "gated", reasonModelError.String()
			continue
		}
		camp := es.sl.cand.Campaign
		if es.sl.freqLeft != math.MaxInt64 && x.winsBefore(es.imp, camp.ID) >= es.sl.freqLeft {
			e.Status, e.Rule = "gated", reasonFreqCap.String()
			e.Detail = "earlier imps of the request bid it as often as the user may still see it"
			continue
		}
		e.ValueMicros = camp.ValueMicros(p32)
		p, v, ok := x.priceSlot(bc, j, e)
		for !ok && x.s.nextOption(&es.sl, &x.req.Imps[es.imp], x.resp) {
			// Under its deal's floor: the next deal, or the open auction.
			if bc != nil {
				bc.slots[j] = es.sl
			}
			e.dealOf(es.sl.cand.Deal)
			e.FloorMicros = es.sl.floor
			p, v, ok = x.priceSlot(bc, j, e)
		}
		e.PriceMicros = p
		if !ok {
			e.Rule = reasonBelowFloor.String()
			continue
		}
		if e.ChargeMicros, ok = impCharge(v, &x.req.Imps[es.sl.imp], &x.s.cfg.Limits); !ok {
			e.Rule, e.Detail = reasonImpRefused.String(), "the charge times imp.qty.multiplier overflows"
			continue
		}
		ei := &x.out[es.imp]
		if ei.Winner != "" && p <= ei.PriceMicros {
			continue
		}
		if x.podRefuses(es.imp, es.sl.cand.Creative, win) {
			e.Detail = "its ad pod refuses it: an earlier imp of the pod bids this creative, or it overruns the pod's poddur or maxseq"
			continue
		}
		ei.Winner, ei.Creative, ei.PriceMicros = camp.ID, es.sl.cand.Creative.ID, p
		for len(win) <= es.imp {
			win = append(win, -1)
		}
		win[es.imp] = j
	}
	bid := false
	for i := range x.out {
		ei := &x.out[i]
		for k := range ei.Campaigns {
			if e := &ei.Campaigns[k]; e.slot >= 0 && e.ID == ei.Winner && e.Creative == ei.Creative {
				e.Winner = true
				break
			}
		}
		bid = bid || ei.Winner != ""
	}
	switch {
	case bid:
		return true, ""
	case len(x.slots) > 0:
		return false, reasonBelowFloor.String()
	case x.why != reasonNone:
		return false, x.why.String()
	}
	return false, reasonNoMatch.String()
}

// podRefuses replays bidCtx.podRefuses over the winners chosen so far (win:
// per imp, its winning slot or -1): imp i's pod refuses creative cr when an
// earlier imp of the same pod bids it, or when it would overrun a dynamic
// pod's poddur or maxseq.
func (x *explainRun) podRefuses(i int, cr *campaigns.Creative, win []int) bool {
	return podRefuses(x.req.Imps, i, cr, explainWins{x, win})
}

// explainWins is explain's winners so far: win[j] indexes x.slots, -1 none.
type explainWins struct {
	x   *explainRun
	win []int
}

func (w explainWins) podWinner(j int) *campaigns.Creative {
	if j >= len(w.win) || w.win[j] < 0 {
		return nil
	}
	return w.x.slots[w.win[j]].sl.cand.Creative
}

// String lists an answer's imps briefly (logs, test failures).
func (a *explainAnswer) String() string {
	var b strings.Builder
	for _, ei := range a.Imps {
		b.WriteString("imp " + ei.ID + ":")
		for _, e := range ei.Campaigns {
			b.WriteString(" " + e.ID + "=" + e.Status)
			if e.Rule != "" {
				b.WriteString("(" + e.Rule + ")")
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}

// shadeCtx is a bid context holding the run's scored slots, for the bid
// path's shading (shade.go) to price them as it would, or nil when
// pricing.shading is off (Server.learns says which slots learn).
func (x *explainRun) shadeCtx() *bidCtx {
	if x.s.shade == nil {
		return nil
	}
	bc := &bidCtx{req: *x.req, resp: x.resp, ex: x.opt.ex}
	for j := range x.slots {
		es := &x.slots[j]
		bc.slots = append(bc.slots, es.sl)
		bc.pctr = append(bc.pctr, es.pctr[es.used])
	}
	return bc
}

// priceSlot is Server.priceSlot for x.slots[j], with e's shading figures
// (bc: shadeCtx, nil without learned shading).
func (x *explainRun) priceSlot(bc *bidCtx, j int, e *explainCampaign) (p int64, v float64, ok bool) {
	es := &x.slots[j]
	camp := es.sl.cand.Campaign
	sh := x.shading(&es.sl)
	e.Shading = &sh
	switch {
	case es.sl.fixedDeal():
		p, v, ok = x.s.fixedDealPrice(camp, e.ValueMicros, es.sl.floor, x.resp)
		e.Shading = &explainShading{Mode: "fixed_deal", Factor: 1}
	case bc != nil && x.s.learns(bc, &es.sl):
		st := x.s.explainShade(bc, j)
		p, v, ok = x.s.shadedPrice(bc, j, -1)
		e.Shading = &explainShading{Mode: "learned", Curve: &st}
	default:
		v = e.ValueMicros * sh.Factor
		p, ok = x.s.rates.convertMicros(int64(v), camp.Currency, x.resp)
		return p, v, ok && p >= es.sl.floor && p > 0
	}
	if e.ValueMicros > 0 {
		e.Shading.Factor = v / e.ValueMicros
	}
	return p, v, ok
}

// seat is the buyer seat the request's exchange bids with, as the bid path
// sets Scratch.Seat; nil: the snapshot's.
func (x *explainRun) seat() []byte {
	if x.opt.ex.seatOwn {
		return x.opt.ex.seat
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
