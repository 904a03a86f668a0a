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
// Keeping budgets in sync costs what changes, not what exists: one liveness
// write per instance per sync period renews all its leases, a campaign takes
// a compare-and-set step only when its spend, demand or lease asks for one,
// and the global figures arrive by a watch on the bucket. See docs/budget.md.
//
// Lock order. A lock on the left of an arrow may be held while the one on its
// right is taken, never the other way round; no other two locks are ever held
// at once (TestLockOrder checks this list against the nesting seen at run
// time):
//
//	tierShard.mu -> holdShard.mu
//	tierShard.mu -> Account.mu
//	tierShard.mu -> ledger.mu
//	ledger.flushMu -> ledger.mu
//	ledger.flushMu -> Account.mu
//	ledger.flushMu -> tierShard.mu
//	ledger.flushMu -> memLedger.mu -> MemStore.mu
//	control.applyMu -> control.mu
//
// A notice holds its impression's tierShard.mu while it decides and applies
// the change (take the hold, move spend, enqueue the ledger entry: no I/O),
// and none while it waits for the ledger's acknowledgement. The flusher takes
// a tierShard.mu alone (tier.markForeign) to mark a provisional charge the
// ledger found recorded before.
//
// Every other lock is a leaf, taken with nothing else held: Manager.mu (the
// campaign set; a notice for a campaign no config names takes it after
// reading that campaign's record, Manager.retired), Account.mu (lease, spend, holds of a campaign; Hold takes it
// and then, after unlocking, a hold shard, Settle the other way round),
// Account.gmu (global figures), Manager.liveMu (other instances' liveness),
// holdShard.mu, freqShard.mu, forecast.mu, kvStore.mu (the record cache and the last heartbeat revision),
// control.mu (the kill-switch state; taken under control.applyMu, which
// applying a kill-switch change holds while it tells the bid path, no other
// lock of this package held) and memControl.mu (a MemStore's
// kill-switch keys). A Store calls watch callbacks with no lock of its own
// held.
//
// ledger.flushMu (one flusher at a time) is the only lock held across NATS
// I/O: the ledger publish. Nothing on the bid path, in the sync round or in
// a notice takes it.
package budget
