package privacy

import (
	"time"

	"github.com/openbidder/openbidder/internal/bytecache"
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

// cache maps consent strings to entries: a bytecache (bounded in entries
// and in time, keys hashed, so a key may point into request memory; safe
// to close while requests still use it). The string itself is never kept.
//
// The cache is never money: a lost or rejected entry only costs a decode.
type cache struct {
	c   *bytecache.Cache[entry]
	ttl time.Duration
}

func newCache(entries int64, ttl time.Duration) *cache {
	return &cache{c: bytecache.New[entry](entries), ttl: ttl}
}

// get returns the entry for s when it is cached with kind k. A nil cache
// has nothing.
func (c *cache) get(s []byte, k uint8) (entry, bool) {
	if c == nil {
		return entry{}, false
	}
	e, ok := c.c.Get(s)
	return e, ok && e.kind == k
}

// set offers e for s, to expire after c.ttl (0: never). The cache admits it
// asynchronously (or not at all, when its admission policy prefers what it
// holds).
func (c *cache) set(s []byte, e entry) {
	if c != nil {
		c.c.Set(s, e, c.ttl)
	}
}

// wait blocks until the sets offered so far are applied (tests).
func (c *cache) wait() {
	if c != nil {
		c.c.Wait()
	}
}

// close closes the cache once the gets and sets in flight are done; later
// ones find nothing and keep nothing.
func (c *cache) close() { c.c.Close() }
