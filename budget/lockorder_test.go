package budget

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// documentedOrder reads doc.go's lock order: the pairs (outer, inner) its
// arrows allow, and every lock name it mentions.
func documentedOrder(t *testing.T) (allowed map[[2]string]bool, names map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed, names = map[[2]string]bool{}, map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "//"))
		if !strings.Contains(line, "->") {
			continue
		}
		chain := strings.Split(line, "->")
		for i := range chain {
			chain[i] = strings.TrimSpace(chain[i])
			for j := 0; j < i; j++ {
				allowed[[2]string{chain[j], chain[i]}] = true
			}
		}
	}
	for _, n := range regexp.MustCompile(`[A-Za-z]+\.[A-Za-z]*[mM]u\b`).FindAllString(string(b), -1) {
		names[n] = true
	}
	return allowed, names
}

func TestLockOrder(t *testing.T) {
	allowed, names := documentedOrder(t)
	for _, n := range []string{lockName[lkManager](), lockName[lkAccount](), lockName[lkGlobal](), lockName[lkHoldShard](),
		lockName[lkTierShard](), lockName[lkFreqShard](), lockName[lkForecast](), lockName[lkLiveness](),
		lockName[lkLedger](), lockName[lkLedgerFlush](), lockName[lkMemLedger](), lockName[lkMemStore](), lockName[lkKVCache]()} {
		if !names[n] {
			t.Errorf("doc.go does not name the lock %s", n)
		}
	}
	lockCheck.start()
	lockWorkloadMem(t)
	lockWorkloadNATS(t)
	edges := lockCheck.stop()
	if len(edges) == 0 {
		t.Fatal("no nested lock seen: the workload did not run the ledger")
	}
	for e, n := range edges {
		if !allowed[e] {
			t.Errorf("%s held while taking %s (%d times): not in doc.go's lock order", e[0], e[1], n)
		}
	}
	t.Logf("nesting seen: %v", edges)
}

// lockWorkloadMem runs bids, notices (duplicates across instances), ledger
// flushes, sync rounds, pacing, a crash reclaimed and closes on a MemStore.
func lockWorkloadMem(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(50))
	c.FreqCapCount, c.FreqCapWindow, c.Pacing = 2, time.Hour, PacingEven
	c.DailyMicros = micros(20)
	a := storeManager(t, mem, "a", clk, c)
	b := storeManager(t, mem, "b", clk, c)
	x := storeManager(t, mem, "x", clk, c)
	for round := range 240 {
		clk.Add(time.Second)
		for i, m := range []*Manager{a, b} {
			h := m.Handle("c")
			now := clk.Now()
			m.ObserveRequest(now)
			if m.Allow(h, 10_000, now) == DecisionOK && m.FreqAllow(h, uint64(round), now) {
				id, _ := m.Hold(h, 10_000, now)
				n := Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, InstanceID: m.cfg.InstanceID, CampaignID: "c",
					AuctionID: fmt.Sprint(round), ImpID: fmt.Sprint(i), BidMicros: 10_000, ClearingMicros: 9_000, Time: now}
				if round%3 == 0 {
					n.Kind = KindLoss
				}
				m.Settle(n)
				m.RecordImpression(h, uint64(round), now)
				if round%5 == 0 { // the same notice reaches the other instance
					n.ImpID = fmt.Sprint(1 - i)
					[]*Manager{b, a}[i].Settle(n)
				}
				if round%7 == 1 { // a provisional win, then its replay on the other instance: a duplicate there (tier.markForeign)
					n.Kind, n.ChargeOn, n.ImpID = KindWin, KindBill, fmt.Sprint("p", i)
					m.Settle(n)
					m.ledger.flush(ctxT(t))
					[]*Manager{b, a}[i].Settle(n)
					[]*Manager{b, a}[i].ledger.flush(ctxT(t))
				}
			}
			m.ledger.flush(ctxT(t))
			m.syncAll(ctxT(t), now, false)
			m.tick(now)
			m.Status()
			m.Counters().Each(func(string, string, string, float64) {})
		}
		if round < 5 {
			x.syncAll(ctxT(t), clk.Now(), false) // then x crashes: a reclaims its lease
		}
	}
	for _, m := range []*Manager{a, b} {
		if err := m.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := mem.Get(ctxT(t), "c"); !r.Leases["x"].Reclaimed {
		t.Fatalf("the workload did not reclaim x's lease: %+v", r)
	}
}

// lockWorkloadNATS runs a manager on NATS with its loops: the KV store and its
// watch, the ledger publisher, the frequency-cap publisher.
func lockWorkloadNATS(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	c := campaign("c", micros(10))
	c.FreqCapCount, c.FreqCapWindow = 2, time.Hour
	a := natsManager(t, "a", nil, srv, 1, c)
	b := natsManager(t, "b", []string{srv.ClientURL()}, nil, 1, c)
	h := a.Handle("c")
	k := 0
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		k++
		spendOnce(a, h, fmt.Sprint("n", k), 1000)
		a.RecordImpression(h, uint64(k), time.Now())
		if getRecord(t, srv.ClientURL(), "c").SpentTotal == 0 || b.Handle("c").spentTotal.Load() == 0 {
			return fmt.Errorf("spend not reported and watched yet")
		}
		return nil
	})
	for _, m := range []*Manager{a, b} {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
