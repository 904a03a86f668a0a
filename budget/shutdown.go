package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Close stops the loops and the watch, flushes every pending ledger entry,
// keeps the charge levels for the next process under this instance id when
// the flush succeeded (levels.go), reports the spend, returns the unspent leases (only campaigns whose entry is
// in a record take a step) and deletes this instance's liveness record. The
// money of open holds stays in the lease entry until it expires, and the
// holds go to the next process under this id with the levels. Close must not run while Start does (the bidder closes
// only after Start returned): a Close during Start's instance probe finds
// nothing started and returns, and Start then goes on (the review of
// 61003d9; not made safe, since no caller needs it).
func (m *Manager) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	m.endLiveness()
	for _, a := range *m.accts.Load() {
		a.validUntil.Store(0)
	}
	if m.trkSub != nil {
		_ = m.trkSub.Unsubscribe() // other instances count this one's pixels and clicks from now on
	}
	if m.fwdSub != nil {
		_ = m.fwdSub.Unsubscribe() // other instances settle this one's notices themselves from now on
		m.waitForwarded(ctx)
	}
	if m.cancel != nil {
		m.cancel()
	}
	stopBeat := func() {}
	if m.started.Load() {
		stopBeat = m.closingBeat()
	}
	defer stopBeat()
	m.wg.Wait()
	m.drainFreq()
	var errs []error
	snapshot := false
	if err := m.ledger.flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("%w: %d entries not acknowledged", err, m.ledger.backlog()))
	} else if m.started.Load() && !m.twinAlive(m.cfg.Clock.Now().UnixNano()) {
		// Only after a whole flush: a level whose entry the ledger never
		// got must not be restored (its reversal would lower the record).
		// Not while another process stands under this id (its close
		// writes the id's snapshot). A process that yielded to a twin
		// that has gone takes the twin's snapshot in first: the id's
		// notices went to the twin meanwhile, and this one's snapshot
		// alone would replace the twin's (a fleet audit saw the standing
		// process's snapshot overwritten by the yielded one's; a review
		// saw a survivor that wrote none lose its own levels).
		snapshot = true
	}
	lctx, cancel := context.WithTimeout(ctx, levelsTimeout)
	defer cancel()
	m.twinTakeEnded() // a closed twin's levels being taken go in the snapshot too
	if snapshot && m.yielded.Load() {
		m.mergeTwinLevels(lctx)
	}
	// An open hold is a bid whose notices may still come. Its money stays
	// in held: the release step keeps it in this instance's lease entry,
	// which no other instance reclaims before the entry expires (LeaseTTL,
	// longer than any hold), and the snapshot hands the hold to the next
	// process under this id, which opens it again at its id. Given back
	// here, as before, it was granted again at once: an outside audit's
	// graceful restart let a campaign place its remaining budget twice,
	// and the first process's bills made it spend 2x its daily (and its
	// total) budget (TestGracefulRestartKeepsOpenHolds).
	due, open := m.holds.drainOpen(m.cfg.Clock.Now().UnixNano(), nil, nil)
	for _, e := range due {
		if a := m.accountByIdx(e.acct); a != nil {
			a.mu.Lock()
			a.held.Add(-e.amount)
			a.mu.Unlock()
			if e.fresh {
				a.pending.Add(-e.amount)
			}
		}
	}
	for _, h := range open {
		if a := m.accountByIdx(h.acct); a != nil && h.expires > a.heldUntil.Load() {
			a.heldUntil.Store(h.expires)
		}
	}
	if snapshot {
		m.saveLevels(lctx, open)
		m.saveFreq(lctx)
		m.savePace(lctx)
	}
	if m.started.Load() {
		errs = append(errs, m.returnLeases(ctx, stopBeat)...)
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
// record, then stops the closing heartbeat and deletes the liveness record:
// a lease kept for unacknowledged spend stays valid until its own expiry.
func (m *Manager) returnLeases(ctx context.Context, stopBeat func()) []error {
	var r stepResults
	accts := m.dueAccounts(m.cfg.Clock.Now(), true, nil)
	r.run(ctx, m, accts, m.cfg.Clock.Now(), true)
	if n := r.failed.Load(); n > 0 {
		return []error{fmt.Errorf("return the lease of %d campaigns: %w", n, *r.lastErr.Load())}
	}
	stopBeat()
	if n := m.keptHeldN.Load(); n > 0 {
		m.log.Info("open holds' money kept in the lease entries until the holds expire", "campaigns", n, "micros", m.keptHeld.Load())
	}
	if err := m.store.DeleteLiveness(ctx, m.cfg.InstanceID, m.boot); err != nil {
		return []error{err}
	}
	return nil
}

// closingBeat writes this process's heartbeat every sync period while Close
// flushes the ledger and runs the release steps, until stop (called before
// the record is deleted; it waits for a write in flight, so none comes after
// the delete). A process started under the same id meanwhile (an overlapping
// deploy) reads it as written again and does not start (probeInstance);
// without it, a Close slower than the probe (a slow ledger, many campaigns
// to release) let the new process take the entries over as a dead one's and
// add their unreported spend from the ledger, and the old process's release
// step then reported it again (the review of 9ae1b93: 600,000 spent for
// 300,000 charged). Each write's expiry is later than the last, so it
// reads as new even on a clock that has not moved. It touches no lease
// validity: no hold starts during Close.
func (m *Manager) closingBeat() (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(m.cfg.SyncPeriod)
		defer t.Stop()
		exp := m.live.exp.Load()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			now := m.cfg.Clock.Now()
			exp = max(now.Add(m.cfg.LeaseTTL).UnixNano(), exp+1)
			_ = m.putLiveness(context.Background(), now, exp)
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		<-finished
	})
}

// waitForwarded waits (until ctx ends) for the forwarded notices being
// settled here to finish, by taking every slot of fwdSem: one that passed
// the closed check before Close must be in the tier before the tier is
// written for the next process (a bill settled after the snapshot read its
// entry would be restored as provisional, and a loss could then reverse a
// billed charge).
func (m *Manager) waitForwarded(ctx context.Context) {
	for range cap(m.fwdSem) {
		select {
		case m.fwdSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}
