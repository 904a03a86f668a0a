package budget

import (
	"sync"
	"sync/atomic"
)

// HoldID names an open hold: the low 32 bits are the slot index plus one, the
// high 32 bits the slot's generation, so a stale id never matches a reused slot.
// Zero is never a valid id.
type HoldID uint64

type holdSlot struct {
	gen     uint32
	open    bool
	acct    int32
	amount  int64
	expires int64 // unix nanoseconds
}

type holdShard struct {
	mu    sync.Mutex
	slots []holdSlot
	free  []int32 // stack of free slot indexes (local to the shard)
	hi    int     // slots[:hi] have ever been used; expiry scans only those
	base  int     // global index of slots[0]
	_     [40]byte
}

// holdTable is a fixed-capacity table of open holds, allocated once.
type holdTable struct {
	shards []holdShard
	next   atomic.Uint32
	full   atomic.Uint64 // holds refused because the table was full
}

const holdShards = 16

// newHoldTable allocates the table; genSeed randomizes the slots' first
// generation so ids from another process rarely match a live hold here.
func newHoldTable(capacity int, genSeed uint32) *holdTable {
	per := (capacity + holdShards - 1) / holdShards
	t := &holdTable{shards: make([]holdShard, holdShards)}
	for i := range t.shards {
		s := &t.shards[i]
		s.slots = make([]holdSlot, per)
		for j := range s.slots {
			s.slots[j].gen = genSeed
		}
		s.free = make([]int32, per)
		for j := range s.free {
			s.free[j] = int32(per - 1 - j)
		}
		s.base = i * per
	}
	return t
}

// put stores a hold; false when the table is full. A shard busy with an
// expiry scan is skipped on the first pass, so a bid rarely waits on a lock.
func (t *holdTable) put(acct int32, amount, expires int64) (HoldID, bool) {
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
			if id, ok := s.putLocked(acct, amount, expires); ok {
				s.mu.Unlock()
				return id, true
			}
			s.mu.Unlock()
		}
	}
	t.full.Add(1)
	return 0, false
}

func (s *holdShard) putLocked(acct int32, amount, expires int64) (HoldID, bool) {
	n := len(s.free)
	if n == 0 {
		return 0, false
	}
	i := s.free[n-1]
	s.free = s.free[:n-1]
	sl := &s.slots[i]
	sl.gen++
	if sl.gen == 0 {
		sl.gen = 1
	}
	sl.open, sl.acct, sl.amount, sl.expires = true, acct, amount, expires
	if int(i) >= s.hi {
		s.hi = int(i) + 1
	}
	return HoldID(uint64(sl.gen)<<32 | uint64(s.base+int(i)+1)), true
}

func (t *holdTable) locate(id HoldID) (*holdShard, int32, bool) {
	idx := int(uint32(id)) - 1
	if idx < 0 || len(t.shards) == 0 {
		return nil, 0, false
	}
	per := len(t.shards[0].slots)
	si := idx / per
	if si >= len(t.shards) {
		return nil, 0, false
	}
	return &t.shards[si], int32(idx % per), true
}

// take closes an open hold of account acct and returns its amount.
func (t *holdTable) take(id HoldID, acct int32) (int64, bool) {
	s, i, ok := t.locate(id)
	if !ok {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &s.slots[i]
	if !sl.open || sl.gen != uint32(id>>32) || sl.acct != acct {
		return 0, false
	}
	sl.open = false
	s.free = append(s.free, i)
	return sl.amount, true
}

// expired is an (account, amount) pair whose hold lapsed.
type expired struct {
	acct   int32
	amount int64
}

// expire closes every hold due at or before now, appending them to dst. It
// scans in chunks so a shard's lock is never held long.
func (t *holdTable) expire(now int64, dst []expired) []expired {
	const chunk = 1024
	for si := range t.shards {
		s := &t.shards[si]
		for lo := 0; ; lo += chunk {
			s.mu.Lock()
			hi := min(lo+chunk, s.hi)
			for i := lo; i < hi; i++ {
				sl := &s.slots[i]
				if sl.open && sl.expires <= now {
					sl.open = false
					s.free = append(s.free, int32(i))
					dst = append(dst, expired{sl.acct, sl.amount})
				}
			}
			done := hi >= s.hi
			s.mu.Unlock()
			if done {
				break
			}
		}
	}
	return dst
}

// drain closes every open hold (graceful close), appending them to dst.
func (t *holdTable) drain(dst []expired) []expired {
	return t.expire(1<<62, dst)
}
