package campaigns

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

func bs(s string) []byte { return []byte(s) }

func bss(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// baseConfig is a valid campaign with one 300x250 banner and no targeting.
func baseConfig(id string) Config {
	return Config{
		ID: id, Advertiser: "Test " + id, ADomain: []string{id + ".example"},
		BidStrategy: StrategyConfig{Kind: "fixed_cpm", CPM: "1.50"},
		MaxBidCPM:   "3", Budget: BudgetConfig{Daily: "100"},
		Creatives: []CreativeConfig{{
			ID: id + "-c", Format: "banner", Sizes: []string{"300x250"},
			Markup:     BannerMarkup("https://cdn.example.com/a.png", 300, 250),
			LandingURL: "https://" + id + ".example/", Cat: []string{"IAB3-1"}, Secure: true,
		}},
	}
}

func mustCompile(t testing.TB, cfgs []Config, opts ...Option) *Snapshot {
	t.Helper()
	s, err := Compile(cfgs, opts...)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

// siteRequest is a desktop request from the USA on site-1 of pub-1.
func siteRequest() *ortb.Request {
	return &ortb.Request{
		ID: bs("req-1"), AT: 1,
		HasSite: true,
		Site: ortb.Site{Domain: bs("site-1.example.com"), Cat: bss("IAB1-2"),
			Publisher: ortb.Publisher{ID: bs("pub-1")}},
		HasDevice: true,
		Device: ortb.Device{DeviceType: 2, OS: bs("Windows"),
			Geo: ortb.Geo{Country: bs("USA"), Region: bs("CA")}},
		HasUser: true,
		User:    ortb.User{ID: bs("u1"), Segments: bss("seg-1")},
		Regs:    ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset},
	}
}

func appRequest() *ortb.Request {
	r := siteRequest()
	r.HasSite, r.Site = false, ortb.Site{}
	r.HasApp = true
	r.App = ortb.App{Bundle: bs("com.example.app1"), Cat: bss("IAB9"), Publisher: ortb.Publisher{ID: bs("pub-2")}}
	r.Device.DeviceType, r.Device.OS = 4, bs("Android")
	return r
}

func bannerImp(w, h int64) *ortb.Imp {
	return &ortb.Imp{ID: bs("1"), HasBanner: true, Banner: ortb.Banner{W: w, H: h}, Secure: ortb.Unset}
}

// randomRequest draws a request from the shared vocabulary, skewed towards
// low publisher numbers like the simulator's Zipf publishers.
func randomRequest(r *rand.Rand) (*ortb.Request, *ortb.Imp) {
	req := &ortb.Request{ID: bs("r"), Regs: ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset}}
	n := 1 + min(r.IntN(genInventory), r.IntN(genInventory))
	pub := bs("pub-" + strconv.Itoa(n))
	cat := bss("IAB" + strconv.Itoa(1+r.IntN(26)) + "-" + strconv.Itoa(1+r.IntN(5)))
	switch k := r.IntN(20); {
	case k < 13:
		req.HasSite = true
		req.Site = ortb.Site{Domain: bs("site-" + strconv.Itoa(n) + ".example.com"), Cat: cat, Publisher: ortb.Publisher{ID: pub}}
	case k < 19:
		req.HasApp = true
		req.App = ortb.App{Bundle: bs("com.example.app" + strconv.Itoa(n)), Cat: cat, Publisher: ortb.Publisher{ID: pub}}
	default:
		req.HasDOOH = true
		req.DOOH = ortb.DOOH{Publisher: ortb.Publisher{ID: pub}, VenueType: bss(VocabVenueTypes[r.IntN(len(VocabVenueTypes))])}
	}
	if r.IntN(20) == 0 { // another taxonomy (IAB Content 2.2)
		req.Site.CatTax, req.App.CatTax = 6, 6
		req.Site.Cat, req.App.Cat = bss("483"), bss("483")
	}
	req.HasDevice = true
	req.Device = ortb.Device{DeviceType: int64(1 + r.IntN(7)), OS: bs(VocabOS[r.IntN(len(VocabOS))]),
		Geo: ortb.Geo{Country: bs(VocabCountries[r.IntN(len(VocabCountries))])}}
	d := &req.Device
	switch k := r.IntN(10); {
	case k < 6:
		d.Language = bs(VocabLanguages[r.IntN(len(VocabLanguages))])
	case k < 7:
		d.LangB = bs(strings.ToUpper(VocabLanguages[r.IntN(len(VocabLanguages))]) + "-XX")
	}
	if r.IntN(3) == 0 {
		d.Geo.City = bs(strings.ToUpper(VocabCities[r.IntN(len(VocabCities))]))
	}
	if r.IntN(5) == 0 {
		d.Geo.Metro = bs(VocabMetros[r.IntN(len(VocabMetros))])
	}
	if r.IntN(10) < 7 {
		d.ConnType = int64(r.IntN(8))
	}
	if r.IntN(3) == 0 {
		d.Carrier = bs(VocabCarriers[r.IntN(len(VocabCarriers))])
	}
	req.HasUser = true
	for range 3 {
		req.User.Segments = append(req.User.Segments, bs("seg-"+strconv.Itoa(1+r.IntN(genSegments))))
	}
	if r.IntN(4) == 0 {
		req.Regs.GDPR = ortb.True
		if r.IntN(2) == 0 {
			req.User.Consent = bs("CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA")
		}
	}
	req.BCat = bss("IAB25", "IAB26", "IAB7-39")
	if r.IntN(30) == 0 {
		req.CatTax, req.BCat = 6, bss("1005")
	}
	imp := &ortb.Imp{ID: bs("1"), Secure: ortb.True, BidFloor: 0.5, Rwdd: r.IntN(8) == 0}
	switch k := r.IntN(11); {
	case k < 7:
		imp.HasBanner = true
		var w, h int64
		sz := VocabBannerSizes[r.IntN(len(VocabBannerSizes))]
		w, h = parseSize(sz)
		imp.Banner = ortb.Banner{W: w, H: h}
		if r.IntN(2) == 0 {
			w2, h2 := parseSize(VocabBannerSizes[r.IntN(len(VocabBannerSizes))])
			imp.Banner.Format = []ortb.Size{{W: w, H: h}, {W: w2, H: h2}}
		}
	case k < 9:
		imp.HasVideo = true
		imp.Video = randomVideo(r)
	case k < 10:
		imp.HasNative = true
		imp.Native = randomNative(r)
	default:
		imp.HasAudio = true
		imp.Audio = ortb.Audio{MIMEs: bss("audio/mp4"), Pod: randomPod(r)}
		if r.IntN(2) == 0 {
			imp.Audio.MinDuration, imp.Audio.MaxDuration = 10, 30
		}
	}
	if r.IntN(10) == 0 {
		imp.Deals = []ortb.Deal{{ID: bs("deal-" + strconv.Itoa(1+r.IntN(genDeals)))}}
		imp.PrivateAuction = r.IntN(2) == 0
	}
	return req, imp
}

// randomVideo is a video imp with a spread of durations, protocols,
// placements, skippability and pod positions.
func randomVideo(r *rand.Rand) ortb.Video {
	v := ortb.Video{MIMEs: bss("video/mp4"), W: 640, H: 360, Skip: []int8{ortb.Unset, ortb.True, ortb.False}[r.IntN(3)],
		Plcmt: int64(r.IntN(5)), Pod: randomPod(r)}
	if r.IntN(2) == 0 {
		v.MinDuration, v.MaxDuration = 5, []int64{15, 30, 60}[r.IntN(3)]
	}
	switch r.IntN(4) {
	case 0:
		v.Protocols = []int64{2, 3, 5, 6}
	case 1:
		v.Protocols = []int64{7, 8}
	}
	return v
}

func randomPod(r *rand.Rand) ortb.Pod {
	var p ortb.Pod
	if r.IntN(3) == 0 {
		p.PodID = bs("pod-1")
		p.SlotInPod = []int64{0, 1, -1, 2}[r.IntN(4)]
		p.PodSeq = []int64{0, 1, -1}[r.IntN(3)]
	}
	if r.IntN(6) == 0 {
		p.RqdDurs = [][]int64{{15}, {30}, {15, 30}}[r.IntN(3)]
	}
	if r.IntN(10) == 0 {
		p.PodDur = []int64{15, 60}[r.IntN(2)]
	}
	return p
}

// randomNative is a native imp whose request asks for a title, a main
// image and sometimes an icon and a description, each sometimes required.
func randomNative(r *rand.Rand) ortb.Native {
	n := ortb.Native{Status: ortb.NativeOK}
	switch r.IntN(10) {
	case 0:
		return n // no assets: the default layout
	case 1:
		n.Status = ortb.NativeBad
		return n
	}
	n.Assets = []ortb.NativeAsset{{ID: 1, Required: r.IntN(4) > 0, Kind: ortb.AssetTitle, Len: []int64{0, 20, 90}[r.IntN(3)]}}
	img := ortb.NativeAsset{ID: 2, Required: r.IntN(2) == 0, Kind: ortb.AssetImg, Type: 3}
	if r.IntN(2) == 0 {
		img.W, img.H = 1200, 627
	} else {
		img.WMin, img.HMin = 600, 314
	}
	n.Assets = append(n.Assets, img)
	if r.IntN(3) == 0 {
		n.Assets = append(n.Assets, ortb.NativeAsset{ID: 3, Required: r.IntN(3) == 0, Kind: ortb.AssetImg, Type: 1, W: 80, H: 80})
	}
	if r.IntN(2) == 0 {
		n.Assets = append(n.Assets, ortb.NativeAsset{ID: 4, Kind: ortb.AssetData, Type: 2, Len: 140})
	}
	return n
}

func parseSize(s string) (int64, int64) {
	for i := 0; i < len(s); i++ {
		if s[i] == 'x' {
			w, _ := strconv.ParseInt(s[:i], 10, 64)
			h, _ := strconv.ParseInt(s[i+1:], 10, 64)
			return w, h
		}
	}
	return 0, 0
}
