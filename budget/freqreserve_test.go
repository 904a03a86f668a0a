package budget

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FreqReserve checks and counts under one lock: of 64 concurrent bids for
// one user of a campaign capped at 3, exactly 3 are counted; a loss frees
// one; an impression does not.
func TestFreqReserveConcurrent(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(100))
	c.FreqCapCount, c.FreqCapWindow = 3, time.Hour
	m := newMemManager(t, NewMemStore(), "i1", clk, c, campaign("uncapped", micros(100)))
	h, now := m.Handle("c"), clk.Now()
	var ok atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if m.FreqReserve(h, 42, now) {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 3 {
		t.Fatalf("%d of 64 concurrent bids counted against a cap of 3", ok.Load())
	}
	m.FreqSettle(h, 42, "", now) // a loss
	if !m.FreqReserve(h, 42, now) || m.FreqReserve(h, 42, now) {
		t.Fatal("after a loss: want one more bid, then none")
	}
	m.RecordImpression(h, 42, now)
	m.FreqSettle(h, 42, "", now) // an impression: still counts
	if m.FreqReserve(h, 42, now) {
		t.Fatal("an impression freed a bid")
	}
	if !m.FreqReserve(h, 43, now) || !m.FreqReserve(m.Handle("uncapped"), 42, now) {
		t.Fatal("another user, or a campaign without a cap, refused")
	}
}

// A full frequency table makes room: a new user's entry takes the place of
// the one whose counting ends first (an expired one before any), so a
// capped campaign keeps bidding new users and the users counted most
// recently stay capped; dropping an entry still counting is counted. Before,
// a full shard stored no new key: new users went uncapped (an outside
// audit: 10 impressions under a cap of 2), then, failing closed, were not
// bid at all (another audit stopped every capped campaign for an hour by
// filling the table with bids and pixels).
func TestFreqTableFullDropsTheEntryEndingFirst(t *testing.T) {
	tb := newFreqTable(64 * 4) // 4 entries a shard: the sample sees them all
	const hour = int64(time.Hour)
	now := t0.UnixNano()
	keys := func(shard uint64, n int) []uint64 { // n keys of one shard
		var out []uint64
		for k := shard; len(out) < n; k += 64 {
			out = append(out, k)
		}
		return out
	}
	ks := keys(5, 6)
	tb.add(ks[0], now-2*hour, hour)         // expired, not pruned yet
	tb.add(ks[1], now-hour/2, hour)         // ends in 30 min
	tb.add(ks[2], now, hour)                // ends in 1 h
	tb.add(ks[3], now, hour)                //
	if !tb.tryPend(ks[4], 1, now, 2*hour) { // full: the expired entry goes
		t.Fatal("a new user refused with the table full")
	}
	if n := tb.evicted.Load(); n != 0 || tb.count(ks[0], now) != 0 || tb.count(ks[1], now) != 1 {
		t.Fatalf("evicted %d (want 0: an expired entry), ks[1] count %d", n, tb.count(ks[1], now))
	}
	tb.add(ks[5], now, hour) // full again: the entry ending first (ks[1]) goes, counted
	if n := tb.evicted.Load(); n != 1 || tb.count(ks[1], now) != 0 {
		t.Fatalf("evicted %d, ks[1] count %d; want 1 and 0", n, tb.count(ks[1], now))
	}
	for _, k := range []uint64{ks[2], ks[3], ks[5]} {
		if tb.count(k, now) != 1 {
			t.Fatalf("key %d, counted recently, lost its count", k)
		}
	}
	if tb.count(ks[4], now) != 1 { // its pending bid
		t.Fatal("the pending bid that made room lost its count")
	}

	// Through the manager: with the table full a capped campaign still bids
	// new users, each once under a cap of 1, and the metric counts the drops.
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(100))
	c.FreqCapCount, c.FreqCapWindow = 1, time.Hour
	m := newMemManager(t, NewMemStore(), "i1", clk, c) // FreqMaxUsers 4,096
	h := m.Handle("c")
	for u := uint64(1); u <= 8192; u++ { // twice what the table holds
		m.RecordImpression(h, u, clk.Now())
	}
	if m.Counters().FreqEvicted == 0 {
		t.Fatal("no eviction counted with the table overfilled")
	}
	for u := uint64(100_000); u < 100_100; u++ {
		if !m.FreqReserve(h, u, clk.Now()) || m.FreqReserve(h, u, clk.Now()) {
			t.Fatalf("user %d: want one bid, then none (cap 1)", u)
		}
	}
}

// A full shard whose sampled entries all end at the far bound (a cap window
// past 2262 clamps there) still drops one: the shard stays bounded. And an
// impression older than the current window (delivered late) changes
// nothing: it replaced the window before. Both from a review.
func TestFreqTableBoundsAndLateImpressions(t *testing.T) {
	tb := newFreqTable(64 * 4)
	now := t0.UnixNano()
	const forever = int64(math.MaxInt64)
	for k := uint64(9); k < 9+64*100; k += 64 {
		tb.add(k, now, forever)
	}
	if n := len(tb.shards[9].m); n != 4 {
		t.Fatalf("shard holds %d entries, want its bound 4", n)
	}
	hour := int64(time.Hour)
	tb.add(7, now, hour)
	tb.add(7, now, hour)
	tb.add(7, now-2*hour, hour) // a late one from two hours ago
	if n := tb.count(7, now); n != 2 {
		t.Fatalf("count %d after a late impression, want 2", n)
	}
}

// A loss notice or an impression pixel that comes after its bid's pending
// count has already lapsed (FreqPendingTTL) must not end a later bid's
// count (an outside audit, over HTTP with freq_pending_ttl 3s: two bids,
// their counts lapse, two more bids, then the first two's late loss
// notices ended the new bids' counts, and the user got 4 impressions under
// a cap of 2 within a second).
func TestLateNoticeEndsNoLaterBidsPending(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(100))
	c.FreqCapCount, c.FreqCapWindow = 2, time.Hour
	m := newMemManager(t, NewMemStore(), "i1", clk, c)
	h := m.Handle("c")
	const user = 42
	bid0 := clk.Now()
	old := make([]Notice, 2)
	for i := range old {
		if !m.FreqReserve(h, user, bid0) {
			t.Fatal("first bids refused")
		}
		old[i] = Notice{Kind: KindLoss, InstanceID: "i1", CampaignID: "c", AuctionID: "old", ImpID: string(rune('1' + i)),
			HoldID: HoldID(i + 1), Bid: bid0.Truncate(time.Second), User: user}
	}
	bid1 := bid0.Add(m.cfg.FreqPendingTTL + 5*time.Second) // the first two bids' counts have lapsed
	for range 2 {
		if !m.FreqReserve(h, user, bid1) {
			t.Fatal("bids after the pending TTL refused")
		}
	}
	if m.FreqReserve(h, user, bid1) {
		t.Fatal("a third bid within the new bids' pending window")
	}
	late := bid1.Add(time.Second)
	old[0].Time = late
	m.EndLost(old[0]) // the first old bid's loss notice, late
	old[1].Kind, old[1].Time = KindBill, late
	m.CountPixel(old[1]) // the second old bid's impression pixel, late: it counts, and ends no other bid's count
	if got := m.FreqLeft(h, user, late); got != 0 {
		t.Fatalf("late notices of lapsed bids left %d impressions while two later bids are pending and one impression counted; want 0", got)
	}
	for i := range 2 { // the new bids' own loss notices, in time, still end their counts
		m.EndLost(Notice{Kind: KindLoss, InstanceID: "i1", CampaignID: "c", AuctionID: "new", ImpID: string(rune('1' + i)),
			HoldID: HoldID(i + 3), Bid: bid1.Truncate(time.Second), User: user, Time: late})
	}
	if got := m.FreqLeft(h, user, late); got != 1 {
		t.Fatalf("after the new bids' timely losses: FreqLeft %d, want 1 (one impression counted)", got)
	}
}
