package campaigns

import (
	"fmt"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// A request's bapp is looked up against the creative's bundle with a
// search that needs a sorted list, and it was kept in request order: with
// more than 8 bundles the index knows (here, other campaigns target them),
// a blocked app's own install ad was bid whenever the search went the
// wrong way. Both orders are tried: the old code missed one of them.
func TestBAppManyKnownBundles(t *testing.T) {
	var cfgs []Config
	var others [][]byte
	for i := range 12 {
		c := baseConfig(fmt.Sprintf("t%d", i))
		b := fmt.Sprintf("com.other.app%02d", i)
		c.Targeting.AppBundles.Allow = []string{b}
		others = append(others, []byte(b))
		cfgs = append(cfgs, c)
	}
	adv := baseConfig("adv")
	adv.Creatives[0].Bundle = "com.advertised.app"
	cfgs = append(cfgs, adv)
	s := mustCompile(t, cfgs)
	for _, first := range []bool{true, false} {
		req := appRequest()
		req.BApp = append([][]byte(nil), others...)
		if first {
			req.BApp = append([][]byte{[]byte("com.advertised.app")}, req.BApp...)
		} else {
			req.BApp = append(req.BApp, []byte("com.advertised.app"))
		}
		for _, c := range s.Match(nil, req, bannerImp(300, 250), monday15, &Scratch{}) {
			if c.Campaign.ID == "adv" {
				t.Errorf("bapp lists the advertised app (first: %v) and its ad is a candidate", first)
			}
		}
	}
}

// bapp entries come as exchanges' publishers write them: compared
// exactly, another letter case, a store URL or the App Store's "id" before
// its number let an ad for the blocked app through (an audit's known gap).
func TestBAppForms(t *testing.T) {
	cases := []struct {
		bundle, bapp string
		blocked      bool
	}{
		{"com.example.game", "com.example.game", true},
		{"com.example.game", "com.Example.Game", true},
		{"com.Example.Game", "com.example.game", true},
		{"com.example.game", " com.example.game ", true},
		{"com.example.game", "https://play.google.com/store/apps/details?id=com.example.game&hl=en", true},
		{"com.example.game", "play.google.com/store/apps/details?hl=en&id=com.example.game", true},
		{"123456789", "id123456789", true},
		{"id123456789", "123456789", true},
		{"123456789", "https://apps.apple.com/us/app/example-game/id123456789?mt=8", true},
		{"123456789", "https://itunes.apple.com/app/id123456789/", true},
		{"com.example.game", "com.example.gamer", false},
		{"com.example.game", "https://play.google.com/store/apps/details?id=com.example.other", false},
		{"123456789", "id1234567890", false},
		{"idle.game", "idle.game", true},
		{"idle.game", "le.game", false},
	}
	for _, c := range cases {
		adv := baseConfig("adv")
		adv.Creatives[0].Bundle = c.bundle
		s := mustCompile(t, []Config{adv, baseConfig("other")})
		req := appRequest()
		req.BApp = [][]byte{[]byte(c.bapp)}
		found := false
		for _, cand := range s.Match(nil, req, bannerImp(300, 250), monday15, &Scratch{}) {
			found = found || cand.Campaign.ID == "adv"
		}
		if found == c.blocked {
			t.Errorf("bundle %q, bapp %q: a candidate %v, want blocked %v", c.bundle, c.bapp, found, c.blocked)
		}
	}
}

// acat (OpenRTB 2.6) lists the only categories a bid may have: every
// category of the creative must be one, or in IAB 1.0 have its parent
// there. It was not read at all: a request allowing only IAB1 got bids in
// IAB3-1 (baseConfig's creative) and anything else.
func TestACat(t *testing.T) {
	cases := []struct {
		name string
		cats []string
		tax  int64
		acat []string
		rtax int64
		want bool
	}{
		{"no acat", []string{"IAB3-1"}, 1, nil, 0, true},
		{"its category", []string{"IAB3-1"}, 1, []string{"IAB3-1"}, 0, true},
		{"its parent", []string{"IAB3-1"}, 1, []string{"IAB3"}, 0, true},
		{"lower case", []string{"IAB3-1"}, 1, []string{"iab3"}, 0, true},
		{"another", []string{"IAB3-1"}, 1, []string{"IAB1"}, 0, false},
		{"a sibling", []string{"IAB3-1"}, 1, []string{"IAB3-2"}, 0, false},
		{"one of two allowed", []string{"IAB3-1", "IAB17"}, 1, []string{"IAB3"}, 0, false},
		{"both allowed", []string{"IAB3-1", "IAB17"}, 1, []string{"IAB17", "IAB3"}, 0, true},
		{"no categories", nil, 1, []string{"IAB3"}, 0, false},
		{"another taxonomy", []string{"IAB3-1"}, 1, []string{"IAB3-1"}, 2, false},
		{"taxonomy 2", []string{"52"}, 2, []string{"52"}, 2, true},
		{"taxonomy 2, another", []string{"52"}, 2, []string{"53"}, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig("x")
			cfg.Creatives[0].Cat, cfg.Creatives[0].CatTax = c.cats, c.tax
			s := mustCompile(t, []Config{cfg, baseConfig("other")})
			req := siteRequest()
			req.CatTax = c.rtax
			for _, a := range c.acat {
				req.ACat = append(req.ACat, []byte(a))
			}
			got := false
			for _, cand := range s.Match(nil, req, bannerImp(300, 250), monday15, &Scratch{}) {
				got = got || cand.Campaign.ID == "x"
			}
			if got != c.want {
				t.Fatalf("x a candidate: %v, want %v", got, c.want)
			}
			if exh := exhaustive(nil, s, req, bannerImp(300, 250), monday15, &Scratch{}); (len(exh) > 0 && exh[0].Campaign.ID == "x" || len(exh) > 1) != c.want {
				t.Errorf("exhaustive scan disagrees: %d candidates", len(exh))
			}
		})
	}
}

// A campaign's category block holds on the page's, section's and content's
// categories (pagecat, sectioncat, content.cat), not only the site's or
// app's cat: a campaign blocking IAB26 bid on a page the request said was
// IAB26 because the site as a whole was IAB12 (an outside audit). Content
// categories in another taxonomy than the block list's keep it out, as the
// site's do.
func TestCategoryBlockReadsPageAndContent(t *testing.T) {
	cases := []struct {
		name string
		set  func(c *ortb.PageCats)
		app  bool
		dooh bool
		want bool
	}{
		{"site only", func(*ortb.PageCats) {}, false, false, true},
		{"pagecat", func(c *ortb.PageCats) { c.PageCat = [][]byte{[]byte("IAB26")} }, false, false, false},
		{"sectioncat child", func(c *ortb.PageCats) { c.PageCat = [][]byte{[]byte("IAB1"), []byte("iab26-2")} }, false, false, false},
		{"content.cat", func(c *ortb.PageCats) { c.ContentCat = [][]byte{[]byte("IAB26")} }, false, false, false},
		{"app content.cat", func(c *ortb.PageCats) { c.ContentCat = [][]byte{[]byte("IAB26")} }, true, false, false},
		{"content in another taxonomy", func(c *ortb.PageCats) { c.ContentCat, c.ContentCatTax = [][]byte{[]byte("IAB1")}, 2 }, false, false, false},
		{"other page", func(c *ortb.PageCats) { c.PageCat = [][]byte{[]byte("IAB1")} }, false, false, true},
		{"dooh content.cat", func(c *ortb.PageCats) { c.ContentCat = [][]byte{[]byte("IAB26")} }, false, true, false},
		{"dooh other content", func(c *ortb.PageCats) { c.ContentCat = [][]byte{[]byte("IAB1")} }, false, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig("x")
			cfg.Targeting.Categories.Block = []string{"IAB26"}
			s := mustCompile(t, []Config{cfg, baseConfig("other")})
			req := siteRequest()
			req.Site.Cat = [][]byte{[]byte("IAB12")}
			c.set(&req.Site.PageCats)
			if c.app {
				req = appRequest()
				req.App.Cat = [][]byte{[]byte("IAB12")}
				c.set(&req.App.PageCats)
			}
			if c.dooh {
				cfg.Targeting.Inventory = []string{"dooh"}
				s = mustCompile(t, []Config{cfg, baseConfig("other")})
				req = siteRequest()
				req.HasSite, req.HasDOOH = false, true
				req.DOOH = ortb.DOOH{ID: []byte("d")}
				c.set(&req.DOOH.PageCats)
			}
			got := false
			for _, cand := range s.Match(nil, req, bannerImp(300, 250), monday15, &Scratch{}) {
				got = got || cand.Campaign.ID == "x"
			}
			if got != c.want {
				t.Fatalf("x a candidate: %v, want %v", got, c.want)
			}
			for _, v := range s.Explain(req, bannerImp(300, 250), monday15, nil, nil) {
				if v.Campaign.ID == "x" && !c.want && v.Rule != RuleCatBlock {
					t.Errorf("explain says %q, want %q", v.Rule, RuleCatBlock)
				}
			}
		})
	}
}
