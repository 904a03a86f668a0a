package ctr

import (
	"sync/atomic"
	"testing"
	"time"
)

// batchStall scores every row 0.5, after sleeping stall (nanoseconds) once
// per call while it is set.
type batchStall struct {
	width int
	stall atomic.Int64
}

func (f *batchStall) Name() string                     { return "stall" }
func (f *batchStall) Width() int                       { return f.width }
func (f *batchStall) PredictLatency(int) time.Duration { return 50 * time.Microsecond }
func (f *batchStall) Score(_ time.Time, _ []float32, out []float32) error {
	if d := f.stall.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	for i := range out {
		out[i] = 0.5
	}
	return nil
}

// One run that stalls (the process descheduled for a moment: a cgroup's CPU
// quota, a page fault storm, a noisy neighbour) must not shut the model out
// for good. Before, the stalled run's time went into the batcher's
// estimate at 1/8 weight: 120ms put it at 15ms, over every request's slack,
// so every later call was refused on the estimate (ErrDeadline, or the
// chain's slack check) without running, nothing measured it again, and the
// chain served the fallback until the model was reloaded (an outside
// audit: a data-dependent slow ONNX model made it happen on the bidder,
// openbidder_model_batch_rows_count froze and every row went to the GBDT).
func TestBatcherOneStalledRunDoesNotShutTheModelOut(t *testing.T) {
	f := &batchStall{width: 2}
	b := batchNew(t, f, BatchOptions{})
	fb := &batchFake{width: 2}
	c, err := NewChain(b, fb)
	if err != nil {
		t.Fatal(err)
	}
	rows, out := []float32{1, 2}, make([]float32, 1)
	for range 20 {
		if by, err := c.ScoreBy(time.Now().Add(50*time.Millisecond), rows, out); err != nil || by != ScoredPrimary {
			t.Fatalf("warm call: %v by %v", err, by)
		}
	}
	f.stall.Store(int64(120 * time.Millisecond))
	if err := b.Score(time.Time{}, rows, out); err != nil { // no deadline: the run completes, stalled
		t.Fatal(err)
	}
	f.stall.Store(0)
	if took := batchUntilPrimary(c, 5*time.Millisecond, 2*time.Second); took < 0 {
		t.Fatalf("2s after one stalled run the primary still scores nothing with 5ms of slack (estimate for 1 row %v); chain %+v",
			b.PredictLatency(1), c.Stats())
	}
}

// batchUntilPrimary scores one row through c every 200µs with slack each
// until the primary has answered 50 calls; it returns how long that took,
// or -1 when it did not within limit.
func batchUntilPrimary(c *Chain, slack, limit time.Duration) time.Duration {
	rows, out := []float32{1, 2}, make([]float32, 1)
	start := time.Now()
	for primary := 0; primary < 50; time.Sleep(200 * time.Microsecond) {
		if time.Since(start) > limit {
			return -1
		}
		if by, err := c.ScoreBy(time.Now().Add(slack), rows, out); err == nil && by == ScoredPrimary {
			primary++
		}
	}
	return time.Since(start)
}

// A model that was slow for a while (its estimate rightly over the slack)
// and then fast again is tried again: each refusal on the estimate lowers
// it a little (onnxDecay), as the GBDT's does, until a call runs and
// measures the model as it is now. Before, a batcher refused on its
// estimate never ran again, so its estimate never came down.
func TestBatcherEstimateComesDownAfterASlowSpell(t *testing.T) {
	f := &batchStall{width: 2}
	b := batchNew(t, f, BatchOptions{})
	c, err := NewChain(b, &batchFake{width: 2})
	if err != nil {
		t.Fatal(err)
	}
	rows, out := []float32{1, 2}, make([]float32, 1)
	f.stall.Store(int64(10 * time.Millisecond))
	for range 40 { // no deadline: every run completes, slow
		if err := b.Score(time.Time{}, rows, out); err != nil {
			t.Fatal(err)
		}
	}
	if est := b.PredictLatency(1); est < 5*time.Millisecond {
		t.Fatalf("after 40 runs of 10ms the estimate is %v", est)
	}
	f.stall.Store(0)
	if took := batchUntilPrimary(c, 2*time.Millisecond, 3*time.Second); took < 0 {
		t.Fatalf("3s after the slow spell the primary still scores nothing with 2ms of slack (estimate for 1 row %v); chain %+v",
			b.PredictLatency(1), c.Stats())
	}
}

// deadlineConst answers v, or ErrDeadline once the deadline has passed (as
// the GBDT refuses when no time is left).
type deadlineConst struct{ chainConst }

func (d *deadlineConst) Score(deadline time.Time, rows, out []float32) error {
	if !deadline.IsZero() && time.Now().After(deadline) {
		return ErrDeadline
	}
	return d.chainConst.Score(deadline, rows, out)
}

// A run that is taking far longer than its estimate (the runtime stalled,
// or the model is slow on these rows) is not waited behind: requests that
// arrive meanwhile go to the fallback at once. Before, they queued behind
// it until their deadline, left with ErrDeadline, and the fallback had no
// time left: a no-bid for every request during a slow run (an outside
// audit: a model slow on rows with a user age, 184ms a run, no-bid the
// requests behind it).
func TestBatcherOverdueRunSendsNewRequestsToTheFallback(t *testing.T) {
	f := &batchFake{width: 2, predict: 50 * time.Microsecond, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	b := batchNew(t, f, BatchOptions{})
	c, err := NewChain(b, &deadlineConst{chainConst{v: 0.25, width: 2}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Score(time.Time{}, []float32{1, 2}, make([]float32, 1)) }()
	<-f.entered
	time.Sleep(20 * time.Millisecond) // the run is 400 times over its estimate
	out := make([]float32, 1)
	start := time.Now()
	by, err := c.ScoreBy(start.Add(10*time.Millisecond), []float32{3, 4}, out)
	took := time.Since(start)
	close(f.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err != nil || by != ScoredFallback || out[0] != 0.25 || took > 5*time.Millisecond {
		t.Fatalf("behind an overdue run: by %v, err %v, out %v after %v; want the fallback's 0.25 at once", by, err, out, took)
	}
}

// Refusals of requests whose slack is simply short (a run takes 3ms, most
// requests have 1ms left) must not wear the estimate down while runs keep
// measuring it: the decay is for an estimate nothing measures any more. An
// estimate worn to half the run time sends requests with 2ms of slack to a
// 3ms run: a no-bid where the fallback had time.
func TestBatcherEstimateHoldsWhileRunsMeasureIt(t *testing.T) {
	f := &batchStall{width: 2}
	f.stall.Store(int64(3 * time.Millisecond))
	b := batchNew(t, f, BatchOptions{})
	c, err := NewChain(b, &batchFake{width: 2})
	if err != nil {
		t.Fatal(err)
	}
	rows, out := []float32{1, 2}, make([]float32, 1)
	for range 30 { // the estimate learns the 3ms run
		if err := b.Score(time.Time{}, rows, out); err != nil {
			t.Fatal(err)
		}
	}
	for range 40 {
		for range 10 {
			c.ScoreBy(time.Now().Add(time.Millisecond), rows, out) // refused on the estimate
		}
		if err := b.Score(time.Now().Add(time.Second), rows, out); err != nil { // runs, measured
			t.Fatal(err)
		}
	}
	if est := b.runEst(1); est < 2400*time.Microsecond {
		t.Fatalf("estimate of a 3ms run worn down to %v by refusals while runs measured it", est)
	}
}
