package budget

import (
	"fmt"
	"math"
	"time"
)

// Explanation is what Allow would answer for one bid, with the figures
// behind the answer. Explain computes it without Allow's side effects.
type Explanation struct {
	Decision Decision `json:"decision"`
	// Participation is the pacing controller's participation probability;
	// NextDraw whether the participation draw the next bid takes would let
	// it through (concurrent bids may take that draw first).
	Participation float64 `json:"participation"`
	NextDraw      bool    `json:"next_draw_passes"`
	// This instance's lease and what is spent (unreported) and held in it.
	LeaseMicros    int64 `json:"lease_micros"`
	LeaseValid     bool  `json:"lease_valid"`
	HeadroomMicros int64 `json:"headroom_micros"`
	PoolFreeMicros int64 `json:"pool_free_micros"` // money nobody holds, as of the last record seen
	// DeadReserveMicros is money kept out of the pool for the open bids of
	// a process that died under this instance id (a restart after a
	// crash), until DeadReserveUntil (docs/budget.md, the bound).
	DeadReserveMicros int64      `json:"dead_reserve_micros,omitempty"`
	DeadReserveUntil  *time.Time `json:"dead_reserve_until,omitempty"`
	// The day's figures and the pacing plan.
	DailyMicros      int64  `json:"daily_budget_micros"`
	SpentTodayMicros int64  `json:"spent_today_micros"`
	TargetMicros     int64  `json:"pacing_target_micros"`
	PacingMode       string `json:"pacing_mode"`
}

// Explain tells what Allow(h, maxChargeMicros, now) would answer and why,
// without taking a participation draw or signalling demand: it changes no
// state, so an operator's question does not move pacing or leases. For
// the draw it reports whether the next one would pass.
func (m *Manager) Explain(h *Account, maxChargeMicros int64, now time.Time) Explanation {
	return m.ExplainDraw(h, maxChargeMicros, now, 0)
}

// ExplainDraw is Explain for the draw AllowDraw takes for request number req
// (0: the draw Allow would take next).
func (m *Manager) ExplainDraw(h *Account, maxChargeMicros int64, now time.Time, req uint64) Explanation {
	if h == nil {
		return Explanation{Decision: DecisionUnknown}
	}
	c := h.campaign()
	_, _, day := dayBounds(now, c.loc())
	ns := now.UnixNano()
	th := h.throttle.Load()
	lease, spent, held := h.usableLease(), h.spent.Load(), h.held.Load()+h.revWait.Load()
	e := Explanation{
		Participation: throttleProb(th), LeaseMicros: lease, LeaseValid: m.leaseValid(h, ns),
		HeadroomMicros: lease - spent - held, PoolFreeMicros: h.poolFree.Load(),
		DailyMicros: c.DailyMicros, SpentTodayMicros: max(h.spentToday(day)+spent, 0), TargetMicros: h.target.Load(),
		PacingMode: c.Pacing.String(),
	}
	if r, until := h.deadReserve(ns); r > 0 {
		u := time.Unix(0, until).UTC()
		e.DeadReserveMicros, e.DeadReserveUntil = r, &u
	}
	n := req
	if n == 0 {
		n = h.draws.Load() + 1
	}
	e.NextDraw = th == math.MaxUint64 || splitmix64(h.seed+n) <= th
	switch {
	case !h.inFlight(ns):
		e.Decision = DecisionFlight
	case m.headroom(h, maxChargeMicros, ns) != DecisionOK:
		e.Decision = m.headroom(h, maxChargeMicros, ns)
	case !e.NextDraw:
		e.Decision = DecisionPaced
	}
	return e
}

// MarshalText names the decision in JSON ("ok", "paced", ...).
func (d Decision) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a decision's name.
func (d *Decision) UnmarshalText(b []byte) error {
	for i, n := range decisionNames {
		if n == string(b) {
			*d = Decision(i)
			return nil
		}
	}
	return fmt.Errorf("%w: decision %q", ErrBadConfig, b)
}
