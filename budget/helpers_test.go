package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// manualClock is a clock the test moves.
type manualClock struct{ ns atomic.Int64 }

func newManualClock(t time.Time) *manualClock {
	c := &manualClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *manualClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *manualClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func quietLog() *slog.Logger               { return slog.New(slog.DiscardHandler) }
func ctxT(t *testing.T) context.Context    { return t.Context() }
func micros(units float64) int64           { return int64(units * 1e6) }
func campaign(id string, total int64) Campaign {
	return Campaign{ID: id, Currency: "USD", TotalMicros: total, Pacing: PacingASAP}
}

// checkFor polls f until it returns nil or the deadline passes (nats-server style).
func checkFor(t *testing.T, total, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(every)
	}
	t.Fatalf("condition not met after %v: %v", total, err)
}

// waitForLease waits until h may bid amount micros (its first lease came).
func waitForLease(t *testing.T, m *Manager, h *Account, amount int64) {
	t.Helper()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if m.Allow(h, amount, time.Now()) != DecisionOK {
			return errors.New("no lease yet")
		}
		return nil
	})
}

func startServer(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: dir, Port: port, ReadyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts an n-node JetStream cluster on loopback and waits for a
// meta leader.
func startCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	var srvs []*server.Server
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a picked port can be taken before the server binds it
		if srvs, err = tryCluster(t, n); err == nil {
			break
		}
		t.Logf("cluster start attempt %d: %v", attempt+1, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range srvs {
			s.Shutdown()
		}
	})
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, s := range srvs {
			// A leader that sees every node with JetStream stats: an R3 asset
			// created before that fails with "no suitable peers for placement".
			if s.Running() && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return nil
			}
		}
		return fmt.Errorf("no meta leader")
	})
	return srvs
}

func tryCluster(t *testing.T, n int) ([]*server.Server, error) {
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var srvs []*server.Server
	for i := range n {
		s, err := StartEmbedded(EmbeddedOptions{
			ServerName: fmt.Sprintf("n%d", i), StoreDir: t.TempDir(), Port: -1,
			ClusterName: "budget-test", ClusterPort: ports[i], Routes: routes, ReadyTimeout: 30 * time.Second,
		})
		if err != nil {
			for _, s := range srvs {
				s.Shutdown()
			}
			return nil, err
		}
		srvs = append(srvs, s)
	}
	return srvs, nil
}

// readLedger returns every message of the ledger stream.
func readLedger(t *testing.T, url string) []LedgerEntry {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []LedgerEntry
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		var e LedgerEntry
		if err := jsonUnmarshal(raw.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func getRecord(t *testing.T, url, campaign string) Record {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, KVBucket)
	if err != nil {
		t.Fatal(err)
	}
	st := &kvStore{kv: kv}
	r, err := st.Get(ctx, campaign)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
