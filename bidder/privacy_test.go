package bidder

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// TC strings for vendor testVendor, built by privacy's test encoder (see
// privacy.TestBidderStrings, which checks them) and decoded by go-gdpr.
const (
	testVendor = 42
	// Purposes 1-4 consented, vendor 42 consented: every use.
	tcAll = "CO5rKAAO5rKAAAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA"
	// Purposes 1-4 consented, vendors 41 and 43 only: the wrong vendor.
	tcWrongVendor = "CO5rKAAO5rKAAAHABBENBkEgAPAAAAAAAAAAAVgAAAAAAoAAAAA"
	// Purposes 1 and 2, vendor 42: frequency caps, no personalization.
	tcFreqOnly = "CO5rKAAO5rKAAAHABBENBkEgAMAAAAAAAAAAAVAAAAAAAQAAAAA"
	// tcAll written on 2026-03-02, after TCF v2.3's deadline: without the
	// Disclosed Vendors segment, with it listing vendor 42, and listing
	// vendors 41 and 43 only.
	tcAll23Missing     = "CQgcD4AQgcD4AAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA"
	tcAll23Disclosed   = "CQgcD4AQgcD4AAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA.IAVAAAAAAAQ"
	tcAll23Undisclosed = "CQgcD4AQgcD4AAHABBENBkEgAPAAAAAAAAAAAVAAAAAAAQAAAAA.IAVgAAAAAAo"
	// usnat, sale opted out; and usnat with notices given and no opt-out.
	gppSaleOut = "DBABLA~BVVaAAAAAgA.QA"
	gppClean   = "DBABLA~BVVqAAAAAgA.QA"
)

func withVendor(c *Config) { c.Privacy.VendorID = testVendor }

// recordingScorer records the rows it scores.
type recordingScorer struct {
	fixedScorer
	rows []float32
}

func (r *recordingScorer) Score(deadline time.Time, rows, out []float32) error {
	r.rows = append(r.rows[:0], rows...)
	return r.fixedScorer.Score(deadline, rows, out)
}

// TestPrivacyThroughHandler: the frequency-capped campaign needs a user key,
// so it bids exactly when the request allows frequency caps; the user slots
// are filled exactly when it allows personalization; a malformed string is
// no consent, never a 400.
func TestPrivacyThroughHandler(t *testing.T) {
	video := readReq(t, "app-video.json") // regs.gdpr 1, user u-2, capped campaign
	with := func(old, new string) []byte { return bytes.Replace(video, []byte(old), []byte(new), 1) }
	consent := func(s string) []byte { return with(`"user":{"id":"u-2"}`, `"user":{"id":"u-2","consent":"`+s+`"}`) }
	noGDPR := func(regs string) []byte { return with(`"regs":{"gdpr":1}`, `"regs":`+regs) }
	cases := []struct {
		name      string
		body      []byte
		vendor    int
		bid       bool // the capped campaign bids: FreqCap allowed
		userSlots bool // Personalize allowed
		why       privacy.Reason
	}{
		{"gdpr, no consent", video, testVendor, false, false, privacy.GDPRNoConsent},
		{"gdpr, consent", consent(tcAll), testVendor, true, true, privacy.Allowed},
		{"gdpr, consent, no vendor id configured", consent(tcAll), 0, false, false, privacy.GDPRNoVendorID},
		{"gdpr, wrong vendor", consent(tcWrongVendor), testVendor, false, false, privacy.GDPRDenied},
		{"gdpr, purposes 1-2 only", consent(tcFreqOnly), testVendor, true, false, privacy.GDPRDenied},
		{"gdpr, malformed consent", consent("gdprConsentString"), testVendor, false, false, privacy.GDPRMalformed},
		{"gdpr, consent, us_privacy opt-out", with(`"regs":{"gdpr":1}`, `"regs":{"gdpr":1,"us_privacy":"1YYN"}`), testVendor, false, false, privacy.USPrivacyOptOut},
		{"no gdpr, us_privacy no opt-out", noGDPR(`{"gdpr":0,"us_privacy":"1YNN"}`), testVendor, true, true, privacy.Allowed},
		{"no gdpr, malformed us_privacy", noGDPR(`{"gdpr":0,"us_privacy":"uspConsentString"}`), testVendor, false, false, privacy.USPrivacyMalformed},
		{"gpp usnat sale opt-out", noGDPR(`{"gdpr":0,"gpp":"` + gppSaleOut + `","gpp_sid":[7]}`), testVendor, false, false, privacy.GPPOptOut},
		{"gpp usnat clean", noGDPR(`{"gdpr":0,"gpp":"` + gppClean + `","gpp_sid":[7]}`), testVendor, true, true, privacy.Allowed},
		{"gpp malformed", noGDPR(`{"gdpr":0,"gpp":"gppString","gpp_sid":[7]}`), testVendor, false, false, privacy.GPPMalformed},
		{"coppa", noGDPR(`{"coppa":1}`), testVendor, false, false, privacy.COPPA},
		// regs.gdpr unknown, but the device is in Germany: GDPR applies.
		{"gdpr unset, device in the EEA, no consent", noGDPR(`{}`), testVendor, false, false, privacy.GDPRNoConsent},
		{"gdpr unset, device in the EEA, consent", bytes.Replace(consent(tcAll), []byte(`"regs":{"gdpr":1}`), []byte(`"regs":{}`), 1), testVendor, true, true, privacy.Allowed},
	}
	for _, c := range cases {
		ts := newTestServer(t, func(cfg *Config) { cfg.Privacy.VendorID = c.vendor })
		rs := &recordingScorer{fixedScorer: fixedScorer{p: 0.02}}
		ts.SetScorer(rs)
		r := ts.bidInTime(c.body)
		want := "frequency_cap" // no user key: the capped campaign cannot count this user
		if c.why == privacy.COPPA {
			want = "no_campaign" // not allowed under COPPA at all
		}
		if c.bid && r.StatusCode() != 200 || !c.bid && string(r.Header.Peek("x-nobid-reason")) != want {
			t.Errorf("%s: status %d %q, want bid %v", c.name, r.StatusCode(), r.Header.Peek("x-nobid-reason"), c.bid)
		}
		if got := ts.privStat.decisions[c.why].load(); got != 1 {
			t.Errorf("%s: decisions{%s} = %d, want 1", c.name, c.why, got)
		}
		if c.bid {
			row := rs.rows[:features.Width]
			filled := row[features.SlotHasUserID] == 1 && row[features.SlotUser] != 0
			empty := row[features.SlotHasUserID] == 0 && row[features.SlotUser] == 0
			if c.userSlots && !filled || !c.userSlots && !empty {
				t.Errorf("%s: user slots has_user_id %v user %v, want filled %v", c.name,
					row[features.SlotHasUserID], row[features.SlotUser], c.userSlots)
			}
		}
	}
}

// TestSegmentsNeedPersonalization: a segment-targeted campaign matches only
// when the request allows personalization.
func TestSegmentsNeedPersonalization(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seg := bytes.Replace(src, []byte("  countries: [USA, GBR]"), []byte("  countries: [USA, GBR]\n  segments: [seg-7]"), 1)
	if bytes.Equal(seg, src) {
		t.Fatal("acme.yaml changed: cannot add the segment targeting")
	}
	if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := campaigns.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, withVendor)
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
	site := readReq(t, "site-banner.json")
	user := func(u, regs string) []byte {
		b := bytes.Replace(site, []byte(`"user":{"id":"u-1"}`), []byte(`"user":`+u), 1)
		return bytes.Replace(b, []byte(`}`+"\n"), []byte(`,"regs":`+regs+"}\n"), 1)
	}
	withSeg := `{"id":"u-1","data":[{"segment":[{"id":"seg-7"}]}]`
	cases := []struct {
		name string
		body []byte
		bid  bool
	}{
		{"no segment", user(`{"id":"u-1"}`, `{}`), false},
		{"segment, no regs", user(withSeg+`}`, `{}`), true},
		{"segment, gdpr with consent", user(withSeg+`,"consent":"`+tcAll+`"}`, `{"gdpr":1}`), true},
		{"segment, gdpr, purposes 1-2 only", user(withSeg+`,"consent":"`+tcFreqOnly+`"}`, `{"gdpr":1}`), false},
		{"segment, us_privacy opt-out", user(withSeg+`}`, `{"us_privacy":"1YYN"}`), false},
	}
	for _, c := range cases {
		r := ts.bidInTime(c.body)
		if (r.StatusCode() == 200) != c.bid {
			t.Errorf("%s: status %d %q, want bid %v\n%s", c.name, r.StatusCode(), r.Header.Peek("x-nobid-reason"), c.bid, c.body)
		}
	}
}

// TestSharedSamplesPrivacy runs the real requests of ../shared/ortb-samples
// that carry a privacy signal through the handler: none may be refused
// because of it (a malformed string is no consent, never a 400), so each
// gets the status class it gets with its signals removed. It logs what the
// samples carry and what was decided (vendor testVendor).
func TestSharedSamplesPrivacy(t *testing.T) {
	files, _ := filepath.Glob("../../shared/ortb-samples/*.json")
	if len(files) == 0 {
		t.Skip("no ../shared/ortb-samples beside the checkout")
	}
	ts := newTestServer(t, withVendor)
	var p ortb.Parser
	var req ortb.Request
	carry := map[string]int{}
	decided := map[string]int{}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if p.Parse(body, &req) != nil {
			continue // a 400 for other reasons (bidder_test.TestSharedSamples)
		}
		r := &req.Regs
		signals := []struct {
			name string
			on   bool
		}{
			{"regs.coppa=1", r.COPPA == ortb.True},
			{"regs.gdpr=1", r.GDPR == ortb.True},
			{"user.consent (TCF)", len(req.User.Consent) > 0},
			{"regs.us_privacy", len(r.USPrivacy) > 0},
			{"regs.gpp", len(r.GPP) > 0},
			{"regs.gpp_sid", len(r.GPPSID) > 0},
		}
		any := false
		for _, s := range signals {
			if s.on {
				carry[s.name]++
				any = true
			}
		}
		d := ts.privacy.Decide(&req)
		decided[useLabel(d.Uses)+" / "+d.Why.String()]++
		if !any {
			continue
		}
		carry["any of these"]++
		got, bare := ts.bidInTime(body).StatusCode(), ts.bidInTime(withoutSignals(t, body)).StatusCode()
		if (got == 400) != (bare == 400) || got >= 500 {
			t.Errorf("%s: status %d, %d without its privacy signals", filepath.Base(f), got, bare)
		}
	}
	t.Logf("%d samples; carrying: %v", len(files), carry)
	t.Logf("decisions (uses / reason): %v", decided)
}

func useLabel(u privacy.Use) string {
	switch u {
	case privacy.All:
		return "all"
	case privacy.FreqCap:
		return "freqcap"
	case privacy.Personalize:
		return "personalize"
	}
	return "none"
}

// withoutSignals removes regs and the consent strings from a request.
func withoutSignals(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "regs")
	if u, ok := m["user"].(map[string]any); ok {
		delete(u, "consent")
		if ext, ok := u["ext"].(map[string]any); ok {
			delete(ext, "consent")
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The ad markup (read by the page, header bidding's script, the app's SDK)
// carries notice tokens whose payload is signed, not secret: it must not
// carry the user's frequency-cap key, a hash of user.id (else buyeruid or
// the device's advertising id) that is the same on every site. Its bytes
// appear in no token of the bid, and the impression pixel still counts
// against that user's frequency cap. Before, every token carried it in clear.
func TestMarkupHidesUserKey(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	capped := strings.Replace(string(src), "currency: USD\n", "currency: USD\nfrequency_cap: {count: 3, window: 1h}\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "acme.yaml"), []byte(capped), 0o644); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, func(c *Config) { c.CampaignsDir = dir })
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	var req ortb.Request
	var p ortb.Parser
	if err := p.Parse(body, &req); err != nil {
		t.Fatal(err)
	}
	key := req.UserKey()
	b := bidWith(t, app, string(body))
	user := binary.BigEndian.AppendUint64(nil, key)
	for kind, tok := range tokensOf(t, b) {
		sep := strings.IndexByte(tok, '.')
		payload, err := base64.RawURLEncoding.DecodeString(tok[:max(sep, 0)])
		if err != nil || sep < 0 {
			t.Fatalf("%v token %q: %v", noticeKind(kind), tok, err)
		}
		if bytes.Contains(payload, user) {
			t.Errorf("the %v token carries the user key %x in clear", noticeKind(kind), user)
		}
	}
	h := app.budget.Handle(b.CID)
	// The bid counts until its pixel (notices.freq_pending_ttl, 30 s);
	// past that only impressions do.
	later := time.Now().Add(31 * time.Second)
	if left := app.budget.FreqLeft(h, key, time.Now()); left != 2 {
		t.Fatalf("before the pixel: %d impressions left, want 2 (the bid pending)", left)
	}
	if left := app.budget.FreqLeft(h, key, later); left != 3 {
		t.Fatalf("before the pixel, past the pending TTL: %d impressions left, want 3", left)
	}
	base := "http://" + app.Addr()
	if code, _ := get(t, base+"/notice/imp"+between(b.AdM, `<img src="`+base+"/notice/imp", `"`)); code != 200 {
		t.Fatalf("pixel: %d", code)
	}
	if left := app.budget.FreqLeft(h, key, later); left != 2 {
		t.Fatalf("after the pixel: %d impressions left, want 2", left)
	}
	if left := app.budget.FreqLeft(h, key, time.Now()); left != 2 {
		t.Fatalf("after the pixel: %d impressions left now, want 2 (no longer pending, counted)", left)
	}
}

// user.geo is the user's home location, a profile field: it stands in for
// an absent device.geo only where user-level data is allowed (an outside
// privacy audit: GDPR, no consent, user.geo only, and a geo-targeted
// campaign bid). acme-banner targets USA and GBR.
func TestUserGeoNeedsPersonalize(t *testing.T) {
	ts := newTestServer(t, withVendor)
	body := func(regs, consent string) []byte {
		return []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":0.1}],` +
			`"site":{"id":"s1","domain":"site-3.example.com","publisher":{"id":"pub-3"}},"device":{"devicetype":2,"os":"Windows"},` +
			`"user":{"id":"u-1","geo":{"country":"USA"}` + consent + `},"regs":` + regs + `}`)
	}
	bidsAcme := func(b []byte) bool {
		r := ts.bidInTime(b)
		if r.StatusCode() != 200 {
			return false
		}
		for _, sb := range decodeResponse(t, r).SeatBid {
			for _, bid := range sb.Bid {
				if bid.CID == "acme-banner" {
					return true
				}
			}
		}
		return false
	}
	if !bidsAcme(body(`{"gdpr":0}`, "")) {
		t.Fatal("outside GDPR: acme does not bid on user.geo's country")
	}
	if !bidsAcme(body(`{"gdpr":1}`, `,"consent":"`+tcAll+`"`)) {
		t.Fatal("GDPR with consent: acme does not bid on user.geo's country")
	}
	if bidsAcme(body(`{"gdpr":1}`, "")) {
		t.Fatal("GDPR without consent: acme bid on user.geo's country")
	}
	if bidsAcme(body(`{"gdpr":0,"us_privacy":"1YYN"}`, "")) {
		t.Fatal("opted out of sale: acme bid on user.geo's country")
	}
}

// privacy.require_purpose2: where GDPR applies, no bid at all without a TCF
// purpose 2 basis for vendor_id (an outside privacy audit: the bidder bid
// contextually on gdpr 1 without any string); with consent, or outside
// GDPR, it bids as without the option, and explain says why.
func TestRequirePurpose2NoBid(t *testing.T) {
	video := readReq(t, "app-video.json") // regs.gdpr 1, no string
	consent := bytes.Replace(video, []byte(`"user":{"id":"u-2"}`), []byte(`"user":{"id":"u-2","consent":"`+tcAll+`"}`), 1)
	outside := bytes.Replace(video, []byte(`"regs":{"gdpr":1}`), []byte(`"regs":{"gdpr":0}`), 1)
	for _, strict := range []bool{false, true} {
		ts := newTestServer(t, func(c *Config) { c.Privacy.VendorID, c.Privacy.RequirePurpose2 = testVendor, strict })
		r := ts.bidInTime(video)
		if why := string(r.Header.Peek("x-nobid-reason")); strict && why != "privacy" || !strict && why == "privacy" {
			t.Errorf("require_purpose2 %v, gdpr without a string: %d %q", strict, r.StatusCode(), why)
		}
		if got := ts.m.nobids[reasonPrivacy].load(); strict != (got == 1) {
			t.Errorf("require_purpose2 %v: nobids{privacy} %d", strict, got)
		}
		for name, body := range map[string][]byte{"consent": consent, "outside GDPR": outside} {
			if r := ts.bidInTime(body); r.StatusCode() != 200 {
				t.Errorf("require_purpose2 %v, %s: %d %q, want a bid", strict, name, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
			}
		}
		var p ortb.Parser
		var req ortb.Request
		if err := p.Parse(video, &req); err != nil {
			t.Fatal(err)
		}
		a, _ := ts.explain(&req, explainOptions{now: time.Now()})
		if (a.NoBidReason == "privacy") != strict {
			t.Errorf("require_purpose2 %v: explain says %q", strict, a.NoBidReason)
		}
	}
}

// TCF v2.3 through the server: with require_purpose2, a string written after
// 2026-02-28 bids only when its Disclosed Vendors segment lists vendor_id,
// or, with privacy.allow_missing_disclosed_vendors, when it has none.
func TestDisclosedVendorsConfig(t *testing.T) {
	video := readReq(t, "app-video.json") // regs.gdpr 1, no string
	with := func(tc string) []byte {
		return bytes.Replace(video, []byte(`"user":{"id":"u-2"}`), []byte(`"user":{"id":"u-2","consent":"`+tc+`"}`), 1)
	}
	for _, allow := range []bool{false, true} {
		ts := newTestServer(t, func(c *Config) {
			c.Privacy.VendorID, c.Privacy.RequirePurpose2, c.Privacy.AllowMissingDisclosedVendors = testVendor, true, allow
		})
		for tc, bids := range map[string]bool{
			tcAll23Disclosed: true, tcAll23Undisclosed: false, tcAll23Missing: allow, tcAll: true,
		} {
			r := ts.bidInTime(with(tc))
			if got := r.StatusCode() == 200; got != bids {
				t.Errorf("allow_missing_disclosed_vendors %v, %s: %d %q, want a bid %v",
					allow, tc, r.StatusCode(), r.Header.Peek("x-nobid-reason"), bids)
			}
		}
	}
}
