package budget

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testSeed is a throwaway nkey user seed (nkeys.CreateUser), and testPub its
// public key.
const (
	testSeed = "SUAMOCSOGQ3KOW6NW75IAYLEJYOMT43URAXB5RUKFMAI7P6T7J45LGKVLU"
	testPub  = "UABTO7OTG5DZUUHDVWRL2GBHJAXBHB2D3VI5GOWR7F7KU4H2BLAGVUZH"
)

// testPKI writes a throwaway CA and, signed by it, a certificate for
// 127.0.0.1 (server and client use) and a second CA nobody trusts.
type testPKI struct{ ca, cert, key, otherCA string }

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	mkCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := newKey()
		tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, k, der
	}
	ca, caKey, caDER := mkCA("openbidder test CA")
	_, _, otherDER := mkCA("untrusted CA")
	k := newKey()
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{ca: write("ca.pem", "CERTIFICATE", caDER), cert: write("cert.pem", "CERTIFICATE", der),
		key: write("key.pem", "EC PRIVATE KEY", kder), otherCA: write("other-ca.pem", "CERTIFICATE", otherDER)}
}

// One TLS connection: a Manager reaches an embedded server over mutual TLS
// with a password; a client with an untrusted CA, without a certificate or
// without the password is refused.
func TestNATSTLSAndAuth(t *testing.T) {
	pki := newTestPKI(t)
	tlsFiles := TLSFiles{CAFile: pki.ca, CertFile: pki.cert, KeyFile: pki.key}
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Port: -1, ReadyTimeout: 30 * time.Second,
		Auth: Auth{User: "bidder", Password: "s3cret"}, TLS: tlsFiles})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	m, err := New(Config{InstanceID: "tls", URLs: []string{url}, Auth: Auth{User: "bidder", Password: "s3cret"},
		TLS: tlsFiles, SyncPeriod: 100 * time.Millisecond}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if err := m.SetCampaigns([]Campaign{campaign("c", micros(10))}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatalf("start over TLS: %v", err)
	}
	if st, err := m.nc.TLSConnectionState(); err != nil || !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		t.Fatalf("not a TLS connection: %v", err)
	}
	refused := func(name string, opts ...nats.Option) {
		t.Helper()
		nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", name)
		}
	}
	secure := func(f TLSFiles) nats.Option {
		tc, err := f.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		return nats.Secure(tc)
	}
	refused("no TLS, no password")
	refused("untrusted CA", secure(TLSFiles{CAFile: pki.otherCA, CertFile: pki.cert, KeyFile: pki.key}), nats.UserInfo("bidder", "s3cret"))
	refused("no client certificate", secure(TLSFiles{CAFile: pki.ca}), nats.UserInfo("bidder", "s3cret"))
	refused("wrong password", secure(tlsFiles), nats.UserInfo("bidder", "guess"))
	nc, err := nats.Connect(url, secure(tlsFiles), nats.UserInfo("bidder", "s3cret"))
	if err != nil {
		t.Fatalf("the right credentials: %v", err)
	}
	nc.Close()
}

// An nkey: the server knows the public key, the Manager signs with the seed
// (in-process connection), a password client is refused.
func TestNATSNkeyAuth(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Port: -1, ReadyTimeout: 30 * time.Second,
		Auth: Auth{NKeySeed: testSeed}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if pub, _ := (Auth{NKeySeed: testSeed}).nkeyPublic(); pub != testPub {
		t.Fatalf("public key %s", pub)
	}
	m := natsManagerAuth(t, "nk", nil, srv, 1, Auth{NKeySeed: testSeed}, campaign("c", micros(10)))
	defer m.Close(context.Background())
	if ok, why := m.Ready(); !ok {
		t.Fatalf("in-process nkey client not ready: %s", why)
	}
	if nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("x", "y"), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a password client got in")
	}
}

// The embedded server refuses to listen beyond loopback without auth.
func TestEmbeddedRefusesOpenListeners(t *testing.T) {
	cases := []struct {
		name string
		o    EmbeddedOptions
		want string
	}{
		{"client listener", EmbeddedOptions{Host: "0.0.0.0", Port: -1}, "client listener"},
		{"route listener", EmbeddedOptions{Auth: Auth{User: "u", Password: "p"}, ClusterName: "x", ClusterHost: "0.0.0.0", ClusterPort: -1}, "route listener"},
		{"route half credentials", EmbeddedOptions{ClusterName: "x", ClusterPort: -1, ClusterUser: "u"}, "route user and password"},
		{"user without password", EmbeddedOptions{Auth: Auth{User: "u"}}, "user and password"},
		{"two identities", EmbeddedOptions{Auth: Auth{User: "u", Password: "p", NKeySeed: testSeed}}, "one of"},
		{"bad seed", EmbeddedOptions{Auth: Auth{NKeySeed: "SUxxx"}}, "nkey seed"},
		{"creds file", EmbeddedOptions{Auth: Auth{CredsFile: "/x.creds"}}, "not a credentials file"},
		{"tls without cert", EmbeddedOptions{TLS: TLSFiles{CAFile: "/ca.pem"}}, "cert_file"},
	}
	for _, c := range cases {
		c.o.StoreDir = t.TempDir()
		srv, err := StartEmbedded(c.o)
		if err == nil {
			srv.Shutdown()
		}
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadConfig naming %q", c.name, err, c.want)
		}
	}
}

func natsManagerAuth(t *testing.T, inst string, urls []string, srv *server.Server, replicas int, auth Auth, cs ...Campaign) *Manager {
	t.Helper()
	m, err := New(Config{
		InstanceID: inst, URLs: urls, Server: srv, Replicas: replicas, Auth: auth,
		HoldTTL: 300 * time.Millisecond, LeaseTTL: 1500 * time.Millisecond, SyncPeriod: 100 * time.Millisecond,
		ReclaimWait: 200 * time.Millisecond, MinLease: 50_000, MaxLease: 2_000_000, MaxHolds: 1 << 14,
	}, quietLog())
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
	return m
}

// Three instances on a three-node cluster whose routes and clients all
// authenticate: spend from all three stays within the budget, every charge
// once; an anonymous client cannot reach the store.
func TestThreeInstancesAuthenticatedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	auth := Auth{User: "bidder", Password: "client-secret"}
	var srvs []*server.Server
	for attempt := 0; attempt < 3 && srvs == nil; attempt++ { // a picked port can be taken before it binds
		ports := []int{freePort(t), freePort(t), freePort(t)}
		var routes []string
		for _, p := range ports {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
		var err error
		for i := range 3 {
			var s *server.Server
			s, err = StartEmbedded(EmbeddedOptions{
				ServerName: fmt.Sprintf("a%d", i), StoreDir: t.TempDir(), Port: -1, ReadyTimeout: 30 * time.Second,
				Auth: auth, ClusterName: "auth-test", ClusterPort: ports[i], Routes: routes,
				ClusterUser: "route", ClusterPassword: "route-secret",
			})
			if err != nil {
				break
			}
			srvs = append(srvs, s)
		}
		if err != nil {
			for _, s := range srvs {
				s.Shutdown()
			}
			srvs = nil
			t.Logf("attempt %d: %v", attempt+1, err)
		}
	}
	if srvs == nil {
		t.Fatal("no cluster")
	}
	defer func() {
		for _, s := range srvs {
			s.Shutdown()
		}
	}()
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, s := range srvs {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == 3 {
				return nil
			}
		}
		return fmt.Errorf("no meta leader with three peers (routes not authenticated?)")
	})
	if nc, err := nats.Connect(srvs[0].ClientURL(), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client reached the cluster")
	}
	const budgetMicros = 2_000_000
	c := campaign("c", budgetMicros)
	var ms []*Manager
	for i, s := range srvs {
		ms = append(ms, natsManagerAuth(t, fmt.Sprintf("b%d", i), []string{s.ClientURL()}, nil, 3, auth, c))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	spent := int64(0)
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := m.Handle("c")
			end := time.Now().Add(3 * time.Second)
			for n := 0; time.Now().Before(end) && n < 400; n++ {
				if spendOnce(m, h, fmt.Sprintf("b%d-%d", i, n), 10_000) {
					mu.Lock()
					spent += 10_000
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, m := range ms {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	url := srvs[0].ClientURL()
	if spent == 0 || spent > budgetMicros {
		t.Fatalf("spent %d of %d", spent, budgetMicros)
	}
	r := getRecordAuth(t, url, auth, "c")
	if r.SpentTotal != spent {
		t.Fatalf("record spent %d, managers charged %d", r.SpentTotal, spent)
	}
}

func getRecordAuth(t *testing.T, url string, auth Auth, campaign string) Record {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(auth.User, auth.Password))
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
	r, err := (&kvStore{kv: kv}).Get(ctx, campaign)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
