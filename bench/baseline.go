package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prebid/openrtb/v20/adcom1"
	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/privacy"
)

// Baseline is the bid path written the obvious way, to measure the bidder
// against: net/http, io.ReadAll, encoding/json into openrtb2.BidRequest,
// targeting by looping over every campaign (baseline_match.go), features
// through an allocating conversion to ortb.Request (baseline_view.go), the
// same scorer, the same pricing and budget calls as the bidder
// (bidder/bid.go), and json.Marshal of an openrtb2.BidResponse with the same
// bid fields, signed notice URLs and ad markup.
//
// Left out, as the bidder's benchmarks do not exercise them: gzip request
// bodies, the x-openrtb-version header, notice and health endpoints,
// metrics and model monitoring, and trimming candidates to fit a short
// deadline (bidder fitSlack; with its budget the baseline never needs it).
type Baseline struct {
	cfg   BaselineConfig
	priv  *privacy.Policy   // uncached: decodes each consent string, as a plain implementation would
	accts []*budget.Account // by campaign index
	ads   []features.Ad     // by creative index
	seq   atomic.Uint64
	draws atomic.Uint64 // numbers the auctions: each campaign's one pacing draw for it, as the bidder's (budget.Manager.AllowDraw)
}

// BaselineConfig mirrors the bidder's configuration; zero fields take the
// bidder's defaults.
type BaselineConfig struct {
	Campaigns  *campaigns.Snapshot
	Scorer     ctr.Scorer
	Budget     *budget.Manager // campaigns already set (bidder.NewServer does it)
	NoticeKey  []byte
	Seat       string
	InstanceID string
	PublicURL  string
	Base       string             // currency (default USD)
	Rates      map[string]float64 // units of Base per unit

	MaxScoredPerImp int           // default 8
	MaxImps         int           // default 16
	MaxBodyBytes    int64         // default 256 KiB
	FirstPriceShade float64       // default 1
	InternalBudget  time.Duration // default 8ms
	NetworkMargin   time.Duration // default 15ms
	DefaultTMax     time.Duration // default 100ms
	MinSlack        time.Duration // default 1ms
	TokenTTL        time.Duration // default 24h
	// MaxExp is the longest imp.exp bid on (default 2m: the bidder's
	// hold_ttl, under its token_ttl and dedup windows); MinQty and MaxQty
	// bound imp.qty.multiplier (default 0.01 and 1000).
	MaxExp          time.Duration
	MinQty, MaxQty  float64
	PrivacyVendorID int  // privacy.vendor_id (default 0: none)
	RevealPCTR      bool // pricing.reveal_pctr: bid.ext.pctr (default false, as the bidder)
}

// NewBaseline builds the baseline handler.
func NewBaseline(c BaselineConfig) (*Baseline, error) {
	if c.Campaigns == nil || c.Scorer == nil || c.Budget == nil || len(c.NoticeKey) == 0 {
		return nil, errors.New("bench: baseline needs campaigns, a scorer, a budget manager and a notice key")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Base == "" {
		c.Base = "USD"
	}
	if c.MaxScoredPerImp == 0 {
		c.MaxScoredPerImp = 8
	}
	if c.MaxImps == 0 {
		c.MaxImps = 16
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 256 << 10
	}
	if c.FirstPriceShade == 0 {
		c.FirstPriceShade = 1
	}
	def(&c.InternalBudget, 8*time.Millisecond)
	def(&c.NetworkMargin, 15*time.Millisecond)
	def(&c.DefaultTMax, 100*time.Millisecond)
	def(&c.MinSlack, time.Millisecond)
	def(&c.TokenTTL, 24*time.Hour)
	def(&c.MaxExp, 2*time.Minute)
	if c.MinQty == 0 {
		c.MinQty = 0.01
	}
	if c.MaxQty == 0 {
		c.MaxQty = 1000
	}
	priv, err := privacy.New(privacy.Options{VendorID: c.PrivacyVendorID, CacheEntries: -1})
	if err != nil {
		return nil, err
	}
	b := &Baseline{cfg: c, priv: priv, accts: make([]*budget.Account, len(c.Campaigns.Campaigns)), ads: make([]features.Ad, len(c.Campaigns.Creatives))}
	for _, camp := range c.Campaigns.Campaigns {
		if b.accts[camp.Index] = c.Budget.Handle(camp.ID); b.accts[camp.Index] == nil {
			return nil, fmt.Errorf("bench: budget has no account for campaign %q", camp.ID)
		}
	}
	for _, cr := range c.Campaigns.Creatives {
		var w, h int64
		if len(cr.Sizes) > 0 {
			w, h = cr.Sizes[0].W, cr.Sizes[0].H
		}
		b.ads[cr.Index] = features.NewAd(cr.Campaign.ID, cr.ID, cr.Campaign.Advertiser, cr.MType(), int(w), int(h))
	}
	return b, nil
}

// ServeHTTP answers POST /openrtb2/bid: 200 with a BidResponse, 204 with an
// x-nobid-reason header, or 400/405/413.
func (b *Baseline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/openrtb2/bid" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	arrival := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var br openrtb2.BidRequest
	if err := json.Unmarshal(body, &br); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := validate(&br); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a := b.Auction(&br, arrival)
	if a.NoBid != "" {
		w.Header().Set("x-nobid-reason", a.NoBid)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out, err := json.Marshal(a.Response)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

// sharedImp reports whether another imp of imps has imps[i]'s id.
func sharedImp(imps []openrtb2.Imp, i int) bool {
	for j := range imps {
		if j != i && imps[j].ID == imps[i].ID {
			return true
		}
	}
	return false
}

func validate(br *openrtb2.BidRequest) error {
	if br.ID == "" {
		return errors.New("id: missing or empty")
	}
	if len(br.Imp) == 0 {
		return errors.New("imp: missing or empty")
	}
	for i := range br.Imp {
		if br.Imp[i].ID == "" {
			return fmt.Errorf("imp[%d].id: missing or empty", i)
		}
	}
	if (br.Site != nil && br.App != nil) || (br.Site != nil || br.App != nil) && br.DOOH != nil {
		return errors.New("site, app, dooh: more than one present")
	}
	return nil
}

// Slot is one scored candidate.
type Slot struct {
	Candidate
	Imp    int
	Floor  int64 // response-currency CPM micros
	Open   int64 // the imp's open-auction floor, response-currency CPM micros
	Upper  int64 // most it can bid, response-currency CPM micros
	Sure   bool  // fixed CPM, its price sure to clear its floor
	PCTR   float32
	Price  int64 // response-currency CPM micros; 0 when under the floor
	Charge int64 // campaign-currency micros per impression
	Hold   budget.HoldID
	// FreqLeft is how many more impressions of the campaign the user may
	// see (math.MaxInt64 without a cap).
	FreqLeft int64
}

// Auction is the outcome of one request.
type Auction struct {
	Slots    []Slot // scored candidates, by imp
	Winners  []int  // per imp: index into Slots, -1 none
	Response *openrtb2.BidResponse
	NoBid    string // the bidder's no-bid reason name; "" when Response is set
	user     uint64 // frequency-cap key; 0 unknown
	test     bool   // test mode (test=1): the bidder holds nothing and counts no bid against a cap
}

// Auction runs targeting, gating, scoring, pricing and holds for a decoded
// request, as bidder.Server.bid does.
func (b *Baseline) Auction(br *openrtb2.BidRequest, arrival time.Time) *Auction {
	a := &Auction{}
	deadline := b.deadline(br, arrival)
	if time.Until(deadline) < b.cfg.MinSlack {
		a.NoBid = "tmax"
		return a
	}
	resp, ok := b.responseCurrency(br)
	if !ok {
		a.NoBid = "currency"
		return a
	}
	view := toView(br)
	priv := b.priv.Decide(view)
	if priv.NoBid {
		a.NoBid = "privacy" // privacy.require_purpose2, as the bidder
		return a
	}
	userLevel := priv.Allows(privacy.Personalize)
	if !userLevel {
		view.DropUserLevel() // as the bidder: no segments, no user.geo
	}
	user := uint64(0)
	if priv.Allows(privacy.FreqCap) {
		user = view.UserKey()
	}
	a.user, a.test = user, br.Test == 1
	facts := newFacts(br, arrival, userLevel)
	draw := b.draws.Add(1)
	why := "no_campaign"
	matched := false
	var rows []float32
	base := make([]float32, features.Width)
	for i := range br.Imp[:min(len(br.Imp), b.cfg.MaxImps)] {
		imp := &br.Imp[i]
		if len(br.ID) > budget.MaxTokenID || len(imp.ID) > budget.MaxTokenID || sharedImp(br.Imp, i) {
			// As the bidder: an id a token cannot carry, an impid naming
			// two imps: an invalid request (nbr 2).
			why = "invalid_imp"
			continue
		}
		if imp.Exp > int64(b.cfg.MaxExp/time.Second) || !b.qtyInLimits(imp) {
			// As the bidder: an exp its bill may come after, an absurd
			// multiplier: no campaign may bid on it.
			why = "imp_refused"
			continue
		}
		floor, ok := b.toResponse(imp.BidFloor, imp.BidFloorCur, resp)
		if !ok {
			why = "currency"
			continue
		}
		first := len(a.Slots)
		cands := b.match(nil, facts, imp)
		matched = matched || len(cands) > 0
		for _, c := range cands {
			sl, r := b.gate(c, imp, br.AT, br.DOOH != nil, floor, resp, user, arrival, draw)
			if r != "" {
				why = r
				continue
			}
			sl.Imp = i
			sl.Sure = sl.Sure && sl.FreqLeft > int64(i) // earlier imps may use up its cap (the bidder's slot.at)
			a.Slots = keepBest(a.Slots, first, b.cfg.MaxScoredPerImp, sl, podOf(imp) == "")
		}
		if len(a.Slots) == first {
			continue
		}
		features.ExtractImp(base, view, &view.Imps[i], arrival, userLevel)
		for j := first; j < len(a.Slots); j++ {
			rows = features.AppendRow(rows, base, &b.ads[a.Slots[j].Creative.Index])
		}
	}
	if matched || b.targeted(facts) {
		b.cfg.Budget.ObserveRequest(arrival) // the pacing forecast, as the bidder's
	}
	if len(a.Slots) == 0 {
		a.NoBid = why
		return a
	}
	pctr := make([]float32, len(a.Slots))
	if err := b.cfg.Scorer.Score(deadline, rows, pctr); err != nil {
		a.NoBid = "model_error"
		if errors.Is(err, ctr.ErrDeadline) {
			a.NoBid = "deadline"
		}
		return a
	}
	for i := range a.Slots {
		a.Slots[i].PCTR = pctr[i]
	}
	if r := b.price(a, br, resp, arrival); r != "" {
		a.NoBid = r
		return a
	}
	a.Response = b.response(a, br, resp, user, arrival)
	return a
}

func (b *Baseline) deadline(br *openrtb2.BidRequest, arrival time.Time) time.Time {
	d := arrival.Add(b.cfg.InternalBudget)
	tmax := b.cfg.DefaultTMax
	if br.TMax > 0 {
		tmax = time.Duration(br.TMax) * time.Millisecond
	}
	if t := arrival.Add(tmax - b.cfg.NetworkMargin); t.Before(d) {
		d = t
	}
	return d
}

// gate checks floor, frequency cap and budget before any model time is spent.
// A candidate whose deal's floor is out of reach takes its next way to bid
// (wayFloor), as the bidder's reachOption.
func (b *Baseline) gate(c Candidate, imp *openrtb2.Imp, reqAT int64, dooh bool, floor int64, resp string, user uint64, now time.Time, draw uint64) (Slot, string) {
	camp := c.Campaign
	up := camp.UpperMicros()
	upper, ok := b.convert(up, camp.Currency, resp)
	if !ok {
		return Slot{}, "currency"
	}
	open := floor
	floor, why := b.reach(&c, imp, open, upper, resp)
	if why != "" {
		return Slot{}, why
	}
	acct := b.accts[camp.Index]
	left := int64(math.MaxInt64)
	if camp.FreqCap.Count > 0 {
		if user != 0 {
			left = b.cfg.Budget.FreqLeft(acct, user, now)
		}
		if user == 0 || left <= 0 {
			return Slot{}, "frequency_cap"
		}
	}
	charge := float64(up)
	if imp.Qty != nil && imp.Qty.Multiplier != 0 && imp.Qty.Multiplier != 1 {
		// As the bidder: a play seen by several people is charged for all,
		// and only a DOOH request's, by a campaign buying DOOH inventory.
		if !dooh || !camp.Targeting.DOOH {
			return Slot{}, "imp_refused"
		}
		charge *= imp.Qty.Multiplier
	}
	switch b.cfg.Budget.AllowDraw(acct, ceilDiv(int64(charge), 1000), now, draw) {
	case budget.DecisionOK:
	case budget.DecisionPaced:
		return Slot{}, "paced"
	case budget.DecisionFailClosed:
		return Slot{}, "fail_closed"
	case budget.DecisionFlight, budget.DecisionUnknown:
		return Slot{}, "flight"
	default:
		return Slot{}, "budget"
	}
	// Sure: it bids its bound (the bidder's surePrice; the baseline has no
	// learned shading). A fixed-price deal bids the deal's price instead.
	sure := camp.Strategy.Kind == campaigns.FixedCPM && !fixedDeal(c.Deal) &&
		(b.cfg.FirstPriceShade == 1 || !firstPrice(reqAT, c.Deal))
	return Slot{Candidate: c, Floor: floor, Open: open, Upper: upper, FreqLeft: left, Sure: sure}, ""
}

// wayFloor is the floor c faces on its way to bid: its deal's, replacing
// the open-auction floor open, then a duration floor unless the deal is at
// a fixed price.
func (b *Baseline) wayFloor(c *Candidate, imp *openrtb2.Imp, open int64, resp string) (int64, bool) {
	floor := open
	if d := c.Deal; d != nil && d.BidFloor > 0 {
		// deal.bidfloorcur does not inherit imp.bidfloorcur (2.6): USD
		// when absent, as the bidder reads it.
		f, ok := b.toResponse(d.BidFloor, d.BidFloorCur, resp)
		if !ok {
			return 0, false
		}
		floor = f // a deal's floor replaces the open-auction floor
	}
	if !fixedDeal(c.Deal) { // a fixed-price deal keeps its price
		return b.durationFloor(floor, *c, imp, resp)
	}
	return floor, true
}

// reach moves c to its first way to bid whose floor upper reaches, and
// returns the floor; else the first way's reason.
func (b *Baseline) reach(c *Candidate, imp *openrtb2.Imp, open, upper int64, resp string) (int64, string) {
	why := ""
	for {
		f, ok := b.wayFloor(c, imp, open, resp)
		r := "currency"
		if ok {
			if upper >= f && upper > 0 {
				return f, ""
			}
			r = "below_floor"
		}
		if why == "" {
			why = r
		}
		if !c.next() {
			return 0, why
		}
	}
}

// fixedDeal: a deal at a fixed price (at 3 with a floor).
func fixedDeal(d *openrtb2.Deal) bool { return d != nil && d.AT == 3 && d.BidFloor > 0 }

// keepBest keeps at most k slots per imp (slots[first:]) by upper bound,
// as the bidder does (bidder/bid.go keepBest): a fixed-CPM candidate's price
// does not depend on the model, so only the highest fixed-CPM candidate of
// an imp sure to clear its floor (Slot.Sure) is kept (the first seen among
// equals), and no fixed-CPM one it outbids, except in an ad pod (oneFixed
// false), where an earlier imp may take it.
func keepBest(slots []Slot, first, k int, sl Slot, oneFixed bool) []Slot {
	if sl.Campaign.Strategy.Kind == campaigns.FixedCPM && oneFixed {
		for j := first; j < len(slots); j++ {
			if !slots[j].Sure {
				continue
			}
			if sl.Sure && sl.Upper > slots[j].Upper {
				slots[j] = sl
				return slots
			}
			if sl.Upper <= slots[j].Upper {
				return slots
			}
			break
		}
	}
	if len(slots)-first < k {
		return append(slots, sl)
	}
	low := first
	for j := first + 1; j < len(slots); j++ {
		if slots[j].Upper < slots[low].Upper {
			low = j
		}
	}
	if sl.Upper > slots[low].Upper {
		slots[low] = sl
	}
	return slots
}

// firstPrice: the deal's at where it names 1 or 2, else the request's (the
// bidder's slot.firstPrice).
func firstPrice(reqAT int64, d *openrtb2.Deal) bool {
	if d != nil && (d.AT == 1 || d.AT == 2) {
		return d.AT == 1
	}
	return reqAT == 1
}

// qtyInLimits tells whether imp.qty.multiplier, if any, is within
// MinQty..MaxQty (0, like none, is one impression).
func (b *Baseline) qtyInLimits(imp *openrtb2.Imp) bool {
	if imp.Qty == nil || imp.Qty.Multiplier == 0 {
		return true
	}
	m := imp.Qty.Multiplier
	return m >= b.cfg.MinQty && m <= b.cfg.MaxQty
}

// price values every slot, picks the best per imp and holds its charge.
func (b *Baseline) price(a *Auction, br *openrtb2.BidRequest, resp string, now time.Time) string {
	a.Winners = make([]int, len(br.Imp))
	for i := range a.Winners {
		a.Winners[i] = -1
	}
	for i := range a.Slots {
		sl := &a.Slots[i]
		if sl.FreqLeft != math.MaxInt64 && a.winsBefore(sl.Imp, sl.Campaign) >= sl.FreqLeft {
			continue // as often as the user may still see it, on earlier imps
		}
		p, v, ok := b.priceWay(sl, br.AT, resp)
		for !ok && sl.next() {
			// Under its deal's floor: its next way to bid in reach.
			f, why := b.reach(&sl.Candidate, &br.Imp[sl.Imp], sl.Open, sl.Upper, resp)
			if why != "" {
				break
			}
			sl.Floor = f
			p, v, ok = b.priceWay(sl, br.AT, resp)
		}
		if !ok {
			continue
		}
		sl.Price, sl.Charge = p, ceilDiv(int64(v), 1000)
		if w := a.Winners[sl.Imp]; (w < 0 || p > a.Slots[w].Price) && !a.podRefuses(br, sl.Imp, sl.Creative) {
			a.Winners[sl.Imp] = i
		}
	}
	why, placed := "below_floor", 0
	for imp, w := range a.Winners {
		if w < 0 {
			continue
		}
		sl := &a.Slots[w]
		h, ok := b.cfg.Budget.Hold(b.accts[sl.Campaign.Index], sl.Charge, now)
		if !ok {
			a.Winners[imp], why = -1, "budget"
			continue
		}
		if a.user != 0 && !a.test { // the bid counts against its frequency cap until its pixel or loss
			b.cfg.Budget.FreqPend(b.accts[sl.Campaign.Index], a.user, now)
		}
		sl.Hold = h
		placed++
	}
	if placed == 0 {
		return why
	}
	return ""
}

// priceWay prices sl on its way to bid: the bid p (response-currency CPM
// micros) and the value v it holds (campaign-currency CPM micros); ok is
// false under the floor.
func (b *Baseline) priceWay(sl *Slot, reqAT int64, resp string) (p int64, v float64, ok bool) {
	v = sl.Campaign.ValueMicros(sl.PCTR)
	if firstPrice(reqAT, sl.Deal) {
		v *= b.cfg.FirstPriceShade
	}
	p, ok = b.convert(int64(v), sl.Campaign.Currency, resp)
	if fixedDeal(sl.Deal) {
		// A fixed-price deal bids its price, held at the value scaled to
		// it (the bidder's fixedDealPrice).
		vm := int64(sl.Campaign.ValueMicros(sl.PCTR))
		pv, ok2 := b.convert(vm, sl.Campaign.Currency, resp)
		if ok = ok2 && sl.Floor > 0 && pv >= sl.Floor; ok {
			p, v = sl.Floor, float64(min(int64(math.Ceil(float64(vm)*float64(sl.Floor)/float64(pv))), vm))
		}
	}
	return p, v, ok && p >= sl.Floor && p > 0
}

// podRefuses reports whether imp's pod (video.podid, else audio.podid) has
// no room for creative cr after the winners of the imps before it: cr won
// one (an ad pod never gets the same creative twice), or, in a dynamic pod
// (poddur or maxseq on the imp), cr's duration with the earlier dynamic
// imps' winners would pass poddur, or one more ad maxseq (the bidder's
// podRefuses).
func (a *Auction) podRefuses(br *openrtb2.BidRequest, imp int, cr *campaigns.Creative) bool {
	pod := podOf(&br.Imp[imp])
	if pod == "" {
		return false
	}
	podDur, maxSeq := podLimits(&br.Imp[imp])
	dur, n := cr.Duration, int64(1)
	for j := 0; j < imp; j++ {
		w := a.Winners[j]
		if w < 0 || podOf(&br.Imp[j]) != pod {
			continue
		}
		if a.Slots[w].Creative == cr {
			return true
		}
		if d, s := podLimits(&br.Imp[j]); (podDur > 0 || maxSeq > 0) && (d > 0 || s > 0) {
			dur += a.Slots[w].Creative.Duration
			n++
		}
	}
	return podDur > 0 && dur > podDur || maxSeq > 0 && n > maxSeq
}

// podLimits is the poddur and maxseq of the pod podOf names.
func podLimits(imp *openrtb2.Imp) (podDur, maxSeq int64) {
	switch {
	case imp.Video != nil && imp.Video.PodID != "":
		return imp.Video.PodDur, imp.Video.MaxSeq
	case imp.Audio != nil:
		return imp.Audio.PodDur, imp.Audio.MaxSeq
	}
	return 0, 0
}

func podOf(imp *openrtb2.Imp) string {
	switch {
	case imp.Video != nil && imp.Video.PodID != "":
		return imp.Video.PodID
	case imp.Audio != nil:
		return imp.Audio.PodID
	}
	return ""
}

// winsBefore counts the imps before imp whose winner is campaign c's.
func (a *Auction) winsBefore(imp int, c *campaigns.Campaign) int64 {
	n := int64(0)
	for j := 0; j < imp; j++ {
		if w := a.Winners[j]; w >= 0 && a.Slots[w].Campaign == c {
			n++
		}
	}
	return n
}

// response builds the openrtb2.BidResponse for the winners.
func (b *Baseline) response(a *Auction, br *openrtb2.BidRequest, resp string, user uint64, now time.Time) *openrtb2.BidResponse {
	seq := b.seq.Add(1)
	bidID := b.cfg.InstanceID + "-" + strconv.FormatUint(seq, 36)
	seat := openrtb2.SeatBid{Seat: b.cfg.Seat}
	for imp, w := range a.Winners {
		if w < 0 {
			continue
		}
		sl := &a.Slots[w]
		cr := sl.Creative
		tok := budget.Token{
			AuctionID: br.ID, ImpID: br.Imp[imp].ID, CampaignID: sl.Campaign.ID, CreativeID: cr.ID,
			InstanceID: b.cfg.InstanceID, BidMicros: sl.Charge, PriceMicros: sl.Price, UserKey: user, HoldID: sl.Hold,
			FloorMicros: min(max(sl.Floor, 0), sl.Price), Expires: now.Add(b.cfg.TokenTTL),
		}
		notice := func(path string, u budget.Use) string {
			return fmt.Sprintf("%s/notice/%s?t=%s&p=${AUCTION_PRICE}", b.cfg.PublicURL, path, budget.AppendToken(nil, b.cfg.NoticeKey, tok, u))
		}
		bid := openrtb2.Bid{
			ID: bidID + "-" + strconv.Itoa(imp), ImpID: br.Imp[imp].ID, Price: float64(sl.Price) / 1e6,
			AdID: cr.ID, CrID: cr.ID, CID: sl.Campaign.ID, ADomain: cr.ADomain, Cat: cr.Cat, Bundle: cr.Bundle,
			MType: openrtb2.MarkupType(cr.MType()),
			NURL:  notice("win", budget.UseWin), BURL: notice("bill", budget.UseBill), LURL: notice("loss", budget.UseLoss) + "&r=${AUCTION_LOSS}",
			AdM: adm(cr, notice("click", budget.UseClick), notice("imp", budget.UseImp)),
		}
		if b.cfg.RevealPCTR {
			bid.Ext = json.RawMessage(`{"pctr":` + strconv.FormatFloat(float64(sl.PCTR), 'g', 6, 32) + `}`)
		}
		for _, at := range cr.Attr {
			bid.Attr = append(bid.Attr, adcom1.CreativeAttribute(at))
		}
		bid.W, bid.H = bidSize(cr, br.Imp[imp])
		if sl.Deal != nil {
			bid.DealID = sl.Deal.ID
		}
		seat.Bid = append(seat.Bid, bid)
	}
	return &openrtb2.BidResponse{ID: br.ID, BidID: bidID, Cur: resp, SeatBid: []openrtb2.SeatBid{seat}}
}

// adm renders the creative's markup with its trackers: campaigns compiles
// templates into JSON-escaped parts, so decode them back to plain text (the
// tracker URLs differ from the bidder's only in their &p= suffix).
func adm(cr *campaigns.Creative, click, imp string) string {
	esc := append([]byte{'"'}, campaigns.AppendAdm(nil, cr, []byte(click), []byte(imp))...)
	var s string
	if json.Unmarshal(append(esc, '"'), &s) != nil {
		return ""
	}
	return s
}

func bidSize(cr *campaigns.Creative, imp openrtb2.Imp) (int64, int64) {
	if len(cr.Sizes) == 0 {
		if v := imp.Video; v != nil && deref(v.W) > 0 && deref(v.H) > 0 {
			return deref(v.W), deref(v.H) // the player's size, when whole
		}
		return 0, 0
	}
	if bn := imp.Banner; bn != nil {
		for _, sz := range cr.Sizes {
			if sz.W == deref(bn.W) && sz.H == deref(bn.H) {
				return sz.W, sz.H
			}
			for _, f := range bn.Format {
				if sz.W == f.W && sz.H == f.H {
					return sz.W, sz.H
				}
			}
		}
	}
	return cr.Sizes[0].W, cr.Sizes[0].H
}

func (b *Baseline) responseCurrency(br *openrtb2.BidRequest) (string, bool) {
	if len(br.Cur) == 0 {
		return b.cfg.Base, true
	}
	for _, c := range br.Cur {
		if _, ok := b.cfg.Rates[c]; ok {
			return c, true
		}
	}
	return "", false
}

func (b *Baseline) rate(cur string) (float64, bool) {
	if cur == "" {
		cur = b.cfg.Base
	}
	r, ok := b.cfg.Rates[cur]
	return r, ok
}

// toResponse converts a floor to response-currency micros, rounding up.
func (b *Baseline) toResponse(amount float64, cur, resp string) (int64, bool) {
	if amount <= 0 || math.IsNaN(amount) {
		return 0, true
	}
	if cur == "" {
		cur = "USD" // OpenRTB's default floor currency
	}
	from, ok := b.rate(cur)
	if !ok {
		return 0, false
	}
	to, ok := b.rate(resp)
	if !ok {
		return 0, false
	}
	v := roundMicros(amount*1e6*from/to, math.Ceil)
	if v > math.MaxInt64/2 || math.IsInf(v, 0) {
		return math.MaxInt64 / 2, true
	}
	return int64(v), true
}

// convert converts campaign-currency micros to resp, rounding down.
func (b *Baseline) convert(v int64, from, resp string) (int64, bool) {
	if from == resp {
		return v, true
	}
	f, ok := b.cfg.Rates[from]
	if !ok {
		return 0, false
	}
	to, ok := b.rate(resp)
	if !ok {
		return 0, false
	}
	return int64(roundMicros(float64(v)*f/to, math.Floor)), true
}

// roundMicros rounds converted micros with round (up for floors, down for
// bounds), a whole micro but for float64's rounding staying what it is, as
// bidder/currency.go does.
func roundMicros(x float64, round func(float64) float64) float64 {
	if r := math.Round(x); math.Abs(x-r) <= 1e-12*math.Abs(x) {
		return r
	}
	return round(x)
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// durationFloor is the bidder's duration-floor rule (OpenRTB 2.6 durfloors
// and mincpmpersec, bidder.Server.durationFloor) on the schema's types.
func (b *Baseline) durationFloor(floor int64, c Candidate, imp *openrtb2.Imp, resp string) (int64, bool) {
	dur := c.Creative.Duration
	if dur <= 0 {
		return floor, true
	}
	var fs []openrtb2.DurFloors
	var perSec float64
	cur := imp.BidFloorCur
	switch {
	case c.Creative.Format == campaigns.FormatVideo && imp.Video != nil:
		fs, perSec = imp.Video.DurFloors, imp.Video.MinCPMPerSec
	case c.Creative.Format == campaigns.FormatAudio && imp.Audio != nil:
		fs, perSec = imp.Audio.DurFloors, imp.Audio.MinCPMPerSec
	case c.Creative.Format != campaigns.FormatVideo && c.Creative.Format != campaigns.FormatAudio:
		return floor, true
	}
	if d := c.Deal; d != nil {
		fs, perSec, cur = d.DurFloors, d.MinCPMPerSec, d.BidFloorCur
	}
	best := -1.0
	for _, f := range fs {
		if f.MinDur <= 0 && f.MaxDur <= 0 {
			continue
		}
		if (f.MinDur <= 0 || dur >= f.MinDur) && (f.MaxDur <= 0 || dur <= f.MaxDur) && f.BidFloor > best {
			best = f.BidFloor
		}
	}
	if best >= 0 {
		v, ok := b.toResponse(best, cur, resp)
		if !ok {
			return 0, false
		}
		floor = v
	}
	if perSec > 0 {
		v, ok := b.toResponse(perSec*float64(dur), cur, resp)
		if !ok {
			return 0, false
		}
		floor = max(floor, v)
	}
	return floor, true
}
