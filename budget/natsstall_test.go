package budget

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// stallProxy forwards TCP to a NATS server until it is frozen; then it keeps
// every connection open and forwards nothing, the way a hung server (SIGSTOP,
// a dead host behind a silent network drop) looks to its clients: no reset,
// no answer.
type stallProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	conns  atomic.Int64
	done   chan struct{}
	wg     sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { close(p.done); ln.Close(); p.wg.Wait() })
	return p
}

func (p *stallProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *stallProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	if p.frozen.Load() {
		<-p.done // accepted by the kernel, never answered
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	p.conns.Add(1)
	defer p.conns.Add(-1)
	go func() { <-p.done; c.Close(); up.Close() }()
	go p.pipe(up, c)
	p.pipe(c, up)
}

func (p *stallProxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.frozen.Load() {
			<-p.done
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A NATS server that hangs (its process stopped, its host cut off by a
// silent drop) keeps the client's TCP connection open and answers nothing.
// The budget's connection must notice and move to another server of the
// cluster well within a lease's life; before, it waited for the client
// library's default stale-connection check (a ping every 2 minutes, 2
// outstanding), so an instance on a hung node of a healthy cluster failed
// closed (every bid 204 fail_closed after ~3 minutes with the default
// LeaseTTL) and stayed so for up to 6 minutes. Measured by hand on three
// bidders over a three-node cluster, lease_ttl 20s: SIGSTOP of the node one
// bidder used left it failing closed for the whole 41 s stop.
func TestNATSHungServerFailsOver(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	addr := srv.ClientURL()[len("nats://"):]
	a, b := newStallProxy(t, addr), newStallProxy(t, addr)
	var logs lockedBuffer
	m, err := New(Config{
		InstanceID: "a", URLs: []string{a.url(), b.url()}, Replicas: 1,
		HoldTTL: 300 * time.Millisecond, LeaseTTL: 1500 * time.Millisecond, SyncPeriod: 100 * time.Millisecond,
		ReclaimWait: 200 * time.Millisecond, MinLease: 50_000, MaxLease: 2_000_000, MaxHolds: 1 << 14,
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns([]Campaign{campaign("c", micros(100))}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	h := m.Handle("c")
	waitForLease(t, m, h, 10_000)
	hung := a
	if b.conns.Load() > 0 {
		hung = b
	}
	if hung.conns.Load() == 0 {
		t.Fatal("the manager's connection goes through neither proxy")
	}
	hung.frozen.Store(true)
	frozeAt := time.Now()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(t.Context(), KVBucket)
	if err != nil {
		t.Fatal(err)
	}
	// A heartbeat written after the freeze reaches the server: the manager
	// left the hung server for the other one. Its liveness is what keeps its
	// leases valid; without a new one it would fail closed.
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		e, err := kv.Get(t.Context(), livenessKey("a"))
		if err != nil {
			return err
		}
		var l Liveness
		if err := json.Unmarshal(e.Value(), &l); err != nil {
			return err
		}
		if l.Expires < frozeAt.Add(m.cfg.LeaseTTL).UnixNano() {
			return fmt.Errorf("no heartbeat since the server hung (%v ago)", time.Since(frozeAt).Round(time.Millisecond))
		}
		if d := m.Allow(h, 10_000, time.Now()); d != DecisionOK {
			return fmt.Errorf("decision %v", d)
		}
		return nil
	})
	// The operator sees it: logged, counted.
	if out := logs.String(); !strings.Contains(out, `level=WARN msg="nats disconnected"`) || !strings.Contains(out, `msg="nats reconnected"`) {
		t.Errorf("the failover is not in the log:\n%s", out)
	}
	if c := m.Counters(); c.NATSReconnects == 0 {
		t.Errorf("reconnects %d", c.NATSReconnects)
	}
	// Errors the client reports on its own (a consumer lost in the outage,
	// a slow consumer) go to the log, not straight to stderr in another
	// format: the client's default handler writes them there.
	m.nc.Opts.AsyncErrorCB(m.nc, nil, nats.ErrConsumerNotActive)
	if out := logs.String(); !strings.Contains(out, `level=WARN msg="nats async error"`) || !strings.Contains(out, `err="nats: consumer not active"`) {
		t.Errorf("the client's asynchronous error is not in the log:\n%s", out)
	}
	// A close is not a fault: no warning, whenever the client's callback
	// runs (it is asynchronous), with or without an error.
	before := strings.Count(logs.String(), "level=WARN")
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.onDisconnect(nil)
	m.onDisconnect(nats.ErrConnectionClosed)
	if out := logs.String(); strings.Count(out, "level=WARN") != before {
		t.Errorf("a graceful close logged a warning:\n%s", out)
	}
}
