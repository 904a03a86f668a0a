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
