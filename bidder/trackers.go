package bidder

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// trackerSeen remembers which impression pixels and clicks were already
// counted, so that a replayed tracker URL (it sits in the ad markup every
// browser sees; a script can fire it in a loop) does not use up a user's
// frequency cap or inflate the impression and click series. The pixel or
// redirect is still answered.
//
// A bounded TTL cache (ristretto: TinyLFU admission, sampled LFU eviction,
// a TTL of notices.token_ttl, past which the token is refused anyway) fits
// because this is never money: an entry it drops or does not admit, or two
// replays racing before the first is applied (ristretto's Set is
// asynchronous), only lets a replay count again, as every replay did before.
// Keys are two independent 64-bit hashes of (kind, auction, imp, instance,
// hold): the impression as the budget keys it, per tracker kind.
//
// Replays racing one another (a script firing one pixel from 32 threads: an
// outside audit counted one impression 56 times) are caught by recent, a
// direct-mapped table of the last keys claimed, written by compare-and-swap:
// of two racers for one key, one claims the slot and the other finds it.
// Hand-written because ristretto's Set is asynchronous and may drop a set
// under contention; the table is lossy the other way (a key evicted by
// another mapping to its slot only lets a replay count again).
//
// close may come while first runs: Server.Shutdown closes it before the
// budget manager stops taking trackers forwarded by other instances over
// NATS, and a ristretto Set racing its Close sends on a closed channel (a
// panic in the subscription's goroutine: the process died in its graceful
// stop). mu makes close wait for the calls in flight; after it, only
// recent remembers.
type trackerSeen struct {
	c      *ristretto.Cache[[]byte, struct{}]
	ttl    time.Duration
	seed   maphash.Seed
	recent []atomic.Uint64
	mu     sync.RWMutex // read: a first using c; write: close
	closed bool         // under mu
}

// trackerRecent is the number of slots of trackerSeen.recent (512 KiB).
const trackerRecent = 1 << 16

// newTrackerSeen returns nil (nothing remembered) for entries <= 0.
func newTrackerSeen(entries int64, ttl time.Duration) *trackerSeen {
	if entries <= 0 {
		return nil
	}
	seedKey, seedConflict := maphash.MakeSeed(), maphash.MakeSeed()
	c, err := ristretto.NewCache(&ristretto.Config[[]byte, struct{}]{
		NumCounters:        10 * entries, // ristretto's advice: ten times the entries
		MaxCost:            entries,      // cost 1 per entry
		BufferItems:        64,
		IgnoreInternalCost: true,
		KeyToHash: func(k []byte) (uint64, uint64) {
			return maphash.Bytes(seedKey, k), maphash.Bytes(seedConflict, k)
		},
	})
	if err != nil {
		panic("bidder: ristretto rejected a config built from validated options: " + err.Error())
	}
	return &trackerSeen{c: c, ttl: ttl, seed: maphash.MakeSeed(), recent: make([]atomic.Uint64, trackerRecent)}
}

// first reports whether kind's tracker of t's impression is seen here for
// the first time (as far as the cache knows), and remembers it. A nil
// trackerSeen sees everything for the first time.
func (ts *trackerSeen) first(kind noticeKind, t *bidToken) bool {
	if ts == nil {
		return true
	}
	var buf [96]byte
	k := append(buf[:0], byte(kind))
	for _, f := range [...][]byte{t.AuctionID, t.ImpID, t.Instance} {
		k = binary.AppendUvarint(k, uint64(len(f)))
		k = append(k, f...)
	}
	k = binary.BigEndian.AppendUint64(k, t.Hold)
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	if ts.closed {
		return ts.claim(k)
	}
	if _, ok := ts.c.Get(k); ok {
		return false
	}
	if !ts.claim(k) {
		return false
	}
	ts.c.SetWithTTL(k, struct{}{}, 1, ts.ttl)
	return true
}

// claim takes k's slot in recent; false when it holds k already.
func (ts *trackerSeen) claim(k []byte) bool {
	h := maphash.Bytes(ts.seed, k)
	tag := h | 1 // never the empty slot's 0
	slot := &ts.recent[h%trackerRecent]
	for {
		old := slot.Load()
		if old == tag {
			return false // claimed by a racing replay, or recently
		}
		if slot.CompareAndSwap(old, tag) {
			return true
		}
	}
}

// wait blocks until the sets offered so far are applied (tests).
func (ts *trackerSeen) wait() {
	if ts == nil {
		return
	}
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	if !ts.closed {
		ts.c.Wait()
	}
}

// close stops the cache once the calls in flight are done; later calls
// remember through recent alone.
func (ts *trackerSeen) close() {
	if ts == nil {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.closed {
		ts.closed = true
		ts.c.Close()
	}
}
