package bidder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/shading"
)

// noticeKind is which notice an exchange or a browser sent.
type noticeKind uint8

const (
	noticeWin noticeKind = iota
	noticeBill
	noticeLoss
	noticeImp
	noticeClick
	numNoticeKinds
)

var noticeNames = [numNoticeKinds]string{"win", "bill", "loss", "imp", "click"}

func (k noticeKind) String() string { return noticeNames[k] }

const noticePrefix = "/notice/"

// Notice paths under noticePrefix.
const (
	pathWin   = "win"
	pathBill  = "bill"
	pathLoss  = "loss"
	pathImp   = "imp"
	pathClick = "click"
)

// Sentinel errors of the notice path.
var (
	ErrNoticeForged   = errors.New("bidder: notice token forged")
	ErrNoticeExpired  = errors.New("bidder: notice token expired")
	ErrNoticePrice    = errors.New("bidder: notice price missing or invalid")
	ErrNoticeUnknown  = errors.New("bidder: unknown notice")
	ErrNoticeNotFound = errors.New("bidder: notice refers to an unknown creative")
)

// bidToken is what a signed notice URL says about its bid. Byte fields
// alias the bid request (while encoding) or the notice URL (while parsing).
type bidToken struct {
	AuctionID, ImpID   []byte
	Campaign, Creative []byte
	Cur                []byte // response currency of PriceMicros
	PriceMicros        int64  // bid price, CPM micros in Cur
	FloorMicros        int64  // the imp's floor (deal floor on a deal), CPM micros in Cur
	ChargeMicros       int64  // the hold: most one impression may cost, campaign currency micros
	Hold               uint64
	User               uint64 // frequency-cap key; 0 unknown
	PCTR               float32
	ChargeOnWin        bool   // the exchange charges on the win notice (else billing)
	Test               bool   // a test=1 request's bid on a test_requests: free exchange: its notices never charge
	Instance           []byte // the instance that placed the bid and holds its hold
	Expiry             time.Time
	Issued             time.Time // when the bid was made (zero: a token that does not say)
	// Seg is the shading segment of a bid that learns (SegOK): its win,
	// billing and loss notices carry it in g=, bound to the token (shade.go).
	// On a notice SegOK says g= was bound to this token, SegBad that a g=
	// was there but was not (changed, moved from another bid, malformed).
	Seg    shading.Key
	SegOK  bool
	SegBad bool
	// NoMinToWin, with SegOK, says the bid's exchange asks no minimum bid
	// to win (macros.min_to_win: none): g= says so, bound to the token, and
	// an m= on its notices is not read. Before, the token did not record
	// it, and an m= added to such a notice was learned from.
	NoMinToWin bool
	// UnderFloor, on a win or billing notice only (not in the token), says
	// its price was under the imp's floor, or 0 (charged at the floor;
	// clearingCharge): it prices nothing, so a later notice of its kind
	// may still raise the charge (budget.Notice.UnderFloor).
	UnderFloor bool
}

// tokenSigner signs and verifies notice tokens (budget.Signer behind an
// adapter). A bid carries one token per notice kind, each valid only at its
// own endpoint: the pixel token that every browser sees cannot bill, and a
// billing token cannot be replayed as a loss.
type tokenSigner interface {
	// appendTokens appends t's token for every notice kind, in noticeKind
	// order, to dst; ends[k] is where kind k's token ends in the result.
	// With t.SegOK the tag binding t.Seg to the tokens follows the last.
	appendTokens(dst []byte, t *bidToken, ends *[numNoticeKinds]int) []byte
	// parseToken verifies a token presented at kind's endpoint, and seg
	// (a notice's g=, empty when none) against it (bidToken.SegOK, SegBad).
	// A genuine but expired token returns its fields with ErrNoticeExpired.
	parseToken(src, seg []byte, kind noticeKind, now time.Time) (bidToken, error)
}

// noticeSink is where verified notices go: the budget store and the event
// log. Implementations are idempotent: a replayed notice changes nothing.
type noticeSink interface {
	// charge settles the bid's hold at chargeMicros (campaign currency,
	// already capped at the hold). repeat: the impression had been charged
	// before, or the notice changed nothing (a replay, a price not above
	// the charge): a notice that is not the first word on its impression.
	charge(t *bidToken, kind noticeKind, chargeMicros int64, now time.Time) (repeat bool, err error)
	// release frees the hold of a lost bid. repeat: the notice changed
	// nothing (a second loss, a loss after a settled charge) or reversed a
	// provisional charge (a loss after its win).
	release(t *bidToken, lossReason int64, now time.Time) (repeat bool, err error)
	// impression and click feed frequency caps and CTR feedback.
	impression(t *bidToken, now time.Time) error
	click(t *bidToken, now time.Time) error
}

// appendTokens signs the notice tokens of bid c into dst; tokenOf reads
// them back by kind.
func (s *Server) appendTokens(dst []byte, bc *bidCtx, cat *catalog, c *choice) []byte {
	sl := &bc.slots[c.slot]
	t := &bc.token
	*t = bidToken{
		AuctionID:    bc.req.ID,
		ImpID:        bc.req.Imps[sl.imp].ID,
		Campaign:     cat.campID[sl.cand.Campaign.Index],
		Creative:     cat.crID[sl.cand.Creative.Index],
		Cur:          bc.resp,
		PriceMicros:  c.price,
		FloorMicros:  min(max(sl.floor, 0), c.price),
		ChargeMicros: c.charge,
		Hold:         c.hold,
		User:         bc.user,
		PCTR:         bc.pctr[c.slot],
		ChargeOnWin:  bc.ex.chargeOnWin,
		Test:         bc.free(),
		Expiry:       bc.now.Add(s.cfg.Notices.TokenTTL),
		Issued:       bc.now,
	}
	if t.Test {
		// A free bid's notices count nothing against frequency caps, and
		// with no hold its sealed user block (the key and the hold id
		// under one AES block) was the same in every bid of one user:
		// an id a page could follow across sites. Nor does it count its
		// pCTR (predicted clicks), whose mask (budget.pctrPad, by hold id)
		// would be the same in all of them.
		t.User, t.PCTR = 0, 0
	}
	if seg := bc.noticeSegment(c); seg != nil {
		t.Seg, t.SegOK, t.NoMinToWin = *seg, true, len(bc.ex.minToWinArg) == 0
	}
	return s.signer.appendTokens(dst, t, &bc.tokEnds)
}

// tokenOf is the token of kind k among those appendTokens wrote to bc.tok.
func (bc *bidCtx) tokenOf(k noticeKind) []byte {
	start := 0
	if k > 0 {
		start = bc.tokEnds[k-1]
	}
	return bc.tok[start:bc.tokEnds[k]]
}

// appendNoticeURL appends `,"nurl":"BASE/notice/win?t=TOKEN&p=${AUCTION_PRICE}"`,
// with the exchange's macros (lurl also &r=${AUCTION_LOSS} where the
// exchange substitutes it). A bid that learns (first price, shading on)
// also asks for the minimum bid to win and carries its segment key, bound
// to the token: learn is `&m=${AUCTION_MIN_TO_WIN}&g=KEY.TAG` (shade.go),
// empty otherwise.
func (s *Server) appendNoticeURL(b []byte, ex *exchange, field, path string, token, learn []byte) []byte {
	b = append(b, field...)
	b = append(b, s.publicURL...)
	b = append(b, noticePrefix...)
	b = append(b, path...)
	b = append(b, "?t="...)
	b = append(b, token...)
	b = append(b, ex.priceArg...)
	b = append(b, learn...)
	if path == pathLoss {
		b = append(b, ex.lossArg...)
	}
	return append(b, '"')
}

// appendTrackerURL appends BASE/notice/imp?t=TOKEN (no JSON quoting).
func (s *Server) appendTrackerURL(b []byte, path string, token []byte) []byte {
	b = append(b, s.publicURL...)
	b = append(b, noticePrefix...)
	b = append(b, path...)
	b = append(b, "?t="...)
	return append(b, token...)
}

var pixelGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

var (
	hdrCacheControl = []byte("Cache-Control")
	noStore         = []byte("no-store")
)

// handleNotice serves /notice/{win,bill,loss,imp,click}. Forged or expired
// tokens get 403 and change nothing; bad prices get 400. A win, billing or
// loss notice is answered 200 once its ledger entry is durable; one the
// ledger did not acknowledge within notices.ack_wait gets 503 (the charge
// stays queued, and the exchange's retry waits for that same entry). A
// notice for a bid another instance placed is settled by that instance.
func (s *Server) handleNotice(ctx *fasthttp.RequestCtx, kindPath []byte) {
	kind, ok := parseNoticeKind(kindPath)
	if !ok {
		ctx.Error("unknown notice\n", fasthttp.StatusNotFound)
		return
	}
	// A pixel, a click's redirect or a notice's 200 answers one request: a
	// browser or proxy cache must not answer the next one (ctx.Error's
	// answers lose the header; nothing is counted from a cached refusal).
	ctx.Response.Header.SetBytesKV(hdrCacheControl, noStore)
	now := time.Now()
	args := ctx.QueryArgs()
	var seg []byte
	if kind == noticeWin || kind == noticeBill || kind == noticeLoss {
		if !peerIn(ctx, s.noticeSources) {
			s.m.noticeSource.add(0, 1)
			ctx.Error("notice source not allowed (notices.sources)\n", fasthttp.StatusForbidden)
			return
		}
		seg = args.PeekBytes(argSegment)
	}
	t, err := s.signer.parseToken(args.Peek("t"), seg, kind, now)
	if err != nil {
		s.m.noticeBad.add(0, 1)
		if kind == noticeClick && errors.Is(err, ErrNoticeExpired) {
			// A page or app screen kept open past token_ttl: the person
			// clicking still reaches the advertiser (not counted: a click is
			// only counted while its token is valid).
			if landing := s.landingURL(&t); landing != "" {
				ctx.Redirect(landing, fasthttp.StatusFound)
				return
			}
		}
		ctx.Error(err.Error()+"\n", fasthttp.StatusForbidden)
		return
	}
	if t.Test {
		s.testNotice(ctx, kind, &t)
		return
	}
	switch kind {
	case noticeWin, noticeBill:
		charge, err := s.clearingCharge(&t, args.Peek("p"))
		if err != nil {
			s.m.noticeBad.add(0, 1)
			ctx.Error(err.Error()+"\n", fasthttp.StatusBadRequest)
			return
		}
		repeat, err := s.notices.charge(&t, kind, charge, now)
		s.noticeDone(ctx, kind, err)
		s.learnFromNotice(&t, args, true, repeat, now)
	case noticeLoss:
		rs := bytes.TrimSpace(args.Peek("r")) // r=+102 arrives as " 102"
		r, err := strconv.ParseInt(string(rs), 10, 64)
		if err != nil && args.Has("r") {
			// A reason that is not an integer ("0.0", "0x0", an empty or
			// unsubstituted ${AUCTION_LOSS}) may be "bid won": reversing
			// on it made a won impression free (an outside audit). No r=
			// at all (macros.loss: none) is a loss.
			s.m.noticeBad.add(0, 1)
			ctx.Error("bad loss reason r: want an integer (OpenRTB loss reason code)\n", fasthttp.StatusBadRequest)
			return
		}
		if err == nil && r == lossBidWon {
			// Not a loss: an exchange that fires lurl for every outcome says
			// this bid won. Releasing here would reverse a provisional
			// charge, or stop the win notice charging, and the impression
			// would run free. Nothing changes; its win and bill settle it.
			s.m.lossBidWon.add(0, 1)
			ctx.SetStatusCode(fasthttp.StatusOK)
			return
		}
		repeat, err := s.notices.release(&t, r, now)
		s.noticeDone(ctx, kind, err)
		if competitiveLoss(rs) {
			s.learnFromNotice(&t, args, false, repeat, now)
		}
	case noticeImp:
		if s.forwardTracker(kind, &t, args.Peek("t")) {
			ctx.SetStatusCode(fasthttp.StatusOK)
			ctx.SetContentType("image/gif")
			ctx.SetBody(pixelGIF)
			return
		}
		if replay, err := s.countTracker(kind, &t, now); replay || s.noticeDone(ctx, kind, err) {
			ctx.SetContentType("image/gif")
			ctx.SetBody(pixelGIF)
		}
	case noticeClick:
		landing := s.landingURL(&t)
		if landing == "" {
			s.noticeDone(ctx, kind, ErrNoticeNotFound)
			return
		}
		if s.forwardTracker(kind, &t, args.Peek("t")) {
			ctx.Redirect(landing, fasthttp.StatusFound)
			return
		}
		if replay, err := s.countTracker(kind, &t, now); replay || s.noticeDone(ctx, kind, err) {
			ctx.Redirect(landing, fasthttp.StatusFound)
		}
	}
}

// countTracker counts an impression pixel or a click here: once (a replay
// is answered, counted as one, and nothing else: replay), its metrics,
// event and frequency count.
func (s *Server) countTracker(kind noticeKind, t *bidToken, now time.Time) (replay bool, err error) {
	if !s.trackers.first(kind, t) {
		s.m.trackerReplays.add(0, 1)
		return true, nil
	}
	st := s.m.campaign(string(t.Campaign))
	if kind == noticeClick {
		err = s.notices.click(t, now)
		if err == nil {
			st.clicks.add(0, 1)
		}
	} else if err = s.notices.impression(t, now); err == nil {
		st.imps.add(0, 1)
		st.predE6.add(0, uint64(max(t.PCTR, 0)*1e6))
	}
	if errors.Is(err, errTrackerAfterLoss) {
		s.m.trackersAfterLoss.add(0, 1)
		return true, nil // answered as a replay is: nothing counted
	}
	return false, err
}

// forwardTracker has the instance that placed the bid count its pixel or
// click (trackerForward), and tells whether it did. Counted wherever it
// landed, a pixel or click replayed at each instance of a fleet was counted
// once by each (an outside audit: its metrics, event log and the user's
// frequency count). Where the owner does not answer, it is counted here.
func (s *Server) forwardTracker(kind noticeKind, t *bidToken, token []byte) bool {
	if s.trackerForward == nil || len(t.Instance) == 0 || string(t.Instance) == s.cfg.InstanceID {
		return false
	}
	// The kind, when the owner must have answered by (this clock, unix
	// ns: later, this instance counts it, and so must the owner not), the
	// token.
	b := make([]byte, 9, 9+len(token))
	b[0] = byte(kind)
	binary.LittleEndian.PutUint64(b[1:], uint64(time.Now().Add(trackerAnswerBy).UnixNano()))
	switch s.trackerForward(string(t.Instance), append(b, token...)) {
	case trackerCounted:
		s.m.notices[kind].add(0, 1)
		return true
	case trackerReplay:
		return true
	}
	return false
}

// trackerAnswerBy is how long an owner has to count a forwarded pixel or
// click (budget waits 250 ms for its answer): one that reaches it later is
// left to the instance that forwarded it, which counted it.
const trackerAnswerBy = 200 * time.Millisecond

// What an owner answers a forwarded pixel or click (one byte).
const (
	trackerNotHere byte = iota // not answered, or not one to count there: counted here
	trackerCounted
	trackerReplay
)

// serveTracker counts a pixel or click another instance forwarded here (the
// kind's byte, the time it must be answered by, then the token as the
// browser sent it), verified again with
// this instance's keys, and answers trackerCounted, trackerReplay or
// trackerNotHere.
func (s *Server) serveTracker(b []byte) byte {
	if len(b) < 10 {
		return trackerNotHere
	}
	kind := noticeKind(b[0])
	if kind != noticeImp && kind != noticeClick {
		return trackerNotHere
	}
	now := time.Now()
	if now.UnixNano() > int64(binary.LittleEndian.Uint64(b[1:9])) {
		// Its caller has given up and counted it (a review: a pixel
		// queued here past the wait was counted by both). Clocks skewed by
		// more than the wait make the owner refuse: counted once, there.
		return trackerNotHere
	}
	t, err := s.signer.parseToken(b[9:], nil, kind, now)
	if err != nil || t.Test || string(t.Instance) != s.cfg.InstanceID {
		return trackerNotHere
	}
	if kind == noticeClick && s.landingURL(&t) == "" {
		return trackerNotHere
	}
	switch replay, err := s.countTracker(kind, &t, now); {
	case replay:
		return trackerReplay
	case err != nil:
		return trackerNotHere
	}
	return trackerCounted
}

// testNotice answers a notice of a free bid (a test-mode request, test=1,
// on an exchange with test_requests: free; the token says so): win, billing and loss
// notices 200, the pixel its GIF, the click its redirect; nothing is charged,
// held, counted against frequency caps, learned or logged.
func (s *Server) testNotice(ctx *fasthttp.RequestCtx, kind noticeKind, t *bidToken) {
	s.m.testNotices.add(0, 1)
	switch kind {
	case noticeImp:
		ctx.SetContentType("image/gif")
		ctx.SetBody(pixelGIF)
	case noticeClick:
		landing := s.landingURL(t)
		if landing == "" {
			ctx.Error(ErrNoticeNotFound.Error()+"\n", fasthttp.StatusNotFound)
			return
		}
		ctx.Redirect(landing, fasthttp.StatusFound)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
}

func (s *Server) noticeDone(ctx *fasthttp.RequestCtx, kind noticeKind, err error) bool {
	if err != nil {
		code := fasthttp.StatusServiceUnavailable // budget.ErrAckTimeout among others: retry
		switch {
		case errors.Is(err, ErrNoticeNotFound):
			code = fasthttp.StatusNotFound
		case errors.Is(err, budget.ErrTooLateToCharge):
			// Final like an expired token: a retry would be refused again.
			s.m.noticeBad.add(0, 1)
			code = fasthttp.StatusForbidden
		}
		ctx.Error(err.Error()+"\n", code)
		return false
	}
	s.m.notices[kind].add(0, 1)
	ctx.SetStatusCode(fasthttp.StatusOK)
	return true
}

func parseNoticeKind(p []byte) (noticeKind, bool) {
	for k := noticeKind(0); k < numNoticeKinds; k++ {
		if string(p) == noticeNames[k] {
			return k, true
		}
	}
	return 0, false
}

// clearingCharge turns the exchange's clearing price (CPM in the response
// currency) into the impression's charge in campaign micros, clamped to
// [the imp's floor, the bid]: a price above the bid is the exchange's error,
// one under the floor cannot be a real clearing price (a notice fired with
// p=0 from a browser, say); both are charged at the bound and counted.
func (s *Server) clearingCharge(t *bidToken, p []byte) (int64, error) {
	clearing, err := parsePriceMicros(p)
	if errors.Is(err, errPriceOverMax) {
		clearing, err = math.MaxInt64, nil // above any bid: charged at the bid, below
	}
	if err != nil {
		return 0, err
	}
	if t.PriceMicros <= 0 {
		return 0, ErrNoticePrice
	}
	if clearing > t.PriceMicros {
		s.m.cappedClearing.add(0, 1)
		clearing = t.PriceMicros
	}
	floor := min(t.FloorMicros, t.PriceMicros)
	// Under the floor, or 0 (on an imp with none), is not a price to fix
	// the charge at: the exchange's own notice may still raise it
	// (budget.Notice.UnderFloor). Fixed there, a URL fired first at p=0
	// made a floorless impression free (an outside review). A price at
	// the floor does fix it: a second-price auction with one bid over the
	// floor clears there, and left open, a replay raised it to the bid
	// (another review).
	t.UnderFloor = clearing < floor || clearing == 0
	if clearing < floor {
		s.m.underFloor.add(0, 1)
		clearing = floor
	}
	// The hold is the bid's price in campaign micros per impression, rounded
	// up; the charge is the same share of it as clearing is of the bid, in
	// integers (float64 lost a micro on products past 2^53), rounded up
	// too: never below the exchange's exact price (impCharge). 0 <= clearing
	// <= price, so the quotient is at most the hold and the division cannot
	// overflow.
	if t.ChargeMicros <= 0 || clearing < 0 {
		return 0, nil
	}
	hi, lo := bits.Mul64(uint64(t.ChargeMicros), uint64(clearing))
	c, rem := bits.Div64(hi, lo, uint64(t.PriceMicros))
	if rem > 0 {
		c++
	}
	return min(int64(c), t.ChargeMicros), nil
}

// errPriceOverMax is a price over 9*10^12 CPM (its micros would not fit in
// an int64): no price, but above any bid, whose micros do (convertMicros
// clamps them at MaxInt64/2), so clearingCharge charges it at the bid.
var errPriceOverMax = fmt.Errorf("%w: over 9*10^12", ErrNoticePrice)

// parsePriceMicros parses a decimal CPM like "1.2345", or with an exponent
// like "1.0E-4" (what Java's Double.toString writes under 0.001 and from
// 10^7: refused, such a price left the impression free on a charge_on: win
// exchange; an outside audit), into micros. Digits past the sixth decimal
// round it up, so a charge is never below the exact price (they were
// dropped: an outside check); a price under one micro is 0. The exponent's
// sign may be a space: a query string's "+" decoded ("1.75e+0", as printf's
// %e writes it, was refused). It needs a digit: "." is not a price; a sign,
// another space, a comma, hex, NaN and Inf are refused; a price over 9*10^12
// is errPriceOverMax. (The bound was 10^9, under what a bid may be: a bid in
// a currency of a tiny rate over it had any real clearing price charged at
// the bid; an outside review.)
func parsePriceMicros(p []byte) (int64, error) {
	if len(p) == 0 || len(p) > 32 {
		return 0, ErrNoticePrice
	}
	var digits [32]byte
	nd, point, i := 0, -1, 0 // point: the digits before the decimal point
	for ; i < len(p); i++ {
		c := p[i]
		if c == '.' && point < 0 {
			point = nd
		} else if c >= '0' && c <= '9' {
			digits[nd] = c - '0'
			nd++
		} else {
			break
		}
	}
	if nd == 0 {
		return 0, ErrNoticePrice
	}
	if point < 0 {
		point = nd
	}
	if i < len(p) { // an exponent: e or E, a sign, one to three digits, the end
		if p[i] != 'e' && p[i] != 'E' {
			return 0, ErrNoticePrice
		}
		i++
		neg := i < len(p) && p[i] == '-'
		if i < len(p) && (p[i] == '-' || p[i] == '+' || p[i] == ' ') {
			i++
		}
		if i == len(p) || len(p)-i > 3 {
			return 0, ErrNoticePrice
		}
		exp := 0
		for ; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return 0, ErrNoticePrice
			}
			exp = exp*10 + int(p[i]-'0')
		}
		if neg {
			exp = -exp
		}
		point += exp
	}
	digit := func(k int) int64 {
		if k < 0 || k >= nd {
			return 0
		}
		return int64(digits[k])
	}
	var whole, frac int64
	for k := 0; k < point; k++ {
		if whole = whole*10 + digit(k); whole > 9e12 {
			return 0, errPriceOverMax
		}
	}
	for k := point; k < point+6; k++ {
		frac = frac*10 + digit(k)
	}
	v := whole*1e6 + frac
	if v > 0 {
		for k := max(point+6, 0); k < nd; k++ {
			if digits[k] != 0 {
				v++ // digits past the sixth decimal: up to the next micro
				break
			}
		}
	}
	return v, nil
}

// landingURL is the click destination of the token's creative in the
// current campaign snapshot, else of a creative a reload removed less than
// token_ttl ago (retiredLandings).
func (s *Server) landingURL(t *bidToken) string {
	cat := s.catalog.Load()
	if cat == nil {
		return ""
	}
	k := creativeKey(t.Campaign, t.Creative)
	if url, ok := cat.landing[k]; ok {
		return url
	}
	return s.retired.lookup(k, time.Now())
}
