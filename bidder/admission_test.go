package bidder

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/budget"
)

// The limiter on a synthetic clock: it starts at max; a single window with
// more than 5% of admitted requests over the target (a stall) does not cut,
// a second one in a row cuts (by target/mean latency, at most a quarter,
// half past 25%), and so on per window while it lasts, never below min; it
// grows by a quarter while the limit is in use and the target met, never
// above max; and it sheds a request that finds inflight + wait x rate at the
// limit.
func TestAdmissionLimiter(t *testing.T) {
	a := newAdmission(AdmissionConfig{MinLimit: 4, MaxLimit: 64, Target: 4 * time.Millisecond})
	at := func(d time.Duration) time.Time { return a.base.Add(d) }
	clock := time.Duration(0)
	// run sends n requests of the given latency (under admissionWindow, so
	// that no answer rolls the window early), with inflight inside at once
	// when each arrives; roll closes the window.
	run := func(n int, lat time.Duration, inflight int) {
		t.Helper()
		for i := range n {
			arr := at(clock + time.Duration(i))
			held := 0
			for ; held < inflight-1; held++ {
				if !a.admit(arr, arr) {
					break
				}
			}
			if !a.admit(arr, arr) {
				t.Fatalf("request %d refused at limit %v", i, a.load())
			}
			a.finish(true, arr, arr.Add(lat))
			a.inflight.Add(int64(-held))
		}
	}
	roll := func() {
		clock += admissionWindow
		a.finish(false, at(clock), at(clock))
	}
	window := func(n int, lat time.Duration, inflight int) { run(n, lat, inflight); roll() }
	if a.load() != 64 {
		t.Fatalf("starts at %v, want max 64", a.load())
	}
	step := func(fine, late int, lateLat time.Duration, inflight int, want float64) {
		t.Helper()
		run(fine, time.Millisecond, inflight)
		run(late, lateLat, inflight)
		roll()
		if math.Abs(a.load()-want) > 1e-9 {
			t.Fatalf("after a window with %d of %d at %v: limit %v, want %v", late, fine+late, lateLat, a.load(), want)
		}
	}
	step(96, 4, 10*time.Millisecond, 1, 64)   // 4% over (a stall, not a queue): holds
	step(90, 10, 10*time.Millisecond, 1, 64)  // 10% over once: a stall, holds
	step(96, 4, 10*time.Millisecond, 1, 64)   // fine again: holds
	step(0, 100, 40*time.Millisecond, 1, 64)  // all over once (a 40 ms stall): holds
	step(90, 10, 10*time.Millisecond, 1, 48)  // over a second window in a row, mean 1.9 ms: a quarter off
	step(0, 100, 5*time.Millisecond, 1, 24)   // all over, mean 5 ms: half off
	step(0, 100, 10*time.Millisecond, 1, 9.6) // all over, mean 10 ms: x target/mean = 0.4
	step(0, 100, 40*time.Millisecond, 1, 4)   // mean 40 ms: x 0.1 (0.96), min 4
	step(97, 3, 10*time.Millisecond, 3, 4)    // in use, 3% over: holds
	step(99, 1, 10*time.Millisecond, 3, 5)    // in use, 1% over: grows by a quarter (at least 1)
	for range 20 {
		window(100, 10*time.Millisecond, 1)
	}
	if a.load() != 4 {
		t.Fatalf("after many windows over the target: %v, want min 4", a.load())
	}
	step(100, 0, 0, 1, 4) // on target, the limit unused: holds
	// In use (half the limit inside) and the target met: it grows.
	window(100, time.Millisecond, 3)
	if a.load() != 5 {
		t.Fatalf("in use and on target: %v, want 5", a.load())
	}
	for range 200 {
		window(100, time.Millisecond, int(a.load()/2)+2)
	}
	if a.load() != 64 {
		t.Fatalf("grew to %v, want max 64", a.load())
	}
	// A standing queue: a window where every request waited 50 ms (100
	// admitted + 1 roll per 50 ms: ~2020/s). A request that waited 50 ms
	// then has ~100 ahead of it: shed at limit 64; one that waited 10 ms has
	// ~20: admitted.
	for i := range 100 {
		arr := at(clock + time.Duration(i))
		if !a.admit(arr.Add(-50*time.Millisecond), arr) {
			t.Fatalf("request %d shed before the queue was seen", i)
		}
		a.finish(true, arr, arr.Add(time.Millisecond))
	}
	roll()
	now := at(clock + time.Millisecond)
	if a.admit(now.Add(-50*time.Millisecond), now) {
		t.Fatal("admitted a request with ~100 queued ahead at limit 64")
	}
	if !a.admit(now.Add(-10*time.Millisecond), now) {
		t.Fatal("shed a request with ~20 queued ahead at limit 64")
	}
	a.finish(true, now, now)
	// A stall is not a queue: in a window where most requests waited 40 ms
	// but one did not, a request that waited 40 ms is admitted.
	for i := range 99 {
		arr := at(clock + time.Duration(i))
		a.admit(arr.Add(-40*time.Millisecond), arr)
		a.finish(true, arr, arr.Add(time.Millisecond))
	}
	arr := at(clock + 100)
	a.admit(arr, arr)
	a.finish(true, arr, arr.Add(time.Millisecond))
	roll()
	now = at(clock + time.Millisecond)
	if !a.admit(now.Add(-40*time.Millisecond), now) {
		t.Fatal("shed after a stall with no standing queue")
	}
	a.finish(true, now, now)
	// Off: everything is admitted.
	off := newAdmission(AdmissionConfig{Disable: true, MinLimit: 1, MaxLimit: 1, Target: time.Millisecond})
	off.inflight.Store(100)
	if !off.admit(now.Add(-time.Hour), now) {
		t.Fatal("admission off shed a request")
	}
}

// A request finding the limit reached is answered 204 overload before any
// work, and counted; notices and health are never shed.
func TestShedOverload(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.Admission = AdmissionConfig{MinLimit: 1, MaxLimit: 1} })
	site := readReq(t, "site-banner.json")
	if r := ts.bid(site); r.StatusCode() != 200 {
		t.Fatalf("under the limit: %d", r.StatusCode())
	}
	ts.adm.inflight.Store(1) // one request inside: the limit of 1 is reached
	r := ts.bid(site)
	if r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != "overload" {
		t.Fatalf("at the limit: %d %q, want 204 overload", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	if len(ts.money.holds) != 1 {
		t.Fatalf("the shed request placed holds: %v", ts.money.holds)
	}
	if r := ts.do("GET", "/readyz", nil); r.StatusCode() != 200 {
		t.Fatalf("readyz shed: %d", r.StatusCode())
	}
	if r := ts.do("GET", "/notice/bill?t=AAAA&p=1", nil); r.StatusCode() != 403 {
		t.Fatalf("a notice was shed: %d", r.StatusCode())
	}
	page := metricsPage(t, ts.Server)
	for _, want := range []string{`openbidder_nobids_total{reason="overload"} 1`, "openbidder_admission_limit 1", "openbidder_admission_inflight 1", "openbidder_shed_duration_seconds_count 1"} {
		if !strings.Contains(page, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// lateScorer answers after the deadline has passed (a stalled model, a
// descheduled request).
type lateScorer struct{ fixedScorer }

func (l *lateScorer) Score(deadline time.Time, rows, out []float32) error {
	for time.Now().Before(deadline) {
		time.Sleep(time.Until(deadline))
	}
	for i := range out {
		out[i] = l.p
	}
	return nil
}

// A bid ready after its deadline is not sent: 204 late, and its holds are
// released (fake money records them; the real budget shows held 0). It is
// not counted as a bid, in openbidder_bids_total or its campaign's bids
// (an outside audit found both counted it).
func TestLateBidWithdrawn(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.InternalBudget = 20 * time.Millisecond })
	ts.SetScorer(&lateScorer{fixedScorer{p: 0.02}})
	r := ts.bid(readReq(t, "multi-imp.json"))
	if r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != "late" {
		t.Fatalf("late bid: %d %q, want 204 late", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	if len(ts.money.holds) == 0 || len(ts.money.unholds) != len(ts.money.holds) {
		t.Fatalf("holds %v, released %v: every hold of a withdrawn bid must be released", ts.money.holds, ts.money.unholds)
	}
	for i, id := range ts.money.unholds {
		if id != uint64(i+1) {
			t.Fatalf("released %v, want ids 1..%d", ts.money.unholds, len(ts.money.holds))
		}
	}
	if n := ts.m.bidsPlaced.load(); n != 0 {
		t.Fatalf("bids_total %d after a withdrawn bid, want 0", n)
	}
	for _, st := range ts.catalog.Load().stats {
		if n := st.field(0); n != 0 {
			t.Fatalf("a campaign counts %d bids after a withdrawn bid, want 0", n)
		}
	}
	ts.SetScorer(&fixedScorer{p: 0.02})
	if r := ts.bid(readReq(t, "multi-imp.json")); r.StatusCode() != 200 || ts.m.bidsPlaced.load() == 0 {
		t.Fatalf("on time: %d, bids_total %d", r.StatusCode(), ts.m.bidsPlaced.load())
	}

	s, m := budgetTestServer(t)
	// Room for the on-time bid on a loaded machine under -race (the late
	// scorer waits for whatever deadline there is).
	s.cfg.Limits.InternalBudget = 250 * time.Millisecond
	rs := &testServer{Server: s}
	site := readReq(t, "site-banner.json")
	if r := rs.bid(site); r.StatusCode() != 200 || heldMicros(m) == 0 {
		t.Fatalf("on time: %d, held %d", r.StatusCode(), heldMicros(m))
	}
	before := heldMicros(m)
	s.SetScorer(&lateScorer{fixedScorer{p: 0.02}})
	if r := rs.bid(site); r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != "late" {
		t.Fatalf("late through the real budget: %d %q", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	if got := heldMicros(m); got != before {
		t.Fatalf("held %d after a withdrawn bid, want %d (its hold released)", got, before)
	}
}

func heldMicros(m *budget.Manager) int64 {
	var n int64
	for _, c := range m.Status() {
		n += c.HeldMicros
	}
	return n
}
