package bidder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/budget"
)

func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	if err := os.WriteFile(file, []byte("from-a-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	t.Setenv("EDGE_TEST_SECRET", "from-the-environment")
	t.Setenv("EDGE_TEST_EMPTY", "")
	cases := []struct {
		spec, want, err string
	}{
		{"literal-value", "literal-value", ""},
		{"env:EDGE_TEST_SECRET", "from-the-environment", ""},
		{"env:EDGE_TEST_EMPTY", "", "EDGE_TEST_EMPTY is not set or empty"},
		{"env:EDGE_TEST_UNSET_X", "", "EDGE_TEST_UNSET_X is not set or empty"},
		{"file:" + file, "from-a-file-0123", ""},
		{"file:" + filepath.Join(dir, "missing"), "", "no such file"},
		{"file:" + filepath.Join(dir, "empty"), "", "is empty"},
	}
	for _, c := range cases {
		got, err := secret("some.field", c.spec)
		if c.err != "" {
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "some.field") {
				t.Errorf("%s: error %v, want one naming some.field and %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.spec, got, err, c.want)
		}
	}
}

// Every secret-bearing field takes env: and file: sources.
func TestResolveSecretsEverySource(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	seed := testSeed(t)
	t.Setenv("EDGE_ADMIN", "admin-token-0123456789")
	t.Setenv("EDGE_ROUTE_PASS", "route-secret")
	c := &Config{
		AdminToken: "env:EDGE_ADMIN",
		Notices:    NoticeConfig{Keys: []string{"file:" + write("k1", "current-key-0123456789"), "env:EDGE_ADMIN"}},
		Budget: BudgetConfig{
			Auth: NATSAuthConfig{User: "file:" + write("user", "bidder"), Password: "file:" + write("pass", "nats-secret")},
			EmbeddedCluster: ClusterConfig{Listen: "127.0.0.1:6222",
				Auth: NATSAuthConfig{User: "route", Password: "env:EDGE_ROUTE_PASS"}},
		},
	}
	c.Defaults()
	s, err := resolveSecrets(c, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.adminToken != "admin-token-0123456789" || string(s.noticeKeys[0]) != "current-key-0123456789" ||
		string(s.noticeKeys[1]) != "admin-token-0123456789" || s.natsAuth.User != "bidder" ||
		s.natsAuth.Password != "nats-secret" || s.routeUser != "route" || s.routePass != "route-secret" {
		t.Fatalf("resolved %+v", s)
	}
	c.Budget.Auth = NATSAuthConfig{NKeySeed: "file:" + write("seed", seed)}
	if s, err = resolveSecrets(c, false); err != nil || s.natsAuth.NKeySeed != seed {
		t.Fatalf("nkey seed from a file: %q, %v", s.natsAuth.NKeySeed, err)
	}
	// Every problem at once, each naming its field.
	c.AdminToken, c.Notices.Keys = "env:EDGE_UNSET_1", []string{"short"}
	c.Budget.Auth = NATSAuthConfig{NKeySeed: "env:EDGE_UNSET_2"}
	_, err = resolveSecrets(c, false)
	for _, w := range []string{"admin_token", "notices.keys[0]", "at least 16 bytes", "budget.auth.nkey_seed"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %q", err, w)
		}
	}
	// A value too short names where it came from: the field's written
	// value (file:...) looked fine (an outside audit).
	short := write("short", "5byte")
	t.Setenv("EDGE_SHORT", "tiny")
	c.Budget.Auth = NATSAuthConfig{}
	c.AdminToken, c.Notices.Keys = "env:EDGE_SHORT", []string{"file:" + short}
	c.AdminTokens = []AdminTokenConfig{{Name: "ops", Token: "file:" + short}}
	_, err = resolveSecrets(c, false)
	for _, w := range []string{"notices.keys[0]: a notice key needs at least 16 bytes, it has 5 (from file " + short + ")",
		"admin_token: needs at least 16 bytes (from environment variable EDGE_SHORT)",
		"admin_tokens[0].token: needs at least 16 bytes (from file " + short + ")"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not say %q", err, w)
		}
	}
}

func TestNoticeKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "notice.key")
	n := &NoticeConfig{KeyFile: path}
	// -check-config does not create it.
	if keys, _, err := noticeKeys(n, false); err != nil || keys != nil {
		t.Fatalf("check without a key file: %v %v", keys, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check created the key file: %v", err)
	}
	k1, gen, err := noticeKeys(n, true)
	if err != nil || !gen || len(k1) != 1 || len(k1[0]) != keyFileLen {
		t.Fatalf("first start: %q gen=%v %v", k1, gen, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode(), err)
	}
	k2, gen, err := noticeKeys(n, true)
	if err != nil || gen || !bytes.Equal(k1[0], k2[0]) {
		t.Fatalf("restart: key changed (%q -> %q) or regenerated (%v): %v", k1[0], k2[0], gen, err)
	}
	// The same file as a file: source gives the same key (for other instances).
	k3, _, err := noticeKeys(&NoticeConfig{Key: "file:" + path}, false)
	if err != nil || !bytes.Equal(k1[0], k3[0]) {
		t.Fatalf("file: source of the key file: %q %v", k3, err)
	}
	// Wider permissions are refused, with the fix in the message.
	os.Chmod(path, 0o644)
	if _, _, err := noticeKeys(n, true); !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 key file: %v", err)
	}
	os.Chmod(path, 0o600)
	for _, bad := range []string{"abc\n", strings.Repeat("a", keyFileLen+1), strings.Repeat("z", keyFileLen)} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, _, err := noticeKeys(n, true); !errors.Is(err, ErrKeyFileBad) {
			t.Fatalf("key file %q: %v, want ErrKeyFileBad", bad, err)
		}
	}
	// CheckConfig reports a bad key file too.
	cfg := &Config{CampaignsDir: "testdata/campaigns", Model: ModelConfig{GBDT: "../configs/models/gbdt.manifest.json", Provider: "off"},
		Notices: NoticeConfig{KeyFile: path}}
	cfg.Defaults()
	if err := CheckConfig(cfg); !errors.Is(err, ErrKeyFileBad) {
		t.Fatalf("CheckConfig with a bad key file: %v", err)
	}
}

// Rotation: the first key signs, any verifies; a key dropped from the list
// no longer verifies.
func TestNoticeKeyRotation(t *testing.T) {
	oldKey, newKey := []byte("old-key-0123456789"), []byte("new-key-0123456789")
	tok := &bidToken{AuctionID: []byte("a"), ImpID: []byte("1"), Campaign: []byte("c"), Creative: []byte("cr"),
		PriceMicros: 2_000_000, ChargeMicros: 2000, Hold: 7, Expiry: time.Now().Add(time.Hour)}
	signer := func(keys ...[]byte) budgetSigner {
		t.Helper()
		s, err := newBudgetSigner("i", keys...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	billToken := func(s budgetSigner, tok *bidToken) []byte {
		var ends [numNoticeKinds]int
		all := s.appendTokens(nil, tok, &ends)
		return all[ends[noticeBill-1]:ends[noticeBill]]
	}
	before, rotated, after := signer(oldKey), signer(newKey, oldKey), signer(newKey)
	oldTok := billToken(before, tok)
	newTok := billToken(rotated, tok)
	now := time.Now()
	f := func(name string, s budgetSigner, token []byte, want error) {
		t.Helper()
		got, err := s.parseToken(token, nil, noticeBill, now)
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", name, err, want)
		}
		if err == nil && (got.Hold != 7 || string(got.AuctionID) != "a") {
			t.Fatalf("%s: token %+v", name, got)
		}
	}
	f("old token, rotated keys", rotated, oldTok, nil)
	f("new token, rotated keys", rotated, newTok, nil)
	f("new token signed with the new key", after, newTok, nil)
	f("old token after the old key is dropped", after, oldTok, ErrNoticeForged)
	f("new token under the old key alone", before, newTok, ErrNoticeForged)
	expired := billToken(rotated, &bidToken{AuctionID: []byte("a"), ImpID: []byte("1"), Expiry: now.Add(-time.Minute)})
	f("expired under the second key", signer([]byte("other-key-0123456789"), newKey), expired, ErrNoticeExpired)
}

// A setup other instances share needs an explicit notice key: Validate (so
// -check-config and start) refuses it, naming the setting.
func TestMultiInstanceNeedsSharedKey(t *testing.T) {
	f := func(body string, want ...string) {
		t.Helper()
		_, err := LoadConfig(writeConfig(t, "model: {gbdt: m.json}\n"+body), Overrides{})
		if len(want) == 0 {
			if err != nil {
				t.Fatalf("%q: %v", body, err)
			}
			return
		}
		for _, w := range append(want, "notices.key") {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Fatalf("%q: error %v does not name %q", body, err, w)
			}
		}
	}
	f("budget: {nats_urls: [nats://10.0.0.1:4222]}\n", "budget.nats_urls")
	f("budget: {embedded_listen: 127.0.0.1:4222}\n", "budget.embedded_listen")
	f("budget: {embedded_cluster: {name: x, listen: 127.0.0.1:6222}}\n", "budget.embedded_cluster")
	f("budget: {nats_urls: [nats://10.0.0.1:4222]}\nnotices: {key: env:BIDDER_NOTICE_KEY}\n")
	f("budget: {embedded_listen: 127.0.0.1:4222}\nnotices: {keys: [a-long-enough-key-1, a-long-enough-key-0]}\n")
	f("") // a single instance: the generated key is fine
	f("notices: {key: a-long-enough-key-1, keys: [a-long-enough-key-2]}\n", "notices.keys")
}

// The NATS listeners: a non-loopback address without auth is refused.
func TestNATSListenersNeedAuth(t *testing.T) {
	base := "model: {gbdt: m.json}\nnotices: {key: env:K}\n"
	f := func(body string, want string) {
		t.Helper()
		_, err := LoadConfig(writeConfig(t, base+body), Overrides{})
		if want == "" {
			if err != nil {
				t.Fatalf("%q: %v", body, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%q: error %v, want one naming %q", body, err, want)
		}
	}
	f("budget: {embedded_listen: 0.0.0.0:4222}\n", "budget.embedded_listen")
	f("budget: {embedded_listen: 10.1.2.3:4222, auth: {user: u, password: env:P}}\n", "")
	f("budget: {embedded_listen: 10.1.2.3:4222, auth: {nkey_seed: file:/s}}\n", "")
	f("budget: {embedded_cluster: {listen: 0.0.0.0:6222}}\n", "budget.embedded_cluster.listen")
	f("budget: {embedded_cluster: {listen: 10.1.2.3:6222, auth: {user: r, password: env:R}}}\n", "")
	f("budget: {embedded_cluster: {listen: 127.0.0.1:6222, auth: {nkey_seed: x}}}\n", "routes take user and password only")
	f("budget: {auth: {user: u, password: p, nkey_seed: s}}\n", "budget.auth")
	f("budget: {auth: {credentials: /x.creds}}\n", "budget.auth.credentials")
	f("budget: {nats_urls: [tls://n:4222], auth: {credentials: /x.creds}, tls: {ca_file: /ca.pem}}\n", "")
	f("budget: {tls: {ca_file: /ca.pem}}\n", "budget.tls")
}

// The admin listener: a non-loopback address needs admin_public and a token.
func TestAdminListenNeedsToken(t *testing.T) {
	f := func(body string, ok bool) {
		t.Helper()
		_, err := LoadConfig(writeConfig(t, "model: {gbdt: m.json}\n"+body), Overrides{})
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "admin_token")) {
			t.Fatalf("%q: %v (want ok=%v)", body, err, ok)
		}
	}
	f("admin_listen: 0.0.0.0:8081\n", false)
	f("admin_listen: 0.0.0.0:8081\nadmin_public: true\n", false)
	f("admin_listen: 0.0.0.0:8081\nadmin_token: env:T\n", false)
	f("admin_listen: 0.0.0.0:8081\nadmin_public: true\nadmin_token: env:T\n", true)
	f("admin_listen: 127.0.0.1:8081\n", true)
}

func testSeed(t *testing.T) string {
	t.Helper()
	// A fixed user seed (nkeys.CreateUser output), test-only.
	const seed = "SUAMOCSOGQ3KOW6NW75IAYLEJYOMT43URAXB5RUKFMAI7P6T7J45LGKVLU"
	if err := (budget.Auth{NKeySeed: seed}).Validate(); err != nil {
		t.Fatalf("test seed: %v", err)
	}
	return seed
}
