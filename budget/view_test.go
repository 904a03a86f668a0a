package budget

import (
	"context"
	"testing"
	"time"
)

// Each instance lists itself and the other, alive, with the leases both
// took; after a graceful close the other is listed as gone.
func TestPeersAndLeases(t *testing.T) {
	st := NewMemStore()
	clk := newManualClock(t0)
	a := newMemManager(t, st, "a", clk, campaign("c1", micros(100)), campaign("c2", micros(100)))
	b := newMemManager(t, st, "b", clk, campaign("c1", micros(100)))
	a.syncAll(ctxT(t), clk.Now(), false) // a sees b's record and heartbeat

	ps := a.Peers()
	if len(ps) != 2 || ps[0].Instance != "a" || !ps[0].Self || !ps[0].Alive || ps[1].Instance != "b" || ps[1].Self || !ps[1].Alive || ps[1].Boot != b.boot {
		t.Fatalf("peers of a: %+v", ps)
	}
	got := map[[2]string]int64{}
	for _, l := range a.Leases() {
		got[[2]string{l.Campaign, l.Instance}] = l.Amount
		if l.Currency != "USD" {
			t.Errorf("lease %+v: currency %q, want the campaign's USD", l, l.Currency)
		}
	}
	for _, k := range [][2]string{{"c1", "a"}, {"c2", "a"}, {"c1", "b"}} {
		if got[k] <= 0 {
			t.Errorf("lease %v not seen by a: %v", k, got)
		}
	}
	// b's liveness record gone (expired, say) while its lease on c1 is
	// still known: b is listed for its lease.
	a.live.mu.Lock()
	saved := a.live.others["b"]
	delete(a.live.others, "b")
	a.live.mu.Unlock()
	if ps := a.Peers(); len(ps) != 2 || ps[1].Instance != "b" || ps[1].Alive || ps[1].Self {
		t.Fatalf("peers of a with b known only by its lease: %+v", ps)
	}
	a.live.mu.Lock()
	a.live.others["b"] = saved
	a.live.mu.Unlock()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ps = a.Peers()
	if len(ps) != 2 || ps[1].Alive || !ps[1].Left {
		t.Fatalf("peers of a after b left: %+v", ps)
	}
}

// Even pacing plans a straight line over the campaign's local day; a
// forecast shapes it once one is learned.
func TestPacingPlan(t *testing.T) {
	clk := newManualClock(t0.Add(6 * time.Hour))
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	even := Campaign{ID: "even", DailyMicros: micros(24), TimeZone: tokyo}
	fc := Campaign{ID: "fc", DailyMicros: micros(24), Pacing: PacingForecast}
	m := newMemManager(t, NewMemStore(), "a", clk, even, fc)
	p, ok := m.PacingPlan("even", 5)
	if !ok || p.Mode != "even" || p.DailyMicros != micros(24) || len(p.Curve) != 5 {
		t.Fatalf("plan %+v %v", p, ok)
	}
	if p.DayEnd.Sub(p.DayStart) != 24*time.Hour || p.DayStart.Location() != tokyo || p.DayStart.Hour() != 0 {
		t.Fatalf("day %v to %v", p.DayStart, p.DayEnd)
	}
	for i, want := range []float64{0, 0.25, 0.5, 0.75, 1} {
		if p.Curve[i] != want {
			t.Fatalf("even curve %v", p.Curve)
		}
	}
	var w [1440]float64
	for i := 720; i < 1440; i++ { // all traffic in the UTC afternoon
		w[i] = 1
	}
	m.fc.setWeights(w)
	p, _ = m.PacingPlan("fc", 5)
	if p.Curve[1] > 1e-6 || p.Curve[2] > 1e-6 || p.Curve[3] < 0.49 || p.Curve[3] > 0.51 || p.Curve[4] != 1 {
		t.Fatalf("forecast curve %v", p.Curve)
	}
	if _, ok := m.PacingPlan("nope", 5); ok {
		t.Fatal("a plan for an unknown campaign")
	}
}

// A killed instance stays alive (its leases valid) until its last heartbeat
// expires, LeaseTTL later (5 min by default), but shows as silent once three
// sync periods pass without a heartbeat of it arriving; lapsed after that.
// Before, the status page and /metrics showed it alive for the whole LeaseTTL.
func TestPeerSilentAfterMissedHeartbeats(t *testing.T) {
	st := NewMemStore()
	clk := newManualClock(t0)
	a := newMemManager(t, st, "a", clk, campaign("c1", micros(100)))
	b := newMemManager(t, st, "b", clk, campaign("c1", micros(100)))
	round := func(ms ...*Manager) {
		clk.Add(a.cfg.SyncPeriod)
		for _, m := range ms {
			m.syncAll(ctxT(t), clk.Now(), false)
		}
	}
	peerB := func() Peer {
		t.Helper()
		for _, p := range a.Peers() {
			if p.Instance == "b" {
				return p
			}
		}
		t.Fatalf("b not among a's peers: %+v", a.Peers())
		return Peer{}
	}
	for range 5 {
		round(a, b)
	}
	if p, c := peerB(), a.Counters(); !p.Alive || p.Silent || p.Heartbeat.IsZero() || c.PeersAlive != 1 || c.PeersSilent != 0 {
		t.Fatalf("b heartbeating: %+v, alive %d silent %d", p, c.PeersAlive, c.PeersSilent)
	}
	killed := clk.Now() // b stops: no rounds, no close
	for range silentPeriods {
		round(a)
	}
	if p := peerB(); !p.Alive || p.Silent {
		t.Fatalf("b after %v without a heartbeat (%d sync periods): %+v", clk.Now().Sub(killed), silentPeriods, p)
	}
	round(a)
	if p, c := peerB(), a.Counters(); !p.Alive || !p.Silent || c.PeersAlive != 0 || c.PeersSilent != 1 {
		t.Fatalf("b %v after it stopped: %+v, alive %d silent %d", clk.Now().Sub(killed), p, c.PeersAlive, c.PeersSilent)
	}
	for clk.Now().Before(killed.Add(a.cfg.LeaseTTL + a.cfg.ReclaimWait + a.cfg.SyncPeriod)) {
		round(a)
	}
	if p, c := peerB(), a.Counters(); p.Alive || p.Silent || c.PeersSilent != 0 {
		t.Fatalf("b after its heartbeat expired: %+v, silent %d", p, c.PeersSilent)
	}
}

// StatusOf is the campaign's entry of Status, and false where Status has
// none: an unknown campaign, or a removed one with no money left.
func TestStatusOfIsStatusEntry(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c1", micros(100)), campaign("c2", micros(100)), campaign("c3", micros(100)))
	if _, ok := m.Hold(m.Handle("c1"), 5000, clk.Now()); !ok {
		t.Fatal("hold refused")
	}
	c3 := m.Handle("c3")
	if err := m.SetCampaigns([]Campaign{campaign("c1", micros(100)), campaign("c2", micros(100))}); err != nil {
		t.Fatal(err)
	}
	c3.lease.Store(0) // removed and its lease given back: nothing left
	all := m.Status()
	listed := map[string]bool{}
	for _, want := range all {
		listed[want.ID] = true
		if got, ok := m.StatusOf(want.ID); !ok || got != want {
			t.Errorf("StatusOf(%q) = %+v, %v; Status has %+v", want.ID, got, ok, want)
		}
	}
	if !listed["c1"] || !listed["c2"] || listed["c3"] {
		t.Fatalf("Status lists %v: want c1 and c2, not c3 (removed, no money)", listed)
	}
	for _, id := range []string{"c3", "nope"} {
		if got, ok := m.StatusOf(id); ok {
			t.Errorf("StatusOf(%q) = %+v, true; Status has no entry", id, got)
		}
	}
}
