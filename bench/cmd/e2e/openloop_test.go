package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Due times come from the request's index, so a late send never shifts the
// schedule of the later ones.
func TestDueAt(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, c := range []struct {
		rate float64
		i    int64
		want time.Duration
	}{{1000, 0, 0}, {1000, 1, time.Millisecond}, {1000, 2500, 2500 * time.Millisecond}, {3000, 3, time.Millisecond}, {0.5, 3, 6 * time.Second}} {
		if got := dueAt(start, c.rate, c.i).Sub(start); got != c.want {
			t.Errorf("rate %v, request %d: due after %v, want %v", c.rate, c.i, got, c.want)
		}
	}
}

// A request's latency runs from its due time, however late it was sent;
// the time from the send and the send delay are kept apart.
func TestRecordFromSchedule(t *testing.T) {
	r := newRecorder()
	due := time.Unix(1000, 0)
	r.record(due, due.Add(40*time.Millisecond), due.Add(41*time.Millisecond), 200, nil)
	r.record(due, due, due.Add(500*time.Microsecond), 204, nil)
	r.record(due, due, due.Add(time.Second), 0, errors.New("timeout"))
	r.record(due, due, due.Add(time.Millisecond), 400, nil)
	if r.ok != 1 || r.noBid != 1 || r.errors != 1 || r.other != 1 {
		t.Errorf("counts %d %d %d %d", r.ok, r.noBid, r.errors, r.other)
	}
	lat, svc, delay := summary(r.lat), summary(r.svc), summary(r.delay)
	// From the schedule: 0.5, 1, 41 and 1000 ms; the late-sent request
	// counts 41 ms, not the 1 ms it took once sent.
	if p75 := r.lat.ValueAtQuantile(75); lat.Max < 999_000 || p75 < 40_900 || p75 > 41_100 {
		t.Errorf("latency from schedule %+v, p75 %d us", lat, p75)
	}
	if delay.Max < 39_900 || delay.Max > 40_100 {
		t.Errorf("send delay %+v", delay)
	}
	if svc.P50 > 1010 { // 0.5, 1, 1, 1000 ms
		t.Errorf("latency from send %+v", svc)
	}
}

// The server stalls on the first request for 30 ms; with one connection the
// requests due meanwhile wait. Counted from their due time, at least the ten
// due in the first 10 ms took 20 ms or more; nothing is dropped and the
// schedule is not stretched. (Only lower bounds are asserted: a slow
// machine can only make the waits longer.)
func TestOpenLoopCountsTheStall(t *testing.T) {
	var n atomic.Int64
	do := func() (int, error) {
		if n.Add(1) == 1 {
			time.Sleep(30 * time.Millisecond) // the server's stall
		}
		return 200, nil
	}
	res, err := runOpenLoop(openLoopConfig{Rate: 1000, Duration: 50 * time.Millisecond, Conns: 1, Expire: time.Second}, do)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheduled != 50 || res.Answered != 50 || res.OK != 50 || n.Load() != 50 {
		t.Fatalf("scheduled %d answered %d ok %d sent %d, want 50 each", res.Scheduled, res.Answered, res.OK, n.Load())
	}
	if res.Latency.Max < 30_000 {
		t.Errorf("the stalled request's latency %v us, want at least 30 ms", res.Latency.Max)
	}
	// Requests 1..19 were due at 1..19 ms and could not leave before 30 ms:
	// with request 0, at least 20 answered more than 10 ms after they were
	// due. From the actual send only the first took that long: a client
	// counting from there would report one slow request.
	if res.Over10ms < 20 {
		t.Errorf("%d requests over 10 ms from their due time, want at least 20", res.Over10ms)
	}
	if res.SendDelay.Max < 19_000 {
		t.Errorf("send delay max %v us, want at least 19 ms (request 19 waited from 19 ms to 30 ms or later)", res.SendDelay.Max)
	}
}

func TestOpenLoopConfig(t *testing.T) {
	do := func() (int, error) { return 204, nil }
	for _, c := range []openLoopConfig{
		{Rate: 0, Duration: time.Second, Conns: 1, Expire: time.Second},
		{Rate: 10, Duration: 0, Conns: 1, Expire: time.Second},
		{Rate: 10, Duration: time.Second, Conns: 0, Expire: time.Second},
		{Rate: 0.5, Duration: time.Second, Conns: 1, Expire: time.Second}, // schedules nothing
	} {
		if _, err := runOpenLoop(c, do); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestErrKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fasthttp.ErrTimeout, "timeout"},
		{fmt.Errorf("do: %w", fasthttp.ErrNoFreeConns), "no free connection"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "connection refused"},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "connection reset"},
		{errExpired, "not sent in time"},
		{errors.New("other"), "*errors.errorString"},
	} {
		if got := errKind(c.err); got != c.want {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}

// A request not yet sent Expire after its due time is dropped, not sent: it
// counts as an error, and the sent ones are never abandoned.
func TestOpenLoopExpires(t *testing.T) {
	var n atomic.Int64
	do := func() (int, error) {
		if n.Add(1) == 1 {
			time.Sleep(40 * time.Millisecond) // the server's stall
		}
		return 200, nil
	}
	res, err := runOpenLoop(openLoopConfig{Rate: 1000, Duration: 50 * time.Millisecond, Conns: 1, Expire: 10 * time.Millisecond}, do)
	if err != nil {
		t.Fatal(err)
	}
	// Requests 1..29 were due at 1..29 ms and could not leave before 40 ms.
	if res.Errors < 29 || res.ErrorKinds["not sent in time"] != res.Errors {
		t.Errorf("%d errors %v, want at least 29, all unsent", res.Errors, res.ErrorKinds)
	}
	if n.Load()+res.Errors != res.Scheduled || res.OK != n.Load() {
		t.Errorf("sent %d + dropped %d != scheduled %d (ok %d)", n.Load(), res.Errors, res.Scheduled, res.OK)
	}
}

// floorSteps sends the trivial server one step at the rate of each of the
// bidder's ladder steps, and none for the baseline's.
func TestFloorSteps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }}
	go func() { _ = s.Serve(ln) }()
	defer s.Shutdown()
	h := &harness{o: &options{duration: 300 * time.Millisecond, olConns: 4, serverCPU: "0", loadCPU: "0"}, out: io.Discard,
		pinned: true, body: []byte(`{}`)}
	servers := []serverRun{
		{Name: "bidder", Campaigns: 1000, Ladder: []ladderStep{{Fraction: 0.1, Client: openLoopResult{Rate: 100}}, {Fraction: 0.5, Client: openLoopResult{Rate: 400}}}},
		{Name: "baseline", Campaigns: 1000, Ladder: []ladderStep{{Fraction: 0.5, Client: openLoopResult{Rate: 300}}}},
	}
	got, err := h.floorSteps(context.Background(), ln.Addr().String(), os.Getpid(), servers)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d steps, want 2: %+v", len(got), got)
	}
	for i, want := range []struct{ f, rate float64 }{{0.1, 100}, {0.5, 400}} {
		st := got[i]
		c := st.Client
		if st.Campaigns != 1000 || st.Fraction != want.f || c.Rate != want.rate {
			t.Errorf("step %d: %d campaigns, %v, %v req/s; want 1000, %v, %v", i, st.Campaigns, st.Fraction, c.Rate, want.f, want.rate)
		}
		if c.Answered != c.Scheduled || c.NoBid != c.Scheduled || c.Errors != 0 {
			t.Errorf("step %d: %d scheduled, %d answered, %d 204, %d errors", i, c.Scheduled, c.Answered, c.NoBid, c.Errors)
		}
		if st.ServerCPU < 0 || st.ServerCoreBusy < 0 || st.ServerCoreBusy > 1 || st.LoadCoreBusy > 1 {
			t.Errorf("step %d: CPU %+v", i, st.stepCPU)
		}
	}
}
