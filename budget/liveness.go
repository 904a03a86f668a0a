package budget

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"
	"time"
)

// Leases renew in bulk: each instance writes one liveness record a sync
// period (its heartbeat, whatever its number of campaigns), and a lease in a
// campaign record stays valid while its owner's liveness record names the
// same process and has not expired, so an idle lease is never rewritten.
//
// The owner starts a hold on a lease only while the hold ends SyncPeriod
// before the expiry of its last acknowledged heartbeat, and only on a lease it
// wrote in the current epoch: an epoch ends when a heartbeat is acknowledged
// after the previous one expired (the chain broke: another instance may have
// reclaimed its leases meanwhile), and a lease written before must be written
// again to be trusted. Another instance reclaims a lease only when it is
// past its own Expires + ReclaimWait and an authoritative read of the owner's
// liveness record showed it lapsed (see reclaimable), so every hold the lease
// covered has expired by then.
type liveness struct {
	exp   atomic.Int64  // expiry of the last acknowledged heartbeat (unix ns)
	valid atomic.Int64  // exp - HoldTTL - SyncPeriod: holds on a lease of this epoch may start until then
	epoch atomic.Uint64 // bumped when the heartbeat chain broke (and at the first heartbeat)

	mu      mutex[lkLiveness]
	others  map[string]liveView   // other instances' liveness records, from the watch
	lapsed  map[string]lapse      // authoritative reads that showed a lapse; replaced, never modified
	suspect map[string][]*Account // owners of leases a step could not reclaim yet
}

// liveView is another instance's liveness record as the watch delivered it.
type liveView struct {
	boot    string
	expires int64
	deleted bool
	swept   bool  // its leases were all reclaimed (or none was found) since this view
	seen    int64 // when the watch last delivered a heartbeat of this process (unix ns, this clock; 0: never)
}

func (v liveView) alive(now, wait int64) bool { return !v.deleted && v.expires+wait >= now }

// silentAfter is how long a live instance may go without a heartbeat reaching
// the watch before the status calls it silent: it writes one every sync
// period, so three missed ones mean it stopped (killed, hung, cut off) or
// this instance's watch is behind. Its leases stay valid until they lapse.
const silentPeriods = 3

// silent tells whether the instance's record still keeps its leases valid
// but no heartbeat of it arrived for silentPeriods sync periods.
func (v liveView) silent(now, wait, sync int64) bool {
	return v.alive(now, wait) && v.seen > 0 && now-v.seen > silentPeriods*sync
}

// leaseValid tells whether a hold may start at ns on the account's lease: on
// the lease's own expiry, or on the heartbeat when the lease was written in
// the current epoch. valid is read before epoch (beat stores them the other
// way round), so a renewal after a lapse never validates an older lease.
func (m *Manager) leaseValid(h *Account, ns int64) bool {
	if m.twinAlive(ns) {
		return false // another process holds on the same leases
	}
	return ns <= h.validUntil.Load() || (ns <= m.live.valid.Load() && h.epoch.Load() == m.live.epoch.Load())
}

// beat writes this instance's liveness record: the one write a sync period
// that keeps every lease it holds valid.
//
// After its first write, a beat yields to another process's heartbeat that
// is live (a process started under this id after this one was cut off for
// longer than the start probe, or beside one whose heartbeat was that late):
// that one keeps its record, this one counts it as a twin (no holds) and
// goes on reporting spend only. Both writing in turn made each take the
// other for a twin, and a closing one deleted the other's record.
func (m *Manager) beat(ctx context.Context, now time.Time) error {
	exp := now.Add(m.cfg.LeaseTTL).UnixNano()
	if err := m.putLiveness(ctx, now, exp); err != nil {
		return err
	}
	if m.closed.Load() {
		return ErrClosed // a beat that was in flight when Close began: endLiveness stands
	}
	if m.cfg.Clock.Now().UnixNano() > m.live.exp.Load() {
		m.live.epoch.Add(1) // acknowledged after the last one expired: leases written before are suspect
	}
	m.live.exp.Store(exp)
	m.live.valid.Store(exp - int64(m.cfg.HoldTTL) - int64(m.cfg.SyncPeriod))
	return nil
}

// putLiveness writes this process's liveness record with expiry exp; after
// the first write it yields to another boot's heartbeat that has not expired
// (ReclaimWait of clock skew allowed), and then records it as a twin and
// fails with ErrInstanceInUse.
func (m *Manager) putLiveness(ctx context.Context, now time.Time, exp int64) error {
	cctx, cancel := context.WithTimeout(ctx, max(m.cfg.SyncPeriod, time.Second))
	defer cancel()
	yieldTo := int64(0)
	if m.wroteBeat.Load() {
		yieldTo = max(now.Add(-m.cfg.ReclaimWait).UnixNano(), 1)
	}
	other, err := m.store.PutLiveness(cctx, m.cfg.InstanceID, Liveness{Boot: m.boot, Expires: exp}, yieldTo)
	if err != nil {
		return err
	}
	if other.Boot != "" {
		m.sawTwin(other)
		return fmt.Errorf("%w: its heartbeat is boot %s's", ErrInstanceInUse, other.Boot)
	}
	m.wroteBeat.Store(true)
	return nil
}

// sawTwin records another running process's heartbeat under this instance
// id: no hold starts until it expires (leaseValid).
func (m *Manager) sawTwin(l Liveness) {
	m.yielded.Store(true)
	boot := l.Boot
	m.yieldedTo.Store(&boot)
	if old := m.twin.Swap(&l); old == nil || old.Boot != l.Boot {
		m.log.Error("another running process uses this instance_id; no bids while its heartbeat lasts",
			"other_boot", l.Boot)
	}
}

// endLiveness stops every hold from starting on the heartbeat (Close).
func (m *Manager) endLiveness() {
	m.live.valid.Store(0)
	m.live.epoch.Add(1)
}

// onOwnLiveness watches this instance id's liveness record for another
// process. Two processes configured with one instance_id share its lease
// entries, each taking the other's for its own (a previous process's): both
// hold against one lease and the spend they report is miscounted. A
// previous process that died may have left its record (another boot, not
// expired), but it never writes again: another boot written after this
// process's own heartbeat was seen is a live twin. Then no hold starts here
// (leaseValid, Allow answers fail closed, Ready is false); steps go on, so
// the spend of bids already placed is still reported.
func (m *Manager) onOwnLiveness(ch Change) {
	if ch.Deleted {
		// Only a process closing gracefully deletes it, after its holds
		// were drained and its leases given back: this one is still
		// running, so that was the twin; its close wrote its levels first.
		if m.yielded.Load() {
			// The next sync round, or the first notice settled here,
			// takes its levels (closedTwinLevels). Set before the twin
			// is cleared: a notice that finds no twin (it is answered
			// here, not left to the twin) finds the take to wait for (a
			// review settled a loss in between without the twin's
			// levels, and its provisional win stayed charged).
			m.twinTake.Store(&twinTake{done: make(chan struct{})})
		}
		m.twin.Store(nil)
		return
	}
	if ch.Liveness == nil {
		return
	}
	if ch.Liveness.Boot == m.boot {
		m.sawOwn.Store(true)
		return
	}
	if m.sawOwn.Load() {
		m.sawTwin(*ch.Liveness)
	}
}

// probeInstance is Start's look at this instance id's heartbeat, before it
// watches, serves forwarded notices or steps. One another boot wrote that
// has not expired is a dead process's (a restart after a crash: it never
// writes again) or a live one's (two processes configured with one id, or
// an overlapping deploy whose old process still runs). It reads the record
// again after probeWait (three sync periods; a live process writes one a
// period): unchanged, or deleted (the other closed), Start goes on and
// takes the old entries over at its first step as after any crash; written
// again, Start fails with ErrInstanceInUse, having started nothing (the
// bidder retries until budget.start_timeout). A process started beside a
// live one used to run until their heartbeats crossed, about a second:
// its first step took the live process's lease entries over as a dead
// predecessor's, both held against one budget (an outside audit's fleet
// acknowledged 2x a daily budget), and each then read the other's ledger
// figures as a crash gap (3x reported).
func (m *Manager) probeInstance(ctx context.Context) error {
	read := func() (Liveness, bool, error) {
		cctx, cancel := context.WithTimeout(ctx, max(m.cfg.SyncPeriod, time.Second))
		defer cancel()
		return m.store.GetLiveness(cctx, m.cfg.InstanceID)
	}
	l, ok, err := read()
	if err != nil {
		return fmt.Errorf("budget: read this instance's liveness: %w", err)
	}
	if !ok || l.Boot == m.boot || l.Expires < m.cfg.Clock.Now().UnixNano() {
		return nil
	}
	m.log.Info("this instance_id's last heartbeat is another process's and has not expired: watching whether it still writes",
		"other_boot", l.Boot, "wait", m.cfg.probeWait)
	t := time.NewTimer(m.cfg.probeWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	l2, ok, err := read()
	switch {
	case err != nil:
		return fmt.Errorf("budget: read this instance's liveness: %w", err)
	case !ok || l2 == l:
		m.log.Info("the previous process under this instance_id wrote no heartbeat since: taken for dead", "other_boot", l.Boot)
		return nil
	}
	return fmt.Errorf("%w: %s (boot %s wrote a heartbeat %v ago at most)", ErrInstanceInUse, m.cfg.InstanceID, l2.Boot, m.cfg.probeWait)
}

// twinAlive says whether another process's heartbeat under this instance
// id (onOwnLiveness) is still valid at ns: after a twin stops (or an
// overlapping deploy's old process exits), bids resume once its last
// heartbeat expired, when its holds are long over.
func (m *Manager) twinAlive(ns int64) bool {
	t := m.twin.Load()
	return t != nil && ns <= t.Expires
}

// othersAlive tells whether another instance's heartbeat (from the watch)
// has not expired at ns.
func (m *Manager) othersAlive(ns int64) bool {
	lv := &m.live
	lv.mu.Lock()
	defer lv.mu.Unlock()
	for _, v := range lv.others {
		if v.alive(ns, 0) {
			return true
		}
	}
	return false
}

// onLiveness applies another instance's liveness record from the watch.
func (m *Manager) onLiveness(ch Change) {
	lv := &m.live
	now := m.cfg.Clock.Now().UnixNano()
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if lv.others == nil {
		lv.others = map[string]liveView{}
	}
	if ch.Deleted {
		lv.others[ch.Instance] = liveView{deleted: true}
		return
	}
	l := ch.Liveness
	if v, ok := lv.others[ch.Instance]; ok && !v.deleted && v.boot == l.Boot && v.expires > l.Expires {
		return // an older heartbeat delivered late
	}
	lv.others[ch.Instance] = liveView{boot: l.Boot, expires: l.Expires, seen: now}
	if _, ok := lv.lapsed[ch.Instance]; ok && l.Expires+int64(m.cfg.ReclaimWait) >= now {
		lv.lapsed = without(lv.lapsed, ch.Instance) // back: the next reclaim needs a new read
	}
}

// noteSuspects remembers the foreign owners a step found past their lease's
// own expiry; the next round checks their liveness.
func (m *Manager) noteSuspects(a *Account, insts []string) {
	if len(insts) == 0 {
		return
	}
	lv := &m.live
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if lv.suspect == nil {
		lv.suspect = map[string][]*Account{}
	}
	for _, inst := range insts {
		lv.suspect[inst] = append(lv.suspect[inst], a)
	}
}

// lapsedNow returns the lapses known (read-only; nil when none).
func (m *Manager) lapsedNow() map[string]lapse {
	m.live.mu.Lock()
	defer m.live.mu.Unlock()
	return m.live.lapsed
}

// checkLiveness runs before a round's steps. It reads, from the store's
// authority, the liveness of owners that look lapsed: those a step suspected
// (not alive as the watch saw them) and, on the janitor (the live instance
// with the lowest id), every instance whose heartbeat the watch saw lapse.
// Confirmed lapses make the accounts holding such leases take a step, which
// reclaims them. Nothing happens here while every instance is alive.
func (m *Manager) checkLiveness(ctx context.Context, now time.Time) {
	reads, suspects, janitor := m.livenessToRead(now)
	for _, inst := range reads {
		cctx, cancel := context.WithTimeout(ctx, max(m.cfg.SyncPeriod, time.Second))
		l, ok, err := m.store.GetLiveness(cctx, inst)
		cancel()
		if err == nil {
			m.recordRead(inst, l, ok, now)
		}
	}
	lapsed := m.lapsedNow()
	for inst, accts := range suspects {
		if _, ok := lapsed[inst]; ok {
			for _, a := range accts {
				a.poke.Store(true)
			}
		}
	}
	for _, inst := range janitor {
		if _, ok := lapsed[inst]; ok && m.sweep(inst, now) == 0 {
			m.markSwept(inst)
		}
	}
}

// livenessToRead picks the instances to read this round and takes the
// suspects; janitor lists the lapsed instances to sweep (on the janitor only).
func (m *Manager) livenessToRead(now time.Time) (reads []string, suspects map[string][]*Account, janitor []string) {
	lv := &m.live
	ns, wait := now.UnixNano(), int64(m.cfg.ReclaimWait)
	lv.mu.Lock()
	defer lv.mu.Unlock()
	fresh := func(inst string) bool {
		lp, ok := lv.lapsed[inst]
		return ok && ns-lp.readAt < int64(m.cfg.LeaseTTL)/2
	}
	suspects, lv.suspect = lv.suspect, nil
	for inst := range suspects {
		if v, ok := lv.others[inst]; (!ok || !v.alive(ns, wait)) && !fresh(inst) {
			reads = append(reads, inst)
		}
	}
	if !lv.janitorLocked(m.cfg.InstanceID, ns, wait) {
		return reads, suspects, nil
	}
	for inst, v := range lv.others {
		if v.alive(ns, wait) || v.swept {
			continue
		}
		janitor = append(janitor, inst)
		if !fresh(inst) && suspects[inst] == nil {
			reads = append(reads, inst)
		}
	}
	return reads, suspects, janitor
}

// janitorLocked tells whether self is the live instance with the lowest id.
func (lv *liveness) janitorLocked(self string, ns, wait int64) bool {
	for inst, v := range lv.others {
		if inst < self && v.alive(ns, wait) {
			return false
		}
	}
	return true
}

// recordRead keeps what an authoritative read showed.
func (m *Manager) recordRead(inst string, l Liveness, ok bool, now time.Time) {
	lv := &m.live
	ns := now.UnixNano()
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if ok && l.Expires+int64(m.cfg.ReclaimWait) >= ns {
		if lv.others == nil {
			lv.others = map[string]liveView{}
		}
		v := liveView{boot: l.Boot, expires: l.Expires}
		if old, ok := lv.others[inst]; ok && old.boot == l.Boot {
			v.seen = old.seen // a read is not a heartbeat arriving
		}
		lv.others[inst] = v
		lv.lapsed = without(lv.lapsed, inst)
		return
	}
	lp := lapse{readAt: ns}
	if ok {
		lp.boot, lp.expires = l.Boot, l.Expires
	}
	next := maps.Clone(lv.lapsed)
	if next == nil {
		next = map[string]lapse{}
	}
	next[inst] = lp
	lv.lapsed = next
}

func (m *Manager) markSwept(inst string) {
	lv := &m.live
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if v, ok := lv.others[inst]; ok {
		v.swept = true
		lv.others[inst] = v
	}
}

// sweep makes every account holding a lease of inst take a step once the
// lease is past its own expiry; it returns how many leases of inst it saw.
func (m *Manager) sweep(inst string, now time.Time) int {
	ns, wait := now.UnixNano(), int64(m.cfg.ReclaimWait)
	seen := 0
	for _, a := range *m.accts.Load() {
		a.gmu.Lock()
		for _, f := range a.foreign {
			if f.inst != inst {
				continue
			}
			seen++
			if f.expires+wait < ns {
				a.poke.Store(true)
			}
		}
		a.gmu.Unlock()
	}
	return seen
}

func without(m map[string]lapse, k string) map[string]lapse {
	if _, ok := m[k]; !ok {
		return m
	}
	next := maps.Clone(m)
	delete(next, k)
	if len(next) == 0 {
		return nil
	}
	return next
}
