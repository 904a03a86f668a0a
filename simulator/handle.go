package simulator

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

type bidExt struct {
	PCTR *float64 `json:"pctr"`
}

// handleBids runs the auctions of one answered request and sends notices.
func (r *Runner) handleBids(og *Outgoing, due time.Time, body []byte, late bool) {
	var resp openrtb2.BidResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		r.stats.add(func(c *Counters) { c.BadResponses++ })
		return
	}
	nbids := 0
	for _, sb := range resp.SeatBid {
		nbids += len(sb.Bid)
	}
	r.stats.add(func(c *Counters) {
		if nbids > 0 {
			c.BidResponses++
		}
		c.ImpsOffered += int64(len(og.Req.Imp))
		if late {
			c.LateBids += int64(nbids)
		}
	})
	if late || nbids == 0 {
		return // an exchange ignores answers after tmax
	}
	cur := resp.Cur
	if cur == "" {
		cur = "USD"
	}
	r.runAuctions(og, due, &resp, cur)
	invalid := 0
	for _, sb := range resp.SeatBid {
		for _, b := range sb.Bid {
			if impIndex(og.Req, b.ImpID) < 0 || b.Price <= 0 {
				invalid++
			}
		}
	}
	if invalid > 0 {
		r.stats.add(func(c *Counters) { c.InvalidBids += int64(invalid) })
	}
}

// runAuctions runs the auction of every imp of og. Each imp draws from a
// stream of its own (request and imp), so that its competitors, render and
// click do not depend on what happened on the imps before it: with one
// stream per request, the second imp of a request met other competitors
// when the bidder bid (or won) on the first, and two runs over the same
// traffic and seed (simulator ab) compared different markets there. The
// first imp's stream is the request's former one.
func (r *Runner) runAuctions(og *Outgoing, due time.Time, resp *openrtb2.BidResponse, cur string) {
	for ii := range og.Req.Imp {
		rng := rand.New(rand.NewPCG(r.cfg.Seed^0x51a7e^(uint64(ii)*0x9e3779b97f4a7c15), og.Seq))
		r.auctionImp(og, due, resp, cur, ii, rng)
	}
}

func impIndex(req *openrtb2.BidRequest, id string) int {
	for i := range req.Imp {
		if req.Imp[i].ID == id {
			return i
		}
	}
	return -1
}

type seatBid struct {
	seat string
	bid  *openrtb2.Bid
}

func (r *Runner) auctionImp(og *Outgoing, due time.Time, resp *openrtb2.BidResponse, cur string, ii int, rng *rand.Rand) {
	imp := &og.Req.Imp[ii]
	var ours []seatBid
	best := -1
	for si := range resp.SeatBid {
		sb := &resp.SeatBid[si]
		for bi := range sb.Bid {
			b := &sb.Bid[bi]
			if b.ImpID != imp.ID || b.Price <= 0 {
				continue
			}
			ours = append(ours, seatBid{sb.Seat, b})
			if best < 0 || b.Price > ours[best].bid.Price {
				best = len(ours) - 1
			}
		}
	}
	if best < 0 {
		return
	}
	r.stats.add(func(c *Counters) { c.Auctions++ })
	top := ours[best].bid
	floor, deal := ToUSD(imp.BidFloor, orUSD(imp.BidFloorCur)), false
	firstPrice := og.Req.AT == 1
	if top.DealID != "" && imp.PMP != nil {
		for _, d := range imp.PMP.Deals {
			if d.ID == top.DealID {
				floor, deal = ToUSD(d.BidFloor, orUSD(d.BidFloorCur)), true
				if d.AT == 1 || d.AT == 2 { // a deal's own at overrides the request's (OpenRTB)
					firstPrice = d.AT == 1
				}
			}
		}
	}
	mult := 1.0
	if imp.Video != nil {
		mult = 3
	}
	others := r.cfg.Market.Competitors(rng, mult, nil)
	in := AuctionInput{OurBid: ToUSD(top.Price, cur), Floor: floor, DealBid: deal, Others: others,
		FirstPrice: firstPrice}
	res := RunAuction(in)
	mtw := 0.0 // USD; 0: this publisher's exchange does not send ${AUCTION_MIN_TO_WIN}
	if r.sendsMinToWin(og.Req) {
		mtw = MinToWin(in)
	}
	for k, sb := range ours {
		m := Macros{AuctionID: og.Req.ID, BidID: resp.BidID, ImpID: imp.ID, SeatID: sb.seat, AdID: sb.bid.AdID,
			Currency: cur, Loss: -1}
		if m.BidID == "" {
			m.BidID = sb.bid.ID
		}
		ev := bidEvent{due: due, cid: sb.bid.CID, cur: cur, firstPrice: in.FirstPrice, bid: ToUSD(sb.bid.Price, cur)}
		if p, ok := pctrOf(sb.bid); ok {
			ev.pctr, ev.hasPCTR = p, true
		}
		if mtw > 0 {
			m.MinToWin = FromUSD(mtw, cur)
			if k != best { // it had to beat our own best bid too
				m.MinToWin = FromUSD(max(mtw, in.OurBid+0.01), cur)
			}
		}
		if k != best || !res.Won {
			reason := res.LossReason
			if k != best {
				reason = LossLostToHigherBid
			}
			m.Loss, m.Price = reason, FromUSD(res.Clearing, cur)
			r.notifier.Fire(KindLoss, Substitute(sb.bid.LURL, m), r.delay(rng, r.notifier.cfg.Delay), draws(rng))
			r.stats.recordBid(ev)
			continue
		}
		r.win(impAuction{og: og, due: due, imp: imp, rng: rng}, sb.bid, m, FromUSD(res.Clearing, cur), ev)
	}
}

// impAuction is one imp's auction in flight.
type impAuction struct {
	og  *Outgoing
	due time.Time
	imp *openrtb2.Imp
	rng *rand.Rand // per request and imp, so outcomes do not depend on answer order or on other imps
}

func (r *Runner) win(a impAuction, b *openrtb2.Bid, m Macros, clearing float64, ev bidEvent) {
	og, imp, rng := a.og, a.imp, a.rng
	m.Price, m.Loss = clearing, 0
	if m.MinToWin > 0 {
		m.MinToWin = min(m.MinToWin, b.Price) // the winning bid was enough
	}
	ev.won = true
	ev.clearing = int64(math.Round(clearing * 1000)) // CPM/1000 per impression, in micros
	winDelay := r.delay(rng, r.notifier.cfg.Delay)
	r.notifier.Fire(KindWin, Substitute(b.NURL, m), winDelay, draws(rng))
	ev.rendered = rng.Float64() < r.cfg.RenderProb
	ctx := ContextFor(og.Req, imp, og.SimTime, b)
	ev.truth = r.cfg.Truth.CTR(ctx)
	if v, ok := r.cfg.Values[b.CID]; ok {
		ev.valued = true
		ev.valueTrue = v.CPMUSD(ev.truth, false)
		ev.valueBidder = v.CPMUSD(ev.pctr, true) // bid.ext.pctr
		ev.blindBidder = !ev.hasPCTR && v.needsPCTR()
	}
	if ev.rendered {
		renderDelay := winDelay + r.delay(rng, r.cfg.RenderDelay)
		r.notifier.Fire(KindBill, Substitute(b.BURL, m), renderDelay, draws(rng))
		tr := FindTrackers(Substitute(b.AdM, m))
		for _, u := range tr.Imp {
			r.notifier.Fire(KindImp, u, renderDelay, draws(rng))
		}
		ev.clicked = rng.Float64() < ev.truth
		if ev.clicked {
			clickDelay := renderDelay + r.delay(rng, r.cfg.ClickDelay)
			for _, u := range tr.Click {
				r.notifier.Fire(KindClick, u, clickDelay, draws(rng))
			}
		}
		if r.logs != nil {
			r.logs.write(og, imp, b, clearing, ev, ctx)
		}
	}
	r.stats.recordBid(ev)
}

func (r *Runner) delay(rng *rand.Rand, mean time.Duration) time.Duration {
	if mean <= 0 {
		return 0
	}
	return time.Duration(rng.ExpFloat64() * float64(mean))
}

func draws(rng *rand.Rand) [3]float64 { return [3]float64{rng.Float64(), rng.Float64(), rng.Float64()} }

func pctrOf(b *openrtb2.Bid) (float64, bool) {
	if len(b.Ext) == 0 {
		return 0, false
	}
	var e bidExt
	if json.Unmarshal(b.Ext, &e) != nil || e.PCTR == nil {
		return 0, false
	}
	return *e.PCTR, true
}

// sendsMinToWin says whether the exchange of req's publisher substitutes
// ${AUCTION_MIN_TO_WIN}: a fixed share (Config.MinToWinShare) of publishers,
// chosen by a hash of the publisher id and the seed.
func (r *Runner) sendsMinToWin(req *openrtb2.BidRequest) bool {
	share := r.cfg.MinToWinShare
	if share <= 0 {
		return false
	}
	var pub *openrtb2.Publisher
	switch {
	case req.Site != nil:
		pub = req.Site.Publisher
	case req.App != nil:
		pub = req.App.Publisher
	}
	if pub == nil {
		return false
	}
	h := fnv.New64a()
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], r.cfg.Seed)
	h.Write(seed[:])
	h.Write([]byte(pub.ID))
	x := h.Sum64() // FNV's high bits are weak for short inputs: mix them
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return float64(x>>11)/(1<<53) < share
}

func orUSD(c string) string {
	if c == "" {
		return "USD"
	}
	return c
}
