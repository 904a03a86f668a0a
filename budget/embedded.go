package budget

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures the in-process NATS server.
type EmbeddedOptions struct {
	ServerName string // default "openbidder"
	StoreDir   string // JetStream store (budgets and the ledger survive restarts); required
	// Client listener for other instances to join. Port 0 means no listener
	// (in-process connections only); -1 picks a random port.
	Host string
	Port int
	// Cluster (optional): name, route listener and routes to the other nodes.
	ClusterName string
	ClusterHost string
	ClusterPort int // -1 random
	Routes      []string
	// ReadyTimeout bounds the wait for the server to accept connections (default 10s).
	ReadyTimeout time.Duration

	// Auth is the one identity the client listener (and an in-process
	// connection) accepts: user/password or an nkey (its public key is
	// derived from the seed). Required when Host is not a loopback address.
	Auth Auth
	// TLS of the client listener: the server's certificate, and a CA that
	// makes client certificates mandatory when given.
	TLS TLSFiles
	// Route authentication (user/password, every node the same) and mutual
	// TLS of the cluster routes. ClusterAuth is required when ClusterHost is
	// not a loopback address; Routes get the credentials added.
	ClusterUser     string
	ClusterPassword string
	ClusterTLS      TLSFiles
	// Log receives the server's warnings and errors (a route that cannot
	// connect, a JetStream problem); its notices (the start-up banner,
	// leader elections) at debug level. Nil: the server logs nothing.
	// Warnings and errors of client connections that come over the network
	// (a bad protocol line, TLS garbage, a failed login: anything that
	// reaches the listener can cause them) are not logged one by one: they
	// are counted, and one ClientErrorsMsg line per ClientLogEvery says how
	// many there were, with one of them as a sample.
	Log *slog.Logger
	// ClientErrors, when given, counts those client connection warnings
	// and errors (a metric's source).
	ClientErrors *atomic.Uint64
	// Route connections are summed up the same way, in one RouteErrorsMsg
	// line per ClientLogEvery: anything that reaches the route listener can
	// make the server log (a failed route login, protocol garbage), one line
	// a connection. RouteErrors, when given, counts them.
	RouteErrors *atomic.Uint64
	// ClientLogEvery is the interval of the ClientErrorsMsg lines (default
	// one minute); the last is written when the server shuts down.
	ClientLogEvery time.Duration
}

// ClientErrorsMsg is the message of the line that sums up the embedded
// server's client connection warnings and errors (EmbeddedOptions.Log).
const ClientErrorsMsg = "nats client connection errors"

// RouteErrorsMsg is the message of the line that sums up the embedded
// server's route connection warnings and errors (EmbeddedOptions.Log).
const RouteErrorsMsg = "nats route connection errors"

// StartEmbedded starts a NATS server with JetStream in this process.
// Shut it down with srv.Shutdown() after the Manager is closed.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, fmt.Errorf("%w: embedded NATS needs a store directory", ErrBadConfig)
	}
	opts := &server.Options{
		ServerName: o.ServerName,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		Host:       o.Host,
		Port:       o.Port,
		NoSigs:     true,
		NoLog:      true,
	}
	if opts.ServerName == "" {
		opts.ServerName = "openbidder"
	}
	if o.Port == 0 {
		opts.DontListen = true
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if o.ClusterName != "" || len(o.Routes) > 0 || o.ClusterPort != 0 {
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: o.ClusterHost, Port: o.ClusterPort}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = "127.0.0.1"
		}
		for _, r := range o.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("%w: route %q: %v", ErrBadConfig, r, err)
			}
			if o.ClusterUser != "" && u.User == nil {
				u.User = url.UserPassword(o.ClusterUser, o.ClusterPassword)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if err := o.secure(opts); err != nil {
		return nil, err
	}
	lock, err := lockStoreDir(o.StoreDir)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("budget: embedded nats: %w", err)
	}
	var clients, routes *connErrors
	// A fatal error of the server (its port taken: nats-server logs it and
	// stops listening) ends the wait below at once, with its message:
	// before, the start waited the whole ReadyTimeout and said only "not
	// ready" (an outside audit).
	fatal := make(chan string, 1)
	if o.Log != nil {
		l := o.Log.With("component", "nats")
		clients = newConnErrors(l, ClientErrorsMsg, o.ClientErrors)
		routes = newConnErrors(l, RouteErrorsMsg, o.RouteErrors)
		srv.SetLoggerV2(natsLogger{l: l, clients: clients, routes: routes, fatal: fatal}, false, false, false)
	} else {
		srv.SetLoggerV2(natsLogger{l: slog.New(slog.DiscardHandler), fatal: fatal}, false, false, false)
	}
	go srv.Start()
	wait := o.ReadyTimeout
	if wait == 0 {
		wait = 10 * time.Second
	}
	stopped := make(chan struct{})
	go func() { // the store is this server's until it has shut down
		srv.WaitForShutdown()
		lock.Close()
		close(stopped)
	}()
	if clients != nil {
		go clients.run(cmp.Or(o.ClientLogEvery, time.Minute), stopped)
		go routes.run(cmp.Or(o.ClientLogEvery, time.Minute), stopped)
	}
	for deadline := time.Now().Add(wait); !srv.ReadyForConnections(50 * time.Millisecond); {
		select {
		case msg := <-fatal:
			srv.Shutdown()
			return nil, fmt.Errorf("budget: embedded nats: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("budget: embedded nats not ready after %v", wait)
		}
	}
	return srv, nil
}

// secure applies authentication and TLS to the server options, and refuses
// a listener reachable from other machines without authentication: anything
// that reaches an open NATS port can rewrite the budget store.
func (o *EmbeddedOptions) secure(opts *server.Options) error {
	if !opts.DontListen && !IsLoopback(opts.Host) && o.Auth.IsZero() {
		return fmt.Errorf("%w: embedded nats client listener %s is not loopback and has no auth", ErrBadConfig, hostPort(opts.Host, opts.Port))
	}
	if err := o.Auth.Validate(); err != nil {
		return err
	}
	switch {
	case o.Auth.CredsFile != "":
		return fmt.Errorf("%w: the embedded server takes user/password or an nkey, not a credentials file", ErrBadConfig)
	case o.Auth.User != "":
		opts.Username, opts.Password = o.Auth.User, o.Auth.Password
	case o.Auth.NKeySeed != "":
		pub, err := o.Auth.nkeyPublic()
		if err != nil {
			return err
		}
		opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	}
	if !o.TLS.IsZero() {
		tc, err := o.TLS.ServerConfig()
		if err != nil {
			return err
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, tc.ClientCAs != nil
		opts.TLSTimeout = 2
	}
	if opts.Cluster.Port == 0 && len(opts.Routes) == 0 {
		return nil
	}
	if !IsLoopback(opts.Cluster.Host) && o.ClusterUser == "" {
		return fmt.Errorf("%w: embedded nats route listener %s is not loopback and has no route auth", ErrBadConfig, hostPort(opts.Cluster.Host, opts.Cluster.Port))
	}
	if (o.ClusterUser == "") != (o.ClusterPassword == "") {
		return fmt.Errorf("%w: route user and password go together", ErrBadConfig)
	}
	opts.Cluster.Username, opts.Cluster.Password = o.ClusterUser, o.ClusterPassword
	if !o.ClusterTLS.IsZero() {
		tc, err := o.ClusterTLS.RouteConfig()
		if err != nil {
			return err
		}
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, 2
	}
	return nil
}

func hostPort(host string, port int) string {
	return host + ":" + strconv.Itoa(port)
}

// natsLogger hands the embedded server's log lines to slog: notices at
// debug (the server is chatty at start), warnings and errors as such; a
// fatal error is logged, the process is not ended from here. Warnings and
// errors of network client connections go to clients instead, and those
// of route connections to routes (when set).
type natsLogger struct {
	l               *slog.Logger
	clients, routes *connErrors
	fatal           chan<- string // the first fatal message (StartEmbedded's wait); nil: none
}

var _ server.Logger = natsLogger{}

func (n natsLogger) logf(level slog.Level, format string, v []any) {
	if level >= slog.LevelWarn && n.clients != nil {
		msg := fmt.Sprintf(format, v...)
		switch networkConnKind(msg) {
		case "cid:", "wid:", "mid:", "mid_ws:":
			n.clients.add(msg)
			return
		case "rid:":
			n.routes.add(msg)
			return
		}
		n.l.Log(context.Background(), level, msg)
		return
	}
	if n.l.Enabled(context.Background(), level) {
		n.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (n natsLogger) Noticef(format string, v ...any) { n.logf(slog.LevelDebug, format, v) }
func (n natsLogger) Warnf(format string, v ...any)   { n.logf(slog.LevelWarn, format, v) }
func (n natsLogger) Errorf(format string, v ...any)  { n.logf(slog.LevelError, format, v) }
func (n natsLogger) Fatalf(format string, v ...any) {
	n.logf(slog.LevelError, format, v)
	if n.fatal != nil {
		select {
		case n.fatal <- fmt.Sprintf(format, v...):
		default:
		}
	}
}
func (n natsLogger) Debugf(format string, v ...any) { n.logf(slog.LevelDebug, format, v) }
func (n natsLogger) Tracef(format string, v ...any) { n.logf(slog.LevelDebug-4, format, v) }

// networkConnKind is the kind of connection a server log line is about
// when it came over the network: nats-server starts those lines with the
// connection's address, kind and id, "203.0.113.9:51234 - cid:17 - ":
// "cid:" (a client), "wid:" (websocket), "mid:" / "mid_ws:" (MQTT), "rid:"
// (a route). The in-process connection ("pipe - cid:1") and the server's
// own lines give "".
func networkConnKind(msg string) string {
	addr, rest, ok := strings.Cut(msg, " - ")
	if !ok || addr == "pipe" || strings.ContainsRune(addr, ' ') {
		return ""
	}
	for _, kind := range []string{"cid:", "wid:", "mid:", "mid_ws:", "rid:"} {
		if id, ok := strings.CutPrefix(rest, kind); ok {
			n := 0
			for n < len(id) && id[n] >= '0' && id[n] <= '9' {
				n++
			}
			if n > 0 && strings.HasPrefix(id[n:], " - ") {
				return kind
			}
			return ""
		}
	}
	return ""
}

// connErrors counts the client (or route) connection warnings and errors
// and sums them up in one line (msg) per interval: a flood of bad
// connections costs a line a minute, not one per connection.
type connErrors struct {
	l     *slog.Logger
	msg   string
	total *atomic.Uint64
	mu    sync.Mutex
	n     uint64 // since the last line
	first string // the first since the last line
}

// maxConnSample bounds the sample line (it quotes what a peer sent).
const maxConnSample = 256

func newConnErrors(l *slog.Logger, msg string, total *atomic.Uint64) *connErrors {
	if total == nil {
		total = new(atomic.Uint64)
	}
	return &connErrors{l: l, msg: msg, total: total}
}

func (c *connErrors) add(msg string) {
	c.total.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		if len(msg) > maxConnSample {
			msg = msg[:maxConnSample] + "..."
		}
		c.first = strings.ToValidUTF8(msg, "?")
	}
	c.n++
}

// run writes a line every interval that saw errors, and one for the last
// of them once stopped is closed.
func (c *connErrors) run(every time.Duration, stopped <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.flush()
		case <-stopped:
			c.flush()
			return
		}
	}
}

func (c *connErrors) flush() {
	c.mu.Lock()
	n, first := c.n, c.first
	c.n, c.first = 0, ""
	c.mu.Unlock()
	if n > 0 {
		c.l.Warn(c.msg, "count", n, "total", c.total.Load(), "first", first)
	}
}
