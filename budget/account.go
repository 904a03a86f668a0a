package budget

import (
	"sync/atomic"
	"time"
)

// Decision is the budget gate's answer for one candidate bid.
type Decision uint8

// Decisions of Allow. Only DecisionOK lets the bid go on to Hold.
const (
	DecisionOK              Decision = iota
	DecisionPaced                    // the pacing draw said no
	DecisionNoLease                  // the instance's lease has no room for this bid (more may come at the next sync)
	DecisionBudgetExhausted          // the global pool has nothing left
	DecisionFailClosed               // NATS is unreachable and the lease held is used up or expired
	DecisionFlight                   // outside the campaign's flight, or the campaign was removed
	DecisionUnknown                  // no such campaign (nil handle)
)

var decisionNames = [...]string{"ok", "paced", "no_lease", "budget_exhausted", "fail_closed", "flight", "unknown_campaign"}

func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "invalid"
}

// Account is a campaign's money state on this instance. Handles stay valid
// across reloads: a campaign keeps its Account (and its state) as long as the
// process runs; a removed campaign's Account answers DecisionFlight.
//
// lease, spent, held, revWait and confirmed change only under mu (so Hold's check and
// reservation are one step); they are atomics so that Allow, Status and
// metrics read them without the lock.
type Account struct {
	idx    int32
	id     string
	idHash uint64

	mu        mutex[lkAccount]
	lease     atomic.Int64 // outstanding lease granted to this instance
	spent     atomic.Int64 // charged here, not yet reported to the global record
	confirmed atomic.Int64 // part of spent acknowledged by the ledger, reportable
	held      atomic.Int64 // open holds
	// revWait is reversals not yet reported by a step: they give the lease
	// no room until then, as one of an earlier day's charge does not lower
	// spent_day (loss, applyStep; TestReversalAfterMidnightNoRoomBeforeItsStep).
	revWait  atomic.Int64
	ackedCum atomic.Int64  // written under mu: Cum of the last ledger entry acknowledged (reported with confirmed)
	ackedSeq atomic.Uint64 // written under mu: queue sequence of that entry
	days     dayReport     // under mu, except dayEnd and kept
	_        [8]byte

	validUntil atomic.Int64  // unix ns: no new hold may start after this on the lease's own expiry
	epoch      atomic.Uint64 // liveness epoch in which this instance last wrote the lease
	throttle   atomic.Uint64 // participation threshold: probability * 2^64 (MaxUint64 = always)
	draws      atomic.Uint64
	seed       uint64
	startNs    atomic.Int64
	endNs      atomic.Int64 // 0 = open
	active     atomic.Bool
	poke       atomic.Bool  // a lease step is wanted at the next round (reload, reclaim, lost lease)
	poolFree   atomic.Int64 // money nobody holds, as of the last record seen
	reserved   atomic.Int64 // cumulative micros ever held (reservation rate)
	drawn      atomic.Int64 // cumulative micros of holds turned into charges (pacing's conversion of held money)
	// pending is the money of this process's open holds no notice has
	// drawn from yet: bids whose outcome is unknown (pacing's in-flight
	// money). Added at Hold; taken off at a hold's first draw, its loss,
	// its expiry or Unhold.
	pending   atomic.Int64
	demand    atomic.Int64 // cumulative micros of bids refused for want of lease
	heldUntil atomic.Int64 // unix ns: the last expiry of the open holds a graceful close kept (Close)
	// floorExcess is the part of lease granted above the pool because the
	// instance had committed it (applyLease): no hold may use it.
	floorExcess atomic.Int64
	// suspectedUpTo is the latest expiry of another instance's lease that
	// made this starved campaign step (stepDue; the sync goroutine's).
	suspectedUpTo int64
	// reserveUpTo is the end of the last takeover reserve that made this
	// starved campaign step (stepDue). Its own mark: sharing suspectedUpTo,
	// the step at a reserve's end hid a foreign lease that expired just
	// before it and became reclaimable just after (an outside review).
	reserveUpTo int64
	// Budget disagreement with another instance (seeBudget,
	// checkBudgetDiff). diffSeen is written under gmu; the rest are the
	// sync goroutine's.
	diffSeen     atomic.Pointer[budgetSeen]
	diffWarnedAt int64    // the at of the disagreement last reported
	diffOwn      [2]int64 // this instance's daily and total budget as last checked
	cfg          atomic.Pointer[Campaign]

	// Global figures of the newest record seen (this instance's steps and the
	// watch), for pacing and status. Written under gmu, read lock-free.
	gmu        mutex[lkGlobal]
	recRev     uint64         // under gmu
	foreign    []foreignLease // under gmu: other instances' live leases
	reserveEnd int64          // under gmu: the last end of a takeover mark's reserve in that record (0 none)
	reserveAmt int64          // under gmu: the reserves standing in that record when it was seen
	ownBoot    string         // under gmu: the Boot of this instance's entry in that record ("" none)
	recDay     atomic.Pointer[string]
	recCur     atomic.Pointer[string] // that record's currency (nil: none seen, or a record that names none)
	spentDay   atomic.Int64           // of recDay
	spentTotal atomic.Int64
	remaining  atomic.Int64
	target     atomic.Int64
	pacingErr  atomic.Uint64 // float64 bits
	capacity   atomic.Int64  // the pacing controller's capacity estimate, micros/s (Lease.Cap)

	// Counters.
	lateN, lateMicros, cappedN, dupN, grants, denials, lostLeases atomic.Uint64

	ledgerCum int64 // under ledger.mu: this process's cumulative ledger Charged, in queue order

	// Owned by the sync goroutine.
	resRate     float64 // EWMA of reservations plus refused demand, micros/s
	lastRes     int64
	lastResT    time.Time
	lastActive  time.Time // last round that saw reservations or refused demand
	ahead       int64     // headroom wanted, as of this round
	lastDemand  int64     // demand as of the last step
	starved     bool      // the last step got less than it wanted and the pool was empty
	stepDay     string    // campaign-local day of the last step
	leaseHeld   bool      // this instance's entry is in the record
	lastSync    time.Time
	reportedCum int64 // spend this process has moved into the global record
	stepCum     int64 // the ledger figure (ackedCum) the last step wrote into the entry

	// Owned by the pacing goroutine.
	pace      pacer
	paceSpent int64     // spend seen at the last controller step
	paceAct   uint64    // activity (reservations, demand, draws) seen then
	paceAt    time.Time // time of the last controller step
}

// foreignLease is another instance's lease on the campaign, as last seen.
type foreignLease struct {
	inst, boot string
	expires    int64
	amount     int64 // micros
	capacity   int64 // Lease.Cap
}

// usableLease is the lease new holds may use: without the part granted
// above the pool for money already committed.
func (a *Account) usableLease() int64 { return a.lease.Load() - a.floorExcess.Load() }

// reserveEnded is the end of the last takeover reserve in the newest record
// seen when it is before cutoff (0: none, or not ended).
func (a *Account) reserveEnded(cutoff int64) int64 {
	a.gmu.Lock()
	defer a.gmu.Unlock()
	if a.reserveEnd != 0 && a.reserveEnd < cutoff {
		return a.reserveEnd
	}
	return 0
}

// deadReserve is the money takeover marks keep for a dead process's open
// holds (a restart after a crash) and when the last reserve ends, as of
// the newest record seen (0, 0 when none stands at now).
func (a *Account) deadReserve(now int64) (micros, until int64) {
	a.gmu.Lock()
	defer a.gmu.Unlock()
	if a.reserveEnd <= now {
		return 0, 0
	}
	return a.reserveAmt, a.reserveEnd
}

// lapsedForeign is the latest expiry before cutoff of another instance's
// lease with money in it, as of the newest record seen (0: none).
func (a *Account) lapsedForeign(cutoff int64) int64 {
	a.gmu.Lock()
	defer a.gmu.Unlock()
	var exp int64
	for _, f := range a.foreign {
		if f.amount > 0 && f.expires < cutoff {
			exp = max(exp, f.expires)
		}
	}
	return exp
}

// ID returns the campaign id.
func (a *Account) ID() string { return a.id }

func (a *Account) campaign() *Campaign { return a.cfg.Load() }

// splitmix64 is a tiny bijective mixer; the participation draw hashes a
// per-account sequence number with the configured seed.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Allow tells whether a bid of at most maxChargeMicros may be placed for the
// campaign now, with a participation draw of its own (AllowDraw's req 0). It
// never allocates, locks or waits.
func (m *Manager) Allow(h *Account, maxChargeMicros int64, now time.Time) Decision {
	return m.AllowDraw(h, maxChargeMicros, now, 0)
}

// AllowDraw is Allow with the participation draw of request number req
// (from 1; 0: the account's next draw): every call with the same req takes
// the same draw, so a campaign takes part in a request, all its creatives
// and imps, with the probability pacing set, not once per creative and imp
// (an outside audit: with k candidates in a request it took part with
// 1-(1-p)^k, and /admin/explain, which reads one draw, disagreed with the
// bid).
func (m *Manager) AllowDraw(h *Account, maxChargeMicros int64, now time.Time, req uint64) Decision {
	if h == nil {
		return DecisionUnknown
	}
	ns := now.UnixNano()
	if !h.active.Load() || ns < h.startNs.Load() || (h.endNs.Load() != 0 && ns >= h.endNs.Load()) {
		return DecisionFlight
	}
	if d := m.headroom(h, maxChargeMicros, ns); d != DecisionOK {
		h.demand.Add(maxChargeMicros) // a demand signal for the next lease step
		return d
	}
	if th := h.throttle.Load(); th != ^uint64(0) {
		n := h.draws.Add(1) // also activity, for the pacing tick
		if req != 0 {
			n = req
		}
		if splitmix64(h.seed+n) > th {
			return DecisionPaced
		}
	}
	return DecisionOK
}

func (m *Manager) headroom(h *Account, amount, ns int64) Decision {
	held := h.held.Load()
	spent := h.spent.Load() + h.revWait.Load()
	lease := h.usableLease()
	if m.leaseValid(h, ns) && spent+held+amount <= lease {
		return DecisionOK
	}
	if !m.connected.Load() || m.twinAlive(ns) {
		return DecisionFailClosed
	}
	if h.poolFree.Load() < amount {
		return DecisionBudgetExhausted
	}
	return DecisionNoLease
}

// Hold reserves amountMicros against the lease until now+HoldTTL. It returns
// false (and reserves nothing) when the lease has no room. No allocation.
func (m *Manager) Hold(h *Account, amountMicros int64, now time.Time) (HoldID, bool) {
	if h == nil || amountMicros <= 0 {
		return 0, false
	}
	ns := now.UnixNano()
	h.mu.Lock()
	if !h.active.Load() || !m.leaseValid(h, ns) ||
		h.spent.Load()+h.revWait.Load()+h.held.Load()+amountMicros > h.usableLease() {
		h.mu.Unlock()
		return 0, false
	}
	h.held.Add(amountMicros)
	h.mu.Unlock()
	id, ok := m.holds.put(h.idx, amountMicros, ns+int64(m.cfg.HoldTTL))
	if !ok {
		h.mu.Lock()
		h.held.Add(-amountMicros)
		h.mu.Unlock()
		return 0, false
	}
	h.reserved.Add(amountMicros)
	h.pending.Add(amountMicros)
	return id, true
}
