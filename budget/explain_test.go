package budget

import (
	"testing"
	"time"
)

// accountState is what Allow may change and Explain must not.
type accountState struct {
	draws                  uint64
	demand, reserved, held int64
	lease, spent           int64
	throttle               uint64
}

func stateOf(h *Account) accountState {
	if h == nil {
		return accountState{}
	}
	return accountState{draws: h.draws.Load(), demand: h.demand.Load(), reserved: h.reserved.Load(), held: h.held.Load(),
		lease: h.lease.Load(), spent: h.spent.Load(), throttle: h.throttle.Load()}
}

// Explain answers what Allow answers, and changes nothing.
func TestExplainAgreesWithAllowWithoutSideEffects(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := Campaign{ID: "c", Currency: "USD", DailyMicros: micros(100), Pacing: PacingEven}
	late := Campaign{ID: "late", Currency: "USD", DailyMicros: micros(100), Start: t0.Add(5 * time.Hour)}
	m := newMemManager(t, NewMemStore(), "i1", clk, c, late)
	h := m.Handle("c")
	now := clk.Now()
	check := func(name string, h *Account, amount int64, want Decision) {
		t.Helper()
		before := stateOf(h)
		for range 3 {
			if e := m.Explain(h, amount, now); e.Decision != want {
				t.Errorf("%s: explain %v, want %v (%+v)", name, e.Decision, want, e)
			}
		}
		if after := stateOf(h); after != before {
			t.Errorf("%s: explain changed the account: %+v -> %+v", name, before, after)
		}
		if got := m.Allow(h, amount, now); got != want {
			t.Errorf("%s: allow %v, explain said %v", name, got, want)
		}
	}
	check("unknown", nil, 1, DecisionUnknown)
	check("before its flight", m.Handle("late"), 1, DecisionFlight)
	check("within the lease", h, 1000, DecisionOK)
	check("beyond the lease", h, h.lease.Load()+1, DecisionNoLease)
	// Pacing: the draw the next bid takes, for several participation levels.
	for _, p := range []float64{0, 0.3, 0.7} {
		h.throttle.Store(probToThreshold(p))
		for range 20 {
			e := m.Explain(h, 1000, now)
			if e.Participation != throttleProb(probToThreshold(p)) {
				t.Fatalf("participation %v, want %v", e.Participation, p)
			}
			check("paced", h, 1000, e.Decision)
		}
	}
	if e := m.Explain(h, 1000, now); e.PacingMode != "even" || e.DailyMicros != micros(100) || e.LeaseMicros != h.lease.Load() {
		t.Errorf("explanation %+v", e)
	}
}

// AllowDraw takes one participation draw per request, whatever the number
// of calls (creatives and imps) for it, so a campaign takes part in a share
// p of requests; ExplainDraw reads that request's draw (an outside audit:
// one draw per call made a campaign with three candidates a request take
// part in 1-(1-p)^3 of them, and /admin/explain disagreed with the bid).
func TestAllowDrawOncePerRequest(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := Campaign{ID: "c", Currency: "USD", DailyMicros: micros(100), Pacing: PacingEven}
	m := newMemManager(t, NewMemStore(), "i1", clk, c)
	h := m.Handle("c")
	now := clk.Now()
	const p, n = 0.3, 4000
	h.throttle.Store(probToThreshold(p))
	took := 0
	for req := uint64(1); req <= n; req++ {
		e := m.ExplainDraw(h, 1000, now, req)
		first := m.AllowDraw(h, 1000, now, req)
		if first != e.Decision {
			t.Fatalf("request %d: explain %v, allow %v", req, e.Decision, first)
		}
		for range 2 {
			if d := m.AllowDraw(h, 1000, now, req); d != first {
				t.Fatalf("request %d: a second candidate drew %v after %v", req, d, first)
			}
		}
		if first == DecisionOK {
			took++
		}
	}
	if share := float64(took) / n; share < p-0.04 || share > p+0.04 {
		t.Errorf("took part in %.3f of requests with 3 candidates each, want about %.2f (1-(1-p)^3 = %.3f)", share, p, 1-(1-p)*(1-p)*(1-p))
	}
}
