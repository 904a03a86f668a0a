// Package budget owns the money of the bidder: per-campaign budgets, leases taken
// from a global pool kept in NATS JetStream, holds placed on the bid path, the
// settlement of win/billing/loss notices, the durable ledger, pacing and
// frequency caps. It knows campaign ids (strings) and amounts (int64 micro-units
// of the campaign currency); it never sees requests, models or HTTP.
//
// Bid path (no allocation, no network, no waiting):
//
//	h := m.Handle(campaignID)               // once per campaign reload
//	if m.Allow(h, maxCharge, now) == DecisionOK && m.FreqAllow(h, user, now) {
//		id, ok := m.Hold(h, bidMicros, now)  // reserve against the lease
//	}
//
// Notices (HTTP handlers): Settle (win or billing) and Release (loss).
//
// Lock order (never take a lock on the left while holding one on the right):
//
//	Manager.mu  ->  Account.mu
//	holdShard.mu and Account.mu are never nested: a hold is taken out of its
//	shard first, the shard lock dropped, then the account is updated.
//	dedupShard.mu, freqShard.mu, ledger.mu and forecast.mu are leaves.
//
// No lock is held across NATS I/O. See docs/budget.md for the design, the
// overspend bound and the failure modes.
package budget
