package bidder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prebid/openrtb/v20/openrtb2"
)

// bidOnce posts the site-banner request under request id id and returns its
// bid.
func bidOnce(t *testing.T, app *App, id string) openrtb2.Bid {
	t.Helper()
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	return bidWith(t, app, strings.Replace(string(body), "req-site-banner", id, 1))
}

// bidWith posts body and returns its first bid (postBid: a no-bid for want
// of time is posted again).
func bidWith(t *testing.T, app *App, body string) openrtb2.Bid {
	t.Helper()
	code, resp, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", []byte(body))
	var br openrtb2.BidResponse
	if code != 200 || json.Unmarshal(resp, &br) != nil || len(br.SeatBid) == 0 || len(br.SeatBid[0].Bid) == 0 {
		t.Fatalf("bid: %d %s %s", code, why, resp)
	}
	return br.SeatBid[0].Bid[0]
}

// SIGTERM's order: readiness 503 while requests are still answered (the
// drain delay), then the listener closes, then the budget (ledger flushed,
// leases returned), the admin listener last.
func TestShutdownDrainsThenCloses(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Lifecycle.DrainDelay = time.Hour })
	release := make(chan struct{})
	waited := make(chan time.Duration, 1)
	app.drainWait = func(ctx context.Context, d time.Duration) {
		waited <- d
		<-release
	}
	done := make(chan error, 1)
	go func() { done <- app.Shutdown(context.Background()) }()
	if d := <-waited; d != time.Hour {
		t.Fatalf("drain delay %v, want the configured 1h", d)
	}
	base := "http://" + app.Addr()
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(string(body), "shutting down") {
		t.Fatalf("readyz while draining: %d %s", code, body)
	}
	b := bidOnce(t, app, "during-drain") // still served
	for _, u := range []string{"/openrtb2/bid", "/readyz", "/nope", "/notice/bill?t=forged"} {
		var resp *http.Response
		var err error
		if u == "/openrtb2/bid" {
			resp, err = http.Post(base+u, "application/json", strings.NewReader(`{"id":"x","imp":[{"id":"1"}]}`))
		} else {
			resp, err = http.Get(base + u) // answered by ctx.Error, which resets the response
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !resp.Close {
			t.Fatalf("%s while draining: %d keeps its connection open (Connection %q): clients reuse it until shutdown cuts it",
				u, resp.StatusCode, resp.Header.Get("Connection"))
		}
	}
	if code, _ := get(t, substitute(b.BURL, "1.00")); code != 200 {
		t.Fatalf("billing notice while draining: %d", code)
	}
	if code, _ := get(t, "http://"+app.AdminAddr()+"/metrics"); code != 200 {
		t.Fatalf("metrics while draining: %d", code)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", app.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the bid listener still accepts after shutdown")
	}
	if h := app.budget.Health(); h.Ready || h.Reason != "closed" {
		t.Fatalf("budget after shutdown: %+v", h)
	}
	if c, err := net.DialTimeout("tcp", app.AdminAddr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the admin listener still accepts after shutdown")
	}
}

// A negative drain delay skips the wait.
func TestShutdownWithoutDrainDelay(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Lifecycle.DrainDelay = -1 })
	app.drainWait = func(context.Context, time.Duration) { t.Error("waited with drain_delay < 0") }
	if err := app.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// With no key configured, the key generated at first start is kept beside
// the store: a notice for a bid placed before a restart is accepted after
// it (and charged once).
func TestRestartKeepsNotices(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) {
		c.Notices.Key = ""
		c.Budget.StoreDir = filepath.Join(dir, "nats")
	}
	app := startApp(t, edit)
	b := bidOnce(t, app, "before-restart")
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "notice.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("notice key file: %v %v", st, err)
	}
	app = startApp(t, edit)
	app.Server.publicURL = []byte("http://" + app.Addr())
	// The notice URL names the old port: send it to the new one.
	u := strings.Replace(substitute(b.BURL, "1.50"), between(b.BURL, "http://", "/notice"), app.Addr(), 1)
	if code, msg := get(t, u); code != 200 {
		t.Fatalf("billing notice for a bid placed before the restart: %d %s", code, msg)
	}
	if s, _ := spent(t, app, "acme-banner"); s != 1500 {
		t.Fatalf("spent %d after the notice, want 1500", s)
	}
}

// A campaign's file removed and the bidder restarted before the notices of
// its last bids came in: the restarted bidder answered their bills 503
// (budget: unknown campaign), retried by the exchange until the token
// expired, and the spend was never recorded (found by the fourth red-team
// pass). Now the bill is charged to the campaign's budget record.
func TestRestartWithoutCampaignKeepsNotices(t *testing.T) {
	dir := t.TempDir()
	camps := filepath.Join(dir, "campaigns")
	if err := os.CopyFS(camps, os.DirFS("testdata/campaigns")); err != nil {
		t.Fatal(err)
	}
	edit := func(c *Config) {
		c.CampaignsDir = camps
		c.Budget.StoreDir = filepath.Join(dir, "nats")
	}
	app := startApp(t, edit)
	b := bidOnce(t, app, "before-removal")
	if b.CID != "acme-banner" {
		t.Fatalf("bid by %s, want acme-banner (testdata/campaigns/acme.yaml)", b.CID)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(camps, "acme.yaml")); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, edit)
	u := strings.Replace(substitute(b.BURL, "1.50"), between(b.BURL, "http://", "/notice"), app.Addr(), 1)
	if code, msg := get(t, u); code != 200 {
		t.Fatalf("billing notice of a removed campaign's bid after a restart: %d %s", code, msg)
	}
	if s, _ := spent(t, app, "acme-banner"); s != 1500 {
		t.Fatalf("spent %d after the notice, want 1500", s)
	}
	if code, _ := get(t, u); code != 200 {
		t.Fatalf("the same bill again: %d, want 200 (a duplicate, charged once)", code)
	}
	if s, _ := spent(t, app, "acme-banner"); s != 1500 {
		t.Fatalf("spent %d after the bill again, want 1500", s)
	}
}

// The admin listener behind a bearer token: every path (metrics, budget,
// pprof) needs it; a wrong or missing token gets 401.
func TestAdminToken(t *testing.T) {
	t.Setenv("EDGE_ADMIN_TOKEN", "admin-token-0123456789")
	app := startApp(t, func(c *Config) { c.AdminToken = "env:EDGE_ADMIN_TOKEN" })
	base := "http://" + app.AdminAddr()
	f := func(path, auth string, want int) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s with %q: %d, want %d", path, auth, resp.StatusCode, want)
		}
		if want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without a Bearer challenge")
		}
	}
	for _, p := range []string{"/metrics", "/admin/budget", "/debug/pprof/", "/debug/pprof/cmdline"} {
		f(p, "", 401)
		f(p, "Bearer wrong-token-0123456789", 401)
		f(p, "Bearer admin-token-0123456789x", 401)
		f(p, "Basic admin-token-0123456789", 401)
		f(p, "Bearer admin-token-0123456789", 200)
		f(p, "bearer admin-token-0123456789", 200)
	}
	// The bid listener is not behind it.
	if code, _ := get(t, "http://"+app.Addr()+"/readyz"); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
}

// A client without the admin token cannot hold admin connections open
// (admin_public exposes the listener to whoever reaches it): a connection
// idle after an answer is closed after limits.idle_timeout, and a refused
// request's body is not waited for, however slowly it trickles. Before, both
// held a connection and its goroutine for good.
func TestAdminDropsStalledConnections(t *testing.T) {
	app := startApp(t, func(c *Config) {
		c.AdminToken = "admin-token-0123456789"
		c.Limits.IdleTimeout = 300 * time.Millisecond
	})
	for _, c := range []struct{ name, req string }{
		{"idle after the page", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
		{"idle after a 401", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
		{"body trickled after a 401", "POST /admin/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{\"id\":"},
		{"body trickled after a 403", "POST /admin/pause HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n" +
			"Authorization: Bearer admin-token-0123456789\r\nContent-Length: 100000\r\n\r\nall=1"},
	} {
		conn, err := net.Dial("tcp", app.AdminAddr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(c.req)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(conn) // the answer, then EOF when the server closes
		conn.Close()
		if err != nil || !bytes.HasPrefix(got, []byte("HTTP/1.1 ")) {
			t.Errorf("%s: %v after %.60q, want the answer then the connection closed", c.name, err, got)
		}
	}
}

// Three bidders, each embedding a node of one NATS cluster whose routes and
// clients authenticate (user/password from env: and file: sources): a bid
// placed on one instance is charged by a notice sent to another, and an
// anonymous client cannot reach the budget store.
func TestThreeEmbeddedBiddersWithAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	dir := t.TempDir()
	pass := filepath.Join(dir, "nats-pass")
	os.WriteFile(pass, []byte("client-secret\n"), 0o600)
	t.Setenv("EDGE_ROUTE_PASS", "route-secret")
	t.Setenv("EDGE_NOTICE_KEY", "shared-notice-key-0123456789")
	free := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	// The client and route ports are picked, closed, then bound by the
	// servers (each route names every port): one can be taken in between
	// (a run under load: "instance 1: budget: embedded nats not ready after
	// 10s"). The three start again on new ports, up to three times.
	var apps []*App
	var client [3]int
	for attempt := 0; attempt < 3 && apps == nil; attempt++ {
		var route [3]int
		var routes []string
		for i := range 3 {
			client[i], route[i] = free(), free()
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", route[i]))
		}
		cfgs := make([]*Config, 3)
		for i := range 3 {
			c := &Config{
				Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", InstanceID: fmt.Sprintf("auth-%d", i),
				CampaignsDir: "testdata/cluster-campaigns", WatchEvery: -1,
				Model:   ModelConfig{GBDT: "../configs/models/gbdt.manifest.json", Provider: "off"},
				Notices: NoticeConfig{Key: "env:EDGE_NOTICE_KEY", HoldTTL: time.Second},
				Limits:  LimitsConfig{InternalBudget: 150 * time.Millisecond},
				Budget: BudgetConfig{
					StoreDir: filepath.Join(t.TempDir(), "nats"), Replicas: 3,
					SyncPeriod: 100 * time.Millisecond, LeaseTTL: 3 * time.Second, StartTimeout: 60 * time.Second,
					EmbeddedListen: fmt.Sprintf("127.0.0.1:%d", client[i]),
					Auth:           NATSAuthConfig{User: "bidder", Password: "file:" + pass},
					EmbeddedCluster: ClusterConfig{Name: "auth-test", Listen: fmt.Sprintf("127.0.0.1:%d", route[i]), Routes: routes,
						Auth: NATSAuthConfig{User: "route", Password: "env:EDGE_ROUTE_PASS"}},
				},
				Lifecycle: LifecycleConfig{DrainDelay: -1},
			}
			c.Currency.Rates = map[string]float64{"USD": 1}
			c.Defaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			cfgs[i] = c
		}
		started := make([]*App, 3)
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range 3 { // together: each waits for the cluster's leader
			wg.Add(1)
			go func() {
				defer wg.Done()
				started[i], errs[i] = Start(context.Background(), cfgs[i], slog.New(slog.DiscardHandler))
			}()
		}
		wg.Wait()
		failed := false
		for i, err := range errs {
			if err != nil {
				t.Logf("attempt %d, instance %d: %v", attempt, i, err)
				failed = true
			}
		}
		if failed {
			for _, app := range started {
				if app != nil {
					app.Close(context.Background())
				}
			}
			continue
		}
		apps = started
	}
	if apps == nil {
		t.Fatal("the three instances did not start in three attempts")
	}
	for _, app := range apps {
		t.Cleanup(func() { app.Close(context.Background()) })
		app.Server.publicURL = []byte("http://" + app.Addr())
	}
	for _, app := range apps {
		waitFor(t, 20*time.Second, func() bool { ok, _ := app.Server.Ready(); return ok })
	}
	// The small budget is leased whole to one instance: bid on each in turn
	// until one bids, then send its billing notice to another.
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	var resp []byte
	n, from := 0, 0
	waitFor(t, 20*time.Second, func() bool {
		n++
		from = n % 3
		var code int
		code, resp, _ = post(t, "http://"+apps[from].Addr()+"/openrtb2/bid", []byte(strings.Replace(string(body), "req-site-banner", fmt.Sprint("auth-", n), 1)))
		return code == 200
	})
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	to := apps[(from+1)%3]
	u := strings.Replace(substitute(br.SeatBid[0].Bid[0].BURL, "1.00"), apps[from].Addr(), to.Addr(), 1)
	if code, msg := get(t, u); code != 200 {
		t.Fatalf("billing notice on another instance: %d %s", code, msg)
	}
	waitFor(t, 20*time.Second, func() bool { s, _ := spent(t, to, "capped"); return s == 1000 })
	if nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", client[2]), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client reached the embedded NATS")
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", client[2]), nats.UserInfo("bidder", "client-secret"))
	if err != nil {
		t.Fatalf("the configured credentials: %v", err)
	}
	nc.Close()
}

// A bill after a loss reversed the bid's provisional win charges again (a
// new generation), also on a process that never saw the win and the loss: a
// restart between the loss and the bill. It used to carry the win's ledger
// id (generation 0, same price), so the ledger took it for a replay of the
// reversed win and the billed impression cost nothing.
func TestBillAfterReversedWinAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Budget.StoreDir = filepath.Join(dir, "nats") }
	app := startApp(t, edit)
	b := bidOnce(t, app, "win-loss-restart-bill")
	for _, u := range []string{b.NURL, b.LURL} {
		if code, msg := get(t, substitute(u, "1.50")); code != 200 {
			t.Fatalf("%s: %d %s", u, code, msg)
		}
	}
	if s, _ := spent(t, app, b.CID); s != 0 {
		t.Fatalf("spent %d after a win and its loss, want 0 (reversed)", s)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, edit)
	u := strings.Replace(substitute(b.BURL, "1.50"), between(b.BURL, "http://", "/notice"), app.Addr(), 1)
	for range 2 { // the bill, then its replay: charged once
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("bill after the restart: %d %s", code, msg)
		}
		if s, _ := spent(t, app, b.CID); s != 1500 {
			t.Fatalf("spent %d after the bill, want 1500", s)
		}
	}
}

// A loss notice after a graceful restart reverses the win the previous
// process charged provisionally, over HTTP on real JetStream: the close kept
// its charge levels for the next process (budget/levels.go). Before, the
// win stood (an outside audit's rolling restart left 23 lost impressions
// charged). A bill below the win after the restart is then a duplicate.
func TestLossAfterGracefulRestartReversesWin(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Budget.StoreDir = filepath.Join(dir, "nats") }
	app := startApp(t, edit)
	won := bidOnce(t, app, "win-restart-loss")
	billed := bidOnce(t, app, "bill-restart-lower-bill")
	for _, u := range []string{substitute(won.NURL, "1.50"), substitute(billed.BURL, "1.80")} {
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("%s: %d %s", u, code, msg)
		}
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, edit)
	here := func(u string) string {
		return strings.Replace(u, between(u, "http://", "/notice"), app.Addr(), 1)
	}
	for _, u := range []string{here(substitute(won.LURL, "1.50")), here(substitute(billed.BURL, "1.70"))} {
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("after the restart %s: %d %s", u, code, msg)
		}
	}
	if s, _ := spent(t, app, won.CID); won.CID == billed.CID && s != 1800 || won.CID != billed.CID && s != 0 {
		t.Fatalf("spent %d on %s after the restart (won %s, billed %s), want the win reversed and the lower bill a duplicate",
			s, won.CID, won.CID, billed.CID)
	}
	if won.CID != billed.CID {
		if s, _ := spent(t, app, billed.CID); s != 1800 {
			t.Fatalf("spent %d on %s: a bill at 1.80, a restart, the bill at 1.70; want 1800", s, billed.CID)
		}
	}
}

// A bill replayed after two restarts, on real JetStream: the first restart's
// bill found the win standing and sealed its generation; the second finds the
// seal (not a reversal) and charges nothing more.
func TestBillReplayedAcrossTwoRestarts(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Budget.StoreDir = filepath.Join(dir, "nats") }
	app := startApp(t, edit)
	b := bidOnce(t, app, "win-restart-bill-restart-bill")
	if code, msg := get(t, substitute(b.NURL, "1.50")); code != 200 {
		t.Fatalf("win: %d %s", code, msg)
	}
	for round := range 2 {
		if err := app.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		app = startApp(t, edit)
		u := strings.Replace(substitute(b.BURL, "1.50"), between(b.BURL, "http://", "/notice"), app.Addr(), 1)
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("bill after restart %d: %d %s", round+1, code, msg)
		}
		if s, _ := spent(t, app, b.CID); s != 1500 {
			t.Fatalf("spent %d after restart %d and the bill, want 1500", s, round+1)
		}
	}
	// The event log says what was charged: the win's 1,500, not the two
	// bills the ledger took for duplicates of it (each logged as a charge of
	// 1,500 before).
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logged, raw := loggedCharge(t, dir, "win-restart-bill-restart-bill"); logged != 1500 {
		t.Fatalf("the event log charged %d micros for the impression, want 1500: %s", logged, raw)
	}
}

// A billed impression stays billed across a restart, whatever notices of it
// come after: the bill, a restart, then the win URL and the loss URL fired
// again. The replayed win finds its ledger id recorded (by the bill) and
// charges nothing; the loss then cannot tell a provisional win from a bill
// and changes nothing. Before, the replayed win was taken for a provisional
// charge and the loss reversed it: the impression cost nothing (an outside
// audit), and the event log recorded the replayed win as a charge of 1,500.
func TestBilledImpressionStaysBilledAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Budget.StoreDir = filepath.Join(dir, "nats") }
	app := startApp(t, edit)
	b := bidOnce(t, app, "bill-restart-win-loss")
	if code, msg := get(t, substitute(b.BURL, "1.50")); code != 200 {
		t.Fatalf("bill: %d %s", code, msg)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, edit)
	for _, u := range []string{b.NURL, b.LURL, b.NURL, b.LURL} {
		u = strings.Replace(substitute(u, "1.50"), between(u, "http://", "/notice"), app.Addr(), 1)
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("%s after the restart: %d %s", u, code, msg)
		}
		if s, _ := spent(t, app, b.CID); s != 1500 {
			t.Fatalf("spent %d after %s, want 1500: the bill stands", s, u)
		}
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logged, raw := loggedCharge(t, dir, "bill-restart-win-loss"); logged != 1500 {
		t.Fatalf("the event log charged %d micros for the impression, want 1500: %s", logged, raw)
	}
}

// loggedCharge sums the charged_micros the event log under dir records for
// auction, and returns the log.
func loggedCharge(t *testing.T, dir, auction string) (int64, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var logged int64
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var ev struct {
			Auction string `json:"auction"`
			Charged int64  `json:"charged_micros"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if ev.Auction == auction {
			logged += ev.Charged
		}
	}
	return logged, raw
}

// A SIGTERM while a SIGHUP's reload runs is acted on at once. The reload
// ran in the loop that reads the signals, so the shutdown (and readiness
// 503) waited for it: about a second at 5,000 campaigns, and for ever when
// the reload hung on a file (an outside audit's FIFO). Here the reload is
// held until Run has returned.
func TestSigtermDuringReload(t *testing.T) {
	if testing.Short() {
		t.Skip("signals the test process")
	}
	cfg := runConfig(t, "testdata/campaigns", "127.0.0.1:0")
	entered, release, finished := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	runReloadHook = func(reload func()) {
		entered <- struct{}{}
		<-release
		reload() // on the closed app: refused or a no-op, never a panic
		close(finished)
	}
	t.Cleanup(func() { runReloadHook = nil })
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	for end := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), `msg="bidder listening"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no start within 30 s:\n%s", logs.String())
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP started no reload")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		close(release)
		<-done
		t.Fatalf("SIGTERM waited for the reload:\n%s", logs.String())
	}
	close(release)
	<-finished
}

// A reload that SIGHUP started and the campaign files refused is on the
// status page's error list, as the directory watch's refusals are: Run
// logged it through its own logger, which does not feed that list (found
// by an outside audit: errors [] and errors_total 0 after the refusal).
func TestSighupRefusalReachesStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("signals the test process")
	}
	dir := t.TempDir()
	camps := filepath.Join(dir, "campaigns")
	if err := os.MkdirAll(camps, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(camps, "acme.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := runConfig(t, camps, "127.0.0.1:0") // the admin address bound is read from the start's log line
	reloaded := make(chan struct{}, 1)
	runReloadHook = func(reload func()) { reload(); reloaded <- struct{}{} }
	t.Cleanup(func() { runReloadHook = nil })
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	for end := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), `msg="bidder listening"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no start within 30 s:\n%s", logs.String())
		}
	}
	admin := between(logs.String(), `msg="bidder listening" `, "\n")
	admin = between(admin+" ", "admin=", " ")
	if admin == "" {
		t.Fatalf("no admin address in the start's log line:\n%s", logs.String())
	}
	defer func() {
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if err := os.WriteFile(filepath.Join(camps, "zz-typo.yaml"), []byte("id: typo\nbudget: {daily: \"-1\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP reloaded nothing")
	}
	resp, err := http.Get("http://" + admin + "/admin/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Instance struct {
			CampaignReloadRefused bool `json:"campaign_reload_refused"`
		} `json:"instance"`
		Errors      []struct{ Msg string } `json:"errors"`
		ErrorsTotal uint64                 `json:"errors_total"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range st.Errors {
		found = found || strings.Contains(e.Msg, "campaign reload refused")
	}
	if !found || st.ErrorsTotal == 0 {
		t.Fatalf("status errors %+v (total %d), want the refused reload", st.Errors, st.ErrorsTotal)
	}
	// And the header says so while it lasts: the error list alone keeps the
	// refusal after a later reload published, and never says it is over.
	if !st.Instance.CampaignReloadRefused {
		t.Fatal("status instance.campaign_reload_refused false after a refused reload")
	}
}

// runConfig is the config the Run tests start: GBDT only, no drain delay,
// no directory watch, a temporary store.
func runConfig(t *testing.T, camps, admin string) *Config {
	t.Helper()
	cfg := &Config{
		Listen: "127.0.0.1:0", AdminListen: admin, InstanceID: "run", CampaignsDir: camps, WatchEvery: -1,
		Model:     ModelConfig{GBDT: "../configs/models/gbdt.manifest.json", Provider: "off"},
		Notices:   NoticeConfig{Key: "e2e-key-0123456789"},
		Budget:    BudgetConfig{StoreDir: filepath.Join(t.TempDir(), "nats")},
		Lifecycle: LifecycleConfig{DrainDelay: -1},
	}
	cfg.Currency.Rates = map[string]float64{"USD": 1, "EUR": 1.1}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A win and a higher bill, a restart, then the bill and the win replayed
// (an exchange's retries), and the bill replayed at a higher price (someone
// who saw its URL): the budget charges nothing more, and the event log says
// so too. Before, a replayed win, a rise over the level a replayed bill had
// re-established, was logged as a late charge of 500 (an outside audit: the
// event log disagreed with the budget after a restart); and a notice fired
// again at a higher price raised the charge (another audit).
func TestRisingNoticesReplayedAfterRestartLogNothing(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Budget.StoreDir = filepath.Join(dir, "nats") }
	app := startApp(t, edit)
	b := bidOnce(t, app, "rise-restart-replay")
	for _, s := range []struct{ u, p string }{{b.NURL, "0.50"}, {b.BURL, "1.50"}, {b.NURL, "1.60"}} {
		if code, msg := get(t, substitute(s.u, s.p)); code != 200 {
			t.Fatalf("%s at %s: %d %s", between(s.u, "/notice/", "?"), s.p, code, msg)
		}
	}
	if s, _ := spent(t, app, b.CID); s != 1500 {
		t.Fatalf("spent %d, want 1500", s)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, edit)
	for _, s := range []struct{ u, p string }{{b.BURL, "1.50"}, {b.NURL, "0.50"}, {b.BURL, "1.90"}, {b.NURL, "1.90"}} {
		u := strings.Replace(substitute(s.u, s.p), between(s.u, "http://", "/notice"), app.Addr(), 1)
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("replayed %s at %s: %d %s", between(s.u, "/notice/", "?"), s.p, code, msg)
		}
	}
	if s, _ := spent(t, app, b.CID); s != 1500 {
		t.Fatalf("spent %d after the replays, want 1500", s)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logged, raw := loggedCharge(t, dir, "rise-restart-replay"); logged != 1500 {
		t.Fatalf("the event log charged %d micros for the impression, want 1500:\n%s", logged, raw)
	}
}

// A graceful restart gave the open holds' money back (budget.Close), and the
// next process bid it again: an outside audit spent 2x a daily budget and
// 2x a total one over HTTP (bids until the budget said no, SIGTERM, a
// restart under the same instance id, bids again, then every bill). The
// holds now go to the next process with the levels, on real JetStream: it
// bids nothing more, and the bills of the first process's bids draw from
// them.
func TestGracefulRestartDoesNotBidHeldMoneyAgain(t *testing.T) {
	dir, camps := t.TempDir(), t.TempDir()
	acme, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	small := strings.Replace(string(acme), `budget: {daily: "100.00", total: "1000.00"}`, `budget: {daily: "0.01", total: "1.00"}`, 1)
	if err := os.WriteFile(filepath.Join(camps, "acme.yaml"), []byte(small), 0o644); err != nil {
		t.Fatal(err)
	}
	edit := func(c *Config) { c.Budget.StoreDir, c.CampaignsDir = filepath.Join(dir, "nats"), camps }
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	bidAll := func(app *App, prefix string) (bids []openrtb2.Bid) {
		for i := range 8 {
			code, resp, why := post(t, "http://"+app.Addr()+"/openrtb2/bid",
				[]byte(strings.Replace(string(body), "req-site-banner", fmt.Sprint(prefix, i), 1)))
			if code == 204 {
				if string(why) != "budget" {
					t.Fatalf("no bid %s, want budget", why)
				}
				return bids
			}
			var br openrtb2.BidResponse
			if code != 200 || json.Unmarshal(resp, &br) != nil || len(br.SeatBid) == 0 {
				t.Fatalf("bid: %d %s %s", code, why, resp)
			}
			bids = append(bids, br.SeatBid[0].Bid[0])
		}
		return bids
	}
	app := startApp(t, edit)
	first := bidAll(app, "before-")
	if len(first) != 5 {
		t.Fatalf("%d bids of 2.00 CPM on a daily budget of 0.01, want 5", len(first))
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, edit)
	if _, held := spent(t, app, "acme-banner"); held != 10_000 {
		t.Fatalf("held %d after the restart, want the 10,000 of the first process's bids", held)
	}
	if again := bidAll(app, "after-"); len(again) != 0 {
		t.Fatalf("%d bids after the restart on a budget the first process's bids hold", len(again))
	}
	for _, b := range first {
		u := strings.Replace(substitute(b.BURL, "2.00"), between(b.BURL, "http://", "/notice"), app.Addr(), 1)
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("bill %s: %d %s", u, code, msg)
		}
	}
	if s, held := spent(t, app, "acme-banner"); s != 10_000 || held != 0 {
		t.Fatalf("spent %d, held %d after the five bills; want 10,000 spent, nothing held", s, held)
	}
}

// A billing URL fired first with p=0 (a price under the floor, charged at
// the floor) does not fix the charge: the exchange's own bill at the real
// price raises it. After that, the same URL fired again at a higher price
// (someone who saw it) changes nothing: only the first win and the first bill
// at or over the floor report a price.
func TestUnderFloorBillThenRealThenReplayedHigher(t *testing.T) {
	app := startApp(t, nil)
	b := bidOnce(t, app, "under-real-replay")
	for _, s := range []struct {
		p    string
		want int64
	}{{"0", 500}, {"1.50", 1500}, {"1.90", 1500}, {"0", 1500}} {
		if code, msg := get(t, substitute(b.BURL, s.p)); code != 200 {
			t.Fatalf("bill at %s: %d %s", s.p, code, msg)
		}
		if got, _ := spent(t, app, b.CID); got != s.want {
			t.Fatalf("after the bill at %s: spent %d, want %d", s.p, got, s.want)
		}
	}
}

// On an imp with no floor, a billing URL fired first with p=0 does not fix
// the charge at 0 (an outside review: the exchange's own bill was then a
// duplicate and the impression free); nor does one under the floor where
// there is one.
func TestZeroOrFloorFirstDoesNotFixTheCharge(t *testing.T) {
	app := startApp(t, nil)
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	floorless := strings.Replace(strings.Replace(string(body), "req-site-banner", "floorless-zero-first", 1), `"bidfloor":0.5,"bidfloorcur":"USD",`, "", 1)
	if floorless == string(body) {
		t.Fatal("the request's floor was not taken out")
	}
	code, b, _ := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", []byte(floorless))
	var resp openrtb2.BidResponse
	if code != 200 || json.Unmarshal(b, &resp) != nil || len(resp.SeatBid) == 0 {
		t.Fatalf("floorless bid: %d %s", code, b)
	}
	for name, c := range map[string]struct {
		bid   openrtb2.Bid
		first string
		want  int64
	}{"no floor, p=0": {resp.SeatBid[0].Bid[0], "0", 0}, "under the floor": {bidOnce(t, app, "floor-first"), "0.40", 500}} {
		if code, msg := get(t, substitute(c.bid.BURL, c.first)); code != 200 {
			t.Fatalf("%s: first bill: %d %s", name, code, msg)
		}
		before, _ := spent(t, app, c.bid.CID)
		if code, msg := get(t, substitute(c.bid.BURL, "1.50")); code != 200 {
			t.Fatalf("%s: the exchange's bill: %d %s", name, code, msg)
		}
		if after, _ := spent(t, app, c.bid.CID); after-before != 1500-c.want {
			t.Fatalf("%s: the exchange's bill at 1.50 after one at %s raised the spend by %d, want %d", name, c.first, after-before, 1500-c.want)
		}
	}
}

// On a charge-on-win exchange the win notice charges: after it, the bid's
// billing URL, which such an exchange may never fire, changes nothing (an
// outside review fired it once at p=9: the whole bid).
func TestChargeOnWinBillRaisesNothing(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Notices.ChargeOn = "win" })
	b := bidOnce(t, app, "cow-bill-closed")
	if code, msg := get(t, substitute(b.NURL, "1.50")); code != 200 {
		t.Fatalf("win: %d %s", code, msg)
	}
	first, _ := spent(t, app, b.CID)
	if code, msg := get(t, substitute(b.BURL, "9")); code != 200 {
		t.Fatalf("bill: %d %s", code, msg)
	}
	if got, _ := spent(t, app, b.CID); got != first || first != 1500 {
		t.Fatalf("spent %d after the win at 1.50, %d after a bill at 9; want 1,500 both", first, got)
	}
	// A bill whose win the exchange lost still charges (a review: a
	// charge-on-win exchange's billing URL charging nothing made such an
	// impression free), and the win after it changes nothing.
	b2 := bidOnce(t, app, "cow-win-lost")
	before, _ := spent(t, app, b2.CID)
	for _, s := range []struct{ u, p string }{{b2.BURL, "1.20"}, {b2.NURL, "1.50"}} {
		if code, msg := get(t, substitute(s.u, s.p)); code != 200 {
			t.Fatalf("%s: %d %s", s.p, code, msg)
		}
	}
	if got, _ := spent(t, app, b2.CID); got-before != 1200 {
		t.Fatalf("a bill at 1.20, then the win at 1.50: charged %d, want 1,200", got-before)
	}
}

// An auction that cleared at the floor (a second-price auction with one bid
// over it) prices the impression there: the exchange's win and bill at the
// floor, then either URL fired again at p=9, change nothing. Left open, each
// replay raised the charge, up to the whole bid (an outside review).
func TestAtFloorClearingThenReplayRaisesNothing(t *testing.T) {
	app := startApp(t, nil)
	for _, replay := range []string{"burl", "nurl"} {
		b := bidOnce(t, app, "at-floor-"+replay)
		before, _ := spent(t, app, b.CID)
		for _, u := range []string{b.NURL, b.BURL} {
			if code, msg := get(t, substitute(u, "0.50")); code != 200 {
				t.Fatalf("the exchange's notice at the floor: %d %s", code, msg)
			}
		}
		u := b.BURL
		if replay == "nurl" {
			u = b.NURL
		}
		if code, msg := get(t, substitute(u, "9")); code != 200 {
			t.Fatalf("replay: %d %s", code, msg)
		}
		if after, _ := spent(t, app, b.CID); after-before != 500 {
			t.Errorf("%s fired again at p=9 after the win and bill at the floor: charged %d, want 500", replay, after-before)
		}
	}
}
