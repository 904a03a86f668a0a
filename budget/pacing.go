package budget

import (
	"hash/maphash"
	"math"
	"sync/atomic"
	"time"

	"github.com/openbidder/openbidder/internal/localday"
)

// Pacing controller constants. The controller works on the spend rate: it
// estimates the campaign's spend rate at full participation (capacity) from
// global spend, asks for the plan's rate plus a proportional correction of the
// gap to the plan (closed in about pacingTc) plus an integral term, and turns
// that rate into a participation probability.
const (
	pacingTc    = 600.0  // seconds to close a gap to the plan (P term)
	pacingTi    = 3600.0 // integral time
	capAlpha    = 0.05   // EWMA weight of one second's capacity estimate
	minCapProbe = 0.02   // below this participation the capacity estimate is not updated
)

// convTau is the time constant (seconds) of the estimate of how much of
// the money held by bids becomes spend (pacer.inflight).
const convTau = 600.0

// paceIdleEvery is how often the controller of a campaign with no change (no
// spend, no reservations, no refused demand, no draws) is stepped anyway.
const paceIdleEvery = 30 * time.Second

// pacer is one campaign's controller; owned by the pacing goroutine.
type pacer struct {
	p            float64
	integ        float64 // integral of the gap, micros*s
	capEst       float64 // spend per second at p=1, micros/s
	lastReserved int64   // the account's cumulative reserved micros at the last step
	lastT        time.Time
	started      bool
	plan         plan // the spend plan the controller follows (plan.go)

	// The conversion of bids' money into spend: the money of holds whose
	// outcome became known (reserved and no longer pending: a notice drew
	// from it, a loss released it, it expired) and the money drawn into
	// charges, both decayed with convTau.
	lastResolved, lastDrawn int64
	sResolved, sDrawn       float64
	convAt                  time.Time
}

// pacingIn is one controller step's input.
type pacingIn struct {
	now      time.Time
	spent    int64   // global spend today
	inflight int64   // the spend expected of this instance's open holds (pacer.inflight)
	reserved int64   // this instance's cumulative reserved micros (Account.reserved)
	conv     float64 // the share of reserved money that becomes spend (pacer.inflight)
	daily    int64   // today's budget
	target   int64   // the plan's spend due by now (plan.go)
	rate     float64 // the plan's spend rate now, micros/s
	// share is this instance's part of the campaign's spend (pacingShare;
	// 0 reads as 1): the plan's rate, and the correction of the gap to it,
	// are the whole fleet's.
	share float64
	asap  bool
}

// step updates the participation probability and returns it with the target.
func (pc *pacer) step(in pacingIn) (p float64, target int64) {
	target = in.target
	if in.asap || in.daily <= 0 {
		pc.p = 1
		return 1, target
	}
	if !pc.started {
		pc.started, pc.p, pc.lastT, pc.lastReserved = true, 1, in.now, in.reserved
		return pc.p, target
	}
	dt := in.now.Sub(pc.lastT).Seconds()
	if dt <= 0 {
		return pc.p, target
	}
	// The controller follows spend and the spend its open bids will make
	// (inflight): on spend alone it saw a burst of bids only once their
	// notices came, and an operator audit's even-paced campaign held its
	// whole day's budget within 5 s of a burst and charged 10% of it in
	// 2 s, 38 times the plan by then, its participation still 1.
	// The capacity is the spend expected of the bids placed (the money
	// they reserved times the share of it that becomes spend), known when
	// they are placed, not when their notices come; the in-flight money
	// itself swings with participation, and read as capacity it biased
	// the estimate up (an accelerated day with notices 5 s late
	// under-delivered its first hour by 22%).
	spent := in.spent + in.inflight
	if d := in.reserved - pc.lastReserved; d >= 0 && pc.p >= minCapProbe {
		inst := float64(d) * in.conv / dt / pc.p
		if pc.capEst == 0 {
			pc.capEst = inst
		} else {
			// capAlpha per second: a step over dt seconds (an idle campaign is
			// stepped rarely) weighs as dt one-second steps would.
			pc.capEst += (1 - math.Pow(1-capAlpha, dt)) * (inst - pc.capEst)
		}
	}
	pc.lastT, pc.lastReserved = in.now, in.reserved
	gap := float64(target - spent)
	rate := in.rate + gap/pacingTc + pc.integ/(pacingTc*pacingTi)
	if in.share > 0 {
		rate *= in.share
	}
	p = 1.0
	if pc.capEst > 0 {
		p = rate / pc.capEst
	} else if rate < 0 {
		p = 0 // ahead of the plan before any spend was seen: bids in flight
	}
	satHigh, satLow := p >= 1, p <= 0
	p = math.Min(1, math.Max(0, p))
	if !(satHigh && gap > 0) && !(satLow && gap < 0) {
		pc.integ += gap * dt
	}
	// Never stop completely while behind: keep probing so capacity stays known.
	if gap > 0 && p < minCapProbe {
		p = minCapProbe
	}
	pc.p = p
	return p, target
}

// inflight is the spend expected of pending micros (open holds no notice
// has drawn from: Account.pending): pending times the share of resolved
// bids' money that became spend (decayed with convTau), which starts at 1
// and tends to that share as bids resolve (a prior of daily/1000 micros;
// pace passes this instance's share of the day's budget as daily).
// reserved and drawn are the account's cumulative figures.
func (pc *pacer) inflight(now time.Time, reserved, drawn, pending, daily int64) (int64, float64) {
	pending = max(pending, 0)
	resolved := reserved - pending
	if !pc.convAt.IsZero() {
		decay := 1.0
		if dt := now.Sub(pc.convAt).Seconds(); dt > 0 {
			decay = math.Exp(-dt / convTau)
		}
		pc.sResolved = pc.sResolved*decay + float64(max(resolved-pc.lastResolved, 0))
		// drawn falls when a reversal puts a charge back into its hold:
		// taken off the estimate (a review: on provisional wins mostly
		// reversed, conv tended to 1).
		pc.sDrawn = max(pc.sDrawn*decay+float64(drawn-pc.lastDrawn), 0)
	}
	pc.convAt, pc.lastResolved, pc.lastDrawn = now, resolved, drawn
	prior := float64(max(daily/1000, 1000))
	conv := min((pc.sDrawn+prior)/(pc.sResolved+prior), 1)
	return int64(conv * float64(pending)), conv
}

// pacingShare is this instance's part of the campaign's spend: its capacity
// (capEst, the spend a second its bids would make at full participation)
// over the capacities of every instance bidding on the campaign, itself and
// the others with a live lease holding money (as the newest record shows,
// Lease.Cap); an instance whose capacity is not known yet (an older
// version, or its first seconds) counts as much as this one, and where
// this one's is not known yet the share is even. An instance that closed
// (its liveness record deleted: closed) bids no more, though its entry
// keeps its open holds' money until they end (HoldTTL): it is not counted
// (a rolling restart under new instance ids counted each closed instance
// for up to HoldTTL, and the survivors bid their share of a fleet that had
// gone: TestPacingShareSkipsClosed). Every controller steers
// the global spend to the plan: asking each for the whole plan's rate,
// N instances bid at about N times the plan until the integral term had
// learnt the split, an hour (an outside audit: +19% in hour 0 with 2
// instances, +28% with 3; two real bidders spent 1.4-1.9 times one's in
// their first minute). With shares, all bid at the same participation,
// the fleet's capacity over the plan.
func (a *Account) pacingShare(own float64, closed map[string]bool) float64 {
	a.gmu.Lock()
	defer a.gmu.Unlock()
	n, known, unknown := 1, 0.0, 0
	for _, f := range a.foreign {
		if f.amount <= 0 || closed[f.inst] {
			continue // no lease, a lease given back, or its owner closed: not bidding here
		}
		n++
		if f.capacity > 0 {
			known += float64(f.capacity)
		} else {
			unknown++
		}
	}
	if n == 1 {
		return 1
	}
	if own <= 0 {
		return 1 / float64(n)
	}
	return own / (own + known + float64(unknown)*own)
}

// closedOthers returns the other instances whose liveness record the watch
// saw deleted (a graceful Close deletes it last), nil when none: paceAll
// takes it once a round for pacingShare (Manager.liveMu, then each
// Account.gmu: both leaves).
func (m *Manager) closedOthers() map[string]bool {
	lv := &m.live
	lv.mu.Lock()
	defer lv.mu.Unlock()
	var out map[string]bool
	for inst, v := range lv.others {
		if v.deleted {
			if out == nil {
				out = map[string]bool{}
			}
			out[inst] = true
		}
	}
	return out
}

func probToThreshold(p float64) uint64 {
	if p >= 1 {
		return ^uint64(0)
	}
	if p <= 0 {
		return 0
	}
	return uint64(p * (1 << 64))
}

// dayBounds returns the campaign-local day containing t.
//
// It is asked for every campaign on every sync round, pacing step and status
// read, and each answer takes two zone lookups and a formatted (allocated)
// date, 10,000 times a round at 10,000 campaigns. Campaigns share a few
// zones, so the last day seen in each zone is kept (dayMemo) and reused while
// t falls inside it.
func dayBounds(t time.Time, loc *time.Location) (start, end time.Time, day string) {
	slot := &dayMemo[dayMemoSlot(loc)]
	if e := slot.Load(); e != nil && e.loc == loc && !t.Before(e.start) && t.Before(e.end) {
		return e.start, e.end, e.day
	}
	start, end, day = localday.Bounds(t, loc)
	slot.Store(&dayEntry{loc: loc, start: start, end: end, day: day})
	return start, end, day
}

// dayMemo holds one zone's day per slot, found by the zone's address; two
// zones that meet in a slot take turns (a recomputation, never a wrong day:
// the entry names its zone). Bounded whatever the number of zones loaded.
var dayMemo [64]atomic.Pointer[dayEntry]

type dayEntry struct {
	loc        *time.Location
	start, end time.Time
	day        string
}

var dayMemoSeed = maphash.MakeSeed()

func dayMemoSlot(loc *time.Location) uint64 {
	return maphash.Comparable(dayMemoSeed, loc) % uint64(len(dayMemo))
}

// paceAll steps the pacing controller of every active campaign whose global
// spend or local activity changed since its last step, and of the others
// every paceIdleEvery: 10,000 idle campaigns cost a few hundred steps a second.
func (m *Manager) paceAll(now time.Time) {
	m.paceClosed = m.closedOthers()
	y := NewScanYield()
	for _, a := range *m.accts.Load() {
		y.Step(1)
		if a.active.Load() && m.paceDue(a, now) {
			m.pace(a, now)
		}
	}
}

func (m *Manager) paceDue(a *Account, now time.Time) bool {
	spent := a.spentDay.Load() + a.spent.Load()
	act := uint64(a.reserved.Load()+a.demand.Load()) + a.draws.Load()
	if spent == a.paceSpent && act == a.paceAct && !a.paceAt.IsZero() && now.Sub(a.paceAt) < paceIdleEvery {
		return false
	}
	a.paceSpent, a.paceAct, a.paceAt = spent, act, now
	return true
}

func (m *Manager) pace(a *Account, now time.Time) {
	c := a.campaign()
	start, end, day := dayBounds(now, c.loc())
	daily := c.DailyMicros
	spentDay := a.spentToday(day)
	spent := spentDay + a.spent.Load()
	if daily == 0 && !c.End.IsZero() && c.End.After(now) {
		// Today's share of what is left: today's part of the flight (from
		// its start, where it starts today) over the rest of the flight,
		// in days of today's length. Counted from today's midnight, a
		// flight starting at 23:00 planned its first hour as a whole day
		// (146 of a 48-hour flight's 480 in that hour: TestPacingLifetimeFlightStartsLate).
		from := start
		if c.Start.After(from) && c.Start.Before(end) {
			from = c.Start
		}
		days := max(c.End.Sub(from).Seconds()/end.Sub(from).Seconds(), 1)
		daily = int64(float64(c.TotalMicros-a.spentTotal.Load()+spentDay) / days)
	} else if daily > 0 && c.TotalMicros > 0 {
		// What is left of the total (with what today spent) may be less
		// than the daily budget: the day plans that. Before, the plan was
		// the daily budget's, and the total's rest went by noon.
		daily = min(daily, max(c.TotalMicros-a.spentTotal.Load()+spentDay, 0))
	}
	in := pacingIn{now: now, spent: spent, daily: daily, asap: c.Pacing == PacingASAP || daily == 0}
	in.reserved = a.reserved.Load()
	in.share = a.pacingShare(a.pace.capEst, m.paceClosed)
	// The conversion's prior is this instance's share of the day's: each
	// instance resolves only its share of the bids, and with the whole
	// day's prior 3 instances started at once leant on it 3 times as much
	// as one, overestimated their capacity and spent 71% of what one
	// instance did in their first 10 minutes (TestPacingFleetConversionPrior).
	in.inflight, in.conv = a.pace.inflight(now, in.reserved, a.drawn.Load(), a.pending.Load(), int64(float64(daily)*in.share))
	pl := &a.pace.plan
	if m.replanDue(pl, c, day, daily, now) {
		// From what is committed, as the controller counts it: re-made
		// from spend alone, each plan started under the last by the
		// money in flight, and an accelerated day with notices 5 s late
		// under-delivered its mornings by 5% an hour.
		from := spent + in.inflight
		if pl.made.Before(now) && pl.day == day && pl.daily == daily && pl.key == planKeyOf(c) {
			// Mid-day (every replanEvery, a new forecast): up to an hour
			// of a shortfall stays to catch up (shortfallKept).
			from = m.shortfallKept(pl, c, now, from)
		}
		m.makePlan(pl, c, planSpan{now: now, dayEnd: end, day: day, daily: daily, spent: from})
	}
	in.target, in.rate = m.planAt(pl, c, now)
	p, target := a.pace.step(in)
	a.capacity.Store(int64(a.pace.capEst))
	a.throttle.Store(probToThreshold(p))
	a.target.Store(target)
	e := 0.0
	if daily > 0 {
		e = float64(spent-target) / float64(daily)
	}
	a.pacingErr.Store(floatBits(e))
}
