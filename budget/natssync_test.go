package budget

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsManualManager is a Manager on NATS whose rounds the test drives.
func natsManualManager(t *testing.T, inst string, srv *server.Server, clk Clock, cs []Campaign) *Manager {
	t.Helper()
	m, err := New(Config{InstanceID: inst, URLs: []string{srv.ClientURL()}, Clock: clk, manual: true, probeWait: 20 * time.Millisecond,
		MinLease: micros(1), MaxLease: micros(10)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// Two instances with many idle campaigns on a real server: after the first
// rounds, a round costs each instance its heartbeat (a publish and its ack),
// not a message per campaign.
func TestNATSIdleCampaignsNoTraffic(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown) // after the managers' Close (cleanups run last first)
	clk := newManualClock(time.Now())
	cs := manyCampaigns(300, micros(100))
	ms := []*Manager{natsManualManager(t, "a", srv, clk, cs), natsManualManager(t, "b", srv, clk, cs)}
	round := func() {
		clk.Add(time.Second)
		for _, m := range ms {
			m.syncAll(ctxT(t), clk.Now(), false)
			m.tick(clk.Now())
		}
	}
	for range 40 { // first leases, then the headroom given back
		round()
	}
	steps := ms[0].steps.Load() + ms[1].steps.Load()
	v0, _ := srv.Varz(&server.VarzOptions{})
	const rounds = 30
	for range rounds {
		round()
	}
	v1, _ := srv.Varz(&server.VarzOptions{})
	if got := ms[0].steps.Load() + ms[1].steps.Load() - steps; got != 0 {
		t.Errorf("%d lease steps in %d idle rounds", got, rounds)
	}
	// Per round and instance: the heartbeat publish; a few more for the
	// watches' flow control and idle heartbeats.
	if in := v1.InMsgs - v0.InMsgs; in > 2*rounds+20 {
		t.Errorf("%d messages into the server in %d idle rounds of 2 x %d campaigns", in, rounds, len(cs))
	}
	for _, m := range ms {
		if ok, why := m.Ready(); !ok {
			t.Errorf("%s not ready: %s", m.cfg.InstanceID, why)
		}
	}
}

// Three managers on a 3-node cluster; one is killed mid-load (no flush, no
// lease return). Its lease returns to the pool once its heartbeat lapses, the
// others spend it, and the bound holds: the ledger exceeds the budget by late
// charges at most. What the killed process had charged (acknowledged by the
// ledger) but not yet reported moves into the record when its lease is
// reclaimed (the crash gap), so the record equals the ledger.
func TestClusterCrashedManagerLeaseReclaimed(t *testing.T) {
	srvs := startCluster(t, 3)
	var urls []string
	for _, s := range srvs {
		urls = append(urls, s.ClientURL())
	}
	const budget = 3_000_000
	c := campaign("c", budget)
	var ms []*Manager
	for i := range 3 {
		ms = append(ms, natsManager(t, fmt.Sprintf("m%d", i), []string{urls[i]}, nil, 3, c))
	}
	var (
		crashed   atomic.Bool
		exhausted atomic.Int64
		wg        sync.WaitGroup
	)
	minStop, hardStop := time.Now().Add(3500*time.Millisecond), time.Now().Add(20*time.Second)
	for mi := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(mi), 5))
			m, h := ms[mi], ms[mi].Handle("c")
			for k := 0; time.Now().Before(hardStop) && (time.Now().Before(minStop) || exhausted.Load() == 0); k++ {
				if mi == 2 && crashed.Load() {
					return
				}
				time.Sleep(time.Millisecond) // the traffic rate, not a wait for state
				price, now := int64(1000+rng.IntN(4000)), time.Now()
				if d := m.Allow(h, price, now); d != DecisionOK {
					if d == DecisionBudgetExhausted && mi != 2 {
						exhausted.Add(1)
					}
					continue
				}
				id, ok := m.Hold(h, price, now)
				if !ok {
					continue
				}
				n := Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c",
					AuctionID: fmt.Sprintf("m%d-%d", mi, k), ImpID: "1", BidMicros: price, ClearingMicros: price * 9 / 10}
				if rng.IntN(2) == 0 {
					n.Kind = KindLoss
				}
				m.Settle(n)
			}
		}()
	}
	time.Sleep(time.Second) // load runs before the fault; the assertions below poll
	crashed.Store(true)
	ms[2].crash()
	unreported := ms[2].Handle("c").spent.Load()
	checkFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if l := getRecord(t, urls[0], "c").Leases["m2"]; !l.Reclaimed && l.Amount != 0 {
			return fmt.Errorf("m2's lease still there: %+v", l)
		}
		return nil
	})
	wg.Wait()
	for _, m := range ms[:2] {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := m.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		cancel()
	}
	var late, ledger int64
	for _, m := range ms {
		late += int64(m.Counters().LateMicros)
	}
	for _, e := range readLedger(t, urls[0]) {
		ledger += e.Charged
	}
	r := getRecord(t, urls[0], "c")
	t.Logf("ledger %d, record %d, late %d, m2 unreported at the kill %d, budget %d", ledger, r.SpentTotal, late, unreported, budget)
	if exhausted.Load() == 0 {
		t.Errorf("the pool never ran dry: the bound was not stressed")
	}
	if r.SpentTotal != ledger {
		t.Errorf("record %d != ledger %d (m2 had %d unreported at the kill)", r.SpentTotal, ledger, unreported)
	}
	if ledger > budget+late {
		t.Errorf("bound broken: ledger %d > budget %d + late %d", ledger, budget, late)
	}
	if left := leasesBeyondHolds(r, ms[:2]...); len(left) > 0 {
		t.Errorf("leases left after close: %v", left)
	}
}

// The watch resumes after the server restarts: another instance's spend
// reaches this one again without a step of its own.
func TestNATSWatchResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, -1)
	url := srv.ClientURL()
	var port int
	fmt.Sscan(url[len("nats://127.0.0.1:"):], &port)
	c := campaign("c", micros(100))
	a := natsManager(t, "a", []string{url}, nil, 1, c)
	b := natsManager(t, "b", []string{url}, nil, 1, c)
	ha, hb := a.Handle("c"), b.Handle("c")
	k := 0
	spendUntilSeen := func(above int64) {
		t.Helper()
		checkFor(t, 15*time.Second, 20*time.Millisecond, func() error {
			k++
			spendOnce(a, ha, fmt.Sprint("x", k), 1000)
			if got := hb.spentTotal.Load(); got <= above {
				return fmt.Errorf("b sees %d spent", got)
			}
			return nil
		})
	}
	spendUntilSeen(0)
	srv.Shutdown()
	srv.WaitForShutdown()
	srv = startServer(t, dir, port)
	defer srv.Shutdown()
	spendUntilSeen(getRecord(t, url, "c").SpentTotal)
	for _, m := range []*Manager{a, b} {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// The crash gap on a real server: a process killed after its charges were
// acknowledged by the ledger but before its next step. The instance that
// reclaims its lease reads the last ledger message of (campaign, instance)
// and moves the unreported part into the record: record == ledger.
func TestNATSCrashGapClosedAtReclaim(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown)
	clk := newManualClock(time.Now())
	c := campaign("c", micros(5))
	a := natsManualManager(t, "a", srv, clk, []Campaign{c})
	b := natsManualManager(t, "b", srv, clk, []Campaign{c})
	ha, hb := a.Handle("c"), b.Handle("c")
	charge := func(auction string, price int64) {
		t.Helper()
		id, ok := a.Hold(ha, price, clk.Now())
		if !ok {
			t.Fatal("hold refused")
		}
		if _, err := a.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: auction,
			ImpID: "1", BidMicros: price, ClearingMicros: price, Time: clk.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	charge("x1", 300_000)
	if err := a.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	a.syncAll(ctxT(t), clk.Now(), false)
	charge("x2", 200_000)
	charge("x3", 50_000)
	if err := a.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	a.crash() // acknowledged, never reported
	url := srv.ClientURL()
	for i := 0; ; i++ {
		clk.Add(time.Second)
		b.Allow(hb, micros(5), clk.Now())
		b.syncAll(ctxT(t), clk.Now(), false)
		if getRecord(t, url, "c").Leases["a"].Reclaimed {
			break
		}
		if i > 600 {
			t.Fatal("a's lease was never reclaimed")
		}
	}
	var ledger int64
	for _, e := range readLedger(t, url) {
		ledger += e.Charged
	}
	r := getRecord(t, url, "c")
	if r.SpentTotal != ledger || ledger != 550_000 || b.Counters().CrashGapMicros != 250_000 {
		t.Fatalf("record %+v, ledger %d (want 550000 both), gap %d", r, ledger, b.Counters().CrashGapMicros)
	}
}

// A restarted process (same instance id) takes its old entry over at its
// first round and adds what the old process had charged but not reported:
// the watch delivers the record before that round.
func TestNATSCrashGapClosedOnRestart(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown)
	clk := newManualClock(time.Now())
	c := campaign("c", micros(5))
	old := natsManualManager(t, "a", srv, clk, []Campaign{c})
	h := old.Handle("c")
	id, _ := old.Hold(h, 400_000, clk.Now())
	if _, err := old.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: "x",
		ImpID: "1", BidMicros: 400_000, ClearingMicros: 350_000, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := old.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	old.crash()
	clk.Add(time.Second)
	natsManualManager(t, "a", srv, clk, []Campaign{c}) // its first round runs in Start
	if r := getRecord(t, srv.ClientURL(), "c"); r.SpentTotal != 350_000 {
		t.Fatalf("after the restart: %+v, want 350000 spent", r)
	}
}

// On a real server: a process killed with open holds, restarted under its
// id, places none on the money those holds keep (the takeover mark's
// reserve travels in the KV record), and the dead process's bills, charged
// late, end at the budget.
func TestNATSCrashRestartKeepsDeadHoldsReserved(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown)
	clk := newManualClock(time.Now())
	c := campaign("c", 10_000)
	c.DailyMicros = 10_000
	old := natsManualManager(t, "a", srv, clk, []Campaign{c})
	old.syncAll(ctxT(t), clk.Now(), false)
	ids := placeAll(old, clk)
	if len(ids) != 5 {
		t.Fatalf("placed %d holds of 2,000 on 10,000, want 5", len(ids))
	}
	old.syncAll(ctxT(t), clk.Now(), false)
	old.crash()
	clk.Add(3 * time.Second)
	b := natsManualManager(t, "a", srv, clk, []Campaign{c})
	defer b.Close(context.Background())
	leaseUp(t, b, b.Handle("c"), clk)
	if n := len(placeAll(b, clk)); n != 0 {
		t.Fatalf("the restarted process placed %d holds on its dead predecessor's held money", n)
	}
	r := getRecord(t, srv.ClientURL(), "c")
	var reserve int64
	for _, l := range r.Leases {
		reserve += l.Reserve
	}
	if reserve != 10_000 {
		t.Fatalf("record after the takeover: %+v, want 10,000 reserved in the takeover mark", r)
	}
	for i, id := range ids {
		if res := holdsBill(t, b, clk, "a", id, fmt.Sprint("old-", i)); res.ChargedMicros != 2000 || !res.Late {
			t.Fatalf("bill of the dead process's bid: %+v, want 2,000 charged as late", res)
		}
	}
	if err := b.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	clk.Add(b.cfg.LeaseTTL + b.cfg.ReclaimWait)
	leaseUp(t, b, b.Handle("c"), clk)
	if n := len(placeAll(b, clk)); n != 0 {
		t.Fatalf("placed %d holds on a budget its predecessor's billed bids spent", n)
	}
	if r := getRecord(t, srv.ClientURL(), "c"); r.SpentTotal != 10_000 {
		t.Fatalf("record %+v, want 10,000 spent", r)
	}
}

// The ledger stream's duplicate window is the longest any instance asked
// for, not the last starter's: an instance refuses a notice as too late to
// charge only past its own window and counts on the stream to recognise a
// replay inside it. Set by whoever started last, a fleet whose windows
// differed (mid-change of notices.dedup_window) had a stream window shorter
// than an instance's, and a replay between the two was charged again.
func TestNATSLedgerDuplicateWindowNeverShrinks(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown)
	clk := newManualClock(time.Now())
	start := func(inst string, w time.Duration) {
		m, err := New(Config{InstanceID: inst, URLs: []string{srv.ClientURL()}, Clock: clk, manual: true, probeWait: 20 * time.Millisecond,
			MinLease: micros(1), MaxLease: micros(10), DedupWindow: NoticeWindows{Win: w, Bill: w, Loss: w}}, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(context.Background()) })
	}
	window := func() time.Duration {
		t.Helper()
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctxT(t), LedgerStream)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config.Duplicates
	}
	start("a", 3*time.Hour)
	if w := window(); w != 3*time.Hour {
		t.Fatalf("after a (3h): stream window %v", w)
	}
	start("b", time.Hour)
	if w := window(); w != 3*time.Hour {
		t.Fatalf("after b (1h) started last: stream window %v, want a's 3h kept", w)
	}
	start("c", 5*time.Hour)
	if w := window(); w != 5*time.Hour {
		t.Fatalf("after c (5h): stream window %v, want 5h", w)
	}
}
