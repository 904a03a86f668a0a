package budget

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func (m *Manager) connect() error {
	m.nc = m.cfg.Conn
	if m.nc == nil {
		opts := []nats.Option{
			nats.Name("openbidder-budget-" + m.cfg.InstanceID),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(200 * time.Millisecond),
			nats.RetryOnFailedConnect(true),
			// A server that hangs (stopped process, silent network drop)
			// keeps the TCP connection open: only a missed pong shows it.
			// The library's default (a ping every 2 min, 2 outstanding)
			// noticed it after the leases' validity had run out, so an
			// instance on a hung node of a healthy cluster failed closed.
			nats.PingInterval(pingInterval(m.cfg.SyncPeriod)),
			nats.MaxPingsOutstanding(2),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { m.onDisconnect(err) }),
			// Without it the client writes asynchronous errors (a consumer
			// lost in an outage, a slow consumer) to stderr by itself,
			// outside the log and its format.
			nats.ErrorHandler(m.onAsyncError),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				m.log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
			}),
		}
		opts = append(opts, m.cfg.natsOpts...) // credentials and TLS (natsauth.go)
		url := strings.Join(m.cfg.URLs, ",")
		if m.cfg.Server != nil {
			opts = append(opts, nats.InProcessServer(m.cfg.Server))
			url = ""
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return fmt.Errorf("budget: connect nats: %w", err)
		}
		m.nc, m.ownConn = nc, true
	}
	js, err := jetstream.New(m.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("budget: jetstream: %w", err)
	}
	ljs, err := m.nc.JetStream()
	if err != nil {
		return fmt.Errorf("budget: jetstream: %w", err)
	}
	m.js = js
	m.store = &kvStore{ljs: ljs}
	m.ledger = newLedger(&jsLedger{
		js: js, stream: LedgerStream, origin: m.cfg.InstanceID + "/" + m.boot,
		timeout: 5 * time.Second, subjects: LedgerSubject, instance: escapeKey("", m.cfg.InstanceID),
	}, m.ledgerDone)
	return nil
}

// provision creates the KV bucket and the ledger stream (idempotent).
func (m *Manager) provision(ctx context.Context) error {
	if m.js == nil {
		return nil
	}
	var kv jetstream.KeyValue
	err := jsRetry(ctx, m.nc.IsConnected, func(ctx context.Context) (err error) {
		kv, err = m.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: KVBucket, Description: "openbidder budget pool: spend and leases per campaign, liveness per instance",
			History: 1, Storage: jetstream.FileStorage, Replicas: m.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("budget: create kv %s: %w", KVBucket, err)
	}
	m.store.(*kvStore).kv = kv
	if err := m.provisionLevels(ctx); err != nil {
		return err
	}
	// The stream's duplicate window never shrinks here: every instance
	// refuses a notice as too late to charge only past its own longest
	// window (tooLateToCharge), counting on the stream to recognise a
	// replay inside it. Set to the last starter's window, an instance with a
	// longer one (a fleet mid-change of notices.dedup_window) charged a
	// replay again between the two. Lowering it is an operator's edit of
	// the stream (docs/budget.md).
	dup := m.cfg.DedupWindow.Longest()
	err = jsRetry(ctx, m.nc.IsConnected, func(ctx context.Context) error {
		s, err := m.js.Stream(ctx, LedgerStream)
		if err == nil {
			dup = max(dup, s.CachedInfo().Config.Duplicates)
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("budget: read stream %s: %w", LedgerStream, err)
	}
	err = jsRetry(ctx, m.nc.IsConnected, func(ctx context.Context) error {
		_, err := m.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: LedgerStream, Description: "openbidder charges: one message per change of an impression's charge",
			Subjects: []string{LedgerSubject + ">"}, Storage: jetstream.FileStorage,
			Replicas: m.cfg.Replicas, Duplicates: dup,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("budget: create stream %s: %w", LedgerStream, err)
	}
	return nil
}

// jsAttempt bounds one try of a JetStream API request in jsRetry, and
// jsTries the tries.
var (
	jsAttempt = 5 * time.Second
	jsTries   = 3
)

// jsRetry runs an idempotent JetStream API request (create or update a
// bucket or stream, read a stream's info), each try bounded by jsAttempt:
// a request the cluster dropped unanswered while connected (a meta leader
// elected or changing while several servers start at once) is sent again,
// up to jsTries in all, instead of waiting out the caller's whole deadline
// on one try. An answer that is an error, a request made while not
// connected (the caller retries the start and logs each failure: App.Start)
// or the caller's deadline ends it.
func jsRetry(ctx context.Context, connected func() bool, try func(context.Context) error) error {
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, jsAttempt)
		err := try(actx)
		cancel()
		if err == nil || ctx.Err() != nil || n >= jsTries || !connected() ||
			!(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *Manager) instToken() string {
	if m.token == "" {
		h := fnv.New64a()
		h.Write([]byte(m.cfg.InstanceID + "/" + m.boot))
		m.token = fmt.Sprintf("%016x", h.Sum64())
	}
	return m.token
}

// pingInterval is how often the budget's connection pings its server: twice
// the sync period, within [2s, 10s] (not less: a loaded machine must not
// take a slow pong for a hung server). With two pings outstanding a hung
// server is left for another within about three intervals, far inside a
// lease's validity (LeaseTTL - HoldTTL - SyncPeriod after the last heartbeat).
func pingInterval(sync time.Duration) time.Duration {
	return min(max(2*sync, 2*time.Second), 10*time.Second)
}

// onDisconnect marks the store unreachable and logs the fault; a connection
// this process closed (Close) is no fault. The client calls it from its own
// goroutine, after Close may have returned.
func (m *Manager) onDisconnect(err error) {
	m.connected.Store(false)
	m.setReason("nats disconnected")
	if err != nil && !m.closed.Load() {
		m.log.Warn("nats disconnected", "err", err)
	}
}

// onAsyncError logs an error the client reports outside any call: a
// consumer that stopped answering (an outage), a slow consumer.
func (m *Manager) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub != nil {
		m.log.Warn("nats async error", "subject", sub.Subject, "err", err)
		return
	}
	m.log.Warn("nats async error", "err", err)
}
