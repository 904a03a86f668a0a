package bidder

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/campaigns"
)

// findBrowser returns a Chromium to drive: $CHROME, else the first of the
// usual names on PATH (Debian's package is chromium).
func findBrowser() string {
	if p := os.Getenv("CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// consoleErrors collects what the page reports as errors: console.error,
// uncaught exceptions, and the browser's own error log entries (failed
// loads, Content-Security-Policy violations).
type consoleErrors struct {
	mu   sync.Mutex
	msgs []string
}

func (c *consoleErrors) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// reset forgets the errors read so far.
func (c *consoleErrors) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = nil
}

// read ranges over the page's console until ctx ends.
func (c *consoleErrors) read(ctx context.Context) {
	for m, err := range chromedp.Console(ctx) {
		if err != nil {
			return
		}
		if m.Type == chromedp.ConsoleError || m.IsException() {
			c.mu.Lock()
			c.msgs = append(c.msgs, m.String()+" "+m.Source+" "+m.URL)
			c.mu.Unlock()
		}
	}
}

// needBrowser returns the Chromium a browser test drives, or skips the test
// (under -short, or with none found).
func needBrowser(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test")
	}
	browser := findBrowser()
	if browser == "" {
		t.Skip("status page browser test skipped: no Chromium found (apt-get install -y chromium, or set CHROME=/path/to/chrome)")
	}
	return browser
}

// browserTab starts browser headless and returns a tab's context, bounded
// by 90 s, all ended when the test ends.
func browserTab(t *testing.T, browser string, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	actx, cancel := chromedp.NewExecAllocator(t.Context(), append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true)}, opts...)...)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTime)
	return ctx
}

// The status page in a real headless Chromium against a real bidder with
// the example campaigns: it loads with no console error, lists every
// campaign, shows a bid and a win after its next refresh, and its buttons
// pause and resume a campaign and all bidding through the admin API (with
// the token given in the URL's fragment). STATUS_SCREENSHOT=FILE saves a
// screenshot of the page after the traffic.
func TestStatusPageInBrowser(t *testing.T) {
	browser := needBrowser(t)
	app := startApp(t, func(c *Config) {
		c.CampaignsDir = "../configs/campaigns"
		c.AdminToken = adminTokn
		c.Currency.Rates = map[string]float64{"USD": 1, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "CAD": 0.73, "AUD": 0.66}
	})
	snap, err := campaigns.LoadDir("../configs/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range snap.Campaigns {
		want = append(want, c.ID)
	}
	slices.Sort(want)

	ctx := browserTab(t, browser, chromedp.WindowSize(1700, 1400))
	if err := chromedp.Do(ctx); err != nil { // starts the browser and attaches the tab
		t.Fatalf("start %s: %v", browser, err)
	}
	var errs consoleErrors
	go errs.read(ctx)
	// Without a token the page asks for one; given in its form, the data
	// loads and the request for a token goes (it stayed on screen: an
	// outside audit).
	for i, step := range []chromedp.Action[chromedp.Void]{chromedp.Navigate("http://" + app.AdminAddr() + "/?every=1"), chromedp.WaitVisible(chromedp.CSS("#auth.on")),
		chromedp.SendKeys(chromedp.CSS("#token"), adminTokn), chromedp.Click(chromedp.CSS(`#auth button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-campaign="acme-broad-reach"]`))} {
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		err := chromedp.Do(sctx, step)
		scancel()
		if err != nil {
			t.Fatalf("the token form, step %d: %v", i, err)
		}
	}
	if msg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("msg").textContent`)); err != nil || strings.Contains(msg, "token") {
		t.Fatalf("after the token was given and the data loaded, the message says %q (%v)", msg, err)
	}
	for _, e := range errs.all() { // the browser logs each 401 before the token
		if !strings.Contains(e, "401") {
			t.Fatalf("the page reported an error before its token: %s", e)
		}
	}
	errs.reset()
	page := "http://" + app.AdminAddr() + "/?every=1#token=" + adminTokn
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`tr[data-campaign="acme-broad-reach"]`))); err != nil {
		t.Fatalf("page did not show the campaigns (browser %s): %v; console: %v", browser, err, errs.all())
	}
	listed, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#campaigns tr")).map(function (r) { return r.dataset.campaign; })`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, want) {
		t.Fatalf("page lists %v, want the example campaigns %v", listed, want)
	}

	// Traffic: a bid and its win notice show after the page's next refresh.
	body, err := os.ReadFile("../configs/examples/bid-request.json")
	if err != nil {
		t.Fatal(err)
	}
	code, resp, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body)
	if code != 200 {
		t.Fatalf("example bid request: %d %s", code, why)
	}
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	bid := br.SeatBid[0].Bid[0]
	if code, _ := get(t, substitute(bid.NURL, "0.90")); code != 200 {
		t.Fatalf("win notice: %d", code)
	}
	row := fmt.Sprintf(`tr[data-campaign=%q]`, bid.CID)
	// The page replaces its rows at every refresh, so a cell is read in one
	// step inside the page: a node found by one DevTools call may be gone by
	// the next ("No node with given id found").
	text := func(sel string) string {
		t.Helper()
		q, _ := json.Marshal(sel)
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(function () { var e = document.querySelector(`+string(q)+`); return e ? e.innerText : ""; })()`))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	cell := func(sel string) string { t.Helper(); return text(row + " " + sel) }
	pageShows := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed %s; console: %v", what, errs.all())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	pageShows("the bid and the win", func() bool { return cell("td.bids") == "1" && cell("td.wins") == "1" })
	if p := os.Getenv("STATUS_SCREENSHOT"); p != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The page's buttons: pause the campaign, resume it, pause and resume all.
	// A click is a real mouse press and release on the node's box. When a
	// refresh replaces the node between finding it and measuring its box,
	// nothing was pressed yet and the click is tried again.
	click := func(sel string) {
		t.Helper()
		var err error
		for range 5 {
			if err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err == nil || !(strings.Contains(err.Error(), "No node") || strings.Contains(err.Error(), "box model")) {
				break
			}
		}
		if err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#reason"), "browser test")); err != nil {
		t.Fatal(err)
	}
	// A click right after the page came to the front (here a focus event)
	// is not acted on: in double-clickjacking another site swaps the page in
	// under the second click of a double-click. The page says to click again.
	// The focus and the click in one script: a click through devtools (a
	// few round trips, retried) could land past the page's second on a
	// loaded machine, and then count (a flake hunt's reading).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.dispatchEvent(new Event("focus")), document.querySelector("#pauseAll").click(), true`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if app.Server.pausedAll() || !strings.Contains(text("#msg"), "click again") {
		t.Fatalf("a click just after the page came to the front: paused all %v, message %q", app.Server.pausedAll(), text("#msg"))
	}
	time.Sleep(time.Second) // the operator's own clicks come later
	click(row + " button")
	pageShows("the campaign paused", func() bool {
		p := app.budget.Control().Campaigns[bid.CID]
		return p.Paused && p.Who == adminTokenName && p.Reason == "browser test" && strings.HasPrefix(cell("td:nth-child(2)"), "paused")
	})
	if code, resp, why := post(t, "http://"+app.Addr()+"/openrtb2/bid", body); code == 200 && strings.Contains(string(resp), `"cid":"`+bid.CID+`"`) {
		t.Fatalf("bid with %s paused: %d %q %s", bid.CID, code, why, resp)
	}
	click(row + " button")
	pageShows("the campaign resumed", func() bool {
		return !app.budget.Control().CampaignPaused(bid.CID) && strings.HasPrefix(cell("td:nth-child(2)"), "active")
	})
	click("#pauseAll")
	pageShows("all bidding paused", func() bool {
		return app.Server.pausedAll() && text("#bidding") == "all bidding paused"
	})
	if code, _, why := post(t, "http://"+app.Addr()+"/openrtb2/bid", body); code != 204 || why != "paused" {
		t.Fatalf("bid with all paused: %d %q", code, why)
	}
	click("#resumeAll")
	pageShows("bidding resumed", func() bool { return !app.Server.pausedAll() })
	if code, _, _ := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body); code != 200 {
		t.Fatalf("bid after resume: %d", code)
	}
	// One more refresh with everything in place, then no error may have shown.
	generated := func() string {
		a, _ := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-generated"))
		return a.Value
	}
	gen := generated()
	pageShows("a later refresh", func() bool { now := generated(); return now != "" && now != gen })
	if e := errs.all(); len(e) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(e, "\n"))
	}

	// A link with an absurd refresh period (a hostile page can send the
	// operator to one) refreshes at most hourly: before the clamp, Infinity
	// and periods past setTimeout's 2^31-1 ms ran back to back.
	for _, every := range []string{"Infinity", "3000000", "-5", "x"} {
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+app.AdminAddr()+"/?every="+every+"#token="+adminTokn),
			chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
			t.Fatalf("every=%s: %v", every, err)
		}
		time.Sleep(1500 * time.Millisecond)
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](
			`performance.getEntriesByType("resource").filter(function (e) { return e.name.indexOf("/admin/status") >= 0; }).length`))
		if err != nil {
			t.Fatal(err)
		}
		if n > 2 {
			t.Errorf("every=%s: %d status requests in 1.5 s", every, n)
		}
	}
}

// When the bidder stops answering, the page says so: before, its last
// figures stayed up with a green "ready" and "bidding", and only the small
// grey "updated" line read "update failed" (an outside ops audit killed the
// bidder under an open page).
func TestStatusPageShowsLostBidder(t *testing.T) {
	browser := needBrowser(t)
	app := startApp(t, nil)
	ctx := browserTab(t, browser)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+app.AdminAddr()+"/?every=1"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-campaign]`))); err != nil {
		t.Fatalf("page did not load (browser %s): %v", browser, err)
	}
	header := func() string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("header").innerText`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if h := header(); !strings.Contains(h, "ready") || strings.Contains(h, "no answer") {
		t.Fatalf("header with the bidder up: %q", h)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := app.Close(sctx); err != nil {
		t.Logf("close: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for h := header(); !strings.Contains(h, "no answer") || !strings.Contains(h, "the figures below are from"); h = header() {
		if time.Now().After(deadline) {
			t.Fatalf("the page never said the bidder stopped answering; header %q", h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h := header(); strings.Contains(h, "\nready\n") || strings.Contains(h, "\nbidding\n") {
		t.Fatalf("header still says ready or bidding after the bidder went: %q", h)
	}
}

// The page behind a reverse proxy that sets Host to the bidder's admin
// address (nginx's proxy_pass by default), in a real Chromium: with a
// token its Pause all works (its POST carries the proxy's origin, and was
// refused 403 before: an outside audit); without one it is refused, and the
// page says why in words (it said `Unexpected token 'c', "cross-orig"... is
// not valid JSON`: a refusal before the handler is text).
func TestStatusPageBehindHostRewritingProxy(t *testing.T) {
	browser := needBrowser(t)
	for _, c := range []struct {
		name, token, want string
		paused            bool
	}{
		{"token", adminTokn, "paused all as admin", true},
		{"no token", "", "change refused: cross-origin request refused", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := startApp(t, func(cfg *Config) { cfg.AdminToken = c.token })
			target, _ := url.Parse("http://" + app.AdminAddr())
			proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }})
			t.Cleanup(proxy.Close)
			ctx := browserTab(t, browser)
			page := proxy.URL + "/"
			if c.token != "" {
				page += "#token=" + c.token
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`#campaigns tr`))); err != nil {
				t.Fatalf("page through the proxy: %v", err)
			}
			time.Sleep(1200 * time.Millisecond) // past the page's second after it came to the front
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#pauseAll").click(), true`)); err != nil {
				t.Fatal(err)
			}
			var msg string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				m, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("msg").textContent`))
				if err != nil {
					t.Fatal(err)
				}
				if msg = m; strings.HasPrefix(msg, "paused") || strings.HasPrefix(msg, "change refused") {
					break
				}
			}
			if !strings.HasPrefix(msg, c.want) || app.Server.pausedAll() != c.paused {
				t.Fatalf("Pause all through the proxy: page says %q, paused all %v; want %q, %v", msg, app.Server.pausedAll(), c.want, c.paused)
			}
		})
	}
}
