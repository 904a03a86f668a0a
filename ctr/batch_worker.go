package ctr

import (
	"runtime"
	"time"
)

// batchTimerSlop is how late a short timer may fire: the runtime's idle
// poller sleeps in whole milliseconds.
const batchTimerSlop = time.Millisecond

// run is the batcher's single worker: gather, run, hand back, repeat.
//
// With MaxWait 0 nothing waits for company: a request that finds the worker
// idle (blocked on the queue) is run at once with whatever else is queued.
// After each run the worker yields once, so the callers it has just
// answered, and any goroutine about to score, can queue before it gathers
// the next run: under load this is what lets rows arrive "while a run is
// under way" (the worker would otherwise run the first woken caller's rows
// alone and the rest one by one). A lone request never waits on it: the
// yield comes after a run, and returns at once when nothing else is ready.
// Measured in docs/benchmarks.md (BenchmarkBatcherLatency): at 8 and 64
// closed-loop callers it gives 4 to 6 times the rows per run and a lower p99.
func (b *Batcher) run() {
	defer close(b.exited)
	for {
		select { // stop takes priority over queued work
		case <-b.stop:
			b.drain()
			return
		default:
		}
		s := b.carry
		b.carry = nil
		if s == nil {
			select {
			case s = <-b.queue:
			case <-b.stop:
				b.drain()
				return
			}
		}
		rows := b.add(s, 0)
		if rows == 0 {
			continue
		}
		if b.maxWait > 0 {
			var waited bool
			if rows, waited = b.gatherMore(rows, s.enq.Add(b.maxWait)); waited {
				b.waited.Add(1)
			}
		} else {
			rows = b.gatherQueued(rows)
		}
		b.runBatch(rows)
		runtime.Gosched()
	}
}

// add appends s to the batch unless it was abandoned or does not fit (then
// it is carried to the next batch); it returns the new row count.
func (b *Batcher) add(s *batchSlot, rows int) int {
	if s.state.Load() == slotAbandoned {
		b.release(s)
		return rows
	}
	n := len(s.out)
	if rows+n > b.maxBatch {
		b.carry = s
		return rows
	}
	b.batch = append(b.batch, s)
	return rows + n
}

// gatherMore adds queued requests until the batch is full, a request is
// carried over, or it is time to run: MaxWait after the first request, or
// the latest start that still meets the earliest deadline.
// It reports whether it held the run back (a timer or a yield).
func (b *Batcher) gatherMore(rows int, until time.Time) (int, bool) {
	earliest := b.batch[0].deadline
	waited := false
	for rows < b.maxBatch && b.carry == nil {
		var s *batchSlot
		select {
		case s = <-b.queue:
		default:
			limit := until
			lim := earliest.Add(-b.runEst(rows) - b.margin)
			// Keep a quarter of the time left (at least the timer slop) for
			// a timer that fires late on a loaded machine.
			lim = lim.Add(-max(batchTimerSlop, time.Until(lim)/4))
			if lim.Before(limit) {
				limit = lim
			}
			wait := time.Until(limit)
			if wait <= 0 {
				return rows, waited
			}
			waited = true
			if wait < batchTimerSlop {
				// A timer this short would fire late: yield until the limit.
				runtime.Gosched()
				continue
			}
			b.gather.Reset(wait)
			select {
			case s = <-b.queue:
				b.gather.Stop()
			case <-b.gather.C:
				return rows, waited
			case <-b.stop:
				b.gather.Stop()
				return rows, waited
			}
		}
		before := len(b.batch)
		rows = b.add(s, rows)
		if len(b.batch) > before && s.deadline.Before(earliest) {
			earliest = s.deadline
		}
	}
	return rows, waited
}

// gatherQueued adds what is queued now, without waiting: the rows that
// arrived while the last run was under way.
func (b *Batcher) gatherQueued(rows int) int {
	for rows < b.maxBatch && b.carry == nil {
		select {
		case s := <-b.queue:
			rows = b.add(s, rows)
		default:
			return rows
		}
	}
	return rows
}

// runBatch drops requests that can no longer be answered in time, claims
// the rest, runs them and hands the answers back.
func (b *Batcher) runBatch(rows int) {
	start := time.Now()
	finishBy := start.Add(b.runEst(rows) + b.margin/2)
	kept := b.batch[:0]
	gathered := rows // the run finishBy was estimated for
	rows = 0
	for _, s := range b.batch {
		switch {
		case s.deadline.Before(finishBy):
			b.answer(s, slotPending, ErrDeadline)
			b.decay(gathered) // refused on the estimate of the whole run: see onnxDecay
		case s.state.CompareAndSwap(slotPending, slotCopying):
			kept = append(kept, s)
			rows += len(s.out)
			b.queueWait.Add(uint64(start.Sub(s.enq)))
		default: // abandoned
			b.release(s)
		}
	}
	clear(b.batch[len(kept):])
	b.batch = kept
	if rows > 0 {
		b.runDue.Store(finishBy.UnixNano())
		out, err := b.runModel(rows, kept)
		b.runDue.Store(0)
		b.noteRun(rows, len(kept), err, time.Since(start)) // before any caller can read Stats
		off := 0
		for _, s := range kept {
			n := len(s.out)
			if s.state.CompareAndSwap(slotRunning, slotWriting) {
				if err == nil {
					copy(s.out, out[off:off+n])
				}
				s.err = err
				s.state.Store(slotDone)
				s.done <- struct{}{}
			} else {
				b.release(s)
			}
			off += n
		}
		if b.fast != nil {
			b.fast.batchUnlock()
		}
	}
	clear(b.batch)
	b.batch = b.batch[:0]
}

// runModel copies the claimed rows into the model's input, marks them
// running and runs the model. With an in-place model the lock is held until
// runBatch calls batchUnlock.
func (b *Batcher) runModel(rows int, kept []*batchSlot) ([]float32, error) {
	if b.fast != nil {
		ok := b.fast.batchLock(rows)
		off := 0
		for _, s := range kept {
			if ok {
				b.fast.batchPut(rows, off, s.rows)
			}
			off += len(s.out)
			s.state.Store(slotRunning)
		}
		if !ok {
			return nil, ErrUnavailable
		}
		return b.fast.batchRun(rows)
	}
	in := b.stageIn[:rows*b.width]
	off := 0
	for _, s := range kept {
		off += copy(in[off:], s.rows)
		s.state.Store(slotRunning)
	}
	earliest := kept[0].deadline
	for _, s := range kept[1:] {
		if s.deadline.Before(earliest) {
			earliest = s.deadline
		}
	}
	out := b.stageOut[:rows]
	return out, b.model.Score(earliest, in, out)
}

func (b *Batcher) noteRun(rows, reqs int, err error, took time.Duration) {
	bk := onnxBucketFor(rows)
	if err == nil {
		b.est[bk].Store(int64(onnxEWMA(time.Duration(b.est[bk].Load()), took)))
		b.measured[bk].Store(time.Now().UnixNano())
		b.avg.Store(b.avg.Load() + (int64(rows)*16-b.avg.Load())/8)
	} else if err == ErrDeadline {
		b.misses.Add(uint64(reqs))
	} else {
		b.errs.Add(uint64(reqs))
	}
	b.requests.Add(uint64(reqs))
	b.rows.Add(uint64(rows))
	b.batches.Add(1)
	b.sizes[bk].Add(1)
	b.runNanos.Add(uint64(took))
}

// answer completes a slot in state from with err (no rows written), or
// releases it when the caller already left.
func (b *Batcher) answer(s *batchSlot, from int32, err error) {
	if !s.state.CompareAndSwap(from, slotWriting) {
		b.release(s)
		return
	}
	if err == ErrDeadline {
		b.misses.Add(1)
	}
	s.err = err
	s.state.Store(slotDone)
	s.done <- struct{}{}
}

// release returns an abandoned slot to the free list.
func (b *Batcher) release(s *batchSlot) {
	s.rows, s.out, s.err = nil, nil, nil
	b.free <- s
}

// drain answers everything still queued with ErrUnavailable.
func (b *Batcher) drain() {
	if b.carry != nil {
		b.answer(b.carry, slotPending, ErrUnavailable)
		b.carry = nil
	}
	for {
		select {
		case s := <-b.queue:
			b.answer(s, slotPending, ErrUnavailable)
		default:
			return
		}
	}
}
