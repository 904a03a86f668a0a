package campaigns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadDirExamples(t *testing.T) {
	s, err := LoadDir("../configs/campaigns")
	if err != nil {
		t.Fatalf("example campaigns: %v", err)
	}
	if s.Len() < 12 {
		t.Fatalf("%d example campaigns, want at least 12", s.Len())
	}
	for i, c := range s.Campaigns {
		if c.Index != i {
			t.Errorf("%s: Index %d at position %d", c.ID, c.Index, i)
		}
		if s.Campaign(c.ID) != c {
			t.Errorf("Campaign(%q) does not return it", c.ID)
		}
	}
	for i, cr := range s.Creatives {
		if cr.Index != i || cr.Campaign == nil {
			t.Errorf("creative %s: Index %d at %d, campaign %v", cr.ID, cr.Index, i, cr.Campaign)
		}
	}
	c := s.Campaign("bauhaus-eu-eur")
	if c == nil {
		t.Fatal("bauhaus-eu-eur missing")
	}
	if c.Currency != "EUR" || c.TimeZone.String() != "Europe/Berlin" || c.MaxBidMicros != 4_500_000 ||
		c.Strategy.CPMMicros != 3_200_000 || c.Budget != (Budget{DailyMicros: 180_000_000, TotalMicros: 30_000_000_000}) {
		t.Errorf("bauhaus: %+v", c)
	}
	// An end date includes the whole day in the campaign's zone.
	if want := time.Date(2027, 3, 1, 0, 0, 0, 0, c.TimeZone); !c.End.Equal(want) {
		t.Errorf("bauhaus end %v, want %v", c.End, want)
	}
	if c := s.Campaign("streamly-video"); c.FreqCap != (FreqCap{Count: 3, Window: 24 * time.Hour}) {
		t.Errorf("streamly freq cap %+v", c.FreqCap)
	}
	if c := s.Campaign("shopnow-mobile-cpa"); c.Strategy.Kind != TargetCPA || c.Strategy.CPAMicros != 25_000_000 ||
		c.Strategy.ConversionRate != 0.03 || c.Currency != "USD" || c.TimeZone != time.UTC {
		t.Errorf("shopnow strategy %+v currency %s zone %v", c.Strategy, c.Currency, c.TimeZone)
	}
	if c := s.Campaign("wintersale-paused"); c.Status != StatusPaused {
		t.Errorf("wintersale status %v", c.Status)
	}
}

func TestLoadDirBadReportsEveryProblem(t *testing.T) {
	_, err := LoadDir("testdata/bad")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	const a, d1, d2 = "testdata/bad/acme.yaml: ", "testdata/bad/dup-one.yaml: ", "testdata/bad/dup-two.yaml: "
	const m = "testdata/bad/media26.yaml: "
	want := []string{
		"testdata/bad/empty.yaml: empty file",
		"testdata/bad/typo.yaml: max_bid: unknown field (line 5)",
		"testdata/bad/typo.yaml: budget.totl: unknown field (line 6)",
		a + `status: "running" is not active or paused`,
		a + `currency: "XYZ" is not a known ISO 4217 currency code`,
		a + `time_zone: "Mars/Olympus_Mons" is not an IANA time zone`,
		a + `flight.end: 2026-04-01 is not after flight.start 2026-05-01`,
		a + `bid_strategy.cpm: "1.1234567": more than 6 decimals`,
		a + `bid_strategy.cpc: not used by fixed_cpm`,
		a + `max_bid_cpm: must be greater than 0`,
		a + `budget.daily: 500.00 exceeds budget.total 100.00`,
		a + `pacing.mode: "sometimes" is not even, forecast or asap`,
		a + `frequency_cap.window: "1 day" is not a Go duration`,
		a + `targeting.countries[0]: "US" is not an ISO 3166-1 alpha-3 code`,
		a + `targeting.device_types[0]: 9 is not an OpenRTB device type`,
		a + `targeting.open_auction: false with no deals`,
		a + `targeting.dayparting.days[0]: "funday" is not a day`,
		a + `targeting.dayparting.hours[0]: 24 is not an hour`,
		a + `creatives[1].id: "acme-1" already used in testdata/bad/acme.yaml creatives[0]`,
		a + `creatives[0].sizes[1]: "300x" is not WxH`,
		a + `creatives[1].markup: placeholder {{price}} is not allowed`,
		a + `creatives[2].vast: must contain {{imp_url}}`,
		a + `creatives[2].vast: must contain {{click_url}}`,
		a + `creatives[2].landing_url: "ftp://acme.example/" is not an absolute http(s) URL`,
		a + `creatives[2].cat[0]: "IAB99" is not an IAB category`,
		a + `creatives[3].native.title: required`,
		a + `creatives[3].native.image_url: "http://img.acme.example/a.jpg" is not https but the creative is secure`,
		d1 + `budget.daily: "-5": negative amount`,
		d2 + `id: "dup" already defined in testdata/bad/dup-one.yaml`,
		d2 + `bid_strategy.conversion_rate: 1.5 must be in (0, 1] for target_cpa`,
		d2 + `creatives[0].markup: must contain {{imp_url}}`,
		m + `targeting.languages[0]: "english" is not an ISO 639 language code`,
		m + `targeting.connection_types[0]: 8 is not an OpenRTB connection type`,
		m + `targeting.inventory[1]: "ctv" is not site, app or dooh`,
		m + `targeting.venue_types: set but inventory excludes dooh`,
		m + `targeting.categories.allow[0]: "Automotive > Cars" is not a category id of taxonomy 7`,
		m + `creatives[0].duration: 20 but the VAST <Duration> says 15 seconds`,
		m + `creatives[0].plcmt[0]: 7 is not a video placement`,
		m + `creatives[0].slot_in_pod[0]: 3 is not a slot in a pod`,
		m + `creatives[1].skippable: not used by native creatives`,
		m + `creatives[1].native.icon_w: icon size must not be negative`,
	}
	lines := strings.Split(err.Error(), "\n")
	if lines[0] != ErrInvalid.Error() {
		t.Errorf("first line %q", lines[0])
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, w) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("missing problem %q", w)
		}
	}
	if got := len(Problems(err)); got != len(want) || len(lines) != len(want)+1 {
		t.Errorf("%d problems, %d lines; want %d:\n%v", got, len(lines), len(want), err)
	}
}

func TestCompileProblems(t *testing.T) {
	check := func(name string, mutate func(*Config), want string) {
		t.Helper()
		c := baseConfig("x")
		mutate(&c)
		_, err := Compile([]Config{c})
		if want == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", name, err)
			}
			return
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "campaign[0]: "+want) {
			t.Errorf("%s: err = %v\nwant it to contain %q", name, err, want)
		}
	}
	check("valid", func(*Config) {}, "")
	check("no id", func(c *Config) { c.ID = "" }, `id: "" must be`)
	check("bad id", func(c *Config) { c.ID = "a b" }, `id: "a b" must be`)
	check("no adomain", func(c *Config) { c.ADomain = nil }, "adomain: at least one")
	check("bad adomain", func(c *Config) { c.ADomain = []string{"http://x.example"} }, `adomain[0]: "http://x.example" is not a domain`)
	label := strings.Repeat("a", 64)
	check("adomain label over 63", func(c *Config) { c.ADomain = []string{label + ".example"} }, `adomain[0]: "`+label+`.example" is not a domain`)
	check("adomain label over 63 once in punycode", func(c *Config) { c.ADomain = []string{"ü" + label[:58] + ".example"} }, `adomain[0]: "ü`)
	check("site block name over 253", func(c *Config) {
		c.Targeting.SiteDomains.Block = []string{strings.Repeat(label[:63]+".", 4) + "example"}
	}, "targeting.site_domains.block[0]: ")
	check("dsa", func(c *Config) { c.DSA = &DSAConfig{Behalf: "Acme GmbH", Paid: "Acme Holding AG"} }, "")
	check("dsa without paid", func(c *Config) { c.DSA = &DSAConfig{Behalf: "Acme GmbH"} }, "dsa.paid: required")
	check("dsa behalf too long", func(c *Config) { c.DSA = &DSAConfig{Behalf: strings.Repeat("ä", 101), Paid: "x"} }, "dsa.behalf: 101 characters, more than the 100")
	check("dsa behalf not text", func(c *Config) { c.DSA = &DSAConfig{Behalf: "a\x00b", Paid: "x"} }, "dsa.behalf:")
	check("no kind", func(c *Config) { c.BidStrategy.Kind = "" }, "bid_strategy.kind: required")
	check("cpm over max", func(c *Config) { c.BidStrategy.CPM = "3.01" }, "bid_strategy.cpm: 3.01 exceeds max_bid_cpm 3")
	check("cpc without cpc", func(c *Config) { c.BidStrategy = StrategyConfig{Kind: "target_cpc"} }, "bid_strategy.cpc: required")
	check("negative max", func(c *Config) { c.MaxBidCPM = "-2" }, `max_bid_cpm: "-2": negative amount`)
	check("missing max", func(c *Config) { c.MaxBidCPM = "" }, "max_bid_cpm: required")
	check("zero total", func(c *Config) { c.Budget.Total = "0" }, "budget.total: must be greater than 0")
	// A total too large is that problem only (it was also "must be greater
	// than 0": an outside audit).
	c := baseConfig("x")
	c.Budget.Total = "9223372036854.775807"
	if _, err := Compile([]Config{c}); err == nil || !strings.Contains(err.Error(), "amount too large") || strings.Contains(err.Error(), "greater than 0") {
		t.Errorf("total too large: %v", err)
	}
	check("daily over total", func(c *Config) { c.Budget.Total = "99.999999" }, "budget.daily: 100 exceeds budget.total")
	check("freq without window", func(c *Config) { c.FrequencyCap.Count = 2 }, "frequency_cap.window: required")
	check("short window", func(c *Config) { c.FrequencyCap = FreqCapConfig{Count: 1, Window: "30s"} }, "frequency_cap.window: 30s is shorter")
	check("bad start", func(c *Config) { c.Flight.Start = "yesterday" }, `flight.start: "yesterday" is neither`)
	// Flight times are compared as int64 Unix nanoseconds: a start past 2262
	// wrapped negative and the campaign bid at once.
	check("start after 2262", func(c *Config) { c.Flight.Start = "2300-01-01" }, `flight.start: "2300-01-01" is outside the years 1678 to 2262`)
	check("start 9999", func(c *Config) { c.Flight.Start = "9999-12-31T00:00:00Z" }, `flight.start: "9999-12-31T00:00:00Z" is outside`)
	check("end 9999", func(c *Config) { c.Flight.End = "9999-12-31" }, `flight.end: "9999-12-31" is outside`)
	check("end on the last day", func(c *Config) { c.Flight.End = "2262-04-11" }, `flight.end: "2262-04-11" is outside`)
	check("start before 1678", func(c *Config) { c.Flight.Start = "1600-01-01" }, `flight.start: "1600-01-01" is outside`)
	check("end in 2262", func(c *Config) { c.Flight.End = "2262-04-10" }, "")
	check("no creatives", func(c *Config) { c.Creatives = nil }, "creatives: at least one")
	many := func(n int) func(*Config) {
		return func(c *Config) {
			cr := c.Creatives[0]
			c.Creatives = nil
			for i := range n {
				cr.ID = fmt.Sprintf("x-%d", i)
				c.Creatives = append(c.Creatives, cr)
			}
		}
	}
	webm := func(mimes ...string) func(*Config) {
		return func(c *Config) {
			c.Creatives[0] = CreativeConfig{ID: "v", Format: "video", MIMEs: mimes, LandingURL: "https://x.example/", Secure: true,
				VAST: VASTInlineMedia("v", "v", "https://m.example/v.webm", `type="Video/WebM" width="640" height="360"`, 15)}
		}
	}
	check("mimes of the VAST", webm("video/webm"), "")
	check("mimes not in the VAST", webm("video/webm", "video/mp4"), `creatives[0].mimes[1]: "video/mp4" is not the type of any <MediaFile> in the VAST (video/webm)`)
	check("mimes from the VAST", webm(), "")
	check("most creatives", many(MaxCreatives), "")
	check("too many creatives", many(MaxCreatives+1), "creatives: 1001 creatives, more than the 1000 a campaign may have")
	check("banner no size", func(c *Config) { c.Creatives[0].Sizes = nil }, "creatives[0].sizes: a banner needs")
	check("unknown placeholder", func(c *Config) { c.Creatives[0].Markup += "{{user_id}}" }, "creatives[0].markup: unknown placeholder {{user_id}}")
	check("unclosed placeholder", func(c *Config) { c.Creatives[0].Markup += "{{imp_url" }, "creatives[0].markup: unclosed placeholder")
	check("no click", func(c *Config) { c.Creatives[0].Markup = `<img src="{{imp_url}}">` }, "creatives[0].markup: must contain {{click_url}}")
	check("vast on banner", func(c *Config) { c.Creatives[0].VAST = "<VAST/>" }, "creatives[0].vast: not used by banner creatives")
	check("secure http", func(c *Config) { c.Creatives[0].Markup += `<img src="http://x.example/p.gif">` }, "creatives[0].markup: contains an http:// URL")
	check("secure HTTP in capitals", func(c *Config) { c.Creatives[0].Markup += `<img src="HTTP://x.example/p.gif">` }, "creatives[0].markup: contains an http:// URL")
	check("bad attr", func(c *Config) { c.Creatives[0].Attr = []int64{18} }, "creatives[0].attr[0]: 18 is not")
	check("bad language", func(c *Config) { c.Creatives[0].Language = "eng" }, "creatives[0].language: \"eng\" is not an ISO 639-1")
	check("region in language", func(c *Config) { c.Creatives[0].Language = "en-US" }, "creatives[0].language: \"en-US\" is not")
	check("bad btype", func(c *Config) { c.Creatives[0].BType = []int64{3, 5} }, "creatives[0].btype[1]: 5 is not an OpenRTB banner ad type")
	check("btype on video", func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "v", Format: "video", VAST: VASTInline("v", "v", "https://m.example/v.mp4", 15),
			LandingURL: "https://v.example/", BType: []int64{3}}
	}, "creatives[0].btype: only banner creatives")
	check("video no vast", func(c *Config) { c.Creatives[0].Format, c.Creatives[0].Markup = "video", "" }, "creatives[0].vast: required for video")
	check("audio sizes", func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "a", Format: "audio", Sizes: []string{"1x1"}, VAST: `<VAST>{{imp_url}}</VAST>`, LandingURL: "https://x.example/"}
	}, "creatives[0].sizes: not used by audio")
	check("native placeholder", func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "n", Format: "native", Native: &NativeConfig{Title: "{{click_url}}"}, LandingURL: "https://x.example/"}
	}, "creatives[0].native.title: placeholders are not allowed")
	check("site allow on app-only", func(c *Config) {
		c.Targeting.Inventory = []string{"app"}
		c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"}
	}, "targeting.site_domains.allow: set but inventory excludes site")
	check("bad category", func(c *Config) { c.Targeting.Categories.Block = []string{"IAB27"} }, `targeting.categories.block[0]: "IAB27"`)
	check("empty os", func(c *Config) { c.Targeting.OS = []string{" "} }, "targeting.os[0]: empty value")
	// Fields added with OpenRTB 2.6 support.
	yes := true
	video := func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "v", Format: "video", VAST: VASTInline("v", "v", "https://m.example/v.mp4", 15),
			LandingURL: "https://v.example/", Secure: true}
	}
	check("language", func(c *Config) { c.Targeting.Languages = []string{"english"} }, `targeting.languages[0]: "english" is not an ISO 639`)
	check("connection type", func(c *Config) { c.Targeting.ConnectionTypes = []int64{0} }, "targeting.connection_types[0]: 0 is not an OpenRTB connection type")
	check("empty carrier", func(c *Config) { c.Targeting.Carriers = []string{""} }, "targeting.carriers[0]: empty value")
	check("empty city", func(c *Config) { c.Targeting.Cities = []string{"Paris", " "} }, "targeting.cities[1]: empty value")
	check("inventory", func(c *Config) { c.Targeting.Inventory = []string{"tv"} }, `targeting.inventory[0]: "tv" is not site, app or dooh`)
	check("venues without dooh", func(c *Config) { c.Targeting.VenueTypes = []string{"transit"} }, "targeting.venue_types: set but inventory excludes dooh")
	check("taxonomy", func(c *Config) { c.Targeting.Categories.Taxonomy = 9 }, "targeting.categories.taxonomy: 9 is not an OpenRTB category taxonomy")
	check("category id", func(c *Config) { c.Targeting.Categories = CategoriesConfig{Taxonomy: 6, Allow: []string{"4 83"}} },
		`targeting.categories.allow[0]: "4 83" is not a category id of taxonomy 6`)
	check("IAB name in taxonomy 6", func(c *Config) { c.Targeting.Categories = CategoriesConfig{Taxonomy: 6, Block: []string{"IAB25"}} }, "")
	check("creative cattax", func(c *Config) { c.Creatives[0].CatTax = 8 }, "creatives[0].cattax: 8 is not an OpenRTB category taxonomy")
	check("creative cat in taxonomy 3", func(c *Config) { c.Creatives[0].CatTax, c.Creatives[0].Cat = 3, []string{"1005"} }, "")
	check("duration on banner", func(c *Config) { c.Creatives[0].Duration = 15 }, "creatives[0].duration: not used by banner creatives")
	check("skippable on audio", func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "a", Format: "audio", VAST: `<VAST>{{imp_url}}</VAST>`, LandingURL: "https://x.example/", Skippable: &yes}
	}, "creatives[0].skippable: not used by audio creatives")
	check("negative duration", func(c *Config) { video(c); c.Creatives[0].Duration = -1 }, "creatives[0].duration: -1 is not a duration")
	check("duration against VAST", func(c *Config) { video(c); c.Creatives[0].Duration = 30 }, "creatives[0].duration: 30 but the VAST <Duration> says 15 seconds")
	check("duration as VAST", func(c *Config) { video(c); c.Creatives[0].Duration = 15 }, "")
	check("protocol", func(c *Config) { video(c); c.Creatives[0].Protocols = []int64{3, 15} }, "creatives[0].protocols[1]: 15 is not an OpenRTB protocol")
	check("protocols without the VAST's", func(c *Config) { video(c); c.Creatives[0].Protocols = []int64{7, 8} },
		"creatives[0].protocols: [7 8] does not list the VAST's own protocol")
	check("protocols with the VAST's", func(c *Config) { video(c); c.Creatives[0].Protocols = []int64{2, 3} }, "")
	check("plcmt", func(c *Config) { video(c); c.Creatives[0].Plcmt = []int64{5} }, "creatives[0].plcmt[0]: 5 is not a video placement")
	check("slot in pod", func(c *Config) { video(c); c.Creatives[0].SlotInPod = []int64{2} }, "creatives[0].slot_in_pod[0]: 2 is not a slot in a pod")
	check("pod sequence", func(c *Config) { video(c); c.Creatives[0].PodSeq = []int64{0} }, "creatives[0].pod_sequence[0]: 0 is not a pod")
	check("icon size without icon", func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "n", Format: "native", Native: &NativeConfig{Title: "t", IconW: 80, IconH: 80}, LandingURL: "https://x.example/"}
	}, "creatives[0].native.icon_url: required with icon_w/icon_h")
}

// What a VAST template says about itself: duration (a fraction rounded up)
// and protocol (inline or wrapper of its version).
func TestVASTFacts(t *testing.T) {
	for _, c := range []struct {
		tpl           string
		secs, protocl int64
	}{
		{VASTInline("a", "a", "https://m.example/a.mp4", 15), 15, 3},
		{`<VAST version="4.1"><Ad><InLine><Duration>00:01:05.250</Duration></InLine></Ad></VAST>`, 66, 11},
		{`<VAST version='2.0'><Ad><Wrapper><Duration><![CDATA[ 01:00:00 ]]></Duration></Wrapper></Ad></VAST>`, 3600, 5},
		{`<VAST xmlns:xsi="x" version="4.2"><Ad><Wrapper></Wrapper></Ad></VAST>`, 0, 14},
		{`<VAST version="5.0"><Duration>00:00:30</Duration></VAST>`, 30, 0},
		{`<VAST><Duration>0:0:30</Duration></VAST>`, 0, 0},
	} {
		if s, p := vastFacts(c.tpl); s != c.secs || p != c.protocl {
			t.Errorf("%.60s: %d s, protocol %d; want %d s, protocol %d", c.tpl, s, p, c.secs, c.protocl)
		}
	}
}

func TestCompileDuplicateAcrossConfigs(t *testing.T) {
	a, b := baseConfig("same"), baseConfig("same")
	a.File, b.File = "a.yaml", "b.yaml"
	b.Creatives[0].ID = "other"
	_, err := Compile([]Config{a, b})
	if err == nil || !strings.Contains(err.Error(), `b.yaml: id: "same" already defined in a.yaml`) {
		t.Fatalf("err = %v", err)
	}
	c := baseConfig("c")
	c.Creatives[0].ID = a.Creatives[0].ID
	_, err = Compile([]Config{a, c})
	if err == nil || !strings.Contains(err.Error(), `campaign[1]: creatives[0].id: "same-c" already used in a.yaml creatives[0]`) {
		t.Fatalf("err = %v", err)
	}
}

// A value of the wrong type or an unknown field is reported like every other
// problem, FILE: FIELD.PATH: reason (docs/campaigns.md), and every one of the
// file's problems is listed, not only the first.
func TestLoadDirDecodeProblemsNameTheField(t *testing.T) {
	dir := t.TempDir()
	const file = "id: a\n" +
		"advertiser: [x]\n" +
		"adomain: a.example\n" +
		"bid_strategy: {kind: fixed_cpm, cpm: \"1.00\", convrate: 1}\n" +
		"max_bid_cpm: [4]\n" +
		"budget: {daily: {x: 1}}\n" +
		"frequency_cap: {count: abc, window: 1h}\n" +
		"creatives:\n" +
		"  - id: c1\n" +
		"    format: banner\n" +
		"    secure: maybe\n" +
		"    mrkup: x\n" +
		"targeting:\n" +
		"  dayparting: {hours: [3, xyzzy-long-value]}\n" +
		"  device_types:\n" +
		"    - phone\n"
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	want := []string{
		`advertiser: got a list, want a string (line 2)`,
		`adomain: got "a.example", want a list (line 3)`,
		`bid_strategy.convrate: unknown field (line 4)`,
		`max_bid_cpm: amount must be a number or a decimal string (line 5)`,
		`budget.daily: amount must be a number or a decimal string (line 6)`,
		`frequency_cap.count: got "abc", want an integer (line 7)`,
		`creatives[0].secure: got "maybe", want true or false (line 11)`,
		`creatives[0].mrkup: unknown field (line 12)`,
		`targeting.dayparting.hours[1]: got "xyzzy-l...", want an integer (line 14)`,
		`targeting.device_types[0]: got "phone", want an integer (line 16)`,
	}
	var got []string
	for _, p := range Problems(err) {
		if p.File != filepath.Join(dir, "a.yaml") {
			t.Errorf("problem %q in file %q", p.Error(), p.File)
		}
		got = append(got, p.Path+": "+p.Reason)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseConfigStrict(t *testing.T) {
	_, err := ParseConfig("x.yaml", []byte("id: a\nmax_bid_cpm: [1]\n"))
	if err == nil || !strings.Contains(err.Error(), "amount must be") {
		t.Errorf("list amount: %v", err)
	}
	_, err = ParseConfig("x.yaml", []byte("id: a\n---\nid: b\n"))
	if err == nil || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Errorf("two documents: %v", err)
	}
	c, err := ParseConfig("x.yaml", []byte("id: a\nmax_bid_cpm: 4.10\nbudget: {daily: 0.29}\n"))
	if err != nil || c.MaxBidCPM != "4.10" || c.Budget.Daily != "0.29" || c.File != "x.yaml" {
		t.Errorf("amounts kept as text: %+v, %v", c, err)
	}
}

// A list of many bad long values makes a problem per element: each quotes
// at most maxQuoted bytes of its value, and a file lists at most maxListed
// problems, then how many more. (80,000 aliases of a 200 KB string made 16
// GB of messages, before aliases were bounded too: TestParseConfigAliasExpansion.)
func TestLoadDirManyProblemsStaySmall(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, baseConfig("many"))
	name := filepath.Join(dir, "many.yaml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	const bad = 80
	long := strings.Repeat("Q", 5000)
	data = append(data, "targeting:\n  countries: ["+strings.Repeat(`"`+long+`", `, bad-1)+`"`+long+`"]`+"\n"...)
	writeAtomic(t, name, data)
	_, err = LoadDir(dir)
	ps := Problems(err)
	if len(ps) != maxListed+1 || ps[maxListed].Reason != fmt.Sprintf("%d more problems not listed", bad-maxListed) {
		t.Fatalf("%d problems, the last %v", len(ps), ps[len(ps)-1])
	}
	if !strings.Contains(ps[0].Reason, `"`+long[:maxQuoted]+`..." is not an ISO 3166-1`) {
		t.Errorf("first problem %q", ps[0].Reason[:min(len(ps[0].Reason), 200)])
	}
	if n := len(err.Error()); n > 20_000 {
		t.Errorf("the error is %d bytes", n)
	}
}

// Aliases may share a value, but a file written out with every alias
// replaced must stay within MaxFileBytes: each value is compiled once per
// place it appears (80,000 aliases of a 200 KB region made 16 GB), and
// nested aliases grow exponentially.
func TestParseConfigAliasExpansion(t *testing.T) {
	laughs := "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i < 9; i++ {
		laughs += fmt.Sprintf("a%d: &a%d [%s]\n", i, i, strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9)+fmt.Sprintf("*a%d", i-1))
	}
	long := strings.Repeat("Q", 100_000)
	for _, c := range []struct {
		name, doc string
		refused   bool
	}{
		{"shared markup", "id: a\ncreatives:\n  - {id: a1, markup: &m '<a href=\"{{click_url}}\"><img src=\"{{imp_url}}\"></a>'}\n  - {id: a2, markup: *m}\n", false},
		{"long region 9 times", "targeting:\n  regions: [&s \"" + long + "\"" + strings.Repeat(", *s", 9) + "]\n", false},
		{"long region 11 times", "targeting:\n  regions: [&s \"" + long + "\"" + strings.Repeat(", *s", 10) + "]\n", true},
		{"billion laughs", laughs, true},
	} {
		_, err := ParseConfig("x.yaml", []byte(c.doc))
		refused := err != nil && strings.Contains(err.Error(), "x.yaml: its aliases expand it past 1048576 bytes")
		if refused != c.refused {
			t.Errorf("%s: %v, want refused %v", c.name, err, c.refused)
		}
	}
}

// A number with a fraction where the schema wants an integer is refused
// with its field: yaml.v3 cut it down without a word (a frequency cap
// count of 2.9 was 2, a daypart hour of 16.99 was 16, a device type of 4.9
// was 4, and a count of 0.5 was "required with a window"). An integral
// float is the integer it names; amounts keep their decimals.
func TestLoadDirRefusesFractionsInIntegers(t *testing.T) {
	base, err := MarshalConfig(baseConfig("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		add, path, reason string
	}{
		{"frequency_cap: {count: 2.9, window: 1h}\n", "frequency_cap.count", `got "2.9", want an integer`},
		{"frequency_cap: {count: 0.5, window: 1h}\n", "frequency_cap.count", `got "0.5", want an integer`},
		{"targeting:\n  dayparting: {hours: [3, 16.99]}\n", "targeting.dayparting.hours[1]", `got "16.99", want an integer`},
		{"targeting:\n  device_types: [4.9]\n", "targeting.device_types[0]", `got "4.9", want an integer`},
		{"targeting:\n  device_types: [.inf]\n", "targeting.device_types[0]", `got ".inf", want an integer`},
		{"frequency_cap: {count: 2.0, window: 1h}\n", "", ""},
		{"targeting:\n  device_types: [4, 1e0]\n", "", ""},
		// Ways past the first version (the review of the change): a sign and
		// underscores before the digits, a merge key, an alias.
		{"frequency_cap: {count: +_2.9, window: 1h}\n", "frequency_cap.count", `got "+_2.9", want an integer`},
		{"frequency_cap: {<<: {count: 2.9}, window: 1h}\n", "frequency_cap.<<.count", `got "2.9", want an integer`},
		{"targeting: {segments: [&n 2.9]}\nfrequency_cap: {count: *n, window: 1h}\n", "targeting.segments[0]", ""},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.yaml"), append(slices.Clip(base), c.add...), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadDir(dir)
		if c.path == "" {
			if err != nil {
				t.Errorf("%q: %v", c.add, err)
			}
			continue
		}
		ps := Problems(err)
		if len(ps) != 1 || ps[0].Path != c.path || !strings.HasPrefix(ps[0].Reason, c.reason) {
			t.Errorf("%q: problems %v, want %s: %s", c.add, err, c.path, c.reason)
		}
	}
}

// A byte that is not UTF-8 is named by its line and column (the decoder
// said "invalid trailing UTF-8 octet", no line).
func TestLoadDirNamesTheLineOfABadByte(t *testing.T) {
	dir := t.TempDir()
	data := []byte("id: a\n# caf\xe9\nadvertiser: \"Ä\xff\"\n")
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir)
	ps := Problems(err)
	if len(ps) != 1 || ps[0].Reason != "line 2, column 6: byte 0xE9 is not UTF-8 (the file must be UTF-8 text)" {
		t.Errorf("problems %v", err)
	}
	if err := NotUTF8(data[:6]); err != nil {
		t.Errorf("valid text: %v", err)
	}
	if err := NotUTF8([]byte("a: \"Ä\xff\"")); err == nil || !strings.HasPrefix(err.Error(), "line 1, column 6: byte 0xFF") {
		t.Errorf("after a multi-byte letter: %v", err)
	}
}

// A null item in a list is refused as an empty string is: yaml.v3 dropped
// it, and a targeting list of one null was no restriction at all (an
// outside audit: countries: [null] bid on every country).
func TestLoadDirRefusesNullListItems(t *testing.T) {
	base, err := MarshalConfig(baseConfig("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		add, path string
	}{
		{"targeting:\n  countries: [null]\n", "targeting.countries[0]"},
		{"targeting:\n  countries: [USA, ~]\n", "targeting.countries[1]"},
		{"targeting:\n  exchanges: [NULL]\n", "targeting.exchanges[0]"},
		{"targeting:\n  publisher_ids:\n    -\n", "targeting.publisher_ids[0]"},
		{"targeting:\n  site_domains:\n    allow:\n      - a.example\n      -   # none\n", "targeting.site_domains.allow[1]"},
		{"targeting:\n  regions: [!!null '']\n", "targeting.regions[0]"},
		{"targeting:\n  os: [&n null]\n  cities: [*n]\n", "targeting.os[0]"},
		// Past the first version's regexp (a review): CR LF line ends, a
		// NEL line break, a non-specific tag.
		{"targeting:\r\n  countries:\r\n    -\r\n", "targeting.countries[0]"},
		{"targeting:\n  countries:\n    -\u0085    - USA\n", "targeting.countries[0]"},
		{"targeting:\n  countries:\n    - !\n", "targeting.countries[0]"},
		{"targeting:\n  countries: [! ]\n", "targeting.countries[0]"},
		{"targeting:\n  countries: [\"null\"]\n", ""}, // a string, refused by its own check
		{"targeting:\n  segments: [a-1, b~2, c&d]\n", ""},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.yaml"), append(slices.Clip(base), c.add...), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadDir(dir)
		ps := Problems(err)
		if c.path == "" {
			for _, p := range ps {
				if strings.Contains(p.Reason, "empty value") {
					t.Errorf("%q: %v", c.add, err)
				}
			}
			continue
		}
		if len(ps) == 0 || ps[0].Path != c.path || !strings.HasPrefix(ps[0].Reason, "empty value (line ") {
			t.Errorf("%q: problems %v, want %s: empty value", c.add, err, c.path)
		}
	}
}

// A video or audio creative's mimes default to its VAST's <MediaFile>
// types (video/mp4 or audio/mpeg only when the VAST names none, as a
// wrapper does): a webm-only creative no longer bids on mp4-only imps.
func TestCreativeMIMEsFollowTheVAST(t *testing.T) {
	for _, c := range []struct {
		vast string
		want []string
	}{
		{VASTInlineMedia("v", "v", "https://m.example/v.webm", `type="video/webm"`, 15), []string{"video/webm"}},
		{VASTInline("v", "v", "https://m.example/v.mp4", 15), []string{"video/mp4"}},
		{`<VAST version="3.0"><Ad><Wrapper><VASTAdTagURI>https://x.example/vast</VASTAdTagURI><Impression>{{imp_url}}</Impression>` +
			`<Creatives><Creative><Linear><VideoClicks><ClickTracking>{{click_url}}</ClickTracking></VideoClicks></Linear></Creative></Creatives></Wrapper></Ad></VAST>`, []string{"video/mp4"}},
	} {
		cfg := baseConfig("x")
		cfg.Creatives[0] = CreativeConfig{ID: "v", Format: "video", LandingURL: "https://x.example/", Secure: true, VAST: c.vast}
		s, err := Compile([]Config{cfg})
		if err != nil {
			t.Fatalf("%.60s: %v", c.vast, err)
		}
		if got := s.Campaigns[0].Creatives[0].MIMEs; !slices.Equal(got, c.want) {
			t.Errorf("%.60s: mimes %v, want %v", c.vast, got, c.want)
		}
	}
}

// A flight's dates begin at the first instant of that local day: 01:00
// where the clocks jump at midnight (Atlantic/Azores on 2026-03-29), not at
// 23:00 the day before, where time.Date put a skipped midnight (an outside
// audit: a flight bid an hour before its start and stopped an hour early).
func TestFlightDatesWhereMidnightIsSkipped(t *testing.T) {
	c := baseConfig("x")
	c.TimeZone = "Atlantic/Azores"
	c.Flight.Start, c.Flight.End = "2026-03-29", "2026-03-28"
	if _, err := Compile([]Config{c}); err == nil || !strings.Contains(err.Error(), "is not after") {
		t.Fatalf("a flight that ends the day before it starts: %v", err)
	}
	c.Flight.End = "2026-03-29"
	s, err := Compile([]Config{c})
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Atlantic/Azores")
	got := s.Campaigns[0]
	if want := time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC); !got.Start.Equal(want) || got.Start.In(loc).Day() != 29 {
		t.Errorf("start %s (%s local), want %s: the day's first instant", got.Start.UTC(), got.Start.In(loc), want)
	}
	if want := time.Date(2026, 3, 30, 0, 0, 0, 0, loc); !got.End.Equal(want) {
		t.Errorf("end %s, want %s", got.End.In(loc), want)
	}
}

// A recursive alias (an anchor whose value holds an alias of itself) is a
// problem of its file: yaml.v3 decodes it into a node graph with a cycle,
// and expandedSize recursed on it until the process died of a stack
// overflow (fatal, not a recoverable panic): one line dropped into the
// campaign folder took a running bidder down at the next watch tick, and
// -check-config and every restart with it.
func TestParseConfigRecursiveAlias(t *testing.T) {
	for _, doc := range []string{
		"targeting:\n  countries: &x [*x]\n",
		"x_unknown: &z [*z]\nid: a\n",
		"targeting:\n  dayparting: &d {days: [*d]}\n",
		"targeting: &t\n  <<: *t\n",
	} {
		_, err := ParseConfig("x.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "x.yaml: an alias names a value that holds it") {
			t.Errorf("%q: %v, want a recursive alias refused", doc, err)
		}
	}
}

// Whatever follows the first document is refused, a second document that
// does not parse included: only one that parsed was, so a campaign pasted
// in after "...", or a half-written copy after "---", was dropped without a
// word and the file accepted.
func TestParseConfigSecondDocumentThatDoesNotParse(t *testing.T) {
	for _, doc := range []string{
		"id: a\n---\ngarbage: [\n",
		"id: a\n...\nid: b\n",
		"id: a\n...\nnot yaml: : :\n  - [\n",
		"id: a\n...\n%YAML 1.1\n---\nfoo: [\n",
		"id: a\n--- ~\n",
		"id: a\n---\n---\nid: b\n",
	} {
		_, err := ParseConfig("x.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "x.yaml: more than one YAML document") {
			t.Errorf("%q: %v, want more than one YAML document", doc, err)
		}
	}
	for _, doc := range []string{"id: a\n", "---\nid: a\n", "id: a\n...\n", "id: a\n# end\n", "id: a\n---\n", "id: a\n---\n# end\n---\n"} {
		if _, err := ParseConfig("x.yaml", []byte(doc)); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
	}
}
