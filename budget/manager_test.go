package budget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func newMemManager(t *testing.T, st *MemStore, inst string, clk Clock, cs ...Campaign) *Manager {
	t.Helper()
	m, err := New(Config{
		InstanceID: inst, Store: st, Clock: clk, manual: true, probeWait: 20 * time.Millisecond,
		HoldTTL: time.Minute, LeaseTTL: 3 * time.Minute, MinLease: micros(1), MaxLease: micros(10),
		MaxHolds: 1024, FreqQueue: 64, FreqMaxUsers: 1 << 12,
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConfigValidation(t *testing.T) {
	st := NewMemStore()
	f := func(name string, c Config) {
		t.Helper()
		if _, err := New(c, nil); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: err = %v, want ErrBadConfig", name, err)
		}
	}
	f("no instance", Config{Store: st})
	f("@ in the instance", Config{InstanceID: "a@b", Store: st})
	f("no backend", Config{InstanceID: "a"})
	f("two backends", Config{InstanceID: "a", Store: st, URLs: []string{"nats://x"}})
	f("lease shorter than hold", Config{InstanceID: "a", Store: st, HoldTTL: time.Minute, LeaseTTL: time.Minute})
	f("lease bounds", Config{InstanceID: "a", Store: st, MinLease: 10, MaxLease: 5})

	m, err := New(Config{InstanceID: "a", Store: st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := []Campaign{
		{ID: ""},
		{ID: "x"},
		{ID: "x", TotalMicros: -1, DailyMicros: 5},
		{ID: "x", TotalMicros: 5, FreqCapCount: 2},
		{ID: "x", TotalMicros: 5, Start: t0, End: t0},
	}
	for i, c := range bad {
		if err := m.SetCampaigns([]Campaign{c}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("campaign %d: err = %v", i, err)
		}
	}
	if err := m.SetCampaigns([]Campaign{campaign("a", 1), campaign("a", 2)}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("duplicate ids: %v", err)
	}
}

func TestAllowHoldSettleLifecycle(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	m := newMemManager(t, st, "i1", clk, campaign("c", micros(3)))
	h := m.Handle("c")
	now := clk.Now()
	if got := m.Allow(nil, 1, now); got != DecisionUnknown {
		t.Fatalf("nil handle: %v", got)
	}
	if got := m.Allow(h, micros(1), now); got != DecisionOK {
		t.Fatalf("allow: %v (lease %d)", got, h.lease.Load())
	}
	if h.lease.Load() != micros(1) {
		t.Fatalf("lease = %d, want the minimum lease (no reservation rate yet)", h.lease.Load())
	}
	id1, ok := m.Hold(h, 600_000, now)
	if !ok {
		t.Fatal("hold 1")
	}
	if _, ok := m.Hold(h, 600_000, now); ok {
		t.Fatal("hold beyond the lease must fail")
	}
	if got := m.Allow(h, 600_000, now); got != DecisionNoLease {
		t.Fatalf("allow beyond lease with money in the pool: %v", got)
	}
	n := Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id1, CampaignID: "c", AuctionID: "a1", ImpID: "1",
		BidMicros: 600_000, ClearingMicros: 900_000, Time: now}
	res, err := m.Settle(n)
	if err != nil || res.ChargedMicros != 600_000 || !res.Capped || res.Late {
		t.Fatalf("settle: %+v %v", res, err)
	}
	if res, _ := m.Settle(n); !res.Duplicate || res.ChargedMicros != 0 {
		t.Fatalf("replay: %+v", res)
	}
	bill := n
	bill.Kind = KindBill
	if res, _ := m.Settle(bill); !res.Duplicate {
		t.Fatalf("bill after win must not charge again: %+v", res)
	}
	if h.held.Load() != 0 || h.spent.Load() != 600_000 {
		t.Fatalf("held %d spent %d", h.held.Load(), h.spent.Load())
	}
	// Loss releases; replayed loss is a no-op.
	id2, ok := m.Hold(h, 400_000, now)
	if !ok {
		t.Fatal("hold 2")
	}
	loss := Notice{Kind: KindLoss, HoldID: id2, CampaignID: "c", AuctionID: "a2", ImpID: "1", Time: now}
	for range 2 {
		if _, err := m.Settle(loss); err != nil {
			t.Fatal(err)
		}
	}
	if h.held.Load() != 0 {
		t.Fatalf("held after loss %d", h.held.Load())
	}
	// Flush the ledger, sync: spend reaches the global record.
	if err := m.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	m.syncAll(ctxT(t), now, false)
	r, _ := st.Get(ctxT(t), "c")
	if r.SpentTotal != 600_000 || r.Leases["i1"].Amount != micros(1) {
		t.Fatalf("record %+v", r)
	}
	if len(m.mem.all()) != 1 {
		t.Fatalf("ledger %v", m.mem.all())
	}
	// Close returns the lease.
	if err := m.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	r, _ = st.Get(ctxT(t), "c")
	if len(r.Leases) != 0 || r.SpentTotal != 600_000 {
		t.Fatalf("after close %+v", r)
	}
}

func TestChargeOnBill(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", micros(5)))
	h := m.Handle("c")
	id, _ := m.Hold(h, micros(1), clk.Now())
	n := Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1",
		BidMicros: micros(1), ClearingMicros: 500_000}
	// The win charges provisionally: an exchange that sends no bill is still charged.
	if res, err := m.Settle(n); err != nil || !res.Won || !res.Provisional || res.ChargedMicros != 500_000 {
		t.Fatalf("win on a bill exchange: %+v %v", res, err)
	}
	n.Kind = KindBill
	if res, _ := m.Settle(n); res.ChargedMicros != 0 || res.Provisional || res.Duplicate || res.LevelMicros != 500_000 {
		t.Fatalf("bill at the win's price settles it: %+v", res)
	}
	if res, _ := m.Settle(n); !res.Duplicate {
		t.Fatalf("bill replay: %+v", res)
	}
	n.Kind = KindWin
	if res, _ := m.Settle(n); !res.Duplicate {
		t.Fatalf("win after bill: %+v", res)
	}
	// The rest of the hold stays reserved for the impression until it
	// expires: a bill at a higher price would be drawn from it.
	if h.spent.Load() != 500_000 || h.held.Load() != 500_000 {
		t.Fatalf("spent %d held %d, want 500000 and the hold's rest 500000", h.spent.Load(), h.held.Load())
	}
	clk.Add(m.cfg.HoldTTL)
	m.expireHolds(clk.Now())
	if h.spent.Load() != 500_000 || h.held.Load() != 0 {
		t.Fatalf("after the hold expired: spent %d held %d", h.spent.Load(), h.held.Load())
	}
}

func TestLateChargeAfterHoldExpiry(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", micros(5)))
	h := m.Handle("c")
	id, _ := m.Hold(h, micros(1), clk.Now())
	clk.Add(2 * time.Minute)
	m.expireHolds(clk.Now())
	if h.held.Load() != 0 {
		t.Fatalf("hold not expired: %d", h.held.Load())
	}
	res, err := m.Settle(Notice{Kind: KindBill, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1",
		BidMicros: micros(1), ClearingMicros: micros(1)})
	if err != nil || !res.Late || res.ChargedMicros != micros(1) {
		t.Fatalf("late: %+v %v", res, err)
	}
	if err := m.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if c := m.Counters(); c.LateCharges != 1 || c.LateMicros != uint64(micros(1)) {
		t.Fatalf("counters %+v", c)
	}
}

// A late charge is counted once the ledger has it, never before: counted
// when charged, one the ledger then found another instance's duplicate was
// taken off again, and late_charges_total went down (a counter reset to
// Prometheus).
func TestLateCountersNeverFall(t *testing.T) {
	m := newMemManager(t, NewMemStore(), "i1", newManualClock(t0), campaign("c", micros(5)))
	h := m.Handle("c")
	m.ledgerDone(&LedgerEntry{acct: h, Late: true, Charged: 700}, pubDupOther)
	if c := m.Counters(); c.LateCharges != 0 || c.LateMicros != 0 {
		t.Fatalf("a duplicate late charge counted: %+v", c)
	}
	m.ledgerDone(&LedgerEntry{acct: h, Late: true, Charged: 700}, pubStored)
	if c := m.Counters(); c.LateCharges != 1 || c.LateMicros != 700 {
		t.Fatalf("a stored late charge: %d, %d micros", c.LateCharges, c.LateMicros)
	}
}

func TestBadNotices(t *testing.T) {
	m := newMemManager(t, NewMemStore(), "i1", newManualClock(t0), campaign("c", micros(5)))
	f := func(n Notice, want error) {
		t.Helper()
		if _, err := m.Settle(n); !errors.Is(err, want) {
			t.Errorf("%+v: err %v want %v", n, err, want)
		}
	}
	f(Notice{Kind: KindWin, CampaignID: "c", ImpID: "1"}, ErrBadNotice)
	f(Notice{Kind: 9, CampaignID: "c", AuctionID: "a", ImpID: "1"}, ErrBadNotice)
	f(Notice{Kind: KindWin, CampaignID: "c", AuctionID: "a", ImpID: "1", ClearingMicros: -1}, ErrBadNotice)
	f(Notice{Kind: KindWin, CampaignID: "zz", AuctionID: "a", ImpID: "1"}, ErrUnknownCampaign)
}

func TestFlightAndReload(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(5))
	c.Start, c.End = t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	m := newMemManager(t, NewMemStore(), "i1", clk, c)
	h := m.Handle("c")
	if d := m.Allow(h, 1, clk.Now()); d != DecisionFlight {
		t.Fatalf("before flight: %v", d)
	}
	clk.Set(t0.Add(150 * time.Minute))
	m.syncAll(ctxT(t), clk.Now(), false)
	// Idle for longer than the lease idle time, but the instance is alone:
	// headroom at the flight's first round, no request refused for want of
	// lease (with another instance alive it would wait for demand).
	if d := m.Allow(h, 1, clk.Now()); d != DecisionOK {
		t.Fatalf("idle campaign, instance alone: %v", d)
	}
	m.syncAll(ctxT(t), clk.Now(), false)
	if d := m.Allow(h, 1, clk.Now()); d != DecisionOK {
		t.Fatalf("in flight: %v", d)
	}
	id, _ := m.Hold(h, 100, clk.Now())
	// Reload without c: handle stays, bids stop, the hold is kept.
	if err := m.SetCampaigns([]Campaign{campaign("d", micros(1))}); err != nil {
		t.Fatal(err)
	}
	if d := m.Allow(h, 1, clk.Now()); d != DecisionFlight {
		t.Fatalf("removed: %v", d)
	}
	if res, err := m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1", BidMicros: 100, ClearingMicros: 90}); err != nil || res.ChargedMicros != 90 || res.Late {
		t.Fatalf("settle for a removed campaign: %+v %v", res, err)
	}
	// Reload with c again: same account, state kept.
	if err := m.SetCampaigns([]Campaign{c}); err != nil {
		t.Fatal(err)
	}
	if m.Handle("c") != h || h.spent.Load() != 90 {
		t.Fatal("state lost across reload")
	}
}

func TestFailClosedOnStoreOutage(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	m := newMemManager(t, st, "i1", clk, campaign("c", micros(100)))
	h := m.Handle("c")
	st.SetDown(true)
	m.syncAll(ctxT(t), clk.Now(), false)
	if ok, why := m.Ready(); ok || !strings.Contains(why, "unreachable") {
		t.Fatalf("ready %v %q", ok, why)
	}
	// Bids continue inside the lease held (1 unit min lease, 10 max)...
	lease := h.lease.Load()
	var held int64
	for i := 0; ; i++ {
		if m.Allow(h, 100_000, clk.Now()) != DecisionOK {
			if d := m.Allow(h, 100_000, clk.Now()); d != DecisionFailClosed {
				t.Fatalf("after the lease: %v", d)
			}
			break
		}
		if _, ok := m.Hold(h, 100_000, clk.Now()); !ok {
			t.Fatal("hold refused after allow")
		}
		held += 100_000
	}
	if held > lease || held < lease-100_000 {
		t.Fatalf("held %d, lease %d", held, lease)
	}
	// ...and stop once the lease expires even if holds are released.
	m.expireHolds(clk.Now().Add(2 * time.Minute))
	clk.Add(3 * time.Minute)
	if d := m.Allow(h, 1, clk.Now()); d != DecisionFailClosed {
		t.Fatalf("after lease expiry: %v", d)
	}
	st.SetDown(false)
	m.syncAll(ctxT(t), clk.Now(), false)
	if ok, _ := m.Ready(); !ok {
		t.Fatal("not ready after recovery")
	}
	if d := m.Allow(h, 1, clk.Now()); d != DecisionOK {
		t.Fatalf("after recovery: %v", d)
	}
}

func TestLeaseInvariantManyInstances(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	c := campaign("c", micros(20))
	c.DailyMicros = micros(15)
	var ms []*Manager
	for i := range 4 {
		ms = append(ms, newMemManager(t, st, fmt.Sprintf("i%d", i), clk, c))
	}
	for round := range 50 {
		for i, m := range ms {
			h := m.Handle("c")
			for k := range 20 {
				if m.Allow(h, 200_000, clk.Now()) != DecisionOK {
					break
				}
				id, ok := m.Hold(h, 200_000, clk.Now())
				if !ok {
					t.Fatal("hold after allow")
				}
				if k%2 == 0 {
					m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c",
						AuctionID: fmt.Sprintf("%d-%d-%d", round, i, k), ImpID: "1", BidMicros: 200_000, ClearingMicros: 150_000})
				}
			}
			m.ledger.flush(ctxT(t))
			m.syncAll(ctxT(t), clk.Now(), false)
			r, _ := st.Get(ctxT(t), "c")
			var sum int64
			for _, l := range r.Leases {
				sum += l.Amount
			}
			if r.SpentTotal+sum > c.TotalMicros || r.SpentDay+sum > c.DailyMicros {
				t.Fatalf("invariant broken: %+v", r)
			}
		}
		clk.Add(time.Second)
		for _, m := range ms {
			m.expireHolds(clk.Now().Add(time.Minute))
		}
	}
	for _, m := range ms {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := st.Get(ctxT(t), "c")
	if r.SpentDay > c.DailyMicros || r.SpentDay < c.DailyMicros-micros(1) || len(r.Leases) != 0 {
		t.Fatalf("final %+v", r)
	}
}

func TestDayRollover(t *testing.T) {
	clk := newManualClock(t0.Add(23 * time.Hour))
	st := NewMemStore()
	c := Campaign{ID: "c", DailyMicros: micros(2), TotalMicros: micros(3), Pacing: PacingASAP}
	m := newMemManager(t, st, "i1", clk, c)
	h := m.Handle("c")
	spend := func(n int) {
		for i := range n {
			m.syncAll(ctxT(t), clk.Now(), false)
			id, ok := m.Hold(h, micros(1), clk.Now())
			if !ok {
				t.Fatalf("hold %d refused", i)
			}
			m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: clk.Now().String(), ImpID: fmt.Sprint(i), BidMicros: micros(1), ClearingMicros: micros(1)})
		}
		m.ledger.flush(ctxT(t))
		m.syncAll(ctxT(t), clk.Now(), false)
	}
	spend(2)
	if d := m.Allow(h, 1, clk.Now()); d != DecisionBudgetExhausted {
		t.Fatalf("daily exhausted: %v", d)
	}
	clk.Add(2 * time.Hour) // next day
	m.syncAll(ctxT(t), clk.Now(), false)
	spend(1)
	if d := m.Allow(h, 1, clk.Now()); d != DecisionBudgetExhausted {
		t.Fatalf("total exhausted: %v", d)
	}
}

// expireIfFull keeps benchmarks from filling the hold table.
func (m *Manager) expireIfFull(h *Account) {
	if h.held.Load() > 1<<40 || m.holds.full.Load() > 0 {
		m.expireHolds(time.Unix(0, 1<<62))
		m.holds.full.Store(0)
	}
}

// releaseHold closes a hold the way an expiry does (benchmarks).
func (m *Manager) releaseHold(h *Account, id HoldID) {
	if amt, ok := m.holds.take(id, h.idx); ok {
		h.mu.Lock()
		h.held.Add(-amt)
		h.mu.Unlock()
	}
}

func TestLeaseTTLDefaultFollowsHoldTTL(t *testing.T) {
	m, err := New(Config{InstanceID: "a", Store: NewMemStore(), HoldTTL: 10 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.cfg.LeaseTTL <= m.cfg.HoldTTL+2*m.cfg.SyncPeriod {
		t.Fatalf("lease ttl %v", m.cfg.LeaseTTL)
	}
}

// A reload may change a campaign's budgets but not its currency: its spend,
// lease and open holds are counted in micros of the currency they were made
// in, and would silently be read in the new one (31,509 EUR micros spent
// shown, and paced, as GBP). The reload is refused; the running set stays.
func TestReloadRefusesCurrencyChange(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	eur := campaign("c", micros(100))
	eur.Currency = "EUR"
	m := newMemManager(t, NewMemStore(), "i1", clk, eur, campaign("d", micros(100)))
	h := m.Handle("c")
	if _, ok := m.Hold(h, 5000, clk.Now()); !ok {
		t.Fatal("hold refused")
	}
	gbp := eur
	gbp.Currency = "GBP"
	gbp.TotalMicros = micros(200)
	err := m.SetCampaigns([]Campaign{gbp, campaign("d", micros(300))})
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("currency EUR -> GBP: %v, want ErrBadConfig", err)
	}
	for _, st := range m.Status() {
		if st.ID == "c" && (st.Currency != "EUR" || st.TotalBudgetMicros != micros(100)) ||
			st.ID == "d" && st.TotalBudgetMicros != micros(100) {
			t.Fatalf("after the refused reload: %+v, want the running set", st)
		}
	}
	eur.TotalMicros = micros(200) // the same currency: budgets may change
	if err := m.SetCampaigns([]Campaign{eur, campaign("d", micros(300))}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns([]Campaign{campaign("d", micros(300))}); err != nil {
		t.Fatal(err) // c removed: its account stays (late notices), in EUR
	}
	if err := m.SetCampaigns([]Campaign{gbp, campaign("d", micros(300))}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("c back in GBP: %v, want ErrBadConfig", err)
	}
}

// The refusal above holds across a restart too: a record's spend is in the
// currency it was counted in, and a process started with the campaign in
// another currency took that spend for its own (2,500 USD micros read as
// 2,500 JPY micros, found by the red-team pass restarting a bidder with
// acme-broad-reach edited from USD to JPY). The record names its currency;
// an instance whose campaign names another gets no lease, so it never
// bids, but it reports what it charged for bids placed in the record's
// currency (the outside audit restarted a bidder with USD edited to EUR,
// billed 50 earlier bids, answered 200, and lost them at the next restart).
func TestRestartRefusesCurrencyChange(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	usd := campaign("c", micros(10))
	old := storeManager(t, mem, "a", clk, usd)
	h := old.Handle("c")
	id, ok := old.Hold(h, 500_000, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	old.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "x", ImpID: "1",
		BidMicros: 500_000, ClearingMicros: 400_000, Time: clk.Now()})
	late, ok := old.Hold(h, 300_000, clk.Now()) // its billing notice reaches the restarted process
	if !ok {
		t.Fatal("hold refused")
	}
	old.ledger.flush(ctxT(t))
	old.syncAll(ctxT(t), clk.Now(), false)
	old.Close(ctxT(t))
	if r, _ := mem.Get(ctxT(t), "c"); r.SpentTotal != 400_000 || r.Currency != "USD" {
		t.Fatalf("record before the restart: %+v, want 400000 spent in USD", r)
	}
	want := int64(400_000)
	for _, inst := range []string{"a", "b"} { // the same instance restarted, another one
		clk.Add(time.Second)
		jpy := usd
		jpy.Currency, jpy.TotalMicros = "JPY", micros(1500)
		m := storeManager(t, mem, inst, clk, jpy)
		hj := m.Handle("c")
		if inst == "a" {
			// A bid of the USD process billed after the restart: USD money,
			// charged and reported to the record although this process
			// bids nothing (it was answered 200; before, it lived only in
			// this process and was lost at its close).
			res, err := m.Settle(Notice{Kind: KindBill, HoldID: late, CampaignID: "c", InstanceID: "a", AuctionID: "y", ImpID: "1",
				BidMicros: 300_000, ClearingMicros: 300_000, Time: clk.Now()})
			if err != nil || res.ChargedMicros != 300_000 {
				t.Fatalf("bill of a USD bid after the restart: %+v, %v", res, err)
			}
			m.ledger.flush(ctxT(t))
			want += 300_000
		}
		for range 3 {
			m.Allow(hj, 1000, clk.Now()) // demand: a lease is wanted
			m.syncAll(ctxT(t), clk.Now(), false)
			clk.Add(time.Second)
		}
		if d := m.Allow(hj, 1000, clk.Now()); d == DecisionOK {
			t.Fatalf("%s: a JPY campaign over a USD record: Allow %v", inst, d)
		}
		if _, ok := m.Hold(hj, 1000, clk.Now()); ok {
			t.Fatalf("%s: a JPY campaign over a USD record got a hold", inst)
		}
		if r, _ := mem.Get(ctxT(t), "c"); r.SpentTotal != want || r.Currency != "USD" || r.Leases[inst].Amount != 0 {
			t.Fatalf("%s: record after the restart: %+v, want %d spent in USD and no lease", inst, r, want)
		}
		m.Close(ctxT(t))
		if r, _ := mem.Get(ctxT(t), "c"); r.SpentTotal != want || r.Leases[inst].Amount != 0 {
			t.Fatalf("%s: record after the close: %+v, want %d spent", inst, r, want)
		}
	}
}

// A campaign's file removed and the bidder restarted while notices of its
// bids were still due: the restarted manager knew no such campaign and
// refused them (ErrUnknownCampaign, retried by the exchange until the token
// expired), so the spend was never recorded (found by the fourth red-team
// pass). They are now charged to an inactive account built from the
// campaign's budget record, which reports them; it never bids, a campaign
// the store never saw stays unknown, and the campaign coming back takes its
// config (another currency is refused, as for any account).
func TestRestartWithoutCampaignStillCharges(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	gone := campaign("gone", micros(10))
	old := storeManager(t, mem, "a", clk, gone)
	id, ok := old.Hold(old.Handle("gone"), 500_000, clk.Now())
	if !ok {
		t.Fatal("hold refused")
	}
	old.syncAll(ctxT(t), clk.Now(), false) // the lease step writes the record (and its currency)
	old.Close(ctxT(t))
	clk.Add(time.Second)
	m := storeManager(t, mem, "a", clk, campaign("other", micros(10)))
	defer m.Close(ctxT(t))
	bill := Notice{Kind: KindBill, HoldID: id, CampaignID: "gone", InstanceID: "a", AuctionID: "x", ImpID: "1",
		BidMicros: 500_000, ClearingMicros: 400_000, Time: clk.Now()}
	res, err := m.Settle(bill)
	if err != nil || res.ChargedMicros != 400_000 {
		t.Fatalf("bill of a campaign removed before the restart: %+v, %v; want 400000 charged", res, err)
	}
	if res, err := m.Settle(bill); err != nil || !res.Duplicate {
		t.Fatalf("the same bill again: %+v, %v; want a duplicate", res, err)
	}
	m.ledger.flush(ctxT(t))
	m.syncAll(ctxT(t), clk.Now(), false)
	if r, _ := mem.Get(ctxT(t), "gone"); r.SpentTotal != 400_000 || r.Currency != "USD" {
		t.Fatalf("record after the bill: %+v, want 400000 spent in USD", r)
	}
	if d := m.Allow(m.Handle("gone"), 1000, clk.Now()); d == DecisionOK {
		t.Fatal("a campaign no config names may bid")
	}
	if c := m.Counters(); c.RetiredCampaigns != 1 {
		t.Errorf("retired campaigns %d, want 1", c.RetiredCampaigns)
	}
	// /admin/budget says it is retired, not a budget of one micro a day
	// (the account's placeholder: an outside audit).
	if st, ok := m.StatusOf("gone"); !ok || !st.Retired || st.DailyBudgetMicros != 0 || st.TotalBudgetMicros != 0 || st.SpentMicros != 400_000 {
		t.Errorf("status of the retired campaign: %+v (%v), want retired, budgets 0, 400000 spent", st, ok)
	}
	if st, _ := m.StatusOf("other"); st.Retired {
		t.Error("a configured campaign shows as retired")
	}
	never := bill
	never.CampaignID, never.AuctionID = "never", "y"
	if _, err := m.Settle(never); !errors.Is(err, ErrUnknownCampaign) {
		t.Fatalf("a campaign the store never saw: %v, want ErrUnknownCampaign", err)
	}
	jpy := gone
	jpy.Currency = "JPY"
	if err := m.SetCampaigns([]Campaign{jpy}); err == nil {
		t.Fatal("the campaign back in another currency was accepted")
	}
	if err := m.SetCampaigns([]Campaign{gone}); err != nil {
		t.Fatal(err)
	}
	if c := m.Handle("gone").campaign(); c.DailyMicros != gone.DailyMicros {
		t.Fatalf("the campaign back: daily %d, want its config's %d", c.DailyMicros, gone.DailyMicros)
	}
}

// A lease round that fails the same way every second (a campaign in another
// currency than its record fails until its file is fixed) is logged once a
// minute with the rounds left out, and at once when the error changes.
func TestSyncWarningOnceAMinute(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var w syncWarning
	same, other := errors.New("campaign c is in JPY"), errors.New("campaign d is in EUR")
	for i := range 61 {
		w.log(log, t0.Add(time.Duration(i)*time.Second), same, 1)
	}
	w.log(log, t0.Add(61*time.Second), other, 1)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "rounds_unlogged=0") ||
		!strings.Contains(lines[1], "JPY") || !strings.Contains(lines[1], "rounds_unlogged=59") ||
		!strings.Contains(lines[2], "EUR") {
		t.Fatalf("logged:\n%s", buf.String())
	}
}
