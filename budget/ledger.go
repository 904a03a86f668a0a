package budget

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LedgerEntry is one charge, as appended to the ledger stream (JSON), for
// readers of the stream.
type LedgerEntry struct {
	MsgID    string `json:"id"` // hex of SHA-256(auction 0 imp)[:16]; also the Nats-Msg-Id
	Auction  string `json:"auction"`
	Imp      string `json:"imp"`
	Campaign string `json:"campaign"`
	Instance string `json:"instance"`
	Boot     string `json:"boot"`
	Kind     string `json:"kind"`
	Bid      int64  `json:"bid_micros"`
	Clearing int64  `json:"clearing_micros"`
	Charged  int64  `json:"charged_micros"`
	Late     bool   `json:"late,omitempty"`
	Capped   bool   `json:"capped,omitempty"`
	Time     int64  `json:"time_ns"`

	acct *Account
}

type pubOutcome uint8

const (
	pubStored   pubOutcome = iota // stored (or a duplicate of our own earlier publish)
	pubDupOther                   // another instance already recorded this charge
	pubFailed                     // not acknowledged: retry
)

// ledgerBackend appends entries; one call per batch, results in out.
type ledgerBackend interface {
	publish(ctx context.Context, batch []LedgerEntry, out []pubOutcome)
}

// ledger queues charges and appends them until acknowledged. Charges are money:
// the queue is never dropped from; its length is in the metrics.
type ledger struct {
	mu      mutex[lkLedger]
	pending []LedgerEntry
	flushMu mutex[lkLedgerFlush] // one flusher at a time, held across the publish; taken before mu
	wake    chan struct{}
	be      ledgerBackend
	onDone  func(e *LedgerEntry, o pubOutcome)

	stored, dupOther, failed atomic.Uint64
}

const ledgerBatch = 512

func newLedger(be ledgerBackend, onDone func(*LedgerEntry, pubOutcome)) *ledger {
	return &ledger{be: be, onDone: onDone, wake: make(chan struct{}, 1)}
}

func (l *ledger) enqueue(e LedgerEntry) {
	l.mu.Lock()
	l.pending = append(l.pending, e)
	n := len(l.pending)
	l.mu.Unlock()
	if n >= ledgerBatch/4 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *ledger) backlog() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// flushOnce publishes one batch; it reports whether the queue was emptied
// and whether every entry of the batch was acknowledged.
func (l *ledger) flushOnce(ctx context.Context) (empty, ok bool) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	n := min(len(l.pending), ledgerBatch)
	batch := make([]LedgerEntry, n)
	copy(batch, l.pending[:n])
	l.pending = append(l.pending[:0], l.pending[n:]...)
	l.mu.Unlock()
	if n == 0 {
		return true, true
	}
	out := make([]pubOutcome, n)
	l.be.publish(ctx, batch, out)
	var retry []LedgerEntry
	for i := range batch {
		switch out[i] {
		case pubFailed:
			l.failed.Add(1)
			retry = append(retry, batch[i])
			continue
		case pubStored:
			l.stored.Add(1)
		case pubDupOther:
			l.dupOther.Add(1)
		}
		l.onDone(&batch[i], out[i])
	}
	l.mu.Lock()
	if len(retry) > 0 {
		l.pending = append(retry, l.pending...)
	}
	empty = len(l.pending) == 0
	l.mu.Unlock()
	return empty, len(retry) == 0
}

// flush publishes until the queue is empty or ctx ends.
func (l *ledger) flush(ctx context.Context) error {
	for {
		empty, ok := l.flushOnce(ctx)
		if empty {
			return nil
		}
		if !ok {
			select {
			case <-ctx.Done():
				return ErrFlushIncomplete
			case <-time.After(50 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			return ErrFlushIncomplete
		}
	}
}

func (l *ledger) run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.wake:
		}
		for {
			empty, ok := l.flushOnce(ctx)
			if empty || !ok || ctx.Err() != nil {
				break
			}
		}
	}
}

// ledgerDone is called once per acknowledged ledger entry, under the
// ledger's flushMu (so flushMu -> Account.mu).
func (m *Manager) ledgerDone(e *LedgerEntry, o pubOutcome) {
	a := e.acct
	if a == nil {
		return
	}
	a.mu.Lock()
	if o == pubDupOther {
		a.spent.Add(-e.Charged) // another instance already charged this (auction, imp)
	} else {
		a.confirmed.Add(e.Charged)
	}
	a.mu.Unlock()
	if o == pubDupOther {
		a.dupN.Add(1)
		m.dupN.Add(1)
		if e.Late {
			a.lateN.Add(^uint64(0))
			a.lateMicros.Add(^uint64(e.Charged - 1))
		}
	}
}

// jsLedger appends to the JetStream ledger stream with Nats-Msg-Id
// de-duplication.
type jsLedger struct {
	js       jetstream.JetStream
	stream   string
	origin   string
	timeout  time.Duration
	subjects string // prefix
}

const originHeader = "Budget-Origin"

func (j *jsLedger) publish(ctx context.Context, batch []LedgerEntry, out []pubOutcome) {
	futs := make([]jetstream.PubAckFuture, len(batch))
	for i := range batch {
		out[i] = pubFailed
		b, err := json.Marshal(&batch[i])
		if err != nil {
			continue
		}
		msg := nats.NewMsg(j.subjects + kvKey(batch[i].Campaign))
		msg.Data = b
		msg.Header.Set(originHeader, j.origin)
		f, err := j.js.PublishMsgAsync(msg, jetstream.WithMsgID(batch[i].MsgID))
		if err != nil {
			break
		}
		futs[i] = f
	}
	deadline := time.NewTimer(j.timeout)
	defer deadline.Stop()
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			out[i] = j.outcome(ctx, ack)
		case <-f.Err():
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// outcome tells our own retried publish from another instance's record of the
// same (auction, imp) when the stream answers "duplicate".
func (j *jsLedger) outcome(ctx context.Context, ack *jetstream.PubAck) pubOutcome {
	if !ack.Duplicate {
		return pubStored
	}
	cctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	s, err := j.js.Stream(cctx, j.stream)
	if err != nil {
		return pubFailed
	}
	raw, err := s.GetMsg(cctx, ack.Sequence)
	if err != nil {
		return pubFailed
	}
	if raw.Header.Get(originHeader) == j.origin {
		return pubStored
	}
	return pubDupOther
}

// memLedger is the in-memory ledger used with a Store other than NATS.
type memLedger struct {
	mu      mutex[lkMemLedger]
	entries map[string]LedgerEntry
	order   []string
	down    func() bool
}

func newMemLedger(down func() bool) *memLedger {
	return &memLedger{entries: map[string]LedgerEntry{}, down: down}
}

func (l *memLedger) publish(_ context.Context, batch []LedgerEntry, out []pubOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range batch {
		if l.down != nil && l.down() {
			out[i] = pubFailed
			continue
		}
		prev, ok := l.entries[e.MsgID]
		switch {
		case !ok:
			e.acct = nil
			l.entries[e.MsgID] = e
			l.order = append(l.order, e.MsgID)
			out[i] = pubStored
		case prev.Instance == e.Instance && prev.Boot == e.Boot:
			out[i] = pubStored
		default:
			out[i] = pubDupOther
		}
	}
}

func (l *memLedger) all() []LedgerEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LedgerEntry, 0, len(l.order))
	for _, id := range l.order {
		out = append(out, l.entries[id])
	}
	return out
}
