package budget

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestMeasureNATS reports what keeping budgets in sync costs: NATS messages and
// bytes per second (server Varz), the process's CPU time over a fixed wall
// window (getrusage) and its heap, for 1 and 3 instances (managers on one
// embedded server, each with its own connection) at BUDGET_MEASURE_CAMPAIGNS
// campaigns (default 10,000), idle and under BUDGET_MEASURE_RATE requests/s per
// instance (default 5,000; each request runs Allow, Hold and then Settle for
// 15% of them, a win with a charge, or Release, a loss). It asserts nothing:
//
//	BUDGET_MEASURE=1 go test -run MeasureNATS -v -timeout 30m ./budget
//
// The process holds the server too, so CPU and heap are the bidder's budget
// side and its embedded NATS together. It uses only the public API (it runs on
// older versions of the package to compare).
func TestMeasureNATS(t *testing.T) {
	if os.Getenv("BUDGET_MEASURE") == "" {
		t.Skip("set BUDGET_MEASURE=1")
	}
	o := measureOpts{
		campaigns: envInt("BUDGET_MEASURE_CAMPAIGNS", 10_000),
		rate:      envInt("BUDGET_MEASURE_RATE", 5_000),
		window:    time.Duration(envInt("BUDGET_MEASURE_WINDOW_S", 10)) * time.Second,
		settle:    time.Duration(envInt("BUDGET_MEASURE_SETTLE_S", 45)) * time.Second,
	}
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("instances=%d", n), func(t *testing.T) { measureFleet(t, n, o) })
	}
}

type measureOpts struct {
	campaigns, rate int
	window, settle  time.Duration
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func measureFleet(t *testing.T, instances int, o measureOpts) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	cs := make([]Campaign, o.campaigns)
	for i := range cs {
		cs[i] = Campaign{ID: fmt.Sprintf("camp-%05d", i), Currency: "USD", DailyMicros: micros(1000),
			TotalMicros: micros(100_000), Pacing: PacingEven, FreqCapCount: 10, FreqCapWindow: time.Hour}
	}
	var ms []*Manager
	started := time.Now()
	for i := range instances {
		m, err := New(Config{InstanceID: fmt.Sprintf("m%d", i), URLs: []string{srv.ClientURL()}}, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetCampaigns(cs); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		ms = append(ms, m)
	}
	t.Logf("%d instance(s), %d campaigns: started in %v; settling %v", instances, o.campaigns,
		time.Since(started).Round(time.Millisecond), o.settle)
	time.Sleep(o.settle) // a measurement, not a test: let the first rounds pass
	t.Logf("idle:  %s", measureWindow(srv, o.window))
	var steps uint64
	for _, m := range ms {
		steps += m.Counters().LeaseGrants + m.Counters().LeaseDenials
	}
	t.Logf("lease steps so far (all instances): %d", steps)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reqs, wins atomic.Int64
	for i, m := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); measureLoad(m, cs, o.rate, uint64(i), stop, &reqs, &wins) }()
	}
	time.Sleep(5 * time.Second) // warm up: leases sized to the traffic
	r0, w0, at := reqs.Load(), wins.Load(), time.Now()
	line := measureWindow(srv, o.window)
	el := time.Since(at).Seconds()
	t.Logf("load:  %.0f requests/s, %.0f wins/s (all instances): %s", float64(reqs.Load()-r0)/el, float64(wins.Load()-w0)/el, line)
	close(stop)
	wg.Wait()
	for _, m := range ms {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := m.Close(ctx); err != nil {
			t.Logf("close: %v", err)
		}
		cancel()
	}
}

// measureLoad drives rate requests/s through one manager until stop.
func measureLoad(m *Manager, cs []Campaign, rate int, seed uint64, stop chan struct{}, reqs, wins *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start, done := time.Now(), 0
	for k := 0; ; {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; done < due; done++ {
			reqs.Add(1)
			c := &cs[rng.IntN(len(cs))]
			h := m.Handle(c.ID)
			now := time.Now()
			bid := int64(1000 + rng.IntN(3000)) // CPM 1-4: micros per impression
			user := rng.Uint64()
			if m.Allow(h, bid, now) != DecisionOK || !m.FreqAllow(h, user, now) {
				continue
			}
			id, ok := m.Hold(h, bid, now)
			if !ok {
				continue
			}
			k++
			n := Notice{Kind: KindLoss, ChargeOn: KindWin, HoldID: id, CampaignID: c.ID,
				AuctionID: "m" + strconv.FormatUint(seed, 10) + "-" + strconv.Itoa(k), ImpID: "1", BidMicros: bid, Time: now}
			if rng.IntN(100) < 15 {
				n.Kind, n.ClearingMicros = KindWin, bid*int64(60+rng.IntN(40))/100
				m.Settle(n)
				wins.Add(1)
				m.RecordImpression(h, user, now)
			} else {
				m.Release(n)
			}
		}
	}
}

// measureWindow samples server traffic, process CPU and memory over d.
func measureWindow(srv *server.Server, d time.Duration) string {
	v0, _ := srv.Varz(&server.VarzOptions{})
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(d) // a measurement window
	v1, _ := srv.Varz(&server.VarzOptions{})
	cpu, el := cpuTime()-cpu0, time.Since(t0)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := el.Seconds()
	return fmt.Sprintf("NATS in %.0f msgs/s %.0f B/s, out %.0f msgs/s %.0f B/s; CPU %.1f%% of a core; heap %.1f MiB live, %.1f MiB in use; RSS %d MiB",
		float64(v1.InMsgs-v0.InMsgs)/s, float64(v1.InBytes-v0.InBytes)/s,
		float64(v1.OutMsgs-v0.OutMsgs)/s, float64(v1.OutBytes-v0.OutBytes)/s,
		100*cpu.Seconds()/s, float64(ms.HeapAlloc)/(1<<20), float64(ms.HeapInuse)/(1<<20), rssMiB())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssMiB() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb / 1024
		}
	}
	return -1
}
