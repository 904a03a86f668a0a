package ctr

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is returned at once by a Batcher whose request slots are all
// taken.
var ErrQueueFull = errors.New("ctr: batcher queue full")

var errBatchShape = errors.New("ctr: len(rows) is not len(out) times the width")

// LatencyPredictor predicts how long scoring rows rows takes from now.
type LatencyPredictor interface {
	PredictLatency(rows int) time.Duration
}

// batchModel is implemented by models the Batcher can fill in place (ONNX):
// batchLock locks the model for a run of n rows (false when closed;
// batchUnlock is still due), batchPut writes feature rows into the run's
// inputs from row off on (converting them to the model's input form),
// batchRun runs the n rows and returns the outputs, valid until
// batchUnlock.
type batchModel interface {
	batchLock(n int) bool
	batchPut(n, off int, rows []float32)
	batchRun(n int) ([]float32, error)
	batchUnlock()
}

// BatchOptions configures a Batcher. A zero field means the default.
type BatchOptions struct {
	// MaxBatch is the most rows one run takes (default 64, and never more
	// than the model's MaxBatch when it has one: on the CPU provider the
	// per-row cost is flat from 64 rows up while the run time keeps growing).
	// A single request with more rows is scored directly, unbatched.
	MaxBatch int
	// MaxWait is the longest the first request of a batch waits for more
	// rows. Zero (the default) or negative: never wait. A request that finds
	// the runtime idle is run at once with whatever else is queued; rows
	// that arrive while a run is under way queue and form the next run (up
	// to MaxBatch), so batches grow with load without anyone waiting for
	// company. That is the right setting on the CPU provider, where a run's
	// cost grows with its rows.
	//
	// A positive wait is an opt-in for a runtime whose runs cost much the
	// same at any batch size (a GPU) and that is short of runs rather than
	// of latency: fewer, fuller runs for up to MaxWait more latency on a
	// lone request. Not measured on a GPU. The wait is bounded by the
	// earliest deadline in the batch less the predicted run time, Margin,
	// and a quarter of what is left (at least 1ms) for a late timer. Waits
	// under 1ms yield in a loop rather than arm a timer: Go timers under 1ms
	// fire late when the process is idle.
	MaxWait time.Duration
	// QueueSize is the number of requests waiting or in flight (default
	// 1024); beyond it Score returns ErrQueueFull at once.
	QueueSize int
	// Margin is kept between a predicted finish and a deadline, for
	// scheduling delays (default 50µs).
	Margin time.Duration
}

// BatchStats are the Batcher's counters since it started.
type BatchStats struct {
	Requests       uint64 // requests answered by a run (success or model error)
	Rows           uint64
	Batches        uint64 // session runs
	BatchSizes     [17]uint64
	QueueWaitNanos uint64 // sum over requests of enqueue to start of run
	RunNanos       uint64 // sum over batches of run time
	DeadlineMisses uint64 // requests answered ErrDeadline
	QueueFull      uint64 // requests refused with ErrQueueFull
	Errors         uint64 // requests answered with a model error
	Direct         uint64 // requests over MaxBatch rows, scored unbatched
	// Waited counts runs whose start was held back to gather more rows
	// (MaxWait > 0 only): by a timer, or by yields for a wait under 1ms.
	// With the default MaxWait it stays 0: every run starts as soon as the
	// worker is free.
	Waited   uint64
	MaxBatch int
	MaxWait  time.Duration
}

// BatchSizeBucket is the upper bound of BatchStats.BatchSizes[i]: it counts
// runs of more than BatchSizeBucket(i-1) and at most BatchSizeBucket(i) rows.
func BatchSizeBucket(i int) int { return 1 << i }

const (
	slotPending   int32 = iota // queued or gathered, not claimed
	slotCopying                // the worker is reading rows
	slotRunning                // rows copied, the run is under way
	slotWriting                // the worker is writing out and err
	slotDone                   // answered; done has a token
	slotAbandoned              // the caller left; the worker releases the slot
)

// batchSlot is one request's pooled state.
type batchSlot struct {
	state    atomic.Int32
	rows     []float32
	out      []float32
	deadline time.Time
	enq      time.Time
	err      error
	done     chan struct{}
	timer    *time.Timer
}

// Batcher gathers rows from concurrent Score callers into one model run.
//
// By default (MaxWait 0) a run starts as soon as the worker is free: a lone
// request on an idle runtime is run at once, and what queues while a run is
// under way is the next run (up to MaxBatch rows). With MaxWait > 0 a run
// starts when MaxBatch rows are gathered, when the first request has waited
// MaxWait, or when waiting longer would miss the earliest deadline in the
// batch given the predicted run time. A caller never waits past its
// deadline: it leaves with ErrDeadline and the worker drops its rows.
// Steady-state Score makes no allocation: request slots are pre-allocated
// and reused, each with its own channel and timer.
type Batcher struct {
	model    Scorer
	fast     batchModel // model's in-place interface, or nil
	width    int
	maxBatch int
	maxWait  time.Duration
	margin   time.Duration

	free   chan *batchSlot
	queue  chan *batchSlot
	stop   chan struct{}
	exited chan struct{}
	closed atomic.Bool
	once   sync.Once

	est [17]atomic.Int64 // EWMA run time per bucket, nanoseconds
	avg atomic.Int64     // EWMA rows per batch, in 1/16 rows
	// runDue is when the run under way should end by its estimate (unix
	// nanoseconds; 0: no run under way): overdue says how far past it is.
	runDue atomic.Int64
	// measured is when each bucket's estimate last took a run's time (unix
	// nanoseconds): refusals lower only an estimate no run has measured
	// for batchStaleAfter (decay).
	measured [17]atomic.Int64

	// worker-owned
	batch    []*batchSlot
	carry    *batchSlot
	gather   *time.Timer
	stageIn  []float32
	stageOut []float32

	requests, rows, batches, queueWait, runNanos atomic.Uint64
	misses, full, errs, direct, waited           atomic.Uint64
	sizes                                        [17]atomic.Uint64
}

var _ Scorer = (*Batcher)(nil)

// NewBatcher starts a batcher over model. Close stops it (it does not close
// the model).
func NewBatcher(model Scorer, opts BatchOptions) (*Batcher, error) {
	if model == nil || model.Width() <= 0 {
		return nil, fmt.Errorf("%w: batcher needs a model with a positive width", ErrUnavailable)
	}
	b := &Batcher{model: model, width: model.Width(), maxBatch: opts.MaxBatch, maxWait: opts.MaxWait, margin: opts.Margin}
	b.fast, _ = model.(batchModel)
	if b.maxBatch == 0 {
		b.maxBatch = 64
	}
	if mb, ok := model.(interface{ MaxBatch() int }); ok && b.maxBatch > mb.MaxBatch() {
		b.maxBatch = mb.MaxBatch()
	}
	if b.maxBatch < 1 || b.maxBatch > 1<<16 {
		return nil, fmt.Errorf("%w: batcher max batch %d out of [1, 65536]", ErrUnavailable, b.maxBatch)
	}
	b.maxWait = max(b.maxWait, 0)
	if b.margin <= 0 {
		b.margin = 50 * time.Microsecond
	}
	q := opts.QueueSize
	if q <= 0 {
		q = 1024
	}
	b.free, b.queue = make(chan *batchSlot, q), make(chan *batchSlot, q)
	for range q {
		s := &batchSlot{done: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
		s.timer.Stop()
		b.free <- s
	}
	if lp, ok := model.(LatencyPredictor); ok {
		for i := range b.est {
			b.est[i].Store(int64(lp.PredictLatency(1 << i)))
		}
	}
	b.batch = make([]*batchSlot, 0, b.maxBatch)
	b.gather = time.NewTimer(time.Hour)
	b.gather.Stop()
	if b.fast == nil {
		b.stageIn, b.stageOut = make([]float32, b.maxBatch*b.width), make([]float32, b.maxBatch)
	}
	b.stop, b.exited = make(chan struct{}), make(chan struct{})
	go b.run()
	return b, nil
}

// Name is the model's name.
func (b *Batcher) Name() string { return b.model.Name() }

// Width is the model's row width.
func (b *Batcher) Width() int { return b.width }

// Model is the scorer the batcher runs.
func (b *Batcher) Model() Scorer { return b.model }

// MaxBatch is the most rows one run takes.
func (b *Batcher) MaxBatch() int { return b.maxBatch }

// Provider is the model's execution provider when it has one ("cuda",
// "cpu"), else "".
func (b *Batcher) Provider() string {
	if p, ok := b.model.(interface{ Provider() string }); ok {
		return p.Provider()
	}
	return ""
}

func (b *Batcher) runEst(rows int) time.Duration { return time.Duration(b.est[b.bucket(rows)].Load()) }

// bucket is the index of the estimate of a run of rows rows.
func (b *Batcher) bucket(rows int) int { return onnxBucketFor(min(max(rows, 1), b.maxBatch)) }

// batchStaleAfter is how long an estimate must have gone without a run
// measuring it before refusals lower it: while runs keep measuring it,
// requests refused for short slack say nothing about it.
const batchStaleAfter = 20 * time.Millisecond

// decay lowers the estimate of a run of rows rows after a refusal on it
// (onnxDecay), when no run has measured it for batchStaleAfter.
func (b *Batcher) decay(rows int) {
	bk := b.bucket(rows)
	if time.Now().UnixNano()-b.measured[bk].Load() >= int64(batchStaleAfter) {
		onnxDecay(&b.est[bk])
	}
}

// noteRefusal implements refusalNoter: a caller (the Chain) declined the
// batcher on PredictLatency(rows); the estimates it summed are lowered a
// little (onnxDecay), so one that ran high is tried, and measured, again.
func (b *Batcher) noteRefusal(rows int) {
	if b.overdue() > 0 {
		return // refused for the run under way, not on the estimates
	}
	typical := int(b.avg.Load() / 16)
	b.decay(typical)
	if b.bucket(rows+typical) != b.bucket(typical) {
		b.decay(rows + typical)
	}
}

// PredictLatency estimates the time from submitting rows rows to their
// answer: a typical batch that may be running ahead, then a run of a batch
// holding these rows and the typical company.
//
// While a run is past its own estimate (the runtime stalled, or the model
// is slow on its rows), the time it is overdue is added: the run may take
// that long again, and the rows would wait behind it. Before, requests
// queued behind a run that took 184ms, left at their deadline and found no
// time for the fallback (an outside audit).
func (b *Batcher) PredictLatency(rows int) time.Duration {
	typical := int(b.avg.Load() / 16)
	return b.runEst(typical) + b.runEst(rows+typical) + b.margin + b.overdue()
}

// overdue is how far the run under way is past its estimated end (0: none,
// or not yet due).
func (b *Batcher) overdue() time.Duration {
	due := b.runDue.Load()
	if due == 0 {
		return 0
	}
	return max(time.Duration(time.Now().UnixNano()-due), 0)
}

// Score implements Scorer: rows join the next batch and Score returns when
// the batch has run, or with ErrDeadline when the deadline would pass first.
// rows and out must not be touched by the caller until Score returns.
func (b *Batcher) Score(deadline time.Time, rows []float32, out []float32) error {
	n := len(out)
	if len(rows) != n*b.width {
		return errBatchShape
	}
	if n == 0 {
		return nil
	}
	if b.closed.Load() {
		return ErrUnavailable
	}
	now := time.Now()
	slack := time.Hour
	if !deadline.IsZero() {
		slack = deadline.Sub(now)
	}
	if over := b.overdue(); slack < b.runEst(n)+b.margin+over {
		b.misses.Add(1)
		if over == 0 {
			b.decay(n)
		}
		return ErrDeadline
	}
	if n > b.maxBatch {
		b.direct.Add(1)
		return b.model.Score(deadline, rows, out)
	}
	var s *batchSlot
	select {
	case s = <-b.free:
	default:
		b.full.Add(1)
		return ErrQueueFull
	}
	s.rows, s.out, s.deadline, s.enq, s.err = rows, out, now.Add(slack), now, nil
	s.state.Store(slotPending)
	b.queue <- s // never blocks: the queue holds every slot
	if b.closed.Load() && s.state.CompareAndSwap(slotPending, slotAbandoned) {
		return ErrUnavailable
	}
	s.timer.Reset(slack)
	select {
	case <-s.done:
		s.timer.Stop()
		return b.finish(s)
	case <-s.timer.C:
		return b.abandon(s)
	}
}

// finish takes the answer of a done slot and frees the slot.
func (b *Batcher) finish(s *batchSlot) error {
	err := s.err
	s.rows, s.out, s.err = nil, nil, nil
	b.free <- s
	return err
}

// abandon leaves a slot whose deadline passed. Once the worker has copied
// the rows, only the short writing phase is waited for.
func (b *Batcher) abandon(s *batchSlot) error {
	for {
		switch st := s.state.Load(); st {
		case slotPending, slotRunning:
			if s.state.CompareAndSwap(st, slotAbandoned) {
				b.misses.Add(1)
				return ErrDeadline
			}
		case slotCopying:
			runtime.Gosched()
		default: // writing or done: the answer is a moment away
			<-s.done
			return b.finish(s)
		}
	}
}

// Close stops the worker; queued requests get ErrUnavailable. It does not
// close the model.
func (b *Batcher) Close() error {
	b.once.Do(func() {
		b.closed.Store(true)
		close(b.stop)
		<-b.exited
	})
	return nil
}

// Stats returns the counters.
func (b *Batcher) Stats() BatchStats {
	st := BatchStats{
		Requests: b.requests.Load(), Rows: b.rows.Load(), Batches: b.batches.Load(),
		QueueWaitNanos: b.queueWait.Load(), RunNanos: b.runNanos.Load(),
		DeadlineMisses: b.misses.Load(), QueueFull: b.full.Load(), Errors: b.errs.Load(),
		Direct: b.direct.Load(), Waited: b.waited.Load(), MaxBatch: b.maxBatch, MaxWait: b.maxWait,
	}
	for i := range st.BatchSizes {
		st.BatchSizes[i] = b.sizes[i].Load()
	}
	return st
}
