package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Record is the global state of one campaign, kept under compare-and-set.
//
// Invariant (kept by every grant): SpentTotal + sum(Leases.Amount) <= total
// budget and SpentDay + sum(Leases.Amount) <= daily budget.
type Record struct {
	Day        string           `json:"day"` // campaign-local date of SpentDay
	SpentTotal int64            `json:"spent_total"`
	SpentDay   int64            `json:"spent_day"`
	Leases     map[string]Lease `json:"leases,omitempty"`
}

// Lease is one instance's outstanding share of the pool: it covers the
// instance's unreported spend, its open holds and its headroom.
//
// Boot and Reported make reporting idempotent: Reported is the cumulative
// spend the instance's current process (Boot) has moved into the record, so a
// step retried after a lost reply adds only what is new. A reclaimed lease
// stays as a tombstone (Amount 0, Reclaimed) for tombstoneTTL to keep that mark.
type Lease struct {
	Amount    int64  `json:"amount"`
	Expires   int64  `json:"expires"` // unix nanoseconds
	Boot      string `json:"boot,omitempty"`
	Reported  int64  `json:"reported,omitempty"`
	Reclaimed bool   `json:"reclaimed,omitempty"`
}

// tombstoneTTL is how long a reclaimed lease's reporting mark is kept.
const tombstoneTTL = 24 * time.Hour

// Store keeps Records under compare-and-set: the budget store boundary.
type Store interface {
	// Update reads the campaign's record, applies fn and writes it back only if
	// nobody wrote in between, retrying on conflict. fn may run several times.
	Update(ctx context.Context, campaignID string, fn func(*Record)) (Record, error)
	// Get returns the current record (zero Record if none).
	Get(ctx context.Context, campaignID string) (Record, error)
}

var (
	_ Store = (*MemStore)(nil)
	_ Store = (*kvStore)(nil)
)

// MemStore is an in-process Store for tests and single-process tools.
// Managers sharing a MemStore also share its in-memory ledger.
type MemStore struct {
	mu     sync.Mutex
	recs   map[string]Record
	down   bool
	ledger *memLedger
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	s := &MemStore{recs: map[string]Record{}}
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
	defer s.mu.Unlock()
	if s.down {
		return Record{}, ErrStoreDown
	}
	r := cloneRecord(s.recs[id])
	fn(&r)
	s.recs[id] = r
	return cloneRecord(r), nil
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

func cloneRecord(r Record) Record {
	c := r
	c.Leases = make(map[string]Lease, len(r.Leases))
	for k, v := range r.Leases {
		c.Leases[k] = v
	}
	return c
}

// kvStore keeps Records in a JetStream KV bucket, one key per campaign.
type kvStore struct {
	kv jetstream.KeyValue
}

const maxCASAttempts = 64

func (s *kvStore) Get(ctx context.Context, id string) (Record, error) {
	r, _, err := s.get(ctx, id)
	return r, err
}

func (s *kvStore) get(ctx context.Context, id string) (Record, uint64, error) {
	e, err := s.kv.Get(ctx, kvKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{Leases: map[string]Lease{}}, 0, nil
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("%w: get %s: %v", ErrStoreDown, id, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, 0, fmt.Errorf("budget: decode record %s: %w", id, err)
	}
	if r.Leases == nil {
		r.Leases = map[string]Lease{}
	}
	return r, e.Revision(), nil
}

func (s *kvStore) Update(ctx context.Context, id string, fn func(*Record)) (Record, error) {
	key := kvKey(id)
	for range maxCASAttempts {
		r, rev, err := s.get(ctx, id)
		if err != nil {
			return Record{}, err
		}
		fn(&r)
		b, err := json.Marshal(&r)
		if err != nil {
			return Record{}, err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return r, nil
		}
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) &&
			(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)) {
			continue
		}
		return Record{}, fmt.Errorf("%w: update %s: %v", ErrStoreDown, id, err)
	}
	return Record{}, fmt.Errorf("%w: %s", ErrConflict, id)
}

// kvKey maps a campaign id onto the KV key alphabet [-_=A-Za-z0-9]: other
// bytes (and '=') are written as =XX.
func kvKey(id string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(id)+2)
	b = append(b, 'c', '_')
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b = append(b, c)
			continue
		}
		b = append(b, '=', hex[c>>4], hex[c&15])
	}
	return string(b)
}

// leaseReq is one instance's lease step on a campaign's record.
type leaseReq struct {
	instance     string
	now          time.Time
	day          string
	total, daily int64 // 0 means no limit
	boot         string
	reported     int64 // cumulative spend this process reports, including this step's new part
	want         int64 // outstanding lease wanted after the report
	ttl, reclaim time.Duration
	release      bool // give everything back (graceful close)
	heldLocally  bool // this instance believes it holds a lease
}

type leaseRes struct {
	amount     int64
	expires    int64
	lost       bool  // the lease was reclaimed by another instance before this report
	reclaimed  int   // foreign expired leases reclaimed in this step
	poolFree   int64 // money nobody holds after this step
	remaining  int64 // budget minus spend
	spentDay   int64
	spentTotal int64
}

const unlimited = math.MaxInt64 / 4

// applyLease is the whole global protocol: roll the day, reclaim expired
// foreign leases, move reported spend out of the lease, then grant no more
// than the budget minus spend minus every other outstanding lease.
func applyLease(rec *Record, q leaseReq) leaseRes {
	var res leaseRes
	if rec.Leases == nil {
		rec.Leases = map[string]Lease{}
	}
	if rec.Day != q.day {
		rec.Day, rec.SpentDay = q.day, 0
	}
	now := q.now.UnixNano()
	for inst, l := range rec.Leases {
		switch {
		case inst == q.instance:
		case l.Reclaimed && l.Expires+int64(tombstoneTTL) < now:
			delete(rec.Leases, inst)
		case !l.Reclaimed && l.Expires+int64(q.reclaim) < now:
			rec.Leases[inst] = Lease{Expires: l.Expires, Boot: l.Boot, Reported: l.Reported, Reclaimed: true}
			res.reclaimed++
		}
	}
	own, had := rec.Leases[q.instance]
	res.lost = q.heldLocally && (!had || own.Reclaimed)
	var base int64
	if had && own.Boot == q.boot {
		base = own.Reported
	}
	if own.Reclaimed {
		own.Amount, own.Reclaimed = 0, false
	}
	delta := max(q.reported-base, 0)
	rec.SpentTotal += delta
	rec.SpentDay += delta
	own.Amount = max(own.Amount-delta, 0)
	own.Boot, own.Reported = q.boot, q.reported
	remaining := int64(unlimited)
	if q.total > 0 {
		remaining = min(remaining, q.total-rec.SpentTotal)
	}
	if q.daily > 0 {
		remaining = min(remaining, q.daily-rec.SpentDay)
	}
	var others int64
	for inst, l := range rec.Leases {
		if inst != q.instance {
			others += l.Amount
		}
	}
	avail := max(remaining-others, 0)
	amount := min(max(q.want, 0), avail)
	if amount == 0 && q.release {
		delete(rec.Leases, q.instance)
	} else {
		own.Amount, own.Expires = amount, now+int64(q.ttl)
		rec.Leases[q.instance] = own
	}
	res.amount, res.expires = amount, now+int64(q.ttl)
	res.poolFree = avail - amount
	res.remaining = remaining
	res.spentDay, res.spentTotal = rec.SpentDay, rec.SpentTotal
	return res
}
