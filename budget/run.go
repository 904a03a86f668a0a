package budget

import (
	"context"
	"fmt"
	"time"
)

// Start provisions NATS, starts watching the budget store, takes the first
// leases and starts the background loops. It returns when the first sync
// round was attempted. A Start that failed may be called again.
func (m *Manager) Start(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := m.provision(ctx); err != nil {
		return err
	}
	if err := m.probeInstance(ctx); err != nil {
		return err
	}
	if err := m.loadLevels(ctx); err != nil {
		return err
	}
	m.loadFreq(ctx)
	m.loadPace(ctx)
	lctx, cancel := context.WithCancel(context.Background())
	m.runCtx = lctx
	if err := m.watch(); err != nil {
		cancel()
		return err
	}
	if m.nc != nil && m.sub == nil {
		sub, err := m.nc.Subscribe(freqSubject+"*", m.onFreq)
		if err != nil {
			cancel()
			return fmt.Errorf("budget: subscribe: %w", err)
		}
		m.sub = sub
	}
	if err := m.serveForwarded(); err != nil {
		cancel()
		return fmt.Errorf("budget: subscribe: %w", err)
	}
	m.cancel = cancel
	m.started.Store(true)
	m.syncAll(ctx, m.cfg.Clock.Now(), false)
	if m.cfg.manual {
		return nil
	}
	m.loop(lctx, m.cfg.SyncPeriod, func(now time.Time) { m.syncAll(lctx, now, false) })
	m.loop(lctx, time.Second, m.tick)
	m.wg.Add(2)
	m.ledgerRuns.Store(true)
	go func() { defer m.wg.Done(); defer m.ledgerRuns.Store(false); m.ledger.run(lctx, ledgerRetry) }()
	go func() { defer m.wg.Done(); m.freqPublisher(lctx) }()
	m.log.Info("budget started", "lease_ttl", m.cfg.LeaseTTL, "hold_ttl", m.cfg.HoldTTL,
		"sync_period", m.cfg.SyncPeriod, "embedded", m.cfg.Server != nil)
	return nil
}

// watch (re)starts the watch on the budget store; a watch started before is
// stopped. The store delivers every record again, then the changes.
func (m *Manager) watch() error {
	if m.watchCancel != nil {
		m.watchCancel()
	}
	ctx, cancel := context.WithCancel(m.runCtx)
	if err := m.store.Watch(ctx, m.onChange); err != nil {
		cancel()
		return err
	}
	if err := m.watchControl(ctx); err != nil { // the kill switch (control.go)
		cancel()
		return err
	}
	m.watchCancel = cancel
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

// ledgerRetry is the pause before a failed ledger publish is retried.
const ledgerRetry = 100 * time.Millisecond

// tick is the once-a-second local work: fold the traffic forecast, expire
// holds, step the pacing controllers that have something to do, prune the
// de-dup tier and the frequency table (once a minute). Idle campaigns cost next to nothing here.
func (m *Manager) tick(now time.Time) {
	m.fc.fold(now)
	m.expireHolds(now)
	m.paceAll(now)
	if now.Second() == 0 {
		m.tier.prune(now.UnixNano())
		m.freq.prune(now.UnixNano())
	}
}

func (m *Manager) expireHolds(now time.Time) {
	m.expBuf = m.holds.expire(now.UnixNano(), m.expBuf[:0])
	y := NewScanYield() // a second of unsettled bids at saturation is ~25,000 holds
	for _, e := range m.expBuf {
		y.Step(1)
		if a := m.accountByIdx(e.acct); a != nil {
			a.mu.Lock()
			a.held.Add(-e.amount)
			a.mu.Unlock()
			if e.fresh {
				a.pending.Add(-e.amount)
			}
		}
	}
}
