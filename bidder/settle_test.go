package bidder

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/budget"
)

// On a charge-on-billing exchange a win charges provisionally (an exchange
// that sends no burl is still charged), a loss before the bill reverses it,
// and a bill after that charges again, once.
func TestProvisionalWinReversedByLoss(t *testing.T) {
	app := startApp(t, nil)
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	_, resp, _ := post(t, "http://"+app.Addr()+"/openrtb2/bid", body)
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	b := br.SeatBid[0].Bid[0]
	for _, s := range []struct {
		url, price  string
		spent, held int64 // held: the bid's hold (2,000) less what is drawn from it, until it expires
	}{
		{b.NURL, "1.50", 1500, 500}, // provisional
		{b.NURL, "1.50", 1500, 500}, // replay
		{b.LURL, "0", 0, 2000},      // reversed: back into the hold
		{b.LURL, "0", 0, 2000},      // replay
		{b.BURL, "1.20", 1200, 800}, // billed after all: charged once, at the bill
		{b.BURL, "1.20", 1200, 800},
	} {
		if code, msg := get(t, substitute(s.url, s.price)); code != 200 {
			t.Fatalf("%s: %d %s", s.url, code, msg)
		}
		if got, held := spent(t, app, "acme-banner"); got != s.spent || held != s.held {
			t.Fatalf("after %s at %s: spent %d held %d, want %d and %d", s.url[:strings.Index(s.url, "?")], s.price, got, held, s.spent, s.held)
		}
	}
}

// A charging notice is answered only once its ledger entry is durable: with
// NATS down it gets 503 within notices.ack_wait (the charge stays queued),
// and the exchange's retry, once NATS is back, gets 200 with the one entry.
func TestNotice503UntilLedgerAcknowledges(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts NATS")
	}
	store := t.TempDir()
	// The first start binds a port the kernel picks (-1); a restart binds
	// the same one again, as a restarted server would.
	port := -1
	startNATS := func() func() {
		s, err := budget.StartEmbedded(budget.EmbeddedOptions{ServerName: "solo", StoreDir: store, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		port = s.Addr().(*net.TCPAddr).Port
		return s.Shutdown
	}
	stop := startNATS()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	app := startApp(t, func(c *Config) {
		c.Budget.NATSURLs = []string{url}
		c.Notices.AckWait = 300 * time.Millisecond
		c.Notices.ChargeOn = "win"
	})
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	_, resp, _ := post(t, "http://"+app.Addr()+"/openrtb2/bid", body)
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	nurl := substitute(br.SeatBid[0].Bid[0].NURL, "1.25")
	stop()
	if code, msg := get(t, nurl); code != 503 {
		t.Fatalf("win notice with the ledger down: %d %s, want 503", code, msg)
	}
	if s, _ := spent(t, app, "acme-banner"); s != 1250 {
		t.Fatalf("spent %d: the unacknowledged charge must stay counted", s)
	}
	stop = startNATS()
	defer stop()
	waitFor(t, 20*time.Second, func() bool { code, _ := get(t, nurl); return code == 200 })
	var n int
	var sum int64
	for _, e := range ledgerEntries(t, url) {
		if e.Auction == br.ID {
			n++
			sum += e.Charged
		}
	}
	if n != 1 || sum != 1250 {
		t.Fatalf("ledger: %d entries summing to %d, want one of 1250", n, sum)
	}
}

// Loss reason 0 is OpenRTB's "bid won" (5.25): an exchange that fires lurl
// for every outcome sends it for the winner. It must not reverse the win's
// provisional charge, nor stop a later win notice charging: on an exchange
// that sends no burl the impression would run free.
func TestLossReasonBidWonChangesNothing(t *testing.T) {
	app := startApp(t, nil)
	won := func(lurl string) string { return strings.ReplaceAll(substitute(lurl, "0"), "r=102", "r=0") }
	var total int64
	step := func(url string, add int64) {
		t.Helper()
		if code, msg := get(t, url); code != 200 {
			t.Fatalf("%s: %d %s", url, code, msg)
		}
		total += add
		if got, _ := spent(t, app, "acme-banner"); got != total {
			t.Fatalf("after %s: spent %d, want %d", url[:strings.Index(url, "?")], got, total)
		}
	}
	a := bidOnce(t, app, "won-after-win")
	step(substitute(a.NURL, "1.50"), 1500) // provisional
	step(won(a.LURL), 0)                   // "bid won": kept
	b := bidOnce(t, app, "won-before-win")
	step(won(b.LURL), 0)
	step(substitute(b.NURL, "1.40"), 1400) // still charges
	// A reason that is not an integer may be "bid won" written otherwise, or
	// a macro the exchange did not substitute: 400, nothing reversed (it
	// reversed the provisional charge: an outside audit).
	for _, r := range []string{"0.0", "0x0", "%24%7BAUCTION_LOSS%7D", "-", ""} {
		u := strings.ReplaceAll(substitute(b.LURL, "0"), "r=102", "r="+r)
		if code, _ := get(t, u); code != 400 {
			t.Fatalf("loss with r=%s: %d, want 400", r, code)
		}
		if got, _ := spent(t, app, "acme-banner"); got != total {
			t.Fatalf("after a loss with r=%s: spent %d, want %d", r, got, total)
		}
	}
	// A real loss still reverses; "+" in a query is a space to the parser.
	step(strings.ReplaceAll(substitute(b.LURL, "0"), "r=102", "r=+102"), -1400)
}

// A notice token carries ids of at most 255 bytes. Two auctions whose ids
// differ only past that must not be billed as one impression (the second
// bill a replay of the first): a bid is placed only where the token can
// carry the request's and the imp's ids whole.
func TestLongIDsNotChargedAsOne(t *testing.T) {
	app := startApp(t, nil)
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	var billed int64
	bill := func(auction, imp string) bool {
		t.Helper()
		b := strings.Replace(string(body), "req-site-banner", auction, 1)
		b = strings.Replace(b, `"imp":[{"id":"1"`, `"imp":[{"id":"`+imp+`"`, 1)
		code, resp, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", []byte(b))
		if code != 200 {
			return false
		}
		var br openrtb2.BidResponse
		if err := json.Unmarshal(resp, &br); err != nil || len(br.SeatBid) == 0 {
			t.Fatalf("bid %d bytes: %v %s %s", len(auction), err, why, resp)
		}
		if code, msg := get(t, substitute(br.SeatBid[0].Bid[0].BURL, "1.00")); code != 200 {
			t.Fatalf("bill: %d %s", code, msg)
		}
		billed += 1000
		return true
	}
	long := strings.Repeat("a", budget.MaxTokenID)
	for _, c := range []struct {
		auction, imp string
		bids         bool
	}{
		{long, "1", true}, // the longest id a token carries
		{long + "x", "1", false},
		{long + "y", "1", false},
		{"imp-long", long + "x", false},
		{"imp-long", long + "y", false},
	} {
		if got := bill(c.auction, c.imp); got != c.bids {
			t.Errorf("auction %d bytes, imp %d bytes: bid %v, want %v", len(c.auction), len(c.imp), got, c.bids)
		}
	}
	if got, _ := spent(t, app, "acme-banner"); got != billed {
		t.Fatalf("spent %d after billing %d: an impression went uncharged", got, billed)
	}
}

// An exchange that reuses a request id for a new auction (against OpenRTB)
// gets a new bid each time, and billing both charges both: the second bill
// is not a replay of the first, whose own replay still changes nothing.
func TestReusedRequestIDBilledTwice(t *testing.T) {
	app := startApp(t, nil)
	var burls []string
	for range 2 {
		burls = append(burls, bidOnce(t, app, "req-site-banner").BURL)
	}
	for i, s := range []struct {
		url   string
		spent int64
	}{
		{substitute(burls[0], "1.00"), 1000},
		{substitute(burls[1], "1.00"), 2000}, // same auction and imp id, another impression
		{substitute(burls[1], "1.00"), 2000}, // its replay
		{substitute(burls[0], "0.90"), 2000},
	} {
		if code, msg := get(t, s.url); code != 200 {
			t.Fatalf("notice %d: %d %s", i, code, msg)
		}
		if got, _ := spent(t, app, "acme-banner"); got != s.spent {
			t.Fatalf("after notice %d: spent %d, want %d", i, got, s.spent)
		}
	}
}

// The same notices, sent at once from many connections (an exchange's
// retries racing each other), settle the impression once: a bill racing
// its win, its loss and its own replays charges its price exactly once and
// leaves nothing held.
func TestConcurrentNoticesChargeOnce(t *testing.T) {
	app := startApp(t, nil)
	var want int64
	for round := range 3 {
		bid := bidOnce(t, app, fmt.Sprint("concurrent-", round))
		urls := []string{substitute(bid.BURL, "1.10"), substitute(bid.NURL, "1.10"), substitute(bid.LURL, "0")}
		codes := make(chan int, 24)
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Go(func() {
				r, err := http.Get(urls[i%len(urls)])
				if err != nil {
					codes <- 0
					return
				}
				r.Body.Close()
				codes <- r.StatusCode
			})
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 200 {
				t.Fatalf("round %d: a notice got %d", round, c)
			}
		}
		want += 1100 // billed: whatever came first, the bill settles at its price
		// held: the rest (2,000 - 1,100) of each round's hold, reserved until
		// it expires, unless the loss came first and released the hold.
		if got, held := spent(t, app, "acme-banner"); got != want || held%900 != 0 || held > 900*int64(round+1) {
			t.Fatalf("round %d: spent %d held %d, want %d and at most %d in rests of 900", round, got, held, want, 900*(round+1))
		}
	}
}

// Only GET and POST fire a notice: a HEAD (a link checker probing the URL)
// or an OPTIONS (a browser's CORS preflight) is a safe method and must not
// charge, nor count an impression.
func TestNoticeMethods(t *testing.T) {
	app := startApp(t, nil)
	burl := substitute(bidOnce(t, app, "req-site-banner").BURL, "1.00")
	for _, m := range []string{"HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"} {
		req, _ := http.NewRequest(m, burl, nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 405 || r.Header.Get("Allow") != "GET, POST" {
			t.Errorf("%s: %d, Allow %q; want 405, Allow GET, POST (RFC 9110)", m, r.StatusCode, r.Header.Get("Allow"))
		}
		if got, _ := spent(t, app, "acme-banner"); got != 0 {
			t.Fatalf("%s charged %d", m, got)
		}
	}
	for _, m := range []string{"POST", "GET"} {
		req, _ := http.NewRequest(m, burl, nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if got, _ := spent(t, app, "acme-banner"); r.StatusCode != 200 || got != 1000 {
			t.Fatalf("%s: %d, spent %d, want 200 and 1000", m, r.StatusCode, got)
		}
	}
}

// A burl replayed after the de-duplication windows (its token still valid
// for a day) is refused with 403 and charges nothing: the tier and the
// ledger stream's duplicate window have both forgotten the first bill, so
// charging it would charge the impression twice. Before, it was charged again.
// The windows are 2 s, not 1: a token's bid time is in whole seconds, rounded
// down, so a notice may look up to a second older than it is (the safe side),
// and with 1 s windows the first bill itself was refused when the bid fell
// late in its second and the bill was slow.
func TestBillReplayedPastWindowsRefused(t *testing.T) {
	app := startApp(t, func(c *Config) {
		c.Notices.DedupWindow = DedupWindowConfig{Win: 2 * time.Second, Bill: 2 * time.Second, Loss: 2 * time.Second}
	})
	var burls []string
	for i := range 2 {
		burls = append(burls, substitute(bidOnce(t, app, fmt.Sprint("replay-late-", i)).BURL, "1.00"))
	}
	if code, msg := get(t, burls[0]); code != 200 {
		t.Fatalf("bill: %d %s", code, msg)
	}
	if got, _ := spent(t, app, "acme-banner"); got != 1000 {
		t.Fatalf("spent %d after the bill, want 1000", got)
	}
	time.Sleep(2500 * time.Millisecond) // the thing under test is the windows' passing
	for i, u := range burls {           // the replay, and a first bill past the window
		if code, msg := get(t, u); code != 403 || !strings.Contains(string(msg), "dedup_window") {
			t.Fatalf("notice %d past the windows: %d %q, want 403 naming dedup_window", i, code, msg)
		}
	}
	if got, _ := spent(t, app, "acme-banner"); got != 1000 {
		t.Fatalf("spent %d after a replay past the windows, want 1000", got)
	}
}

// The same after a restart that shortened notices.token_ttl: a bid made
// under the old, longer TTL is no newer for it. Before, its bid time was
// taken as its token's expiry less the new TTL (an hour later than it was
// here), so its burl replayed past the windows was charged a second time.
func TestBillReplayedAfterTokenTTLShortenedRefused(t *testing.T) {
	dir := t.TempDir()
	ttl := time.Hour
	edit := func(c *Config) {
		c.Budget.StoreDir = filepath.Join(dir, "nats")
		c.Notices.DedupWindow = DedupWindowConfig{Win: 2 * time.Second, Bill: 2 * time.Second, Loss: 2 * time.Second}
		c.Notices.HoldTTL = time.Second
		c.Notices.TokenTTL = ttl
	}
	app := startApp(t, edit)
	burl := substitute(bidOnce(t, app, "ttl-shortened").BURL, "1.00")
	if code, msg := get(t, burl); code != 200 {
		t.Fatalf("bill: %d %s", code, msg)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ttl = 3 * time.Second
	app = startApp(t, edit)
	time.Sleep(2500 * time.Millisecond) // the thing under test is the windows' passing
	// The notice URL names the old port: send it to the new one.
	u := strings.Replace(burl, between(burl, "http://", "/notice"), app.Addr(), 1)
	if code, msg := get(t, u); code != 403 || !strings.Contains(string(msg), "dedup_window") {
		t.Fatalf("replay past the windows after token_ttl was shortened: %d %q, want 403 naming dedup_window", code, msg)
	}
	if got, _ := spent(t, app, "acme-banner"); got != 1000 {
		t.Fatalf("spent %d after the replay, want 1000", got)
	}
}

// What a test-mode request (OpenRTB test=1) gets is the exchange's
// test_requests. By default (billable) its bid holds and its notices charge
// like a live one's: test=1 is the request's word, and an exchange (or
// anything that can post as one) marking live auctions test=1 got ads that
// never charged the budget. free keeps the old behaviour for an exchange's
// integration: nothing held, notices answered without charge, and the token
// says so (a notice cannot claim it). nobid answers 204 test_request.
func TestTestRequests(t *testing.T) {
	app := startApp(t, func(c *Config) {
		c.Exchanges = map[string]ExchangeConfig{"integ": {TestRequests: "free"}, "strict": {TestRequests: "nobid"}}
	})
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	testBody := strings.Replace(string(body), `"id":"req-site-banner"`, `"id":"req-test-mode","test":1`, 1)
	base := "http://" + app.Addr()
	bidAt := func(exchange, body string) openrtb2.Bid {
		t.Helper()
		code, resp, why := postBid(t, base+"/openrtb2/bid?exchange="+exchange, []byte(body))
		var br openrtb2.BidResponse
		if code != 200 || json.Unmarshal(resp, &br) != nil || len(br.SeatBid) == 0 || len(br.SeatBid[0].Bid) == 0 {
			t.Fatalf("bid on %q: %d %s %s", exchange, code, why, resp)
		}
		return br.SeatBid[0].Bid[0]
	}

	// The default: billable.
	b := bidAt("", testBody)
	if _, held := spent(t, app, "acme-banner"); held == 0 {
		t.Fatal("a test=1 bid on an exchange without test_requests holds nothing, want its hold")
	}
	if code, msg := get(t, substitute(b.BURL, "1.00")); code != 200 {
		t.Fatalf("test=1 bill: %d %s", code, msg)
	}
	// The hold's rest (2,000 - 1,000) stays reserved until it expires.
	if got, held := spent(t, app, "acme-banner"); got != 1000 || held != 1000 {
		t.Fatalf("after a billable test=1 bid's bill: spent %d, held %d; want 1000, the hold's rest 1000", got, held)
	}

	// free: nothing held or charged.
	free := bidAt("integ", testBody)
	if _, held := spent(t, app, "acme-banner"); held != 1000 {
		t.Fatalf("a free test-mode bid holds %d, want 0 (held stays the billable bid's rest, 1000)", held-1000)
	}
	imp := base + "/notice/imp" + between(free.AdM, `<img src="`+base+"/notice/imp", `"`)
	click := between(free.AdM, `<a href="`, `"`)
	for _, u := range []string{substitute(free.NURL, "1.00"), substitute(free.BURL, "1.00"), substitute(free.BURL, "2.00"), imp} {
		if code, msg := get(t, u); code != 200 {
			t.Fatalf("free test-mode notice %s: %d %s", u, code, msg)
		}
	}
	if code, _ := get(t, click); code != 302 {
		t.Fatalf("free test-mode click: %d, want 302", code)
	}
	if got, held := spent(t, app, "acme-banner"); got != 1000 || held != 1000 {
		t.Fatalf("after a free test-mode bid's notices: spent %d, held %d; want 1000, 1000 (the billable bid's rest)", got, held)
	}
	_, m := get(t, "http://"+app.AdminAddr()+"/metrics")
	if !strings.Contains(string(m), "openbidder_test_notices_total 5\n") {
		t.Fatal("metrics lack openbidder_test_notices_total 5")
	}

	// nobid: 204, and a live request of the same exchange still bids and charges.
	if code, _, why := post(t, base+"/openrtb2/bid?exchange=strict", []byte(testBody)); code != 204 || why != "test_request" {
		t.Fatalf("test=1 on a nobid exchange: %d %q, want 204 test_request", code, why)
	}
	live := bidAt("strict", string(body))
	if code, msg := get(t, substitute(live.BURL, "1.00")); code != 200 {
		t.Fatalf("live bill: %d %s", code, msg)
	}
	if got, _ := spent(t, app, "acme-banner"); got != 2000 {
		t.Fatalf("a live bill after the test-mode ones: spent %d, want 2000", got)
	}
}

// Replays racing one another: 32 goroutines firing one pixel and one click
// 200 times each. ristretto's asynchronous Set let racers through (an
// outside audit counted one impression 56 times over HTTP); the recent-keys
// table lets exactly one count.
func TestTrackerRacingReplaysCountedOnce(t *testing.T) {
	ts := newTrackerSeen(1<<16, time.Hour)
	defer ts.close()
	for round := range 20 {
		tok := bidToken{AuctionID: []byte(fmt.Sprint("a", round)), ImpID: []byte("1"), Instance: []byte("i"), Hold: uint64(round + 1)}
		var firsts atomic.Int64
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					for _, k := range []noticeKind{noticeImp, noticeClick} {
						if ts.first(k, &tok) {
							firsts.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		if n := firsts.Load(); n != 2 {
			t.Fatalf("round %d: %d first sightings for one pixel and one click, want 2", round, n)
		}
	}
}

// A replayed impression pixel or click (their URLs sit in the markup every
// browser sees) is answered but counted once: it does not use up the user's
// frequency cap or inflate the impression and click series.
func TestTrackerReplaysCountedOnce(t *testing.T) {
	app := startApp(t, nil)
	b := bidOnce(t, app, "req-site-banner")
	base := "http://" + app.Addr()
	imp := base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`)
	click := between(b.AdM, `<a href="`, `"`)
	for i := range 5 {
		if code, gif := get(t, imp); code != 200 || !strings.HasPrefix(string(gif), "GIF89a") {
			t.Fatalf("pixel %d: %d", i, code)
		}
		if code, _ := get(t, click); code != 302 {
			t.Fatalf("click %d: %d", i, code)
		}
		app.Server.trackers.wait() // ristretto applies its sets asynchronously
	}
	_, m := get(t, "http://"+app.AdminAddr()+"/metrics")
	page := string(m)
	for _, want := range []string{
		`openbidder_campaign_impressions_total{campaign="acme-banner"} 1` + "\n",
		`openbidder_campaign_clicks_total{campaign="acme-banner"} 1` + "\n",
		"openbidder_tracker_replays_total 8\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// No cache may answer a tracker in the bidder's place.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, u := range []string{imp, click} {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", u[:40], cc)
		}
	}
}

// A loss notice reaching an instance that is not its bid's, whose bidding
// instance is running but does not answer, and that changes nothing where it
// arrived, is answered 503 (the exchange retries) and is not logged there;
// the retry, once the owner answers, reverses its provisional win and is
// logged once. Before, it was answered 200 and the win stayed charged (a
// fleet audit, during a NATS outage); the first version of the 503 also
// logged the refused attempt, so the loss was logged twice.
func TestLossWhileOwnerStalledIsRetried(t *testing.T) {
	srv := startSoloNATS(t)
	url := srv.ClientURL()
	dirOne, dirTwo := t.TempDir(), t.TempDir()
	on := func(inst, dir string) func(*Config) {
		return func(c *Config) {
			c.InstanceID, c.Budget.NATSURLs, c.Budget.StoreDir = inst, []string{url}, filepath.Join(dir, "nats")
			c.Notices.AckWait = 2 * time.Second
		}
	}
	one := startApp(t, on("one", dirOne))
	two := startApp(t, on("two", dirTwo))
	b := bidOnce(t, one, "loss-owner-stalled")
	if code, msg := get(t, substitute(b.NURL, "1.50")); code != 200 {
		t.Fatalf("win: %d %s", code, msg)
	}
	if err := one.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stalled, err := nc.Subscribe("budget.notice.one", func(*nats.Msg) {}) // the owner's subject, never answered
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	loss := substitute(b.LURL, "1.50")
	atTwo := strings.Replace(loss, between(loss, "http://", "/notice"), two.Addr(), 1)
	if code, msg := get(t, atTwo); code != 503 {
		t.Fatalf("loss while the owner does not answer: %d %s, want 503", code, msg)
	}
	stalled.Unsubscribe()
	nc.Flush()
	one = startApp(t, on("one", dirOne)) // the owner back, with its levels
	if code, msg := get(t, atTwo); code != 200 {
		t.Fatalf("the retry: %d %s", code, msg)
	}
	if s, _ := spent(t, one, b.CID); s != 0 {
		t.Fatalf("spent %d after the retried loss, want 0 (the win reversed)", s)
	}
	if err := two.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dirTwo, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	losses := 0
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var ev struct{ Kind, Auction string }
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Kind == "loss" && ev.Auction == "loss-owner-stalled" {
			losses++
		}
	}
	if losses != 1 {
		t.Errorf("the loss logged %d times at the instance that forwarded it, want once: %s", losses, raw)
	}
}
