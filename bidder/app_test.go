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
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/campaigns"
)

// startApp runs the real bidder on loopback ports: embedded NATS, the
// bundled models, the test campaigns.
func startApp(t *testing.T, edit func(*Config)) *App {
	t.Helper()
	return startAppLog(t, edit, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startAppLog is startApp logging to log.
func startAppLog(t *testing.T, edit func(*Config), log *slog.Logger) *App {
	t.Helper()
	app, err := tryStartAppLog(t, edit, log)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// tryStartAppLog is startAppLog returning Start's error (a port picked
// free and taken again before the start can be tried again).
func tryStartAppLog(t *testing.T, edit func(*Config), log *slog.Logger) (*App, error) {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{
		Listen:       "127.0.0.1:0",
		AdminListen:  "127.0.0.1:0",
		InstanceID:   "e2e",
		CampaignsDir: "testdata/campaigns",
		WatchEvery:   50 * time.Millisecond,
		Model:        ModelConfig{GBDT: "../configs/models/gbdt.manifest.json", ONNX: "../configs/models/mlp.manifest.json"},
		Notices:      NoticeConfig{Key: "e2e-key-0123456789"},
		Budget:       BudgetConfig{StoreDir: filepath.Join(dir, "nats"), SyncPeriod: 100 * time.Millisecond},
		// Tests run on shared, loaded machines: a request stalled for a few
		// milliseconds must still bid (deadline behaviour has its own tests).
		Limits: LimitsConfig{InternalBudget: 150 * time.Millisecond},
	}
	cfg.Currency.Rates = map[string]float64{"USD": 1, "EUR": 1.1}
	if edit != nil {
		edit(cfg)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	app, err := Start(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	// Notice URLs must point at the bound port.
	app.Server.publicURL = []byte("http://" + app.Addr())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		app.Close(ctx)
	})
	waitFor(t, 10*time.Second, func() bool { ok, _ := app.Server.Ready(); return ok })
	return app, nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func post(t *testing.T, url string, body []byte) (int, []byte, string) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.Header.Set("x-openrtb-version", "2.6")
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), string(resp.Header.Peek("x-nobid-reason"))
}

// postBid is post to a bid endpoint, posted again (for up to 10 s) while the
// answer is a no-bid for want of time (stalledReason: the loaded test
// machine stalled the request past the tests' 150 ms internal budget; its
// holds released), which says nothing of the state under test. Any other
// answer is returned.
func postBid(t *testing.T, url string, body []byte) (int, []byte, string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		code, resp, why := post(t, url, body)
		if code != 204 || !stalledReason[why] || time.Now().After(end) {
			return code, resp, why
		}
		t.Logf("bid: 204 %s (a stall), posted again", why)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode == http.StatusFound {
		return r.StatusCode, []byte(r.Header.Get("Location"))
	}
	return r.StatusCode, b
}

type budgetView struct {
	Instance  string `json:"instance"`
	Campaigns []struct {
		ID          string `json:"id"`
		SpentMicros int64  `json:"spent_micros"`
		HeldMicros  int64  `json:"held_micros"`
	} `json:"campaigns"`
}

func spent(t *testing.T, app *App, id string) (spent, held int64) {
	t.Helper()
	_, b := get(t, "http://"+app.AdminAddr()+"/admin/budget")
	var v budgetView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("/admin/budget: %v: %s", err, b)
	}
	for _, c := range v.Campaigns {
		if c.ID == id {
			return c.SpentMicros, c.HeldMicros
		}
	}
	t.Fatalf("campaign %s not in /admin/budget: %s", id, b)
	return 0, 0
}

func substitute(u, price string) string {
	u = strings.ReplaceAll(u, "${AUCTION_PRICE}", price)
	return strings.ReplaceAll(u, "${AUCTION_LOSS}", "102")
}

// The real server end to end: a bid over HTTP, then its notices settle the
// money exactly once; forged notices change nothing.
func TestEndToEnd(t *testing.T) {
	app := startApp(t, nil)
	base := "http://" + app.Addr()
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	code, resp, why := postBid(t, base+"/openrtb2/bid", body)
	if code != 200 {
		t.Fatalf("bid: %d %s", code, why)
	}
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	b := br.SeatBid[0].Bid[0]
	if b.CrID != "acme-300x250" || b.Price != 2 {
		t.Fatalf("bid %+v", b)
	}
	if s, h := spent(t, app, "acme-banner"); s != 0 || h != 2000 {
		t.Fatalf("after bid: spent %d held %d, want 0 and 2000", s, h)
	}
	// Win (charge on billing: records the win), billing at $1.50 CPM, a
	// replayed billing, a late loss: one charge of 1500 micros.
	for _, u := range []string{b.NURL, b.BURL, b.BURL, b.LURL} {
		if code, msg := get(t, substitute(u, "1.50")); code != 200 {
			t.Fatalf("notice %s: %d %s", u, code, msg)
		}
	}
	// The hold's rest (2,000 - 1,500) stays reserved until it expires.
	if s, h := spent(t, app, "acme-banner"); s != 1500 || h != 500 {
		t.Fatalf("after notices: spent %d held %d, want 1500 and the hold's rest 500", s, h)
	}
	// Trackers: the pixel answers a GIF, the click redirects to the landing page.
	pixel := base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`)
	if code, gif := get(t, pixel); code != 200 || !bytes.HasPrefix(gif, []byte("GIF89a")) {
		t.Fatalf("pixel %s: %d", pixel, code)
	}
	click := between(b.AdM, `<a href="`, `"`)
	if !strings.HasPrefix(click, base+"/notice/click?t=") {
		t.Fatalf("click URL %q is not ours", click)
	}
	if code, loc := get(t, click); code != 302 || string(loc) != "https://acme.example/landing" {
		t.Fatalf("click: %d %s", code, loc)
	}
	// Forged and unsigned notices: 403, nothing charged.
	forged := strings.Replace(substitute(b.BURL, "3"), "t=", "t=A", 1)
	if code, _ := get(t, forged); code != 403 {
		t.Fatalf("forged notice: %d", code)
	}
	if code, _ := get(t, base+"/notice/bill?p=1"); code != 403 {
		t.Fatalf("unsigned notice: %d", code)
	}
	if code, _ := get(t, strings.Replace(b.BURL, "${AUCTION_PRICE}", "abc", 1)); code != 400 {
		t.Fatalf("bad price: %d", code)
	}
	if s, _ := spent(t, app, "acme-banner"); s != 1500 {
		t.Fatalf("after forged notices: spent %d, want 1500", s)
	}
	// Over the wire: a body over the limit is 413, malformed JSON a 400.
	big := append([]byte(`{"id":"x","imp":[{"id":"1"}],"pad":"`), bytes.Repeat([]byte("a"), 300<<10)...)
	if code, _, _ := post(t, base+"/openrtb2/bid", append(big, `"}`...)); code != 413 {
		t.Fatalf("300 KiB body: %d, want 413", code)
	}
	if code, msg, _ := post(t, base+"/openrtb2/bid", []byte(`{"id":`)); code != 400 || len(msg) == 0 {
		t.Fatalf("malformed: %d %q", code, msg)
	}
	// Metrics are served and name the model in use.
	code, metrics := get(t, "http://"+app.AdminAddr()+"/metrics")
	if code != 200 || !bytes.Contains(metrics, []byte(`openbidder_bids_total 1`)) || !bytes.Contains(metrics, []byte("openbidder_model_info{chain=")) ||
		!bytes.Contains(metrics, []byte(`openbidder_campaign_impressions_total{campaign="acme-banner"} 1`)) ||
		!bytes.Contains(metrics, []byte(`openbidder_campaign_clicks_total{campaign="acme-banner"} 1`)) ||
		!regexp.MustCompile(`openbidder_campaign_predicted_clicks_total\{campaign="acme-banner"\} 0\.0[0-9]+`).Match(metrics) {
		t.Fatalf("metrics %d:\n%s", code, metrics)
	}
}

// A clearing price above the bid is charged at the bid.
func TestClearingAboveBidCapped(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Notices.ChargeOn = "win" })
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	_, resp, _ := post(t, "http://"+app.Addr()+"/openrtb2/bid", body)
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, substitute(br.SeatBid[0].Bid[0].NURL, "9.99")); code != 200 {
		t.Fatal("win notice refused")
	}
	if s, _ := spent(t, app, "acme-banner"); s != 2000 {
		t.Fatalf("spent %d, want 2000 (capped at the $2 bid)", s)
	}
}

// A campaign file change is picked up without a restart; a bad file is
// refused and the running set stays.
func TestHotReloadCampaigns(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("testdata/campaigns/acme.yaml")
	if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, func(c *Config) { c.CampaignsDir = dir })
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	url := "http://" + app.Addr() + "/openrtb2/bid"
	if code, _, _ := post(t, url, body); code != 200 {
		t.Fatal("no bid before reload")
	}
	bad := bytes.Replace(src, []byte("max_bid_cpm: \"5.00\""), []byte("max_bid_cpm: \"-1\""), 1)
	if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := app.ReloadCampaigns(); err == nil || !strings.Contains(err.Error(), "acme.yaml") {
		t.Fatalf("bad file: reload error %v, want one naming the file", err)
	}
	if code, _, _ := post(t, url, body); code != 200 {
		t.Fatal("bad file took the running set down")
	}
	paused := bytes.Replace(src, []byte("currency: USD"), []byte("currency: USD\nstatus: paused"), 1)
	if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), paused, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { code, _, _ := post(t, url, body); return code == 204 })
}

// Two reloads at once: the directory watch publishing the set it found and
// a SIGHUP publishing a newer one. Each bound its set to the budget and then
// published it to the bid path, unserialised, so with the SIGHUP's set bound
// first and published last, the bid path ran the newer set while the budget
// manager kept the older one's budgets, and nothing published again: a daily
// budget lowered from 60 to 0.50 units went on granting leases on 60.
func TestConcurrentReloadsAgree(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	acme := filepath.Join(dir, "acme.yaml")
	daily := func(d string) {
		t.Helper()
		if err := os.WriteFile(acme, bytes.Replace(src, []byte(`daily: "100.00"`), []byte(`daily: "`+d+`"`), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	daily("100.00")
	app := startApp(t, func(c *Config) { c.CampaignsDir = dir; c.WatchEvery = time.Hour })
	const older, newer = 60_000_000, 500_000
	daily("60.00")
	if err := app.store.Reload(); err != nil { // what the watch found; not published yet
		t.Fatal(err)
	}
	inBind, newerBound, olderDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	bind := app.Server.bind
	app.Server.bind = func(snap *campaigns.Snapshot) (money, error) {
		switch snap.Campaigns[0].Budget.DailyMicros {
		case older:
			close(inBind)
			select { // the newer set binds first (while serialised, it waits its turn)
			case <-newerBound:
			case <-time.After(2 * time.Second):
			}
		case newer:
			m, err := bind(snap)
			close(newerBound)
			select { // and publishes last
			case <-olderDone:
			case <-time.After(2 * time.Second):
			}
			return m, err
		}
		return bind(snap)
	}
	go func() {
		defer close(olderDone)
		app.publishCampaigns() // the watch's publish of the set it found
	}()
	<-inBind
	daily("0.50")
	if err := app.ReloadCampaigns(); err != nil { // SIGHUP
		t.Fatal(err)
	}
	<-olderDone
	cat := app.Server.catalog.Load().snap.Campaigns[0].Budget.DailyMicros
	var bud int64
	for _, c := range app.budget.Status() {
		if c.ID == "acme-banner" {
			bud = c.DailyBudgetMicros
		}
	}
	if cat != newer || bud != newer {
		t.Fatalf("after both reloads: the bid path's daily budget %d, the budget manager's %d; want both %d (the files')", cat, bud, newer)
	}
}

// An operator sees a refused campaign reload in /metrics, not only in the
// log: openbidder_campaign_reloads_total{outcome} and
// openbidder_campaign_reload_refused (1 while the files on disk are not what
// runs), for a bad file and for a set the budget store refuses (a currency
// change). Before, no series said either.
func TestCampaignReloadOutcomeInMetrics(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("testdata/campaigns/acme.yaml")
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(src)
	app := startApp(t, func(c *Config) { c.CampaignsDir = dir; c.WatchEvery = time.Hour })
	check := func(what string, ok, refused, state float64) {
		t.Helper()
		got := [3]float64{metricValue(t, app, `openbidder_campaign_reloads_total{outcome="ok"}`),
			metricValue(t, app, `openbidder_campaign_reloads_total{outcome="refused"}`),
			metricValue(t, app, "openbidder_campaign_reload_refused")}
		if got != [3]float64{ok, refused, state} {
			t.Fatalf("%s: ok, refused, refused now = %v, want %v", what, got, [3]float64{ok, refused, state})
		}
	}
	check("at start", 0, 0, 0)
	write(bytes.Replace(src, []byte("max_bid_cpm: \"5.00\""), []byte("max_bid_cpm: \"-1\""), 1))
	if err := app.ReloadCampaigns(); err == nil {
		t.Fatal("bad file published")
	}
	check("bad file", 0, 1, 1)
	write(src)
	if err := app.ReloadCampaigns(); err != nil {
		t.Fatal(err)
	}
	check("fixed", 1, 1, 0)
	write(bytes.Replace(src, []byte("currency: USD"), []byte("currency: EUR"), 1))
	// Named as at start: the file, the field and why (an outside audit:
	// the reload's message named neither file nor field).
	const want = "campaign set refused by the budget store: " + "%s: budget: bad config: campaign acme-banner: currency: USD -> EUR: its spend"
	if err := app.ReloadCampaigns(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf(want, filepath.Join(dir, "acme.yaml"))) {
		t.Fatalf("a currency change: %v", err)
	}
	check("currency change", 1, 2, 1)
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return s
}

// A model file change is picked up while serving; a broken model is refused
// and the old one keeps answering.
func TestHotReloadModel(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"gbdt.txt", "gbdt.manifest.json", "gbdt.parity.json"} {
		b, err := os.ReadFile(filepath.Join("../configs/models", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := startApp(t, func(c *Config) {
		c.Model.GBDT = filepath.Join(dir, "gbdt.manifest.json")
		c.Model.Provider = "off"
	})
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	url := "http://" + app.Addr() + "/openrtb2/bid"
	metric := func(want string) bool {
		_, m := get(t, "http://"+app.AdminAddr()+"/metrics")
		return regexp.MustCompile(want).Match(m)
	}
	good, _ := os.ReadFile(filepath.Join(dir, "gbdt.txt"))
	// Broken: the checksum no longer matches; refused, the old model serves.
	os.WriteFile(filepath.Join(dir, "gbdt.txt"), append([]byte("garbage\n"), good...), 0o644)
	waitFor(t, 10*time.Second, func() bool { return metric(`openbidder_model_reloads_total{outcome="refused",slot="gbdt"} 1`) })
	if code, _, why := post(t, url, body); code != 200 {
		t.Fatalf("after a refused model: %d %s", code, why)
	}
	// Restored: loaded again.
	os.WriteFile(filepath.Join(dir, "gbdt.txt"), good, 0o644)
	waitFor(t, 10*time.Second, func() bool { return metric(`openbidder_model_reloads_total{outcome="ok",slot="gbdt"} 2`) })
	if code, _, why := post(t, url, body); code != 200 {
		t.Fatalf("after the reload: %d %s", code, why)
	}
}

// Reloads of campaigns and models under concurrent traffic drop no request:
// every one is answered 200 or 204.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	camps := filepath.Join(dir, "campaigns")
	os.MkdirAll(camps, 0o755)
	src, _ := os.ReadFile("testdata/campaigns/acme.yaml")
	os.WriteFile(filepath.Join(camps, "acme.yaml"), src, 0o644)
	models := filepath.Join(dir, "models")
	os.MkdirAll(models, 0o755)
	for _, f := range []string{"gbdt.txt", "gbdt.manifest.json", "gbdt.parity.json"} {
		b, _ := os.ReadFile(filepath.Join("../configs/models", f))
		os.WriteFile(filepath.Join(models, f), b, 0o644)
	}
	app := startApp(t, func(c *Config) {
		c.CampaignsDir = camps
		c.Model.GBDT = filepath.Join(models, "gbdt.manifest.json")
		c.WatchEvery = 20 * time.Millisecond
	})
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	url := "http://" + app.Addr() + "/openrtb2/bid"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes, reasons, prices := map[int]int{}, map[string]int{}, map[string]int{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				code, resp, why := post(t, url, body)
				mu.Lock()
				codes[code]++
				for _, p := range []string{`"price":2,`, `"price":3,`} {
					if bytes.Contains(resp, []byte(p)) {
						prices[p]++
					}
				}
				if code != 200 {
					reasons[why]++
				}
				mu.Unlock()
			}
		}()
	}
	manifest := filepath.Join(models, "gbdt.manifest.json")
	for i := 0; i < 10; i++ {
		// A campaign edit (the bid changes) and a model touch (same files, new mtime).
		cpm := fmt.Sprintf(`cpm: "%d.00"`, 2+i%2)
		os.WriteFile(filepath.Join(camps, "acme.yaml"), bytes.Replace(src, []byte(`cpm: "2.00"`), []byte(cpm), 1), 0o644)
		now := time.Now().Add(time.Duration(i) * time.Second)
		os.Chtimes(manifest, now, now)
		time.Sleep(60 * time.Millisecond) // let the watchers pick the change up under traffic
	}
	close(stop)
	wg.Wait()
	// A 204 for lack of time (deadline, tmax) is an answer, and on this shared
	// machine a request can stall; one for lack of campaigns or model is not.
	if codes[200] == 0 || reasons["not_ready"]+reasons["model_error"]+reasons["no_campaign"]+reasons["budget"] > 0 {
		t.Fatalf("answers during reloads: %v (no-bids %v)", codes, reasons)
	}
	if len(prices) != 2 {
		t.Fatalf("prices seen %v: the campaign edits were not served", prices)
	}
	for c := range codes {
		if c != 200 && c != 204 {
			t.Fatalf("answers during reloads: %v (no-bids %v)", codes, reasons)
		}
	}
	t.Logf("answers during 10 campaign and 10 model reloads: %v (no-bids %v)", codes, reasons)
}

// Which notice charges is per exchange: ?exchange=adx charges on the win
// notice; others follow notices.charge_on (billing).
func TestChargeOnPerExchange(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Exchanges = map[string]ExchangeConfig{"adx": {ChargeOn: "win"}} })
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	bid := func(url, id string) openrtb2.Bid {
		t.Helper()
		code, resp, why := post(t, url, []byte(strings.Replace(string(body), "req-site-banner", id, 1)))
		if code != 200 {
			t.Fatalf("%s: %d %s", url, code, why)
		}
		var br openrtb2.BidResponse
		if err := json.Unmarshal(resp, &br); err != nil {
			t.Fatal(err)
		}
		return br.SeatBid[0].Bid[0]
	}
	base := "http://" + app.Addr() + "/openrtb2/bid"
	adx := bid(base+"?exchange=adx", "a1")
	get(t, substitute(adx.NURL, "1.00")) // adx: the win charges
	if s, _ := spent(t, app, "acme-banner"); s != 1000 {
		t.Fatalf("after adx win: spent %d, want 1000", s)
	}
	get(t, substitute(adx.BURL, "1.00")) // and a billing notice at the same price does not charge again
	if s, _ := spent(t, app, "acme-banner"); s != 1000 {
		t.Fatalf("after adx bill: spent %d, want still 1000", s)
	}
	other := bid(base, "o1")
	get(t, substitute(other.NURL, "1.50")) // default (billing): the win charges provisionally
	if s, _ := spent(t, app, "acme-banner"); s != 2500 {
		t.Fatalf("after a default win: spent %d, want 2500 (provisional)", s)
	}
	get(t, substitute(other.BURL, "1.50")) // the bill settles it
	if s, _ := spent(t, app, "acme-banner"); s != 2500 {
		t.Fatalf("after the default billing: spent %d, want 2500", s)
	}
}

// tokensOf returns the notice token of each kind in bid b: nurl, burl, lurl,
// and the pixel and click URLs in its markup.
func tokensOf(t *testing.T, b openrtb2.Bid) [numNoticeKinds]string {
	t.Helper()
	tok := func(u string) string {
		i := strings.Index(u, "t=")
		if i < 0 {
			t.Fatalf("no token in %q", u)
		}
		s := u[i+2:]
		if j := strings.IndexAny(s, "&\""); j >= 0 {
			s = s[:j]
		}
		return s
	}
	var out [numNoticeKinds]string
	out[noticeWin], out[noticeBill], out[noticeLoss] = tok(b.NURL), tok(b.BURL), tok(b.LURL)
	out[noticeImp] = tok(between(b.AdM, `/notice/imp?`, `"`) + `"`)
	out[noticeClick] = tok(between(b.AdM, `/notice/click?`, `"`) + `"`)
	for k, s := range out {
		for j := range k {
			if out[j] == s {
				t.Fatalf("kinds %v and %v share a token", noticeKind(j), noticeKind(k))
			}
		}
	}
	return out
}

// Every notice token is valid at its own endpoint only: the pixel token in
// the markup (which every browser sees) cannot bill, the billing token
// cannot be replayed as a loss, and so on for all 20 cross-uses, each a 403
// that changes nothing. The right token then works.
func TestNoticeTokensBoundToEndpoint(t *testing.T) {
	app := startApp(t, nil)
	base := "http://" + app.Addr()
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	_, resp, _ := post(t, base+"/openrtb2/bid", body)
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	toks := tokensOf(t, br.SeatBid[0].Bid[0])
	for minted, tok := range toks {
		for used := noticeKind(0); used < numNoticeKinds; used++ {
			if used == noticeKind(minted) {
				continue
			}
			u := base + noticePrefix + used.String() + "?t=" + tok + "&p=0&r=1"
			if code, msg := get(t, u); code != 403 {
				t.Errorf("%v token at /notice/%v: %d %s, want 403", noticeKind(minted), used, code, msg)
			}
		}
	}
	if s, h := spent(t, app, "acme-banner"); s != 0 || h != 2000 {
		t.Fatalf("after cross-used tokens: spent %d held %d, want 0 and 2000", s, h)
	}
	m := app.Server.m
	if n := m.notices[noticeWin].load() + m.notices[noticeBill].load() + m.notices[noticeLoss].load() +
		m.notices[noticeImp].load() + m.notices[noticeClick].load(); n != 0 {
		t.Fatalf("%d notices accepted", n)
	}
	if code, _ := get(t, base+"/notice/bill?t="+toks[noticeBill]+"&p=1.5"); code != 200 {
		t.Fatalf("billing with its own token: %d", code)
	}
	if s, h := spent(t, app, "acme-banner"); s != 1500 || h != 500 {
		t.Fatalf("after billing: spent %d held %d, want 1500 and the hold's rest 500", s, h)
	}
}

// A price under the imp's floor ($0.50 in the request) is charged at the
// floor and counted: a notice fired with p=0 cannot make an impression free.
func TestPriceUnderFloorChargedAtFloor(t *testing.T) {
	app := startApp(t, nil)
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	_, resp, _ := post(t, "http://"+app.Addr()+"/openrtb2/bid", body)
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, substitute(br.SeatBid[0].Bid[0].BURL, "0")); code != 200 {
		t.Fatal("billing notice refused")
	}
	if s, _ := spent(t, app, "acme-banner"); s != 500 {
		t.Fatalf("spent %d, want 500 (the $0.50 floor)", s)
	}
	if n := app.Server.m.underFloor.load(); n != 1 {
		t.Fatalf("under-floor count %d, want 1", n)
	}
	// The real price comes later: the charge rises to it (a floor charge
	// fired first never fixes the charge), and a lower one changes nothing.
	for _, p := range []string{"1.50", "0.70", "0"} {
		if code, _ := get(t, substitute(br.SeatBid[0].Bid[0].BURL, p)); code != 200 {
			t.Fatalf("billing notice at %s refused", p)
		}
		if s, _ := spent(t, app, "acme-banner"); s != 1500 {
			t.Fatalf("after a bill at %s: spent %d, want 1500 (the highest price reported)", p, s)
		}
	}
}

// A click on an ad whose campaign a reload removed still reaches its
// landing page (the ad is on pages while its token is valid); the retired
// page is forgotten after token_ttl, and a creative that comes back uses its
// new page.
func TestClickAfterCampaignRemoved(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"acme.yaml", "globex.yaml"} {
		src, _ := os.ReadFile("testdata/campaigns/" + f)
		if err := os.WriteFile(filepath.Join(dir, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := startApp(t, func(c *Config) { c.CampaignsDir = dir; c.WatchEvery = time.Hour })
	b := bidOnce(t, app, "req-site-banner")
	click := between(b.AdM, `<a href="`, `"`)
	code, before := get(t, click)
	if code != 302 || len(before) == 0 {
		t.Fatalf("click before the reload: %d %q", code, before)
	}
	if err := os.Remove(filepath.Join(dir, "acme.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := app.ReloadCampaigns(); err != nil {
		t.Fatal(err)
	}
	if _, ok := app.Server.catalog.Load().landing[creativeKey([]byte(b.CID), []byte(b.CrID))]; ok {
		t.Fatal("the reload kept the removed campaign")
	}
	if code, after := get(t, click); code != 302 || string(after) != string(before) {
		t.Fatalf("click after its campaign was removed: %d %q, want 302 to %q", code, after, before)
	}
	// The retired page expires with the token; a creative that comes back
	// is the catalog's again.
	r := &app.Server.retired
	k := creativeKey([]byte(b.CID), []byte(b.CrID))
	now := time.Now()
	if r.lookup(k, now.Add(app.cfg.Notices.TokenTTL+time.Second)) != "" {
		t.Error("a retired landing page outlived token_ttl")
	}
	cur := app.Server.catalog.Load()
	r.retire(cur, cur, now.Add(app.cfg.Notices.TokenTTL+time.Second), app.cfg.Notices.TokenTTL)
	if r.lookup(k, now) != "" {
		t.Error("a reload after token_ttl did not prune the retired page")
	}
	src, _ := os.ReadFile("testdata/campaigns/acme.yaml")
	if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := app.ReloadCampaigns(); err != nil {
		t.Fatal(err)
	}
	if code, back := get(t, click); code != 302 || string(back) != string(before) {
		t.Fatalf("click after the campaign came back: %d %q", code, back)
	}
}

// A click after token_ttl (a page or app screen left open) still takes the
// person to the landing page; it is not counted. Before, it got 403 "notice
// token expired" and the advertiser lost the visit. A forged click token
// still gets 403.
func TestExpiredClickStillLands(t *testing.T) {
	app := startApp(t, func(c *Config) {
		c.Notices.TokenTTL = 3 * time.Second // the first click must come within it, also on a loaded machine
		c.Notices.HoldTTL = time.Second
	})
	b := bidOnce(t, app, "expired-click")
	base := "http://" + app.Addr()
	click := between(b.AdM, `<a href="`, `"`)
	imp := base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`)
	code, landing := get(t, click)
	if code != 302 || len(landing) == 0 {
		t.Fatalf("click: %d %q", code, landing)
	}
	// The pixel tells when the token has expired: it is answered 403 then.
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, msg := get(t, imp)
		if code == 403 && strings.Contains(string(msg), "expired") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pixel was still answered %d %q 10 s after a 3 s token_ttl", code, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	clicks := app.Server.m.campaign(b.CID).clicks.load()
	if code, after := get(t, click); code != 302 || string(after) != string(landing) {
		t.Fatalf("click after token_ttl: %d %q, want 302 to %q", code, after, landing)
	}
	if got := app.Server.m.campaign(b.CID).clicks.load(); got != clicks {
		t.Fatalf("an expired click was counted: %d clicks, want %d", got, clicks)
	}
	forged := click[:len(click)-2] + "xx"
	if code, _ := get(t, forged); code != 403 {
		t.Fatalf("forged click: %d, want 403", code)
	}
}

// A browser's pixel and click carry its Referer (up to 4 KB), cookies of the
// notice domain and a dozen client hints: 4-8 KB of headers is ordinary.
// fasthttp's default read buffer (4 KB) also bounds the headers, so such a
// click got 400 "small read buffer" instead of the landing page, and such a
// pixel counted no impression. Up to maxHeaderBytes is now read; more is
// still refused.
func TestBrowserSizedHeaders(t *testing.T) {
	app := startApp(t, nil)
	b := bidOnce(t, app, "browser-headers")
	base := "http://" + app.Addr()
	click := between(b.AdM, `<a href="`, `"`)
	imp := base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`)
	send := func(u string, extra int) int {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
		req.Header.Set("Referer", "https://news.example/article?"+strings.Repeat("x", min(extra, 3500)))
		if extra > 3500 {
			req.Header.Set("Cookie", "s="+strings.Repeat("c", extra-3500))
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode
	}
	for _, c := range []struct {
		name       string
		url        string
		extra      int
		want, more int // answer with extra header bytes, and past maxHeaderBytes
	}{
		{"click", click, 6000, 302, 400},
		{"pixel", imp, 6000, 200, 400},
	} {
		if got := send(c.url, c.extra); got != c.want {
			t.Errorf("%s with ~%d bytes of headers: %d, want %d", c.name, c.extra, got, c.want)
		}
		if got := send(c.url, maxHeaderBytes+1000); got != c.more {
			t.Errorf("%s with more than %d bytes of headers: %d, want %d", c.name, maxHeaderBytes, got, c.more)
		}
	}
}

// notices.sources: a win, billing or loss notice from a TCP peer outside it
// gets 403 and charges nothing, counted; the impression pixel and the click
// are not filtered (browsers send them); inside it the notices charge.
func TestNoticeSources(t *testing.T) {
	for _, c := range []struct {
		name    string
		sources []string
		allowed bool
	}{
		{"outside", []string{"192.0.2.0/24", "2001:db8::1"}, false},
		{"inside", []string{"192.0.2.0/24", "127.0.0.1"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := startApp(t, func(cfg *Config) { cfg.Notices.Sources = c.sources })
			base := "http://" + app.Addr()
			b := bidOnce(t, app, "req-site-banner")
			want := 403
			if c.allowed {
				want = 200
			}
			for _, u := range []string{b.NURL, b.BURL, b.LURL} {
				code, msg := get(t, substitute(u, "1.50"))
				if code != want || (!c.allowed && !bytes.Contains(msg, []byte("notices.sources"))) {
					t.Fatalf("notice %s: %d %q, want %d", u, code, msg, want)
				}
			}
			wantSpent := int64(0)
			if c.allowed {
				wantSpent = 1500
			}
			if s, _ := spent(t, app, "acme-banner"); s != wantSpent {
				t.Fatalf("spent %d, want %d", s, wantSpent)
			}
			pixel := base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`)
			if code, _ := get(t, pixel); code != 200 {
				t.Fatalf("pixel: %d, want 200 (never filtered)", code)
			}
			if code, _ := get(t, between(b.AdM, `<a href="`, `"`)); code != 302 {
				t.Fatalf("click: %d, want 302 (never filtered)", code)
			}
			wantRefused := uint64(3)
			if c.allowed {
				wantRefused = 0
			}
			if n := app.Server.m.noticeSource.load(); n != wantRefused {
				t.Fatalf("openbidder_notice_source_refused_total %d, want %d", n, wantRefused)
			}
		})
	}
}

// The admin listener holds at most maxAdminConns connections; the next waits
// until one closes. It is outside the bid listener's cap, and 1,100 idle
// admin connections under a descriptor limit of 1,024 stalled the bid
// listener and failed the event log (an outside audit).
func TestAdminConnectionsCapped(t *testing.T) {
	app := startApp(t, nil)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxAdminConns {
		c, err := net.Dial("tcp", app.AdminAddr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	get := func() error {
		cl := &http.Client{Timeout: 400 * time.Millisecond}
		resp, err := cl.Get("http://" + app.AdminAddr() + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err == nil {
		t.Fatalf("a request past %d open admin connections was served", maxAdminConns)
	}
	conns[0].Close()
	conns = conns[1:]
	var err error
	for range 10 {
		if err = get(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("one admin connection closed, the next request still waits: %v", err)
	}
}

// budget.max_holds bounds the bids whose holds are open at once: with 1024
// and no notices, bids stop with no-bid reason budget once the table is
// full, counted in openbidder_budget_hold_table_full_total. The docs named
// the setting, but the bidder had none (the table was always 2^20).
func TestMaxHoldsBoundsOpenHolds(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Budget.MaxHolds = 1024 })
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	bids, why := 0, map[string]int{}
	for i := 0; i < 1300; i++ {
		code, _, reason := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body)
		if code == 200 {
			bids++
		} else {
			why[reason]++
		}
	}
	_, m := get(t, "http://"+app.AdminAddr()+"/metrics")
	full := regexp.MustCompile(`(?m)^openbidder_budget_hold_table_full_total ([0-9]+)$`).FindSubmatch(m)
	if bids > 1024 || why["budget"] == 0 || full == nil || string(full[1]) == "0" {
		t.Fatalf("max_holds 1024: %d bids, no-bids %v, hold_table_full %q; want at most 1024 bids, then budget no-bids the counter counts", bids, why, full)
	}
	if bids < 512 {
		t.Errorf("only %d bids of 1300 before the table of 1024 was full (no-bids %v)", bids, why)
	}
}
