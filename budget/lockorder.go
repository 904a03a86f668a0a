package budget

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Every lock of the package is a mutex[C] or rwMutex[C] whose class C names it
// as doc.go's lock order does. Off (the default), a lock costs one atomic load
// more than a sync.Mutex. On (tests: lockCheck), every acquisition records
// which classes the goroutine already holds, so a test can compare the
// nesting that really happens with the documented order.

type lockClass interface{ lockName() string }

// The lock classes, named as in doc.go.
type (
	lkManager     struct{}
	lkAccount     struct{}
	lkGlobal      struct{}
	lkHoldShard   struct{}
	lkTierShard   struct{}
	lkFreqShard   struct{}
	lkForecast    struct{}
	lkLiveness    struct{}
	lkLedger      struct{}
	lkLedgerFlush struct{}
	lkMemLedger   struct{}
	lkMemStore    struct{}
	lkKVCache     struct{}
)

func (lkManager) lockName() string     { return "Manager.mu" }
func (lkAccount) lockName() string     { return "Account.mu" }
func (lkGlobal) lockName() string      { return "Account.gmu" }
func (lkHoldShard) lockName() string   { return "holdShard.mu" }
func (lkTierShard) lockName() string   { return "tierShard.mu" }
func (lkFreqShard) lockName() string   { return "freqShard.mu" }
func (lkForecast) lockName() string    { return "forecast.mu" }
func (lkLiveness) lockName() string    { return "Manager.liveMu" }
func (lkLedger) lockName() string      { return "ledger.mu" }
func (lkLedgerFlush) lockName() string { return "ledger.flushMu" }
func (lkMemLedger) lockName() string   { return "memLedger.mu" }
func (lkMemStore) lockName() string    { return "MemStore.mu" }
func (lkKVCache) lockName() string     { return "kvStore.mu" }

func lockName[C lockClass]() string {
	var c C
	return c.lockName()
}

// mutex is a sync.Mutex of lock class C. The zero value is unlocked.
type mutex[C lockClass] struct{ mu sync.Mutex }

func (m *mutex[C]) Lock() {
	m.mu.Lock()
	if lockCheck.on.Load() {
		lockCheck.acquired(lockName[C]())
	}
}

func (m *mutex[C]) TryLock() bool {
	if !m.mu.TryLock() {
		return false
	}
	if lockCheck.on.Load() {
		lockCheck.acquired(lockName[C]())
	}
	return true
}

func (m *mutex[C]) Unlock() {
	if lockCheck.on.Load() {
		lockCheck.released(lockName[C]())
	}
	m.mu.Unlock()
}

// rwMutex is a sync.RWMutex of lock class C; read and write locks count alike.
type rwMutex[C lockClass] struct{ mu sync.RWMutex }

func (m *rwMutex[C]) Lock() {
	m.mu.Lock()
	if lockCheck.on.Load() {
		lockCheck.acquired(lockName[C]())
	}
}

func (m *rwMutex[C]) Unlock() {
	if lockCheck.on.Load() {
		lockCheck.released(lockName[C]())
	}
	m.mu.Unlock()
}

func (m *rwMutex[C]) RLock() {
	m.mu.RLock()
	if lockCheck.on.Load() {
		lockCheck.acquired(lockName[C]())
	}
}

func (m *rwMutex[C]) RUnlock() {
	if lockCheck.on.Load() {
		lockCheck.released(lockName[C]())
	}
	m.mu.RUnlock()
}

// lockOrderChecker records, per goroutine, the classes held, and every
// (held, acquired) pair seen.
type lockOrderChecker struct {
	on    atomic.Bool
	mu    sync.Mutex // a plain mutex: the checker's own, never nested
	held  map[uint64][]string
	edges map[[2]string]int
}

var lockCheck lockOrderChecker

// start clears what was recorded and turns recording on.
func (c *lockOrderChecker) start() {
	c.mu.Lock()
	c.held, c.edges = map[uint64][]string{}, map[[2]string]int{}
	c.mu.Unlock()
	c.on.Store(true)
}

// stop turns recording off and returns the (outer, inner) pairs seen.
func (c *lockOrderChecker) stop() map[[2]string]int {
	c.on.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.edges
}

func (c *lockOrderChecker) acquired(name string) {
	g := goid()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		return
	}
	for _, h := range c.held[g] {
		c.edges[[2]string{h, name}]++
	}
	c.held[g] = append(c.held[g], name)
}

func (c *lockOrderChecker) released(name string) {
	g := goid()
	c.mu.Lock()
	defer c.mu.Unlock()
	hs := c.held[g]
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i] == name {
			c.held[g] = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(c.held[g]) == 0 {
		delete(c.held, g)
	}
}

// goid parses the current goroutine's id from its stack header (checking only).
func goid() uint64 {
	var b [64]byte
	s := string(b[:runtime.Stack(b[:], false)])
	s = s[len("goroutine "):]
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
