package bidder

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/budget"
)

func getStatus(t *testing.T, app *App, query, token string) (int, *statusDoc) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+app.AdminAddr()+"/admin/status"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	var d statusDoc
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return 200, &d
}

func campaignRow(d *statusDoc, id string) *campaignJSON {
	for i := range d.Campaigns {
		if d.Campaigns[i].ID == id {
			return &d.Campaigns[i]
		}
	}
	return nil
}

// GET /admin/status after traffic: the campaigns with their money, plan,
// counters (bids, a win counted once however often its notice comes,
// impressions, clicks against predictions) and pause; this instance; the
// model; the warnings logged. Filters and limits bound the list.
func TestStatusDocument(t *testing.T) {
	app := startApp(t, func(c *Config) { c.AdminToken = adminTokn })
	if code, _ := getStatus(t, app, "", ""); code != 401 {
		t.Fatalf("status without the token: %d", code)
	}
	b := bidOnce(t, app, "status-1")
	base := "http://" + app.Addr()
	for _, u := range []string{substitute(b.NURL, "1.50"), substitute(b.NURL, "1.50"), substitute(b.BURL, "1.50"),
		base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`), between(b.AdM, `<a href="`, `"`)} {
		if code, _ := get(t, u); code != 200 && code != 302 {
			t.Fatalf("notice %s: %d", u, code)
		}
	}
	app.log.Warn("something to look at", "campaign", acmeBanner)
	app.log.Info("not kept")
	if code, _ := adminDo(t, app, "POST", "/admin/pause", adminTokn, "campaign=globex-cpc&reason=review"); code != 200 {
		t.Fatalf("pause: %d", code)
	}

	_, d := getStatus(t, app, "", adminTokn)
	// testdata/campaigns holds six campaigns (screens.yaml and tvpods.yaml are the DOOH and pod ones).
	if d.Instance.ID != "e2e" || !d.Instance.Ready || d.Traffic.Requests != 1 || d.Traffic.Bids != 1 || d.CampaignsTotal != 6 || len(d.Campaigns) != 6 {
		t.Fatalf("instance %+v traffic %+v campaigns %d/%d", d.Instance, d.Traffic, len(d.Campaigns), d.CampaignsTotal)
	}
	acme := campaignRow(d, acmeBanner)
	switch {
	case acme == nil:
		t.Fatal("acme-banner not listed")
	case acme.Bids != 1 || acme.Wins != 1 || acme.WinRate != 1 || acme.Impressions != 1 || acme.Clicks != 1 || acme.PredictedClicks <= 0:
		t.Fatalf("acme counters %+v", acme.campaignFigures)
	case acme.SpentTodayMicros != 1500 || acme.DailyBudgetMicros != 100_000_000 || acme.Currency != "USD" || acme.Advertiser == "":
		t.Fatalf("acme money %+v", acme.CampaignStatus)
	case acme.Plan == nil || len(acme.Plan.Curve) != planPoints || acme.Plan.DailyMicros != 100_000_000 || len(acme.SpendToday) == 0:
		t.Fatalf("acme plan %+v, spend samples %v", acme.Plan, acme.SpendToday)
	case acme.SpendToday[len(acme.SpendToday)-1][1] != 1500:
		t.Fatalf("acme spend samples %v", acme.SpendToday)
	case acme.Paused != nil || acme.Status != "active":
		t.Fatalf("acme state %q %+v", acme.Status, acme.Paused)
	}
	if len(acme.Leases) != 1 || acme.Leases[0].Instance != "e2e" || acme.Leases[0].Amount <= 0 {
		t.Fatalf("acme leases %+v", acme.Leases)
	}
	if g := campaignRow(d, "globex-cpc"); g == nil || g.Paused == nil || g.Paused.Who != adminTokenName || g.Paused.Reason != "review" {
		t.Fatalf("globex not shown paused: %+v", g)
	}
	if len(d.Peers) != 1 || !d.Peers[0].Self || !d.Peers[0].Alive || d.Peers[0].LeasedCampaigns == 0 || d.Peers[0].LeasedMicros["USD"] <= 0 {
		t.Fatalf("peers %+v", d.Peers)
	}
	if d.Model.Chain == "" || len(d.Model.Slots) == 0 || d.Model.Predictions == 0 {
		t.Fatalf("model %+v", d.Model)
	}
	// Newest first; a start without ONNX Runtime logs a warning before it.
	if d.ErrorsTotal < 1 || len(d.Errors) < 1 || d.Errors[0].Msg != "something to look at" || d.Errors[0].Attrs != "campaign=acme-banner" {
		t.Fatalf("errors %d %+v", d.ErrorsTotal, d.Errors)
	}
	for _, e := range d.Errors {
		if e.Msg == "not kept" {
			t.Fatal("an INFO record kept")
		}
	}

	f := func(q string, want ...string) {
		t.Helper()
		_, d := getStatus(t, app, q, adminTokn)
		var got []string
		for _, c := range d.Campaigns {
			got = append(got, c.ID)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: campaigns %v, want %v", q, got, want)
		}
	}
	f("?q=ACME", acmeBanner)
	// Campaigns the kill switch pauses come first, however idle (at 10,000
	// campaigns a paused one fell out of the page's 200 rows, and its Resume
	// button with it: an outside audit), then the most active.
	f("?limit=1", "globex-cpc")
	f("?limit=2", acmeBanner, "globex-cpc")
	f("?limit=0")
	if code, _ := getStatus(t, app, "?limit=x", adminTokn); code != 400 {
		t.Fatalf("bad limit: %d", code)
	}
}

// The page itself is static and holds no data: served without the token,
// with a policy that allows only its own inline script and style.
func TestStatusPageServed(t *testing.T) {
	app := startApp(t, func(c *Config) { c.AdminToken = adminTokn })
	resp, err := http.Get("http://" + app.AdminAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "admin/status") ||
		!strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("GET /: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), csp)
	}
	if strings.Contains(string(body), "http://") && strings.Contains(string(body), "<script src") {
		t.Fatal("the page loads a script from elsewhere")
	}
	if code, _ := get(t, "http://"+app.AdminAddr()+"/nope"); code != 401 {
		t.Fatalf("another path without the token: %d", code)
	}
}

// The error ring keeps the newest records at WARN and above, with their
// attributes and groups, and passes every record on.
func TestRecentErrors(t *testing.T) {
	var out strings.Builder
	h := newRecentErrors(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError}), 3)
	log := slog.New(h).With("component", "budget").WithGroup("g")
	for i := range 5 {
		log.Warn("w", "i", i)
	}
	log.Info("info")
	log.Error("boom", slog.Group("sub", "k", "v"))
	got, total := h.ring.recent()
	if total != 6 || len(got) != 3 || got[0].Msg != "boom" || got[0].Level != "ERROR" || got[0].Attrs != "component=budget g.sub.k=v" ||
		got[1].Attrs != "component=budget g.i=4" || got[2].Attrs != "component=budget g.i=3" {
		t.Fatalf("ring %d %+v", total, got)
	}
	if !strings.Contains(out.String(), "boom") || strings.Contains(out.String(), "msg=w") {
		t.Fatalf("passed on by level: %q", out.String())
	}
	if !h.Enabled(context.Background(), slog.LevelWarn) || h.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("Enabled")
	}
	long := strings.Repeat("x", 2*maxErrorText)
	slog.New(h).Warn(long, "k", long)
	got, _ = h.ring.recent()
	if len(got[0].Msg) > maxErrorText+3 || len(got[0].Attrs) > maxErrorText+3 {
		t.Fatalf("long record kept as %d and %d bytes", len(got[0].Msg), len(got[0].Attrs))
	}
}

// Spend samples: one per interval, thinned (and the interval doubled) when
// full, restarted on a new day; the current figure always comes last.
func TestSpendHistory(t *testing.T) {
	var h spendHistory
	day := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	now := day.Add(time.Hour)
	var pts [][2]int64
	for i := 0; i < 3*spendMaxPoints; i++ {
		pts = h.sample("c", day, now, int64(i))
		now = now.Add(spendEvery)
	}
	if len(pts) > spendMaxPoints+1 || pts[len(pts)-1][1] != 3*spendMaxPoints-1 || h.m["c"].every <= spendEvery {
		t.Fatalf("%d points, last %v, every %v", len(pts), pts[len(pts)-1], h.m["c"].every)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i][0] <= pts[i-1][0] {
			t.Fatalf("samples out of order at %d", i)
		}
	}
	pts = h.sample("c", day.Add(24*time.Hour), now, 7)
	if len(pts) != 1 || pts[0][1] != 7 {
		t.Fatalf("a new day: %v", pts)
	}
}

// The paced encoding of the campaign rows writes what encoding/json writes
// for the same slice, HTML escaping included.
func TestCampaignListEncodesAsASlice(t *testing.T) {
	rows := []campaignJSON{
		{CampaignStatus: budget.CampaignStatus{ID: "a<b>&c", Currency: "EUR", SpentMicros: 5}, Advertiser: "Tom & \u2028 Jerry", Status: "active",
			Plan: &budget.Plan{}, SpendToday: [][2]int64{{1, 2}}, Leases: []leaseJSON{{Instance: "i1", Amount: 7}}},
		{CampaignStatus: budget.CampaignStatus{ID: "z"}, Leases: []leaseJSON{}},
	}
	for _, l := range [][]campaignJSON{rows, rows[:1], {}} {
		want, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(statusDoc{Campaigns: l})
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Campaigns json.RawMessage }
		if err := json.Unmarshal(got, &doc); err != nil {
			t.Fatal(err)
		}
		if string(doc.Campaigns) != string(want) {
			t.Errorf("campaigns encoded as\n%s\nwant\n%s", doc.Campaigns, want)
		}
	}
}

// writeStatus writes the bytes writeJSON writes for the same document (HTML
// escaped, the members in the struct's order, a newline after), with rows and
// without.
func TestWriteStatusWritesWhatWriteJSONWrites(t *testing.T) {
	rows := []campaignJSON{
		{CampaignStatus: budget.CampaignStatus{ID: "a<b>&c", Currency: "EUR", SpentMicros: 5}, Advertiser: "Tom & \u2028 Jerry", Status: "active",
			Plan: &budget.Plan{}, SpendToday: [][2]int64{{1, 2}}, Leases: []leaseJSON{{Instance: "i1", Amount: 7}}},
		{CampaignStatus: budget.CampaignStatus{ID: "z"}, Leases: []leaseJSON{}},
	}
	for _, l := range [][]campaignJSON{rows, nil} {
		d := &statusDoc{
			statusHead: statusHead{Generated: time.Unix(1700000000, 5).UTC(), CampaignsTotal: len(l),
				Instance: instanceStatus{ID: "<i&1>", Ready: true, Listen: "127.0.0.1:8080"}},
			Campaigns: l,
			statusTail: statusTail{Errors: []errorRecord{}, ErrorsTotal: 3,
				Model: modelStatus{Chain: "onnx>gbdt", Scored: map[string]uint64{"onnx": 9}}},
		}
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusOK, d)
		got := httptest.NewRecorder()
		writeStatus(got, d)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("writeStatus wrote %d\n%s\nwriteJSON %d\n%s", got.Code, got.Body, want.Code, want.Body)
		}
		for _, h := range []string{"Content-Type", "Cache-Control"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Errorf("%s: %q, writeJSON %q", h, got.Header().Get(h), want.Header().Get(h))
			}
		}
	}
}

// The page's latency p50/p99 are over the recent past, not since the start:
// after a day of fast answers a slow spell did not move a lifetime p99 (an
// outside audit: 0.5% of slow answers in the last minute, all of them since
// the previous status read, left it at the fast figure).
func TestStatusLatencyIsRecent(t *testing.T) {
	app := startApp(t, func(c *Config) { c.AdminToken = adminTokn })
	h := &app.Server.m.latency
	for range 10_000 {
		h.observe(0, 100*time.Microsecond)
	}
	_, d := getStatus(t, app, "", adminTokn)
	if p := d.Traffic.LatencyP99; p <= 0 || p > 100e-6 {
		t.Fatalf("first read: p99 %v, want at most 100 µs", p)
	}
	for range 50 {
		h.observe(0, 40*time.Millisecond)
	}
	_, d = getStatus(t, app, "", adminTokn)
	if p := d.Traffic.LatencyP99; p < 20e-3 {
		t.Fatalf("after a slow spell: p99 %v (window %v s), want the slow answers' (20-50 ms)", p, d.Traffic.LatencyWindow)
	}
	if w := d.Traffic.LatencyWindow; w <= 0 || w > 60 {
		t.Fatalf("latency_window_seconds %v, want the time since the first read", w)
	}
}
