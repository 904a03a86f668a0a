package budget

import (
	"math"
	"time"
)

func floatBits(f float64) uint64 { return math.Float64bits(f) }

// CampaignStatus is one campaign's money as GET /admin/budget shows it.
type CampaignStatus struct {
	ID                string `json:"id"`
	Currency          string `json:"currency"`
	TotalBudgetMicros int64  `json:"total_budget_micros"`
	DailyBudgetMicros int64  `json:"daily_budget_micros"`
	SpentMicros       int64  `json:"spent_micros"`       // global total spend (newest record seen) plus this instance's unreported spend
	SpentTodayMicros  int64  `json:"spent_today_micros"` // same, for today in the campaign's time zone
	HeldMicros        int64  `json:"held_micros"`        // open holds on this instance
	LeasedMicros      int64  `json:"leased_micros"`      // lease held by this instance
	// DeadReserveMicros is money kept out of the pool for the open bids of
	// a process that died under this instance id (Explanation).
	DeadReserveMicros int64 `json:"dead_reserve_micros,omitempty"`
	// Retired: no config this process loaded names the campaign; notices of
	// its bids are charged to its budget record. Its budgets are not known
	// here (0; they read 1 micro a day, an internal placeholder: an outside
	// audit).
	Retired            bool    `json:"retired,omitempty"`
	PacingMode         string  `json:"pacing_mode"`
	PacingTargetMicros int64   `json:"pacing_target_micros"` // planned spend today, as of the controller's last step
	PacingError        float64 `json:"pacing_error"`         // (spent today - target) / daily budget
	Throttle           float64 `json:"throttle"`             // participation probability
}

// Status returns every known campaign's money, active ones and removed ones
// that still hold money.
func (m *Manager) Status() []CampaignStatus {
	out := make([]CampaignStatus, 0, len(*m.accts.Load()))
	m.EachStatus(func(st *CampaignStatus) { out = append(out, *st) })
	return out
}

// EachStatus calls fn with each entry of Status, in no order, without
// building the list (st is valid during the call only). The walk is paced
// (ScanYield), fn's work included: fn should be about as cheap as building
// an entry, and is called with no lock held.
func (m *Manager) EachStatus(fn func(st *CampaignStatus)) {
	accts := *m.accts.Load()
	now := m.cfg.Clock.Now()
	y := NewScanYield()
	var st CampaignStatus // one for the walk: fn is not known not to keep &st
	for _, a := range accts {
		y.Step(1)
		var ok bool
		if st, ok = statusOf(a, now); ok {
			fn(&st)
		}
	}
}

// StatusOf is the campaign's entry of Status, without building the others:
// false for a campaign Status leaves out (unknown, or nothing active,
// leased, held or spent).
func (m *Manager) StatusOf(id string) (CampaignStatus, bool) {
	a := m.Handle(id)
	if a == nil {
		return CampaignStatus{}, false
	}
	return statusOf(a, m.cfg.Clock.Now())
}

func statusOf(a *Account, now time.Time) (CampaignStatus, bool) {
	if !a.active.Load() && a.lease.Load() == 0 && a.held.Load() == 0 && a.spent.Load() == 0 {
		return CampaignStatus{}, false
	}
	c := a.campaign()
	_, _, day := dayBounds(now, c.loc())
	unrep := a.spent.Load()
	reserve, _ := a.deadReserve(now.UnixNano())
	st := CampaignStatus{
		ID: a.id, Currency: c.Currency, TotalBudgetMicros: c.TotalMicros, DailyBudgetMicros: c.DailyMicros,
		SpentMicros: a.spentTotal.Load() + unrep, SpentTodayMicros: max(a.spentToday(day)+unrep, 0),
		HeldMicros: a.held.Load(), LeasedMicros: a.lease.Load(), PacingMode: c.Pacing.String(),
		PacingTargetMicros: a.target.Load(), PacingError: math.Float64frombits(a.pacingErr.Load()),
		Throttle: throttleProb(a.throttle.Load()), DeadReserveMicros: reserve,
	}
	if c.retired {
		st.Retired, st.TotalBudgetMicros, st.DailyBudgetMicros = true, 0, 0
	}
	return st, true
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
	FreqEvicted      uint64
	HoldTableFull    uint64
	LedgerBacklog    int
	LedgerStored     uint64
	LedgerRetries    uint64
	LeaseGrants      uint64
	LeaseDenials     uint64
	LeasesLost       uint64
	LeaseSteps       uint64 // compare-and-set steps written (follows activity, not the campaign count)
	NATSConnected    bool

	PriceRises          uint64 // charges raised by a later, higher price
	ProvisionalCharges  uint64 // wins charged provisionally (charge-on-billing exchanges)
	ReversedCharges     uint64 // provisional charges reversed by a loss
	ReversedMicros      uint64
	UnreconciledCharges uint64 // charged in full on an impression this process may have charged before and forgotten
	TooLateToCharge     uint64 // win or billing notices refused: later after the bid than the longest de-duplication window
	RetiredCampaigns    uint64 // campaigns no config names whose notices were charged to their budget record (retired)
	Recharges           uint64 // settled charges made again after finding their impression's win reversed (recharge.go)
	RechargeGiveUps     uint64 // such chains that met rcMaxGens reversals and stopped
	AckTimeouts         uint64 // notices answered before their ledger entry was acknowledged (the entry stays queued)
	NoticesForwarded    uint64 // notices settled by their owner instance over NATS
	ForwardFallbacks    uint64 // notices whose owner did not answer: settled here
	ForwardedServed     uint64 // notices other instances forwarded here
	ForwardExpired      uint64 // forwarded notices received too late to answer in time: left to their caller
	ForwardMoved        uint64 // forwarded notices answered "moved" by the process that took over a closed twin's id, sent to it again
	DedupEntries        int    // impressions in the de-duplication tier
	DedupBytes          int    // memory of its slots
	DedupEvicted        uint64 // impressions dropped before their window ended (tier full)
	CrashGapMicros      int64  // dead processes' acknowledged but unreported spend moved into the pool at reclaim
	CrashGapUnknown     uint64 // reclaims (or restarts) whose unreported spend could not be read
	LevelsRestored      uint64 // impressions whose levels this process took from its predecessor's snapshot (levels.go)
	NATSReconnects      uint64 // reconnections of the NATS connection
	PeersAlive          int    // other instances alive, their heartbeats arriving
	PeersSilent         int    // other instances alive (leases valid) whose heartbeats stopped arriving
	LedgerGroups        uint64 // ledger publish groups (one wait for acks each)
	BudgetDisagreements uint64 // campaigns whose budget differed from another instance's for over a minute (checkBudgetDiff)
	CurrencyConflicts   int    // loaded campaigns whose budget record is in another currency than their file (CurrencyConflicts)
}

// Counters sums the counters over all campaigns.
func (m *Manager) Counters() Counters {
	c := Counters{
		DuplicateNotices: m.dupN.Load(), FreqDropped: m.freqDropped.Load(), FreqEvicted: m.freq.evicted.Load(),
		HoldTableFull: m.holds.full.Load(), LedgerBacklog: m.ledger.backlog(),
		LedgerStored: m.ledger.stored.Load(), LedgerRetries: m.ledger.failed.Load(),
		LeaseSteps: m.steps.Load(), NATSConnected: m.connected.Load(),
		PriceRises: m.risesN.Load(), ProvisionalCharges: m.provN.Load(), ReversedCharges: m.reversedN.Load(),
		ReversedMicros: m.reversedMicros.Load(), UnreconciledCharges: m.unreconciledN.Load(), TooLateToCharge: m.tooLateN.Load(),
		RetiredCampaigns: m.retiredN.Load(), Recharges: m.recharges.Load(), RechargeGiveUps: m.rechargeGiveUps.Load(),
		AckTimeouts: m.ackTimeouts.Load(), NoticesForwarded: m.forwarded.Load(), ForwardFallbacks: m.fwdFallbacks.Load(),
		ForwardedServed: m.served.Load(), ForwardExpired: m.fwdExpired.Load(), ForwardMoved: m.fwdMoved.Load(), DedupEntries: m.tier.len(), DedupBytes: m.tier.bytes(),
		DedupEvicted: m.tier.evicted.Load(), CrashGapMicros: m.gapMicros.Load(), CrashGapUnknown: m.gapUnknown.Load(),
		LevelsRestored: m.restoredN.Load(), LedgerGroups: m.ledger.groups.Load(), BudgetDisagreements: m.budgetDiffs.Load(),
	}
	if m.nc != nil {
		c.NATSReconnects = m.nc.Stats().Reconnects
	}
	c.PeersAlive, c.PeersSilent = m.peerCounts()
	for _, a := range *m.accts.Load() {
		c.LateCharges += a.lateN.Load()
		c.LateMicros += a.lateMicros.Load()
		c.CappedPrices += a.cappedN.Load()
		c.LeaseGrants += a.grants.Load()
		c.LeaseDenials += a.denials.Load()
		c.LeasesLost += a.lostLeases.Load()
		if rc := a.recCur.Load(); rc != nil && a.active.Load() {
			if cfg := a.cfg.Load(); cfg != nil && cfg.Currency != *rc {
				c.CurrencyConflicts++
			}
		}
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
	one("late_charged_micros_total", "counter", "Micros charged late, in each campaign's own currency, added across currencies.", float64(c.LateMicros))
	one("capped_prices_total", "counter", "Clearing prices above the bid, capped.", float64(c.CappedPrices))
	one("duplicate_notices_total", "counter", "Notices that changed nothing.", float64(c.DuplicateNotices))
	one("dropped_queue_entries_total", "counter", "Frequency-cap impressions not published to the other instances (queue full, NATS down).", float64(c.FreqDropped))
	one("hold_table_full_total", "counter", "Holds refused: hold table full.", float64(c.HoldTableFull))
	one("freq_table_evictions_total", "counter", "Frequency-cap entries (user, campaign) still counting that a full table dropped to make room (notices.freq_max_entries): those users' counts for the campaign start over.", float64(c.FreqEvicted))
	one("ledger_backlog", "gauge", "Charges waiting for a ledger acknowledgement.", float64(c.LedgerBacklog))
	one("currency_conflicts", "gauge", "Loaded campaigns whose file names another currency than their budget record: they take no lease and never bid.", float64(c.CurrencyConflicts))
	one("ledger_stored_total", "counter", "Charges acknowledged by the ledger.", float64(c.LedgerStored))
	one("ledger_retries_total", "counter", "Ledger publishes to retry.", float64(c.LedgerRetries))
	one("lease_grants_total", "counter", "Lease steps that got what they asked for.", float64(c.LeaseGrants))
	one("lease_denials_total", "counter", "Lease steps that got less than asked.", float64(c.LeaseDenials))
	one("leases_lost_total", "counter", "Leases reclaimed while this instance was cut off.", float64(c.LeasesLost))
	one("lease_steps_total", "counter", "Compare-and-set steps on campaign records.", float64(c.LeaseSteps))
	one("price_rises_total", "counter", "Impression charges raised by a later, higher price.", float64(c.PriceRises))
	one("provisional_charges_total", "counter", "Wins charged provisionally on charge-on-billing exchanges.", float64(c.ProvisionalCharges))
	one("reversed_charges_total", "counter", "Provisional charges reversed by a loss notice.", float64(c.ReversedCharges))
	one("reversed_micros_total", "counter", "Micros of reversed provisional charges, in each campaign's own currency, added across currencies.", float64(c.ReversedMicros))
	one("unreconciled_charges_total", "counter", "Charges in full on an impression this process may have charged before and forgotten (restart, window, eviction): at worst an over-count.", float64(c.UnreconciledCharges))
	one("notices_too_late_to_charge_total", "counter", "Win or billing notices refused (403, not charged): later after the bid than the longest notices.dedup_window, past which a replay could not be told from a first notice.", float64(c.TooLateToCharge))
	one("budget_disagreements_total", "counter", "Campaigns whose budget, time zone or pacing mode in this instance's file differed from the one another instance stepped with, for over a minute (each instance grants from its own file: the fleet may spend the larger; two zones roll the day at two midnights; logged with both).", float64(c.BudgetDisagreements))
	one("retired_campaigns_total", "counter", "Campaigns no loaded config names whose notices were charged to their budget record (the file was removed and the bidder restarted before their notices were in).", float64(c.RetiredCampaigns))
	one("recharges_total", "counter", "Billing notices on an impression unknown here (restart, another instance's bid) charged again because its provisional win had been reversed by a loss.", float64(c.Recharges))
	one("recharge_give_ups_total", "counter", "Such charges left as duplicates after 4 reversals of their impression (never expected).", float64(c.RechargeGiveUps))
	one("notice_ack_timeouts_total", "counter", "Notices answered before their ledger entry was acknowledged (entry still queued).", float64(c.AckTimeouts))
	one("notices_forwarded_total", "counter", "Notices settled by the instance that placed the bid.", float64(c.NoticesForwarded))
	one("notice_forward_fallbacks_total", "counter", "Notices whose owner did not answer, settled here.", float64(c.ForwardFallbacks))
	one("notices_served_for_others_total", "counter", "Notices other instances forwarded here.", float64(c.ForwardedServed))
	one("notices_forward_expired_total", "counter", "Forwarded notices received too late to answer in time, left to the instance that forwarded them.", float64(c.ForwardExpired))
	one("notices_forward_moved_total", "counter", "Forwarded notices answered 'moved' by the process that took over a closed twin's instance id, and sent to it again (docs/budget.md).", float64(c.ForwardMoved))
	one("dedup_entries", "gauge", "Impressions in the de-duplication tier.", float64(c.DedupEntries))
	one("dedup_bytes", "gauge", "Memory of the de-duplication tier's slots.", float64(c.DedupBytes))
	one("dedup_evicted_total", "counter", "Impressions dropped from the tier before their window ended (tier full).", float64(c.DedupEvicted))
	one("crash_gap_micros_total", "counter", "Acknowledged but unreported spend of dead processes moved into the pool when their lease was reclaimed (micros of each campaign's own currency, added across currencies).", float64(c.CrashGapMicros))
	one("crash_gap_unknown_total", "counter", "Reclaims or restarts whose unreported spend could not be read from the ledger.", float64(c.CrashGapUnknown))
	one("levels_restored_total", "counter", "Impressions whose charge levels this process took, at start, from the snapshot its predecessor under the instance id wrote at a graceful close.", float64(c.LevelsRestored))
	one("ledger_groups_total", "counter", "Ledger publish groups (group commit).", float64(c.LedgerGroups))
	one("nats_reconnects_total", "counter", "Reconnections of the budget store's NATS connection (a server lost, hung or restarted; each also logged).", float64(c.NATSReconnects))
	one("peers_alive", "gauge", "Other instances alive whose heartbeats arrive (the watch delivered one within 3 sync periods).", float64(c.PeersAlive))
	one("peers_silent", "gauge", "Other instances whose last heartbeat still keeps their leases valid but from which none arrived for 3 sync periods: killed, hung or cut off (or this instance's watch is behind).", float64(c.PeersSilent))
	one("nats_connected", "gauge", "1 when the budget store is reachable.", b2f(c.NATSConnected))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
