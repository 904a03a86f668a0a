package bidder

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// admin_tokens: names checked by the config, tokens by the secrets, and a
// non-loopback admin listener may rely on them alone.
func TestAdminTokensConfig(t *testing.T) {
	f := func(body, wantErr string) {
		t.Helper()
		_, err := LoadConfig(writeConfig(t, "model: {gbdt: m.json}\n"+body), Overrides{})
		if (err == nil) != (wantErr == "") || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("%q: %v, want %q", body, err, wantErr)
		}
	}
	f("admin_tokens: [{name: ops-alice, token: env:A}, {name: bob@ops, token: env:B}]\n", "")
	f("admin_listen: 0.0.0.0:8081\nadmin_public: true\nadmin_tokens: [{name: ops, token: env:A}]\n", "")
	f("admin_tokens: [{name: ops, token: env:A}, {name: ops, token: env:B}]\n", `admin_tokens[1].name: "ops" is taken`)
	f("admin_token: env:T\nadmin_tokens: [{name: admin, token: env:A}]\n", `admin_tokens[0].name: "admin" is taken`)
	f("admin_tokens: [{name: admin, token: env:A}]\n", "")
	f("admin_tokens: [{name: 'a b', token: env:A}]\n", "admin_tokens[0].name")
	f("admin_tokens: [{name: '', token: env:A}]\n", "admin_tokens[0].name")
	f("admin_tokens: [{name: ops}]\n", "admin_tokens[0].token: missing")

	t.Setenv("AT_ONE", "token-one-0123456789")
	t.Setenv("AT_TWO", "token-two-0123456789")
	c := &Config{AdminToken: "env:AT_ONE", AdminTokens: []AdminTokenConfig{{Name: "ops", Token: "env:AT_TWO"}}}
	s, err := resolveSecrets(c, false)
	if err != nil || len(s.adminTokens) != 2 || s.adminTokens[0] != (namedToken{"admin", "token-one-0123456789"}) ||
		s.adminTokens[1] != (namedToken{"ops", "token-two-0123456789"}) {
		t.Fatalf("resolved %+v, %v", s, err)
	}
	c.AdminTokens = []AdminTokenConfig{{Name: "a", Token: "short"}, {Name: "b", Token: "env:AT_ONE"}, {Name: "c", Token: "env:AT_UNSET"}}
	_, err = resolveSecrets(c, false)
	for _, w := range []string{"admin_tokens[0].token: needs at least 16 bytes", "admin_tokens[1].token: the same token", "admin_tokens[2].token: environment variable AT_UNSET"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not say %q", err, w)
		}
	}
}

// requireBearer tells who: the name of the token presented.
func TestRequireBearerNames(t *testing.T) {
	tokens := []namedToken{{"admin", "token-one-0123456789"}, {"ops", "token-two-0123456789"}}
	h := requireBearer(tokens, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(adminWho(r))) }))
	f := func(auth string, code int, who string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/admin/status", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != code || (code == 200 && w.Body.String() != who) {
			t.Errorf("%q: %d %q, want %d %q", auth, w.Code, w.Body.String(), code, who)
		}
	}
	f("Bearer token-one-0123456789", 200, "admin")
	f("bearer token-two-0123456789", 200, "ops")
	f("Bearer token-three-0123456789", 401, "")
	f("", 401, "")
	open := requireBearer(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(adminWho(r))) }))
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "127.0.0.1:8081"
	open.ServeHTTP(w, r)
	if w.Body.String() != anonymous {
		t.Fatalf("without tokens: %q", w.Body.String())
	}
}

// Without tokens the admin API answers only requests addressed to a
// loopback host: a web page whose name was rebound to 127.0.0.1 sends its
// own name as Host (and as Origin, so the Origin check passes it).
func TestAdminWithoutTokensRefusesOtherHosts(t *testing.T) {
	open := requireBearer(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, c := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:8081", 200},
		{"127.0.0.1", 200},
		{"127.1.2.3:8081", 200},
		{"[::1]:8081", 200},
		{"[::1]", 200},
		{"localhost:8081", 200},
		{"LocalHost", 200},
		{"", 200},
		{"evil.example:8081", 403},
		{"evil.example", 403},
		{"localhost.evil.example:8081", 403},
		{"10.0.0.5:8081", 403},
		{"[::ffff:10.0.0.5]:8081", 403},
		{"0.0.0.0:8081", 403},
	} {
		r := httptest.NewRequest("POST", "/admin/pause?all=1", nil)
		r.Host = c.host
		w := httptest.NewRecorder()
		open.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("Host %q: %d, want %d", c.host, w.Code, c.want)
		}
	}
}
