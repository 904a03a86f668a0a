package campaigns

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Shared traffic vocabulary (the simulator draws from the same values).
var (
	VocabCountries   = []string{"USA", "GBR", "DEU", "FRA", "CAN", "BRA", "IND", "JPN", "AUS", "ESP"}
	VocabOS          = []string{"iOS", "Android", "Windows", "macOS", "Linux"}
	VocabBannerSizes = []string{"300x250", "728x90", "320x50", "300x600", "160x600", "970x250", "320x480"}
	VocabVideoSizes  = []string{"640x360", "1280x720"}
	VocabLanguages   = []string{"en", "de", "fr", "es", "ja", "pt", "it"}
	VocabCities      = []string{"new york", "london", "berlin", "paris", "toronto", "sao paulo", "mumbai", "tokyo", "sydney", "madrid"}
	VocabMetros      = []string{"501", "803", "602", "807", "504"} // Nielsen DMA codes
	VocabCarriers    = []string{"verizon", "t-mobile", "at&t", "vodafone", "orange"}
	VocabVenueTypes  = []string{"transit.airports", "transit.subway", "retail.malls", "outdoor.billboards", "office_buildings"}
)

// Generator ranges, as the simulator draws them: publishers (pub-N,
// site-N.example.com, com.example.appN) 1..1000, deals 1..100, segments 1..50.
const (
	genInventory = 1000
	genDeals     = 100
	genSegments  = 50
)

// BannerMarkup is a banner template with both trackers.
func BannerMarkup(img string, w, h int64) string {
	return fmt.Sprintf(`<a href="{{click_url}}" target="_blank"><img src="%s" width="%d" height="%d" alt=""></a>`+
		`<img src="{{imp_url}}" width="1" height="1" style="display:none" alt="">`, img, w, h)
}

// VASTInline is a VAST 3.0 inline linear template with both trackers and
// one video/mp4 media file.
func VASTInline(adID, title, mediaURL string, seconds int) string {
	return VASTInlineMedia(adID, title, mediaURL, `type="video/mp4" width="1280" height="720"`, seconds)
}

// VASTInlineMedia is VASTInline with the media file's attributes beside
// delivery (its type and, for video, its size).
func VASTInlineMedia(adID, title, mediaURL, attrs string, seconds int) string {
	return fmt.Sprintf(`<VAST version="3.0"><Ad id="%s"><InLine><AdSystem>openbidder</AdSystem><AdTitle>%s</AdTitle>`+
		`<Impression><![CDATA[{{imp_url}}]]></Impression><Creatives><Creative><Linear><Duration>00:00:%02d</Duration>`+
		`<VideoClicks><ClickThrough><![CDATA[{{click_url}}]]></ClickThrough></VideoClicks><MediaFiles>`+
		`<MediaFile delivery="progressive" %s><![CDATA[%s]]></MediaFile>`+
		`</MediaFiles></Linear></Creative></Creatives></InLine></Ad></VAST>`, adID, title, seconds, attrs, mediaURL)
}

// Generate returns n valid, varied campaign configs; the same (n, seed)
// always gives the same configs. Most campaigns are narrowly targeted
// (publishers, sites, apps, deals, segments), as large real sets are, so a
// request is eligible for a few of them.
func Generate(n int, seed int64) []Config {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed_0f_ca4a1))
	out := make([]Config, n)
	for i := range out {
		out[i] = generateOne(r, i)
		// The 2.6 fields draw from their own stream, so adding them left
		// every other field of a generated set as it was.
		addTargeting26(rand.New(rand.NewPCG(uint64(seed), 0x26_0000_0000+uint64(i))), &out[i])
	}
	return out
}

// addTargeting26 adds the newer targeting and creative fields to a few
// campaigns each, as real sets use them: languages, cities, metros,
// connection types, carriers, rewarded imps, DOOH screens and venues,
// video placements, skippability, pod positions, icon sizes, ad languages
// and banner types.
func addTargeting26(r *rand.Rand, c *Config) {
	t := &c.Targeting
	yes, no := true, false
	switch k := r.IntN(100); {
	case k < 8:
		t.Languages = pick(r, VocabLanguages, 1+r.IntN(2))
	case k < 11:
		t.Cities = pick(r, VocabCities, 1+r.IntN(2))
	case k < 13:
		t.Metros = pick(r, VocabMetros, 1+r.IntN(3))
	case k < 18:
		t.ConnectionTypes = [][]int64{{2}, {1, 2}, {4, 5, 6, 7}}[r.IntN(3)]
	case k < 20:
		t.Carriers = pick(r, VocabCarriers, 1+r.IntN(2))
	case k < 23:
		t.Rewarded = &yes
	case k < 25:
		t.Rewarded = &no
	case k < 27 && len(t.SiteDomains.Allow) == 0 && len(t.AppBundles.Allow) == 0:
		t.Inventory = []string{"dooh"}
		if r.IntN(2) == 0 {
			t.VenueTypes = pick(r, VocabVenueTypes, 1+r.IntN(2))
		}
	}
	for i := range c.Creatives {
		cr := &c.Creatives[i]
		switch cr.Format {
		case "video":
			switch k := r.IntN(100); {
			case k < 20:
				cr.Plcmt = []int64{1}
			case k < 25:
				cr.Plcmt = []int64{1, 2}
			}
			switch k := r.IntN(100); {
			case k < 15:
				cr.Skippable = &yes
			case k < 25:
				cr.Skippable = &no
			}
			fallthrough
		case "audio":
			switch k := r.IntN(100); {
			case k < 5:
				cr.SlotInPod = []int64{1}
			case k < 10:
				cr.PodSeq = []int64{1}
			case k < 20:
				cr.Protocols = []int64{3} // the template is VAST 3.0 inline
			}
		case "native":
			if r.IntN(3) == 0 {
				cr.Native.IconW, cr.Native.IconH = 80, 80
			}
			if r.IntN(10) == 0 {
				cr.Native.ImageW, cr.Native.ImageH = 600, 600
			}
		}
	}
	// A declared ad language (wlang, wlangb) and banner type (btype), drawn
	// after the fields above so that those stay as they were.
	for i := range c.Creatives {
		cr := &c.Creatives[i]
		if r.IntN(5) == 0 {
			cr.Language = VocabLanguages[r.IntN(len(VocabLanguages))]
		}
		if cr.Format == "banner" && r.IntN(4) == 0 {
			cr.BType = [][]int64{{2}, {3}, {2, 4}}[r.IntN(3)]
		}
	}
}

func pick[T any](r *rand.Rand, from []T, k int) []T {
	idx := r.Perm(len(from))[:min(k, len(from))]
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = from[j]
	}
	return out
}

func numbered(r *rand.Rand, prefix, suffix string, max, k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = prefix + strconv.Itoa(1+r.IntN(max)) + suffix
	}
	return out
}

func generateOne(r *rand.Rand, i int) Config {
	id := fmt.Sprintf("gen-%05d", i)
	adv := fmt.Sprintf("advertiser-%d.example", i%397)
	c := Config{
		ID:         id,
		Advertiser: fmt.Sprintf("Advertiser %d", i%397),
		ADomain:    []string{adv},
		Currency:   []string{"USD", "USD", "USD", "USD", "USD", "USD", "EUR", "GBP"}[r.IntN(8)],
		MaxBidCPM:  Amount(FormatMicros(int64(2+r.IntN(18)) * 500_000)),
		Budget:     BudgetConfig{Daily: Amount(FormatMicros(int64(50+r.IntN(451)) * MicrosPerUnit))},
		Pacing:     PacingConfig{Mode: []string{"even", "even", "forecast", "asap"}[r.IntN(4)]},
	}
	if r.IntN(20) == 0 {
		c.Status = "paused"
	}
	maxBid, _ := ParseMicros(string(c.MaxBidCPM))
	switch k := r.IntN(20); {
	case k < 10:
		c.BidStrategy = StrategyConfig{Kind: "fixed_cpm", CPM: Amount(FormatMicros(maxBid * int64(5+r.IntN(6)) / 10))}
	case k < 17:
		c.BidStrategy = StrategyConfig{Kind: "target_cpc", CPC: Amount(FormatMicros(int64(1+r.IntN(20)) * 100_000))}
	default:
		c.BidStrategy = StrategyConfig{Kind: "target_cpa", CPA: Amount(FormatMicros(int64(5+r.IntN(50)) * MicrosPerUnit)), ConversionRate: 0.02}
	}
	if r.IntN(4) == 0 {
		c.FrequencyCap = FreqCapConfig{Count: 1 + r.IntN(10), Window: []string{"1h", "24h", "168h"}[r.IntN(3)]}
	}
	c.Targeting = generateTargeting(r)
	nc := 1 + r.IntN(3)
	for j := range nc {
		c.Creatives = append(c.Creatives, generateCreative(r, fmt.Sprintf("%s-c%d", id, j)))
	}
	return c
}

func generateTargeting(r *rand.Rand) TargetingConfig {
	var t TargetingConfig
	switch k := r.IntN(100); {
	case k < 5: // broad reach
	case k < 55:
		t.Publishers = numbered(r, "pub-", "", genInventory, 1+r.IntN(3))
	case k < 70:
		t.Inventory = []string{"site"}
		t.SiteDomains.Allow = numbered(r, "site-", ".example.com", genInventory, 1+r.IntN(5))
	case k < 80:
		t.Inventory = []string{"app"}
		t.AppBundles.Allow = numbered(r, "com.example.app", "", genInventory, 1+r.IntN(5))
	case k < 85:
		f := false
		t.OpenAuction = &f
		t.Deals = numbered(r, "deal-", "", genDeals, 1+r.IntN(2))
	case k < 93:
		t.Segments = numbered(r, "seg-", "", genSegments, 1+r.IntN(3))
	default:
		t.Countries = pick(r, VocabCountries, 1)
		t.OS = pick(r, VocabOS, 1)
		t.DeviceTypes = []int64{int64(1 + r.IntN(7))}
	}
	if r.IntN(20) == 0 && len(t.Deals) == 0 { // preferred deals on top of the open auction
		t.Deals = numbered(r, "deal-", "", genDeals, 1)
	}
	if r.IntN(3) == 0 {
		t.Countries = pick(r, VocabCountries, 1+r.IntN(4))
	}
	if r.IntN(5) == 0 {
		t.DeviceTypes = []int64{1, 4}[:1+r.IntN(2)]
	}
	if r.IntN(5) == 0 {
		t.OS = pick(r, VocabOS, 1+r.IntN(2))
	}
	if r.IntN(10) == 0 {
		t.Categories.Block = []string{"IAB25", "IAB26"}
	}
	if r.IntN(10) == 0 {
		t.Dayparting = &DaypartConf{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Hours: []int{8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}}
	}
	return t
}

func generateCreative(r *rand.Rand, id string) CreativeConfig {
	cr := CreativeConfig{
		ID:         id,
		LandingURL: "https://shop.example.com/landing/" + id,
		Cat:        []string{fmt.Sprintf("IAB%d", 1+r.IntN(24))},
		Secure:     true,
	}
	switch k := r.IntN(100); {
	case k < 72:
		cr.Format = "banner"
		cr.Sizes = pick(r, VocabBannerSizes, 1+r.IntN(2))
		var w, h int64
		fmt.Sscanf(cr.Sizes[0], "%dx%d", &w, &h)
		cr.Markup = BannerMarkup("https://cdn.example.com/img/"+id+".png", w, h)
	case k < 87:
		cr.Format = "video"
		cr.Sizes = pick(r, VocabVideoSizes, 1)
		cr.VAST = VASTInline(id, "Generated "+id, "https://cdn.example.com/video/"+id+".mp4", 15+15*r.IntN(2))
	case k < 98:
		cr.Format = "native"
		cr.Native = &NativeConfig{
			Title: "Generated offer " + id, Description: "A generated native ad.",
			ImageURL: "https://cdn.example.com/native/" + id + ".jpg", ImageW: 1200, ImageH: 627,
			IconURL: "https://cdn.example.com/icon/" + id + ".png", CTA: "Learn more", Sponsored: "Generated",
		}
	default:
		cr.Format = "audio"
		cr.VAST = VASTInlineMedia(id, "Audio "+id, "https://cdn.example.com/audio/"+id+".mp4", `type="audio/mp4"`, 30)
		cr.MIMEs = []string{"audio/mp4"}
	}
	return cr
}
