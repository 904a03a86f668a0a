package ctr

import (
	"testing"
	"time"
)

// A request the worker drops because the batch's run would end after its
// deadline was refused on the estimate of that run (all the batch's rows):
// that estimate is the one lowered, not the one of however many rows the
// worker had kept before reaching the request (0 for the first: the 1-row
// estimate, which had nothing to do with the refusal).
func TestBatcherDropLowersTheEstimateItWasRefusedOn(t *testing.T) {
	b := batchNew(t, &batchStall{width: 2}, BatchOptions{})
	b.Close() // the worker is gone: runBatch is called here
	whole, one := b.bucket(9), b.bucket(1)
	b.est[whole].Store(int64(10 * time.Millisecond)) // stale and high
	oneBefore := b.est[one].Load()
	now := time.Now()
	slot := func(rows int, deadline time.Time) *batchSlot {
		s := <-b.free
		s.rows, s.out = make([]float32, rows*2), make([]float32, rows)
		s.deadline, s.enq = deadline, now
		s.state.Store(slotPending)
		return s
	}
	short := slot(1, now.Add(5*time.Millisecond)) // first in the batch: dropped
	long := slot(8, now.Add(time.Hour))
	b.batch = append(b.batch[:0], short, long)
	b.runBatch(9)
	if short.err != ErrDeadline || long.err != nil {
		t.Fatalf("short %v, long %v: want the short one dropped, the long one run", short.err, long.err)
	}
	if got := b.est[one].Load(); got != oneBefore {
		t.Errorf("the 1-row estimate went from %v to %v: the drop lowered an estimate it was not refused on",
			time.Duration(oneBefore), time.Duration(got))
	}
	if got := b.est[whole].Load(); got >= int64(10*time.Millisecond) {
		t.Errorf("the 9-row estimate the drop was refused on stayed %v", time.Duration(got))
	}
}
