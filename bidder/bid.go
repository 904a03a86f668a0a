package bidder

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// slot is one scored candidate: a (imp, campaign, creative) row.
type slot struct {
	imp   int
	cand  campaigns.Candidate
	floor int64 // floor in response-currency CPM micros (deal floor when a deal matched)
	open  int64 // the imp's open-auction floor, response currency (price's fallback: Candidate.Alts)
	upper int64 // most this candidate can bid, response-currency CPM micros
	fixed bool  // fixed CPM: upper is its price, whatever the model says
	// sure: it bids upper, known before the model runs and at least its
	// floor (surePrice); keepBest keeps one such fixed-CPM candidate an imp.
	sure bool
	// freqLeft is how many more impressions of the campaign the user may
	// see (math.MaxInt64 without a frequency cap): the request bids it on
	// at most that many imps.
	freqLeft int64
}

// choice is the winning bid for one imp.
type choice struct {
	slot   int   // index into bidCtx.slots; -1 none
	price  int64 // response-currency CPM micros
	charge int64 // campaign-currency micros per impression: the hold, the most its notices charge
	hold   uint64
}

// bidCtx is all per-request state; it is pooled and never outlives the
// handler call (STYLE 5, 6).
type bidCtx struct {
	stripe int
	draw   uint64   // the request's number: every campaign's participation draw for it (money.allow)
	cat    *catalog // the campaign set s.bid bid from (countBids counts against it)
	parser ortb.Parser
	gz     ortb.Gunzipper
	req    ortb.Request
	body   []byte
	sc     campaigns.Scratch
	rk     ranker
	cands  []campaigns.Candidate
	slots  []slot
	base   [features.Width]float32
	rows   []float32
	pctr   []float32
	// scoredBy is which of the chain's scorers gave pctr (the row log's
	// model name).
	scoredBy ctr.Scored
	best     []choice
	out      []byte
	token    bidToken
	tok      []byte // notice tokens of the bid being encoded, one per kind
	click    []byte // its click URL
	pixel    []byte // its impression pixel URL
	learn    []byte // its notices' shading arguments, m= and g= (shade.go)
	resp     []byte // response currency code (points into config or the request)
	user     uint64 // frequency-cap key; 0 unknown
	priv     privacy.Decision
	// ex is the rules of the exchange that sent the request (exchange.go).
	ex    *exchange
	shade []impShade // per imp, when the request learns (shade.go)
	now   time.Time
	// big: the body parsed was over poolBodyMax; the context is dropped
	// instead of pooled.
	big bool
	// matched: Match or the ranked walk yielded a candidate for an imp.
	matched bool
	// walked: bit i, imp i was walked at now (Match, or the ranked walk,
	// which goes to its end when it yields nothing).
	walked uint64

	tokEnds [numNoticeKinds]int // where each kind's token ends in tok
}

func (bc *bidCtx) reset() {
	bc.req.Reset()
	bc.body = bc.body[:0]
	clear(bc.cands)
	bc.cands = bc.cands[:0]
	clear(bc.slots)
	bc.slots = bc.slots[:0]
	bc.rows = bc.rows[:0]
	bc.pctr = bc.pctr[:0]
	bc.scoredBy = ctr.ScoredNone
	bc.best = bc.best[:0]
	bc.out = bc.out[:0]
	bc.resp = nil
	bc.cat = nil
	bc.user = 0
	bc.priv = privacy.Decision{}
	bc.ex = nil
	bc.sc.Seat, bc.sc.Exchange = nil, nil
	clear(bc.shade)
	bc.shade = bc.shade[:0]
	bc.token = bidToken{}
	bc.matched, bc.walked = false, 0
}

type bidPool struct {
	p    sync.Pool
	next uint32
	mu   sync.Mutex
}

func (s *Server) getBidCtx() *bidCtx {
	if v := s.pool.p.Get(); v != nil {
		return v.(*bidCtx)
	}
	s.pool.mu.Lock()
	s.pool.next++
	n := s.pool.next
	s.pool.mu.Unlock()
	return &bidCtx{stripe: int(n)}
}

// poolBodyMax is the largest (decompressed) body whose request context is
// pooled. fastjson's value cache and the Request's slices keep the size of
// the largest request a context parsed, about 200 times its body at worst
// (2.7 MB for 16 KiB of "1,1,..."; 46 MB for 253 KB of tiny imps): pooled,
// one burst of large bodies would stay in the heap for as long as traffic
// reuses the contexts. Real requests are a few KB.
const poolBodyMax = 16 << 10

// maxJSONValues bounds the JSON values of a body over poolBodyMax: fastjson
// builds a value for each before the Request view reads any, at up to ~400
// bytes apiece, so 256 KB of "1,1,..." took 53 MB per request in flight,
// and in a context that is not pooled every one is allocated afresh: an
// outside audit's 561-byte gzipped body of 16,000 values cost 5.5 ms of CPU
// (mostly the collector), and two connections of them starved real bids.
// The largest of the 813 shared samples has 138; 4,096 costs about 1 ms.
const maxJSONValues = 1 << 12

var errTooManyValues = ortb.ErrMalformed.Error() + ": more than " + strconv.Itoa(maxJSONValues) + " JSON values"

func (s *Server) putBidCtx(bc *bidCtx) {
	if bc.big {
		return // left to the collector
	}
	bc.reset()
	s.pool.p.Put(bc)
}

var (
	ctJSON         = []byte("application/json")
	hdrVersion     = []byte("x-openrtb-version")
	openrtbVersion = []byte("2.6")
	openrtb25      = []byte("2.5")
	hdrNoBid       = []byte("x-nobid-reason")
	encodingGzip   = []byte("gzip")
	// RFC 9110 8.4.1.3: x-gzip is gzip; identity (no encoding) some clients
	// send although only Accept-Encoding should name it.
	encodingXGzip    = []byte("x-gzip")
	encodingIdentity = []byte("identity")
	hdrOrigin        = []byte("Origin")
	hdrSecFetchSite  = []byte("Sec-Fetch-Site")
)

// fromBrowser says whether a request came from a web page: browsers send
// Origin with every POST (cross-site or not, a form's and a no-cors fetch's
// too) and Sec-Fetch-Site with every request; an exchange's server sends
// neither. (Not Sec-Fetch-Mode: Node's built-in fetch, which a server-side
// exchange client may use, adds "sec-fetch-mode: cors" to every request.) A page that could reach the bid listener (a browser inside its
// network ACL, or one a DNS-rebinding name points at it) could otherwise
// bid without a preflight (a text/plain body is a "simple" request), hold
// advertisers' budgets with each bid and, once rebound to the listener's
// origin, read the signed notice URLs and fire them.
func fromBrowser(h *fasthttp.RequestHeader) bool {
	return h.PeekBytes(hdrOrigin) != nil || h.PeekBytes(hdrSecFetchSite) != nil
}

// answerVersion sets the answer's x-openrtb-version: 2.5 to a request that
// names an earlier 2.x (2.0 to 2.5, a patch such as 2.5.1 or 2.4.0
// included): the oldest version the bidder speaks, whose answers a 2.4
// reader parses too (2.5 added fields, it changed none); 2.6 otherwise. Every
// answer is a valid 2.5 response: what 2.6 added to a bid (mtype, dur, ...)
// a 2.5 reader skips as unknown fields.
func answerVersion(ctx *fasthttp.RequestCtx) {
	v := openrtbVersion
	if pre26(ctx) {
		v = openrtb25
	}
	ctx.Response.Header.SetBytesKV(hdrVersion, v)
}

// pre26 tells whether the request names an OpenRTB version before 2.6 in
// x-openrtb-version: "2.N" or "2.N.P" with N 0 to 5. Their no-bid reason
// list ends at 10.
func pre26(ctx *fasthttp.RequestCtx) bool {
	r := ctx.Request.Header.PeekBytes(hdrVersion)
	if len(r) < 3 || r[0] != '2' || r[1] != '.' || r[2] < '0' || r[2] > '5' {
		return false
	}
	return len(r) == 3 || r[3] == '.'
}

// handleBid is POST /openrtb2/bid.
func (s *Server) handleBid(ctx *fasthttp.RequestCtx) {
	arrival := requestArrival(ctx) // reached this host (edge.go), not handler entry
	bc := s.getBidCtx()
	defer s.putBidCtx(bc)
	s.m.requests.add(bc.stripe, 1)
	// OpenRTB 2.6 asks for the version on responses too. Set once the
	// answer is written: ctx.Error resets the headers.
	defer answerVersion(ctx)
	if s.sourceRules && !sourceAllowed(ctx, s.exchangeOf(ctx)) {
		s.m.sourceRefused.add(bc.stripe, 1)
		ctx.Error("forbidden: this source may not send bid requests\n", fasthttp.StatusForbidden)
		return
	}
	if fromBrowser(&ctx.Request.Header) {
		s.m.sourceRefused.add(bc.stripe, 1)
		ctx.Error("forbidden: bid requests from a browser are refused\n", fasthttp.StatusForbidden)
		return
	}
	markBidder(ctx) // an exchange's connection: the cap closes it last (edge.go)
	entry := time.Now()
	admitted := s.adm.admit(arrival, entry)
	defer s.answered(bc, admitted, arrival, entry)
	if !admitted {
		s.shed(ctx, bc) // admission.go: 204 overload, before any parsing
		return
	}
	if s.pausedAll() { // kill switch (control.go): 204 paused, before any parsing
		s.noBid(ctx, bc, reasonPaused)
		return
	}

	body := ctx.PostBody()
	if len(body) > s.cfg.Limits.MaxBodyBytes {
		s.tooLarge(ctx, bc)
		return
	}
	if ce := ctx.Request.Header.ContentEncoding(); len(ce) > 0 && !equalFoldASCII(ce, encodingIdentity) {
		if !equalFoldASCII(ce, encodingGzip) && !equalFoldASCII(ce, encodingXGzip) {
			s.badRequest(ctx, bc, "unsupported content-encoding")
			return
		}
		var err error
		bc.body, err = bc.gz.Gunzip(bc.body[:0], body, s.cfg.Limits.MaxBodyBytes)
		if errors.Is(err, ortb.ErrTooLarge) {
			s.tooLarge(ctx, bc)
			return
		}
		if err != nil {
			s.badRequest(ctx, bc, err.Error())
			return
		}
		body = bc.body
	}
	if bc.big = len(body) > poolBodyMax; bc.big && ortb.ValuesOver(body, maxJSONValues) {
		s.badRequest(ctx, bc, errTooManyValues)
		return
	}
	bc.parser.MaxImps = s.cfg.Limits.MaxImps
	if err := bc.parser.Parse(body, &bc.req); err != nil {
		s.badRequest(ctx, bc, err.Error())
		return
	}
	bc.req.Version = ctx.Request.Header.PeekBytes(hdrVersion)
	bc.ex = s.exchangeOf(ctx)
	if bc.ex.seatOwn {
		bc.sc.Seat = bc.ex.seat
	}
	bc.sc.Exchange = bc.ex.name
	deadline := s.deadline(&bc.req, bc.ex, arrival)
	bc.now = arrival
	if r := s.bid(bc, deadline); r != reasonNone {
		s.noBid(ctx, bc, r)
		return
	}
	if s.late(bc, deadline) { // admission.go: withdrawn, holds released
		s.noBid(ctx, bc, reasonLate)
		return
	}
	s.countBids(bc)
	s.m.bids.add(bc.stripe, 1)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(bc.out)
}

// deadline = min(arrival + internal budget, arrival + tmax - network margin),
// tmax being the exchange's default_tmax when the request has none.
func (s *Server) deadline(req *ortb.Request, ex *exchange, arrival time.Time) time.Time {
	l := &s.cfg.Limits
	d := arrival.Add(l.InternalBudget)
	tmax := ex.defaultTMax
	if req.TMax > 0 {
		// A tmax past time.Duration's range (292 years) is no limit: as
		// is, the product would wrap, maybe to before the arrival.
		tmax = time.Duration(min(req.TMax, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond
	}
	if t := arrival.Add(tmax - l.NetworkMargin); t.Before(d) {
		d = t
	}
	return d
}

// targeted tells whether the traffic forecast that shapes forecast-paced
// campaigns counts this request: some campaign's targeting takes one of its
// imps, whatever the campaigns' flights, hours, pauses and budgets (a
// candidate collect found, else campaigns.Snapshot.Targeted). Counting every
// parsed request let anyone who may post them shape every forecast
// campaign's plan (an outside audit's flood of requests no campaign could bid
// on, between 03:00 and 04:00, put the next day's 03:00 hour 62% over its
// plan); counting only what the live campaigns matched learned the hours
// when none was live (before a flight's start, outside its dayparting) as
// hours without traffic (a review: a flight starting at noon delivered 81.6%
// of the next day's budget). Requests that bid pay nothing more; the others
// one more walk of the index per imp, stopping at the first match, that
// checks in full only the campaigns off their schedule now where collect
// walked the imp already (TargetedOffSchedule, which also reuses that walk's
// request values: a whole second walk cost a request no campaign targets 19%
// more at 1,000 campaigns, 31% at 10,000, a review found; this, 6% and 14%,
// docs/budget.md).
func (s *Server) targeted(bc *bidCtx, cat *catalog) bool {
	if bc.matched {
		return true
	}
	imps := bc.req.Imps
	if len(imps) > s.cfg.Limits.MaxImps {
		imps = imps[:s.cfg.Limits.MaxImps]
	}
	for i := range imps {
		if i < 64 && bc.walked&(1<<i) != 0 {
			if cat.snap.TargetedOffSchedule(&bc.req, &imps[i], bc.now, &bc.sc) {
				return true
			}
		} else if cat.snap.Targeted(&bc.req, &imps[i], bc.now, &bc.sc) {
			return true
		}
	}
	return false
}

// bid runs the pipeline on a parsed request, leaving the encoded response in
// bc.out; it returns the no-bid reason, or reasonNone.
func (s *Server) bid(bc *bidCtx, deadline time.Time) reason {
	if bc.ex == nil {
		bc.ex = s.exchanges[""] // callers other than handleBid (tests, benchmarks)
	}
	if bc.req.Test && bc.ex.test == testNoBid {
		return reasonTestRequest
	}
	if time.Until(deadline) < s.cfg.Limits.MinSlack {
		return reasonTMax
	}
	cat := s.catalog.Load()
	sc := s.scorer.Load()
	if cat == nil || sc == nil {
		return reasonNotReady
	}
	bc.cat = cat
	bc.draw = s.draws.Add(1)
	resp, ok := s.rates.responseCurrency(&bc.req, bc.ex.currency)
	if !ok {
		return reasonCurrency
	}
	bc.resp = resp
	bc.ex.floorCurrencies(&bc.req)
	r := s.collect(bc, cat)
	if !bc.priv.NoBid && s.targeted(bc, cat) {
		cat.money.observeRequest(bc.now)
	}
	if len(bc.slots) == 0 {
		return r
	}
	s.fitSlack(bc, sc, deadline)
	s.featurize(bc, cat)
	n := len(bc.slots)
	bc.pctr = grow(bc.pctr, n)
	var err error
	if ch, ok := sc.s.(*ctr.Chain); ok {
		bc.scoredBy, err = ch.ScoreBy(deadline, bc.rows, bc.pctr)
	} else {
		bc.scoredBy, err = ctr.ScoredNone, sc.s.Score(deadline, bc.rows, bc.pctr)
	}
	if err != nil {
		if errors.Is(err, ctr.ErrDeadline) {
			return reasonDeadline
		}
		return reasonModelError
	}
	s.m.scored.add(bc.stripe, uint64(n))
	s.mon.observe(bc)
	if r := s.price(bc, cat); r != reasonNone {
		return r
	}
	s.encode(bc, cat)
	s.mon.rows.offer(bc) // model.row_log: a sample of the bids' rows, queued for its writer (rowlog.go)
	return reasonNone
}

// collect finds and gates the candidates of every imp, keeping for each the
// pricing.max_scored_per_imp with the highest possible bid (see collectBest).
// When nothing is left to score it returns why: the reason of the first
// candidate, in walk order, that failed its gate (the first active one's
// before a paused one's: firstReason) in the last imp that had one
// (currency when an imp's floor cannot be converted), else no_campaign.
func (s *Server) collect(bc *bidCtx, cat *catalog) reason {
	why := reasonNoMatch
	user := s.decidePrivacy(bc) // before Match: it may drop the segments
	bc.user = user
	if bc.priv.NoBid {
		return reasonPrivacy // privacy.require_purpose2: GDPR, and no basis for purpose 2
	}
	bc.rk.reset(s.rates, cat, bc.resp)
	imps := bc.req.Imps
	if len(imps) > s.cfg.Limits.MaxImps {
		imps = imps[:s.cfg.Limits.MaxImps]
	}
	for i := range imps {
		imp := &imps[i]
		if len(bc.req.ID) > budget.MaxTokenID || len(imp.ID) > budget.MaxTokenID {
			// The notice token carries ids of at most 255 bytes: two
			// auctions alike in their first 255 would share one charge.
			s.m.longID.add(bc.stripe, 1)
			why = reasonInvalidImp
			continue
		}
		if sharedImpID(&bc.req, i) {
			// A bid's impid would name two imps: an exchange that indexes
			// imps by id reads it against the other one (its floor, its
			// format), and notices, de-duplicated by (auction, imp id),
			// could not tell two such bids apart.
			why = reasonInvalidImp
			continue
		}
		if s.pastChargeWindow(imp) {
			// Its billing notice may come when it could no longer charge.
			why = reasonImpRefused
			continue
		}
		if s.insecureImp(imp) {
			s.m.insecureImp.add(bc.stripe, 1)
			why = reasonInsecure
			continue
		}
		if _, ok := qtyMultiplier(imp, &s.cfg.Limits); !ok {
			// An absurd or forged qty.multiplier: no bid on this imp
			// rather than a hold or charge scaled by it.
			s.m.badQty.add(bc.stripe, 1)
			why = reasonImpRefused
			continue
		}
		floor, ok := s.rates.toResponse(imp.BidFloor, imp.BidFloorCur, bc.resp)
		if !ok {
			why = reasonCurrency
			continue
		}
		if i < 64 {
			bc.walked |= 1 << i // its walk at now finds every live candidate (targeted)
		}
		var r reason
		if s.cfg.Pricing.ExhaustiveScan {
			r = s.collectAll(bc, cat, i, floor)
		} else {
			r = s.collectBest(bc, cat, i, floor)
		}
		if r != reasonNone {
			why = r
		}
	}
	return why
}

// firstReason is an imp's no-bid reason after a candidate gated for r:
// the first candidate's in walk order, except that a paused campaign's
// gives way to the first active one's. A paused campaign is the operator's
// choice; an active one out of budget, paced or under the floor says why
// the request got nothing (an outside audit saw "paused" where the
// campaign the request targeted had no budget).
func firstReason(why, r reason) reason {
	if why == reasonNone || why == reasonPaused && r != reasonPaused {
		return r
	}
	return why
}

// ranker is the ranked walk's bound (campaigns.Ranker), and gate's: a
// campaign's highest possible bid converted to the response currency
// exactly as rates.convertMicros converts it, or -1 when its currency is not
// in the rate table. The conversions are looked up once per request, per
// currency of the catalog.
type ranker struct {
	upper []int64  // catalog.upper
	cur   []uint16 // catalog.cur
	conv  []curConv
	to    float64 // the response currency's rate
}

type curConv struct {
	f    float64 // the currency's rate
	same bool    // it is the response currency
	ok   bool    // it can be converted
}

var _ campaigns.Ranker = (*ranker)(nil)

// reset prepares r for a request answered in currency resp.
func (r *ranker) reset(rt *rates, cat *catalog, resp []byte) {
	r.upper, r.cur, r.conv = cat.upper, cat.cur, r.conv[:0]
	to, toOK := rt.lookup(resp)
	r.to = to
	for _, code := range cat.curs {
		f, ok := rt.rate[code]
		same := code == ortb.B2S(resp)
		r.conv = append(r.conv, curConv{f: f, same: same, ok: ok && toOK || same})
	}
}

func (r *ranker) Bound(i int) int64 {
	v := r.upper[i]
	switch cv := &r.conv[r.cur[i]]; {
	case cv.same:
		return v
	case !cv.ok:
		return -1
	default:
		return clampMicros(floorMicros(float64(v) * cv.f / r.to))
	}
}

// collectBest gates the candidates of imp i highest possible bid first (the
// snapshot's ranked walk) and keeps the first max_scored_per_imp that pass,
// of which at most one fixed-CPM candidate outside an ad pod: in this order
// that is what keepBest keeps from all of them, since a later candidate
// never has a higher bound than one kept before it. It stops when that many
// are kept or when a candidate's bound is below every floor a later one could face
// (below the imp's floor and each of its deals' floors), so the cost follows
// the candidates that can win, not every eligible one. Candidates after the
// stop are not gated: no pacing draw, no budget demand signal, no
// per-campaign no-bid count. It returns the first gate failure's reason.
func (s *Server) collectBest(bc *bidCtx, cat *catalog, i int, floor int64) reason {
	imp := &bc.req.Imps[i]
	k := s.cfg.Pricing.MaxScoredPerImp
	lowest := s.lowestFloor(bc, imp, floor)
	cat.snap.Begin(&bc.req, imp, bc.now, &bc.sc, &bc.rk)
	first := len(bc.slots)
	why := reasonNone
	fixed := false                 // a fixed-CPM candidate is kept
	oneFixed := impPod(imp) == nil // in a pod an earlier imp may take it (keepBest)
	for {
		var more bool
		if bc.cands, more = cat.snap.Next(bc.cands[:0], &bc.sc); !more {
			return why
		}
		bc.matched = true
		for _, c := range bc.cands {
			if fixed && c.Campaign.Strategy.Kind == campaigns.FixedCPM {
				continue // outbid by the kept one whatever the model says
			}
			sl, r := s.gate(bc, cat, imp, c, floor, bc.user)
			if r != reasonNone {
				cat.stats[c.Campaign.Index].nobid(bc.stripe, r)
				why = firstReason(why, r)
				if r == reasonBelowFloor && (sl.upper < lowest || sl.upper <= 0) {
					return why // every later bound is at most this one
				}
				continue
			}
			sl.at(i)
			bc.slots = append(bc.slots, sl)
			fixed = fixed || sl.sure && oneFixed
			if len(bc.slots)-first == k {
				return why
			}
		}
	}
}

// collectAll is pricing.exhaustive_scan, the reference collectBest must
// agree with: every eligible candidate of imp i found by Match, sorted into
// the ranked walk's order, gated, and kept by keepBest.
func (s *Server) collectAll(bc *bidCtx, cat *catalog, i int, floor int64) reason {
	imp := &bc.req.Imps[i]
	bc.cands = cat.snap.Match(bc.cands[:0], &bc.req, imp, bc.now, &bc.sc)
	bc.matched = bc.matched || len(bc.cands) > 0
	slices.SortFunc(bc.cands, func(a, b campaigns.Candidate) int {
		if c := cmp.Compare(bc.rk.Bound(b.Campaign.Index), bc.rk.Bound(a.Campaign.Index)); c != 0 {
			return c
		}
		if c := cmp.Compare(cat.snap.Rank(a.Campaign), cat.snap.Rank(b.Campaign)); c != 0 {
			return c
		}
		return cmp.Compare(a.Creative.Index, b.Creative.Index)
	})
	first := len(bc.slots)
	why := reasonNone
	oneFixed := impPod(imp) == nil
	for _, c := range bc.cands {
		sl, r := s.gate(bc, cat, imp, c, floor, bc.user)
		if r != reasonNone {
			cat.stats[c.Campaign.Index].nobid(bc.stripe, r)
			why = firstReason(why, r)
			continue
		}
		sl.at(i)
		bc.slots = keepBest(bc.slots, first, s.cfg.Pricing.MaxScoredPerImp, sl, oneFixed)
	}
	return why
}

// lowestFloor is the lowest floor any candidate of imp can face: the imp's,
// a deal's that replaces it, or a duration floor that replaces either.
func (s *Server) lowestFloor(bc *bidCtx, imp *ortb.Imp, floor int64) int64 {
	low := min(floor, s.lowestDurFloor(imp.Video.DurFloors, imp.BidFloorCur, bc.resp),
		s.lowestDurFloor(imp.Audio.DurFloors, imp.BidFloorCur, bc.resp))
	for j := range imp.Deals {
		d := &imp.Deals[j]
		low = min(low, s.lowestDurFloor(d.DurFloors, d.BidFloorCur, bc.resp))
		if d.BidFloor <= 0 {
			continue
		}
		if f, ok := s.rates.toResponse(d.BidFloor, d.BidFloorCur, bc.resp); ok && f < low { // USD when absent
			low = f
		}
	}
	return low
}

// lowestDurFloor is the lowest of fs's floors in the response currency
// (math.MaxInt64 when there are none).
func (s *Server) lowestDurFloor(fs []ortb.DurFloor, cur, resp []byte) int64 {
	low := int64(math.MaxInt64)
	for i := range fs {
		if fs[i].MinDur <= 0 && fs[i].MaxDur <= 0 {
			continue // no range: never applied (durationFloor)
		}
		if f, ok := s.rates.toResponse(fs[i].BidFloor, cur, resp); ok && f < low {
			low = f
		}
	}
	return low
}

// durationFloor is the floor a video or audio candidate faces given its
// creative's duration (OpenRTB 2.6 durfloors and mincpmpersec, on the
// imp's video or audio for the open auction, on the deal for a deal bid,
// in that object's floor currency): the highest durfloors range holding
// the duration replaces floor (the imp's or the deal's, already in the
// response currency), and mincpmpersec times the duration raises it.
// Creatives of unknown duration, other formats and fixed-price deals (whose
// floor is the agreed price) keep floor. ok is false when the floor's
// currency has no rate.
func (s *Server) durationFloor(floor int64, imp *ortb.Imp, c *campaigns.Candidate, resp []byte) (int64, bool) {
	cr := c.Creative
	dur := cr.Duration
	if dur <= 0 || fixedPriceDeal(c.Deal) {
		return floor, true
	}
	var pod *ortb.Pod
	switch cr.Format {
	case campaigns.FormatVideo:
		pod = &imp.Video.Pod
	case campaigns.FormatAudio:
		pod = &imp.Audio.Pod
	default:
		return floor, true
	}
	fs, perSec, cur := pod.DurFloors, pod.MinCPMPerSec, imp.BidFloorCur
	if d := c.Deal; d != nil {
		fs, perSec, cur = d.DurFloors, d.MinCPMPerSec, d.BidFloorCur
	}
	best := -1.0
	for i := range fs {
		f := &fs[i]
		if f.MinDur <= 0 && f.MaxDur <= 0 {
			continue // needs one bound (2.6); null or {} would have dropped the floor
		}
		if (f.MinDur <= 0 || dur >= f.MinDur) && (f.MaxDur <= 0 || dur <= f.MaxDur) && f.BidFloor > best {
			best = f.BidFloor
		}
	}
	if best >= 0 {
		v, ok := s.rates.toResponse(best, cur, resp)
		if !ok {
			return 0, false
		}
		floor = v
	}
	if perSec > 0 {
		v, ok := s.rates.toResponse(perSec*float64(dur), cur, resp)
		if !ok {
			return 0, false
		}
		floor = max(floor, v)
	}
	return floor, true
}

// fitSlack trims each imp's candidates, weakest highest-possible-bid first,
// until some scorer in the chain predicts it can score them all before the
// deadline. When even one per imp does not fit, the scorer says so.
func (s *Server) fitSlack(bc *bidCtx, sc *scorerBox, deadline time.Time) {
	if len(sc.lat) == 0 || sc.fits(len(bc.slots), time.Until(deadline)) {
		return
	}
	for k := s.cfg.Pricing.MaxScoredPerImp - 1; k >= 1; k-- {
		n := 0
		for lo := 0; lo < len(bc.slots); {
			hi := impEnd(bc.slots, lo)
			n += min(hi-lo, k)
			lo = hi
		}
		if k == 1 || sc.fits(n, time.Until(deadline)) {
			bc.slots = keepTopK(bc.slots, k)
			s.m.trimmed.add(bc.stripe, 1)
			return
		}
	}
}

// impEnd is the end of the run of slots of the same imp starting at lo.
func impEnd(slots []slot, lo int) int {
	hi := lo + 1
	for hi < len(slots) && slots[hi].imp == slots[lo].imp {
		hi++
	}
	return hi
}

// keepTopK keeps the k slots with the highest upper bound of each imp run.
func keepTopK(slots []slot, k int) []slot {
	w := 0
	for lo := 0; lo < len(slots); {
		hi := impEnd(slots, lo)
		run := slots[lo:hi]
		for i := 1; i < len(run); i++ { // insertion sort, descending: runs are short
			for j := i; j > 0 && run[j].upper > run[j-1].upper; j-- {
				run[j], run[j-1] = run[j-1], run[j]
			}
		}
		w += copy(slots[w:], run[:min(k, len(run))])
		lo = hi
	}
	clear(slots[w:])
	return slots[:w]
}

// featurize writes one feature row per slot: the imp part once per imp.
func (s *Server) featurize(bc *bidCtx, cat *catalog) {
	userLevel := bc.priv.Allows(privacy.Personalize)
	for lo := 0; lo < len(bc.slots); {
		hi := impEnd(bc.slots, lo)
		features.ExtractImp(bc.base[:], &bc.req, &bc.req.Imps[bc.slots[lo].imp], bc.now, userLevel)
		for j := lo; j < hi; j++ {
			bc.rows = features.AppendRow(bc.rows, bc.base[:], &cat.ads[bc.slots[j].cand.Creative.Index])
		}
		lo = hi
	}
}

// pastChargeWindow reports whether imp may be shown (and billed) later
// after the auction, imp.exp, than a billing notice is charged:
// notices.token_ttl and the longest notices.dedup_window, past which it is
// refused (403) and the impression's cost never reaches the budget; or
// than the bid's money is held, notices.hold_ttl: past it the hold goes
// back to the lease and new bids spend it again, so a bill that came as
// late as the imp allowed was charged over the budget (an outside audit
// spent 3x a daily budget with exp 3600 and bills after the holds ended).
func (s *Server) pastChargeWindow(imp *ortb.Imp) bool { return imp.Exp > s.maxExp }

// insecureImp reports whether imp asks for https creatives (secure=1) while
// public_url, the base of the pixel and click URLs in a bid's markup and of
// its notice URLs, is http on a host other than loopback: an https page
// blocks or upgrades those, so the impression would go uncounted (and its
// frequency caps with it), and an exchange checking secure=1 rejects the
// bid. Loopback is a local test set-up (browsers treat http://127.0.0.1 as
// secure, too).
func (s *Server) insecureImp(imp *ortb.Imp) bool { return s.insecureURL && imp.Secure == ortb.True }

// sharedImpID reports whether another imp of req, wherever it is (past
// limits.max_imps too: Request.LaterImpIDs), has req.Imps[i]'s id.
func sharedImpID(req *ortb.Request, i int) bool {
	id := req.Imps[i].ID
	for j := range req.Imps {
		if j != i && bytes.Equal(req.Imps[j].ID, id) {
			return true
		}
	}
	for _, later := range req.LaterImpIDs {
		if bytes.Equal(later, id) {
			return true
		}
	}
	return false
}

// gate checks one candidate against the kill switch, floor, frequency cap
// and budget, before any model time is spent on it. A candidate below its
// floor comes back with its upper bound set.
func (s *Server) gate(bc *bidCtx, cat *catalog, imp *ortb.Imp, c campaigns.Candidate, floor int64, user uint64) (slot, reason) {
	camp := c.Campaign
	if cat.paused(camp.Index, bc.stripe) { // control.go
		return slot{}, reasonPaused
	}
	upper := bc.rk.Bound(camp.Index)
	if upper < 0 {
		return slot{}, reasonCurrency
	}
	open := floor
	floor, r := s.reachOption(&c, open, upper, imp, bc.resp)
	if r == reasonBelowFloor {
		return slot{upper: upper}, r
	} else if r != reasonNone {
		return slot{}, r
	}
	freqLeft := freqLeftFor(cat.money, camp, user, bc.now)
	if freqLeft <= 0 {
		return slot{}, reasonFreqCap
	}
	maxCharge, ok := impCharge(float64(cat.upper[camp.Index]), imp, &s.cfg.Limits)
	if !ok || !qtyFor(camp, &bc.req, imp) {
		return slot{}, reasonImpRefused // its qty.multiplier (before, reported as budget)
	}
	if r := cat.money.allow(camp.Index, maxCharge, bc.now, bc.draw); r != reasonNone {
		return slot{}, r
	}
	sl := slot{cand: c, floor: floor, open: open, upper: upper, fixed: camp.Strategy.Kind == campaigns.FixedCPM, freqLeft: freqLeft}
	sl.sure = s.surePrice(&bc.req, &sl)
	return sl, reasonNone
}

// surePrice reports whether sl, gated, bids its bound (slot.upper), known
// before the model runs and at least its floor: a fixed-CPM campaign's
// price in a second-price auction, or in a first-price one where nothing
// lowers it. Then no other fixed-CPM candidate of the imp with a bound no
// higher can outbid it, and keepBest keeps those out. Not where
// pricing.first_price_shade lowers it in a first-price auction (shading's
// cold segments take it too), which may leave it under the floor (an
// outside audit's deal under its floor once shaded kept an open-auction
// fixed-CPM bid out); not where learned shading prices it (pricing.shading:
// the curve's optimum clamped into [floor, value], so a candidate with a
// lower bound facing a higher floor bids more); and not on a fixed-price
// deal, which bids the deal's price, not its bound (a review: a 4.00 CPM
// campaign on a 1.50 fixed-price deal kept a 2.00 open-auction bid out).
func (s *Server) surePrice(req *ortb.Request, sl *slot) bool {
	if !sl.fixed || sl.fixedDeal() {
		return false
	}
	return !sl.firstPrice(req) || s.cfg.Pricing.FirstPriceShade == 1 && s.shade == nil
}

// at places sl, gated, on imp i. It is sure (surePrice) only where the
// imps before it cannot use up the user's frequency cap for its campaign:
// price skips a slot whose campaign earlier imps of the request bid as
// often as the user may still see it (bidsBefore), and a sure slot skipped
// there had kept every other fixed-CPM candidate of the imp out (a review:
// a fixed 4.00 campaign capped at 1 won the first of two imps, and acme's
// fixed 2.00 never bid on the second).
func (sl *slot) at(i int) {
	sl.imp = i
	sl.sure = sl.sure && sl.freqLeft > int64(i)
}

// optionFloor is the floor candidate c faces on imp: its deal's where the
// deal names one (it replaces open, the imp's open-auction floor; both in
// the response currency), then durationFloor's. ok is false when a floor's
// currency cannot be converted. A deal's floor currency does not inherit
// imp.bidfloorcur: absent, it is USD (OpenRTB 2.6, 3.2.12; toResponse reads
// empty as USD).
func (s *Server) optionFloor(open int64, imp *ortb.Imp, c *campaigns.Candidate, resp []byte) (int64, bool) {
	floor := open
	if d := c.Deal; d != nil && d.BidFloor > 0 {
		f, ok := s.rates.toResponse(d.BidFloor, d.BidFloorCur, resp)
		if !ok {
			return 0, false
		}
		floor = f
	}
	return s.durationFloor(floor, imp, c, resp)
}

// reachOption settles c on the first of its ways to bid on imp (its deal,
// then Candidate.Alts: the imp's later deals the campaign targets, then the
// open auction where both allow one) whose floor upper reaches, and returns
// that floor. When none does it returns the first way's reason, below_floor
// or currency. Before, only the first deal was tried: a deal whose floor
// was over the campaign's reach meant no bid, though a later deal or the
// open auction would have taken one (an outside audit).
func (s *Server) reachOption(c *campaigns.Candidate, open, upper int64, imp *ortb.Imp, resp []byte) (int64, reason) {
	why := reasonNone
	for {
		f, ok := s.optionFloor(open, imp, c, resp)
		r := reasonCurrency
		if ok {
			if upper >= f && upper > 0 {
				return f, reasonNone
			}
			r = reasonBelowFloor
		}
		if why == reasonNone {
			why = r
		}
		if !c.NextAlt(imp) {
			return 0, why
		}
	}
}

// nextOption moves sl to its next way to bid that its bound reaches
// (reachOption), for a price under the floor of the one it was on; false
// when none is left.
func (s *Server) nextOption(sl *slot, imp *ortb.Imp, resp []byte) bool {
	if !sl.cand.NextAlt(imp) {
		return false
	}
	f, r := s.reachOption(&sl.cand, sl.open, sl.upper, imp, resp)
	if r != reasonNone {
		return false
	}
	sl.floor = f
	return true
}

// keepBest appends sl to the imp's slots [first:], keeping at most k by
// their upper bound: a candidate that cannot outbid the weakest kept one is
// not worth a model call. A fixed-CPM candidate's price does not depend on
// the model, so only the highest fixed-CPM candidate of an imp that bids
// its bound, sure to clear its floor (slot.sure), is kept: it outbids
// every other fixed-CPM one whatever the prediction. Not in an ad pod (oneFixed false):
// there the creative an earlier imp of the pod bids is taken (podRefuses),
// and the imp needs the next one (an outside audit: a pod of fixed-CPM
// campaigns got a bid on its first imp only).
func keepBest(slots []slot, first, k int, sl slot, oneFixed bool) []slot {
	if sl.fixed && oneFixed {
		for j := first; j < len(slots); j++ {
			if !slots[j].sure {
				continue
			}
			switch {
			case sl.sure && sl.upper > slots[j].upper:
				slots[j] = sl
				return slots
			case sl.upper <= slots[j].upper:
				return slots // outbid by slots[j] whatever the model says
			}
			break
		}
	}
	if len(slots)-first < k {
		return append(slots, sl)
	}
	low := first
	for j := first + 1; j < len(slots); j++ {
		if slots[j].upper < slots[low].upper {
			low = j
		}
	}
	if sl.upper > slots[low].upper {
		slots[low] = sl
	}
	return slots
}

// price values every scored slot, picks the best per imp and holds its
// price against the campaign's lease. Second price (at=2) bids the value;
// first price (at=1) bids the shaded price when pricing.shading is on and
// the imp's segment has a warm curve (shade.go), else the value times
// pricing.first_price_shade. The auction type is the slot's deal's where it
// names one (slot.firstPrice). A fixed-price deal bids its deal price
// (fixedDealPrice), whatever the request's auction type.
func (s *Server) price(bc *bidCtx, cat *catalog) reason {
	why := reasonBelowFloor
	for i := range bc.slots {
		sl := &bc.slots[i]
		for len(bc.best) <= sl.imp {
			bc.best = append(bc.best, choice{slot: -1})
		}
		camp := sl.cand.Campaign
		b := &bc.best[sl.imp]
		if sl.freqLeft != math.MaxInt64 && bc.bidsBefore(sl.imp, camp) >= sl.freqLeft {
			// Earlier imps of this request already bid the campaign as
			// often as the user may still see it.
			cat.stats[camp.Index].nobid(bc.stripe, reasonFreqCap)
			continue
		}
		beat := int64(-1)
		if b.slot >= 0 {
			beat = b.price
		}
		p, v, ok := s.priceSlot(bc, i, beat)
		for !ok && s.nextOption(sl, &bc.req.Imps[sl.imp], bc.resp) {
			// Under its deal's floor: the next deal, or the open auction.
			p, v, ok = s.priceSlot(bc, i, beat)
		}
		if !ok {
			cat.stats[camp.Index].nobid(bc.stripe, reasonBelowFloor)
			continue
		}
		charge, ok := impCharge(v, &bc.req.Imps[sl.imp], &s.cfg.Limits)
		if !ok {
			why = reasonImpRefused // the charge times qty.multiplier overflows
			continue
		}
		if (b.slot < 0 || p > b.price) && !bc.podRefuses(sl.imp, sl.cand.Creative) {
			b.slot, b.price, b.charge = i, p, charge
		}
	}
	placed := 0
	for i := range bc.best {
		b := &bc.best[i]
		if b.slot < 0 {
			continue
		}
		ci := bc.slots[b.slot].cand.Campaign.Index
		h, r := uint64(0), reasonNone
		if !bc.free() { // test_requests: free: nothing to hold
			h, r = cat.money.hold(ci, b.charge, bc.user, bc.now)
		}
		if r != reasonNone {
			cat.stats[ci].nobid(bc.stripe, r)
			b.slot, why = -1, r
			continue
		}
		b.hold = h
		placed++
	}
	if placed == 0 {
		return why
	}
	return reasonNone
}

// priceSlot prices bc.slots[i] on the way to bid it is on: its bid p
// (response-currency CPM micros) and its value v (campaign-currency CPM
// micros, shaded); ok is false under the floor. beat is the best price of
// the imp so far (-1: none).
func (s *Server) priceSlot(bc *bidCtx, i int, beat int64) (p int64, v float64, ok bool) {
	sl := &bc.slots[i]
	camp := sl.cand.Campaign
	switch {
	case sl.fixedDeal():
		return s.fixedDealPrice(camp, camp.ValueMicros(bc.pctr[i]), sl.floor, bc.resp)
	case s.learns(bc, sl):
		return s.shadedPrice(bc, i, beat)
	}
	v = camp.ValueMicros(bc.pctr[i])
	if sl.firstPrice(&bc.req) {
		v *= s.cfg.Pricing.FirstPriceShade
	}
	p, ok = s.rates.convertMicros(int64(v), camp.Currency, bc.resp)
	return p, v, ok && p >= sl.floor && p > 0
}

// countBids counts the bids of an answer that goes out: per campaign, for
// shading's win rates and in openbidder_bids_total. A bid withdrawn as late
// (its answer never sent) is not counted: it was, and the totals and the
// campaigns' win rates counted bids no exchange saw.
func (s *Server) countBids(bc *bidCtx) {
	cat := bc.cat
	placed := 0
	for i := range bc.best {
		b := &bc.best[i]
		if b.slot < 0 {
			continue
		}
		cat.stats[bc.slots[b.slot].cand.Campaign.Index].bid(bc.stripe)
		if s.learns(bc, &bc.slots[b.slot]) {
			s.shadeStats.bids[bc.shade[bc.slots[b.slot].imp].curve.Level].add(bc.stripe, 1)
		}
		placed++
	}
	s.m.bidsPlaced.add(bc.stripe, uint64(placed))
}

// fixedDeal reports whether sl bids on a fixed-price deal: pmp.deals[].at
// 3, whose bidfloor is the agreed price (sl.floor, in the response
// currency, rounded up). A deal at 3 without a price has nothing agreed
// and is bid like any deal.
func (sl *slot) fixedDeal() bool { return fixedPriceDeal(sl.cand.Deal) }

// firstPrice reports whether sl bids in a first-price auction: its deal's
// at where that names 1 or 2 (OpenRTB: a deal's auction type overrides the
// request's), else the request's at. Before, only the request's was read:
// a first-price deal in a second-price request bid its whole value, and a
// second-price deal in a first-price request was shaded and learned from
// (an outside audit).
func (sl *slot) firstPrice(req *ortb.Request) bool {
	if d := sl.cand.Deal; d != nil && (d.AT == 1 || d.AT == 2) {
		return d.AT == 1
	}
	return req.AT == 1
}

// fixedPriceDeal reports whether d is a fixed-price deal (slot.fixedDeal).
func fixedPriceDeal(d *ortb.Deal) bool { return d != nil && d.AT == 3 && d.BidFloor > 0 }

// fixedDealPrice prices a fixed-price deal: the bid is the deal price
// (floor, response-currency CPM micros), made when the campaign's value
// (campaign-currency CPM micros, unshaded: the exchange charges the deal
// price, so there is nothing to shade) reaches it. The hold's value is the
// value scaled to that price, rounded up so it covers it, as a shaded bid's
// is. Bidding over the agreed price would only hold more than the exchange
// charges, and some exchanges drop such a bid.
func (s *Server) fixedDealPrice(camp *campaigns.Campaign, value float64, floor int64, resp []byte) (int64, float64, bool) {
	vm := int64(value)
	pv, ok := s.rates.convertMicros(vm, camp.Currency, resp)
	if !ok || floor <= 0 || pv < floor {
		return 0, 0, false
	}
	vq := int64(math.Ceil(float64(vm) * float64(floor) / float64(pv)))
	return floor, float64(min(vq, vm)), true
}

// impCharge is what one impression of imp holds at value v (CPM micros of
// the campaign currency), and the most its notices charge (the token's
// ChargeMicros): v/1000 rounded up, times imp.qty.multiplier where the
// request gives one (a DOOH play seen by several people: the exchange
// charges for all of them). Rounded up, a charge is never below the
// exchange's exact price, so the spend recorded never falls behind what
// the exchange bills and the budget's bound holds against the exchange's
// invoice. It was rounded down (never above the exact price): at 0.0159
// CPM the exchange billed 105.9% of a daily budget the ledger showed
// spent to 99.9% (an outside audit). The hold, the token and the charge
// carry the multiplied amount, and the settlement is the clearing price's
// share of it; the bid price stays the CPM of one impression. ok is false
// when the multiplier is outside [limits.min_qty, limits.max_qty] (collect
// skips such imps) or the product does not fit in int64 micros.
func impCharge(v float64, imp *ortb.Imp, l *LimitsConfig) (charge int64, ok bool) {
	m, ok := qtyMultiplier(imp, l)
	if !ok {
		return 0, false
	}
	if m != 1 {
		v *= m
		if !(v < 1<<62) {
			return 0, false
		}
	}
	return ceilDiv(int64(v), 1000), true
}

// qtyFor tells whether camp may bid on imp of req given its
// qty.multiplier: one other than 1 (a play seen by several people, charged
// for all of them) only on a DOOH request (req.dooh), for a campaign that
// buys DOOH inventory. Any other campaign matched a site or app request
// whose imp said qty.multiplier 1000, and one billing notice charged it
// 1000 impressions (an outside audit); then a campaign buying site and dooh
// inventory was charged so on a site request (a second audit).
func qtyFor(camp *campaigns.Campaign, req *ortb.Request, imp *ortb.Imp) bool {
	return !imp.HasQty || imp.Qty.Multiplier == 0 || imp.Qty.Multiplier == 1 || req.HasDOOH && camp.Targeting.DOOH
}

// qtyMultiplier is the imp's charge multiplier: 1 without qty (or with
// multiplier 0, i.e. none given); ok is false for one outside
// [l.MinQty, l.MaxQty] (negative, NaN and infinite included).
func qtyMultiplier(imp *ortb.Imp, l *LimitsConfig) (float64, bool) {
	if !imp.HasQty || imp.Qty.Multiplier == 0 {
		return 1, true
	}
	m := imp.Qty.Multiplier
	if !(m >= l.MinQty && m <= l.MaxQty) {
		return 0, false
	}
	return m, true
}

// freqLeftFor is how many imps of a request campaign camp may still bid
// for user: math.MaxInt64 without a frequency cap; 0 or less, none.
func freqLeftFor(m money, camp *campaigns.Campaign, user uint64, now time.Time) int64 {
	if camp.FreqCap.Count <= 0 {
		return math.MaxInt64
	}
	return m.freqLeft(camp.Index, user, now)
}

// bidsBefore counts the imps before imp i whose bid is campaign c's. The
// slots are grouped by imp in imp order, so those bids are final when imp
// i's slots are priced (a hold that fails later only makes this count high).
func (bc *bidCtx) bidsBefore(i int, c *campaigns.Campaign) int64 {
	n := int64(0)
	for j := 0; j < i && j < len(bc.best); j++ {
		if b := &bc.best[j]; b.slot >= 0 && bc.slots[b.slot].cand.Campaign == c {
			n++
		}
	}
	return n
}

// podRefuses reports whether imp i's ad pod (video or audio podid) has no
// room for creative cr after the bids of its earlier imps: cr bids there
// already (exchanges deduplicate a pod, so a repeat would be dropped, or the
// break would show one ad twice), or, in a dynamic pod (poddur or maxseq on
// the imp), cr's duration with the durations already bid on the pod's
// earlier dynamic imps would pass poddur, or one more ad would pass maxseq.
// An outside audit: a pod split over imps that each said poddur 30 got
// 30 s and 15 s creatives, 45 s for a 30 s break, and the exchange dropped
// one.
func (bc *bidCtx) podRefuses(i int, cr *campaigns.Creative) bool {
	return podRefuses(bc.req.Imps, i, cr, bc)
}

// podWinners gives the creative bid on imp j of a request, nil for none:
// the bid path's (bidCtx) and explain's replay of it (explainWins) share
// podRefuses through it.
type podWinners interface {
	podWinner(j int) *campaigns.Creative
}

func (bc *bidCtx) podWinner(j int) *campaigns.Creative {
	if j >= len(bc.best) || bc.best[j].slot < 0 {
		return nil
	}
	return bc.slots[bc.best[j].slot].cand.Creative
}

// podRefuses is the pod rule of bidCtx.podRefuses over imps, with the
// creatives w says earlier imps bid. Generic so that the bid path's call
// is not through an interface value (no allocation).
func podRefuses[W podWinners](imps []ortb.Imp, i int, cr *campaigns.Creative, w W) bool {
	p := impPod(&imps[i])
	if p == nil {
		return false
	}
	dynamic := p.PodDur > 0 || p.MaxSeq > 0
	dur, n := cr.Duration, int64(1)
	for j := 0; j < i; j++ {
		c := w.podWinner(j)
		if c == nil {
			continue
		}
		q := impPod(&imps[j])
		if q == nil || string(q.PodID) != string(p.PodID) {
			continue
		}
		if c == cr {
			return true
		}
		if dynamic && (q.PodDur > 0 || q.MaxSeq > 0) {
			dur += c.Duration
			n++
		}
	}
	return p.PodDur > 0 && dur > p.PodDur || p.MaxSeq > 0 && n > p.MaxSeq
}

// impPod is imp's ad pod: video's when it names one, else audio's; nil
// outside a pod.
func impPod(imp *ortb.Imp) *ortb.Pod {
	switch {
	case imp.HasVideo && len(imp.Video.PodID) > 0:
		return &imp.Video.Pod
	case imp.HasAudio && len(imp.Audio.PodID) > 0:
		return &imp.Audio.Pod
	}
	return nil
}

// noBid answers 204 with the reason in x-nobid-reason, or, for an
// exchange that wants no-bid codes, 200 with {"id":...,"nbr":N} and the same
// header.
func (s *Server) noBid(ctx *fasthttp.RequestCtx, bc *bidCtx, r reason) {
	s.m.nobids[r].add(bc.stripe, 1)
	ctx.Response.Header.SetBytesKV(hdrNoBid, s.reasonBytes[r])
	if bc.ex != nil && bc.ex.nbr && len(bc.req.ID) > 0 {
		bc.out = appendNBR(bc.out[:0], bc.req.ID, r, pre26(ctx))
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentTypeBytes(ctJSON)
		ctx.SetBody(bc.out)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func (s *Server) badRequest(ctx *fasthttp.RequestCtx, bc *bidCtx, msg string) {
	s.m.badRequest.add(bc.stripe, 1)
	msg = shortReason(msg) // at most 200 bytes (server.go)
	ctx.SetStatusCode(fasthttp.StatusBadRequest)
	ctx.Response.Header.SetBytesK(hdrNoBid, msg)
	// The reason quotes up to 200 bytes of the request: never to be read
	// as anything but the text/plain it is.
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetBodyString(msg + "\n")
}

func (s *Server) tooLarge(ctx *fasthttp.RequestCtx, bc *bidCtx) {
	s.m.tooLarge.add(bc.stripe, 1)
	ctx.SetStatusCode(fasthttp.StatusRequestEntityTooLarge)
	ctx.SetBodyString("request body too large\n")
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, 2*n)
	}
	return s[:n]
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

func equalFoldASCII(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// free reports whether bc's bids are free: a test=1 request on an exchange
// whose test_requests is free. Such a bid holds nothing and its token says
// so, and its notices charge nothing; every other bid, test=1 included
// (billable, the default), holds and charges.
func (bc *bidCtx) free() bool { return bc.req.Test && bc.ex.test == testFree }
