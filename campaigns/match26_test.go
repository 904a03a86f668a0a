package campaigns

import (
	"slices"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// The targeting and creative rules added with OpenRTB 2.6 support: geo
// (metro, city), language, connection type, carrier, DOOH inventory and
// venues, rewarded imps, category taxonomies, and what video and audio
// creatives declare (duration, protocols, plcmt, skippability, pods).
func TestMatchRules26(t *testing.T) {
	type tc struct {
		name string
		cfg  func(*Config)
		req  func(*ortb.Request, *ortb.Imp)
		want bool
	}
	yes, no := true, false
	tg := func(f func(*TargetingConfig)) func(*Config) { return func(c *Config) { f(&c.Targeting) } }
	dev := func(f func(*ortb.Device)) func(*ortb.Request, *ortb.Imp) {
		return func(r *ortb.Request, _ *ortb.Imp) { f(&r.Device) }
	}
	dooh := func(r *ortb.Request, _ *ortb.Imp) {
		r.HasSite, r.Site = false, ortb.Site{}
		r.HasDOOH = true
		r.DOOH = ortb.DOOH{Publisher: ortb.Publisher{ID: bs("ooh-1")}, VenueType: bss("Transit.Airports", "transit")}
	}
	// Video: a 15 s VAST 3.0 inline creative, and an imp that lists no
	// constraints unless a case adds them.
	video := func(f func(*CreativeConfig)) func(*Config) {
		return func(c *Config) {
			c.Creatives[0] = CreativeConfig{ID: "v", Format: "video", VAST: VASTInline("v", "v", "https://m.example/v.mp4", 15),
				LandingURL: "https://v.example/", Secure: true}
			if f != nil {
				f(&c.Creatives[0])
			}
		}
	}
	vimp := func(f func(*ortb.Video)) func(*ortb.Request, *ortb.Imp) {
		return func(_ *ortb.Request, i *ortb.Imp) {
			*i = ortb.Imp{ID: bs("1"), HasVideo: true, Secure: ortb.Unset,
				Video: ortb.Video{MIMEs: bss("video/mp4"), W: 640, H: 360, Skip: ortb.Unset}}
			if f != nil {
				f(&i.Video)
			}
		}
	}
	audio := func(c *Config) {
		c.Creatives[0] = CreativeConfig{ID: "a", Format: "audio", VAST: VASTInlineMedia("a", "a", "https://m.example/a.mp4", `type="audio/mp4"`, 30),
			MIMEs: []string{"audio/mp4"}, LandingURL: "https://a.example/", Secure: true, SlotInPod: []int64{1}}
	}
	aimp := func(f func(*ortb.Audio)) func(*ortb.Request, *ortb.Imp) {
		return func(_ *ortb.Request, i *ortb.Imp) {
			*i = ortb.Imp{ID: bs("1"), HasAudio: true, Secure: ortb.Unset, Audio: ortb.Audio{MIMEs: bss("audio/mp4")}}
			if f != nil {
				f(&i.Audio)
			}
		}
	}
	lang := func(l string) func(*Config) { return func(c *Config) { c.Creatives[0].Language = l } }
	wlang := func(wl, wlb [][]byte) func(*ortb.Request, *ortb.Imp) {
		return func(r *ortb.Request, _ *ortb.Imp) { r.WLang, r.WLangB = wl, wlb }
	}
	btype := func(ts ...int64) func(*Config) { return func(c *Config) { c.Creatives[0].BType = ts } }
	bimp := func(ts ...int64) func(*ortb.Request, *ortb.Imp) {
		return func(_ *ortb.Request, i *ortb.Imp) { i.Banner.BType = ts }
	}
	mraid := func(c *Config) {
		c.Creatives[0].Markup = `<script src="mraid.js"></script><a href="{{click_url}}"><img src="https://cdn.example.com/a.png"></a><img src="{{imp_url}}">`
	}
	markup := func(tag string) func(*Config) {
		return func(c *Config) {
			c.Creatives[0].Markup = tag + `<a href="{{click_url}}"><img src="https://cdn.example.com/a.png"></a><img src="{{imp_url}}">`
		}
	}
	bapi := func(api ...int64) func(*ortb.Request, *ortb.Imp) {
		return func(_ *ortb.Request, i *ortb.Imp) { i.Banner.API = api }
	}
	cases := []tc{
		{"metro", tg(func(t *TargetingConfig) { t.Metros = []string{"501"} }), dev(func(d *ortb.Device) { d.Geo.Metro = bs("501") }), true},
		{"metro out", tg(func(t *TargetingConfig) { t.Metros = []string{"501"} }), dev(func(d *ortb.Device) { d.Geo.Metro = bs("803") }), false},
		{"metro absent", tg(func(t *TargetingConfig) { t.Metros = []string{"501"} }), nil, false},
		{"city any case", tg(func(t *TargetingConfig) { t.Cities = []string{"New York"} }), dev(func(d *ortb.Device) { d.Geo.City = bs("NEW YORK") }), true},
		{"city out", tg(func(t *TargetingConfig) { t.Cities = []string{"Boston"} }), dev(func(d *ortb.Device) { d.Geo.City = bs("New York") }), false},
		{"language", tg(func(t *TargetingConfig) { t.Languages = []string{"EN", "de"} }), dev(func(d *ortb.Device) { d.Language = bs("en") }), true},
		{"language region subtag", tg(func(t *TargetingConfig) { t.Languages = []string{"en"} }), dev(func(d *ortb.Device) { d.Language = bs("en-GB") }), true},
		{"language from langb", tg(func(t *TargetingConfig) { t.Languages = []string{"es"} }), dev(func(d *ortb.Device) { d.LangB = bs("es-MX") }), true},
		{"language wins over langb", tg(func(t *TargetingConfig) { t.Languages = []string{"es"} }),
			dev(func(d *ortb.Device) { d.Language, d.LangB = bs("en"), bs("es-MX") }), false},
		{"language absent", tg(func(t *TargetingConfig) { t.Languages = []string{"en"} }), nil, false},
		{"connection type", tg(func(t *TargetingConfig) { t.ConnectionTypes = []int64{2, 6} }), dev(func(d *ortb.Device) { d.ConnType = 6 }), true},
		{"connection type out", tg(func(t *TargetingConfig) { t.ConnectionTypes = []int64{2} }), dev(func(d *ortb.Device) { d.ConnType = 6 }), false},
		{"connection type unknown", tg(func(t *TargetingConfig) { t.ConnectionTypes = []int64{2} }), nil, false},
		{"carrier any case", tg(func(t *TargetingConfig) { t.Carriers = []string{"T-Mobile"} }), dev(func(d *ortb.Device) { d.Carrier = bs("t-mobile") }), true},
		{"carrier out", tg(func(t *TargetingConfig) { t.Carriers = []string{"Verizon"} }), dev(func(d *ortb.Device) { d.Carrier = bs("t-mobile") }), false},
		{"dooh not by default", nil, dooh, false},
		{"dooh inventory", tg(func(t *TargetingConfig) { t.Inventory = []string{"dooh"} }), dooh, true},
		{"dooh only on site", tg(func(t *TargetingConfig) { t.Inventory = []string{"dooh"} }), nil, false},
		{"dooh venue", tg(func(t *TargetingConfig) { t.Inventory = []string{"dooh"}; t.VenueTypes = []string{"transit.airports"} }), dooh, true},
		{"dooh venue out", tg(func(t *TargetingConfig) { t.Inventory = []string{"dooh"}; t.VenueTypes = []string{"retail"} }), dooh, false},
		{"dooh venue ignored on site", tg(func(t *TargetingConfig) { t.Inventory = []string{"site", "dooh"}; t.VenueTypes = []string{"retail"} }), nil, true},
		{"dooh publisher", tg(func(t *TargetingConfig) { t.Inventory = []string{"dooh"}; t.Publishers = []string{"ooh-1"} }), dooh, true},
		{"neither site nor app: default", nil, func(r *ortb.Request, _ *ortb.Imp) { r.HasSite = false }, true},
		{"neither site nor app: site only", tg(func(t *TargetingConfig) { t.Inventory = []string{"site"} }),
			func(r *ortb.Request, _ *ortb.Imp) { r.HasSite = false }, false},
		{"rewarded only", tg(func(t *TargetingConfig) { t.Rewarded = &yes }), func(_ *ortb.Request, i *ortb.Imp) { i.Rwdd = true }, true},
		{"rewarded only, not rewarded", tg(func(t *TargetingConfig) { t.Rewarded = &yes }), nil, false},
		{"never rewarded", tg(func(t *TargetingConfig) { t.Rewarded = &no }), func(_ *ortb.Request, i *ortb.Imp) { i.Rwdd = true }, false},
		{"never rewarded, not rewarded", tg(func(t *TargetingConfig) { t.Rewarded = &no }), nil, true},
		{"category taxonomy 6", tg(func(t *TargetingConfig) { t.Categories = CategoriesConfig{Taxonomy: 6, Allow: []string{"483"}} }),
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.CatTax, r.Site.Cat = 6, bss("483") }, true},
		{"category taxonomy 6, request in 1.0", tg(func(t *TargetingConfig) { t.Categories = CategoriesConfig{Taxonomy: 6, Allow: []string{"483"}} }),
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.Cat = bss("483") }, false},
		{"category 1.0 allow, request in 6", tg(func(t *TargetingConfig) { t.Categories.Allow = []string{"IAB1"} }),
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.CatTax = 6 }, false},
		{"category block, request in another taxonomy", tg(func(t *TargetingConfig) { t.Categories.Block = []string{"IAB25"} }),
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.CatTax, r.Site.Cat = 6, bss("483") }, false},
		{"category block, same taxonomy", tg(func(t *TargetingConfig) { t.Categories = CategoriesConfig{Taxonomy: 6, Block: []string{"1005"}} }),
			func(r *ortb.Request, _ *ortb.Imp) { r.Site.CatTax, r.Site.Cat = 6, bss("1005") }, false},
		{"bcat in the creative's taxonomy", func(c *Config) { c.Creatives[0].CatTax, c.Creatives[0].Cat = 3, []string{"1005"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.CatTax, r.BCat = 3, bss("1005") }, false},
		{"bcat in the creative's taxonomy, other category", func(c *Config) { c.Creatives[0].CatTax, c.Creatives[0].Cat = 3, []string{"1005"} },
			func(r *ortb.Request, _ *ortb.Imp) { r.CatTax, r.BCat = 3, bss("1006") }, true},
		{"bcat in another taxonomy", nil, func(r *ortb.Request, _ *ortb.Imp) { r.CatTax, r.BCat = 3, bss("1005") }, false},
		{"bcat in another taxonomy, creative without categories", func(c *Config) { c.Creatives[0].Cat = nil },
			func(r *ortb.Request, _ *ortb.Imp) { r.CatTax, r.BCat = 3, bss("1005") }, true},

		{"video unconstrained", video(nil), vimp(nil), true},
		{"video duration from VAST in range", video(nil), vimp(func(v *ortb.Video) { v.MinDuration, v.MaxDuration = 5, 15 }), true},
		{"video too long", video(nil), vimp(func(v *ortb.Video) { v.MaxDuration = 10 }), false},
		{"video too short", video(nil), vimp(func(v *ortb.Video) { v.MinDuration = 20 }), false},
		{"video rqddurs", video(nil), vimp(func(v *ortb.Video) { v.RqdDurs = []int64{15, 30}; v.MinDuration = 20 }), true},
		{"video rqddurs out", video(nil), vimp(func(v *ortb.Video) { v.RqdDurs = []int64{30} }), false},
		{"video poddur", video(nil), vimp(func(v *ortb.Video) { v.PodDur = 10 }), false},
		{"video unknown duration", video(func(c *CreativeConfig) { c.VAST = `<VAST version="3.0">{{imp_url}}{{click_url}}</VAST>` }),
			vimp(func(v *ortb.Video) { v.MaxDuration = 30 }), false},
		{"video unknown duration, no constraint", video(func(c *CreativeConfig) { c.VAST = `<VAST version="3.0">{{imp_url}}{{click_url}}</VAST>` }),
			vimp(nil), true},
		{"video protocol from VAST", video(nil), vimp(func(v *ortb.Video) { v.Protocols = []int64{2, 3} }), true},
		{"video protocol out", video(nil), vimp(func(v *ortb.Video) { v.Protocols = []int64{7, 8} }), false},
		// The VAST's version is its protocol, whatever else the file lists:
		// a 3.0 document listing [3, 7] was bid on an imp taking only 7
		// (an outside conformance audit).
		// delivery: the VAST's <MediaFile delivery="progressive"> against
		// the player's methods (1 streaming, 2 progressive, 3 download).
		{"video delivery streaming only", video(nil), vimp(func(v *ortb.Video) { v.Delivery = []int64{1} }), false},
		{"video delivery progressive", video(nil), vimp(func(v *ortb.Video) { v.Delivery = []int64{1, 2} }), true},
		{"video delivery any", video(nil), vimp(nil), true},
		{"video delivery of a wrapper", video(func(c *CreativeConfig) {
			c.VAST = `<VAST version="3.0"><Ad><Wrapper><VASTAdTagURI><![CDATA[https://t.example/v.xml]]></VASTAdTagURI><Impression><![CDATA[{{imp_url}}]]></Impression><Creatives><Creative><Linear><VideoClicks><ClickTracking><![CDATA[{{click_url}}]]></ClickTracking></VideoClicks></Linear></Creative></Creatives></Wrapper></Ad></VAST>`
			c.MIMEs = []string{"video/mp4"}
		}), vimp(func(v *ortb.Video) { v.Delivery = []int64{1} }), true},
		// video.api: a creative whose every <MediaFile> is a VPAID unit runs
		// only where the player lists VPAID 1.0 or 2.0 (one not listed is
		// not supported).
		{"VPAID only, OMID player", video(func(c *CreativeConfig) { c.VAST = vpaidVAST(false) }), vimp(func(v *ortb.Video) { v.API = []int64{7} }), false},
		{"VPAID only, no api", video(func(c *CreativeConfig) { c.VAST = vpaidVAST(false) }), vimp(nil), false},
		{"VPAID only, VPAID 2.0 player", video(func(c *CreativeConfig) { c.VAST = vpaidVAST(false) }), vimp(func(v *ortb.Video) { v.API = []int64{2, 7} }), true},
		{"VPAID only, VPAID 1.0 player", video(func(c *CreativeConfig) { c.VAST = vpaidVAST(false) }), vimp(func(v *ortb.Video) { v.API = []int64{1} }), true},
		{"VPAID beside an mp4, no api", video(func(c *CreativeConfig) { c.VAST = vpaidVAST(true) }), vimp(nil), true},
		{"mp4, no api", video(nil), vimp(func(v *ortb.Video) { v.API = []int64{7} }), true},
		// MIME types in any letter case (RFC 2045), declared or asked.
		{"video mimes declared in upper case", video(func(c *CreativeConfig) { c.MIMEs = []string{"Video/MP4"} }), vimp(nil), true},
		{"video mimes asked in upper case", video(nil), vimp(func(v *ortb.Video) { v.MIMEs = bss("video/MP4") }), true},
		{"video mimes other type", video(nil), vimp(func(v *ortb.Video) { v.MIMEs = bss("video/webm") }), false},
		{"audio delivery streaming only", audio, aimp(func(a *ortb.Audio) { a.Delivery = []int64{1} }), false},
		{"audio delivery progressive", audio, aimp(func(a *ortb.Audio) { a.Delivery = []int64{2} }), true},
		{"video protocols declared beyond the VAST's", video(func(c *CreativeConfig) { c.Protocols = []int64{3, 7} }), vimp(func(v *ortb.Video) { v.Protocols = []int64{7} }), false},
		{"video protocols declared, the VAST's", video(func(c *CreativeConfig) { c.Protocols = []int64{3, 7} }), vimp(func(v *ortb.Video) { v.Protocols = []int64{3} }), true},
		{"video protocols declared, no version", video(func(c *CreativeConfig) {
			c.VAST = `<VAST>{{imp_url}}{{click_url}}<Duration>00:00:15</Duration><Linear></Linear></VAST>`
			c.Protocols = []int64{7}
		}), vimp(func(v *ortb.Video) { v.Protocols = []int64{7} }), true},
		{"video wrapper protocol", video(func(c *CreativeConfig) {
			c.VAST = `<VAST version="4.0"><Ad><Wrapper><VASTAdTagURI>https://x.example/t</VASTAdTagURI>{{imp_url}}{{click_url}}</Wrapper></Ad></VAST>`
		}), vimp(func(v *ortb.Video) { v.Protocols = []int64{8} }), true},
		{"video plcmt", video(func(c *CreativeConfig) { c.Plcmt = []int64{1} }), vimp(func(v *ortb.Video) { v.Plcmt = 1 }), true},
		{"video plcmt out", video(func(c *CreativeConfig) { c.Plcmt = []int64{1} }), vimp(func(v *ortb.Video) { v.Plcmt = 4 }), false},
		{"video plcmt unknown", video(func(c *CreativeConfig) { c.Plcmt = []int64{1} }), vimp(nil), false},
		// 2.5's placement where plcmt is absent: in-banner, in-article and
		// in-feed are no-content (4); in-stream (1 or 2 in 2.6) and 5
		// (interstitial, 3, or floating beside content, 2) stay unknown.
		{"2.5 in-article as standalone", video(func(c *CreativeConfig) { c.Plcmt = []int64{4} }), vimp(func(v *ortb.Video) { v.Placement = 3 }), true},
		{"2.5 in-banner as standalone", video(func(c *CreativeConfig) { c.Plcmt = []int64{4} }), vimp(func(v *ortb.Video) { v.Placement = 2 }), true},
		{"2.5 in-feed not instream", video(func(c *CreativeConfig) { c.Plcmt = []int64{1, 2} }), vimp(func(v *ortb.Video) { v.Placement = 4 }), false},
		{"2.5 in-stream unknown", video(func(c *CreativeConfig) { c.Plcmt = []int64{1} }), vimp(func(v *ortb.Video) { v.Placement = 1 }), false},
		{"2.5 interstitial or floating unknown", video(func(c *CreativeConfig) { c.Plcmt = []int64{3} }), vimp(func(v *ortb.Video) { v.Placement = 5 }), false},
		{"2.6 plcmt over 2.5 placement", video(func(c *CreativeConfig) { c.Plcmt = []int64{4} }), vimp(func(v *ortb.Video) { v.Placement, v.Plcmt = 3, 2 }), false},
		{"no plcmt on the creative, 2.5 placement", video(nil), vimp(func(v *ortb.Video) { v.Placement = 1 }), true},
		// video.linearity: the VAST says what its ads are. A linear pre-roll
		// was bid on imps that asked for non-linear (overlay) ads only.
		{"linear on linear", video(nil), vimp(func(v *ortb.Video) { v.Linearity = 1 }), true},
		{"linear on non-linear", video(nil), vimp(func(v *ortb.Video) { v.Linearity = 2 }), false},
		{"non-linear on non-linear", video(func(c *CreativeConfig) { c.VAST = nonLinearVAST }), vimp(func(v *ortb.Video) { v.Linearity = 2 }), true},
		{"non-linear on linear", video(func(c *CreativeConfig) { c.VAST = nonLinearVAST }), vimp(func(v *ortb.Video) { v.Linearity = 1 }), false},
		{"unknown linearity, asked", video(func(c *CreativeConfig) { c.VAST = `<VAST version="3.0">{{imp_url}}{{click_url}}</VAST>` }), vimp(func(v *ortb.Video) { v.Linearity = 1 }), false},
		{"unknown linearity, not asked", video(func(c *CreativeConfig) { c.VAST = `<VAST version="3.0">{{imp_url}}{{click_url}}</VAST>` }), vimp(nil), true},
		{"skippable on skippable player", video(func(c *CreativeConfig) { c.Skippable = &yes }), vimp(func(v *ortb.Video) { v.Skip = ortb.True }), true},
		{"skippable, skip unknown", video(func(c *CreativeConfig) { c.Skippable = &yes }), vimp(nil), false},
		{"unskippable on skippable player", video(func(c *CreativeConfig) { c.Skippable = &no }), vimp(func(v *ortb.Video) { v.Skip = ortb.True }), false},
		{"unskippable, skip 0", video(func(c *CreativeConfig) { c.Skippable = &no }), vimp(func(v *ortb.Video) { v.Skip = ortb.False }), true},
		// A skippable creative is attribute 16 (OpenRTB video.skip): an imp
		// whose battr blocks 16 does not get it, whether the file says
		// skippable: true or the VAST's <Linear> has a skipoffset.
		{"skippable, battr 16", video(func(c *CreativeConfig) { c.Skippable = &yes }), vimp(func(v *ortb.Video) { v.Skip, v.BAttr = ortb.True, []int64{16} }), false},
		{"skipoffset, battr 16", video(func(c *CreativeConfig) { c.VAST = skipVAST }), vimp(func(v *ortb.Video) { v.BAttr = []int64{16} }), false},
		{"skipoffset, battr other", video(func(c *CreativeConfig) { c.VAST = skipVAST }), vimp(func(v *ortb.Video) { v.BAttr = []int64{6} }), true},
		{"not skippable, battr 16", video(nil), vimp(func(v *ortb.Video) { v.BAttr = []int64{16} }), true},
		{"first slot", video(func(c *CreativeConfig) { c.SlotInPod = []int64{1} }), vimp(func(v *ortb.Video) { v.PodID, v.SlotInPod = bs("p"), 1 }), true},
		{"first slot, last offered", video(func(c *CreativeConfig) { c.SlotInPod = []int64{1} }), vimp(func(v *ortb.Video) { v.PodID, v.SlotInPod = bs("p"), -1 }), false},
		{"first slot, any slot", video(func(c *CreativeConfig) { c.SlotInPod = []int64{1} }), vimp(func(v *ortb.Video) { v.PodID = bs("p") }), false},
		{"first slot, first or last", video(func(c *CreativeConfig) { c.SlotInPod = []int64{1} }), vimp(func(v *ortb.Video) { v.PodID, v.SlotInPod = bs("p"), 2 }), false},
		{"first or last, first or last", video(func(c *CreativeConfig) { c.SlotInPod = []int64{-1, 1} }), vimp(func(v *ortb.Video) { v.SlotInPod = 2 }), true},
		{"first slot, not in a pod", video(func(c *CreativeConfig) { c.SlotInPod = []int64{1} }), vimp(nil), true},
		{"first pod", video(func(c *CreativeConfig) { c.PodSeq = []int64{1} }), vimp(func(v *ortb.Video) { v.PodSeq = 1 }), true},
		{"first pod, any pod", video(func(c *CreativeConfig) { c.PodSeq = []int64{1} }), vimp(nil), false},
		{"audio first slot", audio, aimp(func(a *ortb.Audio) { a.PodID, a.SlotInPod = bs("b"), 1 }), true},
		{"audio last slot", audio, aimp(func(a *ortb.Audio) { a.PodID, a.SlotInPod = bs("b"), -1 }), false},
		{"audio duration", audio, aimp(func(a *ortb.Audio) { a.MinDuration, a.MaxDuration = 15, 30 }), true},
		{"audio duration out", audio, aimp(func(a *ortb.Audio) { a.MaxDuration = 15 }), false},
		{"audio rqddurs", audio, aimp(func(a *ortb.Audio) { a.RqdDurs = []int64{30} }), true},
		{"audio protocol", audio, aimp(func(a *ortb.Audio) { a.Protocols = []int64{3} }), true},
		{"audio DAAST only", audio, aimp(func(a *ortb.Audio) { a.Protocols = []int64{9, 10} }), false},
		{"audio battr", func(c *Config) { audio(c); c.Creatives[0].Attr = []int64{6} }, aimp(func(a *ortb.Audio) { a.BAttr = []int64{6} }), false},
		// wlang/wlangb (2.6): the ad's declared language must be allowed.
		{"wlang", lang("en"), wlang(bss("de", "EN"), nil), true},
		{"wlang out", lang("en"), wlang(bss("de", "fr"), nil), false},
		{"wlang, language not declared", nil, wlang(bss("de"), nil), true},
		{"wlang, no linguistic content", lang("xx"), wlang(bss("de"), nil), true},
		{"wlangb primary subtag", lang("pt"), wlang(nil, bss("pt-BR")), true},
		{"wlangb out", lang("pt"), wlang(nil, bss("es-MX", "en")), false},
		{"wlang and wlangb both must allow", lang("pt"), wlang(bss("pt"), bss("es")), false},
		{"no wlang", lang("ja"), nil, true},
		{"wlang on video", func(c *Config) { video(nil)(c); c.Creatives[0].Language = "fr" }, func(r *ortb.Request, i *ortb.Imp) {
			vimp(nil)(r, i)
			r.WLang = bss("de")
		}, false},
		// btype: a banner that declares a blocked type does not bid.
		{"btype", btype(3), bimp(1, 3), false},
		{"btype other", btype(3, 4), bimp(1, 2), true},
		{"btype, type not declared", nil, bimp(1, 2, 3, 4), true},
		{"btype out of range ignored", btype(3), bimp(0, 5, 11), true},
		// The markup's own type counts whatever the file declares: a
		// <script> is a JavaScript ad (3), an <iframe> an iframe ad (4).
		{"script markup, btype 3", markup(`<script src="https://cdn.example.com/t.js"></script>`), bimp(3), false},
		{"script markup declared XHTML, btype 3", func(c *Config) {
			markup(`<SCRIPT>var x = 1;</SCRIPT>`)(c)
			c.Creatives[0].BType = []int64{2}
		}, bimp(3), false},
		{"iframe markup, btype 4", markup(`<iframe src="https://cdn.example.com/f.html"></iframe>`), bimp(4), false},
		{"script markup, btype 1 and 4", markup(`<script src="https://cdn.example.com/t.js"></script>`), bimp(1, 4), true},
		{"plain markup, btype 3 and 4", nil, bimp(3, 4), true},
		// banner.api: markup that loads mraid.js runs only where the
		// placement lists MRAID 1.0, 2.0 or 3.0 (one not listed is not
		// supported).
		{"MRAID banner, no api", mraid, nil, false},
		{"MRAID banner, OMID only", mraid, bapi(7), false},
		{"MRAID banner, MRAID 2.0", mraid, bapi(5, 7), true},
		{"MRAID banner, MRAID 3.0", mraid, bapi(6), true},
		{"plain banner, no api", nil, bapi(), true},
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
			got := s.Match(nil, req, imp, monday15, &sc)
			if (len(got) == 1) != c.want || len(got) > 1 {
				t.Fatalf("got %d candidates, want eligible=%v", len(got), c.want)
			}
			if exh := exhaustive(nil, s, req, imp, monday15, &Scratch{}); len(exh) != len(got) {
				t.Errorf("index found %d, exhaustive scan %d", len(got), len(exh))
			}
			var walked []Candidate
			s.Begin(req, imp, monday15, &sc, &rateRanker{s.Campaigns, "USD", map[string]float64{"USD": 1}})
			for ok := true; ok; {
				walked, ok = s.Next(walked, &sc)
			}
			if len(walked) != len(got) {
				t.Errorf("ranked walk found %d, Match %d", len(walked), len(got))
			}
		})
	}
}

// A seat in the Scratch replaces the snapshot's for wseat, bseat and deal
// wseat (a seat per exchange).
func TestScratchSeat(t *testing.T) {
	s := mustCompile(t, []Config{baseConfig("x")}, WithSeat("seat-1"))
	req, imp := siteRequest(), bannerImp(300, 250)
	req.WSeat = bss("seat-2")
	var sc Scratch
	if got := s.Match(nil, req, imp, monday15, &sc); len(got) != 0 {
		t.Fatalf("snapshot seat not in wseat: %d candidates", len(got))
	}
	sc.Seat = bs("seat-2")
	if got := s.Match(nil, req, imp, monday15, &sc); len(got) != 1 {
		t.Fatalf("scratch seat in wseat: %d candidates", len(got))
	}
	req.WSeat, req.BSeat = nil, bss("seat-2")
	if got := s.Match(nil, req, imp, monday15, &sc); len(got) != 0 {
		t.Fatalf("scratch seat in bseat: %d candidates", len(got))
	}
}

// nonLinearVAST is a VAST 3.0 overlay (NonLinearAds) with both trackers.
const nonLinearVAST = `<VAST version="3.0"><Ad id="o"><InLine><AdSystem>t</AdSystem><AdTitle>o</AdTitle>` +
	`<Impression><![CDATA[{{imp_url}}]]></Impression><Creatives><Creative><NonLinearAds><NonLinear width="480" height="70">` +
	`<StaticResource creativeType="image/png"><![CDATA[https://m.example/o.png]]></StaticResource>` +
	`<NonLinearClickThrough><![CDATA[{{click_url}}]]></NonLinearClickThrough></NonLinear></NonLinearAds></Creative></Creatives></InLine></Ad></VAST>`

// An interstitial imp that gives no size gets a full-screen size of the
// creative's, or none; any other sizeless imp gets the creative's first. It
// got the first (a 320x50 banner) on the IAB's own 2.5 sample, imp 2 with
// instl 1 and banner {w:0, h:0} (an outside audit).
func TestSizelessInterstitialGetsAFullScreenSize(t *testing.T) {
	none := &ortb.Banner{}
	for _, c := range []struct {
		sizes []Size
		instl bool
		w, h  int64
		ok    bool
	}{
		{[]Size{{320, 50}, {320, 480}}, false, 320, 50, true},
		{[]Size{{320, 50}, {320, 480}}, true, 320, 480, true},
		{[]Size{{320, 50}, {300, 250}}, true, 0, 0, false},
		{[]Size{{1024, 768}}, true, 1024, 768, true},
	} {
		w, h, ok := bannerSize(c.sizes, none, c.instl)
		if w != c.w || h != c.h || ok != c.ok {
			t.Errorf("sizes %v, instl %v: %dx%d %v; want %dx%d %v", c.sizes, c.instl, w, h, ok, c.w, c.h, c.ok)
		}
	}
	// A size the imp names is taken as it is, interstitial or not.
	if w, h, ok := bannerSize([]Size{{320, 50}}, &ortb.Banner{W: 320, H: 50}, true); !ok || w != 320 || h != 50 {
		t.Errorf("an interstitial naming 320x50: %dx%d %v", w, h, ok)
	}
}

// skipVAST is the 15 s VAST 3.0 inline test creative with a skipoffset: a
// skippable linear ad.
var skipVAST = strings.Replace(VASTInline("v", "v", "https://m.example/v.mp4", 15), "<Linear>", `<Linear skipoffset="00:00:05">`, 1)

// A skippable video creative sends attribute 16 in bid.attr (Creative.Attr),
// and a file that says skippable: false beside a VAST with a skipoffset is
// refused.
func TestSkippableCreativeAttr(t *testing.T) {
	yes, no := true, false
	for _, c := range []struct {
		name      string
		vast      string
		skippable *bool
		attr      []int64
		want      []int64
	}{
		{"skippable: true", VASTInline("v", "v", "https://m.example/v.mp4", 15), &yes, nil, []int64{16}},
		{"skipoffset", skipVAST, nil, []int64{6}, []int64{6, 16}},
		{"already declared", skipVAST, &yes, []int64{16}, []int64{16}},
		{"not skippable", VASTInline("v", "v", "https://m.example/v.mp4", 15), &no, []int64{6}, []int64{6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig("x")
			cfg.Creatives[0] = CreativeConfig{ID: "v", Format: "video", VAST: c.vast, Skippable: c.skippable, Attr: c.attr,
				LandingURL: "https://v.example/", Secure: true}
			s := mustCompile(t, []Config{cfg})
			if got := s.Campaigns[0].Creatives[0].Attr; !slices.Equal(got, c.want) {
				t.Fatalf("attr %v, want %v", got, c.want)
			}
		})
	}
	cfg := baseConfig("x")
	cfg.Creatives[0] = CreativeConfig{ID: "v", Format: "video", VAST: skipVAST, Skippable: &no,
		LandingURL: "https://v.example/", Secure: true}
	if _, err := Compile([]Config{cfg}); err == nil || !strings.Contains(err.Error(), "creatives[0].skippable: false but the VAST's <Linear> has a skipoffset") {
		t.Fatalf("skippable: false with a skipoffset: %v", err)
	}
}

// vpaidVAST is a 15 s VAST 3.0 inline creative whose media file is a VPAID
// JavaScript unit, with an mp4 beside it when mp4.
func vpaidVAST(mp4 bool) string {
	files := `<MediaFile delivery="progressive" type="video/mp4" apiFramework='vpaid' width="640" height="360"><![CDATA[https://m.example/vpaid.js]]></MediaFile>`
	if mp4 {
		files += `<MediaFile delivery="progressive" type="video/mp4" width="640" height="360"><![CDATA[https://m.example/v.mp4]]></MediaFile>`
	}
	return `<VAST version="3.0"><Ad id="v"><InLine><AdSystem>t</AdSystem><AdTitle>v</AdTitle><Impression><![CDATA[{{imp_url}}]]></Impression>` +
		`<Creatives><Creative><Linear><Duration>00:00:15</Duration><VideoClicks><ClickThrough><![CDATA[{{click_url}}]]></ClickThrough></VideoClicks>` +
		`<MediaFiles>` + files + `</MediaFiles></Linear></Creative></Creatives></InLine></Ad></VAST>`
}
