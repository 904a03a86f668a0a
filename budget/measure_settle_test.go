package budget

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestMeasureSettleDurable reports notices per second and the latency of a
// notice with durable acknowledgement: concurrent senders call Settle (a
// billing notice on a distinct impression each, so every one writes a ledger
// entry and waits for its ack) on one Manager against an embedded JetStream
// server with file storage, for each count of senders; the connection is
// in-process, or loopback TCP with BUDGET_MEASURE_TCP=1, or to a 3-node R3
// cluster in this process with BUDGET_MEASURE_R3=1. It asserts nothing:
//
//	BUDGET_MEASURE=1 go test -run MeasureSettleDurable -v ./budget
func TestMeasureSettleDurable(t *testing.T) {
	if os.Getenv("BUDGET_MEASURE") == "" {
		t.Skip("set BUDGET_MEASURE=1")
	}
	cfg := Config{InstanceID: "m", MinLease: 1 << 50, MaxLease: 1 << 50}
	switch {
	case os.Getenv("BUDGET_MEASURE_R3") != "": // a 3-node cluster in this process, R3 stream
		srvs := startCluster(t, 3)
		cfg.URLs, cfg.Replicas = []string{srvs[0].ClientURL()}, 3
	case os.Getenv("BUDGET_MEASURE_TCP") != "":
		srv := startServer(t, t.TempDir(), -1)
		defer srv.Shutdown()
		cfg.URLs = []string{srv.ClientURL()}
	default:
		srv := startServer(t, t.TempDir(), 0)
		defer srv.Shutdown()
		cfg.Server = srv
	}
	m, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	m.SetCampaigns([]Campaign{campaign("c", 1<<60)})
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	window := time.Duration(envInt("BUDGET_MEASURE_WINDOW_S", 5)) * time.Second
	for _, senders := range []int{1, 8, 64, 256} {
		lat := make([][]time.Duration, senders)
		groups0 := m.ledger.groups.Load()
		var wg sync.WaitGroup
		start := time.Now()
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; time.Since(start) < window; k++ {
					t0 := time.Now()
					_, err := m.Settle(Notice{Kind: KindBill, ChargeOn: KindBill, CampaignID: "c",
						AuctionID: fmt.Sprint(senders, "-", s, "-", k), ImpID: "1", BidMicros: 2000, ClearingMicros: 1500})
					if err != nil {
						t.Error(err)
						return
					}
					lat[s] = append(lat[s], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		all := slices.Concat(lat...)
		slices.Sort(all)
		groups := m.ledger.groups.Load() - groups0
		t.Logf("senders %3d: %7.0f notices/s, p50 %v, p99 %v, max %v, %d groups (%.1f entries each)",
			senders, float64(len(all))/el.Seconds(), pct(all, 50), pct(all, 99), all[len(all)-1],
			groups, float64(len(all))/float64(max(groups, 1)))
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)].Round(time.Microsecond)
}

// nullLedger acknowledges everything and keeps nothing.
type nullLedger struct{}

func (nullLedger) publish(_ context.Context, _ []LedgerEntry, out []pubOutcome) { clear(out) }
func (nullLedger) tail(context.Context, string, string) (ledgerTail, error)     { return ledgerTail{}, nil }

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMeasureDedupBytes reports the de-dup tier's memory for 1M distinct
// impressions settled (heap after GC, before and after; the ledger acks at
// once and keeps nothing), and the NATS server's share for the duplicate
// window: the heap of an in-process server after 1M messages published with
// ledger-style message ids, minus the same without ids.
//
//	BUDGET_MEASURE=1 go test -run MeasureDedupBytes -v -timeout 20m ./budget
func TestMeasureDedupBytes(t *testing.T) {
	if os.Getenv("BUDGET_MEASURE") == "" {
		t.Skip("set BUDGET_MEASURE=1")
	}
	const n = 1_000_000
	clk := newManualClock(t0.Add(time.Hour))
	m, err := New(Config{InstanceID: "d", Store: NewMemStore(), Clock: clk, manual: true, backend: nullLedger{},
		DedupMaxEntries: 8 << 20}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	m.SetCampaigns([]Campaign{campaign("c", 1<<60)})
	m.Start(ctxT(t))
	before := heapInUse()
	for i := range n {
		m.Settle(Notice{Kind: KindBill, CampaignID: "c", AuctionID: "auction-" + strconv.Itoa(i), ImpID: "1",
			BidMicros: 2000, ClearingMicros: 1500, Time: clk.Now()})
		if i%4096 == 0 {
			m.ledger.flush(ctxT(t))
		}
	}
	m.ledger.flush(ctxT(t))
	after := heapInUse()
	t.Logf("tier: %d entries, %d bytes of slots; heap %d -> %d: %.1f MB per million impressions (%.0f bytes each)",
		m.tier.len(), m.tier.bytes(), before, after, float64(after-before)/1e6, float64(after-before)/n)
	runtime.KeepAlive(m)

	withIDs := measureStreamHeap(t, n, true)
	without := measureStreamHeap(t, n, false)
	t.Logf("JetStream duplicate window: heap %.1f MB with message ids, %.1f MB without: %.1f MB per million ids (%.0f bytes each)",
		float64(withIDs)/1e6, float64(without)/1e6, float64(withIDs-without)/1e6, float64(withIDs-without)/n)
}

// measureStreamHeap publishes n ledger-sized messages to a file-storage
// stream with a 2h duplicate window on an in-process server and returns the
// heap growth, measured after the server's block caches expired.
func measureStreamHeap(t *testing.T, n int, ids bool) uint64 {
	srv := startServer(t, t.TempDir(), 0)
	defer srv.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DD", Subjects: []string{"dd.>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	before := heapInUse()
	payload := make([]byte, 330) // a ledger entry's JSON is ~330 bytes
	for i := range n {
		msg := nats.NewMsg("dd.c_campaign-42.instance-1")
		msg.Data = payload
		msg.Header.Set(originHeader, "instance-1/0123456789abcdef/"+strconv.Itoa(i))
		var opts []jetstream.PublishOpt
		if ids {
			opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("%032x.0.%d", i, 1000+i%9000)))
		}
		if _, err := js.PublishMsgAsync(msg, opts...); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		t.Fatal("publishes not acknowledged")
	}
	time.Sleep(15 * time.Second) // let the filestore's block caches expire (a measurement, not a wait for state)
	return heapInUse() - before
}
