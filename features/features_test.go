package features

import (
	"testing"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// bidTime is Wednesday 2026-11-18 14:30 UTC.
var bidTime = time.Date(2026, 11, 18, 14, 30, 0, 0, time.UTC)

func siteBannerRequest() *ortb.Request {
	return &ortb.Request{
		ID:      []byte("req-1"),
		TMax:    120,
		HasSite: true,
		Site: ortb.Site{
			Domain:    []byte("site-7.example.com"),
			Cat:       [][]byte{[]byte("IAB3-1"), []byte("IAB9")},
			Publisher: ortb.Publisher{ID: []byte("pub-7")},
		},
		HasDevice: true,
		Device: ortb.Device{
			DeviceType: 4, ConnType: 2, OS: []byte("iOS"), Make: []byte("Apple"),
			Language: []byte("en"), DNT: ortb.Unset, LMT: ortb.False,
			IFA: []byte("ifa-1"),
			Geo: ortb.Geo{Country: []byte("USA"), Region: []byte("CA"), UTCOffset: -480, HasUTCOffset: true},
		},
		HasUser: true,
		User: ortb.User{
			ID: []byte("u-1"), Yob: 1990, Gender: []byte("F"),
			Segments: [][]byte{[]byte("s1"), []byte("s2"), []byte("s3")},
		},
		Regs: ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset},
		Imps: []ortb.Imp{{
			ID: []byte("1"), TagID: []byte("tag-3"), BidFloor: 0.5, Secure: ortb.True,
			HasBanner: true,
			Banner:    ortb.Banner{Format: []ortb.Size{{W: 300, H: 250}, {W: 320, H: 50}}, Pos: 1},
		}},
	}
}

func appVideoRequest() *ortb.Request {
	return &ortb.Request{
		ID:     []byte("req-2"),
		HasApp: true,
		App: ortb.App{
			Bundle:    []byte("com.example.app3"),
			Cat:       [][]byte{[]byte("IAB1")},
			Publisher: ortb.Publisher{ID: []byte("pub-3")},
		},
		HasDevice: true,
		Device: ortb.Device{
			DeviceType: 3, OS: []byte("Android"), DNT: ortb.True, LMT: ortb.Unset,
			Geo: ortb.Geo{Country: []byte("JPN"), UTCOffset: 540, HasUTCOffset: true},
		},
		Regs: ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.True},
		Imps: []ortb.Imp{{
			ID: []byte("v"), Secure: ortb.Unset, Instl: true, PrivateAuction: true,
			Deals:    []ortb.Deal{{ID: []byte("d1")}},
			HasVideo: true,
			Video:    ortb.Video{W: 640, H: 480, MaxDuration: 30, Placement: 1},
		}},
	}
}

func extract(req *ortb.Request, userLevel bool) [Width]float32 {
	var row [Width]float32
	ExtractImp(row[:], req, &req.Imps[0], bidTime, userLevel)
	return row
}

func TestExtractImpSlots(t *testing.T) {
	site := extract(siteBannerRequest(), true)
	app := extract(appVideoRequest(), true)
	cases := []struct {
		name string
		row  [Width]float32
		slot int
		want float32
	}{
		{"site country", site, SlotCountry, Bucket(SlotCountry, "usa")},
		{"site os case-folded", site, SlotOS, Bucket(SlotOS, "ios")},
		{"site publisher", site, SlotPublisher, Bucket(SlotPublisher, "pub-7")},
		{"site inventory is domain", site, SlotInventory, Bucket(SlotInventory, "site-7.example.com")},
		{"site category is tier 1", site, SlotCategory, Bucket(SlotCategory, "IAB3")},
		{"site tagid", site, SlotTagID, Bucket(SlotTagID, "tag-3")},
		{"site device type", site, SlotDeviceType, 4},
		{"site conn type", site, SlotConnType, 2},
		{"site local hour (UTC-8)", site, SlotHour, 6},
		{"site local day (Wednesday)", site, SlotDayOfWeek, 3},
		{"site log floor", site, SlotLogFloor, 0.4054651},
		{"site tmax", site, SlotTMax, 120},
		{"site secure", site, SlotSecure, 1},
		{"site is_app", site, SlotIsApp, 0},
		{"site formats banner", site, SlotImpFormats, 1},
		{"site w from format", site, SlotImpW, 300},
		{"site h from format", site, SlotImpH, 250},
		{"site format count", site, SlotFormatCount, 2},
		{"site pos", site, SlotPos, 1},
		{"site lmt", site, SlotLimitAdTrk, 0},
		{"site has user id", site, SlotHasUserID, 1},
		{"site segments", site, SlotSegments, 3},
		{"site age", site, SlotUserAge, 36},
		{"site gender", site, SlotGender, 2},
		{"site user is user.id", site, SlotUser, Bucket(SlotUser, "u-1")},
		{"site no ad slots", site, SlotCampaign, 0},
		{"app inventory is bundle", app, SlotInventory, Bucket(SlotInventory, "com.example.app3")},
		{"app is_app", app, SlotIsApp, 1},
		{"app no region", app, SlotRegion, 0},
		{"app local hour (UTC+9)", app, SlotHour, 23},
		{"app local day", app, SlotDayOfWeek, 3},
		{"app formats video", app, SlotImpFormats, 2},
		{"app video w", app, SlotImpW, 640},
		{"app maxdur", app, SlotVideoMaxDur, 30},
		{"app placement fallback", app, SlotVideoPlcmt, 1},
		{"app deals + private", app, SlotDeals, 1.5},
		{"app instl", app, SlotInstl, 1},
		{"app secure unset", app, SlotSecure, -1},
		{"app dnt", app, SlotLimitAdTrk, 1},
		{"app tmax absent", app, SlotTMax, 0},
		{"app no user", app, SlotHasUserID, 0},
		{"app no user slot", app, SlotUser, 0},
		{"app no floor", app, SlotLogFloor, 0},
	}
	for _, c := range cases {
		if got := c.row[c.slot]; got != c.want {
			t.Errorf("%s: slot %d (%s) = %v, want %v", c.name, c.slot, Slots[c.slot].Name, got, c.want)
		}
	}
}

func TestCategoricalSlotsInRange(t *testing.T) {
	for _, req := range []*ortb.Request{siteBannerRequest(), appVideoRequest()} {
		row := extract(req, true)
		ad := NewAd("camp-1", "cr-1", "adv-1.example", 1, 300, 250)
		SetAd(row[:], &ad)
		for i, s := range Slots {
			v := row[i]
			if s.Buckets > 0 && (v < 0 || v >= float32(s.Buckets) || v != float32(int(v))) {
				t.Errorf("slot %d (%s) = %v outside [0,%d) or not an integer", i, s.Name, v, s.Buckets)
			}
		}
	}
}

// TestUserLevel: userLevel false (the request does not allow
// personalization: privacy.Decision) zeroes exactly the user-level slots, and
// the privacy signals themselves change no slot.
func TestUserLevel(t *testing.T) {
	cases := []struct {
		name string
		regs ortb.Regs
		cons string
	}{
		{"no regs", ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset}, ""},
		{"coppa", ortb.Regs{COPPA: ortb.True, GDPR: ortb.Unset}, ""},
		{"gdpr with a consent string", ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.True}, "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"},
		{"us_privacy and gpp", ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset, USPrivacy: []byte("1YYN"), GPP: []byte("DBABTA~1YYN"), GPPSID: []int64{6}}, ""},
	}
	plain := extract(siteBannerRequest(), true)
	for _, c := range cases {
		req := siteBannerRequest()
		req.Regs = c.regs
		req.User.Consent = []byte(c.cons)
		for _, userLevel := range []bool{true, false} {
			row := extract(req, userLevel)
			for i, s := range Slots[:ImpWidth] {
				want := plain[i]
				if s.User && !userLevel {
					want = 0
				}
				if row[i] != want {
					t.Errorf("%s, userLevel %v: slot %s = %v, want %v", c.name, userLevel, s.Name, row[i], want)
				}
			}
		}
	}
	n := 0
	for i, s := range Slots[:ImpWidth] {
		if s.User && plain[i] != 0 {
			n++
		}
	}
	if n < 4 {
		t.Fatalf("the fixture fills %d user slots: too few for this test to mean much", n)
	}
}

func TestUserSlotSource(t *testing.T) {
	cases := []struct {
		name           string
		id, buyer, ifa string
		lmt            bool
		atts           int64
		want           string // "" means slot 0
	}{
		{"buyeruid first", "u-1", "b-1", "ifa-1", false, 0, "b-1"},
		{"then user.id", "u-1", "", "ifa-1", false, 0, "u-1"},
		{"then ifa", "", "", "ifa-1", false, 0, "ifa-1"},
		{"zero ifa is no one", "", "", "00000000-0000-0000-0000-000000000000", false, 0, ""},
		// Limit ad tracking: the advertising id is no one (as for the
		// frequency key); it was the user slot, and went to the row log.
		{"ifa under lmt is no one", "", "", "ifa-1", true, 0, ""},
		{"user.id under lmt", "u-1", "", "ifa-1", true, 0, "u-1"},
		// App Tracking Transparency restricted or denied: as lmt.
		{"ifa with att denied", "", "", "ifa-1", false, 2, ""},
		{"ifa with att restricted", "", "", "ifa-1", false, 1, ""},
		{"ifa with att authorized", "", "", "ifa-1", false, 3, "ifa-1"},
		{"none", "", "", "", false, 0, ""},
		{"case folded", "U-ABC", "", "", false, 0, "u-abc"},
	}
	for _, c := range cases {
		req := siteBannerRequest()
		req.User.ID, req.User.BuyerUID, req.Device.IFA = []byte(c.id), []byte(c.buyer), []byte(c.ifa)
		if c.lmt {
			req.Device.LMT = ortb.True
		}
		req.Device.ATTS = c.atts
		want := float32(0)
		if c.want != "" {
			want = Bucket(SlotUser, c.want)
		}
		if got := extract(req, true)[SlotUser]; got != want {
			t.Errorf("%s: user slot = %v, want %v", c.name, got, want)
		}
		if has := extract(req, true)[SlotHasUserID]; has != float32(b2f(c.want != "")) {
			t.Errorf("%s: has user id = %v", c.name, has)
		}
		if got := extract(req, false)[SlotUser]; got != 0 {
			t.Errorf("%s: user slot without user-level consent = %v, want 0", c.name, got)
		}
	}
}

func TestExtractOverwritesStaleRow(t *testing.T) {
	var row [Width]float32
	for i := range row {
		row[i] = 99
	}
	req := appVideoRequest()
	ExtractImp(row[:], req, &req.Imps[0], bidTime, false)
	want := extract(req, false)
	if [ImpWidth]float32(row[:ImpWidth]) != [ImpWidth]float32(want[:ImpWidth]) {
		t.Fatalf("stale values survived:\n got %v\nwant %v", row[:ImpWidth], want[:ImpWidth])
	}
	if row[ImpWidth] != 99 {
		t.Errorf("ExtractImp wrote past ImpWidth")
	}
}

func TestNoDeviceNoContext(t *testing.T) {
	req := &ortb.Request{Imps: []ortb.Imp{{ID: []byte("1"), HasNative: true, Secure: ortb.Unset}},
		Regs: ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset}}
	row := extract(req, true)
	for slot, want := range map[int]float32{
		SlotIsApp: -1, SlotHour: -1, SlotDayOfWeek: -1, SlotLimitAdTrk: -1,
		SlotImpFormats: 8, SlotCountry: 0, SlotImpSizeCat: 0, SlotPublisher: 0,
	} {
		if row[slot] != want {
			t.Errorf("slot %s = %v, want %v", Slots[slot].Name, row[slot], want)
		}
	}
}

// The parser folds user.geo into Device.Geo without a device object.
func TestGeoWithoutDevice(t *testing.T) {
	req := siteBannerRequest()
	req.HasDevice = false
	req.Device = ortb.Device{DNT: ortb.Unset, LMT: ortb.Unset, HasGeo: true,
		Geo: ortb.Geo{Country: []byte("GBR"), UTCOffset: 0, HasUTCOffset: true}}
	row := extract(req, true)
	for slot, want := range map[int]float32{
		SlotCountry: Bucket(SlotCountry, "GBR"), SlotHour: 14, SlotDayOfWeek: 3,
		SlotOS: 0, SlotDeviceType: 0, SlotLimitAdTrk: -1,
	} {
		if row[slot] != want {
			t.Errorf("slot %s = %v, want %v", Slots[slot].Name, row[slot], want)
		}
	}
}

func TestLocalHourDay(t *testing.T) {
	cases := []struct {
		now       time.Time
		off       int64
		hour, day float32
	}{
		{time.Date(2026, 11, 18, 14, 30, 0, 0, time.UTC), 0, 14, 3},
		{time.Date(2026, 11, 18, 1, 0, 0, 0, time.UTC), -300, 20, 2},
		{time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC), 330, 4, 0},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), 0, 23, 3},
	}
	for _, c := range cases {
		h, d := localHourDay(c.now, c.off)
		if h != c.hour || d != c.day {
			t.Errorf("localHourDay(%v, %d) = %v,%v want %v,%v", c.now, c.off, h, d, c.hour, c.day)
		}
		lt := c.now.In(time.FixedZone("x", int(c.off)*60))
		if float32(lt.Hour()) != h || float32(lt.Weekday()) != d {
			t.Errorf("localHourDay disagrees with time package at %v", lt)
		}
	}
}

func TestAdSlots(t *testing.T) {
	req := siteBannerRequest()
	imp := extract(req, true)
	cases := []struct {
		name string
		ad   Ad
		fit  float32
	}{
		{"banner same size", NewAd("c1", "cr1", "adv.example", 1, 300, 250), 1},
		{"banner other size", NewAd("c1", "cr2", "adv.example", 1, 728, 90), 0},
		{"video into banner imp", NewAd("c1", "cr3", "adv.example", 2, 0, 0), 0},
		{"native into banner imp", NewAd("c1", "cr4", "adv.example", 4, 0, 0), 0},
		{"unknown mtype", NewAd("c1", "cr5", "adv.example", 0, 300, 250), 0},
	}
	for _, c := range cases {
		row := imp
		SetAd(row[:], &c.ad)
		if row[SlotAdFit] != c.fit {
			t.Errorf("%s: ad_fit = %v, want %v", c.name, row[SlotAdFit], c.fit)
		}
		if [ImpWidth]float32(row[:ImpWidth]) != [ImpWidth]float32(imp[:ImpWidth]) {
			t.Errorf("%s: SetAd changed imp slots", c.name)
		}
		appended := AppendRow(nil, imp[:], &c.ad)
		if [Width]float32(appended) != row {
			t.Errorf("%s: AppendRow and SetAd disagree", c.name)
		}
	}
	a := NewAd("c1", "cr1", "adv.example", 1, 300, 250)
	b := NewAd("c2", "cr1", "adv.example", 1, 300, 250)
	if a.slots[SlotCreative-ImpWidth] == b.slots[SlotCreative-ImpWidth] {
		t.Errorf("creative slot ignores the campaign id")
	}
	if a.slots[SlotAdSizeCat-ImpWidth] != imp[SlotImpSizeCat] {
		t.Errorf("ad size and imp size hash differently for 300x250")
	}
	var zero Ad
	row := imp
	SetAd(row[:], &zero)
	for i := ImpWidth; i < Width; i++ {
		if row[i] != 0 {
			t.Errorf("zero Ad wrote slot %s = %v", Slots[i].Name, row[i])
		}
	}
}

func TestAppendRowBatch(t *testing.T) {
	imp := extract(siteBannerRequest(), true)
	ads := []Ad{NewAd("c1", "a", "x", 1, 300, 250), NewAd("c2", "b", "y", 1, 320, 50)}
	rows := make([]float32, 0, 2*Width)
	for i := range ads {
		rows = AppendRow(rows, imp[:], &ads[i])
	}
	if len(rows) != 2*Width {
		t.Fatalf("len = %d", len(rows))
	}
	if rows[Width+SlotCampaign] != Bucket(SlotCampaign, "c2") || rows[SlotCampaign] != Bucket(SlotCampaign, "c1") {
		t.Errorf("rows out of order")
	}
}

func b2f(b bool) int {
	if b {
		return 1
	}
	return 0
}
