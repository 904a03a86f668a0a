package budget

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
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
	Kind           NoticeKind
	ChargeOn       NoticeKind // which kind charges for this exchange: KindWin or KindBill (zero: KindBill)
	HoldID         HoldID
	InstanceID     string // the instance that placed the hold (from the token); another instance's hold is never touched
	CampaignID     string
	AuctionID      string
	ImpID          string
	BidMicros      int64
	ClearingMicros int64
	Time           time.Time // arrival; zero means the manager's clock
}

// Result says what a notice did.
type Result struct {
	ChargedMicros int64
	Late          bool // charged although its hold had expired (or was not on this instance)
	Capped        bool // clearing price above the bid (or the hold), capped
	Duplicate     bool // already settled: nothing changed
	Won           bool // a win notice recorded without charge (charge on billing)
}

// Dedup states of an (auction, imp) key.
const (
	stWon      uint8 = 1
	stCharged  uint8 = 2
	stReleased uint8 = 3
)

type dedupKey [2]uint64

type dedupEntry struct {
	state   uint8
	expires int64
}

type dedupShard struct {
	mu mutex[lkDedupShard]
	m  map[dedupKey]dedupEntry
	_  [40]byte
}

type dedupSet struct{ shards [64]dedupShard }

func newDedupSet() *dedupSet {
	d := &dedupSet{}
	for i := range d.shards {
		d.shards[i].m = map[dedupKey]dedupEntry{}
	}
	return d
}

// transition moves key to state to if allowed, and returns the previous state.
// Allowed: none->any, won->charged|released, released->charged (a late bill).
func (d *dedupSet) transition(k dedupKey, to uint8, expires int64) (prev uint8, ok bool) {
	s := &d.shards[k[0]%uint64(len(d.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[k]
	prev = e.state
	switch {
	case prev == 0, prev == stWon && to != stWon, prev == stReleased && to == stCharged:
		s.m[k] = dedupEntry{state: to, expires: expires}
		return prev, true
	}
	return prev, false
}

func (d *dedupSet) prune(now int64) {
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expires <= now {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

// noticeKey is the de-duplication key of (auction, imp), the same on every
// instance: the first 16 bytes of SHA-256(auction 0x00 imp).
func noticeKey(auction, imp string) (dedupKey, string) {
	h := sha256.New()
	h.Write([]byte(auction))
	h.Write([]byte{0})
	h.Write([]byte(imp))
	var sum [32]byte
	h.Sum(sum[:0])
	k := dedupKey{binary.LittleEndian.Uint64(sum[0:8]), binary.LittleEndian.Uint64(sum[8:16])}
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

// Settle applies a win or billing notice. The notice's kind charges when it is
// the exchange's ChargeOn kind (a billing notice also charges when ChargeOn is
// win and the win notice never came); the first charging notice of an
// (auction, imp) charges, every later one is a duplicate. A win notice on a
// charge-on-billing exchange records the win and charges nothing. A loss
// notice is passed to Release.
//
// The charge is the clearing price, capped at the bid and at the hold. A
// notice whose hold has expired (or lives on another instance) is still
// charged and counted late. Settle never double charges.
func (m *Manager) Settle(n Notice) (Result, error) {
	if err := n.validate(); err != nil {
		return Result{}, err
	}
	if m.closed.Load() {
		return Result{}, ErrClosed
	}
	if n.Kind == KindLoss {
		return Result{}, m.Release(n)
	}
	a := m.account(n.CampaignID)
	if a == nil {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownCampaign, n.CampaignID)
	}
	now := n.Time
	if now.IsZero() {
		now = m.cfg.Clock.Now()
	}
	chargeOn := n.ChargeOn
	if chargeOn == 0 {
		chargeOn = KindBill
	}
	key, msgID := noticeKey(n.AuctionID, n.ImpID)
	exp := now.Add(m.cfg.NoticeTTL).UnixNano()
	if n.Kind == KindWin && chargeOn == KindBill {
		if _, ok := m.dedup.transition(key, stWon, exp); !ok {
			m.dupN.Add(1)
			return Result{Duplicate: true}, nil
		}
		return Result{Won: true}, nil
	}
	if _, ok := m.dedup.transition(key, stCharged, exp); !ok {
		a.dupN.Add(1)
		m.dupN.Add(1)
		return Result{Duplicate: true}, nil
	}
	var res Result
	price := n.ClearingMicros
	if n.BidMicros > 0 && price > n.BidMicros {
		price, res.Capped = n.BidMicros, true
	}
	var holdAmt int64
	open := false
	if n.InstanceID == "" || n.InstanceID == m.cfg.InstanceID {
		holdAmt, open = m.holds.take(n.HoldID, a.idx)
	}
	if open && price > holdAmt {
		price, res.Capped = holdAmt, true
	}
	if res.Capped {
		a.cappedN.Add(1)
	}
	a.mu.Lock()
	a.spent.Add(price) // spent first, then held: commitments never look smaller than they are
	if open {
		a.held.Add(-holdAmt)
	}
	a.mu.Unlock()
	if !open {
		res.Late = true
		a.lateN.Add(1)
		a.lateMicros.Add(uint64(price))
	}
	res.ChargedMicros = price
	m.ledger.enqueue(LedgerEntry{
		MsgID: msgID, Auction: n.AuctionID, Imp: n.ImpID, Campaign: a.id, Instance: m.cfg.InstanceID,
		Boot: m.boot, Kind: n.Kind.String(), Bid: n.BidMicros, Clearing: n.ClearingMicros,
		Charged: price, Late: res.Late, Capped: res.Capped, Time: now.UnixNano(), acct: a,
	})
	return res, nil
}

// Release frees the hold of a lost bid. Idempotent; a loss after a charge
// changes nothing.
func (m *Manager) Release(n Notice) error {
	if n.AuctionID == "" || n.ImpID == "" {
		return fmt.Errorf("%w: auction and imp id are required", ErrBadNotice)
	}
	a := m.account(n.CampaignID)
	if a == nil {
		return fmt.Errorf("%w: %q", ErrUnknownCampaign, n.CampaignID)
	}
	now := n.Time
	if now.IsZero() {
		now = m.cfg.Clock.Now()
	}
	key, _ := noticeKey(n.AuctionID, n.ImpID)
	if _, ok := m.dedup.transition(key, stReleased, now.Add(m.cfg.NoticeTTL).UnixNano()); !ok {
		m.dupN.Add(1)
		return nil
	}
	if n.InstanceID != "" && n.InstanceID != m.cfg.InstanceID {
		return nil
	}
	if amt, ok := m.holds.take(n.HoldID, a.idx); ok {
		a.mu.Lock()
		a.held.Add(-amt)
		a.mu.Unlock()
	}
	return nil
}
