package budget

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FreqReserve checks and counts under one lock: of 64 concurrent bids for
// one user of a campaign capped at 3, exactly 3 are counted; a loss frees
// one; an impression does not.
func TestFreqReserveConcurrent(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(100))
	c.FreqCapCount, c.FreqCapWindow = 3, time.Hour
	m := newMemManager(t, NewMemStore(), "i1", clk, c, campaign("uncapped", micros(100)))
	h, now := m.Handle("c"), clk.Now()
	var ok atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if m.FreqReserve(h, 42, now) {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 3 {
		t.Fatalf("%d of 64 concurrent bids counted against a cap of 3", ok.Load())
	}
	m.FreqSettle(h, 42, "", now) // a loss
	if !m.FreqReserve(h, 42, now) || m.FreqReserve(h, 42, now) {
		t.Fatal("after a loss: want one more bid, then none")
	}
	m.RecordImpression(h, 42, now)
	m.FreqSettle(h, 42, "", now) // an impression: still counts
	if m.FreqReserve(h, 42, now) {
		t.Fatal("an impression freed a bid")
	}
	if !m.FreqReserve(h, 43, now) || !m.FreqReserve(m.Handle("uncapped"), 42, now) {
		t.Fatal("another user, or a campaign without a cap, refused")
	}
}

// A full frequency table fails closed: a capped campaign bids no user it
// has no entry for (counted), an uncapped one is unaffected, and once the
// entries' windows end new users bid again. Before, a key the full table
// could not store was allowed and never counted: an outside audit's new
// user saw 10 impressions under a cap of 2.
func TestFreqTableFullFailsClosed(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(100))
	c.FreqCapCount, c.FreqCapWindow = 2, time.Hour
	m := newMemManager(t, NewMemStore(), "i1", clk, c, campaign("uncapped", micros(100))) // FreqMaxUsers 4,096
	h, now := m.Handle("c"), clk.Now()
	for u := uint64(1); u <= 8192; u++ { // twice what the table holds
		m.RecordImpression(h, u, now)
	}
	before := m.Counters().FreqTableFull
	for u := uint64(100_000); u < 100_100; u++ {
		if left := m.FreqLeft(h, u, now); left != 0 {
			t.Fatalf("user %d: %d impressions left with the table full, want 0", u, left)
		}
		if m.FreqReserve(h, u, now) {
			t.Fatalf("user %d: a capped bid counted nowhere was allowed", u)
		}
	}
	if got := m.Counters().FreqTableFull - before; got != 200 {
		t.Fatalf("freq_table_full_total rose by %d, want 200", got)
	}
	// A look that bids nothing (/admin/explain) says the same, uncounted.
	if left, n := m.FreqLeftPeek(h, 100_000, now), m.Counters().FreqTableFull-before; left != 0 || n != 200 {
		t.Fatalf("peek: %d left, counter rose to %d; want 0 and still 200", left, n)
	}
	if !m.FreqReserve(m.Handle("uncapped"), 100_000, now) {
		t.Fatal("a campaign without a cap refused")
	}
	clk.Add(time.Hour + time.Second)
	m.freq.prune(clk.Now().UnixNano())
	if !m.FreqReserve(h, 100_000, clk.Now()) {
		t.Fatal("a new user refused after the table's entries expired")
	}
}
