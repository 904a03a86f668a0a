package budget

import "math"

func floatBits(f float64) uint64 { return math.Float64bits(f) }

// CampaignStatus is one campaign's money as GET /admin/budget shows it.
type CampaignStatus struct {
	ID                 string  `json:"id"`
	Currency           string  `json:"currency"`
	TotalBudgetMicros  int64   `json:"total_budget_micros"`
	DailyBudgetMicros  int64   `json:"daily_budget_micros"`
	SpentMicros        int64   `json:"spent_micros"`       // global total spend (newest record seen) plus this instance's unreported spend
	SpentTodayMicros   int64   `json:"spent_today_micros"` // same, for today in the campaign's time zone
	HeldMicros         int64   `json:"held_micros"`        // open holds on this instance
	LeasedMicros       int64   `json:"leased_micros"`      // lease held by this instance
	PacingMode         string  `json:"pacing_mode"`
	PacingTargetMicros int64   `json:"pacing_target_micros"` // planned spend today, as of the controller's last step
	PacingError        float64 `json:"pacing_error"`         // (spent today - target) / daily budget
	Throttle           float64 `json:"throttle"`             // participation probability
}

// Status returns every known campaign's money, active ones and removed ones
// that still hold money.
func (m *Manager) Status() []CampaignStatus {
	accts := *m.accts.Load()
	out := make([]CampaignStatus, 0, len(accts))
	now := m.cfg.Clock.Now()
	for _, a := range accts {
		if !a.active.Load() && a.lease.Load() == 0 && a.held.Load() == 0 && a.spent.Load() == 0 {
			continue
		}
		c := a.campaign()
		_, _, day := dayBounds(now, c.loc())
		unrep := a.spent.Load()
		out = append(out, CampaignStatus{
			ID: a.id, Currency: c.Currency, TotalBudgetMicros: c.TotalMicros, DailyBudgetMicros: c.DailyMicros,
			SpentMicros: a.spentTotal.Load() + unrep, SpentTodayMicros: a.spentToday(day) + unrep,
			HeldMicros: a.held.Load(), LeasedMicros: a.lease.Load(), PacingMode: c.Pacing.String(),
			PacingTargetMicros: a.target.Load(), PacingError: math.Float64frombits(a.pacingErr.Load()),
			Throttle: throttleProb(a.throttle.Load()),
		})
	}
	return out
}

func throttleProb(th uint64) float64 {
	if th == ^uint64(0) {
		return 1
	}
	return float64(th) / (1 << 64)
}

// Counters are the manager-wide counters (Each names them for /metrics).
type Counters struct {
	LateCharges      uint64
	LateMicros       uint64
	CappedPrices     uint64
	DuplicateNotices uint64
	FreqDropped      uint64
	HoldTableFull    uint64
	LedgerBacklog    int
	LedgerStored     uint64
	LedgerRetries    uint64
	LeaseGrants      uint64
	LeaseDenials     uint64
	LeasesLost       uint64
	LeaseSteps       uint64 // compare-and-set steps written (follows activity, not the campaign count)
	NATSConnected    bool
}

// Counters sums the counters over all campaigns.
func (m *Manager) Counters() Counters {
	c := Counters{
		DuplicateNotices: m.dupN.Load(), FreqDropped: m.freqDropped.Load() + m.freq.dropped.Load(),
		HoldTableFull: m.holds.full.Load(), LedgerBacklog: m.ledger.backlog(),
		LedgerStored: m.ledger.stored.Load(), LedgerRetries: m.ledger.failed.Load(),
		LeaseSteps: m.steps.Load(), NATSConnected: m.connected.Load(),
	}
	for _, a := range *m.accts.Load() {
		c.LateCharges += a.lateN.Load()
		c.LateMicros += a.lateMicros.Load()
		c.CappedPrices += a.cappedN.Load()
		c.LeaseGrants += a.grants.Load()
		c.LeaseDenials += a.denials.Load()
		c.LeasesLost += a.lostLeases.Load()
	}
	return c
}

// Each calls one for every manager-wide figure, in exposition order:
// name (bidder/exposition.go prefixes it with openbidder_budget_; counters
// end in _total, money in _micros), type ("counter" or "gauge"), help and
// value. A new counter is a Counters field, its line in Counters() and one
// line here; the bidder's /metrics picks it up.
func (c Counters) Each(one func(name, typ, help string, v float64)) {
	one("late_charges_total", "counter", "Charges whose hold had expired.", float64(c.LateCharges))
	one("late_charged_micros_total", "counter", "Micros charged late.", float64(c.LateMicros))
	one("capped_prices_total", "counter", "Clearing prices above the bid, capped.", float64(c.CappedPrices))
	one("duplicate_notices_total", "counter", "Notices that changed nothing.", float64(c.DuplicateNotices))
	one("dropped_queue_entries_total", "counter", "Frequency-cap impressions dropped (queue or table full, NATS down).", float64(c.FreqDropped))
	one("hold_table_full_total", "counter", "Holds refused: hold table full.", float64(c.HoldTableFull))
	one("ledger_backlog", "gauge", "Charges waiting for a ledger acknowledgement.", float64(c.LedgerBacklog))
	one("ledger_stored_total", "counter", "Charges acknowledged by the ledger.", float64(c.LedgerStored))
	one("ledger_retries_total", "counter", "Ledger publishes to retry.", float64(c.LedgerRetries))
	one("lease_grants_total", "counter", "Lease steps that got what they asked for.", float64(c.LeaseGrants))
	one("lease_denials_total", "counter", "Lease steps that got less than asked.", float64(c.LeaseDenials))
	one("leases_lost_total", "counter", "Leases reclaimed while this instance was cut off.", float64(c.LeasesLost))
	one("lease_steps_total", "counter", "Compare-and-set steps on campaign records.", float64(c.LeaseSteps))
	one("nats_connected", "gauge", "1 when the budget store is reachable.", b2f(c.NATSConnected))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
