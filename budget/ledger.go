package budget

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LedgerEntry is one change to an impression's charge, as appended to the
// ledger stream (JSON), for readers of the stream. A campaign's spend is the
// sum of its entries' Charged; an impression's charge is the sum of its
// entries' Charged (equally: the highest Level of its last generation).
type LedgerEntry struct {
	// MsgID is hex(SHA-256(auction 0 imp 0 instance 0 hold)[:16]) (the
	// bid's instance and hold, from its token) "." generation "." level for
	// a rise, or ... "." generation ".rev" for a reversal (and for a seal,
	// which claims that id so no reversal can follow; recharge.go); also the
	// Nats-Msg-Id, so a retried publish of the same change is a duplicate
	// and a different change is not.
	MsgID    string `json:"id"`
	Auction  string `json:"auction"`
	Imp      string `json:"imp"`
	Campaign string `json:"campaign"`
	Instance string `json:"instance"`
	Boot     string `json:"boot"`
	Kind     string `json:"kind"` // win, bill, loss (a reversal), or seal (charged 0: no reversal of its generation, recharge.go)
	Bid      int64  `json:"bid_micros"`
	Clearing int64  `json:"clearing_micros"`
	// Charged is what this entry adds to the campaign's spend: a rise's
	// delta (level minus the level before), or minus the level reversed.
	Charged int64 `json:"charged_micros"`
	Level   int64 `json:"level_micros"` // the impression's charge after this entry
	// Provisional: a win on a charge-on-billing exchange, not settled by a
	// billing notice (yet).
	Provisional bool `json:"provisional,omitempty"`
	// Cum is this process's (Boot's) cumulative Charged on the campaign
	// through this entry, in queue order: the last message on the subject
	// budget.ledger.<campaign>.<instance> carries the highest, which is how
	// whoever reclaims a crashed instance's lease finds its spend not yet
	// reported to the pool.
	Cum    int64 `json:"cum_micros"`
	Late   bool  `json:"late,omitempty"`
	Capped bool  `json:"capped,omitempty"`
	Time   int64 `json:"time_ns"`

	acct *Account
	seq  uint64 // queue order, from 1
	// rc follows a settled charge on an impression this process did not
	// know (recharge.go); nil for every other entry.
	rc   *recharge
	step rcStep
	// watch: a provisional first charge of an impression unknown here; a
	// duplicate marks its tier entry fForeign (settleOp.charge).
	watch provWatch
	// raise: any other charge with no chain; a duplicate's sequence goes
	// to the ledger's ring (markDup), so that its notice's result does not
	// count what the ledger took back (finish).
	raise bool
	// A reversal's charge day (dayReport): revDay, or an earlier day when
	// revOld.
	revDay string
	revOld bool
	// unrev, on a reversal: its impression and the generation it reversed.
	// Refused by a seal (a bill settled that generation elsewhere), the
	// tier entry is put back at the reversed level, settled (tier.unreverse).
	unrev provWatch
}

type pubOutcome uint8

const (
	pubStored   pubOutcome = iota // stored (or a duplicate of our own earlier publish)
	pubDupOther                   // the change was recorded before (another instance, or an earlier entry of ours)
	pubDupSeal                    // its id is a seal's (recharge.go): a reversal refused, or a seal that finds its generation sealed
	pubFailed                     // not acknowledged: retry
)

// ledgerTail is what the last ledger message of an (campaign, instance)
// says: the process that wrote it and its cumulative figure.
type ledgerTail struct {
	boot string // "" when there is none
	cum  int64
	seq  uint64 // the entry's place in its process's queue (0: unknown)
}

// ledgerBackend appends entries; one call per batch, results in out.
type ledgerBackend interface {
	publish(ctx context.Context, batch []LedgerEntry, out []pubOutcome)
	// tail reads the last entry of (campaign, instance) from the stream's
	// authority (not a replica that may lag).
	tail(ctx context.Context, campaign, instance string) (ledgerTail, error)
}

// ledger queues changes and appends them in queue order until acknowledged
// (group commit). Changes are money: the queue is never dropped from; its
// length is in the metrics. Entries are acknowledged as a prefix: durable is
// the sequence through which every entry is acknowledged, and a publish that
// fails is retried from its first failure, in order (the message ids make the
// ones already stored duplicates), so each (campaign, instance) subject's
// last message carries its highest cumulative figure.
type ledger struct {
	mu      mutex[lkLedger]
	pending []LedgerEntry
	next    uint64               // sequence of the last entry enqueued
	flushMu mutex[lkLedgerFlush] // one flusher at a time, held across the publish; taken before mu
	wake    chan struct{}
	be      ledgerBackend
	onDone  func(e *LedgerEntry, o pubOutcome)
	batch   []LedgerEntry // the flusher's, under flushMu
	out     []pubOutcome  // idem

	durable atomic.Uint64                 // every entry through this sequence is acknowledged
	acked   atomic.Pointer[chan struct{}] // closed (and replaced) when durable advances

	// The last dupRingSize raise entries found duplicate (markDup, wasDup).
	dupSeqs [dupRingSize]atomic.Uint64
	dupN    atomic.Uint64

	stored, dupOther, failed, groups atomic.Uint64
}

const ledgerBatch = 512

func newLedger(be ledgerBackend, onDone func(*LedgerEntry, pubOutcome)) *ledger {
	l := &ledger{be: be, onDone: onDone, wake: make(chan struct{}, 1)}
	ch := make(chan struct{})
	l.acked.Store(&ch)
	return l
}

// enqueue appends e (its account set) and returns its sequence. It stamps
// the account's cumulative figure in queue order. It never waits on I/O.
func (l *ledger) enqueue(e *LedgerEntry) uint64 {
	l.mu.Lock()
	l.next++
	e.seq = l.next
	e.acct.ledgerCum += e.Charged
	e.Cum = e.acct.ledgerCum
	l.pending = append(l.pending, *e)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return e.seq
}

func (l *ledger) backlog() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// wait blocks until the entry of sequence seq is acknowledged or the timer
// fires (ErrAckTimeout: the entry stays queued). It holds no lock.
func (l *ledger) wait(seq uint64, timeout <-chan time.Time) error {
	for {
		ch := *l.acked.Load() // before reading durable: advance stores durable, then closes
		if l.durable.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-timeout:
			return ErrAckTimeout
		}
	}
}

// dupRingSize bounds the raise entries found duplicate that are remembered
// for their notices' finish (wasDup).
const dupRingSize = 1024

// markDup records that the raise entry seq was a duplicate of one recorded
// before. Called by the flusher before advance.
func (l *ledger) markDup(seq uint64) {
	n := l.dupN.Add(1)
	l.dupSeqs[n%dupRingSize].Store(seq)
}

// wasDup reports whether the entry seq was marked a duplicate after the
// ring's count was since (read before it was enqueued). The caller has waited
// for seq's acknowledgement, so its mark, if any, is in. With more than the
// ring's size marked since (a flood of duplicates), it says false: the
// notice's result then counts a charge the ledger took back, as before.
func (l *ledger) wasDup(seq, since uint64) bool {
	now := l.dupN.Load()
	if now-since > dupRingSize {
		return false
	}
	for n := since + 1; n <= now; n++ {
		if l.dupSeqs[n%dupRingSize].Load() == seq {
			return true
		}
	}
	return false
}

func (l *ledger) advance(seq uint64) {
	l.durable.Store(seq)
	ch := make(chan struct{})
	close(*l.acked.Swap(&ch))
}

// flushOnce publishes one group (the queue's head, up to ledgerBatch) and
// waits for its acknowledgements; it reports whether the queue was emptied
// and whether every entry of the group was acknowledged.
func (l *ledger) flushOnce(ctx context.Context) (empty, ok bool) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	n := min(len(l.pending), ledgerBatch)
	batch := append(l.batch[:0], l.pending[:n]...)
	clear(l.pending[:n]) // drop the account pointers from the old backing
	l.pending = l.pending[n:]
	l.mu.Unlock()
	l.batch = batch
	if n == 0 {
		return true, true
	}
	l.groups.Add(1)
	if cap(l.out) < n {
		l.out = make([]pubOutcome, ledgerBatch)
	}
	out := l.out[:n]
	l.be.publish(ctx, batch, out)
	first := n // the first entry not acknowledged
	for i := range out {
		if out[i] == pubFailed {
			first = i
			break
		}
	}
	for i := range batch[:first] {
		if out[i] == pubDupOther || out[i] == pubDupSeal {
			l.dupOther.Add(1)
		} else {
			l.stored.Add(1)
		}
		l.onDone(&batch[i], out[i])
	}
	if first > 0 {
		l.advance(batch[first-1].seq)
	}
	l.mu.Lock()
	if first < n {
		l.failed.Add(uint64(n - first))
		l.pending = append(append(make([]LedgerEntry, 0, n-first+len(l.pending)), batch[first:]...), l.pending...)
	}
	empty = len(l.pending) == 0
	l.mu.Unlock()
	clear(batch)
	return empty, first == n
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

// run is the publisher: a group goes out as soon as entries are queued and
// the previous group's acknowledgements are in; entries queued meanwhile form
// the next group. After a failure it retries every retry.
func (l *ledger) run(ctx context.Context, retry time.Duration) {
	var again <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-again:
		}
		again = nil
		for {
			empty, ok := l.flushOnce(ctx)
			if ctx.Err() != nil {
				return
			}
			if !ok {
				again = time.After(retry)
				break
			}
			if empty {
				break
			}
		}
	}
}

// ledgerDone is called once per acknowledged ledger entry, in queue order,
// under the ledger's flushMu (so flushMu -> Account.mu).
func (m *Manager) ledgerDone(e *LedgerEntry, o pubOutcome) {
	a := e.acct
	if a == nil {
		return
	}
	dup := o == pubDupOther || o == pubDupSeal
	a.mu.Lock()
	if dup {
		a.spent.Add(-e.Charged) // another instance already recorded this change
		if e.Charged < 0 {
			a.revWait.Add(e.Charged) // a reversal no step will report
		}
	} else {
		a.confirmed.Add(e.Charged)
		if e.Charged < 0 {
			a.days.confirmReversal(-e.Charged, e.revDay, e.revOld)
			// Only a step reports it (and gives its money back to the
			// lease): with the charge it reverses acknowledged in the
			// same round, confirmed nets to 0, and a campaign whose pool
			// was empty never stepped again (stepDue): the money stayed
			// waiting for good (a mutation-testing pass's probe).
			a.poke.Store(true)
		}
	}
	a.ackedCum.Store(e.Cum)
	a.ackedSeq.Store(e.seq)
	a.mu.Unlock()
	if e.rc != nil && e.step == rcSeal { // a zero entry: nothing to count
		m.sealDone(e, o)
		return
	}
	if dup {
		if e.watch.on {
			m.tier.markForeign(e.watch.key, e.watch.gen)
		}
		if o == pubDupSeal && e.unrev.on {
			m.tier.unreverse(e.unrev.key, e.unrev.gen, -e.Charged)
		}
		if e.raise {
			m.ledger.markDup(e.seq) // before flushOnce advances past it: the waiter's finish sees it
		}
		a.dupN.Add(1)
		m.dupN.Add(1)
	} else if e.Late && e.Charged > 0 {
		// Counted once acknowledged, not when charged: a late charge the
		// ledger then found a duplicate was taken off the counters again,
		// and late_charges_total went down (a counter reset to Prometheus:
		// an outside audit).
		a.lateN.Add(1)
		a.lateMicros.Add(uint64(e.Charged))
	}
	if e.rc != nil {
		m.chargeDone(e, o)
	}
}

// jsLedger appends to the JetStream ledger stream with Nats-Msg-Id
// de-duplication, one subject per (campaign, instance).
type jsLedger struct {
	js       jetstream.JetStream
	stream   string
	origin   string
	timeout  time.Duration
	subjects string // prefix
	instance string // this instance's subject token
	handle   atomic.Pointer[jetstream.Stream]
}

// originHeader names the entry: instance/boot/sequence.
const originHeader = "Budget-Origin"

// ledgerSubject is the subject of an (campaign, instance) pair's entries.
func ledgerSubject(prefix, campaign, instance string) string {
	return prefix + kvKey(campaign) + "." + escapeKey("", instance)
}

func (j *jsLedger) publish(ctx context.Context, batch []LedgerEntry, out []pubOutcome) {
	futs := make([]jetstream.PubAckFuture, len(batch))
	for i := range batch {
		out[i] = pubFailed
		b, err := json.Marshal(&batch[i])
		if err != nil {
			break // keep the order: nothing after an entry that cannot go
		}
		msg := nats.NewMsg(j.subjects + kvKey(batch[i].Campaign) + "." + j.instance)
		msg.Data = b
		msg.Header.Set(originHeader, j.origin+"/"+strconv.FormatUint(batch[i].seq, 10))
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
			return
		}
		select {
		case ack := <-f.Ok():
			out[i] = j.outcome(ctx, ack, batch[i].seq)
		case <-f.Err():
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
		if out[i] == pubFailed {
			return // the rest is published again, in order
		}
	}
}

func (j *jsLedger) ledgerStream(ctx context.Context) (jetstream.Stream, error) {
	if s := j.handle.Load(); s != nil {
		return *s, nil
	}
	s, err := j.js.Stream(ctx, j.stream)
	if err != nil {
		return nil, err
	}
	j.handle.Store(&s)
	return s, nil
}

// outcome tells our own retried publish of this entry from a record of the
// same change made before, by another instance or by an earlier entry of this
// process (a notice replayed after the tier forgot the impression), when the
// stream answers "duplicate".
func (j *jsLedger) outcome(ctx context.Context, ack *jetstream.PubAck, seq uint64) pubOutcome {
	if !ack.Duplicate {
		return pubStored
	}
	cctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	s, err := j.ledgerStream(cctx)
	if err != nil {
		return pubFailed
	}
	raw, err := s.GetMsg(cctx, ack.Sequence)
	if err != nil {
		return pubFailed
	}
	if raw.Header.Get(originHeader) == j.origin+"/"+strconv.FormatUint(seq, 10) {
		return pubStored
	}
	var k struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(raw.Data, &k) == nil && k.Kind == kindSeal {
		return pubDupSeal
	}
	return pubDupOther
}

// tail reads the last message of (campaign, instance) through the stream
// leader (the ledger stream has no direct gets).
func (j *jsLedger) tail(ctx context.Context, campaign, instance string) (ledgerTail, error) {
	s, err := j.ledgerStream(ctx)
	if err != nil {
		return ledgerTail{}, err
	}
	raw, err := s.GetLastMsgForSubject(ctx, ledgerSubject(j.subjects, campaign, instance))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ledgerTail{}, nil
	}
	if err != nil {
		return ledgerTail{}, err
	}
	var e LedgerEntry
	if err := json.Unmarshal(raw.Data, &e); err != nil {
		return ledgerTail{}, err
	}
	t := ledgerTail{boot: e.Boot, cum: e.Cum}
	if o := raw.Header.Get(originHeader); strings.HasPrefix(o, e.Instance+"/"+e.Boot+"/") {
		t.seq, _ = strconv.ParseUint(o[strings.LastIndexByte(o, '/')+1:], 10, 64)
	}
	return t, nil
}

// memLedger is the in-memory ledger used with a Store other than NATS. It
// acknowledges at once (or fails every entry while its store is down).
type memLedger struct {
	mu      mutex[lkMemLedger]
	entries map[string]LedgerEntry
	order   []string
	tails   map[[2]string]ledgerTail
	down    func() bool
}

func newMemLedger(down func() bool) *memLedger {
	return &memLedger{entries: map[string]LedgerEntry{}, tails: map[[2]string]ledgerTail{}, down: down}
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
			e.acct, e.rc = nil, nil
			l.entries[e.MsgID] = e
			l.order = append(l.order, e.MsgID)
			l.tails[[2]string{e.Campaign, e.Instance}] = ledgerTail{boot: e.Boot, cum: e.Cum, seq: e.seq}
			out[i] = pubStored
		case prev.Instance == e.Instance && prev.Boot == e.Boot && prev.seq == e.seq:
			out[i] = pubStored // our own retried publish of this entry
		case prev.Kind == kindSeal:
			out[i] = pubDupSeal
		default:
			out[i] = pubDupOther
		}
	}
}

func (l *memLedger) tail(_ context.Context, campaign, instance string) (ledgerTail, error) {
	if l.down != nil && l.down() {
		return ledgerTail{}, ErrStoreDown
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tails[[2]string{campaign, instance}], nil
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
