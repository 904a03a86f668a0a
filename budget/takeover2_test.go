package budget

import (
	"strconv"
	"testing"
	"time"
)

// Two processes under one id start at once (both probes pass): y steps
// first, x's heartbeat stands (y yields): x bids. A rule that left alone an
// entry written after the process started (7946275) kept both from bidding
// (a review).
func TestSimultaneousStartTheStandingHeartbeatBids(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(100))
	newM := func() *Manager { return sameIDManager(t, mem, mem, clk, c) }
	x := newM()
	clk.Add(time.Second)
	y := newM()
	clk.Add(time.Second)
	if err := y.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer y.Close(ctxT(t))
	clk.Add(100 * time.Millisecond)
	if err := x.Start(ctxT(t)); err != nil { // y wrote no heartbeat meanwhile (manual): taken for dead
		t.Fatal(err)
	}
	defer x.Close(ctxT(t))
	hx, hy := x.Handle("c"), y.Handle("c")
	for range 120 {
		clk.Add(10 * time.Second)
		y.Allow(hy, 1000, clk.Now())
		y.ledger.flush(ctxT(t))
		y.syncAll(ctxT(t), clk.Now(), false)
		x.Allow(hx, 1000, clk.Now())
		x.ledger.flush(ctxT(t))
		x.syncAll(ctxT(t), clk.Now(), false)
	}
	r, _ := mem.Get(ctxT(t), "c")
	l, _, _ := mem.GetLiveness(ctxT(t), "a")
	_, okX := x.Hold(hx, 1000, clk.Now())
	_, okY := y.Hold(hy, 1000, clk.Now())
	t.Logf("heartbeat %s (x %s, y %s); leases %+v; x twin %v y twin %v; hold x %v y %v", l.Boot, x.boot, y.boot, r.Leases, x.twin.Load(), y.twin.Load(), okX, okY)
	if !okX && !okY {
		t.Fatalf("20 minutes after a simultaneous start nobody bids on c")
	}
}

// An overlapping deploy: the new process N is created (New) at S and
// retries Start while the old P still runs; P steps at S+10s and is killed
// (or closes with unacknowledged spend, keeping its entry). N's step at
// S+70s takes P's dead entry over and gets a lease (7946275 waited for the
// entry's expiry: a review).
func TestOverlappingDeployTakesTheDeadEntryAtOnce(t *testing.T) {
	S := t0.Add(time.Hour)
	day := "2026-12-05"
	ttl := 5 * time.Minute
	W := S.Add(10 * time.Second)
	rec := Record{Currency: "USD", Day: day, SpentDay: 1000, SpentTotal: 1000, Leases: map[string]Lease{
		"a": {Boot: "bP", Amount: 5000, Reported: 1000, Cum: 1000, Expires: W.Add(ttl).UnixNano()},
	}}
	var got []string
	for _, d := range []time.Duration{70 * time.Second, 2 * time.Minute, 4 * time.Minute, 5*time.Minute + 5*time.Second, 5*time.Minute + 30*time.Second} {
		q := leaseReq{instance: "a", currency: "USD", now: S.Add(d), day: day, boot: "bN", ttl: ttl, reclaim: 20 * time.Millisecond,
			want: 1000, prev: &ledgerTail{boot: "bP", cum: 1000, seq: 3}}
		res := applyLease(&rec, q)
		got = append(got, d.String()+"->"+strconv.FormatInt(res.amount, 10))
	}
	t.Logf("N's lease after its start: %v", got)
	if got[0] != "1m10s->1000" {
		t.Fatalf("N gets no lease on a dead predecessor's entry until it expires: %v", got)
	}
}

// A plain restart after a crash with lease_ttl lowered from 1h to 5m: the
// dead process's entry is taken over at once (7946275 read it as written
// after N started and waited the old hour: a review).
func TestRestartWithShorterLeaseTTLTakesTheDeadEntry(t *testing.T) {
	W := t0.Add(time.Hour)
	day := "2026-12-05"
	S := W.Add(30 * time.Second) // the crash, then the restart
	rec := Record{Currency: "USD", Day: day, Leases: map[string]Lease{
		"a": {Boot: "bP", Amount: 5000, Expires: W.Add(time.Hour).UnixNano()},
	}}
	q := leaseReq{instance: "a", currency: "USD", now: S.Add(time.Minute), day: day, boot: "bN", ttl: 5 * time.Minute, reclaim: time.Second,
		want: 1000, prev: &ledgerTail{boot: "bP"}}
	res := applyLease(&rec, q)
	t.Logf("N's lease 1m after a restart: %d; leases %+v", res.amount, rec.Leases)
	if res.amount == 0 {
		t.Fatalf("no lease for N until the dead entry expires (%v from now)", time.Unix(0, rec.Leases["a"].Expires).Sub(q.now))
	}
}

// The same lagging step as TestTakenOverLaggingStepAcrossMidnight, but the
// entry was reclaimed by another instance (a tombstone) instead of taken over
// under the same id: the tombstone keeps the tail's sequence too, and the
// step waits for the acknowledgements (a review: the day's spend moved to
// the next day).
func TestReclaimedWhileLaggingWaitsForAcks(t *testing.T) {
	now := t0.Add(time.Hour)
	d1, d2 := "2026-12-05", "2026-12-06"
	rec := Record{Currency: "USD", Day: d1, Leases: map[string]Lease{
		"a": {Boot: "bA", Amount: 100, Reported: 0, Cum: 0, Expires: now.Add(-time.Hour).UnixNano()},
	}}
	applyLease(&rec, leaseReq{instance: "c", currency: "USD", now: now, day: d1, boot: "bC", ttl: 3 * time.Minute, reclaim: time.Second, want: 1000,
		lapsed: map[string]lapse{"a": {boot: "bA", expires: now.Add(-time.Hour).UnixNano(), readAt: now.UnixNano()}},
		tails:  map[string]ledgerTail{"a": {boot: "bA", cum: 300_000, seq: 5}}})
	t.Logf("D after reclaim: spent_day %d leases %+v", rec.SpentDay, rec.Leases)
	qa := leaseReq{instance: "a", currency: "USD", now: now.Add(time.Second), day: d1, boot: "bA",
		ttl: 3 * time.Minute, reclaim: time.Second, want: 1000, ackedSeq: 2, heldLocally: true}
	applyLease(&rec, qa)
	dayD := rec.SpentDay
	t.Logf("D after a's lagging step: spent_day %d", rec.SpentDay)
	qa.now, qa.day, qa.reported, qa.cum, qa.ackedSeq, qa.heldLocally = now.Add(3*time.Second), d2, 300_000, 300_000, 5, false
	applyLease(&rec, qa)
	t.Logf("D+1 after a's acknowledged step: spent_day %d total %d", rec.SpentDay, rec.SpentTotal)
	if dayD != 300_000 || rec.SpentDay != 0 {
		t.Fatalf("D's spend %d (300,000 charged on D), D+1's %d (nothing)", dayD, rec.SpentDay)
	}
}
