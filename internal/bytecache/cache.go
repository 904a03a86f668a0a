// Package bytecache is a bounded TTL cache keyed by byte strings, for
// lookups that are never money (a lost or refused entry only costs a
// recomputation): ristretto (TinyLFU admission, sampled LFU eviction) with
// keys hashed by two independent maphash seeds, so a key may point into
// request memory and two keys are confused only if 128 bits collide.
//
// It may be closed while other goroutines still use it: ristretto's Close
// closes its set channel before it marks the cache closed, and a Set in
// between panics (send on closed channel). The concurrency audit found it
// with the bidder's tracker cache, closed in Server.Shutdown while trackers
// forwarded over NATS still came in; the consent cache had the same
// pattern. Close waits for the calls in flight; later ones find nothing and
// keep nothing.
package bytecache

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Cache holds up to its entries values of type V. The zero value is not
// usable: New makes one. A nil *Cache holds nothing.
type Cache[V any] struct {
	c      *ristretto.Cache[[]byte, V]
	mu     sync.RWMutex // read: a call using c; write: Close
	closed bool         // under mu
}

// New returns a cache of at most entries (> 0) values, each of cost 1.
func New[V any](entries int64) *Cache[V] {
	seedKey, seedConflict := maphash.MakeSeed(), maphash.MakeSeed()
	c, err := ristretto.NewCache(&ristretto.Config[[]byte, V]{
		NumCounters:        10 * entries, // ristretto's advice: ten times the entries
		MaxCost:            entries,      // cost 1 per entry
		BufferItems:        64,
		IgnoreInternalCost: true,
		KeyToHash: func(k []byte) (uint64, uint64) {
			return maphash.Bytes(seedKey, k), maphash.Bytes(seedConflict, k)
		},
	})
	if err != nil {
		panic("bytecache: ristretto rejected a config built from validated options: " + err.Error())
	}
	return &Cache[V]{c: c}
}

// Get returns k's value, if the cache holds it.
func (c *Cache[V]) Get(k []byte) (v V, ok bool) {
	if c == nil {
		return v, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return v, false
	}
	return c.c.Get(k)
}

// Set offers v for k, to expire after ttl (0: never). The cache admits it
// asynchronously, or not at all when its admission policy prefers what it
// holds.
func (c *Cache[V]) Set(k []byte, v V, ttl time.Duration) {
	if c == nil {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.closed {
		c.c.SetWithTTL(k, v, 1, ttl)
	}
}

// Wait blocks until the sets offered so far are applied (tests, warm-up).
func (c *Cache[V]) Wait() {
	if c == nil {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.closed {
		c.c.Wait()
	}
}

// Close closes the cache once the calls in flight are done.
func (c *Cache[V]) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.c.Close()
	}
}
