package budget

import (
	"fmt"
	"net/url"
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
	// Quiet turns the server's own logging off (default logs nothing either way
	// unless Logger is set by the caller on the returned server).
}

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
			opts.Routes = append(opts.Routes, u)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("budget: embedded nats: %w", err)
	}
	go srv.Start()
	wait := o.ReadyTimeout
	if wait == 0 {
		wait = 10 * time.Second
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, fmt.Errorf("budget: embedded nats not ready after %v", wait)
	}
	return srv, nil
}
