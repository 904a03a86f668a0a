package budget

import (
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

func TestTierEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(tierEntry{}); n != tierEntryBytes {
		t.Fatalf("tierEntry is %d bytes, want %d", n, tierEntryBytes)
	}
}

func tierKey(rng *rand.Rand) impKey { return impKey{rng.Uint64(), rng.Uint64()} }

// The tier never holds more than its cap; when full it drops the entries
// that expire first, and keeps the newest.
func TestTierBoundedOldestFirst(t *testing.T) {
	const maxEntries = 64 * 32
	tr := newTier(maxEntries, time.Hour, t0)
	rng := rand.New(rand.NewPCG(1, 2))
	now := tr.sec(t0.UnixNano())
	var keys []impKey
	for i := range 20 * maxEntries {
		k := tierKey(rng)
		s, e, existed := tr.acquire(k, now)
		if existed {
			t.Fatal("a random key existed")
		}
		tr.touch(s, e, now+uint32(i/64)+60) // later keys expire later
		s.mu.Unlock()
		keys = append(keys, k)
		if n := tr.len(); n > maxEntries {
			t.Fatalf("after %d inserts the tier holds %d > %d", i+1, n, maxEntries)
		}
	}
	if tr.evicted.Load() == 0 {
		t.Fatal("nothing counted as evicted")
	}
	has := func(k impKey) bool {
		s := &tr.shards[k[0]%tierShards]
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := s.find(k)
		return ok
	}
	recent, old := 0, 0
	for _, k := range keys[len(keys)-maxEntries/2:] {
		if has(k) {
			recent++
		}
	}
	for _, k := range keys[:maxEntries] {
		if has(k) {
			old++
		}
	}
	if recent < maxEntries/2*9/10 || old != 0 {
		t.Fatalf("kept %d of the newest %d and %d of the oldest %d", recent, maxEntries/2, old, maxEntries)
	}
}

// Deletions (sweeps) keep every other key findable: backward-shift deletion
// against a map, with keys crowded into the first and last home slots.
func TestTierSweepKeepsProbeChains(t *testing.T) {
	tr := newTier(1<<20, time.Hour, t0) // 16384 a shard: no eviction here
	rng := rand.New(rand.NewPCG(3, 4))
	model := map[impKey]uint32{}
	now := uint32(10)
	for round := range 120 {
		for range 300 {
			// Shard 0, homes crowded at the ends of the table: probe runs
			// wrap around from the last slot to the first.
			k := impKey{uint64(rng.IntN(4)) * tierShards, rng.Uint64() >> 52}
			if rng.IntN(2) == 0 {
				k[1] = ^k[1]
			}
			s, e, _ := tr.acquire(k, now)
			exp := now + uint32(rng.IntN(50)) + 1
			tr.touch(s, e, exp)
			s.mu.Unlock()
			if model[k] < exp {
				model[k] = exp
			}
		}
		now += 5
		if round%3 == 0 {
			tr.prune((tr.epoch + int64(now)) * 1e9)
			for k, exp := range model {
				if exp <= now {
					delete(model, k)
				}
			}
			if n := tr.len(); n != len(model) {
				t.Fatalf("round %d: tier %d entries, model %d", round, n, len(model))
			}
		}
		for k, exp := range model {
			s := &tr.shards[k[0]%tierShards]
			s.mu.Lock()
			i, ok := s.find(k)
			got := s.slots[i].exp
			s.mu.Unlock()
			if exp > now && (!ok || got != exp) {
				t.Fatalf("round %d: key %v lost (found %v, exp %d want %d)", round, k, ok, got, exp)
			}
		}
	}
}
