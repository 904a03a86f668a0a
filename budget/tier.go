package budget

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The de-duplication tier: what this instance knows of each impression it
// settled, by impression key (auction, imp, the bid's instance and hold):
// the charge level, its generation (bumped by a reversal), what was seen
// (win, bill, loss, provisional, settled) and the ledger sequence of the last
// entry enqueued for it (a retried notice waits for that entry's
// acknowledgement instead of enqueueing another).
//
// Storage is 64 shards, each one open-addressed array of 40-byte entries
// (linear probing, backward-shift deletion: no tombstones and no per-entry
// heap object), grown by doubling up to the shard's share of MaxEntries at a
// load of at most 3/4. An entry lives for the window of the notices that
// touched it (the longest one wins; a provisional charge waits for its bill),
// then reads as absent and is pruned. A full shard drops its oldest entries
// first (by expiry, from a 256-bucket histogram of expiries) and counts the
// ones dropped before their window ended. The ledger's message ids stay the
// source of truth for exact replays beyond the tier.
//
// ristretto (in go.mod) does not fit: its Set is asynchronous (a Get right
// after a Set may miss, and two notices for one impression racing in between
// would both see no level), its TinyLFU admission may refuse a new key (a
// level state machine must keep every state it is given), it has no
// read-modify-write under a lock, and an item costs several times these 40
// bytes.

// impKey is an impression's key (noticeKey): the first 16 bytes of
// SHA-256(auction 0x00 imp 0x00 instance 0x00 hold).
type impKey [2]uint64

// Impression flags.
const (
	fWin        uint16 = 1 << iota // a win notice was seen
	fBill                          // a billing notice was seen
	fLoss                          // a loss notice was seen
	fProv                          // the level is provisional: a win on a charge-on-billing exchange, no bill yet
	fSettled                       // a bill (or a win on a charge-on-win exchange) settled the level
	fUnsure                        // the level is a provisional charge made here on an impression unknown here: a loss elsewhere may have reversed it (recharge.go)
	fOldDay                        // part of the level was charged on an earlier day than its last entry (dayReport)
	fForeign                       // the provisional level's ledger entry was recorded before this process charged it: a loss here changes nothing (settleOp.loss)
	fUnpended                      // the bid's pending frequency count was ended, by its pixel or its loss (EndPending)
	fCounted                       // the bid's impression was counted for frequency caps, by its pixel or its bill (Shown)
	fWinPriced                     // a win notice not UnderFloor priced the impression: later ones change nothing
	fBillPriced                    // a billing notice not UnderFloor priced the impression: later ones change nothing
)

// tierEntry is one impression: 40 bytes. exp == 0 marks an empty slot.
type tierEntry struct {
	k0, k1 uint64
	level  int64  // the impression's charge, campaign micros
	seq    uint64 // ledger sequence of the last entry enqueued for the impression (0: none)
	exp    uint32 // seconds since the tier's epoch
	gen    uint16 // generation: bumped when a provisional charge is reversed
	flags  uint16
}

const (
	tierShards   = 64
	tierBuckets  = 256
	tierMinSlots = 256
	// tierEntryBytes is the size of one entry (TestTierEntrySize).
	tierEntryBytes = 40
)

type tierShard struct {
	mu       mutex[lkTierShard]
	slots    []tierEntry
	n        int    // live entries (some may be expired, not yet pruned)
	max      int    // most entries
	maxSlots int    // slots at max (load <= 3/4)
	minExp   uint32 // no entry expires before this (a lower bound)
	hist     [tierBuckets]uint32
	_        [40]byte
}

type tier struct {
	shards  [tierShards]tierShard
	epoch   int64  // unix seconds of exp 0
	res     uint32 // seconds per histogram bucket
	evicted atomic.Uint64
	pruned  atomic.Uint64
	// earlyAt is the newest time (unix ns) an entry was dropped before its
	// window ended: an impression first seen before that may be forgotten.
	earlyAt atomic.Int64
}

// newTier makes a tier of at most maxEntries entries whose windows are at
// most maxWindow.
func newTier(maxEntries int, maxWindow time.Duration, now time.Time) *tier {
	t := &tier{epoch: now.Unix() - 1}
	t.res = uint32(max(1, (int64(maxWindow/time.Second)+tierBuckets-7)/(tierBuckets-6)))
	per := max(maxEntries/tierShards, 1)
	for i := range t.shards {
		s := &t.shards[i]
		s.max = per
		s.maxSlots = per*4/3 + 1
		s.slots = make([]tierEntry, min(tierMinSlots, s.maxSlots))
		s.minExp = ^uint32(0)
	}
	return t
}

// sec is t's time in tier seconds (at least 1).
func (t *tier) sec(ns int64) uint32 {
	s := ns/1e9 - t.epoch
	return uint32(min(max(s, 1), 1<<32-1))
}

func (t *tier) bucket(exp uint32) int { return int(exp/t.res) % tierBuckets }

func (s *tierShard) home(k1 uint64) int {
	hi, _ := bits.Mul64(k1, uint64(len(s.slots)))
	return int(hi)
}

// acquire locks k's shard and returns it with k's entry, made (empty, with
// exp = now) when absent or expired; existed tells which. The caller sets the
// entry's expiry with touch and unlocks the shard; the pointer is valid only
// until then.
func (t *tier) acquire(k impKey, now uint32) (s *tierShard, e *tierEntry, existed bool) {
	s = &t.shards[k[0]%tierShards]
	s.mu.Lock()
	i, found := s.find(k)
	if found {
		e = &s.slots[i]
		if e.exp > now {
			return s, e, true
		}
		// expired, not yet pruned: a new impression from here on
		s.hist[t.bucket(e.exp)]--
		*e = tierEntry{k0: k[0], k1: k[1], exp: now}
		s.hist[t.bucket(now)]++
		s.minExp = min(s.minExp, now)
		return s, e, false
	}
	if s.n >= s.max {
		t.evict(s, now)
	} else if (s.n+1)*4 > len(s.slots)*3 && len(s.slots) < s.maxSlots {
		t.grow(s)
	}
	i, _ = s.find(k)
	s.slots[i] = tierEntry{k0: k[0], k1: k[1], exp: now}
	s.n++
	s.hist[t.bucket(now)]++
	s.minExp = min(s.minExp, now)
	return s, &s.slots[i], false
}

// find returns k's slot, or the empty slot where it would go.
func (s *tierShard) find(k impKey) (int, bool) {
	n := len(s.slots)
	for i := s.home(k[1]); ; {
		e := &s.slots[i]
		if e.exp == 0 {
			return i, false
		}
		if e.k0 == k[0] && e.k1 == k[1] {
			return i, true
		}
		if i++; i == n {
			i = 0
		}
	}
}

// markForeign marks k's entry fForeign if it still holds the provisional
// charge of generation gen (ledgerDone: its entry was a duplicate).
func (t *tier) markForeign(k impKey, gen uint16) {
	s := &t.shards[k[0]%tierShards]
	s.mu.Lock()
	if i, found := s.find(k); found {
		if e := &s.slots[i]; e.gen == gen && e.flags&fProv != 0 {
			e.flags |= fForeign
		}
	}
	s.mu.Unlock()
}

// unreverse puts k's entry back at level, settled, in generation gen, if it
// still holds what the reversal of gen left (generation gen+1, level 0):
// the reversal was refused because a bill settled gen elsewhere (its seal).
// Left reversed, the entry took the impression for free, and a replay of
// the bill (or a late one) at the owner was charged again (a fleet audit: a
// win, a graceful restart, the bill settled elsewhere while the owner was
// down, the loss and the bill at the restarted owner: 5,000 for a bill of
// 2,500).
func (t *tier) unreverse(k impKey, gen uint16, level int64) {
	s := &t.shards[k[0]%tierShards]
	s.mu.Lock()
	if i, found := s.find(k); found {
		if e := &s.slots[i]; e.gen == gen+1 && e.level == 0 {
			e.gen, e.level = gen, level
			e.flags = e.flags&^(fProv|fUnsure|fOldDay) | fSettled
		}
	}
	s.mu.Unlock()
}

// foreign tells whether k's entry of generation gen is marked fForeign.
func (t *tier) foreign(k impKey, gen uint16) bool {
	s := &t.shards[k[0]%tierShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.find(k)
	return found && s.slots[i].gen == gen && s.slots[i].flags&fForeign != 0
}

// touch extends e's life to exp (never shortens it).
func (t *tier) touch(s *tierShard, e *tierEntry, exp uint32) {
	if exp <= e.exp {
		return
	}
	s.hist[t.bucket(e.exp)]--
	s.hist[t.bucket(exp)]++
	e.exp = exp
}

func (t *tier) grow(s *tierShard) {
	old := s.slots
	s.slots = make([]tierEntry, min(2*len(old), s.maxSlots))
	for i := range old {
		if old[i].exp != 0 {
			j, _ := s.find(impKey{old[i].k0, old[i].k1})
			s.slots[j] = old[i]
		}
	}
}

// evict makes room in a full shard: it drops the expired entries and the
// oldest others, about a sixteenth of the shard, oldest expiry first.
func (t *tier) evict(s *tierShard, now uint32) {
	target := uint32(max(s.max/16, 1))
	b0 := now / t.res
	threshold := now
	var acc uint32
	for j := uint32(0); j < tierBuckets; j++ {
		acc += s.hist[(b0+j)%tierBuckets]
		if acc >= target {
			threshold = max(now, (b0+j+1)*t.res-1)
			break
		}
	}
	_, early := t.sweep(s, threshold, now)
	if s.n >= s.max { // the histogram is off (cannot happen): make room anyway
		_, e := t.sweep(s, ^uint32(0), now)
		early += e
	}
	if early > 0 {
		t.evicted.Add(uint64(early))
		t.earlyAt.Store((t.epoch + int64(now)) * 1e9)
	}
}

// prune drops the expired entries of every shard that may hold one.
func (t *tier) prune(now int64) {
	sec := t.sec(now)
	y := NewScanYield()
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n := 0
		if s.minExp <= sec {
			t.sweep(s, sec, sec)
			n = len(s.slots)
		}
		s.mu.Unlock()
		y.Step(n / 16)
	}
}

// sweep deletes every entry expiring at or before threshold; early counts
// those whose window had not ended at now. It recomputes minExp.
func (t *tier) sweep(s *tierShard, threshold, now uint32) (removed, early int) {
	low := ^uint32(0)
	for i := 0; i < len(s.slots); {
		e := &s.slots[i]
		if e.exp == 0 {
			i++
			continue
		}
		if e.exp > threshold {
			low = min(low, e.exp)
			i++
			continue
		}
		if e.exp > now {
			early++
		}
		s.hist[t.bucket(e.exp)]--
		s.deleteAt(i)
		s.n--
		removed++
		// slot i now holds an entry shifted back (or nothing): look again
	}
	s.minExp = low
	t.pruned.Add(uint64(removed - early))
	return removed, early
}

// deleteAt empties slot i, shifting back the entries of its probe run that
// may move (backward-shift deletion: no tombstones).
func (s *tierShard) deleteAt(i int) {
	n := len(s.slots)
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		e := &s.slots[j]
		if e.exp == 0 {
			break
		}
		k := s.home(e.k1)
		if (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			s.slots[i] = *e
			i = j
		}
	}
	s.slots[i] = tierEntry{}
}

// len counts the entries held (expired ones not yet pruned included).
func (t *tier) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// bytes is the memory the tier's slots take.
func (t *tier) bytes() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.slots) * tierEntryBytes
		s.mu.Unlock()
	}
	return n
}
