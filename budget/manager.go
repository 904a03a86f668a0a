package budget

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
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
	LedgerSubject = "budget.ledger." // + campaign key
	freqSubject   = "budget.freq."   // + instance hash
)

// syncParallel bounds the concurrent compare-and-set steps of one sync round
// (one per campaign, ~200-500us each on loopback).
const syncParallel = 8

// Manager owns the money of one bidder instance. Create with New, then
// SetCampaigns, Start; Close on shutdown.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	boot string

	mu       sync.Mutex // guards byID, list; lock order: Manager.mu -> Account.mu
	byID     map[string]*Account
	list     []*Account
	snapshot atomic.Pointer[map[string]*Account]
	accts    atomic.Pointer[[]*Account]

	store  Store
	ledger *ledger
	mem    *memLedger // non-nil when Config.Store is used
	holds  *holdTable
	dedup  *dedupSet
	freq   *freqTable
	fc     forecast

	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	sub     *nats.Subscription

	connected atomic.Bool
	storeOK   atomic.Bool
	started   atomic.Bool
	closed    atomic.Bool
	reason    atomic.Pointer[string]

	token       string // this process on freqSubject
	freqQ       chan freqMsg
	freqDropped atomic.Uint64
	dupN        atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	expBuf []expired // owned by the pacing goroutine
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
		boot:  hex.EncodeToString(b[:]),
		byID:  map[string]*Account{},
		holds: newHoldTable(c.MaxHolds, binary.LittleEndian.Uint32(b[:4])),
		dedup: newDedupSet(),
		freq:  newFreqTable(c.FreqMaxUsers),
		freqQ: make(chan freqMsg, c.FreqQueue),
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
		return m, nil
	}
	if err := m.connect(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) connect() error {
	m.nc = m.cfg.Conn
	if m.nc == nil {
		opts := []nats.Option{
			nats.Name("openbidder-budget-" + m.cfg.InstanceID),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(200 * time.Millisecond),
			nats.RetryOnFailedConnect(true),
			nats.DisconnectErrHandler(func(*nats.Conn, error) { m.connected.Store(false); m.setReason("nats disconnected") }),
			nats.ReconnectHandler(func(*nats.Conn) { m.log.Info("nats reconnected") }),
		}
		opts = append(opts, m.cfg.natsOpts...) // credentials and TLS (natsauth.go)
		url := strings.Join(m.cfg.URLs, ",")
		if m.cfg.Server != nil {
			opts = append(opts, nats.InProcessServer(m.cfg.Server))
			url = ""
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return fmt.Errorf("budget: connect nats: %w", err)
		}
		m.nc, m.ownConn = nc, true
	}
	js, err := jetstream.New(m.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("budget: jetstream: %w", err)
	}
	m.js = js
	m.store = &kvStore{}
	h := fnv.New64a()
	h.Write([]byte(m.cfg.InstanceID))
	m.ledger = newLedger(&jsLedger{
		js: js, stream: LedgerStream, origin: m.cfg.InstanceID + "/" + m.boot,
		timeout: 5 * time.Second, subjects: LedgerSubject,
	}, m.ledgerDone)
	return nil
}

// provision creates the KV bucket and the ledger stream (idempotent).
func (m *Manager) provision(ctx context.Context) error {
	if m.js == nil {
		return nil
	}
	kv, err := m.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: KVBucket, Description: "openbidder budget pool: spend and leases per campaign",
		History: 1, Storage: jetstream.FileStorage, Replicas: m.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("budget: create kv %s: %w", KVBucket, err)
	}
	m.store.(*kvStore).kv = kv
	_, err = m.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: LedgerStream, Description: "openbidder charges, one message per (auction, imp)",
		Subjects: []string{LedgerSubject + ">"}, Storage: jetstream.FileStorage,
		Replicas: m.cfg.Replicas, Duplicates: m.cfg.NoticeTTL,
	})
	if err != nil {
		return fmt.Errorf("budget: create stream %s: %w", LedgerStream, err)
	}
	return nil
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
	case !m.connected.Load():
		return false, *m.reason.Load()
	}
	return true, "ok"
}

// SetCampaigns installs the campaign set of a reload. Campaigns keep their
// state (spend, holds, leases) across reloads; removed ones stop bidding and
// return their unused lease at the next sync; notices for them still settle.
func (m *Manager) SetCampaigns(cs []Campaign) error {
	for i := range cs {
		if err := cs[i].validate(); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]bool, len(cs))
	for i := range cs {
		c := cs[i]
		if seen[c.ID] {
			return fmt.Errorf("%w: duplicate campaign %q", ErrBadConfig, c.ID)
		}
		seen[c.ID] = true
	}
	for i := range cs {
		c := cs[i]
		a := m.byID[c.ID]
		if a == nil {
			h := fnv.New64a()
			h.Write([]byte(c.ID))
			a = &Account{idx: int32(len(m.list)), id: c.ID, idHash: h.Sum64()}
			a.seed = splitmix64(m.cfg.Seed ^ a.idHash)
			a.throttle.Store(^uint64(0))
			m.byID[c.ID] = a
			m.list = append(m.list, a)
		}
		a.cfg.Store(&c)
		if c.Start.IsZero() {
			a.startNs.Store(0)
		} else {
			a.startNs.Store(c.Start.UnixNano())
		}
		if c.End.IsZero() {
			a.endNs.Store(0)
		} else {
			a.endNs.Store(c.End.UnixNano())
		}
		a.active.Store(true)
	}
	for id, a := range m.byID {
		if !seen[id] {
			a.active.Store(false)
		}
	}
	snap := make(map[string]*Account, len(m.byID))
	for k, v := range m.byID {
		snap[k] = v
	}
	list := append([]*Account(nil), m.list...)
	m.snapshot.Store(&snap)
	m.accts.Store(&list)
	return nil
}

// Handle returns the campaign's Account (nil if unknown). Resolve once per
// reload; the handle stays valid for the life of the Manager.
func (m *Manager) Handle(id string) *Account { return (*m.snapshot.Load())[id] }

func (m *Manager) account(id string) *Account { return m.Handle(id) }

func (m *Manager) accountByIdx(i int32) *Account {
	l := *m.accts.Load()
	if int(i) < len(l) {
		return l[i]
	}
	return nil
}

// Start provisions NATS, takes the first leases and starts the background
// loops. It returns when the first sync was attempted.
func (m *Manager) Start(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := m.provision(ctx); err != nil {
		return err
	}
	if m.nc != nil {
		sub, err := m.nc.Subscribe(freqSubject+"*", m.onFreq)
		if err != nil {
			return fmt.Errorf("budget: subscribe: %w", err)
		}
		m.sub = sub
	}
	m.started.Store(true)
	m.syncAll(ctx, m.cfg.Clock.Now(), false)
	if m.cfg.manual {
		return nil
	}
	lctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.loop(lctx, m.cfg.SyncPeriod, func(now time.Time) { m.syncAll(lctx, now, false) })
	m.loop(lctx, time.Second, m.tick)
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.ledger.run(lctx, m.cfg.SyncPeriod) }()
	go func() { defer m.wg.Done(); m.freqPublisher(lctx) }()
	m.log.Info("budget started", "lease_ttl", m.cfg.LeaseTTL, "hold_ttl", m.cfg.HoldTTL,
		"sync_period", m.cfg.SyncPeriod, "embedded", m.cfg.Server != nil)
	return nil
}

func (m *Manager) loop(ctx context.Context, every time.Duration, f func(time.Time)) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(m.cfg.Clock.Now())
			}
		}
	}()
}

// tick is the once-a-second work: fold the traffic forecast, expire holds,
// run the pacing controllers, prune the de-dup and frequency tables.
func (m *Manager) tick(now time.Time) {
	m.fc.fold(now)
	m.expireHolds(now)
	m.paceAll(now)
	if now.Second() == 0 {
		m.dedup.prune(now.UnixNano())
		m.freq.prune(now.UnixNano())
	}
}

func (m *Manager) expireHolds(now time.Time) {
	m.expBuf = m.holds.expire(now.UnixNano(), m.expBuf[:0])
	for _, e := range m.expBuf {
		if a := m.accountByIdx(e.acct); a != nil {
			a.mu.Lock()
			a.held.Add(-e.amount)
			a.mu.Unlock()
		}
	}
}

// syncAll runs one lease step for every campaign that has, or needs, a lease.
func (m *Manager) syncAll(ctx context.Context, now time.Time, release bool) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failed  int
		lastErr error
		sem     = make(chan struct{}, syncParallel)
	)
	for _, a := range *m.accts.Load() {
		if !release && m.quiet(a, now) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := m.syncAccount(ctx, a, now, release); err != nil {
				mu.Lock()
				failed, lastErr = failed+1, err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	switch {
	case failed > 0 && errors.Is(lastErr, ErrStoreDown):
		m.storeOK.Store(false)
		m.setReason("budget store unreachable: " + lastErr.Error())
	case failed > 0:
		m.log.Warn("lease sync failed", "campaigns", failed, "err", lastErr)
		m.storeOK.Store(true)
	default:
		m.storeOK.Store(true)
	}
	conn := m.storeOK.Load() && (m.nc == nil || m.nc.IsConnected())
	if !conn && m.nc != nil && !m.nc.IsConnected() {
		m.setReason("nats disconnected")
	}
	m.connected.Store(conn)
}

func (m *Manager) syncAccount(ctx context.Context, a *Account, now time.Time, release bool) error {
	c := a.campaign()
	_, _, day := dayBounds(now, c.loc())
	ahead := m.headroomWanted(a, now)

	a.mu.Lock()
	report := a.confirmed.Load()
	commit := a.spent.Load() - report + a.held.Load()
	want := commit + ahead
	if ns := now.UnixNano(); !a.active.Load() || ns < a.startNs.Load() || (a.endNs.Load() != 0 && ns >= a.endNs.Load()) {
		want = commit // out of flight or removed: keep only what is committed
	}
	if release {
		// Holds are drained before this; what remains is spend the ledger has not
		// acknowledged: keep a lease covering it (it expires like a crashed one).
		want = commit
	}
	if want+report < a.lease.Load() {
		a.lease.Store(want + report) // shrink now so holds placed during the I/O fit in what we ask for
	}
	a.mu.Unlock()

	q := leaseReq{
		instance: m.cfg.InstanceID, now: now, day: day, total: c.TotalMicros, daily: c.DailyMicros,
		boot: m.boot, reported: a.reportedCum + report, want: want, ttl: m.cfg.LeaseTTL, reclaim: m.cfg.ReclaimWait,
		release: release, heldLocally: a.leaseHeld,
	}
	var lr leaseRes
	cctx, cancel := context.WithTimeout(ctx, max(m.cfg.SyncPeriod, time.Second))
	_, err := m.store.Update(cctx, a.id, func(r *Record) { lr = applyLease(r, q) })
	cancel()
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.spent.Add(-report)
	a.confirmed.Add(-report)
	a.lease.Store(lr.amount)
	if release {
		a.validUntil.Store(0)
		if lr.amount > 0 {
			m.log.Warn("closing with unacknowledged spend; its lease is kept until it expires",
				"campaign", a.id, "micros", lr.amount)
		}
	} else {
		a.validUntil.Store(lr.expires - int64(m.cfg.HoldTTL) - int64(m.cfg.SyncPeriod))
	}
	a.mu.Unlock()
	a.lastSync = now
	a.reportedCum += report
	a.poolFree.Store(lr.poolFree)
	a.remaining.Store(lr.remaining)
	a.spentDay.Store(lr.spentDay)
	a.spentTotal.Store(lr.spentTotal)
	a.leaseHeld = !release
	if lr.amount < want {
		a.denials.Add(1)
	} else {
		a.grants.Add(1)
	}
	if lr.lost {
		a.lostLeases.Add(1)
		m.log.Warn("lease had been reclaimed while this instance was cut off; its spend was reported late",
			"campaign", a.id, "reported_micros", report)
	}
	if lr.reclaimed > 0 {
		m.log.Info("reclaimed expired leases", "campaign", a.id, "count", lr.reclaimed)
	}
	return nil
}

// quiet tells that a campaign has nothing to sync this round: no lease, no
// unreported spend, no holds, no new demand. Active quiet campaigns still sync
// every quietEvery periods to keep the global figures fresh.
func (m *Manager) quiet(a *Account, now time.Time) bool {
	if a.lease.Load() != 0 || a.spent.Load() != 0 || a.held.Load() != 0 ||
		a.reserved.Load()+a.demand.Load() != a.lastRes || a.lastSync.IsZero() {
		return false
	}
	return !a.active.Load() || now.Sub(a.lastSync) < quietEvery*m.cfg.SyncPeriod
}

const quietEvery = 10

// headroomWanted sizes the lease headroom from the rate of reservations plus
// refused demand: LeaseAhead of it, clamped to [MinLease, MaxLease]. A campaign
// with neither for leaseIdle gives its headroom back; a new one starts with
// MinLease. Owned by the sync goroutine.
func (m *Manager) headroomWanted(a *Account, now time.Time) int64 {
	res := a.reserved.Load() + a.demand.Load()
	if a.lastResT.IsZero() {
		a.lastActive = now
	} else {
		if res != a.lastRes {
			a.lastActive = now
		}
		if dt := now.Sub(a.lastResT).Seconds(); dt > 0 {
			a.resRate += 0.3 * (float64(res-a.lastRes)/dt - a.resRate)
		}
	}
	a.lastRes, a.lastResT = res, now
	if now.Sub(a.lastActive) > m.leaseIdle() {
		return 0
	}
	return min(max(int64(a.resRate*m.cfg.LeaseAhead.Seconds()), m.cfg.MinLease), m.cfg.MaxLease)
}

func (m *Manager) leaseIdle() time.Duration { return 3 * m.cfg.LeaseAhead }

// ledgerDone is called once per acknowledged ledger entry.
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

// paceAll runs every campaign's pacing controller once.
func (m *Manager) paceAll(now time.Time) {
	for _, a := range *m.accts.Load() {
		if !a.active.Load() {
			continue
		}
		m.pace(a, now)
	}
}

func (m *Manager) pace(a *Account, now time.Time) {
	c := a.campaign()
	start, end, _ := dayBounds(now, c.loc())
	daily := c.DailyMicros
	spent := a.spentDay.Load() + a.spent.Load()
	if daily == 0 && !c.End.IsZero() && c.End.After(now) {
		days := max(c.End.Sub(start).Hours()/24, 1)
		daily = int64(float64(c.TotalMicros-a.spentTotal.Load()+a.spentDay.Load()) / days)
	}
	in := pacingIn{now: now, spent: spent, daily: daily, asap: c.Pacing == PacingASAP || daily == 0}
	length := end.Sub(start).Seconds()
	in.frac, in.fracRate = now.Sub(start).Seconds()/length, 1/length
	if c.Pacing == PacingForecast {
		if f, r, ok := m.fc.shape(now, start, end); ok {
			in.frac, in.fracRate = f, r
		}
	}
	p, target := a.pace.step(in)
	a.throttle.Store(probToThreshold(p))
	a.target.Store(target)
	e := 0.0
	if daily > 0 {
		e = float64(spent-target) / float64(daily)
	}
	a.pacingErr.Store(floatBits(e))
}

// Close stops the loops, flushes every pending ledger entry, reports the spend
// and returns the unspent lease. Open holds are abandoned (a notice for them
// reaching another instance is charged there, as late).
func (m *Manager) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	for _, a := range *m.accts.Load() {
		a.validUntil.Store(0)
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	m.drainFreq()
	var errs []error
	if err := m.ledger.flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("%w: %d entries not acknowledged", err, m.ledger.backlog()))
	}
	for _, e := range m.holds.drain(nil) {
		if a := m.accountByIdx(e.acct); a != nil {
			a.mu.Lock()
			a.held.Add(-e.amount)
			a.mu.Unlock()
		}
	}
	if m.started.Load() {
		for _, a := range *m.accts.Load() {
			if a.leaseHeld || a.confirmed.Load() != 0 {
				if err := m.syncAccount(ctx, a, m.cfg.Clock.Now(), true); err != nil {
					errs = append(errs, fmt.Errorf("return lease %s: %w", a.id, err))
				}
			}
		}
	}
	if m.sub != nil {
		_ = m.sub.Unsubscribe()
	}
	if m.ownConn {
		m.nc.Close()
	}
	m.connected.Store(false)
	m.log.Info("budget closed", "errors", len(errs))
	return errors.Join(errs...)
}

// onFreq applies another instance's impressions.
func (m *Manager) onFreq(msg *nats.Msg) {
	if strings.HasSuffix(msg.Subject, "."+m.instToken()) {
		return
	}
	m.freq.applyWire(msg.Data)
}

func (m *Manager) instToken() string {
	if m.token == "" {
		h := fnv.New64a()
		h.Write([]byte(m.cfg.InstanceID + "/" + m.boot))
		m.token = fmt.Sprintf("%016x", h.Sum64())
	}
	return m.token
}

func (m *Manager) freqPublisher(ctx context.Context) {
	t := time.NewTicker(freqFlush)
	defer t.Stop()
	subj := freqSubject + m.instToken()
	batch := make([]freqMsg, 0, 512)
	buf := make([]byte, 0, 512*24)
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-m.freqQ:
			batch = append(batch, f)
			if len(batch) < cap(batch) {
				continue
			}
		case <-t.C:
		}
		if len(batch) == 0 {
			continue
		}
		if m.nc != nil && m.nc.IsConnected() {
			buf = encodeFreq(buf[:0], batch)
			if err := m.nc.Publish(subj, buf); err != nil {
				m.freqDropped.Add(uint64(len(batch)))
			}
		} else if m.nc != nil {
			m.freqDropped.Add(uint64(len(batch)))
		}
		batch = batch[:0]
	}
}

func (m *Manager) drainFreq() {
	for {
		select {
		case <-m.freqQ:
		default:
			return
		}
	}
}
