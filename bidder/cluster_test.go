package bidder

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/budget"
)

// startNATSCluster starts an n-node JetStream cluster on loopback. The
// route ports are picked before the servers bind them (each route names
// every port), so one can be taken in between: the cluster is started again
// on new ports, up to three times (budget's startCluster does the same).
func startNATSCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	var srvs []*server.Server
	var err error
	for range 3 {
		if srvs, err = tryNATSCluster(t, n); err == nil {
			break
		}
		t.Logf("cluster start: %v; again on new ports", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range srvs {
			s.Shutdown()
		}
	})
	waitFor(t, 20*time.Second, func() bool {
		for _, s := range srvs {
			// Every node must be a placement peer before an R3 bucket is created.
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return srvs
}

// tryNATSCluster starts an n-node cluster on route ports picked here, or
// shuts down what it started and returns why not.
func tryNATSCluster(t *testing.T, n int) ([]*server.Server, error) {
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	var srvs []*server.Server
	for i := range n {
		s, err := budget.StartEmbedded(budget.EmbeddedOptions{
			ServerName: fmt.Sprintf("n%d", i), StoreDir: t.TempDir(), Port: -1,
			ClusterName: "bidder-test", ClusterPort: ports[i], Routes: routes,
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

func ledgerEntries(t *testing.T, url string) []budget.LedgerEntry {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, budget.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []budget.LedgerEntry
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var e budget.LedgerEntry
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// Three bidders on one 3-node NATS cluster, concurrent bids and notices with
// duplicates (to the same and to other instances), losses, lost and late
// notices: total charged <= budget + late charges, every charge exactly once.
func TestThreeBiddersOneCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	nodes := startNATSCluster(t, 3)
	var apps []*App
	for i := 0; i < 3; i++ {
		url := nodes[i].ClientURL()
		apps = append(apps, startApp(t, func(c *Config) {
			c.InstanceID = fmt.Sprintf("bidder-%d", i)
			c.CampaignsDir = "testdata/cluster-campaigns"
			c.Budget.NATSURLs = []string{url}
			c.Budget.Replicas = 3
			c.Budget.SyncPeriod = 100 * time.Millisecond
			c.Budget.LeaseTTL = 3 * time.Second
			c.Notices.HoldTTL = time.Second
			c.Notices.Key = "cluster-key-0123456789"
		}))
	}
	const budgetMicros = 500_000 // $0.50: 250 impressions at $2 CPM
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		bids     int
		nobids   = map[string]int{}
		charged  = map[string]bool{} // auction ids whose charging notice was accepted
		wg       sync.WaitGroup
		lateSent int
	)
	rng := rand.New(rand.NewPCG(7, 11))
	var rngMu sync.Mutex
	roll := func() float64 { rngMu.Lock(); defer rngMu.Unlock(); return rng.Float64() }
	deadline := time.Now().Add(20 * time.Second)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; n < 200 && time.Now().Before(deadline); n++ {
				app := apps[(w+n)%3]
				id := fmt.Sprintf("auction-%d-%d", w, n)
				req := strings.Replace(string(body), "req-site-banner", id, 1)
				code, resp, why := post(t, "http://"+app.Addr()+"/openrtb2/bid", []byte(req))
				if code != 200 {
					mu.Lock()
					nobids[why]++
					mu.Unlock()
					continue
				}
				var br openrtb2.BidResponse
				if err := json.Unmarshal(resp, &br); err != nil {
					t.Error(err)
					return
				}
				b := br.SeatBid[0].Bid[0]
				mu.Lock()
				bids++
				mu.Unlock()
				other := apps[(w+n+1)%3]
				onOther := func(u string) string { return strings.Replace(u, app.Addr(), other.Addr(), 1) }
				price := fmt.Sprintf("%.2f", 1+roll())
				switch r := roll(); {
				case r < 0.15: // lost notice: the hold expires
				case r < 0.30: // loss
					get(t, substitute(b.LURL, "0"))
				case r < 0.40: // late: billed after the hold expired
					mu.Lock()
					lateSent++
					mu.Unlock()
					wg.Add(1)
					go func() {
						defer wg.Done()
						time.Sleep(1500 * time.Millisecond)
						if code, _ := get(t, substitute(b.BURL, price)); code == 200 {
							mu.Lock()
							charged[id] = true
							mu.Unlock()
						}
					}()
				default: // win + bill, with duplicates here and on another instance
					get(t, substitute(b.NURL, price))
					if code, _ := get(t, substitute(b.BURL, price)); code == 200 {
						mu.Lock()
						charged[id] = true
						mu.Unlock()
					}
					if roll() < 0.5 {
						get(t, substitute(b.BURL, price))
						get(t, onOther(substitute(b.BURL, price)))
						get(t, onOther(substitute(b.NURL, price)))
					}
				}
			}
		}(w)
	}
	wg.Wait()
	// Close the bidders: graceful shutdown flushes every ledger entry.
	for _, a := range apps {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		cancel()
	}
	var entries []budget.LedgerEntry
	seals := 0
	for _, e := range ledgerEntries(t, nodes[0].ClientURL()) {
		// A seal is a zero entry: a bill settled on an instance that did not
		// know the impression (its owner did not answer in time) claimed the
		// generation's reversal id (budget/recharge.go). It charges nothing.
		if e.Kind == "seal" {
			if e.Charged != 0 {
				t.Errorf("a seal charged %d: %+v", e.Charged, e)
			}
			seals++
			continue
		}
		entries = append(entries, e)
	}
	var total, late int64
	seen := map[string]bool{}
	for _, e := range entries {
		key := e.Auction + "/" + e.Imp
		if seen[key] {
			t.Errorf("charged twice: %s (%s %s, %d)", key, e.Kind, e.MsgID, e.Charged)
		}
		seen[key] = true
		if !charged[e.Auction] {
			t.Errorf("ledger has a charge for %s that no accepted notice made", e.Auction)
		}
		total += e.Charged
		if e.Late {
			late += e.Charged
		}
	}
	if len(entries) != len(charged) {
		t.Errorf("ledger has %d charges, %d charging notices were accepted", len(entries), len(charged))
	}
	if total > budgetMicros+late {
		t.Errorf("overspend: charged %d > budget %d + late %d", total, budgetMicros, late)
	}
	if nobids["budget"] == 0 {
		t.Errorf("the budget never ran out (bids %d, no-bids %v): the test did not reach the bound", bids, nobids)
	}
	t.Logf("bids %d, no-bids %v, charges %d totalling %d micros (late %d micros, %d late notices sent, %d seals), budget %d",
		bids, nobids, len(entries), total, late, lateSent, seals, budgetMicros)
}

// NATS down: the bidder keeps bidding only inside the lease it holds, ready
// but degraded (a blip must not take every instance out of rotation at
// once), then stops (fail closed) and says so in readiness; it resumes when
// NATS returns.
func TestNATSOutageFailsClosedAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test")
	}
	store := t.TempDir()
	// The first start binds a port the kernel picks (-1); a restart binds
	// the same one again, as a restarted server would.
	port := -1
	startNATS := func() *server.Server {
		s, err := budget.StartEmbedded(budget.EmbeddedOptions{ServerName: "solo", StoreDir: store, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		port = s.Addr().(*net.TCPAddr).Port
		return s
	}
	ns := startNATS()
	defer func() { ns.Shutdown() }()
	app := startApp(t, func(c *Config) {
		c.CampaignsDir = "testdata/cluster-campaigns"
		c.Budget.NATSURLs = []string{ns.ClientURL()}
		c.Budget.SyncPeriod = 100 * time.Millisecond
		c.Budget.LeaseTTL = 5 * time.Second
		c.Notices.HoldTTL = time.Second
	})
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	base := "http://" + app.Addr()
	n := 0
	bidAndLose := func() (int, string) {
		n++
		req := strings.Replace(string(body), "req-site-banner", fmt.Sprintf("outage-%d", n), 1)
		code, resp, why := post(t, base+"/openrtb2/bid", []byte(req))
		if code == 200 {
			var br openrtb2.BidResponse
			if err := json.Unmarshal(resp, &br); err != nil {
				t.Fatal(err)
			}
			get(t, substitute(br.SeatBid[0].Bid[0].LURL, "0")) // release the hold: only time can end the lease
		}
		return code, why
	}
	if code, why := bidAndLose(); code != 200 {
		t.Fatalf("before the outage: %d %s", code, why)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	// Inside the lease: still ready, the degraded gauge says why.
	waitFor(t, 10*time.Second, func() bool { return metricValue(t, app, "openbidder_degraded") == 1 })
	if c, why := get(t, base+"/readyz"); c != 200 {
		t.Fatalf("readyz during a blip inside a valid lease: %d %s", c, why)
	}
	outage := time.Now()
	var during int
	for {
		code, why := bidAndLose()
		if code == 204 && (why == "tmax" || why == "deadline" || why == "late") {
			continue // a stalled request on a loaded machine, not the outage (late: 2 of 101 runs under load, a flake hunt)
		}
		if code == 204 {
			if why != "fail_closed" && why != "budget" {
				t.Fatalf("outage no-bid reason %q, want fail_closed", why)
			}
			break
		}
		during++
		if time.Since(outage) > 20*time.Second {
			t.Fatalf("still bidding %v into a NATS outage (%d bids)", time.Since(outage), during)
		}
	}
	t.Logf("bid %d times inside the held lease for %v, then stopped", during, time.Since(outage).Round(time.Millisecond))
	waitFor(t, 10*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 503 })
	if c, why := get(t, base+"/readyz"); c != 503 || !strings.Contains(string(why), "fail closed") {
		t.Fatalf("readyz once the lease is gone: %d %s", c, why)
	}
	ns = startNATS()
	waitFor(t, 20*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
	waitFor(t, 10*time.Second, func() bool { return metricValue(t, app, "openbidder_degraded") == 0 })
	waitFor(t, 20*time.Second, func() bool { c, _ := bidAndLose(); return c == 200 })
}

// metricValue reads an unlabelled sample from /metrics (-1 when absent).
func metricValue(t *testing.T, app *App, name string) float64 {
	t.Helper()
	_, body := get(t, "http://"+app.AdminAddr()+"/metrics")
	return sampleOf(string(body), name)
}

// A pixel or click is counted by the instance that placed its bid, once,
// wherever it lands: each instance's replay cache is its own, and a pixel
// and a click replayed at each of two instances were counted once by each
// (an outside audit: their metrics, event logs and the user's frequency
// count). With the owner gone, the instance it lands on counts it.
func TestTrackersCountedByTheBiddingInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	url := startSoloNATS(t).ClientURL()
	var apps []*App
	for i := range 2 {
		apps = append(apps, startApp(t, func(c *Config) {
			c.InstanceID = fmt.Sprintf("trk-%d", i)
			c.Budget.NATSURLs = []string{url}
			c.Notices.Key = "cluster-key-0123456789"
		}))
	}
	a, b := apps[0], apps[1]
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	var bid openrtb2.Bid
	waitFor(t, 20*time.Second, func() bool {
		code, resp, _ := postBid(t, "http://"+a.Addr()+"/openrtb2/bid", body)
		if code != 200 {
			return false
		}
		var br openrtb2.BidResponse
		if err := json.Unmarshal(resp, &br); err != nil {
			t.Fatal(err)
		}
		bid = br.SeatBid[0].Bid[0]
		return true
	})
	base := "http://" + a.Addr()
	pixel := base + "/notice/imp" + between(bid.AdM, `<img src="`+base+"/notice/imp", `"`)
	click := between(bid.AdM, `<a href="`, `"`)
	on := func(app *App, u string) string { return strings.Replace(u, a.Addr(), app.Addr(), 1) }
	for _, app := range []*App{b, a, b} {
		if code, _ := get(t, on(app, pixel)); code != 200 {
			t.Fatalf("pixel at %s: %d", app.cfg.InstanceID, code)
		}
		if code, _ := get(t, on(app, click)); code != 302 {
			t.Fatalf("click at %s: %d", app.cfg.InstanceID, code)
		}
	}
	counts := func(app *App) (imps, clicks, replays bool) {
		_, page := get(t, "http://"+app.AdminAddr()+"/metrics")
		return bytes.Contains(page, []byte(`openbidder_campaign_impressions_total{campaign="`+bid.CID+`"} 1`)),
			bytes.Contains(page, []byte(`openbidder_campaign_clicks_total{campaign="`+bid.CID+`"} 1`)),
			metricValue(t, app, "openbidder_tracker_replays_total") == 4
	}
	if i, c, r := counts(a); !i || !c || !r {
		t.Errorf("the bidding instance: impression %v, click %v, 4 replays %v; want each counted once there", i, c, r)
	}
	if i, c, _ := counts(b); i || c || metricValue(t, b, "openbidder_tracker_replays_total") != 0 {
		t.Errorf("the other instance counted them too: impression %v, click %v", i, c)
	}
	// One that reaches the owner after its caller gave up (and counted it)
	// is not counted there too.
	u, err := neturl.Parse(click)
	if err != nil {
		t.Fatal(err)
	}
	forwarded := func(answerBy time.Time) byte {
		b := make([]byte, 9)
		b[0] = byte(noticeClick)
		binary.LittleEndian.PutUint64(b[1:], uint64(answerBy.UnixNano()))
		return a.Server.serveTracker(append(b, u.Query().Get("t")...))
	}
	if got := forwarded(time.Now().Add(-time.Millisecond)); got != trackerNotHere {
		t.Errorf("a click forwarded past its wait: answered %d, want %d (not counted)", got, trackerNotHere)
	}
	// The same click within its wait is read and found counted: the
	// answer above is the wait's, not a message the owner cannot parse.
	if got := forwarded(time.Now().Add(time.Minute)); got != trackerReplay {
		t.Errorf("the click forwarded within its wait: answered %d, want %d (a replay)", got, trackerReplay)
	}
	// The owner gone: counted where it lands (once).
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	get(t, on(b, pixel))
	get(t, on(b, pixel))
	if i, _, _ := counts(b); !i || metricValue(t, b, "openbidder_tracker_replays_total") != 1 {
		t.Errorf("with the owner gone: impression counted once %v, replays %v", i, metricValue(t, b, "openbidder_tracker_replays_total"))
	}
}

// startSoloNATS starts a one-node JetStream server on a loopback port,
// shut down after the test's other cleanups (the apps' Close).
func startSoloNATS(t *testing.T) *server.Server {
	t.Helper()
	// Port -1: the server binds a port the kernel picks (a port picked
	// here, closed and bound again, can be taken in between).
	srv, err := budget.StartEmbedded(budget.EmbeddedOptions{ServerName: "solo", StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}
