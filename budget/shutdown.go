package budget

import (
	"context"
	"errors"
	"fmt"
)

// Close stops the loops and the watch, flushes every pending ledger entry,
// reports the spend, returns the unspent leases (only campaigns whose entry is
// in a record take a step) and deletes this instance's liveness record. Open
// holds are abandoned (a notice for them reaching another instance is charged
// there, as late).
func (m *Manager) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	m.endLiveness()
	for _, a := range *m.accts.Load() {
		a.validUntil.Store(0)
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.fwdSub != nil {
		_ = m.fwdSub.Unsubscribe() // other instances settle this one's notices themselves from now on
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
		errs = append(errs, m.returnLeases(ctx)...)
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

// returnLeases runs the release step of every campaign whose entry is in a
// record, then deletes the liveness record: a lease kept for unacknowledged
// spend stays valid until its own expiry.
func (m *Manager) returnLeases(ctx context.Context) []error {
	var r stepResults
	accts := m.dueAccounts(m.cfg.Clock.Now(), true, nil)
	r.run(ctx, m, accts, m.cfg.Clock.Now(), true)
	if n := r.failed.Load(); n > 0 {
		return []error{fmt.Errorf("return the lease of %d campaigns: %w", n, *r.lastErr.Load())}
	}
	if err := m.store.DeleteLiveness(ctx, m.cfg.InstanceID); err != nil {
		return []error{err}
	}
	return nil
}
