package bidder

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/shading"
)

// First-price bid shading (pricing.shading, docs/shading.md). The bid path
// looks up each imp's learned win curve once and prices a candidate at the
// bid that maximises expected surplus; notices carry the segment key (g=,
// with a tag that binds it to the bid's token, so a notice URL cannot be
// turned on another segment) and the exchange's minimum bid to win
// (m=${AUCTION_MIN_TO_WIN}: the exchange writes it, so nothing can sign it)
// back to the model. Each instance learns from the notices it receives.

// impShade is one imp's shading context in a request: its segment key and
// the curve it prices with, looked up once per imp.
type impShade struct {
	key   shading.Key
	curve shading.Curve
	warm  bool
	set   bool
}

// shadeStats are the shading series of /metrics.
type shadeStats struct {
	bids [3]counter // first-price bids placed, by shading.Level
}

// learns says whether slot sl's bid learns and is shaded: pricing.shading
// on, a first-price auction (slot.firstPrice: its deal's at where it names
// one), and not a fixed-price deal (its price was agreed, not bid against
// the market).
func (s *Server) learns(bc *bidCtx, sl *slot) bool {
	return s.shade != nil && !sl.fixedDeal() && sl.firstPrice(&bc.req)
}

// impShadeOf returns imp's shading context, looking it up on first use.
func (s *Server) impShadeOf(bc *bidCtx, imp int) *impShade {
	for len(bc.shade) <= imp {
		bc.shade = append(bc.shade, impShade{})
	}
	is := &bc.shade[imp]
	if !is.set {
		is.set = true
		is.key = shading.KeyOf(segmentOf(bc, &bc.req.Imps[imp]))
		is.curve, is.warm = s.shade.Lookup(is.key)
	}
	return is
}

// segmentOf names imp's inventory segment: the exchange, the response
// currency, the publisher (site or app id when it has none), the placement
// (tagid, else the imp id) and the formats the imp offers.
func segmentOf(bc *bidCtx, imp *ortb.Imp) shading.Segment {
	seg := shading.Segment{Exchange: bc.ex.name, Currency: bc.resp, Placement: imp.TagID}
	switch r := &bc.req; {
	case r.HasSite:
		seg.Publisher = r.Site.Publisher.ID
		if len(seg.Publisher) == 0 {
			seg.Publisher = r.Site.ID
		}
	case r.HasApp:
		seg.Publisher = r.App.Publisher.ID
		if len(seg.Publisher) == 0 {
			seg.Publisher = r.App.ID
		}
	}
	if len(seg.Placement) == 0 {
		seg.Placement = imp.ID
	}
	if imp.HasBanner {
		seg.Format |= shading.FormatBanner
	}
	if imp.HasVideo {
		seg.Format |= shading.FormatVideo
	}
	if imp.HasNative {
		seg.Format |= shading.FormatNative
	}
	if imp.HasAudio {
		seg.Format |= shading.FormatAudio
	}
	return seg
}

// shadedPrice is slot i's first-price bid with shading on, in response
// currency CPM micros, and its value in campaign-currency CPM micros (what
// impCharge turns into the hold). On a
// warm segment the price maximises (value - price) W(price) over
// [floor, value]; on a cold one it is the value times
// pricing.first_price_shade, as without shading. A candidate whose value
// cannot exceed beat (the imp's best price so far; -1 none) is not
// optimised: it cannot become the imp's bid, since shading never raises a
// price, and its unshaded price is returned. ok is false under the floor.
func (s *Server) shadedPrice(bc *bidCtx, i int, beat int64) (price int64, value float64, ok bool) {
	sl := &bc.slots[i]
	camp := sl.cand.Campaign
	is := s.impShadeOf(bc, sl.imp)
	v := camp.ValueMicros(bc.pctr[i])
	if !is.warm {
		v *= s.cfg.Pricing.FirstPriceShade
	}
	vm := int64(v)
	pv, ok := s.rates.convertMicros(vm, camp.Currency, bc.resp)
	if !ok || pv < sl.floor || pv <= 0 {
		return 0, 0, false
	}
	if !is.warm || pv <= beat {
		return pv, float64(vm), true
	}
	q := min(max(int64(is.curve.Optimal(float64(pv), float64(sl.floor))), sl.floor, 1), pv)
	if q == pv {
		return pv, float64(vm), true
	}
	// The hold is the shaded price in campaign micros, rounded up so that
	// it covers the price (clearingCharge scales it by clearing / price).
	vq := int64(math.Ceil(float64(vm) * float64(q) / float64(pv)))
	return q, float64(min(vq, vm)), true
}

// noticeSegment is the segment key the notices of bid c carry, or nil when
// the request does not learn or c is a fixed-price deal's bid (its price
// was agreed, not bid against the market).
func (bc *bidCtx) noticeSegment(c *choice) *shading.Key {
	sl := &bc.slots[c.slot]
	imp := sl.imp
	if imp >= len(bc.shade) || !bc.shade[imp].set || sl.fixedDeal() || !sl.firstPrice(&bc.req) {
		return nil
	}
	return &bc.shade[imp].key
}

var (
	argSegment  = []byte("g")
	argMinToWin = []byte("m")
)

// segSep separates a g= value's segment key from its binding tag;
// segSepNoMTW does so for a bid whose exchange asks no minimum bid to win
// (macros.min_to_win: none), and the tag covers that too (segmentBytes): an
// m= added to such a notice is not read.
const (
	segSep      = '.'
	segSepNoMTW = '~'
	segSeps     = string(segSep) + string(segSepNoMTW)
)

// appendLearnArg appends the shading arguments of the bid whose tokens are
// in bc.tok: `&m=${AUCTION_MIN_TO_WIN}&g=KEY.TAG`, KEY the segment
// (shading.Key.AppendHex) and TAG what binds it to the tokens (written
// after them by appendTokens); nothing for a bid that does not learn.
func (bc *bidCtx) appendLearnArg(dst []byte) []byte {
	if !bc.token.SegOK {
		return dst
	}
	dst = append(dst, bc.ex.minToWinArg...) // &m=${AUCTION_MIN_TO_WIN}, or nothing (macros.min_to_win: none)
	dst = append(dst, "&g="...)
	dst = bc.token.Seg.AppendHex(dst)
	if bc.token.NoMinToWin {
		dst = append(dst, segSepNoMTW)
	} else {
		dst = append(dst, segSep)
	}
	return append(dst, bc.tok[bc.tokEnds[numNoticeKinds-1]:]...)
}

// segmentBytes is what the binding tag covers: the key, 16 bytes, and for
// a bid whose exchange asks no minimum bid to win (noMTW) a 17th; n is the
// length used. A bid that asks one binds the 16 bytes it always did, so
// tags issued before the 17th byte existed still verify.
func segmentBytes(k shading.Key, noMTW bool) (b [17]byte, n int) {
	binary.BigEndian.PutUint64(b[:8], k.Placement)
	binary.BigEndian.PutUint64(b[8:16], k.Publisher)
	if noMTW {
		b[16] = 'n'
		return b, 17
	}
	return b, 16
}

// splitSegment reads a g= value: the key, whether its bid asked no minimum
// bid to win (segSepNoMTW), and its binding tag; ok is false for anything
// not in appendLearnArg's form.
func splitSegment(g []byte) (key shading.Key, noMTW bool, tag []byte, ok bool) {
	i := bytes.IndexAny(g, segSeps)
	if i < 0 {
		return shading.Key{}, false, nil, false
	}
	key, ok = shading.ParseKey(g[:i])
	return key, g[i] == segSepNoMTW, g[i+1:], ok
}

// Loss reasons of OpenRTB 5.25: 0 says the bid won (handleNotice changes
// nothing for it); 102 and 103 that another bid won the auction.
const (
	lossBidWon    = 0
	lossHigherBid = 102
	lossDealBid   = 103
)

// learnFromNotice feeds a verified win, billing or loss notice of a shaded
// bid to the model: the outcome at the bid's price and, where the exchange
// substituted it, the minimum bid to win. Notices of bids placed without
// shading carry no segment and are skipped; one whose segment is not bound
// to its token is counted invalid and not learned; the first notice of an
// impression counts, repeats do not. A repeat is what the money path
// found was not the first word on its impression (noticeSink: a replay, a
// bill after its win, a loss after a charge; exact for as long as notices
// are accepted), or what the model's own window of recent impressions
// recognises (a win after a competitive loss). It never touches money.
func (s *Server) learnFromNotice(t *bidToken, args *fasthttp.Args, won, repeat bool, now time.Time) {
	switch {
	case s.shade == nil, !t.SegOK && !t.SegBad:
		return
	case t.SegBad: // g= changed or moved: not this bid's segment
		s.shade.Refuse()
		return
	case repeat, !s.learnsLate(t, won, now):
		s.shade.Repeat()
		return
	}
	m, err := parsePriceMicros(args.PeekBytes(argMinToWin))
	if err != nil || t.NoMinToWin {
		m = 0 // not sent, the macro left unsubstituted, or not asked (macros.min_to_win: none)
	}
	s.shade.Observe(shading.Observation{Key: t.Seg, ID: shading.ImpressionID(t.AuctionID, t.ImpID),
		Bid: float64(t.PriceMicros), Won: won, MinToWin: float64(m)}, now)
}

// learnsLate says whether a notice still comes soon enough after its bid
// to learn from: a loss within notices.dedup_window.loss, a win or bill
// within the longest window (later the money path refuses it, 403). After
// that the money path may have forgotten the impression (a loss notice is
// accepted for token_ttl, 24h, but its impression remembered for
// dedup_window.loss after it), so a replay reads as a first notice, and the
// model's window of recent impressions is lossy: a holder of a few old loss
// URLs could replay each, learned every time, with a made-up m=. Such a
// notice counts as a duplicate: it cannot be told from one. A token that
// does not say when its bid was made (none this bidder issues) is judged by
// the money path alone.
func (s *Server) learnsLate(t *bidToken, won bool, now time.Time) bool {
	w := s.cfg.Notices.DedupWindow
	within := w.Loss
	if won {
		within = max(w.Win, w.Bill, w.Loss)
	}
	return t.Issued.IsZero() || now.Sub(t.Issued) <= within
}

// competitiveLoss says whether a loss notice's reason means another bid
// won: only those say anything about the price needed to win.
func competitiveLoss(r []byte) bool {
	n, err := strconv.Atoi(string(r))
	return err == nil && (n == lossHigherBid || n == lossDealBid)
}

// ShadeStep is the shading step of one scored candidate, for explanations
// (POST /admin/explain). Prices are CPM micros of the response currency.
type ShadeStep struct {
	FirstPrice bool   `json:"first_price"` // at=1; shading never applies at second price
	Enabled    bool   `json:"enabled"`     // pricing.shading.enabled
	Level      string `json:"level"`       // "placement", "publisher" or "cold" (unshaded)
	// Segment is the placement and publisher keys as notices carry them
	// (g=, before its binding tag).
	Segment      string  `json:"segment,omitempty"`
	Mu           float64 `json:"mu"`    // the curve: ln(min bid to win) ~ N(mu, sigma^2)
	Sigma        float64 `json:"sigma"` //
	Observations int     `json:"observations"`
	ValueMicros  int64   `json:"value_micros"` // unshaded: value x first_price_shade on a cold segment
	FloorMicros  int64   `json:"floor_micros"`
	PriceMicros  int64   `json:"price_micros"`
	// WinProb is W at the price and at the value; ExpectedSurplusMicros is
	// (value - price) W(price). Zero on a cold segment.
	WinProbAtPrice        float64 `json:"win_prob_at_price"`
	WinProbAtValue        float64 `json:"win_prob_at_value"`
	ExpectedSurplusMicros float64 `json:"expected_surplus_micros"`
}

// explainShade describes how slot i of a request that went through the bid
// pipeline (bc.pctr filled) was priced.
func (s *Server) explainShade(bc *bidCtx, i int) ShadeStep {
	sl := &bc.slots[i]
	camp := sl.cand.Campaign
	st := ShadeStep{FirstPrice: sl.firstPrice(&bc.req), Enabled: s.shade != nil, Level: shading.LevelCold.String(),
		FloorMicros: sl.floor}
	v := camp.ValueMicros(bc.pctr[i])
	if !s.learns(bc, sl) {
		if st.FirstPrice {
			v *= s.cfg.Pricing.FirstPriceShade
		}
		st.ValueMicros, _ = s.rates.convertMicros(int64(v), camp.Currency, bc.resp)
		st.PriceMicros = st.ValueMicros
		return st
	}
	is := s.impShadeOf(bc, sl.imp)
	st.Segment = string(is.key.AppendHex(nil))
	if is.warm {
		c := is.curve
		st.Level, st.Mu, st.Sigma, st.Observations = c.Level.String(), c.Mu, c.Sigma, c.N
	}
	st.PriceMicros, _, _ = s.shadedPrice(bc, i, -1)
	if !is.warm {
		v *= s.cfg.Pricing.FirstPriceShade
	}
	st.ValueMicros, _ = s.rates.convertMicros(int64(v), camp.Currency, bc.resp)
	if is.warm {
		c := is.curve
		st.WinProbAtPrice = c.WinProb(float64(st.PriceMicros))
		st.WinProbAtValue = c.WinProb(float64(st.ValueMicros))
		st.ExpectedSurplusMicros = c.Surplus(float64(st.ValueMicros), float64(st.PriceMicros))
	}
	return st
}

// The shading series (docs/metrics.md).
var (
	shadeDescs descSet

	dShadeBids     = shadeDescs.add("shading_bids_total", "First-price bids placed with shading on, by the curve that priced them (placement, publisher, or cold: unshaded).", "curve")
	dShadeNotices  = shadeDescs.add("shading_notices_total", "Win, billing and loss notices of shaded bids offered to the shading model, by outcome (learned, duplicate, invalid: a bad bid or a segment not bound to the token, full).", "result")
	dShadeSegments = shadeDescs.add("shading_segments_capacity", "Curves the shading table holds (pricing.shading.segments rounded up).")
)

// shadeCollector reads the shading counters at scrape time.
type shadeCollector struct{ s *Server }

func (c shadeCollector) Describe(ch chan<- *prometheus.Desc) { describe(ch, shadeDescs) }

func (c shadeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if s.shade == nil {
		return
	}
	for l := range s.shadeStats.bids {
		counterMetric(ch, dShadeBids, float64(s.shadeStats.bids[l].load()), shading.Level(l).String())
	}
	counts := s.shade.Counts()
	for r, n := range counts {
		counterMetric(ch, dShadeNotices, float64(n), shading.Result(r).String())
	}
	gaugeMetric(ch, dShadeSegments, float64(s.shade.Capacity()))
}
