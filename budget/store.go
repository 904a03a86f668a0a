package budget

import (
	"context"
	"time"
)

// Record is the global state of one campaign, kept under compare-and-set.
//
// Invariant (kept by every grant, above what is committed): SpentTotal +
// sum(Leases.outstanding) <= total budget and SpentDay + sum(Leases.outstanding)
// <= daily budget.
type Record struct {
	// Currency is the currency of every amount in the record, set by the
	// first step: an instance whose campaign names another takes no lease
	// and reports nothing into it (applyLease).
	Currency string `json:"currency,omitempty"`
	Day      string `json:"day"` // campaign-local date of SpentDay
	// DayEnd is when Day ends (unix ns) in the zone of the step that last
	// rolled it (0: a record written before records kept it). A step's
	// later date rolls the day only if that date began at or after DayEnd
	// (rollDay).
	DayEnd     int64            `json:"day_end,omitempty"`
	SpentTotal int64            `json:"spent_total"`
	SpentDay   int64            `json:"spent_day"`
	Leases     map[string]Lease `json:"leases,omitempty"`
	// The budget of the last instance that stepped the campaign, as its
	// campaign file says (micros, 0 no limit): each instance grants from its
	// own file, so files that disagree let the fleet spend the larger; a
	// step that finds another instance's budget different reports it
	// (budget_disagreements_total and a warning, Manager.checkBudgetDiff).
	BudgetBy    string `json:"budget_by,omitempty"`
	BudgetDaily int64  `json:"budget_daily,omitempty"`
	BudgetTotal int64  `json:"budget_total,omitempty"`
	// BudgetZone is that instance's time zone of the campaign's day (""
	// in a record written before it was kept): zones that differ roll the
	// day at two midnights (rollDay), reported as a budget difference is.
	BudgetZone string `json:"budget_zone,omitempty"`
	// BudgetPacing is that instance's pacing mode of the campaign (""
	// in a record written before it was kept): asap on one instance and
	// even on another spends the day as fast as the asap one's traffic
	// allows, reported as a budget difference is.
	BudgetPacing string `json:"budget_pacing,omitempty"`

	Rev uint64 `json:"-"` // the store's revision of this value (0: unknown)
}

// Lease is one instance's outstanding share of the pool: it covers the
// instance's unreported spend, its open holds and its headroom.
//
// A lease is valid until Expires (stamped LeaseTTL after the step that last
// wrote it) or, beyond that, for as long as its owner's liveness record names
// the same Boot and has not expired: an idle lease needs no rewrite, the
// owner's one heartbeat a period renews all its leases at once.
//
// Boot and Reported make reporting idempotent: Reported is the cumulative
// spend the instance's current process (Boot) has moved into the record, so a
// step retried after a lost reply adds only what is new. Cum is the ledger's
// cumulative figure (LedgerEntry.Cum) of that process on the campaign through
// the last entry included in Reported: whoever reclaims the lease of a
// process that died (or a restarted process taking its entry over) adds the
// ledger's last figure minus Cum, the spend it had charged but not reported.
// A reclaimed lease stays as a tombstone (Amount 0, Reclaimed, Expires = when
// it was reclaimed, Reported and Cum including what the reclaim added) for
// tombstoneTTL to keep that mark; a process that takes over its own instance
// id's entry of another boot keeps that entry's figures the same way under
// takenKey (the old process's takeover mark, reportTaken).
type Lease struct {
	Amount   int64  `json:"amount"`
	Expires  int64  `json:"expires"` // unix nanoseconds
	Boot     string `json:"boot,omitempty"`
	Reported int64  `json:"reported,omitempty"`
	Cum      int64  `json:"cum,omitempty"`
	// DayKept is the cumulative amount of this process's reported reversals
	// that did not lower spent_day: provisional charges counted on an
	// earlier day than the record's when their reversal was reported.
	DayKept   int64 `json:"day_kept,omitempty"`
	Reclaimed bool  `json:"reclaimed,omitempty"`
	// Seq, on a takeover mark only, is the queue sequence of the old
	// process's ledger entry whose figure the takeover read (reportTaken).
	Seq uint64 `json:"seq,omitempty"`
	// Reserve, on a takeover mark only, is the lease the taken-over process
	// still held when a later process under its instance id took its entry
	// over without that process's open holds (it died, or its close wrote no
	// snapshot): their bills may still come, and are charged as late on top
	// of the spend. The money stays out of the pool until ReserveUntil (unix
	// nanoseconds, the takeover plus LeaseTTL and ReclaimWait: every such
	// hold has ended by then), so it is not bid a second time (reportOwn).
	Reserve      int64 `json:"reserve,omitempty"`
	ReserveUntil int64 `json:"reserve_until,omitempty"`
	// Cap is the owner's estimate of what it would spend on the campaign a
	// second at full participation (micros/s; 0: not paced, or not known
	// yet): the other instances' pacing controllers take their share of
	// the plan from it (Manager.pacingShare).
	Cap int64 `json:"cap,omitempty"`
}

// outstanding is the money l keeps out of the pool at now (unix ns): its
// amount, and a takeover mark's reserve until it ends.
func (l Lease) outstanding(now int64) int64 {
	if l.Reserve > 0 && now < l.ReserveUntil {
		return l.Amount + l.Reserve
	}
	return l.Amount
}

// Liveness is an instance's heartbeat: the process (Boot) that runs under the
// instance id and until when its leases stay valid without being rewritten.
type Liveness struct {
	Boot    string `json:"boot"`
	Expires int64  `json:"expires"` // unix nanoseconds
}

// Change is one record or liveness record as written to the store (Watch).
type Change struct {
	Campaign string  // set for a campaign record
	Record   *Record // with Rev
	Instance string  // set for a liveness record
	Liveness *Liveness
	Deleted  bool // the liveness record was deleted (graceful close)
}

// tombstoneTTL is how long a reclaimed lease's reporting mark is kept.
const tombstoneTTL = 24 * time.Hour

// Store keeps Records under compare-and-set and the instances' liveness
// records: the budget store boundary.
type Store interface {
	// Update reads the campaign's record, applies fn and writes it back only if
	// nobody wrote in between, retrying on conflict. fn may run several times.
	// The record returned carries its new revision.
	Update(ctx context.Context, campaignID string, fn func(*Record)) (Record, error)
	// Get returns the current record (zero Record if none).
	Get(ctx context.Context, campaignID string) (Record, error)
	// PutLiveness writes an instance's liveness record, unless yieldTo > 0
	// and the record names another boot whose heartbeat expires at or after
	// yieldTo: that one stays and is returned (a zero Liveness when l was
	// written). DeleteLiveness removes it only while it names boot. Another
	// process under the same instance id keeps its heartbeat either way.
	PutLiveness(ctx context.Context, instance string, l Liveness, yieldTo int64) (Liveness, error)
	DeleteLiveness(ctx context.Context, instance, boot string) error
	// GetLiveness reads an instance's liveness record from the store's
	// authority (never a cache or a replica that may lag): a lease is reclaimed
	// only on such a read. ok is false when there is none.
	GetLiveness(ctx context.Context, instance string) (l Liveness, ok bool, err error)
	// Watch calls fn with every record and liveness record the store holds,
	// then with each one written, until ctx ends. It returns once the watch is
	// set up; fn must not block and is never called with a store lock held.
	Watch(ctx context.Context, fn func(Change)) error
}

var (
	_ Store = (*MemStore)(nil)
	_ Store = (*kvStore)(nil)
)

// MemStore is an in-process Store for tests and single-process tools.
// Managers sharing a MemStore also share its in-memory ledger.
type MemStore struct {
	mu       mutex[lkMemStore]
	recs     map[string]Record
	live     map[string]Liveness
	rev      uint64
	down     bool
	watchers []*memWatcher
	ledger   *memLedger
	ctl      memControl        // the kill switch's keys (control.go)
	levels   map[string][]byte // tier snapshots (levels.go)
}

type memWatcher struct {
	ctx context.Context
	fn  func(Change)
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	s := &MemStore{recs: map[string]Record{}, live: map[string]Liveness{}}
	s.ledger = newMemLedger(s.isDown)
	return s
}

func (s *MemStore) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// SetDown makes the store fail every call (an outage), or recovers it.
func (s *MemStore) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// Update implements Store.
func (s *MemStore) Update(_ context.Context, id string, fn func(*Record)) (Record, error) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		return Record{}, ErrStoreDown
	}
	r := cloneRecord(s.recs[id])
	fn(&r)
	s.rev++
	r.Rev = s.rev
	s.recs[id] = r
	out, ch := cloneRecord(r), cloneRecord(r)
	ws := s.watchers
	s.mu.Unlock()
	s.notify(ws, Change{Campaign: id, Record: &ch})
	return out, nil
}

// Get implements Store.
func (s *MemStore) Get(_ context.Context, id string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return Record{}, ErrStoreDown
	}
	return cloneRecord(s.recs[id]), nil
}

// PutLiveness implements Store.
func (s *MemStore) PutLiveness(_ context.Context, inst string, l Liveness, yieldTo int64) (Liveness, error) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		return Liveness{}, ErrStoreDown
	}
	if old, ok := s.live[inst]; ok && yieldTo > 0 && old.Boot != l.Boot && old.Expires >= yieldTo {
		s.mu.Unlock()
		return old, nil
	}
	s.live[inst] = l
	ws := s.watchers
	s.mu.Unlock()
	s.notify(ws, Change{Instance: inst, Liveness: &l})
	return Liveness{}, nil
}

// DeleteLiveness implements Store.
func (s *MemStore) DeleteLiveness(_ context.Context, inst, boot string) error {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		return ErrStoreDown
	}
	if l, ok := s.live[inst]; !ok || l.Boot != boot {
		s.mu.Unlock()
		return nil
	}
	delete(s.live, inst)
	ws := s.watchers
	s.mu.Unlock()
	s.notify(ws, Change{Instance: inst, Deleted: true})
	return nil
}

// GetLiveness implements Store.
func (s *MemStore) GetLiveness(_ context.Context, inst string) (Liveness, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return Liveness{}, false, ErrStoreDown
	}
	l, ok := s.live[inst]
	return l, ok, nil
}

// Watch implements Store: fn is called on the writer's goroutine, after the
// write, with the store unlocked.
func (s *MemStore) Watch(ctx context.Context, fn func(Change)) error {
	s.mu.Lock()
	var initial []Change
	for id, r := range s.recs {
		c := cloneRecord(r)
		initial = append(initial, Change{Campaign: id, Record: &c})
	}
	for inst, l := range s.live {
		initial = append(initial, Change{Instance: inst, Liveness: &l})
	}
	s.watchers = append(s.watchers[:len(s.watchers):len(s.watchers)], &memWatcher{ctx: ctx, fn: fn})
	s.mu.Unlock()
	for _, c := range initial {
		fn(c)
	}
	return nil
}

func (s *MemStore) notify(ws []*memWatcher, c Change) {
	gone := false
	for _, w := range ws {
		if w.ctx.Err() == nil {
			w.fn(c)
		} else {
			gone = true
		}
	}
	if gone {
		s.mu.Lock()
		live := s.watchers[:0:0]
		for _, w := range s.watchers {
			if w.ctx.Err() == nil {
				live = append(live, w)
			}
		}
		s.watchers = live
		s.mu.Unlock()
	}
}

func cloneRecord(r Record) Record {
	c := r
	c.Leases = make(map[string]Lease, len(r.Leases))
	for k, v := range r.Leases {
		c.Leases[k] = v
	}
	return c
}
