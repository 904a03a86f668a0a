// Package campaigns owns the campaign configuration: one YAML file per
// campaign, strict parsing, validation that names the file, field and reason
// of every problem, compilation into an immutable *Snapshot with a targeting
// index, and a Store that publishes the current snapshot through an
// atomic.Pointer and swaps it on Reload or when Watch sees the directory
// change.
//
// The file format and every field's meaning and default are documented in
// docs/campaigns.md. In short:
//
//	id, advertiser, adomain, status (active|paused), flight {start, end},
//	currency (ISO 4217, default USD), time_zone (IANA, default UTC),
//	bid_strategy {kind: fixed_cpm|target_cpc|target_cpa, cpm, cpc, cpa, conversion_rate},
//	max_bid_cpm, budget {daily, total}, pacing {mode: even|forecast|asap},
//	frequency_cap {count, window}, creatives [...], targeting {...}
//
// Money is int64 micro-units of the campaign currency, parsed exactly from the
// decimal text ("4.50" and 4.5 are both 4_500_000; more than six decimals or a
// negative amount is an error).
//
// Use on the bid path:
//
//	snap := store.Current()            // once per request
//	cands = snap.Match(cands[:0], req, &req.Imps[i], now, scratch)
//
// Match appends the eligible (campaign, creative) pairs for one imp. It walks
// only the posting lists of the request's own values (see index.go), so its
// cost grows with the campaigns that name those values, not with the size of
// the snapshot, and it makes no allocation once the per-worker Scratch has
// grown. A caller that keeps only the candidates that can bid the most walks
// them in that order instead and stops when it has enough (see rank.go):
//
//	snap.Begin(req, &req.Imps[i], now, scratch, ranker)
//	for cands, ok = snap.Next(cands[:0], scratch); ok; cands, ok = snap.Next(cands[:0], scratch) { ... }
//
// Campaign.Index and Creative.Index are dense (0..n-1) so callers can keep
// parallel slices (budget handles, feature hashes) per snapshot.
//
// Ad markup is compiled once: Creative.Adm holds literal parts already
// escaped as JSON string content and slots for the click and impression URLs;
// AppendAdm renders the adm string content without allocating.
package campaigns
