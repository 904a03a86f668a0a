package budget

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A store outage inside a valid lease keeps the instance ready (degraded);
// a lease expired or used up while cut off turns it not ready (fail closed).
// Readiness agrees with Health throughout.
func TestHealthDegradedThenFailClosed(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", micros(100)))
	h := m.Handle("c")
	// Readiness (what /readyz and the degraded gauge read) says what Health
	// says, in every state.
	health := func() Health {
		t.Helper()
		hs := m.Health()
		if ready, degraded, why := m.Readiness(); ready != hs.Ready || degraded != hs.Degraded || why != hs.Reason {
			t.Fatalf("Readiness %v %v %q, Health %+v", ready, degraded, why, hs)
		}
		return hs
	}
	if hs := health(); !hs.Ready || hs.Degraded || hs.LeasedCampaigns != 1 {
		t.Fatalf("connected with a lease: %+v", hs)
	}
	// Cut off, as syncAll marks it when the store does not answer.
	m.connected.Store(false)
	m.setReason("budget store unreachable")
	hs := health()
	if !hs.Ready || !hs.Degraded || !strings.Contains(hs.Reason, "unreachable") {
		t.Fatalf("cut off inside a valid lease: %+v, want ready and degraded", hs)
	}
	// Used up: holds fill the lease.
	var ids []HoldID
	for {
		id, ok := m.Hold(h, 100_000, clk.Now())
		if !ok {
			break
		}
		ids = append(ids, id)
	}
	if hs := health(); hs.Ready || hs.Degraded || !strings.Contains(hs.Reason, "fail closed") {
		t.Fatalf("lease used up while cut off: %+v, want not ready (fail closed)", hs)
	}
	for _, id := range ids {
		m.Unhold(h, id)
	}
	if hs := health(); !hs.Ready || !hs.Degraded {
		t.Fatalf("room again: %+v", hs)
	}
	// Expired: the lease's validity ends.
	clk.Add(m.cfg.LeaseTTL)
	if hs := health(); hs.Ready || !strings.Contains(hs.Reason, "fail closed") {
		t.Fatalf("lease expired while cut off: %+v, want not ready", hs)
	}
	m.connected.Store(true)
	if hs := health(); !hs.Ready || hs.Degraded {
		t.Fatalf("reconnected: %+v", hs)
	}
	m.Close(context.Background())
	if hs := health(); hs.Ready || hs.Reason != "closed" {
		t.Fatalf("closed: %+v", hs)
	}
}

// The same over a real NATS server that goes away.
func TestHealthNATSBlip(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	m, err := New(Config{
		InstanceID: "blip", URLs: []string{srv.ClientURL()},
		HoldTTL: 300 * time.Millisecond, LeaseTTL: 6 * time.Second, SyncPeriod: 100 * time.Millisecond,
		MinLease: 50_000, MaxLease: 2_000_000, MaxHolds: 1 << 12,
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if err := m.SetCampaigns([]Campaign{campaign("c", micros(10))}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	h := m.Handle("c")
	waitForLease(t, m, h, 10_000)
	srv.Shutdown()
	srv.WaitForShutdown()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if hs := m.Health(); !hs.Ready || !hs.Degraded {
			return fmt.Errorf("health %+v, want ready and degraded", hs)
		}
		return nil
	})
	checkFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		if hs := m.Health(); hs.Ready {
			return fmt.Errorf("health %+v, want fail closed once the lease lapses", hs)
		}
		return nil
	})
}

func TestUnhold(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", micros(100)))
	h := m.Handle("c")
	id, ok := m.Hold(h, 2000, clk.Now())
	if !ok || h.held.Load() != 2000 {
		t.Fatalf("hold: %v held %d", ok, h.held.Load())
	}
	m.Unhold(h, id)
	if h.held.Load() != 0 {
		t.Fatalf("after Unhold: held %d", h.held.Load())
	}
	// Twice, a zero id, a nil handle, another campaign's id: nothing moves.
	id2, _ := m.Hold(h, 3000, clk.Now())
	m.Unhold(h, id)
	m.Unhold(h, 0)
	m.Unhold(nil, id2)
	if h.held.Load() != 3000 {
		t.Fatalf("a stale Unhold released someone else's hold: held %d", h.held.Load())
	}
	// A notice for the withdrawn bid (none should come) is charged late,
	// never releasing a hold twice.
	res, err := m.Settle(Notice{Kind: KindBill, HoldID: id, CampaignID: "c", AuctionID: "a", ImpID: "1", BidMicros: 2000, ClearingMicros: 1500})
	if err != nil || !res.Late || h.held.Load() != 3000 {
		t.Fatalf("notice after Unhold: %+v %v held %d", res, err, h.held.Load())
	}
}
