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
)

// natsManualManager is a Manager on NATS whose rounds the test drives.
func natsManualManager(t *testing.T, inst string, srv *server.Server, clk Clock, cs []Campaign) *Manager {
	t.Helper()
	m, err := New(Config{InstanceID: inst, URLs: []string{srv.ClientURL()}, Clock: clk, manual: true,
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
// charges at most, plus what the killed process had charged but not yet
// reported (that spend is in the ledger but its lease went back to the pool).
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
	if r.SpentTotal > ledger || ledger-r.SpentTotal > unreported {
		t.Errorf("record %d against ledger %d: only m2's unreported %d may be missing", r.SpentTotal, ledger, unreported)
	}
	if ledger > budget+late+unreported {
		t.Errorf("bound broken: ledger %d > budget %d + late %d + m2's unreported %d", ledger, budget, late, unreported)
	}
	if liveLeases(r) != 0 {
		t.Errorf("leases left after close: %+v", r.Leases)
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
