package bidder

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/openbidder/openbidder/internal/bytecache"
)

// trackerSeen remembers which impression pixels and clicks were already
// counted, so that a replayed tracker URL (it sits in the ad markup every
// browser sees; a script can fire it in a loop) does not use up a user's
// frequency cap or inflate the impression and click series. The pixel or
// redirect is still answered.
//
// A bounded TTL cache (internal/bytecache: ristretto's TinyLFU admission,
// sampled LFU eviction, a TTL of notices.token_ttl, past which the token is
// refused anyway) fits because this is never money: an entry it drops or
// does not admit, or two replays racing before the first is applied
// (ristretto's Set is asynchronous), only lets a replay count again, as
// every replay did before. Keys are (kind, auction, imp, instance, hold):
// the impression as the budget keys it, per tracker kind.
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
// NATS (a Set racing ristretto's Close panicked there: bytecache waits for
// the calls in flight). After it, only recent remembers.
type trackerSeen struct {
	c      *bytecache.Cache[struct{}]
	ttl    time.Duration
	seed   maphash.Seed
	recent []atomic.Uint64
}

// trackerRecent is the number of slots of trackerSeen.recent (512 KiB).
const trackerRecent = 1 << 16

// newTrackerSeen returns nil (nothing remembered) for entries <= 0.
func newTrackerSeen(entries int64, ttl time.Duration) *trackerSeen {
	if entries <= 0 {
		return nil
	}
	return &trackerSeen{c: bytecache.New[struct{}](entries), ttl: ttl, seed: maphash.MakeSeed(), recent: make([]atomic.Uint64, trackerRecent)}
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
	if _, ok := ts.c.Get(k); ok {
		return false
	}
	if !ts.claim(k) {
		return false
	}
	ts.c.Set(k, struct{}{}, ts.ttl)
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
	if ts != nil {
		ts.c.Wait()
	}
}

// close stops the cache once the calls in flight are done; later calls
// remember through recent alone.
func (ts *trackerSeen) close() {
	if ts != nil {
		ts.c.Close()
	}
}
