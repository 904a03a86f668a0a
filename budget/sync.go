package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// syncParallel bounds the concurrent compare-and-set steps of one sync round
// (one per campaign that needs one, ~200-500us each on loopback).
const syncParallel = 8

// syncAll runs one sync round: the heartbeat (one write, whatever the number
// of campaigns), the liveness checks, then a lease step for each campaign
// whose spend, holds, demand or lease asks for one (due). An idle campaign
// costs a few atomic loads here and no I/O.
func (m *Manager) syncAll(ctx context.Context, now time.Time, release bool) {
	if !release {
		m.closedTwinLevels(ctx)
	}
	var beatErr error
	if !release {
		beatErr = m.beat(ctx, now)
		if beatErr == nil && m.storeReturned() {
			// A watch that lived through an outage or a reconnect may have
			// lost its consumer (a restarted server): start it afresh.
			if err := m.watch(); err != nil {
				beatErr = err
			}
		}
		m.beatFailed = beatErr != nil
		if beatErr == nil {
			m.checkLiveness(ctx, now)
		}
	}
	m.alone = !m.othersAlive(now.UnixNano())
	m.due = m.dueAccounts(now, release, m.due[:0])
	m.round.run(ctx, m, m.due, now, release)
	m.setHealth(beatErr, &m.round, now)
	clear(m.due)
}

// syncWarning logs a failed lease round once a minute while the error
// stays the same (a campaign whose config names another currency than its
// record fails every round until it is fixed), with the rounds left unlogged.
type syncWarning struct {
	last    string
	at      time.Time
	skipped int
}

func (w *syncWarning) log(log *slog.Logger, now time.Time, err error, failed int64) {
	msg := err.Error()
	if msg == w.last && now.Sub(w.at) < time.Minute {
		w.skipped++
		return
	}
	log.Warn("lease sync failed", "campaigns", failed, "err", err, "rounds_unlogged", w.skipped)
	w.last, w.at, w.skipped = msg, now, 0
}

// storeReturned tells whether the store came back since the last round: the
// last heartbeat failed, or the NATS connection reconnected (a short outage
// does not fail a heartbeat: the client buffers it across the reconnect).
func (m *Manager) storeReturned() bool {
	back := m.beatFailed
	if m.nc != nil {
		if n := m.nc.Stats().Reconnects; n != m.reconnects {
			m.reconnects, back = n, true
		}
	}
	return back
}

// maxReturnsPerRound bounds the steps of a round that only give idle
// headroom back. Campaigns loaded together go idle together: at 10,000
// campaigns, all of them leaseIdle after start (or a reload), and their
// give-back steps in one round were half a second of one core's work,
// which every bid request waited behind. Spread over rounds, the rest give
// theirs back on the following ones; headroom kept a little longer only
// keeps that money reserved to this instance a little longer.
const maxReturnsPerRound = 128

// dueAccounts appends the accounts that need a step this round.
func (m *Manager) dueAccounts(now time.Time, release bool, dst []*Account) []*Account {
	returns := 0
	y := NewScanYield()
	for _, a := range *m.accts.Load() {
		y.Step(1)
		if release {
			if a.leaseHeld || a.lease.Load() != 0 || a.confirmed.Load() != 0 {
				dst = append(dst, a)
			}
			continue
		}
		m.checkBudgetDiff(a, now)
		due, giveBack := m.stepDue(a, now)
		if !due {
			continue
		}
		if giveBack {
			if returns >= maxReturnsPerRound {
				continue // due again next round
			}
			returns++
		}
		dst = append(dst, a)
	}
	return dst
}

// stepDue tells whether a campaign needs a lease step this round: its first
// one, spend to report, a ledger figure moved by duplicates, refused demand,
// headroom below half of what its rate wants (or above twice that), headroom
// to give back, an entry to drop, a lease that would not stay valid to the
// next round, or a poke. A campaign whose pool was empty at its last step waits for money to show in the pool
// (the watch), a new day or a reload. giveBack says the step would only
// give idle headroom back (dueAccounts spreads those over rounds).
func (m *Manager) stepDue(a *Account, now time.Time) (due, giveBack bool) {
	ahead := m.headroomWanted(a, now)
	if !a.inFlight(now.UnixNano()) {
		ahead = 0
	}
	a.ahead = ahead
	if a.poke.Swap(false) || a.lastSync.IsZero() || a.confirmed.Load() != 0 {
		return true, false
	}
	if a.ackedCum.Load() != a.stepCum && a.leaseHeld {
		// Only duplicates were acknowledged since the last step: nothing
		// to report, but their amounts are in the ledger's figure (Cum is
		// stamped at enqueue), and a reclaim after a crash would read
		// them as unreported spend (the tail's figure minus the entry's).
		// The step writes the figure into the entry.
		return true, false
	}
	lease, commit := a.lease.Load(), a.spent.Load()+a.revWait.Load()+a.held.Load()
	free := lease - commit
	money := !a.starved || a.poolFree.Load() > 0
	if a.floorExcess.Load() > 0 && commit < lease {
		// Part of the lease was granted above the pool for what was
		// committed (applyLease), and some of that has ended: the step
		// gives it back.
		return true, false
	}
	if a.starved {
		// Another instance's lease past its own expiry may be
		// reclaimable, and no step of a starved campaign would look: one
		// step has its owner's liveness read (a confirmed lapse then
		// makes it step again, and reclaim). A closed process's entry
		// kept for its open holds ends so (Close), as a crashed one's.
		if exp := a.lapsedForeign(now.UnixNano() - int64(m.cfg.ReclaimWait)); exp > a.suspectedUpTo {
			a.suspectedUpTo = exp
			return true, false
		}
		// A takeover's reserve (a previous process's lease kept for its
		// holds' late bills) that has ended: one step takes the money.
		if end := a.reserveEnded(now.UnixNano()); end > a.reserveUpTo {
			a.reserveUpTo = end
			return true, false
		}
	}
	switch {
	case a.demand.Load() != a.lastDemand:
		return money || m.newDay(a, now), false
	case ahead == 0:
		if a.leaseHeld && lease == 0 && commit == 0 {
			return true, false // an entry to drop
		}
		// Headroom to give back; a lease that is running out is stepped
		// anyway, like any other.
		if free > 0 && (commit == 0 || free >= max(m.cfg.MinLease, 1)) {
			return true, lease == 0 || m.leaseValid(a, now.Add(2*m.cfg.SyncPeriod).UnixNano())
		}
		return false, false
	case free < ahead/2:
		return money || m.newDay(a, now), false
	case free > 2*ahead:
		return true, false
	case lease > 0 && !m.leaseValid(a, now.Add(2*m.cfg.SyncPeriod).UnixNano()):
		return true, false
	}
	return a.starved && m.newDay(a, now), false
}

// budgetDiffGrace is how long the instances' budgets of a campaign may
// differ before it is reported: the time an edit takes to reach every
// instance's reload.
const budgetDiffGrace = time.Minute

// budgetSeen is a budget another instance stepped a campaign with that
// differs from this instance's file: by whom, its daily and total micros,
// and since when (unix ns) a disagreement has been seen without its writer
// agreeing since.
type budgetSeen struct {
	by, zone     string
	pacing       string // its pacing mode ("": not known)
	daily, total int64
	at           int64
}

// seeBudget notes the budget another instance (by) stepped the campaign
// with, as a record showed it: this instance's steps and the watch, so a
// disagreement is seen even while neither instance steps (a campaign
// spent to the larger budget within a minute stops stepping, and a
// disagreement seen only at steps was never reported: an outside audit).
// Only the disagreeing instance's own agreement ends a disagreement: with
// three budgets the one seen alternates (an outside review). Under a.gmu.
func (a *Account) seeBudget(c *Campaign, self, by string, daily, total int64, zone, pacing string, now time.Time) {
	if c.retired || by == "" || by == self {
		return // no budget known here, or a record of this instance's own step
	}
	old := a.diffSeen.Load()
	if daily == c.DailyMicros && total == c.TotalMicros && sameZone(zone, c) && samePacing(pacing, c) {
		if old != nil && old.by == by {
			a.diffSeen.Store(nil)
		}
		return
	}
	if old != nil && old.by == by && old.daily == daily && old.total == total && old.zone == zone && old.pacing == pacing {
		return
	}
	at := now.UnixNano()
	if old != nil {
		at = old.at // the disagreement goes on
	}
	a.diffSeen.Store(&budgetSeen{by: by, zone: zone, pacing: pacing, daily: daily, total: total, at: at})
}

// samePacing tells whether a record's pacing mode (its last stepper's) is
// c's: "" (a record written before modes were kept) is taken as the same.
func samePacing(pacing string, c *Campaign) bool { return pacing == "" || pacing == c.Pacing.String() }

// sameZone tells whether a record's zone (its last stepper's) is c's: ""
// (a record written before zones were kept) is taken as the same.
func sameZone(zone string, c *Campaign) bool { return zone == "" || zone == c.loc().String() }

// checkBudgetDiff reports, once, a campaign whose budget in this instance's
// file has differed from one another instance stepped it with for
// budgetDiffGrace since it was first seen (the sync goroutine's, every
// round). An edit of this instance's budget drops what was seen before it:
// that was no disagreement with the new budget, and kept it was reported a
// minute later in the other instance's stale figure (a review); a record
// seen after the edit starts one. Each instance grants from its own file,
// so the fleet may spend the larger: an outside audit's fleet spent 10.00
// of a 5.00 budget, one instance's file edited, with nothing to say so.
func (m *Manager) checkBudgetDiff(a *Account, now time.Time) {
	c := a.campaign()
	if own := [2]int64{c.DailyMicros, c.TotalMicros}; own != a.diffOwn {
		first := a.diffOwn == [2]int64{}
		a.diffOwn = own
		if !first {
			a.gmu.Lock()
			a.diffSeen.Store(nil)
			a.gmu.Unlock()
			return
		}
	}
	d := a.diffSeen.Load()
	if d == nil || a.diffWarnedAt == d.at || c.retired || a.diffOwn == [2]int64{d.daily, d.total} && sameZone(d.zone, c) && samePacing(d.pacing, c) ||
		now.UnixNano()-d.at < int64(budgetDiffGrace) {
		return
	}
	a.diffWarnedAt = d.at
	m.budgetDiffs.Add(1)
	m.log.Warn("campaign budget, time zone or pacing differs between instances: each grants from its own file, so the fleet may spend the larger, two zones roll the day at two midnights, and an asap instance spends the day as fast as its traffic allows",
		"campaign", a.id, "daily_micros", c.DailyMicros, "total_micros", c.TotalMicros, "time_zone", c.loc().String(), "pacing", c.Pacing.String(),
		"other_instance", d.by, "other_daily_micros", d.daily, "other_total_micros", d.total, "other_time_zone", d.zone, "other_pacing", d.pacing)
}

func (m *Manager) newDay(a *Account, now time.Time) bool {
	_, _, day := dayBounds(now, a.campaign().loc())
	return day != a.stepDay
}

// headroomWanted sizes the lease headroom from the rate of reservations plus
// refused demand: LeaseAhead of it, clamped to [MinLease, MaxLease]. A campaign
// with neither for leaseIdle gives its headroom back while another instance
// is alive (that money may be wanted there); an instance alone keeps
// MinLease, which costs it nothing (its heartbeat keeps every lease valid)
// and lets the first request after a quiet spell bid instead of waiting a
// round with no_lease. A new one starts with MinLease. Owned by the sync
// goroutine; called once a round.
func (m *Manager) headroomWanted(a *Account, now time.Time) int64 {
	res := a.reserved.Load() + a.demand.Load()
	switch {
	case a.lastResT.IsZero():
		a.lastActive = now
	case res != a.lastRes || a.resRate != 0:
		if res != a.lastRes {
			a.lastActive = now
		}
		if dt := now.Sub(a.lastResT).Seconds(); dt > 0 {
			a.resRate += 0.3 * (float64(res-a.lastRes)/dt - a.resRate)
			if a.resRate < 1 {
				a.resRate = 0 // under a micro a second: nothing
			}
		}
	}
	a.lastRes, a.lastResT = res, now
	if now.Sub(a.lastActive) > m.leaseIdle() && !m.alone {
		return 0
	}
	return min(max(int64(a.resRate*m.cfg.LeaseAhead.Seconds()), m.cfg.MinLease), m.cfg.MaxLease)
}

func (m *Manager) leaseIdle() time.Duration { return 3 * m.cfg.LeaseAhead }

// stepResults gathers the outcome of a round's steps.
type stepResults struct {
	failed  atomic.Int64
	lastErr atomic.Pointer[error]
}

// run steps every account in accts, syncParallel at a time.
func (r *stepResults) run(ctx context.Context, m *Manager, accts []*Account, now time.Time, release bool) {
	r.failed.Store(0)
	r.lastErr.Store(nil)
	step := func(a *Account) {
		if err := m.syncAccount(ctx, a, now, release); err != nil {
			r.failed.Add(1)
			r.lastErr.Store(&err)
			if !release && !errors.Is(err, ErrBadConfig) {
				// What made it due may have been consumed (a poke, a
				// starved campaign's look at an ended lease or reserve):
				// the next round tries again.
				a.poke.Store(true)
			}
		}
	}
	if len(accts) == 1 {
		step(accts[0])
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(syncParallel, len(accts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(accts)); i = next.Add(1) - 1 {
				step(accts[i])
			}
		}()
	}
	if release {
		wg.Wait() // Close: closingBeat writes the heartbeat meanwhile
		return
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	m.beatDuring(ctx, done)
}

// beatDuring writes the heartbeat every sync period until done: a round
// longer than that (steps waiting on a stalled store, a reload that changed
// every budget, the steps after a reconnect, thousands of due campaigns) must
// not leave a gap in it. A process started under this instance id reads a
// heartbeat that was not written again within probeWait as a dead process's
// and takes its lease entries over (probeInstance): the review of 61003d9
// started one beside a live process whose 32 steps took 50 ms each. The
// round's goroutine writes it, as at the start of the round, so heartbeats
// never race one another.
func (m *Manager) beatDuring(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(m.cfg.SyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if ctx.Err() == nil {
				_ = m.beat(ctx, m.cfg.Clock.Now()) // a failure shows in the next round's own beat
			}
		}
	}
}

// setHealth derives Ready from the round: the heartbeat and the steps.
func (m *Manager) setHealth(beatErr error, r *stepResults, now time.Time) {
	err := beatErr
	if p := r.lastErr.Load(); err == nil && p != nil {
		err = *p
	}
	switch {
	case err != nil && errors.Is(err, ErrStoreDown):
		m.storeOK.Store(false)
		m.setReason("budget store unreachable: " + err.Error())
	case err != nil:
		m.syncWarn.log(m.log, now, err, r.failed.Load())
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

// syncAccount runs one lease step on the campaign's record: report the spend
// the ledger acknowledged, reclaim lapsed foreign leases, and size this
// instance's lease to its unreported spend, open holds and headroom.
func (m *Manager) syncAccount(ctx context.Context, a *Account, now time.Time, release bool) error {
	c := a.campaign()
	dayStart, dayEnd, day := dayBounds(now, c.loc())
	if c.retired {
		day = "" // its zone is unknown (UTC here): a step never rolls the record's day (spentOnDay)
	}
	demand := a.demand.Load()
	a.mu.Lock()
	report, cum, ackedSeq := a.confirmed.Load(), a.ackedCum.Load(), a.ackedSeq.Load()
	revOld, revSame, revDay := a.days.snapshot()
	commit := a.spent.Load() + a.revWait.Load() - report + a.held.Load()
	// What the step grants whatever the pool (applyLease): bids placed and
	// spend made. Not the reversals waiting for their report: this step
	// reports them, and room kept for them now was bid after it.
	committed := a.spent.Load() - report + a.held.Load()
	want := commit + a.ahead
	ttl := m.cfg.LeaseTTL
	if release || !a.inFlight(now.UnixNano()) {
		// Out of flight, removed, or closing: keep only what is committed.
		// At a close that is the open holds (Close) and spend the ledger
		// has not acknowledged, and the entry expires like a crashed
		// one's; with only holds in it, once the last of them has (no
		// other instance reclaims it before, and a twin under this id
		// bids again then).
		want = commit
		if hu := a.heldUntil.Load(); release && hu > 0 && commit == a.held.Load() {
			ttl = min(max(time.Duration(hu-now.UnixNano()), 0)+m.cfg.SyncPeriod, m.cfg.LeaseTTL)
		}
	}
	if want+report < a.lease.Load() {
		// Shrink now so holds placed during the I/O fit in what we ask for;
		// the part above the pool goes first (a failed step left the
		// usable lease negative and the campaign dark: an outside review).
		cut := a.lease.Load() - (want + report)
		a.lease.Store(want + report)
		a.floorExcess.Store(max(a.floorExcess.Load()-cut, 0))
	}
	a.mu.Unlock()

	total, daily, known := c.TotalMicros, c.DailyMicros, !c.retired
	if c.retired {
		// No budget is known here (no config names the campaign): what
		// it asks is what is committed (its notices' unreported spend,
		// holds a previous process handed over), kept whatever the pool.
		total, daily = 0, 0
	}
	q := leaseReq{
		instance: m.cfg.InstanceID, currency: c.Currency, now: now, day: day, total: total, daily: daily, budgetKnown: known,
		dayStart: dayStart.UnixNano(), dayEnd: dayEnd.UnixNano(), zone: c.loc().String(), pacing: c.Pacing.String(),
		boot: m.boot, acked: a.reportedCum, reported: a.reportedCum + report, cum: cum, want: want, committed: committed, capacity: a.capacity.Load(),
		ttl: ttl, reclaim: m.cfg.ReclaimWait, reserveFor: m.cfg.LeaseTTL + m.cfg.ReclaimWait, release: release, heldLocally: a.leaseHeld,
		lapsed:    m.lapsedNow(),
		keptAcked: a.days.kept, kept: a.days.kept + revOld, keptSame: a.days.kept + revOld + revSame, sameDay: revDay,
		ackedSeq: ackedSeq,
	}
	if r := m.restoredBoots.Load(); r != nil {
		q.restored = *r
	}
	if l := m.restoreLeftOut.Load(); l != nil {
		q.leftOut = (*l)[a.id]
	}
	if t := m.twin.Load(); t != nil && now.UnixNano() <= t.Expires {
		q.twin = t.Boot
	}
	m.readTails(ctx, a, &q)
	epoch := m.live.epoch.Load()
	var lr leaseRes
	cctx, cancel := context.WithTimeout(ctx, max(m.cfg.SyncPeriod, time.Second))
	rec, err := m.store.Update(cctx, a.id, func(r *Record) { lr = applyLease(r, q) })
	cancel()
	if err != nil {
		return err
	}
	m.steps.Add(1)
	m.applyStep(a, q, lr, report, epoch)
	if lr.otherBy != "" {
		a.gmu.Lock()
		a.seeBudget(c, m.cfg.InstanceID, lr.otherBy, lr.otherDaily, lr.otherTotal, lr.otherZone, lr.otherPacing, now)
		a.gmu.Unlock()
	}
	a.lastSync, a.lastDemand, a.stepDay = now, demand, day
	a.starved = lr.amount < want && lr.poolFree == 0
	m.setGlobal(a, &rec, now)
	m.noteSuspects(a, lr.suspects)
	if len(lr.needTail) > 0 {
		a.poke.Store(true) // the ledger could not be read: reclaim at the next round
	}
	if lr.wrongCurrency != "" && !release {
		// The record's money is in another currency: no lease (no bids);
		// what this process charged was reported all the same (applyLease).
		// The message names no figure that changes, so the warning repeats
		// once a minute (syncWarning); a release step (shutdown) reported
		// and succeeded.
		return fmt.Errorf("%w: campaign %s is in %s but its budget record is in %s; another currency needs another campaign id",
			ErrBadConfig, a.id, c.Currency, lr.wrongCurrency)
	}
	return nil
}

// readTails reads, outside any lock and before the step, the ledger's last
// figure of each lapsed instance whose lease on the campaign a step may
// reclaim, and of this instance's previous process when the record still
// holds its entry. A tail that cannot be read is left out: the step then
// reclaims nothing of that owner (and is tried again next round).
func (m *Manager) readTails(ctx context.Context, a *Account, q *leaseReq) {
	ns, wait := q.now.UnixNano(), int64(m.cfg.ReclaimWait)
	var insts []string
	a.gmu.Lock()
	for _, f := range a.foreign {
		if _, ok := q.lapsed[f.inst]; ok && f.expires+wait < ns {
			insts = append(insts, f.inst)
		}
	}
	prev := a.ownBoot != "" && a.ownBoot != m.boot
	a.gmu.Unlock()
	read := func(inst string) (ledgerTail, bool) {
		cctx, cancel := context.WithTimeout(ctx, max(m.cfg.SyncPeriod, time.Second))
		defer cancel()
		t, err := m.ledger.be.tail(cctx, a.id, inst)
		return t, err == nil
	}
	for _, inst := range insts {
		if t, ok := read(inst); ok {
			if q.tails == nil {
				q.tails = map[string]ledgerTail{}
			}
			q.tails[inst] = t
		}
	}
	if prev {
		if t, ok := read(m.cfg.InstanceID); ok {
			q.prev = &t
		}
	}
}

// applyStep installs a step's outcome in the account.
func (m *Manager) applyStep(a *Account, q leaseReq, lr leaseRes, report int64, epoch uint64) {
	a.mu.Lock()
	a.spent.Add(-report)
	a.confirmed.Add(-report)
	a.days.reported(q.kept-q.keptAcked, q.keptSame-q.kept, q.sameDay)
	a.revWait.Add(q.keptAcked - q.keptSame) // the reversals this step reported
	a.lease.Store(lr.amount)
	a.floorExcess.Store(lr.floor)
	if q.release {
		a.validUntil.Store(0)
	} else {
		a.validUntil.Store(lr.expires - int64(m.cfg.HoldTTL) - int64(m.cfg.SyncPeriod))
		a.epoch.Store(epoch)
	}
	a.mu.Unlock()
	a.reportedCum += report
	a.stepCum = q.cum
	a.days.kept = lr.dayKept
	a.leaseHeld = lr.kept
	if held := a.held.Load(); q.release && lr.amount > held {
		m.log.Warn("closing with unacknowledged spend; its lease is kept until it expires",
			"campaign", a.id, "micros", lr.amount-held)
	} else if q.release && lr.amount > 0 {
		m.keptHeld.Add(uint64(lr.amount))
		m.keptHeldN.Add(1)
	}
	if lr.amount < q.want {
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
		m.log.Info("reclaimed lapsed leases", "campaign", a.id, "count", lr.reclaimed, "unreported_micros", lr.gap)
	}
	if lr.gap != 0 {
		m.gapMicros.Add(lr.gap)
	}
	if lr.gapUnknown > 0 {
		m.gapUnknown.Add(uint64(lr.gapUnknown))
		m.log.Warn("a dead process's unreported spend could not be read from the ledger", "campaign", a.id)
	}
}
