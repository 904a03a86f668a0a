package privacy

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Entry kinds: a TC string and a GPP string never look alike when they
// decode (a TC string starts with 'C', a GPP header with 'D'), but the same
// junk may be sent as both; a kind mismatch is a miss.
const (
	kindTCF uint8 = iota + 1
	kindGPP
)

// entry is what a decoded string left behind: a few words, no pointers to
// request memory.
type entry struct {
	kind uint8
	tcf  tcfVerdict
	gpp  gppSummary
}

// cache maps consent strings to entries. It is bounded in entries
// (ristretto's TinyLFU admission and sampled LFU eviction) and in time
// (TTL). Keys are two independent 64-bit hashes of the string (ristretto's
// key and conflict hashes): a lookup compares both, so two strings are
// confused only if 128 bits collide. The string itself is never kept, so a
// key may point into request memory.
//
// The cache is never money: a lost or rejected entry only costs a decode.
type cache struct {
	c   *ristretto.Cache[[]byte, entry]
	ttl time.Duration
	// mu makes close wait for the gets and sets in flight, and closed keeps
	// later ones off the closed cache: ristretto's Close closes its set
	// channel before it marks the cache closed, and a SetWithTTL in between
	// panics (send on closed channel; the concurrency audit found it with
	// the bidder's tracker cache, closed in Server.Shutdown while notices
	// forwarded over NATS still came in; /admin/explain decides privacy
	// after Shutdown too).
	mu     sync.RWMutex
	closed bool
}

func newCache(entries int64, ttl time.Duration) *cache {
	seedKey, seedConflict := maphash.MakeSeed(), maphash.MakeSeed()
	c, err := ristretto.NewCache(&ristretto.Config[[]byte, entry]{
		NumCounters:        10 * entries, // ristretto's advice: ten times the entries
		MaxCost:            entries,      // cost 1 per entry
		BufferItems:        64,
		IgnoreInternalCost: true,
		KeyToHash: func(k []byte) (uint64, uint64) {
			return maphash.Bytes(seedKey, k), maphash.Bytes(seedConflict, k)
		},
	})
	if err != nil {
		panic("privacy: ristretto rejected a config built from validated options: " + err.Error())
	}
	return &cache{c: c, ttl: ttl}
}

// get returns the entry for s when it is cached with kind k. A nil cache
// has nothing.
func (c *cache) get(s []byte, k uint8) (entry, bool) {
	if c == nil {
		return entry{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return entry{}, false
	}
	e, ok := c.c.Get(s)
	return e, ok && e.kind == k
}

// set offers e for s, to expire after c.ttl (0: never). The cache admits it
// asynchronously (or not at all, when its admission policy prefers what it
// holds).
func (c *cache) set(s []byte, e entry) {
	if c == nil {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.closed {
		c.c.SetWithTTL(s, e, 1, c.ttl)
	}
}

// wait blocks until the sets offered so far are applied (tests).
func (c *cache) wait() {
	if c == nil {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.closed {
		c.c.Wait()
	}
}

// close closes the cache once the gets and sets in flight are done; later
// ones find nothing and keep nothing.
func (c *cache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.c.Close()
	}
}
