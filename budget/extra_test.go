package budget

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestStatusJSONAndCounters(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := Campaign{ID: `c"1`, Currency: "EUR", DailyMicros: micros(10), TotalMicros: micros(100)}
	m := newMemManager(t, NewMemStore(), "i1", clk, c)
	h := m.Handle(c.ID)
	m.Hold(h, 1000, clk.Now())
	m.paceAll(clk.Now())
	b, err := json.Marshal(m.Status())
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	json.Unmarshal(b, &got)
	want := []string{"id", "currency", "total_budget_micros", "daily_budget_micros", "spent_micros", "spent_today_micros",
		"held_micros", "leased_micros", "pacing_mode", "pacing_target_micros", "pacing_error", "throttle"}
	if len(got) != 1 || len(got[0]) != len(want) {
		t.Fatalf("status %s", b)
	}
	for _, k := range want {
		if _, ok := got[0][k]; !ok {
			t.Errorf("missing %q in %s", k, b)
		}
	}
	if got[0]["held_micros"].(float64) != 1000 || got[0]["pacing_mode"] != "even" {
		t.Errorf("status %s", b)
	}
	figs := map[string]float64{}
	m.Counters().Each(func(name, typ, help string, v float64) {
		if _, dup := figs[name]; dup || help == "" || (typ == "counter") != strings.HasSuffix(name, "_total") {
			t.Errorf("figure %q (%s): duplicate, no help, or a counter name without _total", name, typ)
		}
		figs[name] = v
	})
	for name, want := range map[string]float64{"late_charges_total": 0, "nats_connected": 1, "lease_grants_total": 1} {
		if got, ok := figs[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
}

func TestEmbeddedInProcessOnly(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir()}) // Port 0: no listener
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if srv.Addr() != nil {
		t.Fatalf("listening on %v", srv.Addr())
	}
	m := natsManager(t, "solo", nil, srv, 1, campaign("c", micros(1)))
	defer m.Close(context.Background())
	if ok, why := m.Ready(); !ok {
		t.Fatalf("not ready: %s", why)
	}
	if d := m.Allow(m.Handle("c"), 1000, time.Now()); d != DecisionOK {
		t.Fatalf("allow %v", d)
	}
	// Start is idempotent on the store: a second manager provisions again.
	m2 := natsManager(t, "solo2", nil, srv, 1, campaign("c", micros(1)))
	m2.Close(context.Background())
}

func TestFrequencyCapSharedAcrossInstances(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	c := campaign("c", micros(10))
	c.FreqCapCount, c.FreqCapWindow = 2, time.Hour
	a := natsManager(t, "a", nil, srv, 1, c)
	defer a.Close(context.Background())
	b := natsManager(t, "b", []string{srv.ClientURL()}, nil, 1, c)
	defer b.Close(context.Background())
	ha, hb := a.Handle("c"), b.Handle("c")
	now := time.Now()
	const user = 12345
	a.RecordImpression(ha, user, now)
	if !a.FreqAllow(ha, user, now) {
		t.Fatal("one of two impressions: allowed")
	}
	b.RecordImpression(hb, user, now)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if a.FreqAllow(ha, user, now) || b.FreqAllow(hb, user, now) {
			return fmt.Errorf("cap not shared yet")
		}
		return nil
	})
	if !a.FreqAllow(ha, user+1, now) || !a.FreqAllow(ha, user, now.Add(time.Hour)) {
		t.Fatal("other user or next window must be allowed")
	}
}

func TestCloseKeepsLeaseForUnacknowledgedSpend(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	m := newMemManager(t, st, "i1", clk, campaign("c", micros(10)))
	h := m.Handle("c")
	id, _ := m.Hold(h, 1000, clk.Now())
	m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1", BidMicros: 1000, ClearingMicros: 800})
	st.SetDown(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Close(ctx); err == nil {
		t.Fatal("close with the store down must report the unflushed ledger")
	}
	st.SetDown(false)
	r, _ := st.Get(context.Background(), "c")
	if r.Leases["i1"].Amount < 800 {
		t.Fatalf("lease covering the unacknowledged charge was given back: %+v", r)
	}
}

func TestIdleInstanceGivesHeadroomBack(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	c := campaign("c", micros(3))
	a := newMemManager(t, st, "a", clk, c)
	b := newMemManager(t, st, "b", clk, c)
	for range 40 {
		clk.Add(time.Second)
		a.syncAll(ctxT(t), clk.Now(), false)
		b.syncAll(ctxT(t), clk.Now(), false)
	}
	if l := a.Handle("c").lease.Load() + b.Handle("c").lease.Load(); l != 0 {
		t.Fatalf("idle instances still hold %d", l)
	}
	// Demand on one instance brings headroom back to it.
	h := a.Handle("c")
	if d := a.Allow(h, 500_000, clk.Now()); d != DecisionNoLease {
		t.Fatalf("allow: %v", d)
	}
	a.syncAll(ctxT(t), clk.Now(), false)
	if d := a.Allow(h, 500_000, clk.Now()); d != DecisionOK {
		t.Fatalf("after demand: %v (lease %d)", d, h.lease.Load())
	}
}

func TestForeignHoldIsNeverTouched(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	c := campaign("c", micros(10))
	a := newMemManager(t, st, "a", clk, c)
	b := newMemManager(t, st, "b", clk, c)
	ida, _ := a.Hold(a.Handle("c"), 1000, clk.Now())
	idb, _ := b.Hold(b.Handle("c"), 1000, clk.Now())
	// A notice for a's hold reaches b, whose own hold may share the slot number.
	res, err := b.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: ida, InstanceID: "a", CampaignID: "c",
		AuctionID: "x", ImpID: "1", BidMicros: 1000, ClearingMicros: 900})
	if err != nil || !res.Late || res.ChargedMicros != 900 {
		t.Fatalf("foreign notice: %+v %v", res, err)
	}
	if b.Handle("c").held.Load() != 1000 {
		t.Fatalf("b's own hold %x was touched", idb)
	}
	// The ledger keeps one charge: a's replay of the same notice is reversed or de-duplicated.
	b.ledger.flush(ctxT(t))
	if _, err := a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: ida, InstanceID: "a", CampaignID: "c",
		AuctionID: "x", ImpID: "1", BidMicros: 1000, ClearingMicros: 900}); err != nil {
		t.Fatal(err)
	}
	a.ledger.flush(ctxT(t))
	ha := a.Handle("c")
	// a drew 900 from its hold (the ledger then took it for b's: spent
	// back to 0); the hold's rest, 100, stays reserved until it expires.
	if ha.spent.Load() != 0 || ha.held.Load() != 100 || a.Counters().DuplicateNotices != 1 {
		t.Fatalf("a: spent %d held %d counters %+v", ha.spent.Load(), ha.held.Load(), a.Counters())
	}
}

// A frequency cap holds at the extremes a campaign file can write: a window
// of 2,500,000 hours (its end past 2262, where now + window wrapped
// negative and the cap was forgotten at once) and a count past 2^32 (cut
// to uint32: 2^32 read as 0, so the campaign never bid to anyone).
func TestFrequencyCapExtremes(t *testing.T) {
	now := t0.Add(time.Hour)
	const user = 7
	for _, c := range []struct {
		count  int
		window time.Duration
		seen   int  // impressions recorded first
		allow  bool // another one allowed
	}{
		{2, 2_500_000 * time.Hour, 2, false},
		{2, 2_500_000 * time.Hour, 1, true},
		{1, time.Duration(math.MaxInt64), 1, false},
		{1 << 32, time.Hour, 0, true},
		{1<<32 + 1, time.Hour, 1, true},
		{1, time.Hour, 1, false},
	} {
		camp := campaign("c", micros(10))
		camp.FreqCapCount, camp.FreqCapWindow = c.count, c.window
		m := newMemManager(t, NewMemStore(), "i1", newManualClock(now), camp)
		h := m.Handle("c")
		for range c.seen {
			m.RecordImpression(h, user, now)
		}
		if got := m.FreqAllow(h, user, now.Add(time.Minute)); got != c.allow {
			t.Errorf("cap %d per %v after %d: allowed %v, want %v", c.count, c.window, c.seen, got, c.allow)
		}
	}
}

// FreqLeft is what a multi-imp request may still bid a capped campaign on.
func TestFreqLeft(t *testing.T) {
	now := time.Now()
	const user = 99
	for _, c := range []struct {
		count int
		seen  int
		want  int64
	}{
		{0, 3, math.MaxInt64}, // no cap
		{3, 0, 3},
		{3, 1, 2},
		{3, 3, 0},
		{3, 5, 0},
	} {
		camp := campaign("c", micros(10))
		if c.count > 0 {
			camp.FreqCapCount, camp.FreqCapWindow = c.count, time.Hour
		}
		m := newMemManager(t, NewMemStore(), "i1", newManualClock(now), camp)
		h := m.Handle("c")
		for range c.seen {
			m.RecordImpression(h, user, now)
		}
		if got := m.FreqLeft(h, user, now.Add(time.Minute)); got != c.want {
			t.Errorf("cap %d after %d: FreqLeft %d, want %d", c.count, c.seen, got, c.want)
		}
	}
	m := newMemManager(t, NewMemStore(), "i1", newManualClock(now), campaign("c", micros(10)))
	if got := m.FreqLeft(nil, user, now); got != 0 {
		t.Errorf("unknown campaign: FreqLeft %d, want 0", got)
	}
}

// Bids placed here count against the cap until their impression or loss
// (FreqSettle) or FreqPendingTTL: concurrent requests of one user, or a
// request before the first bid's pixel fired, could otherwise each bid up to
// the cap, and every one of those bids could win and show.
func TestFreqPendingBids(t *testing.T) {
	now := t0.Add(time.Hour)
	const user = 42
	camp := campaign("c", micros(10))
	camp.FreqCapCount, camp.FreqCapWindow = 2, time.Hour
	m := newMemManager(t, NewMemStore(), "i1", newManualClock(now), camp)
	h := m.Handle("c")
	left := func(at time.Time, want int64, what string) {
		t.Helper()
		if got := m.FreqLeft(h, user, at); got != want {
			t.Fatalf("%s: FreqLeft %d, want %d", what, got, want)
		}
	}
	left(now, 2, "no bid yet")
	m.FreqPend(h, user, now)
	left(now, 1, "one bid pending")
	m.FreqPend(h, user, now)
	left(now, 0, "two bids pending")
	left(now, 0, "two bids pending")
	if m.FreqLeft(h, user+1, now) != 2 {
		t.Fatal("another user's count moved")
	}
	m.FreqSettle(h, user, "i2", now) // a bid of another instance: pends there
	left(now, 0, "another instance's notice")
	m.RecordImpression(h, user, now) // the first bid showed: counted, no longer pending
	m.FreqSettle(h, user, "i1", now)
	left(now, 0, "one impression, one bid pending")
	m.FreqSettle(h, user, "", now) // the second bid lost
	left(now, 1, "one impression, the other bid lost")
	m.FreqSettle(h, user, "i1", now) // a loss with nothing pending changes nothing
	left(now, 1, "a settle with nothing pending")

	m.FreqPend(h, user, now)
	left(now.Add(29*time.Second), 0, "a bid pending before its TTL")
	left(now.Add(30*time.Second), 1, "a bid past the 30 s TTL") // no notice came: it stops counting
	m.freq.prune(now.Add(30 * time.Second).UnixNano())
	left(now.Add(30*time.Second), 1, "after a prune the impression still counts")
	m.FreqPend(h, user+2, now) // a key with a pending bid and no impression
	m.freq.prune(now.Add(time.Second).UnixNano())
	if got := m.FreqLeft(h, user+2, now.Add(time.Second)); got != 1 {
		t.Fatalf("a prune dropped a pending bid: FreqLeft %d, want 1", got)
	}

	// A campaign without a cap pends nothing; a negative TTL turns pending off.
	free := campaign("f", micros(10))
	m2 := newMemManager(t, NewMemStore(), "i1", newManualClock(now), free)
	m2.FreqPend(m2.Handle("f"), user, now)
	if m2.freq.count(freqKey(user, m2.Handle("f").idHash), now.UnixNano()) != 0 {
		t.Fatal("a campaign without a cap counted a pending bid")
	}
	m3 := newMemManager(t, NewMemStore(), "i1", newManualClock(now), camp)
	m3.cfg.FreqPendingTTL = -1
	m3.FreqPend(m3.Handle("c"), user, now)
	if got := m3.FreqLeft(m3.Handle("c"), user, now); got != 2 {
		t.Fatalf("pending off: FreqLeft %d after a bid, want 2", got)
	}
}
