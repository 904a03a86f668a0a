package budget

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Auth is how a NATS client proves who it is, and, on the embedded server,
// the one identity it accepts. At most one of user/password, an nkey seed or
// a credentials file. Values are the secrets themselves (the bidder resolves
// env: and file: sources before they get here), except CredsFile, a path.
type Auth struct {
	User     string
	Password string
	// NKeySeed is an nkey user seed ("SU..."); the server knows its public key.
	NKeySeed string
	// CredsFile is a decentralized-auth .creds file (user JWT and seed), for an
	// external cluster in operator mode; the embedded server does not take it.
	CredsFile string
}

// IsZero reports whether no authentication is configured.
func (a Auth) IsZero() bool { return a == Auth{} }

func (a Auth) Validate() error {
	n := 0
	for _, set := range []bool{a.User != "" || a.Password != "", a.NKeySeed != "", a.CredsFile != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return fmt.Errorf("%w: nats auth: give one of user/password, nkey seed or credentials file", ErrBadConfig)
	case (a.User == "") != (a.Password == ""):
		return fmt.Errorf("%w: nats auth: user and password go together", ErrBadConfig)
	}
	if a.NKeySeed != "" {
		if _, err := nkeys.FromSeed([]byte(a.NKeySeed)); err != nil {
			return fmt.Errorf("%w: nats auth: nkey seed: %v", ErrBadConfig, err)
		}
	}
	return nil
}

// nkeyPublic is the public key of the seed ("U...").
func (a Auth) nkeyPublic() (string, error) {
	kp, err := nkeys.FromSeed([]byte(a.NKeySeed))
	if err != nil {
		return "", fmt.Errorf("%w: nats auth: nkey seed: %v", ErrBadConfig, err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

// options are the nats.Options that present these credentials.
func (a Auth) options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	switch {
	case a.User != "":
		return []nats.Option{nats.UserInfo(a.User, a.Password)}, nil
	case a.CredsFile != "":
		if _, err := os.Stat(a.CredsFile); err != nil {
			return nil, fmt.Errorf("%w: nats credentials file: %v", ErrBadConfig, err)
		}
		return []nats.Option{nats.UserCredentials(a.CredsFile)}, nil
	case a.NKeySeed != "":
		pub, err := a.nkeyPublic()
		if err != nil {
			return nil, err
		}
		seed := []byte(a.NKeySeed)
		return []nats.Option{nats.Nkey(pub, func(nonce []byte) ([]byte, error) {
			kp, err := nkeys.FromSeed(seed)
			if err != nil {
				return nil, err
			}
			defer kp.Wipe()
			return kp.Sign(nonce)
		})}, nil
	}
	return nil, nil
}

// TLSFiles names PEM files. As a client: CAFile verifies the server (system
// roots when empty), CertFile/KeyFile are the client certificate. As a
// server: CertFile/KeyFile are the server certificate, and CAFile, when set,
// makes a client certificate signed by it mandatory (mutual TLS).
type TLSFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// IsZero reports whether no TLS is configured.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

func (f TLSFiles) load() (*tls.Config, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("%w: tls: cert_file and key_file go together", ErrBadConfig)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls: %v", ErrBadConfig, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls: %v", ErrBadConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls: %s holds no PEM certificate", ErrBadConfig, f.CAFile)
		}
		c.RootCAs, c.ClientCAs = pool, pool
	}
	return c, nil
}

// ClientConfig is the TLS config of a client of a NATS server.
func (f TLSFiles) ClientConfig() (*tls.Config, error) {
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	c.ClientCAs = nil
	return c, nil
}

// ServerConfig is the TLS config of the embedded server's client listener:
// mutual TLS when CAFile is set.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	if f.CertFile == "" {
		return nil, fmt.Errorf("%w: tls: a server needs cert_file and key_file", ErrBadConfig)
	}
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	c.RootCAs = nil
	if c.ClientCAs != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// RouteConfig is the TLS config of the embedded server's cluster routes:
// both ends present CertFile and verify the other against CAFile.
func (f TLSFiles) RouteConfig() (*tls.Config, error) {
	if f.CertFile == "" || f.CAFile == "" {
		return nil, fmt.Errorf("%w: route tls needs ca_file, cert_file and key_file", ErrBadConfig)
	}
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c, nil
}

// connOptions are the security options of the Manager's own connection:
// its credentials always, TLS only over the network (an in-process
// connection to the embedded server needs none).
func (c *Config) connOptions() ([]nats.Option, error) {
	opts, err := c.Auth.options()
	if err != nil {
		return nil, err
	}
	if c.TLS.IsZero() {
		return opts, nil
	}
	if len(c.URLs) == 0 {
		return nil, fmt.Errorf("%w: tls applies to nats URLs only", ErrBadConfig)
	}
	tc, err := c.TLS.ClientConfig()
	if err != nil {
		return nil, err
	}
	return append(opts, nats.Secure(tc)), nil
}

// IsLoopback reports whether host (an address's host part) only reaches this
// machine. "", 0.0.0.0 and :: listen everywhere.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
