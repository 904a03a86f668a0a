package campaigns

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// monday15 is Monday 2026-11-23 15:00 UTC.
var monday15 = time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)

func TestMatchRules(t *testing.T) {
	type tc struct {
		name string
		cfg  func(*Config)
		req  func(*ortb.Request, *ortb.Imp)
		now  time.Time
		want bool
	}
	f := false
	video := func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "v", Format: "video", VAST: VASTInline("v", "v", "https://m.example/v.mp4", 15),
			LandingURL: "https://v.example/", Secure: true}
	}
	videoImp := func(r *ortb.Request, i *ortb.Imp) {
		*i = ortb.Imp{ID: bs("1"), HasVideo: true, Video: ortb.Video{MIMEs: bss("video/mp4"), W: 640, H: 360}, Secure: ortb.Unset}
	}
	native := func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "n", Format: "native", Native: &NativeConfig{Title: "t"}, LandingURL: "https://n.example/"}
	}
	cases := []tc{
		{"untargeted", nil, nil, monday15, true},
		{"paused", func(c *Config) { c.Status = "paused" }, nil, monday15, false},
		{"before flight", func(c *Config) { c.Flight.Start = "2026-11-24" }, nil, monday15, false},
		{"flight start inclusive", func(c *Config) { c.Flight.Start = "2026-11-23T15:00:00Z" }, nil, monday15, true},
		{"flight end date includes day", func(c *Config) { c.Flight.End = "2026-11-23" }, nil, monday15, true},
		{"after flight", func(c *Config) { c.Flight.End = "2026-11-23T15:00:00Z" }, nil, monday15, false},
		{"flight end date in zone", func(c *Config) { c.TimeZone = "Asia/Tokyo"; c.Flight.End = "2026-11-23" }, nil, monday15, false},
		{"country in", func(c *Config) { c.Targeting.Countries = []string{"usa", "GBR"} }, nil, monday15, true},
		{"country request lower case", func(c *Config) { c.Targeting.Countries = []string{"USA"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Device.Geo.Country = bs("usa") }, monday15, true},
		{"country out", func(c *Config) { c.Targeting.Countries = []string{"GBR"} }, nil, monday15, false},
		{"country absent", func(c *Config) { c.Targeting.Countries = []string{"USA"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Device.Geo.Country = nil }, monday15, false},
		{"region", func(c *Config) { c.Targeting.Regions = []string{"ca", "NY"} }, nil, monday15, true},
		{"region out", func(c *Config) { c.Targeting.Regions = []string{"NY"} }, nil, monday15, false},
		{"device type", func(c *Config) { c.Targeting.DeviceTypes = []int64{2, 4} }, nil, monday15, true},
		{"device type out", func(c *Config) { c.Targeting.DeviceTypes = []int64{4} }, nil, monday15, false},
		{"os any case", func(c *Config) { c.Targeting.OS = []string{"WINDOWS"} }, nil, monday15, true},
		{"os out", func(c *Config) { c.Targeting.OS = []string{"iOS"} }, nil, monday15, false},
		{"publisher", func(c *Config) { c.Targeting.Publishers = []string{"pub-1"} }, nil, monday15, true},
		{"publisher out", func(c *Config) { c.Targeting.Publishers = []string{"pub-9"} }, nil, monday15, false},
		{"site allow www", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"www.SITE-1.example.com"} }, nil, monday15, true},
		{"site allow out", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-2.example.com"} }, nil, monday15, false},
		{"site allow ignores apps", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-2.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, true},
		{"site block", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} }, nil, monday15, false},
		{"site block, a final dot", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("site-1.example.com.") }, monday15, false},
		{"site block, upper case and final dots", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("WWW.SITE-1.EXAMPLE.COM..") }, monday15, false},
		{"site block, a port", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("site-1.example.com:443") }, monday15, false},
		{"site block, spaces", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs(" site-1.example.com ") }, monday15, false},
		{"site block, a URL", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("https://site-1.example.com/a?b") }, monday15, false},
		{"site block, a subdomain", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("a.b.site-1.example.com") }, monday15, false},
		{"site block, the parent is not blocked", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("example.com") }, monday15, true},
		{"site block, a longer name is not a subdomain", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("xsite-1.example.com") }, monday15, true},
		{"site allow, a final dot and a port", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("site-1.example.com.:8080") }, monday15, true},
		{"site allow, a subdomain is not allowed", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("a.site-1.example.com") }, monday15, false},
		{"site block, the page on a blocked site", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) {
				r.Site.Domain, r.Site.Page = bs("fine.example"), bs("https://shop.site-1.example.com/a")
			}, monday15, false},
		{"site block, a page elsewhere", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) {
				r.Site.Domain, r.Site.Page = bs("fine.example"), bs("https://fine.example/site-1.example.com")
			}, monday15, true},
		// An allow list takes the page too (an outside targeting audit: an
		// allowed site.domain with a page on another site got a bid).
		{"site allow, the page on another site", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Page = bs("https://evil.example/a") }, monday15, false},
		{"site allow, the page on the allowed site", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) {
				r.Site.Page = bs("https://www.site-1.example.com/a?b=evil.example")
			}, monday15, true},
		{"site allow, the page on a subdomain", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Page = bs("https://news.site-1.example.com/a") }, monday15, true},
		{"site allow, a page with no host", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Page = bs("") }, monday15, true},
		{"site allow, the page on the parent of the allowed site", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Page = bs("https://example.com/") }, monday15, false},
		{"app allow", func(c *Config) { c.Targeting.AppBundles.Allow = []string{"com.example.app1"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, true},
		{"app allow out", func(c *Config) { c.Targeting.AppBundles.Allow = []string{"com.example.app2"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, false},
		{"app block", func(c *Config) { c.Targeting.AppBundles.Block = []string{"com.example.app1"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, false},
		// Bundles as bapp reads them: any letter case, an App Store id
		// with or without "id", a store URL (an outside targeting audit:
		// a block of com.bad.game let com.Bad.Game through).
		{"app block, other case", func(c *Config) { c.Targeting.AppBundles.Block = []string{"com.example.app1"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest(); r.App.Bundle = bs("com.Example.App1") }, monday15, false},
		{"app block written in another case", func(c *Config) { c.Targeting.AppBundles.Block = []string{"COM.EXAMPLE.APP1"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, false},
		{"app block, App Store id without id", func(c *Config) { c.Targeting.AppBundles.Block = []string{"id1234567890"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest(); r.App.Bundle = bs("1234567890") }, monday15, false},
		{"app block, App Store id with id", func(c *Config) { c.Targeting.AppBundles.Block = []string{"1234567890"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest(); r.App.Bundle = bs("id1234567890") }, monday15, false},
		{"app block, Play store URL", func(c *Config) {
			c.Targeting.AppBundles.Block = []string{"https://play.google.com/store/apps/details?id=com.example.app1&hl=en"}
		}, func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, false},
		{"app allow, other case", func(c *Config) { c.Targeting.AppBundles.Allow = []string{"com.example.app1"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest(); r.App.Bundle = bs("COM.example.app1") }, monday15, true},
		{"app block, another app", func(c *Config) { c.Targeting.AppBundles.Block = []string{"com.example.app12"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, true},
		{"app only on site", func(c *Config) { c.Targeting.Inventory = []string{"app"} }, nil, monday15, false},
		{"app only on app", func(c *Config) { c.Targeting.Inventory = []string{"app"} },
			func(r *ortb.Request, _ *ortb.Imp) { *r = *appRequest() }, monday15, true},
		{"category parent allow", func(c *Config) { c.Targeting.Categories.Allow = []string{"IAB1"} }, nil, monday15, true},
		{"category allow out", func(c *Config) { c.Targeting.Categories.Allow = []string{"IAB2"} }, nil, monday15, false},
		{"category child does not cover parent", func(c *Config) { c.Targeting.Categories.Allow = []string{"IAB1-3"} }, nil, monday15, false},
		{"category block parent", func(c *Config) { c.Targeting.Categories.Block = []string{"iab1"} }, nil, monday15, false},
		// Spaces around a site category: its parent was looked up untrimmed
		// and got past the block (the review of the bcat trim).
		{"category block parent, spaces", func(c *Config) { c.Targeting.Categories.Block = []string{"IAB1"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Cat = bss(" IAB1-2 ") }, monday15, false},
		{"category block other", func(c *Config) { c.Targeting.Categories.Block = []string{"IAB2"} }, nil, monday15, true},
		{"segment", func(c *Config) { c.Targeting.Segments = []string{"seg-9", "seg-1"} }, nil, monday15, true},
		{"segment out", func(c *Config) { c.Targeting.Segments = []string{"seg-9"} }, nil, monday15, false},
		{"segment gdpr no consent", func(c *Config) { c.Targeting.Segments = []string{"seg-1"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Regs.GDPR = ortb.True }, monday15, false},
		{"segment gdpr consent", func(c *Config) { c.Targeting.Segments = []string{"seg-1"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Regs.GDPR = ortb.True; r.User.Consent = bs("CP-consent") }, monday15, true},
		// The TC string in a GPP string's section 2: the privacy decision
		// reads it (the bidder removes segments when it denies them); the
		// match's own belt refused every segment campaign.
		{"segment gdpr consent in gpp", func(c *Config) { c.Targeting.Segments = []string{"seg-1"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Regs.GDPR = ortb.True; r.Regs.GPP = bs("DBABMA~CP-consent") }, monday15, true},
		{"gdpr without segments", nil, func(r *ortb.Request, _ *ortb.Imp) { r.Regs.GDPR = ortb.True }, monday15, true},
		{"coppa excluded", nil, func(r *ortb.Request, _ *ortb.Imp) { r.Regs.COPPA = ortb.True }, monday15, false},
		{"coppa allowed", func(c *Config) { c.Targeting.AllowCOPPA = true },
			func(r *ortb.Request, _ *ortb.Imp) { r.Regs.COPPA = ortb.True }, monday15, true},
		{"daypart in", func(c *Config) { c.Targeting.Dayparting = &DaypartConf{Days: []string{"mon"}, Hours: []int{15}} }, nil, monday15, true},
		{"daypart hour out", func(c *Config) { c.Targeting.Dayparting = &DaypartConf{Hours: []int{14, 16}} }, nil, monday15, false},
		{"daypart day out", func(c *Config) { c.Targeting.Dayparting = &DaypartConf{Days: []string{"Tuesday"}} }, nil, monday15, false},
		{"daypart in zone", func(c *Config) {
			c.TimeZone = "America/New_York" // 10:00 there
			c.Targeting.Dayparting = &DaypartConf{Days: []string{"mon"}, Hours: []int{10}}
		}, nil, monday15, true},
		{"daypart zone next day", func(c *Config) {
			c.TimeZone = "Asia/Tokyo" // Tuesday 00:00 there
			c.Targeting.Dayparting = &DaypartConf{Days: []string{"tue"}, Hours: []int{0}}
		}, nil, monday15, true},
		{"size via format", nil, func(_ *ortb.Request, i *ortb.Imp) {
			i.Banner = ortb.Banner{Format: []ortb.Size{{W: 728, H: 90}, {W: 300, H: 250}}}
		}, monday15, true},
		{"size mismatch", nil, func(_ *ortb.Request, i *ortb.Imp) { i.Banner = ortb.Banner{W: 728, H: 90} }, monday15, false},
		{"banner without size", nil, func(_ *ortb.Request, i *ortb.Imp) { i.Banner = ortb.Banner{} }, monday15, true},
		{"banner creative on video imp", nil, videoImp, monday15, false},
		{"video", video, videoImp, monday15, true},
		{"video mime mismatch", video, func(r *ortb.Request, i *ortb.Imp) { videoImp(r, i); i.Video.MIMEs = bss("video/webm") }, monday15, false},
		{"video battr", func(c *Config) { video(c); c.Creatives[0].Attr = []int64{14} },
			func(r *ortb.Request, i *ortb.Imp) { videoImp(r, i); i.Video.BAttr = []int64{14} }, monday15, false},
		{"native", native, func(_ *ortb.Request, i *ortb.Imp) { *i = ortb.Imp{HasNative: true} }, monday15, true},
		{"native on banner imp", native, nil, monday15, false},
		{"battr", func(c *Config) { c.Creatives[0].Attr = []int64{1, 6} },
			func(_ *ortb.Request, i *ortb.Imp) { i.Banner.BAttr = []int64{6} }, monday15, false},
		{"battr other", func(c *Config) { c.Creatives[0].Attr = []int64{1} },
			func(_ *ortb.Request, i *ortb.Imp) { i.Banner.BAttr = []int64{6} }, monday15, true},
		{"bcat exact", nil, func(r *ortb.Request, _ *ortb.Imp) { r.BCat = bss("IAB9", "IAB3-1") }, monday15, false},
		{"bcat parent", nil, func(r *ortb.Request, _ *ortb.Imp) { r.BCat = bss("iab3") }, monday15, false},
		{"bcat sibling", nil, func(r *ortb.Request, _ *ortb.Imp) { r.BCat = bss("IAB3-2") }, monday15, true},
		// Spaces around a category (the conformance audit: " IAB3 " blocked nothing).
		{"bcat with spaces", nil, func(r *ortb.Request, _ *ortb.Imp) { r.BCat = bss(" IAB3 ") }, monday15, false},
		{"badv", nil, func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("X.example") }, monday15, false},
		{"badv creative override", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("x.example") }, monday15, true},
		// A blocked domain blocks its subdomains: badv acme.example keeps
		// out an ad for shop.acme.example (found by the red-team pass).
		{"badv parent of the creative's domain", func(c *Config) { c.Creatives[0].ADomain = []string{"shop.brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("Brand.example") }, monday15, false},
		{"badv subdomain of the creative's domain", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("shop.brand.example") }, monday15, true},
		{"badv a top-level domain", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("example") }, monday15, true},
		{"badv a lookalike", func(c *Config) { c.Creatives[0].ADomain = []string{"notbrand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("brand.example") }, monday15, true},
		// Exchanges also write badv as URLs, with a final dot, "www." or
		// spaces (red-team pass 5: these matched nothing and the ad bid).
		{"badv as a URL", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("https://Brand.example/shop?x=1") }, monday15, false},
		{"badv with a final dot", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("brand.example.") }, monday15, false},
		{"badv with www", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("WWW.brand.example") }, monday15, false},
		{"badv with spaces and a port", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss(" brand.example:443 ") }, monday15, false},
		// Scheme-relative and with user information (an outside audit:
		// both let the blocked advertiser bid).
		{"badv scheme-relative", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("//brand.example") }, monday15, false},
		{"badv with user information", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("http://u:p@brand.example:80/x") }, monday15, false},
		{"badv user information naming a lookalike", func(c *Config) { c.Creatives[0].ADomain = []string{"notbrand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("http://notbrand.example@brand.example/") }, monday15, true},
		{"badv URL of a lookalike", func(c *Config) { c.Creatives[0].ADomain = []string{"notbrand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("https://brand.example/") }, monday15, true},
		// An internationalised domain written in Unicode by the request and
		// in ASCII (punycode) by the campaign, or the other way round: it
		// matched nothing and the blocked advertiser's ad bid.
		{"badv in Unicode, the creative's domain in punycode", func(c *Config) { c.Creatives[0].ADomain = []string{"xn--mnchen-3ya.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("MÜNCHEN.example") }, monday15, false},
		{"badv in punycode, the creative's domain in Unicode", func(c *Config) { c.Creatives[0].ADomain = []string{"münchen.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("xn--mnchen-3ya.example") }, monday15, false},
		{"badv in Unicode, another domain", func(c *Config) { c.Creatives[0].ADomain = []string{"xn--mnchen-3ya.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("münster.example") }, monday15, true},
		{"badv not a domain name", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("\xff\xfe.example", "☃☃") }, monday15, true},
		{"site block in punycode, the site in Unicode", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"xn--bcher-kva.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("www.Bücher.example") }, monday15, false},
		{"site block in Unicode, a subdomain with a final dot", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"bücher.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("shop.Bücher.example.") }, monday15, false},
		// Past the first version (a review): a label IDNA refuses, padding
		// past 253 bytes, and a page naming the blocked site in its query.
		{"site block in Unicode, a subdomain IDNA refuses", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"bücher.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("a_b.bücher.example") }, monday15, false},
		{"site block in Unicode, a leading hyphen and full-width dots", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"bücher.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("-x\uff0ebücher\uff0eexample") }, monday15, false},
		{"site block in Unicode, the page on a subdomain IDNA refuses", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"bücher.example"} },
			func(r *ortb.Request, _ *ortb.Imp) {
				r.Site.Domain, r.Site.Page = bs("fine.example"), bs("https://a_b.bücher.example/p")
			}, monday15, false},
		{"site block, a subdomain padded past 253 bytes", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) {
				r.Site.Domain = bs(strings.Repeat(strings.Repeat("a", 60)+".", 4) + "site-1.example.com")
			}, monday15, false},
		{"site block, a padded subdomain with full-width dots", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) {
				r.Site.Domain = bs(strings.Repeat(strings.Repeat("a", 60)+"\uff0e", 4) + "site-1.example.com")
			}, monday15, false},
		{"site block, a page whose query names the blocked site", func(c *Config) { c.Targeting.SiteDomains.Block = []string{"site-1.example.com"} },
			func(r *ortb.Request, _ *ortb.Imp) {
				r.Site.Domain, r.Site.Page = bs("fine.example"), bs("fine.example/r?u=https://site-1.example.com/")
			}, monday15, true},
		{"site allow in Unicode, the site in punycode", func(c *Config) { c.Targeting.SiteDomains.Allow = []string{"bücher.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Domain = bs("xn--bcher-kva.example") }, monday15, true},
		{"badv a top-level domain with a final dot", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("example.") }, monday15, true},
		// A wildcard or a leading dot names the domain and its subdomains
		// (the conformance audit: "*.brand.com" blocked nothing).
		{"badv as a wildcard", func(c *Config) { c.Creatives[0].ADomain = []string{"shop.brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("*.brand.example") }, monday15, false},
		{"badv with a leading dot", func(c *Config) { c.Creatives[0].ADomain = []string{"brand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss(".brand.example") }, monday15, false},
		{"badv wildcard of a lookalike", func(c *Config) { c.Creatives[0].ADomain = []string{"notbrand.example"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.BAdv = bss("*.brand.example") }, monday15, true},
		{"bapp", func(c *Config) { c.Creatives[0].Bundle = "com.x.game" },
			func(r *ortb.Request, _ *ortb.Imp) { r.BApp = bss("com.x.game") }, monday15, false},
		{"secure needed", func(c *Config) { c.Creatives[0].Secure = false },
			func(_ *ortb.Request, i *ortb.Imp) { i.Secure = ortb.True }, monday15, false},
		{"secure given", nil, func(_ *ortb.Request, i *ortb.Imp) { i.Secure = ortb.True }, monday15, true},
		{"wseat without us", nil, func(r *ortb.Request, _ *ortb.Imp) { r.WSeat = bss("other") }, monday15, false},
		{"wseat with us", nil, func(r *ortb.Request, _ *ortb.Imp) { r.WSeat = bss("other", "seat-1") }, monday15, true},
		{"bseat us", nil, func(r *ortb.Request, _ *ortb.Imp) { r.BSeat = bss("seat-1") }, monday15, false},
		{"private auction without deal", nil, func(_ *ortb.Request, i *ortb.Imp) { i.PrivateAuction = true }, monday15, false},
		{"deal only without deal", func(c *Config) { c.Targeting.Deals = []string{"d1"}; c.Targeting.OpenAuction = &f }, nil, monday15, false},
		{"deal only with deal", func(c *Config) { c.Targeting.Deals = []string{"d1"}; c.Targeting.OpenAuction = &f },
			func(_ *ortb.Request, i *ortb.Imp) { i.Deals = []ortb.Deal{{ID: bs("d0")}, {ID: bs("d1")}} }, monday15, true},
		{"deal wseat excludes us", func(c *Config) { c.Targeting.Deals = []string{"d1"}; c.Targeting.OpenAuction = &f },
			func(_ *ortb.Request, i *ortb.Imp) { i.Deals = []ortb.Deal{{ID: bs("d1"), WSeat: bss("other")}} }, monday15, false},
		{"deal private", func(c *Config) { c.Targeting.Deals = []string{"d1"} },
			func(_ *ortb.Request, i *ortb.Imp) {
				i.PrivateAuction = true
				i.Deals = []ortb.Deal{{ID: bs("d1"), WSeat: bss("seat-1")}}
			}, monday15, true},
		// A deal's wadomain in Unicode allows the creative's domain in
		// punycode (it allowed nothing, and the deal got no bid).
		{"deal wadomain in Unicode", func(c *Config) {
			c.Targeting.Deals, c.Targeting.OpenAuction = []string{"d1"}, &f
			c.Creatives[0].ADomain = []string{"xn--mnchen-3ya.example"}
		}, func(_ *ortb.Request, i *ortb.Imp) {
			i.Deals = []ortb.Deal{{ID: bs("d1"), WADomain: bss("https://www.München.example/")}}
		}, monday15, true},
		{"deal wadomain in Unicode, another domain", func(c *Config) {
			c.Targeting.Deals, c.Targeting.OpenAuction = []string{"d1"}, &f
			c.Creatives[0].ADomain = []string{"xn--mnchen-3ya.example"}
		}, func(_ *ortb.Request, i *ortb.Imp) {
			i.Deals = []ortb.Deal{{ID: bs("d1"), WADomain: bss("münster.example")}}
		}, monday15, false},
		{"deals and open auction, no deal in imp", func(c *Config) { c.Targeting.Deals = []string{"d1"} }, nil, monday15, true},
		{"deals and open auction, other deal", func(c *Config) { c.Targeting.Deals = []string{"d1"} },
			func(_ *ortb.Request, i *ortb.Imp) { i.Deals = []ortb.Deal{{ID: bs("d2")}} }, monday15, true},
		{"open auction with other deal", nil,
			func(_ *ortb.Request, i *ortb.Imp) { i.Deals = []ortb.Deal{{ID: bs("d1")}} }, monday15, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig("x")
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			s := mustCompile(t, []Config{cfg}, WithSeat("seat-1"))
			req, imp := siteRequest(), bannerImp(300, 250)
			if c.req != nil {
				c.req(req, imp)
			}
			var sc Scratch
			got := s.Match(nil, req, imp, c.now, &sc)
			if (len(got) == 1) != c.want || len(got) > 1 {
				t.Fatalf("got %d candidates %+v, want eligible=%v", len(got), got, c.want)
			}
			if exh := exhaustive(nil, s, req, imp, c.now, &Scratch{}); len(exh) != len(got) {
				t.Errorf("index found %d, exhaustive scan %d", len(got), len(exh))
			}
			if !c.want {
				return
			}
			cand := got[0]
			if cand.Campaign != s.Campaigns[0] || cand.Creative != s.Creatives[0] {
				t.Errorf("candidate %+v", cand)
			}
			var wantDeal *ortb.Deal
			for i := range imp.Deals {
				if slices.Contains(cfg.Targeting.Deals, string(imp.Deals[i].ID)) {
					wantDeal = &imp.Deals[i]
					break
				}
			}
			if cand.Deal != wantDeal {
				t.Errorf("deal %+v, want %+v", cand.Deal, wantDeal)
			}
		})
	}
}

func TestMatchCandidateDetails(t *testing.T) {
	a := baseConfig("a")
	a.Creatives = append(a.Creatives, CreativeConfig{ID: "a-wide", Format: "banner", Sizes: []string{"160x600", "728x90"},
		Markup: BannerMarkup("https://x.example/w.png", 728, 90), LandingURL: "https://a.example/", Secure: true})
	a.Targeting.Deals = []string{"d-a"}
	b := baseConfig("b")
	b.Creatives[0].Sizes = []string{"320x50"}
	s := mustCompile(t, []Config{a, b})
	req := siteRequest()
	imp := bannerImp(0, 0)
	imp.Banner.Format = []ortb.Size{{W: 728, H: 90}, {W: 300, H: 250}}
	imp.Deals = []ortb.Deal{{ID: bs("d-a")}}
	var sc Scratch
	got := s.Match(make([]Candidate, 0, 8), req, imp, monday15, &sc)
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if got[0].Creative.ID != "a-c" || got[0].W != 300 || got[0].H != 250 || got[0].Deal != &imp.Deals[0] {
		t.Errorf("first %+v", got[0])
	}
	if got[1].Creative.ID != "a-wide" || got[1].W != 728 || got[1].H != 90 {
		t.Errorf("second %+v", got[1])
	}
	// Appends after what dst holds.
	got2 := s.Match(got, req, imp, monday15, &sc)
	if len(got2) != 4 {
		t.Errorf("append: %d", len(got2))
	}
}

// OpenRTB 2.5's wmin/wmax/hmin/hmax: without format, a banner given only as
// a range (or a preferred w x h with a range) takes a creative size inside
// it, and none outside (an outside conformance audit got 300x250 for a
// 700-800 x 80-100 range). A video player whose height is unknown is
// answered with the creative's size, not h 0.
func TestMatchBannerRangeAndVideoSize(t *testing.T) {
	a := baseConfig("a")
	a.Creatives[0].Sizes = []string{"300x250", "728x90"}
	s := mustCompile(t, []Config{a})
	req := siteRequest()
	var sc Scratch
	for _, c := range []struct {
		name         string
		b            ortb.Banner
		wantW, wantH int64 // 0: no bid
	}{
		{"range around the second size", ortb.Banner{WMin: 700, WMax: 800, HMin: 80, HMax: 100}, 728, 90},
		{"range around no size", ortb.Banner{WMin: 10, WMax: 20, HMin: 10, HMax: 20}, 0, 0},
		{"upper bounds only", ortb.Banner{WMax: 320, HMax: 260}, 300, 250},
		{"lower bound only", ortb.Banner{WMin: 400}, 728, 90},
		{"preferred size outside, range fits", ortb.Banner{W: 320, H: 50, WMax: 800, HMax: 100}, 728, 90},
		{"exact size wins", ortb.Banner{W: 728, H: 90, WMax: 800, HMax: 300}, 728, 90},
		// A range on one axis leaves the other exact (the review: 300x250
		// with only hmax 600, or only wmin 300, took a 728x90).
		{"height range only: width exact", ortb.Banner{W: 300, H: 250, HMax: 600}, 300, 250},
		{"height range only: no width fits", ortb.Banner{W: 320, H: 250, HMax: 600}, 0, 0},
		{"width range only: height exact", ortb.Banner{W: 300, H: 90, WMin: 400}, 728, 90},
		{"width range only: no height fits", ortb.Banner{W: 300, H: 50, WMin: 300}, 0, 0},
		{"format: the range is not read", ortb.Banner{Format: []ortb.Size{{W: 320, H: 50}}, WMax: 800, HMax: 300}, 0, 0},
		{"no size at all", ortb.Banner{}, 300, 250},
		// A negative size is no size of ours, not "no size" (an outside
		// audit: -300x-250 took any creative).
		{"negative size", ortb.Banner{W: -300, H: -250}, 0, 0},
		{"negative size beside a range", ortb.Banner{W: -300, H: -250, WMin: 1}, 0, 0},
		{"negative height beside a width range", ortb.Banner{W: 300, H: -250, WMin: 1, WMax: 1000}, 0, 0},
	} {
		imp := bannerImp(0, 0)
		imp.Banner = c.b
		got := s.Match(nil, req, imp, monday15, &sc)
		switch {
		case c.wantW == 0 && len(got) != 0:
			t.Errorf("%s: bid %dx%d, want none", c.name, got[0].W, got[0].H)
		case c.wantW != 0 && (len(got) != 1 || got[0].W != c.wantW || got[0].H != c.wantH):
			t.Errorf("%s: %+v, want %dx%d", c.name, got, c.wantW, c.wantH)
		}
	}
	v := baseConfig("v")
	v.Creatives[0] = CreativeConfig{ID: "v", Format: "video", VAST: VASTInline("v", "v", "https://m.example/v.mp4", 15),
		LandingURL: "https://v.example/", Secure: true, Sizes: []string{"640x360"}}
	sv := mustCompile(t, []Config{v})
	v.Creatives[0].Sizes = nil
	svNoSize := mustCompile(t, []Config{v})
	for _, c := range []struct{ w, h, wantW, wantH, noSizeW, noSizeH int64 }{
		{640, 0, 640, 360, 0, 0}, {0, 480, 640, 360, 0, 0}, {1280, 720, 1280, 720, 1280, 720},
	} {
		imp := &ortb.Imp{ID: bs("1"), HasVideo: true, Video: ortb.Video{MIMEs: bss("video/mp4"), W: c.w, H: c.h}, Secure: ortb.Unset}
		got := sv.Match(nil, req, imp, monday15, &sc)
		if len(got) != 1 || got[0].W != c.wantW || got[0].H != c.wantH {
			t.Errorf("video %dx%d: %+v, want %dx%d", c.w, c.h, got, c.wantW, c.wantH)
		}
		// A creative without sizes: the player's size when whole, else none.
		got = svNoSize.Match(nil, req, imp, monday15, &sc)
		if len(got) != 1 || got[0].W != c.noSizeW || got[0].H != c.noSizeH {
			t.Errorf("video %dx%d, creative without sizes: %+v, want %dx%d", c.w, c.h, got, c.noSizeW, c.noSizeH)
		}
	}
}

// exhaustive is the reference: every campaign checked, no index.
func exhaustive(out []Candidate, s *Snapshot, req *ortb.Request, imp *ortb.Imp, now time.Time, sc *Scratch) []Candidate {
	if !seatAllowed(req.WSeat, req.BSeat, s.idx.seat) {
		return out
	}
	sc.begin(&s.idx, now)
	sc.requestValues(&s.idx, req, imp, s.idx.seat)
	for i := range s.idx.camps {
		out = s.matchCampaign(out, &s.idx.camps[i], req, imp, sc)
	}
	return out
}

// idnASCII converts a Unicode domain name to punycode, and leaves alone one
// that does not convert or that is longer than a domain name may be: the
// encoder's time grows with the square of a label's length (a review: a
// 20 KB site.domain cost 0.3 s of CPU a conversion, once per imp).
func TestIDNASCII(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"münchen.example", "xn--mnchen-3ya.example"},
		{"MÜNCHEN.example", "xn--mnchen-3ya.example"},
		{"brand.example", "brand.example"},
		{"a b.example\u00e9", "a b.example\u00e9"}, // not a domain: as it is
	} {
		if got := string(idnASCII([]byte(tc.in))); got != tc.want {
			t.Errorf("idnASCII(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("字", maxDomainBytes/3+1) + ".example"
	if got := string(idnASCII([]byte(long))); got != long {
		t.Errorf("a name over %d bytes was converted: %q", maxDomainBytes, got)
	}
	short := strings.Repeat("字", 20) + ".example"
	if got := string(idnASCII([]byte(short))); got == short || !strings.HasPrefix(got, "xn--") {
		t.Errorf("a 20-character name was not converted: %q", got)
	}
}

// Candidate.Alts lists the other ways a creative may bid on an imp after
// its deal, in order: the campaign's later deals on the imp (request order)
// that let the creative in, then the open auction where the campaign and
// the imp allow one. NextAlt walks them.
func TestCandidateAlts(t *testing.T) {
	f := false
	dealIDs := func(c Candidate, imp *ortb.Imp) []string {
		var ids []string
		for c.NextAlt(imp) {
			if c.Deal == nil {
				ids = append(ids, "open")
				continue
			}
			ids = append(ids, string(c.Deal.ID))
		}
		return ids
	}
	for _, c := range []struct {
		name    string
		open    bool
		private bool
		deals   []ortb.Deal
		first   string   // the candidate's Deal; "" none
		then    []string // its later ways, in order
	}{
		{"no deal of its own", true, false, []ortb.Deal{{ID: bs("d9")}}, "", nil},
		{"one deal, open auction", true, false, []ortb.Deal{{ID: bs("d1")}}, "d1", []string{"open"}},
		{"one deal, private auction", true, true, []ortb.Deal{{ID: bs("d1")}}, "d1", nil},
		{"deals only", false, false, []ortb.Deal{{ID: bs("d1")}, {ID: bs("d2")}}, "d1", []string{"d2"}},
		{"request order, others skipped", true, false,
			[]ortb.Deal{{ID: bs("d3")}, {ID: bs("d9")}, {ID: bs("d1")}, {ID: bs("d2")}}, "d3", []string{"d1", "d2", "open"}},
		{"a later deal's wadomain and wseat", false, false, []ortb.Deal{{ID: bs("d1")}, {ID: bs("d2"), WADomain: bss("brand.example")},
			{ID: bs("d3"), WSeat: bss("other")}, {ID: bs("d4"), WADomain: bss("other.example")}}, "d1", []string{"d2"}},
		// d2 listed twice: under neither listing (dealValues), the
		// one that allows the brand included.
		{"a repeated deal id", false, false, []ortb.Deal{{ID: bs("d1")}, {ID: bs("d2"), WADomain: bss("other.example")},
			{ID: bs("d3"), WSeat: bss("other")}, {ID: bs("d2"), WADomain: bss("brand.example")}}, "d1", nil},
		{"the first deal's wadomain", true, false, []ortb.Deal{{ID: bs("d1"), WADomain: bss("other.example")}, {ID: bs("d2")}, {ID: bs("d3")}},
			"d2", []string{"d3", "open"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig("x")
			cfg.Targeting.Deals = []string{"d1", "d2", "d3", "d4"}
			cfg.Creatives[0].ADomain = []string{"brand.example"}
			if !c.open {
				cfg.Targeting.OpenAuction = &f
			}
			s := mustCompile(t, []Config{cfg}, WithSeat("seat-1"))
			req, imp := siteRequest(), bannerImp(300, 250)
			imp.Deals, imp.PrivateAuction = c.deals, c.private
			var sc Scratch
			got := s.Match(nil, req, imp, monday15, &sc)
			if len(got) != 1 {
				t.Fatalf("%d candidates, want 1", len(got))
			}
			if first := string(dealID(got[0].Deal)); first != c.first {
				t.Fatalf("deal %q, want %q", first, c.first)
			}
			if then := dealIDs(got[0], imp); !slices.Equal(then, c.then) {
				t.Errorf("later ways %v, want %v", then, c.then)
			}
			// The ranked walk and Explain give the same.
			s.Begin(req, imp, monday15, &sc, &rateRanker{s.Campaigns, "USD", map[string]float64{"USD": 1}})
			walked, _ := s.Next(nil, &sc)
			if len(walked) != 1 || walked[0] != got[0] {
				t.Errorf("the walk's candidate %+v, Match's %+v", walked, got[0])
			}
			for _, v := range s.Explain(req, imp, monday15, nil, nil) {
				if len(v.Candidates) != 1 || v.Candidates[0] != got[0] {
					t.Errorf("Explain's candidates %+v, Match's %+v", v.Candidates, got[0])
				}
			}
		})
	}
}

func dealID(d *ortb.Deal) []byte {
	if d == nil {
		return nil
	}
	return d.ID
}
