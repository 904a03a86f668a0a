package budget

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// NoticeKind is the kind of an exchange notice.
type NoticeKind uint8

// Notice kinds. ChargeOn uses KindWin or KindBill.
const (
	KindWin  NoticeKind = iota + 1 // nurl
	KindBill                       // burl
	KindLoss                       // lurl
)

var kindNames = [...]string{"", "win", "bill", "loss"}

func (k NoticeKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Notice is a verified win, billing or loss notice.
type Notice struct {
	Kind       NoticeKind
	ChargeOn   NoticeKind // which kind charges for this exchange: KindWin or KindBill (zero: KindBill)
	HoldID     HoldID
	InstanceID string // the instance that placed the bid (from the token): it settles the notice
	CampaignID string
	AuctionID  string
	ImpID      string
	BidMicros  int64
	// ClearingMicros is the charge the notice reports, campaign micros,
	// already clamped by the caller to [floor, bid]; capped here at the bid
	// (and, for an impression's first charge, at its hold).
	ClearingMicros int64
	Time           time.Time // arrival; zero means the manager's clock
	// Expires is the token's expiry (zero: unknown).
	Expires time.Time
	// Bid is when the bid was made (the token's Issued), which tells a
	// notice too late to charge and a charge on an impression this process
	// may have forgotten (unreconciled_charges_total). Zero (a token minted
	// before tokens carried it): Expires - NoticeTTL, which is wrong once
	// notices.token_ttl changed since the token was minted.
	Bid time.Time
	// UnderFloor says the exchange's price was under the imp's floor, or 0
	// (where it has none), and the caller charged the floor: a notice fired
	// first with p=0, say, so it does not price its kind, and a later
	// notice of that kind may still raise the charge.
	UnderFloor bool `json:",omitempty"`
	// User is the bid's frequency-cap user key (0: none): the instance
	// that settles a forwarded notice counts its impression for the cap
	// (CountShown), as the pixel forwarded there is.
	User uint64 `json:",omitempty"`
}

// bidTime is when n's bid was made, as far as its token tells: Bid, else
// its expiry less the token lifetime; false when neither is known.
func (m *Manager) bidTime(n *Notice) (time.Time, bool) {
	switch {
	case !n.Bid.IsZero():
		return n.Bid, true
	case n.Expires.IsZero() || m.cfg.NoticeTTL <= 0:
		return time.Time{}, false
	}
	return n.Expires.Add(-m.cfg.NoticeTTL), true
}

// Result says what a notice did.
type Result struct {
	ChargedMicros  int64 // what this notice added to the impression's charge (a rise; >= 0)
	ReversedMicros int64 // a loss that took a provisional charge back: the amount
	LevelMicros    int64 // the impression's charge after the notice, as the settling instance knows it
	Late           bool  // charged (a rise) with no open hold on the settling instance
	Capped         bool  // clearing price above the bid (or the hold), capped
	Duplicate      bool  // changed nothing
	// First: the first notice of its kind (win, bill, loss) for the
	// impression within its de-dup window: the event log records each
	// kind once, a replay left out. Not the opposite of Duplicate: a first
	// bill at the win's price, or a first loss after the bill, changes
	// nothing and is still the first of its kind. On an impression this
	// process does not know and may have known (after a restart), First is
	// whether a win or bill charged anything, and whether a loss changed
	// anything: a replay there changes nothing.
	First       bool
	Won         bool // a win notice on a charge-on-billing exchange: charged provisionally (unless lost)
	Provisional bool // the impression's charge awaits its billing notice
	Forwarded   bool // settled by the owner (the instance that placed the bid) over NATS
	// Unreconciled: a charge on an impression unknown here that this process
	// may have charged before and forgotten (a restart, the window or an
	// early eviction): charged in full, at worst over the earlier level.
	Unreconciled bool
}

// noticeKey is the key of the impression n is about: (auction, imp) and
// the bid's instance and hold, which every notice of one bid carries alike
// (its token), so the key is the same on every instance. The first 16 bytes
// of SHA-256(auction 0x00 imp 0x00 instance 0x00 hold), and their hex. The
// bid's instance and hold make an exchange's reused request id (against
// OpenRTB: a new auction under an old id) a new impression, not a replay.
func noticeKey(n *Notice) (impKey, string) {
	h := sha256.New()
	h.Write([]byte(n.AuctionID))
	h.Write([]byte{0})
	h.Write([]byte(n.ImpID))
	h.Write([]byte{0})
	h.Write([]byte(n.InstanceID))
	var hold [9]byte
	binary.BigEndian.PutUint64(hold[1:], uint64(n.HoldID))
	h.Write(hold[:])
	var sum [32]byte
	h.Sum(sum[:0])
	k := impKey{binary.LittleEndian.Uint64(sum[0:8]), binary.LittleEndian.Uint64(sum[8:16])}
	return k, hex.EncodeToString(sum[:16])
}

func (n *Notice) validate() error {
	switch {
	case n.AuctionID == "" || n.ImpID == "":
		return fmt.Errorf("%w: auction and imp id are required", ErrBadNotice)
	case n.Kind < KindWin || n.Kind > KindLoss:
		return fmt.Errorf("%w: kind %d", ErrBadNotice, n.Kind)
	case n.BidMicros < 0 || n.ClearingMicros < 0:
		return fmt.Errorf("%w: negative price", ErrBadNotice)
	}
	return nil
}

// Settle applies a win, billing or loss notice and returns once the ledger
// entry it produced (or, for a notice that changed nothing, the impression's
// last entry) is acknowledged; after AckWait it returns ErrAckTimeout with
// the entry still queued (a retried notice waits for that same entry). It
// holds no lock while it waits.
//
// The charge of an impression is the highest price reported by its first
// win and its first billing notice at or over the floor and not 0 (capped at the bid,
// and at the hold while it is open), never lowered: such a notice above the
// level raises it by the difference (one ledger entry), one at or under it
// changes nothing, and so does a later notice of a kind that priced the
// impression (a replay, at any price), a win after a priced bill, and on a
// charge-on-win exchange a bill after a priced win. On a charge-on-billing
// exchange a win charges provisionally, its bill settles it, and a loss before
// the bill reverses it. Charges draw from the bid's hold, which stays open
// (reserved for the impression) until it expires; a loss with no charge
// releases it, and a reversal puts its charge back into it. A rise with no
// open hold here is charged and counted late.
//
// A notice for a bid another instance placed is forwarded to that instance
// (it knows the impression's level) and answered with its result; when it
// does not answer, the notice is settled here.
func (m *Manager) Settle(n Notice) (Result, error) {
	if err := n.validate(); err != nil {
		return Result{}, err
	}
	if m.closed.Load() {
		return Result{}, ErrClosed
	}
	if n.Time.IsZero() {
		n.Time = m.cfg.Clock.Now()
	}
	if m.tooLateToCharge(&n) {
		m.tooLateN.Add(1)
		return Result{}, ErrTooLateToCharge
	}
	ownerAway := false
	if m.forwards(&n) {
		res, ok, away, err := m.forward(&n)
		if ok {
			return res, err
		}
		ownerAway = away
	}
	m.awaitTwinLevels(m.cfg.AckWait)
	deadline := time.Now().Add(m.cfg.AckWait)
	out, err := m.settle(&n)
	if errors.Is(err, errReversalPending) {
		// A charge on an impression whose reversal the ledger has not
		// acknowledged: what the ledger says of it (refused by a seal: the
		// level comes back, tier.unreverse) decides what this charge is.
		if err := m.waitAck(out.seq, m.cfg.AckWait); err != nil {
			return Result{}, err
		}
		if out, err = m.settle(&n); errors.Is(err, errReversalPending) {
			return Result{}, ErrAckTimeout
		}
	}
	if err != nil {
		return out.res, err
	}
	if err := m.waitAck(out.seq, m.cfg.AckWait); err != nil {
		return out.res, err
	}
	if err := m.waitRecharge(out.rc, deadline); err != nil {
		return out.res, err
	}
	m.finish(&out)
	if ownerAway && n.Kind == KindLoss && out.res.ReversedMicros == 0 {
		// Settled here, the loss changed nothing, and its owner, which may
		// hold a provisional charge that it would reverse, is there but
		// could not answer (a timeout, busy, NATS down): the exchange's
		// retry may reach it (a fleet audit's loss during a NATS outage was
		// answered 200 and its win stayed charged); so is one with no
		// subscription while its heartbeat is live (cut off from NATS,
		// forward.go). An owner nothing serves and whose heartbeat is gone
		// (closed, or expired) gets no retry: an instance id may never run
		// again (renamed, moved), and its old bids' losses would be refused
		// for good.
		return out.res, ErrOwnerUnreachable
	}
	return out.res, nil
}

// Release applies a loss notice: it frees the hold of a lost bid, or reverses
// a provisional charge. Idempotent; a loss after a settled charge changes
// nothing.
func (m *Manager) Release(n Notice) error {
	n.Kind = KindLoss
	_, err := m.Settle(n)
	return err
}

// waitAck waits for the ledger entry seq; a manual manager (tests) whose
// publisher is not running waits for nothing.
func (m *Manager) waitAck(seq uint64, d time.Duration) error {
	if seq == 0 || m.ledger.durable.Load() >= seq || (m.cfg.manual && !m.ledgerRuns.Load()) {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	if err := m.ledger.wait(seq, t.C); err != nil {
		m.ackTimeouts.Add(1)
		return err
	}
	return nil
}

// settleOut is what settle did: the result so far, the ledger sequence to
// wait for, the chain that follows a charge on an impression unknown here
// (recharge.go), and a provisional charge on such an impression that the
// ledger may find recorded before (finish).
type settleOut struct {
	res   Result
	seq   uint64
	rc    *recharge
	watch provWatch
	raise raiseWatch
	// forgotten: the impression was not known here and this process may
	// have known it before (a restart, an eviction) or another settled it:
	// its kinds seen are not known, so a charge's res.First is whether it
	// charged (finish).
	forgotten bool
}

// provWatch names a provisional first charge on an impression this process
// did not know: if the ledger finds its id recorded before (ledgerDone), the
// tier entry is marked fForeign.
type provWatch struct {
	on  bool
	key impKey
	gen uint16
}

// raiseWatch names any other charge's ledger entry: its sequence, its
// amount, and the ledger's duplicate count before it was enqueued; if the
// ledger found it recorded before, finish takes its amount out of the
// result (ledger.wasDup).
type raiseWatch struct {
	on         bool
	seq, since uint64
	delta      int64
}

// finish makes out.res say what the notice charged once its entries are
// acknowledged: a chain's outcome (recharge.adjust), and a provisional
// charge the ledger took for a duplicate charged nothing (the event log and
// the win counts read res).
func (m *Manager) finish(out *settleOut) {
	out.rc.adjust(&out.res)
	if w := out.watch; w.on && out.res.ChargedMicros > 0 && m.tier.foreign(w.key, w.gen) {
		out.res.ChargedMicros, out.res.Late, out.res.Duplicate, out.res.First = 0, false, true, false
	}
	if r := out.raise; r.on && m.ledger.wasDup(r.seq, r.since) {
		// The ledger took this entry's amount back; what a chain of the same
		// notice charged again (a seal's recharge) still counts.
		out.res.ChargedMicros -= r.delta
		if out.res.ChargedMicros <= 0 {
			out.res.ChargedMicros, out.res.Late, out.res.Duplicate, out.res.First = 0, false, true, false
		}
	}
	if out.forgotten && out.res.ChargedMicros <= 0 && out.res.ReversedMicros == 0 {
		// A bill replayed after a restart charges nothing (the ledger had
		// its level) and is no first bill; neither, to the event log, is a
		// first one that charged nothing, which cannot be told from it.
		out.res.First = false
	}
}

// settle applies n here; the caller waits for out.seq (and out.rc) and then
// calls finish.
func (m *Manager) settle(n *Notice) (settleOut, error) {
	a := m.account(n.CampaignID)
	if a == nil {
		a = m.retired(n.CampaignID)
	}
	if a == nil {
		return settleOut{}, fmt.Errorf("%w: %q", ErrUnknownCampaign, n.CampaignID)
	}
	key, hexKey := noticeKey(n)
	now := m.tier.sec(n.Time.UnixNano())
	s, e, existed := m.tier.acquire(key, now)
	defer s.mu.Unlock()
	if existed && e.flags&^(fUnpended|fCounted) == 0 && e.level == 0 && e.gen == 0 {
		existed = false // only its pixel was seen (EndPending): the impression is as unknown as before
	}
	if n.Kind != KindLoss && e.flags&fLoss != 0 && e.gen > 0 && e.level == 0 && e.seq > m.ledger.durable.Load() && m.ledgerRuns.Load() {
		// Its reversal is not acknowledged yet: the ledger may refuse it
		// (a bill settled the generation elsewhere, its seal) and the level
		// come back (tier.unreverse). Charged now, under the next
		// generation, a replay of that bill was charged twice (a review).
		// (A manager whose publisher does not run, in tests, flushes by
		// hand and is not held back.)
		return settleOut{seq: e.seq}, errReversalPending
	}
	op := settleOp{m: m, a: a, n: n, s: s, e: e, hexKey: hexKey, now: now, existed: existed, key: key}
	forgotten := false
	if !existed && (!op.own() || m.unreconciled(n)) {
		e.flags |= fUnsure // another instance's bid, or one this process may have forgotten (recharge.go)
		forgotten = true
	}
	if _, known := m.bidTime(n); !existed && !known {
		forgotten = true // no telling when its bid was: maybe before this process
	}
	if n.Kind == KindLoss {
		res := op.loss()
		if forgotten {
			res.First = !res.Duplicate // a loss released or reversed something
		}
		return settleOut{res: res, seq: e.seq}, nil
	}
	res := op.charge()
	return settleOut{res: res, seq: e.seq, rc: op.rc, watch: op.watch, raise: op.raise, forgotten: forgotten}, nil
}

// errReversalPending: settle found the impression's reversal waiting for its
// ledger acknowledgement (Settle waits for it and settles again).
var errReversalPending = errors.New("budget: the impression's reversal is not acknowledged yet")

// settleOp is one notice applied to one impression, under its tier shard's
// lock.
type settleOp struct {
	m       *Manager
	a       *Account
	n       *Notice
	s       *tierShard
	e       *tierEntry
	hexKey  string
	now     uint32
	existed bool
	rc      *recharge // set by charge: a settled charge on an impression the tier did not know
	key     impKey
	watch   provWatch  // set by charge: a provisional one
	raise   raiseWatch // set by charge: any other (finish)
}

func (o *settleOp) own() bool { return o.n.InstanceID == "" || o.n.InstanceID == o.m.cfg.InstanceID }

func (o *settleOp) dup(res *Result) {
	res.Duplicate = true
	o.a.dupN.Add(1)
	o.m.dupN.Add(1)
}

func (o *settleOp) charge() Result {
	m, a, n, e := o.m, o.a, o.n, o.e
	var res Result
	chargeOn := n.ChargeOn
	if chargeOn == 0 {
		chargeOn = KindBill
	}
	prov := n.Kind == KindWin && chargeOn == KindBill
	res.Won = prov
	if n.Kind == KindBill {
		res.First = e.flags&fBill == 0
	} else {
		res.First = e.flags&fWin == 0
	}
	// A win is kept at least as long as a bill: its bill may come later, and
	// on a charge-on-win exchange a later notice of it (its bill, the win
	// URL fired again) changes nothing, not even charging again, so its
	// level must still be known (TestChargeOnWinLevelOutlivesWinWindow).
	win := m.cfg.DedupWindow.Bill
	if n.Kind == KindWin {
		win = max(m.cfg.DedupWindow.Win, m.cfg.DedupWindow.Bill)
	}
	m.tier.touch(o.s, e, o.now+windowSec(win))
	flags := e.flags | fWin
	if n.Kind == KindBill {
		flags = e.flags | fBill
	}
	if prov && e.flags&(fLoss|fSettled) == fLoss {
		// The exchange said lost, then won: only its bill charges now.
		if flags == e.flags {
			o.dup(&res)
		}
		e.flags = flags
		res.LevelMicros = e.level
		return res
	}
	priced, closed := fWinPriced, fWinPriced|fBillPriced // a priced bill settles: no win after it raises
	if n.Kind == KindBill {
		priced, closed = fBillPriced, fBillPriced
		if chargeOn == KindWin {
			// The win settles on such an exchange, which may never fire
			// the bid's billing URL: after it, that URL fired once at the
			// bid raised the charge (an outside review). Before the win it
			// still charges: a win notice the exchange lost must not make
			// a billed impression free (another review).
			closed |= fWinPriced
		}
	}
	if e.flags&closed != 0 {
		// A notice of a kind that already priced this impression: a
		// replay, whatever its price. The price argument is not signed
		// (the exchange puts it in), so the highest price of any replay was
		// charged: anyone who saw a billing URL could fire it again at the
		// bid and turn a second-price clearing price into the whole bid (an
		// outside audit). Only the first win and the first bill at or over
		// the floor report a price, and no win after a priced bill; one under
		// it, or at 0 (p=0 fired first, charged at the floor), leaves the
		// kind open to the exchange's own notice (Notice.UnderFloor).
		o.dup(&res)
		res.LevelMicros, res.Provisional = e.level, e.flags&fProv != 0
		// Seen, though it changed nothing: its replays are not first (a
		// win after a priced bill was, each time, and the event log wrote
		// a win line per replay: an outside audit).
		e.flags |= flags & (fWin | fBill)
		return res
	}
	if !n.UnderFloor {
		flags |= priced
	}
	if !prov {
		flags = flags&^fProv | fSettled
	}
	price := n.ClearingMicros
	if n.BidMicros > 0 && price > n.BidMicros {
		price, res.Capped = n.BidMicros, true
	}
	// A rise is drawn from the bid's hold while it is open: the hold stays
	// reserved for its impression until it expires (or a loss), whatever
	// the first notice charged, so a win at the floor followed by its bill
	// at the clearing price is paid out of the lease, not late. Taking the
	// whole hold at the first charge returned the rest to the lease at once,
	// and bids placed against it made the bill's rise overspend: an outside
	// audit spent 6x a budget with wins at the floor, then bills.
	delta := max(price-e.level, 0)
	var drawn int64
	open := false
	if o.own() && delta > 0 {
		var fresh int64
		drawn, fresh, open = m.holds.drawFresh(n.HoldID, a.idx, delta, m.cfg.Clock.Now().UnixNano())
		a.pending.Add(-fresh)
		if open && drawn < delta { // above the hold (level + what it has left): capped at it
			price, delta, res.Capped = e.level+drawn, drawn, true
		}
	}
	if res.Capped {
		a.cappedN.Add(1)
	}
	if delta > 0 && prov && flags&fSettled == 0 {
		flags |= fProv
	}
	if delta > 0 {
		a.mu.Lock()
		a.spent.Add(delta) // spent first, then held: commitments never look smaller than they are
		a.held.Add(-drawn)
		a.drawn.Add(drawn)
		a.mu.Unlock()
	}
	first := e.flags&(fWin|fBill) == 0
	if delta == 0 && !first && flags&(fProv|fSettled) == e.flags&(fProv|fSettled) {
		o.dup(&res) // the level rule: at or under the level changes nothing (a bill settling a provisional charge does)
	}
	e.flags = flags
	res.Provisional = flags&fProv != 0
	if delta == 0 {
		res.LevelMicros = e.level
		if e.flags&fUnsure != 0 && !prov && e.level > 0 {
			o.seal(n.Kind.String(), e.level) // a bill confirming a level that may have been reversed elsewhere
		}
		return res
	}
	if !open { // no open hold here: the whole rise is beyond the lease
		res.Late = true // counted when the ledger acknowledges it (ledgerDone)
	}
	if e.level > 0 {
		m.risesN.Add(1)
	}
	if !o.existed && m.unreconciled(n) {
		res.Unreconciled = true
		m.unreconciledN.Add(1)
	}
	if res.Provisional {
		m.provN.Add(1)
	}
	base := e.level
	e.level = price
	res.ChargedMicros, res.LevelMicros = delta, price
	le := LedgerEntry{
		MsgID: o.hexKey + "." + strconv.Itoa(int(e.gen)) + "." + strconv.FormatInt(price, 10),
		Kind:  n.Kind.String(), Charged: delta, Level: price, Provisional: res.Provisional,
		Late: res.Late, Capped: res.Capped,
	}
	// A settled charge where this process may not know the impression's
	// history: its generation may hold a win reversed elsewhere (recharge.go).
	// A provisional one waits for its bill to find out.
	unsure := e.flags&fUnsure != 0
	if !res.Provisional && base == 0 && (unsure || !o.existed) {
		e.flags &^= fUnsure
		o.rc = newRecharge(o.hexKey, e.gen, le.Kind)
		le.rc = o.rc
	}
	// A provisional one may be the replay of a charge recorded before (the
	// process restarted, or another instance settled it): if the ledger says
	// so, ledgerDone marks the entry fForeign, and a loss here cannot tell a
	// provisional win from a billed charge (loss).
	if res.Provisional && base == 0 && (unsure || !o.existed) {
		o.watch = provWatch{on: true, key: o.key, gen: e.gen}
		le.watch = o.watch
	}
	// Any other provisional charge found recorded before (a rise to a price
	// another instance billed while this one could not be reached: an
	// outside audit's fleet netted 500 for a bill of 8,500 after the loss
	// reversed the whole level) marks the level foreign too; its result is
	// the raise watch's below.
	if res.Provisional && !o.watch.on {
		le.watch = provWatch{on: true, key: o.key, gen: e.gen}
	}
	// Any other charge may still be the replay of one recorded before this
	// process knew the impression (a rise after a restart: an outside audit
	// found the event log charging what the ledger took back): if the
	// ledger says so, ledgerDone records the entry's sequence and finish
	// takes its amount out of the result.
	raise := o.rc == nil && !o.watch.on && delta > 0
	le.raise = raise
	since := m.ledger.dupN.Load()
	prevSeq := e.seq
	o.enqueue(le)
	if raise {
		o.raise = raiseWatch{on: true, seq: e.seq, since: since, delta: delta}
	}
	a.markCharge(n.Time, e.seq)
	if base > 0 {
		if old, _ := a.oldCharge(prevSeq, n.Time); old {
			e.flags |= fOldDay // a rise across midnight: its reversal counts as old
		}
	}
	if !res.Provisional && base > 0 && unsure {
		o.seal(le.Kind, base) // a rise over a level that may have been reversed elsewhere
		o.rc.raise = o.raise
	}
	return res
}

func (o *settleOp) loss() Result {
	m, a, n, e := o.m, o.a, o.n, o.e
	var res Result
	m.tier.touch(o.s, e, o.now+windowSec(m.cfg.DedupWindow.Loss))
	res.First = e.flags&fLoss == 0
	flags := e.flags | fLoss
	switch {
	case e.flags&fProv != 0 && e.level > 0 && e.flags&fForeign == 0:
		// A provisional charge the exchange did not bill: reversed.
		l := e.level
		old, day := a.oldCharge(e.seq, n.Time)
		old = old || e.flags&fOldDay != 0
		// The reversed charge goes back to the bid's hold while it is open
		// (reserved until it expires: the exchange's bill may still come,
		// and would otherwise be late), else to the lease.
		refilled := o.own() && m.holds.refill(n.HoldID, a.idx, l, m.cfg.Clock.Now().UnixNano())
		a.mu.Lock()
		if refilled {
			a.held.Add(l)
			a.drawn.Add(-l) // not spend after all (pacing's conversion of bids' money)
		}
		a.revWait.Add(l) // first: commitments never look smaller than they are
		a.spent.Add(-l)
		a.mu.Unlock()
		gen := e.gen
		e.gen++
		e.level, e.flags = 0, flags&^(fProv|fUnsure|fOldDay) // reversed here (a duplicate if reversed elsewhere too)
		res.ReversedMicros = l
		m.reversedN.Add(1)
		m.reversedMicros.Add(uint64(l))
		o.enqueue(LedgerEntry{MsgID: o.hexKey + "." + strconv.Itoa(int(gen)) + ".rev", Kind: KindLoss.String(), Charged: -l,
			revDay: day, revOld: old, unrev: provWatch{on: true, key: o.key, gen: gen}})
		return res
	case e.flags&(fLoss|fSettled) != 0 || e.level > 0:
		// Already released, or settled: a loss changes nothing. So does a
		// loss on a level the ledger had recorded before this process
		// charged it (fForeign): that entry may be a bill, which no loss
		// reverses, or a provisional win, which one would. Reversing it
		// made a billed impression free after a restart (a bill, a restart,
		// the win URL and the loss URL fired again); left standing, a
		// provisional win reversed only after a restart is over-counted.
		o.dup(&res)
		e.flags = flags
		res.LevelMicros = e.level
		return res
	}
	e.flags = flags
	if o.own() {
		if amt, fresh, ok := m.holds.takeFresh(n.HoldID, a.idx); ok {
			a.mu.Lock()
			a.held.Add(-amt)
			a.mu.Unlock()
			if fresh {
				a.pending.Add(-amt)
			}
		}
	}
	return res
}

// seal queues a seal of the impression's generation (recharge.go) for a
// settled charge on a level that may have been reversed elsewhere: if it was,
// amount (what this process took the level to be before its own charges) is
// charged again. The impression is no longer unsure.
func (o *settleOp) seal(kind string, amount int64) {
	o.e.flags &^= fUnsure
	o.rc = newRecharge(o.hexKey, o.e.gen, kind)
	o.rc.amount = amount
	o.enqueue(LedgerEntry{MsgID: o.hexKey + "." + strconv.Itoa(int(o.e.gen)) + ".rev", Kind: kindSeal, Level: o.e.level,
		rc: o.rc, step: rcSeal})
}

// enqueue fills in le from the notice and queues it; the impression's entry
// remembers its sequence.
func (o *settleOp) enqueue(le LedgerEntry) {
	n := o.n
	le.Auction, le.Imp, le.Campaign, le.Instance, le.Boot = n.AuctionID, n.ImpID, o.a.id, o.m.cfg.InstanceID, o.m.boot
	le.Bid, le.Clearing, le.Time, le.acct = n.BidMicros, n.ClearingMicros, n.Time.UnixNano(), o.a
	o.e.seq = o.m.ledger.enqueue(&le)
}

// tooLateToCharge tells whether a win or billing notice comes longer after
// its bid than a replay of it is sure to be recognised. A replay is found by
// the tier while it keeps the impression (its kind's window after each
// notice, settleOp.charge) and, after the tier forgot it (window, eviction,
// restart), by the ledger's message ids for the stream's duplicate window,
// the longest of the kinds' windows, counted from the earlier notice. Every
// notice comes after the bid, so a notice within that longest window of the
// bid is checked against any earlier notice of its impression; past it, an
// exact replay (a burl fired again the next day, while its token is still
// valid) would be charged again. Such a notice is refused, counted and never
// charged. A loss is never refused: it can only release or reverse.
func (m *Manager) tooLateToCharge(n *Notice) bool {
	bid, ok := m.bidTime(n)
	if n.Kind == KindLoss || !ok {
		return false
	}
	return n.Time.Sub(bid) > m.cfg.DedupWindow.Longest()
}

// unreconciled tells whether a charge on an impression unknown here may
// follow an earlier charge this process no longer knows of: the bid was made
// before this process started or before an entry was evicted early, or
// longer ago than the shortest window.
func (m *Manager) unreconciled(n *Notice) bool {
	t, ok := m.bidTime(n)
	if !ok {
		return false
	}
	bid := t.UnixNano()
	w := m.cfg.DedupWindow
	return bid < max(m.startNs, m.tier.earlyAt.Load()) || n.Time.UnixNano()-bid > int64(min(w.Win, w.Bill, w.Loss))
}

func windowSec(d time.Duration) uint32 {
	return uint32(min(max((d+time.Second-1)/time.Second, 1), 1<<31))
}
