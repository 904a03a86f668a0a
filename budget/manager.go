package budget

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names in NATS.
const (
	KVBucket      = "BUDGET"
	LedgerStream  = "BUDGET_LEDGER"
	LedgerSubject = "budget.ledger." // + campaign key + "." + instance
	freqSubject   = "budget.freq."   // + instance hash
)

// Manager owns the money of one bidder instance. Create with New, then
// SetCampaigns, Start; Close on shutdown.
//
// Files by concern: manager.go (setup and the campaign set), connect.go
// (NATS), run.go (Start and the loops), sync.go (lease steps), liveness.go
// (heartbeat, lease validity, reclaiming a lapsed instance's leases),
// global.go (the watched global figures), lease.go (the protocol on a
// record), pacing.go, freq.go, notice.go, ledger.go, shutdown.go, levels.go
// (the charge levels kept across a graceful restart).
type Manager struct {
	cfg  Config
	log  *slog.Logger
	boot string
	// sawOwn: the watch delivered this process's own heartbeat; twin: the
	// last heartbeat another process wrote under this instance id after
	// that (liveness.go, onOwnLiveness). Until it expires no hold starts.
	sawOwn atomic.Bool
	twin   atomic.Pointer[Liveness]
	// wroteBeat: a heartbeat of this process was written. The first one
	// replaces whatever is there (Start read it as a dead process's or
	// none); later ones yield to another process's live heartbeat (beat).
	wroteBeat atomic.Bool

	mu   mutex[lkManager] // guards byID, list, otherCur (SetCampaigns); a leaf
	byID map[string]*Account
	list []*Account
	// otherCur is the currency of each budget record the watch delivered
	// for a campaign no account here has (another instance's, or one not
	// loaded yet): a reload that adds the campaign in another currency is
	// refused, as one that changes a loaded campaign's is.
	otherCur map[string]string
	snapshot atomic.Pointer[map[string]*Account]
	accts    atomic.Pointer[[]*Account]

	store  Store
	ledger *ledger
	mem    *memLedger // non-nil when Config.Store is used
	holds  *holdTable
	tier   *tier // impressions settled here: levels, states, pending ledger entries
	freq   *freqTable
	fc     forecast

	syncWarn syncWarning // owned by the sync loop

	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	sub     *nats.Subscription
	fwdSub  *nats.Subscription // notices other instances forward here
	trkSub  *nats.Subscription // pixels and clicks other instances forward here (ServeTrackers)
	fwdSem  chan struct{}

	connected atomic.Bool
	storeOK   atomic.Bool
	started   atomic.Bool
	closed    atomic.Bool
	reason    atomic.Pointer[string]
	steps     atomic.Uint64 // lease steps written (compare-and-set on a record)
	startNs   int64         // when New ran (unix ns)

	ledgerRuns atomic.Bool // the ledger publisher is running

	levels    levelStore             // tier snapshots between processes (levels.go); nil: none
	yielded   atomic.Bool            // this process yielded to a twin at some point: its tier is not the id's (no snapshot at Close)
	yieldedTo atomic.Pointer[string] // the boot of the twin it last yielded to: forwarded notices addressed to it are the twin's
	restoredN atomic.Uint64          // tier entries restored from the previous process's snapshot
	// freqRestoredN: frequency entries restored from the previous
	// process's snapshot (freqsnap.go).
	freqRestoredN atomic.Uint64
	// freqCarried: the previous process's frequency snapshot was read, so
	// its bids' pending counts are here for their notices to end.
	freqCarried atomic.Bool
	twinLevelsN atomic.Uint64 // tier entries taken from a closed twin's snapshot while running (readTwinLevels)
	// twinTake is the take of the levels of the twin this process yielded
	// to, once it saw the twin's heartbeat deleted (its close): the next
	// sync round, or the first notice settled here, starts it, and notices
	// wait for it (closedTwinLevels).
	twinTake    atomic.Pointer[twinTake]
	budgetDiffs atomic.Uint64 // campaigns reported with a budget that differs from another instance's
	// restoredBoots are the processes (boots) whose open holds this one
	// restored from their snapshots: a takeover of their entries reserves
	// nothing (leaseReq.restored).
	restoredBoots atomic.Pointer[[]string]
	// restoreLeftOut are the campaigns some of whose restored snapshot's
	// open holds were left out: their takeovers reserve (leaseReq.leftOut).
	restoreLeftOut atomic.Pointer[map[string]bool]
	// keptHeld and keptHeldN are the open holds' money the release steps
	// of a close kept in lease entries, and the campaigns (one log line).
	keptHeld, keptHeldN atomic.Uint64

	live liveness // heartbeat, epochs, other instances' liveness
	// paceClosed is closedOthers as paceAll last took it (the pacing
	// goroutine's own).
	paceClosed map[string]bool
	ctl        control // the kill switch (control.go)

	token       string // this process on freqSubject
	freqQ       chan freqMsg
	freqDropped atomic.Uint64
	dupN        atomic.Uint64

	// Settlement counters.
	risesN, provN, reversedN, reversedMicros, unreconciledN, ackTimeouts, tooLateN atomic.Uint64
	recharges, rechargeGiveUps                                                     atomic.Uint64 // recharge.go
	retiredN                                                                       atomic.Uint64 // accounts made by retired
	forwarded, fwdFallbacks, served, fwdExpired, fwdMoved                          atomic.Uint64
	gapUnknown                                                                     atomic.Uint64 // reclaims whose crash gap could not be read
	gapMicros                                                                      atomic.Int64  // crash gap closed at reclaim (net: a reversal may make it negative)

	cancel      context.CancelFunc // stops the loops and the watch
	runCtx      context.Context    // the loops' context
	watchCancel context.CancelFunc // stops the current watch
	beatFailed  bool               // the last heartbeat failed (sync goroutine)
	reconnects  uint64             // NATS reconnects seen (sync goroutine)
	wg          sync.WaitGroup
	expBuf      []expired   // owned by the pacing goroutine
	due         []*Account  // owned by the sync goroutine
	round       stepResults // owned by the sync goroutine
	alone       bool        // sync goroutine: no other instance alive at this round's start (idle headroom is kept)
}

// New validates cfg and builds a Manager; it connects to NATS (when URLs or
// Server are given) but creates nothing there until Start.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	m := &Manager{
		cfg: c, log: log.With("component", "budget", "instance", c.InstanceID),
		boot:    hex.EncodeToString(b[:]),
		byID:    map[string]*Account{},
		holds:   newHoldTable(c.MaxHolds, binary.LittleEndian.Uint32(b[:4])),
		tier:    newTier(c.DedupMaxEntries, c.DedupWindow.Longest(), c.Clock.Now()),
		freq:    newFreqTable(c.FreqMaxUsers),
		freqQ:   make(chan freqMsg, c.FreqQueue),
		fwdSem:  make(chan struct{}, fwdMax),
		startNs: c.Clock.Now().UnixNano(),
	}
	empty := map[string]*Account{}
	m.snapshot.Store(&empty)
	m.accts.Store(&[]*Account{})
	m.setReason("not started")
	m.instToken()
	if c.Store != nil {
		m.store = c.Store
		if ms, ok := c.Store.(*MemStore); ok {
			m.mem = ms.ledger
		} else {
			m.mem = newMemLedger(nil)
		}
		m.ledger = newLedger(m.mem, m.ledgerDone)
		if ls, ok := c.Store.(levelStore); ok {
			m.levels = ls
		}
		if c.backend != nil {
			m.ledger.be = c.backend
		}
		return m, nil
	}
	if err := m.connect(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) setReason(s string) { m.reason.Store(&s) }

// Ready reports whether the manager can take new leases, with a reason when not.
// A Manager that is not ready still bids inside the lease it holds.
func (m *Manager) Ready() (bool, string) {
	switch {
	case m.closed.Load():
		return false, "closed"
	case !m.started.Load():
		return false, "not started"
	case m.twinAlive(m.cfg.Clock.Now().UnixNano()):
		return false, "instance_id " + m.cfg.InstanceID + " is used by another running process (boot " + m.twin.Load().Boot + "): no bids (fail closed)"
	case !m.connected.Load():
		return false, *m.reason.Load()
	}
	return true, "ok"
}

// SetCampaigns installs the campaign set of a reload. Campaigns keep their
// state (spend, holds, leases) across reloads; removed ones stop bidding and
// return their unused lease at the next sync; notices for them still settle.
// A campaign whose budget or flight changed takes a lease step at the next
// round. A set that changes a known campaign's currency is refused
// (ErrBadConfig) and changes nothing.
func (m *Manager) SetCampaigns(cs []Campaign) error {
	seen := make(map[string]bool, len(cs))
	for i := range cs {
		if err := cs[i].validate(); err != nil {
			return err
		}
		if seen[cs[i].ID] {
			return fmt.Errorf("%w: duplicate campaign %q", ErrBadConfig, cs[i].ID)
		}
		seen[cs[i].ID] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range cs {
		// An account's spend, lease and holds are micros of the currency
		// they were made in: read in another, they would be wrong money.
		if rc, ok := m.otherCur[cs[i].ID]; ok && m.byID[cs[i].ID] == nil && rc != cs[i].Currency {
			return &CampaignError{cs[i].ID, "currency", fmt.Sprintf("%s, but its budget record is in %s: its spend is in %s; another currency needs another campaign id",
				cs[i].Currency, rc, rc)}
		}
		if a := m.byID[cs[i].ID]; a != nil {
			rc := a.recCur.Load()
			if old := a.cfg.Load(); old != nil && old.Currency != cs[i].Currency && (rc == nil || *rc != cs[i].Currency || *rc == old.Currency) {
				// (Back to its record's currency from one the record
				// never was in is allowed: no lease was granted in that
				// one, so the account holds no money in it.)
				return &CampaignError{cs[i].ID, "currency", fmt.Sprintf("%s -> %s: its spend and open holds are in %s; another currency needs another campaign id",
					old.Currency, cs[i].Currency, old.Currency)}
			}
			if rc != nil && *rc != cs[i].Currency {
				return &CampaignError{cs[i].ID, "currency", fmt.Sprintf("%s, but its budget record is in %s: its spend is in %s; another currency needs another campaign id",
					cs[i].Currency, *rc, *rc)}
			}
		}
	}
	for i := range cs {
		c := cs[i]
		a := m.byID[c.ID]
		if a == nil {
			a = m.newAccount(c.ID)
			if rc, ok := m.otherCur[c.ID]; ok {
				a.recCur.Store(&rc)
				delete(m.otherCur, c.ID)
			}
		}
		old := a.cfg.Load()
		a.cfg.Store(&c)
		a.startNs.Store(unixOrZero(c.Start))
		a.endNs.Store(unixOrZero(c.End))
		a.active.Store(true)
		if old != nil && moneyChanged(old, &c) {
			a.poke.Store(true) // after the new config: a step that takes the poke reads it
		}
	}
	for id, a := range m.byID {
		if !seen[id] {
			a.active.Store(false)
		}
	}
	m.publishLocked()
	return nil
}

// publishLocked publishes byID and list for lock-free readers; under m.mu.
func (m *Manager) publishLocked() {
	snap := make(map[string]*Account, len(m.byID))
	for k, v := range m.byID {
		snap[k] = v
	}
	list := append([]*Account(nil), m.list...)
	m.snapshot.Store(&snap)
	m.accts.Store(&list)
}

// retired returns an inactive account for campaign id, which no config this
// process loaded names, when the budget store has a record of it: its file
// was removed and the bidder restarted while notices of its bids were still
// due. (A reload that removes a campaign keeps its account: SetCampaigns.)
// Without it those notices were refused (ErrUnknownCampaign) until their
// tokens expired, and the spend was never recorded. The account takes the
// record's currency, the money the record and its bids are in; it never
// bids (inactive, with a budget of one micro a day that only keeps its
// config valid), its lease step reports what the notices charge, and a
// SetCampaigns that names the campaign again gives it its config (or
// refuses another currency). nil when the store has no record (a campaign
// that never held a lease never bid) or cannot be read now (the notice is
// retried).
func (m *Manager) retired(id string) *Account {
	if m.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.AckWait)
	rec, err := m.store.Get(ctx, id)
	cancel()
	if err != nil || rec.Currency == "" {
		return nil
	}
	return m.retiredIn(id, rec.Currency)
}

// retiredIn returns campaign id's account, a retired one in currency when
// no config names the campaign (retired, or restoreHolds with the currency
// its open holds were leased in).
func (m *Manager) retiredIn(id, currency string) *Account {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.byID[id]; a != nil {
		return a
	}
	a := m.newAccount(id)
	delete(m.otherCur, id) // its account has the record's currency now
	a.cfg.Store(&Campaign{ID: id, Currency: currency, DailyMicros: 1, retired: true})
	m.publishLocked()
	m.retiredN.Add(1)
	m.log.Warn("a campaign no config names has notices or open holds: they are charged to its budget record", "campaign", id, "currency", currency)
	return a
}

// newAccount adds a campaign's Account; under m.mu.
func (m *Manager) newAccount(id string) *Account {
	h := fnv.New64a()
	h.Write([]byte(id))
	a := &Account{idx: int32(len(m.list)), id: id, idHash: h.Sum64()}
	a.seed = splitmix64(m.cfg.Seed ^ a.idHash)
	a.throttle.Store(^uint64(0))
	m.byID[id] = a
	m.list = append(m.list, a)
	return a
}

// moneyChanged tells whether a reload changed what the global record grants.
func moneyChanged(a, b *Campaign) bool {
	return a.DailyMicros != b.DailyMicros || a.TotalMicros != b.TotalMicros || !a.Start.Equal(b.Start) ||
		!a.End.Equal(b.End) || a.loc().String() != b.loc().String()
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Handle returns the campaign's Account (nil if unknown). Resolve once per
// reload; the handle stays valid for the life of the Manager.
// CurrencyConflicts lists the loaded campaigns whose budget record (as the
// watch and the steps last saw it) is in another currency than their
// campaign file says: such a campaign takes no lease, so it never bids, and
// the record's spend would read as money of the file's currency. A hot
// reload that makes one is refused (SetCampaigns); the bidder refuses to
// start with one (an operator audit: a currency edited between two runs
// started silently, the campaign never bid and /admin/budget showed its USD
// spend as EUR).
func (m *Manager) CurrencyConflicts() []CurrencyConflict {
	var out []CurrencyConflict
	for _, a := range *m.accts.Load() {
		c := a.cfg.Load()
		if c == nil || !a.active.Load() {
			continue
		}
		if rc := a.recCur.Load(); rc != nil && *rc != c.Currency {
			out = append(out, CurrencyConflict{Campaign: a.id, Currency: c.Currency, Record: *rc})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Campaign < out[j].Campaign })
	return out
}

// CurrencyConflict is a campaign whose file and budget record disagree on
// the currency.
type CurrencyConflict struct {
	Campaign string
	Currency string // the campaign file's
	Record   string // the budget record's: its spend is in this one
}

func (c CurrencyConflict) String() string {
	return fmt.Sprintf("campaign %s: currency %s, but its budget record is in %s (its spend is in %s; another currency needs another campaign id)",
		c.Campaign, c.Currency, c.Record, c.Record)
}

func (m *Manager) Handle(id string) *Account { return (*m.snapshot.Load())[id] }

func (m *Manager) account(id string) *Account { return m.Handle(id) }

func (m *Manager) accountByIdx(i int32) *Account {
	l := *m.accts.Load()
	if int(i) < len(l) {
		return l[i]
	}
	return nil
}

// inFlight tells whether the campaign may bid at ns (active, inside its flight).
func (a *Account) inFlight(ns int64) bool {
	return a.active.Load() && ns >= a.startNs.Load() && (a.endNs.Load() == 0 || ns < a.endNs.Load())
}
