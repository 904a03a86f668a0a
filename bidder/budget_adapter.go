package bidder

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ortb"
)

// budgetMoney is the bid path's view of budget.Manager for one campaign
// snapshot: accounts resolved once, by campaign index.
type budgetMoney struct {
	m     *budget.Manager
	accts []*budget.Account
}

var _ money = (*budgetMoney)(nil)

func (b *budgetMoney) allow(ci int, maxCharge int64, now time.Time, draw uint64) reason {
	return decisionReason(b.m.AllowDraw(b.accts[ci], maxCharge, now, draw))
}

func (b *budgetMoney) observeRequest(now time.Time) { b.m.ObserveRequest(now) }

func (b *budgetMoney) freqLeft(ci int, user uint64, now time.Time) int64 {
	if user == 0 {
		return 0
	}
	return b.m.FreqLeft(b.accts[ci], user, now)
}

func (b *budgetMoney) hold(ci int, amount int64, user uint64, now time.Time) (uint64, reason) {
	a := b.accts[ci]
	if user != 0 && !b.m.FreqReserve(a, user, now) {
		return 0, reasonFreqCap // a concurrent request of the user took the last impression left
	}
	id, ok := b.m.Hold(a, amount, now)
	if !ok {
		if user != 0 {
			b.m.FreqSettle(a, user, "", now)
		}
		return 0, reasonBudget
	}
	return uint64(id), reasonNone
}

func (b *budgetMoney) unhold(c *campaigns.Campaign, hold uint64, user uint64, now time.Time) {
	h := b.m.Handle(c.ID)
	b.m.Unhold(h, budget.HoldID(hold))
	if user != 0 {
		b.m.FreqSettle(h, user, "", now)
	}
}

// budgetCampaigns converts a snapshot to the budget's campaign list.
func budgetCampaigns(snap *campaigns.Snapshot) []budget.Campaign {
	out := make([]budget.Campaign, 0, len(snap.Campaigns))
	for _, c := range snap.Campaigns {
		mode := budget.PacingEven
		switch c.Pacing.Mode {
		case campaigns.PacingForecast:
			mode = budget.PacingForecast
		case campaigns.PacingASAP:
			mode = budget.PacingASAP
		}
		out = append(out, budget.Campaign{
			ID:            c.ID,
			Currency:      c.Currency,
			DailyMicros:   c.Budget.DailyMicros,
			TotalMicros:   c.Budget.TotalMicros,
			TimeZone:      c.TimeZone,
			Pacing:        mode,
			FreqCapCount:  c.FreqCap.Count,
			FreqCapWindow: c.FreqCap.Window,
			Start:         c.Start,
			End:           c.End,
			Hours:         daypartHours(&c.Targeting),
		})
	}
	return out
}

// daypartHours is the campaign's dayparting as budget's per-weekday hour
// bits (all zero: every hour), so pacing plans over the hours it may bid.
func daypartHours(t *campaigns.Targeting) (h [7]uint32) {
	if !t.Dayparting {
		return h
	}
	for d := range t.Days {
		for hr := range t.Hours {
			if t.Days[d] && t.Hours[hr] {
				h[d] |= 1 << hr
			}
		}
	}
	return h
}

// bindBudget returns the function the server calls on every campaign reload.
func bindBudget(m *budget.Manager) func(*campaigns.Snapshot) (money, error) {
	return func(snap *campaigns.Snapshot) (money, error) {
		if err := m.SetCampaigns(budgetCampaigns(snap)); err != nil {
			return nil, err
		}
		b := &budgetMoney{m: m, accts: make([]*budget.Account, len(snap.Campaigns))}
		for _, c := range snap.Campaigns {
			if b.accts[c.Index] = m.Handle(c.ID); b.accts[c.Index] == nil {
				return nil, fmt.Errorf("budget has no account for campaign %q", c.ID)
			}
		}
		return b, nil
	}
}

// budgetSigner signs notice tokens with budget's token format: the payload
// signed once per bid, one tag per notice kind.
type budgetSigner struct {
	s        *budget.Signer
	instance string
	sealed   *sync.Pool // *budget.Sealed scratch
}

var _ tokenSigner = budgetSigner{}

// newBudgetSigner signs with keys[0] and verifies with any of keys.
func newBudgetSigner(instance string, keys ...[]byte) (budgetSigner, error) {
	s, err := budget.NewSigner(keys...)
	if err != nil {
		return budgetSigner{}, fmt.Errorf("%w: notices: %v", ErrConfig, err)
	}
	return budgetSigner{s: s, instance: instance, sealed: &sync.Pool{New: func() any { return new(budget.Sealed) }}}, nil
}

// noticeUse is the token use of a notice endpoint.
func noticeUse(k noticeKind) budget.Use { return budget.Use(k) + budget.UseWin }

func (s budgetSigner) appendTokens(dst []byte, t *bidToken, ends *[numNoticeKinds]int) []byte {
	// B2S is safe here: Seal copies the bytes and keeps nothing.
	tok := budget.Token{
		AuctionID:   ortb.B2S(t.AuctionID),
		ImpID:       ortb.B2S(t.ImpID),
		CampaignID:  ortb.B2S(t.Campaign),
		CreativeID:  ortb.B2S(t.Creative),
		InstanceID:  s.instance,
		BidMicros:   t.ChargeMicros,
		PriceMicros: t.PriceMicros,
		FloorMicros: t.FloorMicros,
		UserKey:     t.User,
		PCTR:        t.PCTR,
		ChargeOn:    chargeKind(t.ChargeOnWin),
		Test:        t.Test,
		HoldID:      budget.HoldID(t.Hold),
		Expires:     t.Expiry,
		Issued:      t.Issued,
	}
	sd := s.sealed.Get().(*budget.Sealed)
	s.s.Seal(sd, &tok)
	for k := noticeKind(0); k < numNoticeKinds; k++ {
		dst = sd.AppendFor(dst, noticeUse(k))
		ends[k] = len(dst)
	}
	if t.SegOK {
		seg, n := segmentBytes(t.Seg, t.NoMinToWin)
		dst = sd.AppendBinding(dst, seg[:n])
	}
	s.sealed.Put(sd)
	return dst
}

func (s budgetSigner) parseToken(src, seg []byte, kind noticeKind, now time.Time) (bidToken, error) {
	var (
		t     budget.Token
		err   error
		bound bool
	)
	key, noMTW, tag, ok := splitSegment(seg)
	if len(seg) == 0 || !ok {
		t, err = s.s.Parse(src, noticeUse(kind), now)
	} else {
		data, n := segmentBytes(key, noMTW)
		t, bound, err = s.s.ParseBound(src, noticeUse(kind), now, data[:n], tag)
	}
	switch {
	case errors.Is(err, budget.ErrExpired):
		err = ErrNoticeExpired // the token is genuine: its fields are returned with the error
	case err != nil:
		return bidToken{}, ErrNoticeForged
	}
	return bidToken{
		AuctionID:    []byte(t.AuctionID),
		ImpID:        []byte(t.ImpID),
		Campaign:     []byte(t.CampaignID),
		Creative:     []byte(t.CreativeID),
		PriceMicros:  t.PriceMicros,
		FloorMicros:  t.FloorMicros,
		ChargeMicros: t.BidMicros,
		Hold:         uint64(t.HoldID),
		User:         t.UserKey,
		PCTR:         t.PCTR,
		Instance:     []byte(t.InstanceID),
		ChargeOnWin:  t.ChargeOn == budget.KindWin,
		Test:         t.Test,
		Expiry:       t.Expires,
		Issued:       t.Issued,
		Seg:          key,
		SegOK:        bound,
		SegBad:       len(seg) > 0 && !bound,
		NoMinToWin:   bound && noMTW,
	}, err
}

func chargeKind(win bool) budget.NoticeKind {
	if win {
		return budget.KindWin
	}
	return budget.KindBill
}

// budgetSink sends verified notices to the budget manager. Which notice
// charges comes from the token (the exchange's rule at bid time).
type budgetSink struct {
	m      *budget.Manager
	events *eventLog
	won    *winCounts // first-time win notices per campaign (status.go); nil: not counted
}

var _ noticeSink = (*budgetSink)(nil)

func (b *budgetSink) notice(t *bidToken, kind budget.NoticeKind, charge int64, now time.Time) budget.Notice {
	return budget.Notice{
		Kind:           kind,
		ChargeOn:       chargeKind(t.ChargeOnWin),
		HoldID:         budget.HoldID(t.Hold),
		InstanceID:     string(t.Instance),
		CampaignID:     string(t.Campaign),
		AuctionID:      string(t.AuctionID),
		ImpID:          string(t.ImpID),
		BidMicros:      t.ChargeMicros,
		ClearingMicros: charge,
		Time:           now,
		Expires:        t.Expiry,
		Bid:            t.Issued,
		UnderFloor:     t.UnderFloor,
		User:           t.User,
	}
}

// charge settles a win or billing notice: the budget raises the impression's
// charge to this price if it is higher (provisionally for a win on a
// charge-on-billing exchange) and returns once the ledger acknowledged it;
// budget.ErrAckTimeout (answered 503) leaves the charge queued for the
// exchange's retry to find. repeat (noticeSink): the budget found it
// changed nothing, or the impression's charge was above what this notice
// added (an earlier notice had charged it).
func (b *budgetSink) charge(t *bidToken, kind noticeKind, charge int64, now time.Time) (bool, error) {
	k := budget.KindBill
	if kind == noticeWin {
		k = budget.KindWin
	}
	n := b.notice(t, k, charge, now)
	res, err := b.m.Settle(n)
	if kind == noticeWin && !res.Duplicate && b.won != nil && (err == nil || errors.Is(err, budget.ErrAckTimeout)) {
		b.won.add(t.Campaign) // a retry after an ack timeout is a duplicate: counted once
	}
	if err == nil && !res.Forwarded {
		// Won or billed: shown, whether or not its pixel fires, once (the
		// first of win, bill and pixel counts it). Only a bill counted:
		// on a charge-on-win exchange, which may never fire the billing
		// URL, a user whose pixels were blocked got 2 new charged
		// impressions every freq_pending_ttl under a cap of 2 an hour (an
		// outside audit). A win a loss then reverses stays counted: the
		// cap errs toward fewer impressions. A notice the bid's instance
		// settled (forwarded) is counted there, with its pixel.
		b.m.CountShown(n)
	}
	if res.ChargedMicros > 0 || res.First {
		b.events.add(event{Kind: kind.String(), Token: t, Charged: res.ChargedMicros, Late: res.Late, Dup: res.Duplicate, Time: now})
	}
	return res.Duplicate || res.LevelMicros > res.ChargedMicros, err
}

// release applies a loss notice: the hold is freed, or a provisional charge
// reversed (an event with a negative charge). A replay is not logged again,
// as a replayed win or bill is not.
func (b *budgetSink) release(t *bidToken, lossReason int64, now time.Time) (bool, error) {
	n := b.notice(t, budget.KindLoss, 0, now)
	res, err := b.m.Settle(n)
	if err == nil && !res.Duplicate && !res.Forwarded { // forwarded: the bid's instance ended it
		b.m.EndLost(n) // not if its pixel ended it
	}
	if errors.Is(err, budget.ErrOwnerUnreachable) {
		// Nothing happened here: the retry that reaches the owner logs the
		// loss (and is what shading learns from).
		return true, err
	}
	if res.First || res.ReversedMicros > 0 {
		b.events.add(event{Kind: "loss", Token: t, Charged: -res.ReversedMicros, LossReason: lossReason, Time: now})
	}
	return res.Duplicate || res.ReversedMicros > 0, err
}

// errTrackerAfterLoss: the tracker's bid had its loss notice (and no win or
// bill) before it: the markup cannot have been shown. Answered as any
// tracker is; not counted (budget.Manager.LostBid).
var errTrackerAfterLoss = errors.New("tracker of a bid that lost: not counted")

func (b *budgetSink) impression(t *bidToken, now time.Time) error {
	if b.m.CountPixel(b.notice(t, budget.KindLoss, 0, now)) {
		return errTrackerAfterLoss
	}
	b.events.add(event{Kind: "imp", Token: t, Time: now})
	return nil
}

func (b *budgetSink) click(t *bidToken, now time.Time) error {
	if b.m.LostBid(b.notice(t, budget.KindLoss, 0, now)) {
		return errTrackerAfterLoss
	}
	b.events.add(event{Kind: "click", Token: t, Time: now})
	return nil
}

// decisionReason maps a budget decision to a no-bid reason (the bid path's
// allow and POST /admin/explain share it).
func decisionReason(d budget.Decision) reason {
	switch d {
	case budget.DecisionOK:
		return reasonNone
	case budget.DecisionPaced:
		return reasonPaced
	case budget.DecisionFailClosed:
		return reasonFailClosed
	case budget.DecisionFlight, budget.DecisionUnknown:
		return reasonFlight
	default: // no lease headroom, budget exhausted
		return reasonBudget
	}
}

// windows is notices.dedup_window in the budget's form.
func (w DedupWindowConfig) windows() budget.NoticeWindows {
	return budget.NoticeWindows{Win: w.Win, Bill: w.Bill, Loss: w.Loss}
}
