package budget

import (
	"math"
	"slices"
	"sync/atomic"
)

// HoldID names an open hold: the low 32 bits are the slot index plus one, the
// high 32 bits the slot's generation, so a stale id never matches a reused slot.
// Zero is never a valid id.
type HoldID uint64

type holdSlot struct {
	gen     uint32
	open    bool
	touched bool // a notice drew from it (pacing: no longer a bid whose outcome is unknown)
	acct    int32
	amount  int64
	expires int64 // unix nanoseconds
}

// holdShard owns slots [base, base+per) of the table's id space. Its slots
// live in chunks allocated when the free stack runs dry, so memory follows the
// number of holds open at once, not MaxHolds.
type holdShard struct {
	mu      mutex[lkHoldShard]
	chunks  [][]holdSlot // chunks[i] holds local slots [i*chunk, (i+1)*chunk); nil until needed
	free    []int32      // stack of free local slot indexes
	hi      int          // local slots [0, hi) have ever been used; expiry scans only those
	open    int          // open holds
	nextExp int64        // no open hold expires before this (a lower bound)
	base    int          // global index of local slot 0
	_       [32]byte
}

// holdTable is the table of open holds: 16 shards, each growing in chunks up
// to MaxHolds/16 slots. Put and take allocate nothing once a shard has
// grown to the number of holds open at once.
type holdTable struct {
	shards  []holdShard
	per     int  // slots per shard (id space)
	chunk   int  // slots per chunk, a power of two
	shift   uint // log2(chunk)
	genSeed uint32
	next    atomic.Uint32
	full    atomic.Uint64 // holds refused because the table was full
}

const (
	holdShards = 16
	holdChunk  = 1024 // slots per chunk (32 KiB); a power of two
)

// newHoldTable makes a table of at most capacity holds with one chunk per
// shard; genSeed randomizes the slots' first generation so ids from another
// process rarely match a live hold here.
func newHoldTable(capacity int, genSeed uint32) *holdTable {
	per := (capacity + holdShards - 1) / holdShards
	t := &holdTable{shards: make([]holdShard, holdShards), per: per, genSeed: genSeed}
	for t.chunk = 1; t.chunk*2 <= min(holdChunk, per); t.chunk *= 2 {
		t.shift++
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.base = i * per
		s.chunks = make([][]holdSlot, (per+t.chunk-1)/t.chunk)
		s.nextExp = math.MaxInt64
		t.grow(s)
	}
	return t
}

// grow allocates the shard's next chunk and pushes its slots on the free
// stack (lowest index on top); false when the shard is at its capacity.
func (t *holdTable) grow(s *holdShard) bool {
	c := 0
	for c < len(s.chunks) && s.chunks[c] != nil {
		c++
	}
	if c == len(s.chunks) {
		return false
	}
	lo := c * t.chunk
	n := min(t.chunk, t.per-lo)
	slots := make([]holdSlot, n)
	for j := range slots {
		slots[j].gen = t.genSeed
	}
	s.chunks[c] = slots
	for j := n - 1; j >= 0; j-- {
		s.free = append(s.free, int32(lo+j))
	}
	return true
}

func (t *holdTable) slot(s *holdShard, i int32) *holdSlot {
	return &s.chunks[i>>t.shift][int(i)&(t.chunk-1)]
}

// put stores a hold; false when the table is full. A shard busy with an
// expiry scan is skipped on the first pass, so a bid rarely waits on a lock.
func (t *holdTable) put(acct int32, amount, expires int64) (HoldID, bool) {
	return t.putAs(acct, amount, expires, false)
}

// putAs is put, with the hold touched (a restored one: no in-flight bid of
// this process) or not.
func (t *holdTable) putAs(acct int32, amount, expires int64, touched bool) (HoldID, bool) {
	start := t.next.Add(1)
	for pass := 0; pass < 2; pass++ {
		for k := uint32(0); k < holdShards; k++ {
			s := &t.shards[(start+k)%holdShards]
			if pass == 0 {
				if !s.mu.TryLock() {
					continue
				}
			} else {
				s.mu.Lock()
			}
			if id, ok := t.putLocked(s, acct, amount, expires, touched); ok {
				s.mu.Unlock()
				return id, true
			}
			s.mu.Unlock()
		}
	}
	t.full.Add(1)
	return 0, false
}

func (t *holdTable) putLocked(s *holdShard, acct int32, amount, expires int64, touched bool) (HoldID, bool) {
	if len(s.free) == 0 && !t.grow(s) {
		return 0, false
	}
	n := len(s.free)
	i := s.free[n-1]
	s.free = s.free[:n-1]
	sl := t.slot(s, i)
	sl.gen++
	if sl.gen == 0 {
		sl.gen = 1
	}
	sl.open, sl.touched, sl.acct, sl.amount, sl.expires = true, touched, acct, amount, expires
	if int(i) >= s.hi {
		s.hi = int(i) + 1
	}
	s.open++
	s.nextExp = min(s.nextExp, expires)
	return HoldID(uint64(sl.gen)<<32 | uint64(s.base+int(i)+1)), true
}

func (t *holdTable) locate(id HoldID) (*holdShard, int32, bool) {
	idx := int(uint32(id)) - 1
	if idx < 0 || t.per == 0 {
		return nil, 0, false
	}
	si := idx / t.per
	if si >= len(t.shards) {
		return nil, 0, false
	}
	return &t.shards[si], int32(idx % t.per), true
}

// lockOpen finds the open hold id of account acct and returns its shard,
// locked, with its slot; nil (nothing locked) when there is none.
func (t *holdTable) lockOpen(id HoldID, acct int32) (*holdShard, int32, *holdSlot) {
	s, i, ok := t.locate(id)
	if !ok {
		return nil, 0, nil
	}
	s.mu.Lock()
	if int(i) >= s.hi {
		s.mu.Unlock()
		return nil, 0, nil // never used (its chunk may not exist)
	}
	sl := t.slot(s, i)
	if !sl.open || sl.gen != uint32(id>>32) || sl.acct != acct {
		s.mu.Unlock()
		return nil, 0, nil
	}
	return s, i, sl
}

// take closes an open hold of account acct and returns its amount.
func (t *holdTable) take(id HoldID, acct int32) (int64, bool) {
	amt, _, ok := t.takeFresh(id, acct)
	return amt, ok
}

// takeFresh is take, also telling whether no notice had drawn from the
// hold (its whole amount was a bid whose outcome was unknown).
func (t *holdTable) takeFresh(id HoldID, acct int32) (amt int64, fresh, ok bool) {
	s, i, sl := t.lockOpen(id, acct)
	if s == nil {
		return 0, false, false
	}
	defer s.mu.Unlock()
	sl.open = false
	s.open--
	s.free = append(s.free, i)
	return sl.amount, !sl.touched, true
}

// drawFresh takes up to want from an open hold of account acct, not expired by
// now (unix ns), and returns what it took. The hold stays open with the
// rest, even with nothing left, until
// it expires or take closes it: the rest stays reserved for a later, higher
// notice of its impression, and a reversal puts its charge back (refill).
// fresh is the hold's amount before it when no notice had drawn from it
// before (0 otherwise): the money of a bid whose outcome was unknown until
// now (pacing's in-flight money).
func (t *holdTable) drawFresh(id HoldID, acct int32, want, now int64) (d, fresh int64, ok bool) {
	s, _, sl := t.lockOpen(id, acct)
	if s == nil {
		return 0, 0, false
	}
	defer s.mu.Unlock()
	if sl.expires <= now {
		// Expired, not swept yet: its lease may have been reclaimed since
		// (a process stopped past lease_ttl, then resumed with bills
		// queued), so a charge drawn from it would overspend, uncounted.
		return 0, 0, false
	}
	if !sl.touched {
		sl.touched, fresh = true, sl.amount
	}
	d = min(max(want, 0), sl.amount)
	sl.amount -= d
	return d, fresh, true
}

// refill adds amount back to an open hold of account acct (a provisional
// charge drawn from it and reversed); false when the hold is no longer open
// or expired by now (unix ns), not yet swept.
func (t *holdTable) refill(id HoldID, acct int32, amount, now int64) bool {
	s, _, sl := t.lockOpen(id, acct)
	if s == nil {
		return false
	}
	defer s.mu.Unlock()
	if sl.expires <= now {
		return false
	}
	sl.amount += amount
	return true
}

// expired is an (account, amount) pair whose hold lapsed; fresh when no
// notice had drawn from it.
type expired struct {
	acct   int32
	amount int64
	fresh  bool
}

// expire closes every hold due at or before now, appending them to dst. A
// shard with no open hold, or none due yet, is not scanned; others are
// scanned in chunks so a shard's lock is never held long.
func (t *holdTable) expire(now int64, dst []expired) []expired {
	y := NewScanYield()
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		skip := s.open == 0 || s.nextExp > now
		s.mu.Unlock()
		if !skip {
			dst = t.expireShard(s, now, dst, &y)
		}
	}
	return dst
}

func (t *holdTable) expireShard(s *holdShard, now int64, dst []expired, y *ScanYield) []expired {
	next := int64(math.MaxInt64)
	for lo := 0; ; lo += t.chunk {
		s.mu.Lock()
		if lo == 0 {
			s.nextExp = math.MaxInt64 // holds put while the scan runs lower it again
		}
		hi := min(lo+t.chunk, s.hi)
		for i := lo; i < hi; i++ {
			sl := t.slot(s, int32(i))
			switch {
			case !sl.open:
			case sl.expires <= now:
				sl.open = false
				s.open--
				s.free = append(s.free, int32(i))
				dst = append(dst, expired{sl.acct, sl.amount, !sl.touched})
			default:
				next = min(next, sl.expires)
			}
		}
		done := hi >= s.hi
		if done {
			s.nextExp = min(s.nextExp, next)
		}
		s.mu.Unlock()
		if done {
			return dst
		}
		y.Step((hi - lo) / 16) // a slot is a few ns of sequential reads
	}
}

// openHold is an open hold as a graceful close hands it to the next process
// under its instance id (levels.go).
type openHold struct {
	id      HoldID
	acct    int32
	amount  int64
	expires int64 // unix nanoseconds
}

// drainOpen closes every open hold (graceful close): those due by now are
// appended to due, the others to open.
func (t *holdTable) drainOpen(now int64, due []expired, open []openHold) ([]expired, []openHold) {
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		for i := 0; i < s.hi; i++ {
			sl := t.slot(s, int32(i))
			if !sl.open {
				continue
			}
			sl.open = false
			s.open--
			s.free = append(s.free, int32(i))
			if sl.expires <= now {
				due = append(due, expired{sl.acct, sl.amount, !sl.touched})
			} else {
				open = append(open, openHold{HoldID(uint64(sl.gen)<<32 | uint64(s.base+i+1)), sl.acct, sl.amount, sl.expires})
			}
		}
		s.nextExp = math.MaxInt64
		s.mu.Unlock()
	}
	return due, open
}

// restoreOpen puts back the holds a previous process under this instance id
// handed over (Start, before any hold is placed here), at their own ids when
// this table has the previous one's shape (per, its slots per shard) and the
// slot is free, so that a notice for one draws from it as from any hold of
// this process. The others are placed under new ids: their money stays
// reserved until they expire, and their notices find no hold (late). It
// returns the holds placed (a hold the table has no room for is left out)
// and how many of them kept their ids.
func (t *holdTable) restoreOpen(hs []openHold, per int) (placed []openHold, atID int) {
	touched := make([]bool, len(t.shards))
	var rest []openHold
	for _, h := range hs {
		if per == t.per && t.placeAt(h, touched) {
			placed = append(placed, h)
		} else {
			rest = append(rest, h)
		}
	}
	atID = len(placed)
	for si, ok := range touched {
		if ok {
			s := &t.shards[si]
			s.mu.Lock()
			s.free = slices.DeleteFunc(s.free, func(i int32) bool { return t.slot(s, i).open })
			s.mu.Unlock()
		}
	}
	for _, h := range rest {
		if id, ok := t.putAs(h.acct, h.amount, h.expires, true); ok {
			h.id = id
			placed = append(placed, h)
		}
	}
	return placed, atID
}

// placeAt opens the slot hold id h.id names, with h's generation, account,
// amount and expiry, growing its shard to the slot's chunk; false when the
// id is outside the table or the slot is open. The shard's free stack still
// lists the slot: restoreOpen rebuilds it (touched).
func (t *holdTable) placeAt(h openHold, touched []bool) bool {
	s, i, ok := t.locate(h.id)
	if !ok || uint32(h.id>>32) == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := int(i) >> t.shift
	for s.chunks[c] == nil {
		if !t.grow(s) {
			return false
		}
	}
	sl := t.slot(s, i)
	if sl.open {
		return false
	}
	// touched: a predecessor's bid, not this process's in-flight money
	// (pacing counts only its own, Account.pending).
	sl.gen, sl.open, sl.touched, sl.acct, sl.amount, sl.expires = uint32(h.id>>32), true, true, h.acct, h.amount, h.expires
	if int(i) >= s.hi {
		s.hi = int(i) + 1
	}
	s.open++
	s.nextExp = min(s.nextExp, h.expires)
	touched[(int(uint32(h.id))-1)/t.per] = true
	return true
}
