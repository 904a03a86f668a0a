package campaigns

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// Every targeting dimension has a rule name.
func TestExplainNamesEveryDimension(t *testing.T) {
	for d := range numDims {
		if dimRule[d] == "" {
			t.Errorf("dimension %d has no rule name in dimRule", d)
		}
	}
}

// checkAgreement asserts Explain agrees with Match on one imp: a campaign is
// eligible (no failing rule) exactly when Match returns it, with the same
// candidates, and every other campaign is excluded by a named rule.
func checkAgreement(t *testing.T, where string, s *Snapshot, req *ortb.Request, imp *ortb.Imp, sc *Scratch) (eligible int) {
	t.Helper()
	now := monday15
	got := s.Match(nil, req, imp, now, sc)
	var fromExplain []Candidate
	for _, v := range s.Explain(req, imp, now, nil, nil) {
		switch {
		case v.Rule == RuleOther:
			t.Errorf("%s: %s excluded by a check Explain does not name", where, v.Campaign.ID)
		case v.Rule == "" && len(v.Candidates) == 0:
			t.Errorf("%s: %s eligible without candidates", where, v.Campaign.ID)
		case v.Rule == "" && !v.Examined:
			t.Errorf("%s: %s eligible but not examined by Match", where, v.Campaign.ID)
		case v.Rule != "" && len(v.Candidates) > 0:
			t.Errorf("%s: %s excluded by %s with candidates", where, v.Campaign.ID, v.Rule)
		}
		if v.Rule == "" {
			eligible++
			// The named checks alone must also find it eligible.
			if r, d := s.why(&s.idx.camps[v.Campaign.Index], req, imp, sc, reverseDicts(&s.idx)); r != "" {
				t.Errorf("%s: %s matched, but why says %s (%s)", where, v.Campaign.ID, r, d)
			}
		}
		fromExplain = append(fromExplain, v.Candidates...)
	}
	if !slices.Equal(candKeys(got), candKeys(fromExplain)) {
		t.Errorf("%s: Match %v, Explain %v", where, candKeys(got), candKeys(fromExplain))
	}
	return eligible
}

// Explain agrees with Match over the request fixtures and the shared
// exchange samples (example campaigns) and over generated campaigns and
// traffic.
func TestExplainAgreesWithMatch(t *testing.T) {
	s, err := LoadDir("../configs/campaigns", WithSeat("openbidder"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../ortb/testdata/*.json")
	shared, _ := filepath.Glob("../../shared/ortb-samples/*.json")
	files = append(files, shared...)
	var p ortb.Parser
	var req ortb.Request
	var sc Scratch
	imps, eligible := 0, 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if p.Parse(body, &req) != nil {
			continue
		}
		for i := range req.Imps {
			imps++
			eligible += checkAgreement(t, filepath.Base(f), s, &req, &req.Imps[i], &sc)
		}
	}
	gen := mustCompile(t, Generate(1000, 5), WithSeat("seat-1"))
	r := rand.New(rand.NewPCG(5, 5))
	for i := range 300 {
		req, imp := randomRequest(r)
		if i%50 == 0 {
			req.WSeat = bss("other-seat") // every campaign: seat
		}
		imps++
		eligible += checkAgreement(t, "generated", gen, req, imp, &sc)
	}
	if eligible == 0 {
		t.Fatal("nothing eligible anywhere: the test checks nothing")
	}
	t.Logf("%d imps (%d files), %d eligible campaign verdicts", imps, len(files), eligible)
}

// Each rule is named for a campaign that fails it (and only it).
func TestExplainRules(t *testing.T) {
	tests := []struct {
		rule, detail string
		edit         func(*Config)
		req          func(*ortb.Request, *ortb.Imp)
	}{
		{"", "", func(c *Config) {}, nil},
		{"country", "GBR", func(c *Config) { c.Targeting.Countries = []string{"GBR"} }, nil},
		{"region", "ny", func(c *Config) { c.Targeting.Regions = []string{"NY"} }, nil},
		{"os", "ios", func(c *Config) { c.Targeting.OS = []string{"iOS"} }, nil},
		{"device_type", "4", func(c *Config) { c.Targeting.DeviceTypes = []int64{4} }, nil},
		{"publisher", "pub-9", func(c *Config) { c.Targeting.Publishers = []string{"pub-9"} }, nil},
		{"segments", "seg-9", func(c *Config) { c.Targeting.Segments = []string{"seg-9"} }, nil},
		{"category", "IAB3", func(c *Config) { c.Targeting.Categories.Allow = []string{"IAB3"} }, nil},
		{"inventory", "app", func(c *Config) { c.Targeting.Inventory = []string{"app"} }, nil},
		{"site_block", "site-1.example.com", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} }, nil},
		{"category_block", "IAB1", func(c *Config) { c.Targeting.Categories.Block = []string{"IAB1"} }, nil},
		{"format", "b:300x250", func(c *Config) {}, func(r *ortb.Request, i *ortb.Imp) { i.Banner.W, i.Banner.H = 728, 90 }},
		{"deal", "deals only", func(c *Config) {
			f := false
			c.Targeting.Deals, c.Targeting.OpenAuction = []string{"deal-1"}, &f
		}, nil},
		{"deal", "private auction", func(c *Config) {}, func(r *ortb.Request, i *ortb.Imp) { i.PrivateAuction = true }},
		{"dayparting", "Mon 15:00", func(c *Config) { c.Targeting.Dayparting = &DaypartConf{Hours: []int{9}} }, nil},
		{"status", "paused", func(c *Config) { c.Status = "paused" }, nil},
		{"flight", "starts", func(c *Config) { c.Flight.Start = "2027-01-01" }, nil},
		{"coppa", "", func(c *Config) {}, func(r *ortb.Request, i *ortb.Imp) { r.Regs.COPPA = ortb.True }},
		{"creative", "x-c: bcat", func(c *Config) {}, func(r *ortb.Request, i *ortb.Imp) { r.BCat = bss("IAB3") }},
		{"creative", "x-c: battr", func(c *Config) { c.Creatives[0].Attr = []int64{3} },
			func(r *ortb.Request, i *ortb.Imp) { i.Banner.BAttr = []int64{3} }},
		{"creative", "x-c: battr", func(c *Config) {
			c.Creatives[0] = CreativeConfig{ID: "x-c", Format: "audio", VAST: `<VAST>{{imp_url}}</VAST>`,
				LandingURL: "https://x.example/", Attr: []int64{3}}
		}, func(r *ortb.Request, i *ortb.Imp) {
			i.HasBanner, i.HasAudio, i.Audio.BAttr = false, true, []int64{3}
		}},
		{"creative", "x-c: btype", func(c *Config) { c.Creatives[0].BType = []int64{3} },
			func(r *ortb.Request, i *ortb.Imp) { i.Banner.BType = []int64{3, 4} }},
		{"creative", "x-c: language en not in wlang/wlangb", func(c *Config) { c.Creatives[0].Language = "en" },
			func(r *ortb.Request, i *ortb.Imp) { r.WLang = bss("de") }},
		{"seat", "", func(c *Config) {}, func(r *ortb.Request, i *ortb.Imp) { r.BSeat = bss("seat-1") }},
		// The first failing rule, in Match's order: country before os.
		{"country", "GBR", func(c *Config) { c.Targeting.Countries, c.Targeting.OS = []string{"GBR"}, []string{"iOS"} }, nil},
	}
	for _, tc := range tests {
		cfg := baseConfig("x")
		tc.edit(&cfg)
		s := mustCompile(t, []Config{cfg}, WithSeat("seat-1"))
		req, imp := siteRequest(), bannerImp(300, 250)
		if tc.req != nil {
			tc.req(req, imp)
		}
		v := s.Explain(req, imp, monday15, nil, nil)[0]
		if v.Rule != tc.rule || !strings.Contains(v.Detail, tc.detail) {
			t.Errorf("want %q (%q): got %q (%q)", tc.rule, tc.detail, v.Rule, v.Detail)
		}
		var sc Scratch
		if eligible := len(s.Match(nil, req, imp, monday15, &sc)) > 0; eligible != (v.Rule == "") {
			t.Errorf("%s: Match eligible %v", tc.rule, eligible)
		}
	}
}
