package ortb

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prebid/openrtb/v20/openrtb2"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, p *Parser, req *Request, body []byte) {
	t.Helper()
	if err := p.Parse(body, req); err != nil {
		t.Fatalf("Parse: %v", err)
	}
}

func TestParseFixtures(t *testing.T) {
	const tcf = "CPzHq4APzHq4AAHABBENAwEsAP_gAEPgAAAAJ9NV_H__bX9j-_5_aft0eY1P9_r37uQzDhfNk-8F3L_W_LwX52E7NF36tq4KmR4ku1LBIUNlHMHUDUmwaokVryHsak2cpzNKJ7BEknMZOydYGF9vmxtj-QKY7_5_d3bx2D-t_9v239z3z81Xn3d53-_03LCdV5_9Dfn9fR_bc9KPt_58v8v8_____3_e__3_7997BB8CAAAAAA"
	f := func(name string, check func(t *testing.T, r *Request)) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			var p Parser
			var r Request
			mustParse(t, &p, &r, readFixture(t, name))
			check(t, &r)
		})
	}
	f("site_banner.json", func(t *testing.T, r *Request) {
		eq(t, "id", string(r.ID), "a3f9c2e1-7b4d-4e8a-9c1f-2d6b8e0a5f31")
		eq(t, "at", r.AT, int64(1))
		eq(t, "tmax", r.TMax, int64(120))
		eq(t, "has site/app", [2]bool{r.HasSite, r.HasApp}, [2]bool{true, false})
		eq(t, "publisher", string(r.Publisher().ID), "pub-5521")
		imp := &r.Imps[0]
		eq(t, "floor", imp.BidFloor, 0.45)
		eq(t, "secure", imp.Secure, True)
		eq(t, "formats", imp.Banner.Format, []Size{{728, 90}, {970, 90}})
		eq(t, "battr", imp.Banner.BAttr, []int64{1, 3, 8, 9, 10, 14})
		eq(t, "media", imp.MediaTypes(), uint8(1<<MediaBanner))
		eq(t, "geo", string(r.Device.Geo.City), "New York")
		eq(t, "utcoffset", [2]any{r.Device.Geo.HasUTCOffset, r.Device.Geo.UTCOffset}, [2]any{true, int64(-240)})
		eq(t, "segments", joined(r.User.Segments), "seg-sports,seg-auto-intender")
		eq(t, "bcat", joined(r.BCat), "IAB25,IAB26,IAB7-39")
		eq(t, "regs", [2]int8{r.Regs.COPPA, r.Regs.GDPR}, [2]int8{False, False})
	})
	f("allowed_languages_26.json", func(t *testing.T, r *Request) {
		eq(t, "wlang", joined(r.WLang), "en,DE")
		eq(t, "wlangb", joined(r.WLangB), "pt-BR")
		eq(t, "btype", r.Imps[0].Banner.BType, []int64{1, 4})
		eq(t, "btype of a banner without", len(r.Imps[1].Banner.BType), 0)
	})
	f("ext_twins_25.json", func(t *testing.T, r *Request) {
		eq(t, "gdpr", r.Regs.GDPR, True)
		eq(t, "us_privacy", string(r.Regs.USPrivacy), "1---")
		eq(t, "gpp", string(r.Regs.GPP), "DBACNYA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN")
		eq(t, "gpp_sid", r.Regs.GPPSID, []int64{2, 6})
		eq(t, "consent", string(r.User.Consent), tcf)
		eq(t, "coppa", r.Regs.COPPA, Unset)
	})
	f("fields_26.json", func(t *testing.T, r *Request) {
		eq(t, "gdpr", r.Regs.GDPR, True) // 0 beside ext's 1: either saying 1 applies GDPR
		eq(t, "us_privacy", string(r.Regs.USPrivacy), "1YYN")
		eq(t, "gpp", string(r.Regs.GPP), "DBABMA~CPXxRfAPXxRfA")
		eq(t, "gpp_sid", r.Regs.GPPSID, []int64{2})
		eq(t, "consent", string(r.User.Consent), "CONSENT-26")
	})
	f("app_audio.json", func(t *testing.T, r *Request) {
		eq(t, "gdpr (2.6 wins over ext)", r.Regs.GDPR, True)
		eq(t, "cur", joined(r.Cur), "USD,EUR")
		eq(t, "audio", [2]any{r.Imps[0].HasAudio, joined(r.Imps[0].Audio.MIMEs)}, [2]any{true, "audio/mp4,audio/mpeg"})
		eq(t, "media", r.Imps[0].MediaTypes(), uint8(1<<MediaAudio))
	})
	f("coppa_gdpr.json", func(t *testing.T, r *Request) {
		eq(t, "regs", [2]int8{r.Regs.COPPA, r.Regs.GDPR}, [2]int8{True, True})
		eq(t, "dnt/lmt", [2]int8{r.Device.DNT, r.Device.LMT}, [2]int8{True, True})
		eq(t, "has user", r.HasUser, true)
		eq(t, "app", [2]any{r.HasApp, string(r.App.Bundle)}, [2]any{true, "com.example.kidsgame"})
	})
	f("site_pmp_deals.json", func(t *testing.T, r *Request) {
		eq(t, "private", [2]bool{r.Imps[0].PrivateAuction, r.Imps[1].PrivateAuction}, [2]bool{true, false})
		eq(t, "deals", len(r.Imps[0].Deals), 2)
		d := r.Imps[0].Deals[0]
		eq(t, "deal", [3]any{string(d.ID), d.BidFloor, joined(d.WSeat)}, [3]any{"DEAL-PREMIUM-001", 8.5, "seat-ob-1,seat-ob-2"})
		eq(t, "deal cur", string(r.Imps[1].Deals[0].BidFloorCur), "EUR")
		eq(t, "deal at", [2]int64{d.AT, r.Imps[0].Deals[1].AT}, [2]int64{1, 0})
		eq(t, "wseat/bseat", joined(r.WSeat)+"|"+joined(r.BSeat), "seat-ob-1|seat-bad")
		eq(t, "at", r.AT, int64(1))
	})
	f("site_video.json", func(t *testing.T, r *Request) {
		v := r.Imps[0].Video
		eq(t, "video", [6]int64{v.MinDuration, v.MaxDuration, v.W, v.H, v.Placement, v.Plcmt}, [6]int64{6, 30, 640, 360, 1, 1})
		eq(t, "protocols", v.Protocols, []int64{2, 3, 5, 6, 7, 8})
		eq(t, "mimes", joined(v.MIMEs), "video/mp4,video/webm,application/javascript")
		eq(t, "media", r.Imps[0].MediaTypes(), uint8(1<<MediaVideo))
		eq(t, "secure", r.Imps[0].Secure, Unset)
		eq(t, "has user, not device geo from user", [2]bool{r.HasUser, r.Device.HasGeo}, [2]bool{true, true})
	})
	f("app_native.json", func(t *testing.T, r *Request) {
		n := r.Imps[0].Native
		eq(t, "ver", string(n.Ver), "1.2")
		if !strings.HasPrefix(string(n.Request), `{"ver":"1.2","context":2,`) {
			t.Errorf("native request not unescaped: %.40s", n.Request)
		}
		eq(t, "segments (empty ids skipped)", joined(r.User.Segments), "cooking,s-445")
		eq(t, "lmt", r.Device.LMT, True)
		eq(t, "dnt", r.Device.DNT, Unset)
		eq(t, "us_privacy", string(r.Regs.USPrivacy), "1YNN")
		eq(t, "at default", r.AT, int64(2))
	})
	f("site_multi_imp.json", func(t *testing.T, r *Request) {
		eq(t, "imps", r.ImpCount(), 4)
		var got []string
		for _, imp := range r.Imps {
			got = append(got, string(imp.ID)+":"+string(imp.TagID))
		}
		eq(t, "ids", strings.Join(got, ","), "1:atf-mpu,2:outstream,3:in-article-native,4:sticky-footer")
		eq(t, "secure", r.Imps[3].Secure, False)
	})
	f("user_geo_fallback.json", func(t *testing.T, r *Request) {
		g := r.Device.Geo
		eq(t, "geo", [3]string{string(g.Country), string(g.Region), string(g.City)}, [3]string{"BRA", "SP", "São Paulo"})
		eq(t, "latlon", [2]float64{g.Lat, g.Lon}, [2]float64{-23.55, -46.63})
		eq(t, "has geo", r.Device.HasGeo, true)
	})
	f("currency_jpy.json", func(t *testing.T, r *Request) {
		eq(t, "floor", [2]any{r.Imps[0].BidFloor, string(r.Imps[0].BidFloorCur)}, [2]any{120.0, "JPY"})
		eq(t, "allows", [3]bool{r.AllowsCurrency([]byte("JPY")), r.AllowsCurrency([]byte("USD")), r.AllowsCurrency([]byte("EUR"))}, [3]bool{true, true, false})
	})
	f("warts_nulls_odd_ext.json", func(t *testing.T, r *Request) {
		eq(t, "escaped id", string(r.ID), "warts-1")
		eq(t, "test", r.Test, true)
		eq(t, "null tmax/at", [2]int64{r.TMax, r.AT}, [2]int64{0, 2})
		imp := &r.Imps[0]
		eq(t, "null floor/secure", [2]any{imp.BidFloor, imp.Secure}, [2]any{0.0, Unset})
		eq(t, "media", imp.MediaTypes(), uint8(1<<MediaBanner))
		eq(t, "pmp", len(imp.Deals), 0)
		eq(t, "domain", string(r.Site.Domain), `escape"d.example`)
		eq(t, "page", string(r.Site.Page), "https://x.example/a/b?q=é")
		eq(t, "null app", r.HasApp, false)
		eq(t, "ua", string(r.Device.UA), "ua\ttab")
		eq(t, "null dnt", r.Device.DNT, Unset)
		eq(t, "user geo", string(r.Device.Geo.Country), "POL")
		eq(t, "no utcoffset", r.Device.Geo.HasUTCOffset, false)
		eq(t, "regs", [2]int8{r.Regs.COPPA, r.Regs.GDPR}, [2]int8{Unset, Unset})
		eq(t, "no publisher", r.Publisher().ID == nil, true)
	})
	f("dooh_qty.json", func(t *testing.T, r *Request) {
		eq(t, "inventory", [3]bool{r.HasSite, r.HasApp, r.HasDOOH}, [3]bool{false, false, true})
		d := r.DOOH
		eq(t, "dooh", [3]string{string(d.ID), string(d.Domain), string(d.Publisher.ID)}, [3]string{"venue-77", "screens.example", "ooh-pub-3"})
		eq(t, "venue types", joined(d.VenueType), "transit.airports.arrivals,transit.airports")
		eq(t, "venue taxonomy", d.VenueTypeTax, int64(1))
		imp := &r.Imps[0]
		eq(t, "qty", [2]any{imp.HasQty, imp.Qty}, [2]any{true, Qty{Multiplier: 12.75, SourceType: 1, Vendor: []byte("measure.example")}})
		eq(t, "skip", imp.Video.Skip, False)
		eq(t, "plcmt", imp.Video.Plcmt, int64(4))
		eq(t, "metro/city", string(r.Device.Geo.Metro)+"/"+string(r.Device.Geo.City), "501/New York")
		eq(t, "connection", r.Device.ConnType, int64(1))
		eq(t, "empty carrier", len(r.Device.Carrier), 0)
		eq(t, "cattax", r.CatTax, int64(1))
	})
	f("audio_pod_rewarded.json", func(t *testing.T, r *Request) {
		a := r.Imps[0].Audio
		eq(t, "durations", [2]int64{a.MinDuration, a.MaxDuration}, [2]int64{10, 30})
		eq(t, "protocols", a.Protocols, []int64{2, 3, 9})
		eq(t, "battr", a.BAttr, []int64{6})
		eq(t, "pod", [5]any{string(a.PodID), a.PodSeq, a.SlotInPod, a.PodDur, a.MaxSeq}, [5]any{"break-2", int64(1), int64(1), int64(60), int64(3)})
		eq(t, "rqddurs", a.RqdDurs, []int64{15, 30})
		eq(t, "rwdd", [2]bool{r.Imps[0].Rwdd, r.Imps[1].Rwdd}, [2]bool{true, false})
		eq(t, "last slot", r.Imps[1].Audio.SlotInPod, int64(-1))
		eq(t, "cattax", [2]int64{r.CatTax, r.App.CatTax}, [2]int64{6, 6})
		eq(t, "language", [3]string{string(r.Device.Language), string(r.Device.LangB), string(r.Device.Carrier)}, [3]string{"es", "es-MX", "Telcel"})
		eq(t, "metro", string(r.Device.Geo.Metro), "mx-cdmx")
	})
	f("ctv_video.json", func(t *testing.T, r *Request) {
		v := r.Imps[0].Video
		eq(t, "pod", [3]any{string(v.PodID), v.SlotInPod, v.RqdDurs}, [3]any{"p1", int64(1), []int64{15, 30}})
		eq(t, "second slot", [2]any{string(r.Imps[1].Video.PodID), r.Imps[1].Video.SlotInPod}, [2]any{"p1", int64(-1)})
		eq(t, "skip absent", v.Skip, Unset)
	})
	f("native_assets.json", func(t *testing.T, r *Request) {
		n := r.Imps[0].Native
		eq(t, "wrapped 1.1", [2]any{n.Status, n.Wrapped}, [2]any{NativeOK, true})
		eq(t, "assets", n.Assets, []NativeAsset{
			{ID: 101, Required: true, Kind: AssetTitle, Len: 25},
			{ID: 102, Required: true, Kind: AssetImg, Type: 3, WMin: 600, HMin: 314},
			{ID: 103, Kind: AssetImg, Type: 1, W: 80, H: 80},
			{ID: 104, Kind: AssetData, Type: 2, Len: 90},
			{ID: 105, Kind: AssetData, Type: 12},
			{ID: 106, Kind: AssetVideo},
			{ID: 107}, // title and data: no valid kind
			{},        // null
		})
		n2 := r.Imps[1].Native
		eq(t, "encoded twice", [2]any{n2.Status, n2.Assets}, [2]any{NativeOK, []NativeAsset{{ID: 1, Required: true, Kind: AssetTitle, Len: 40}}})
		eq(t, "not an object", [2]any{r.Imps[2].Native.Status, len(r.Imps[2].Native.Assets)}, [2]any{NativeBad, 0})
		eq(t, "wrong type", r.Imps[3].Native.Status, NativeBad)
		eq(t, "numeric ver (not read)", [2]any{r.Imps[4].Native.Status, len(r.Imps[4].Native.Assets)}, [2]any{NativeOK, 1})
	})
	if got := (&Request{}).Publisher(); got != nil {
		t.Errorf("Publisher without site/app = %v, want nil", got)
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func joined(bs [][]byte) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = string(b)
	}
	return strings.Join(s, ",")
}

func TestParseErrors(t *testing.T) {
	f := func(body string, sentinel error, wantMsg string) {
		t.Helper()
		var p Parser
		var r Request
		err := p.Parse([]byte(body), &r)
		if !errors.Is(err, sentinel) {
			t.Fatalf("Parse(%.60s): got %v, want an error wrapping %v", body, err, sentinel)
		}
		msg := err.Error()
		if !strings.Contains(msg, wantMsg) {
			t.Errorf("Parse(%.60s): message %q does not contain %q", body, msg, wantMsg)
		}
		if strings.ContainsAny(msg, "\n\r") {
			t.Errorf("message is not one line: %q", msg)
		}
	}
	const imp = `"imp":[{"id":"1"}]`
	// Malformed JSON.
	f(``, ErrMalformed, "ortb: malformed request: ")
	f(`{`, ErrMalformed, "malformed")
	f(`{"id":"r",`+imp+`} trailing`, ErrMalformed, "unexpected tail")
	f(`{"id":"r","imp":[{"id":"1",}]}`, ErrMalformed, "malformed")
	f(`{"id":"r",`+imp+`,"ext":`+strings.Repeat("[", 400)+strings.Repeat("]", 400)+`}`, ErrMalformed, "depth")
	// Required members.
	f(`[]`, ErrInvalid, "ortb: invalid request: want object, got array")
	f(`"x"`, ErrInvalid, "want object, got string")
	f(`{}`, ErrInvalid, "id: missing or empty")
	f(`{"id":"",`+imp+`}`, ErrInvalid, "id: missing or empty")
	f(`{"id":null,`+imp+`}`, ErrInvalid, "id: missing or empty")
	f(`{"id":"r"}`, ErrInvalid, "imp: missing or empty")
	f(`{"id":"r","imp":[]}`, ErrInvalid, "imp: missing or empty")
	f(`{"id":"r","imp":null}`, ErrInvalid, "imp: missing or empty")
	f(`{"id":"r","imp":[{}]}`, ErrInvalid, "imp[0].id: missing or empty")
	f(`{"id":"r","imp":[{"id":"1"},{"id":""}]}`, ErrInvalid, "imp[1].id: missing or empty")
	f(`{"id":"r","imp":[null]}`, ErrInvalid, "imp[0].id: missing or empty")
	// Ids that cannot come back as sent (an outside conformance audit: the
	// answer's id and impid were U+FFFD, matching nothing).
	f("{\"id\":\"\xff\xfe\","+imp+"}", ErrInvalid, "id: not valid UTF-8")
	f("{\"id\":\"r\xc0\xaf\","+imp+"}", ErrInvalid, "id: not valid UTF-8")
	f(`{"id":"\ud800",`+imp+`}`, ErrInvalid, "id: not valid UTF-8")
	f(`{"id":"r\udc00x",`+imp+`}`, ErrInvalid, "id: not valid UTF-8")
	f(`{"id":"\ufffd",`+imp+`}`, ErrInvalid, "id: not valid UTF-8")
	f("{\"id\":\"r\",\"imp\":[{\"id\":\"i\xff\"}]}", ErrInvalid, "imp[0].id: not valid UTF-8")
	f(`{"id":"r","imp":[{"id":"1"},{"id":"\ud83d"}]}`, ErrInvalid, "imp[1].id: not valid UTF-8")
	// Wrong types, named by path.
	f(`{"id":1,`+imp+`}`, ErrInvalid, "id: want string, got number")
	f(`{"id":"r","imp":{}}`, ErrInvalid, "imp: want array, got object")
	f(`{"id":"r","imp":["x"]}`, ErrInvalid, "imp[0]: want object, got string")
	f(`{"id":"r","imp":[{"id":1}]}`, ErrInvalid, "imp[0].id: want string, got number")
	f(`{"id":"r","imp":[{"id":"1","bidfloor":"0.5"}]}`, ErrInvalid, "imp[0].bidfloor: want number, got string")
	f(`{"id":"r","imp":[{"id":"1"},{"id":"2","bidfloor":true}]}`, ErrInvalid, "imp[1].bidfloor: want number, got bool")
	f(`{"id":"r","imp":[{"id":"1","bidfloor":NaN}]}`, ErrInvalid, "imp[0].bidfloor: want number, got NaN")
	f(`{"id":"r","imp":[{"id":"1","bidfloor":-inf}]}`, ErrInvalid, "imp[0].bidfloor: want number, got -inf")
	f(`{"id":"r","imp":[{"id":"1","bidfloorcur":840}]}`, ErrInvalid, "imp[0].bidfloorcur: want string, got number")
	f(`{"id":"r","imp":[{"id":"1","secure":true}]}`, ErrInvalid, "imp[0].secure: want integer, got bool")
	f(`{"id":"r","imp":[{"id":"1","instl":"1"}]}`, ErrInvalid, "imp[0].instl: want integer, got string")
	f(`{"id":"r","imp":[{"id":"1","banner":[]}]}`, ErrInvalid, "imp[0].banner: want object, got array")
	f(`{"id":"r","imp":[{"id":"1","banner":{"w":300.5}}]}`, ErrInvalid, "imp[0].banner.w: want integer, got 300.5")
	f(`{"id":"r","imp":[{"id":"1","banner":{"h":1e3}}]}`, ErrInvalid, "imp[0].banner.h: want integer, got 1e3")
	f(`{"id":"r","imp":[{"id":"1","banner":{"format":[{"w":1,"h":1},"300x250"]}}]}`, ErrInvalid, "imp[0].banner.format[1]: want object, got string")
	f(`{"id":"r","imp":[{"id":"1","banner":{"format":[{"w":"300"}]}}]}`, ErrInvalid, "imp[0].banner.format[0].w: want integer, got string")
	f(`{"id":"r","imp":[{"id":"1"}],"regs":{"gpp_sid":"7"}}`, ErrInvalid, "regs.gpp_sid: want array, got string")
	f(`{"id":"r","imp":[{"id":"1"}],"regs":{"gpp_sid":[7,1.5]}}`, ErrInvalid, "regs.gpp_sid[1]: want integer, got 1.5")
	f(`{"id":"r","imp":[{"id":"1","banner":{"battr":[1,"2"]}}]}`, ErrInvalid, "imp[0].banner.battr[1]: want integer, got string")
	f(`{"id":"r","imp":[{"id":"1","banner":{"battr":[1,2.5]}}]}`, ErrInvalid, "imp[0].banner.battr[1]: want integer, got 2.5")
	f(`{"id":"r","imp":[{"id":"1","video":{"mimes":"video/mp4"}}]}`, ErrInvalid, "imp[0].video.mimes: want array, got string")
	f(`{"id":"r","imp":[{"id":"1","video":{"protocols":[2,3,"x"]}}]}`, ErrInvalid, "imp[0].video.protocols[2]: want integer, got string")
	f(`{"id":"r","imp":[{"id":"1","audio":{"mimes":[1]}}]}`, ErrInvalid, "imp[0].audio.mimes[0]: want string, got number")
	f(`{"id":"r","imp":[{"id":"1","native":{"request":["{}"]}}]}`, ErrInvalid, "imp[0].native.request: want string, got array")
	f(`{"id":"r","imp":[{"id":"1","rwdd":true}]}`, ErrInvalid, "imp[0].rwdd: want integer, got bool")
	f(`{"id":"r","imp":[{"id":"1","qty":{"multiplier":"12"}}]}`, ErrInvalid, "imp[0].qty.multiplier: want number, got string")
	f(`{"id":"r","imp":[{"id":"1","qty":[]}]}`, ErrInvalid, "imp[0].qty: want object, got array")
	f(`{"id":"r","imp":[{"id":"1","video":{"skip":true}}]}`, ErrInvalid, "imp[0].video.skip: want integer, got bool")
	// Flags are int8s in the schema of record; encoding/json refuses one that
	// does not fit (TestFlagRangeAsSchema), so Parse does not read it as on.
	f(`{"id":"r","imp":[{"id":"1"}],"regs":{"gdpr":256}}`, ErrInvalid, "regs.gdpr: want int8, got 256")
	f(`{"id":"r","imp":[{"id":"1"}],"regs":{"coppa":-129}}`, ErrInvalid, "regs.coppa: want int8, got -129")
	f(`{"id":"r","imp":[{"id":"1"}],"device":{"lmt":128}}`, ErrInvalid, "device.lmt: want int8, got 128")
	f(`{"id":"r","imp":[{"id":"1","secure":4294967297}]}`, ErrInvalid, "imp[0].secure: want int8, got 4294967297")
	f(`{"id":"r","imp":[{"id":"1","pmp":{"private_auction":1000}}]}`, ErrInvalid, "imp[0].pmp.private_auction: want int8, got 1000")
	f(`{"id":"r","imp":[{"id":"1"}],"test":300}`, ErrInvalid, "test: want int8, got 300")
	f(`{"id":"r","imp":[{"id":"1","video":{"rqddurs":[15,"30"]}}]}`, ErrInvalid, "imp[0].video.rqddurs[1]: want integer, got string")
	f(`{"id":"r","imp":[{"id":"1","video":{"podid":7}}]}`, ErrInvalid, "imp[0].video.podid: want string, got number")
	f(`{"id":"r","imp":[{"id":"1","audio":{"slotinpod":1.5}}]}`, ErrInvalid, "imp[0].audio.slotinpod: want integer, got 1.5")
	f(`{"id":"r","imp":[{"id":"1","audio":{"maxduration":"30"}}]}`, ErrInvalid, "imp[0].audio.maxduration: want integer, got string")
	f(`{"id":"r",`+imp+`,"dooh":{"venuetype":"airport"}}`, ErrInvalid, "dooh.venuetype: want array, got string")
	f(`{"id":"r",`+imp+`,"dooh":{"publisher":{"id":3}}}`, ErrInvalid, "dooh.publisher.id: want string, got number")
	f(`{"id":"r",`+imp+`,"cattax":"6"}`, ErrInvalid, "cattax: want integer, got string")
	f(`{"id":"r",`+imp+`,"site":{"cattax":2.5}}`, ErrInvalid, "site.cattax: want integer, got 2.5")
	f(`{"id":"r",`+imp+`,"device":{"carrier":310}}`, ErrInvalid, "device.carrier: want string, got number")
	f(`{"id":"r",`+imp+`,"device":{"geo":{"metro":501}}}`, ErrInvalid, "device.geo.metro: want string, got number")
	f(`{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"id":"d","bidfloor":false}]}}]}`, ErrInvalid, "imp[0].pmp.deals[0].bidfloor: want number, got bool")
	f(`{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"id":"d","wseat":"s"}]}}]}`, ErrInvalid, "imp[0].pmp.deals[0].wseat: want array, got string")
	f(`{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"id":"d","at":"3"}]}}]}`, ErrInvalid, "imp[0].pmp.deals[0].at: want integer, got string")
	f(`{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"id":"d","at":3.5}]}}]}`, ErrInvalid, "imp[0].pmp.deals[0].at: want integer, got 3.5")
	f(`{"id":"r","imp":[{"id":"1","pmp":{"private_auction":"1"}}]}`, ErrInvalid, "imp[0].pmp.private_auction: want integer, got string")
	f(`{"id":"r",`+imp+`,"tmax":"120"}`, ErrInvalid, "tmax: want integer, got string")
	f(`{"id":"r",`+imp+`,"tmax":1e400}`, ErrInvalid, "tmax: want integer, got 1e400")
	f(`{"id":"r",`+imp+`,"at":99999999999999999999}`, ErrInvalid, "at: want integer, got 99999999999999999999")
	f(`{"id":"r",`+imp+`,"bcat":"IAB25"}`, ErrInvalid, "bcat: want array, got string")
	f(`{"id":"r",`+imp+`,"wlang":"en"}`, ErrInvalid, "wlang: want array, got string")
	f(`{"id":"r",`+imp+`,"wlangb":["en",1]}`, ErrInvalid, "wlangb[1]: want string, got number")
	f(`{"id":"r","imp":[{"id":"1","banner":{"btype":[1,"2"]}}]}`, ErrInvalid, "imp[0].banner.btype[1]: want integer, got string")
	f(`{"id":"r",`+imp+`,"bcat":["IAB25",26]}`, ErrInvalid, "bcat[1]: want string, got number")
	f(`{"id":"r",`+imp+`,"cur":[["USD"]]}`, ErrInvalid, "cur[0]: want string, got array")
	f(`{"id":"r",`+imp+`,"site":"example.com"}`, ErrInvalid, "site: want object, got string")
	f(`{"id":"r",`+imp+`,"site":{"publisher":{"id":42}}}`, ErrInvalid, "site.publisher.id: want string, got number")
	f(`{"id":"r",`+imp+`,"app":{"cat":[1]}}`, ErrInvalid, "app.cat[0]: want string, got number")
	f(`{"id":"r",`+imp+`,"device":{"devicetype":"4"}}`, ErrInvalid, "device.devicetype: want integer, got string")
	f(`{"id":"r",`+imp+`,"device":{"geo":{"lat":"40.1"}}}`, ErrInvalid, "device.geo.lat: want number, got string")
	f(`{"id":"r",`+imp+`,"device":{"geo":[]}}`, ErrInvalid, "device.geo: want object, got array")
	f(`{"id":"r",`+imp+`,"user":{"geo":{"utcoffset":"+1"}}}`, ErrInvalid, "user.geo.utcoffset: want integer, got string")
	f(`{"id":"r",`+imp+`,"user":{"yob":"1990"}}`, ErrInvalid, "user.yob: want integer, got string")
	f(`{"id":"r",`+imp+`,"user":{"data":{}}}`, ErrInvalid, "user.data: want array, got object")
	f(`{"id":"r",`+imp+`,"user":{"data":[1]}}`, ErrInvalid, "user.data[0]: want object, got number")
	f(`{"id":"r",`+imp+`,"user":{"data":[{"segment":[{"id":"a"},{"id":7}]}]}}`, ErrInvalid, "user.data[0].segment[1].id: want string, got number")
	f(`{"id":"r",`+imp+`,"user":{"consent":true}}`, ErrInvalid, "user.consent: want string, got bool")
	f(`{"id":"r",`+imp+`,"regs":{"gdpr":"1"}}`, ErrInvalid, "regs.gdpr: want integer, got string")
	f(`{"id":"r",`+imp+`,"regs":{"coppa":[1]}}`, ErrInvalid, "regs.coppa: want integer, got array")
	f(`{"id":"r",`+imp+`,"regs":{"us_privacy":1}}`, ErrInvalid, "regs.us_privacy: want string, got number")
	f(`{"id":"r",`+imp+`,"regs":"gdpr"}`, ErrInvalid, "regs: want object, got string")
	// The first error in document order is the one reported.
	f(`{"id":"r","imp":[{"id":"1","bidfloor":"x"}],"tmax":"y"}`, ErrInvalid, "imp[0].bidfloor")
}

// TestFlagRangeAsSchema holds getFlag to the schema of record: every flag
// Parse reads, at the edges of an int8 and one past them, is read by Parse
// exactly when encoding/json decodes it into openrtb2.BidRequest.
func TestFlagRangeAsSchema(t *testing.T) {
	flags := []string{
		`"test":%s`,
		`"regs":{"gdpr":%s}`, `"regs":{"coppa":%s}`,
		`"device":{"dnt":%s}`, `"device":{"lmt":%s}`,
		`"imp":[{"id":"1","secure":%s}]`, `"imp":[{"id":"1","instl":%s}]`, `"imp":[{"id":"1","rwdd":%s}]`,
		`"imp":[{"id":"1","pmp":{"private_auction":%s}}]`, `"imp":[{"id":"1","video":{"skip":%s}}]`,
	}
	for _, flag := range flags {
		for _, n := range []string{"-129", "-128", "0", "127", "128", "256"} {
			member := strings.Replace(flag, "%s", n, 1)
			body := `{"id":"r",` + member
			if !strings.HasPrefix(member, `"imp"`) {
				body += `,"imp":[{"id":"1"}]`
			}
			body += "}"
			var br openrtb2.BidRequest
			schemaErr := json.Unmarshal([]byte(body), &br)
			var p Parser
			var r Request
			err := p.Parse([]byte(body), &r)
			if (err == nil) != (schemaErr == nil) {
				t.Errorf("%s: Parse says %v, encoding/json %v", body, err, schemaErr)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v is not ErrInvalid", body, err)
			}
		}
	}
}

// TestParseLenient covers what must never be an error.
func TestParseLenient(t *testing.T) {
	f := func(body string, check func(r *Request) bool) {
		t.Helper()
		var p Parser
		var r Request
		if err := p.Parse([]byte(body), &r); err != nil {
			t.Fatalf("Parse(%s): %v", body, err)
		}
		if !check(&r) {
			t.Errorf("Parse(%s): unexpected view %+v", body, r)
		}
	}
	const head = `{"id":"r","imp":[{"id":"1"}]`
	f(head+`,"ext":"str","regs":{"ext":"gdpr"},"user":{"ext":[1]}}`, func(r *Request) bool {
		return r.Regs.GDPR == Unset && r.User.Consent == nil
	})
	f(head+`,"regs":{"ext":{"gdpr":"1","us_privacy":5}},"user":{"ext":{"consent":{"v":2}}}}`, func(r *Request) bool {
		return r.Regs.GDPR == True && r.Regs.USPrivacy == nil && r.User.Consent == nil
	})
	// A gdpr signal that is there but cannot be read applies GDPR: read as
	// unset it would let user-level data through where the sender may have
	// meant GDPR to apply. Only 0, "0" and false say it does not.
	for _, v := range []string{`"yes"`, `"true"`, `"no"`, `""`, `"2"`, `{}`, `[0]`} {
		f(head+`,"regs":{"ext":{"gdpr":`+v+`}}}`, func(r *Request) bool { return r.Regs.GDPR == True })
	}
	f(head+`,"regs":{"ext":{"gdpr":null}}}`, func(r *Request) bool { return r.Regs.GDPR == Unset })
	// Either field saying 1 applies GDPR (the sender may have meant it to).
	f(head+`,"regs":{"gdpr":0,"ext":{"gdpr":"yes"}}}`, func(r *Request) bool { return r.Regs.GDPR == True })
	f(head+`,"regs":{"gdpr":0,"ext":{"gdpr":1}}}`, func(r *Request) bool { return r.Regs.GDPR == True })
	f(head+`,"regs":{"gdpr":1,"ext":{"gdpr":0}}}`, func(r *Request) bool { return r.Regs.GDPR == True })
	f(head+`,"regs":{"gdpr":0,"ext":{"gdpr":false}}}`, func(r *Request) bool { return r.Regs.GDPR == False })
	f(head+`,"regs":{"ext":{"gdpr":true}}}`, func(r *Request) bool { return r.Regs.GDPR == True })
	f(head+`,"regs":{"ext":{"gdpr":false}}}`, func(r *Request) bool { return r.Regs.GDPR == False })
	f(head+`,"regs":{"gdpr":0,"ext":{"gdpr":true}}}`, func(r *Request) bool { return r.Regs.GDPR == True })
	f(head+`,"regs":{"ext":{"gdpr":0}}}`, func(r *Request) bool { return r.Regs.GDPR == False })
	f(head+`,"regs":{"gdpr":null,"ext":{"gdpr":1}}}`, func(r *Request) bool { return r.Regs.GDPR == True })
	f(head+`,"regs":{"us_privacy":"","ext":{"us_privacy":"1YNN"}}}`, func(r *Request) bool {
		return string(r.Regs.USPrivacy) == "1YNN"
	})
	sid := func(r *Request, want ...int64) bool {
		return len(r.Regs.GPPSID) == len(want) && (len(want) == 0 || reflect.DeepEqual(r.Regs.GPPSID, want))
	}
	f(head+`,"regs":{"gpp_sid":[7],"ext":{"gpp_sid":[8]}}}`, func(r *Request) bool { return sid(r, 7, 8) }) // either list's sections apply
	f(head+`,"regs":{"gpp_sid":[7],"ext":{"gpp_sid":[7]}}}`, func(r *Request) bool { return sid(r, 7) })
	f(head+`,"regs":{"gpp_sid":[],"ext":{"gpp_sid":[8,null]}}}`, func(r *Request) bool { return sid(r, 8, 0) })
	f(head+`,"regs":{"ext":{"gpp_sid":[8,"9"]}}}`, func(r *Request) bool { return sid(r, 8, 9) }) // a string of digits names its section
	f(head+`,"regs":{"ext":{"gpp_sid":[8,"x"]}}}`, func(r *Request) bool { return sid(r) })       // odd ext: ignored whole
	f(head+`,"regs":{"ext":{"gpp_sid":"7"}}}`, func(r *Request) bool { return sid(r) })           // likewise
	f(head+`,"unknown":{"a":[1,2,{"b":null}]},"site":{"unknown":true,"cat":[null,"IAB1"]}}`, func(r *Request) bool {
		return r.HasSite && len(r.Site.Cat) == 2 && r.Site.Cat[0] == nil && string(r.Site.Cat[1]) == "IAB1"
	})
	f(head+`,"device":{"geo":{"country":"USA"}},"user":{"geo":{"country":"CAN"}}}`, func(r *Request) bool {
		return string(r.Device.Geo.Country) == "USA"
	})
	f(head+`,"device":{"geo":null},"user":{"geo":{"country":"CAN"}}}`, func(r *Request) bool {
		return string(r.Device.Geo.Country) == "CAN" && r.Device.HasGeo && r.HasDevice
	})
	f(head+`,"user":{"geo":{"country":"CAN"}}}`, func(r *Request) bool {
		return string(r.Device.Geo.Country) == "CAN" && r.Device.HasGeo && !r.HasDevice
	})
	f(`{"id":"r","imp":[{"id":"1","banner":{"format":[null,{"w":1,"h":2}]},"pmp":{"deals":[null]}}]}`, func(r *Request) bool {
		b := r.Imps[0].Banner
		return len(b.Format) == 2 && b.Format[0] == Size{} && b.Format[1] == Size{1, 2} && len(r.Imps[0].Deals) == 1
	})
	f(`{"id":"r","imp":[{"id":"1","secure":2,"instl":0}],"test":0}`, func(r *Request) bool {
		return r.Imps[0].Secure == True && !r.Imps[0].Instl && !r.Test
	})
	// Native request documents: an object in place of the string, a string
	// that is not a document, a wrongly typed member: never an error.
	native := func(req string) string { return `{"id":"r","imp":[{"id":"1","native":{"request":` + req + `}}]}` }
	f(native(`{"ver":"1.2","assets":[{"id":3,"required":1,"data":{"type":2,"len":80}}]}`), func(r *Request) bool {
		n := r.Imps[0].Native
		return n.Status == NativeOK && n.Request == nil && len(n.Assets) == 1 && n.Assets[0] == NativeAsset{ID: 3, Required: true, Kind: AssetData, Type: 2, Len: 80}
	})
	f(native(`"not json"`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeBad })
	f(native(`"[1]"`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeBad })
	f(native(`"{\"assets\":[{\"id\":1,\"img\":{\"w\":\"300\"}}]}"`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeBad })
	f(native(`"{\"assets\":{}}"`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeBad })
	// img.mimes as bits: letter case and spaces aside, image/jpg is JPEG,
	// an unknown type is ImgOther; null or [] is any; a string is bad.
	f(native(`{"assets":[{"id":1,"img":{"type":3,"mimes":["IMAGE/GIF"," image/jpg ","image/avif"]}},{"id":2,"img":{"mimes":null}},{"id":3,"img":{"mimes":[]}}]}`), func(r *Request) bool {
		a := r.Imps[0].Native.Assets
		return r.Imps[0].Native.Status == NativeOK && len(a) == 3 && a[0].MIMEs == ImgGIF|ImgJPEG|ImgOther && a[1].MIMEs == 0 && a[2].MIMEs == 0
	})
	f(native(`{"assets":[{"id":1,"img":{"mimes":"image/gif"}}]}`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeBad })
	f(native(`{"assets":[{"id":1,"img":{"mimes":[7]}}]}`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeBad })
	f(native(`""`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeAbsent })
	f(native(`null`), func(r *Request) bool { return r.Imps[0].Native.Status == NativeAbsent && r.Imps[0].HasNative })
	f(native(`"{\"native\":\"x\",\"assets\":[{\"id\":1,\"title\":{\"len\":5}}]}"`), func(r *Request) bool {
		n := r.Imps[0].Native // a "native" member that is not an object: the plain form
		return n.Status == NativeOK && !n.Wrapped && len(n.Assets) == 1
	})
	// A member read given twice, or spelled so that encoding/json folds it
	// onto one, makes the document NativeBad (its reading would depend on
	// the parser: "w":300,"w":null was 0 here, 300 to encoding/json).
	for _, doc := range []string{
		`"{\"assets\":[{\"id\":1,\"title\":{\"len\":5}}],\"assets\":[]}"`,
		`"{\"assets\":[{\"id\":1,\"img\":{\"w\":300,\"h\":250,\"w\":null}}]}"`,
		`"{\"assets\":[{\"id\":1,\"id\":2,\"title\":{\"len\":5}}]}"`,
		`"{\"native\":{\"assets\":[]},\"native\":{\"assets\":[{\"id\":1,\"title\":{\"len\":5}}]}}"`,
		`"{\"Assets\":[{\"id\":1,\"title\":{\"len\":5}}]}"`,
	} {
		f(native(doc), func(r *Request) bool { return r.Imps[0].Native.Status == NativeBad })
	}
	f(`{"i\u0064":"r","imp":[{"id":"1","bidfloor":-0.5}]}`, func(r *Request) bool {
		return string(r.ID) == "r" && r.Imps[0].BidFloor == -0.5
	})
}

// TestParseReuse parses a rich request and then a bare one into the same
// Request: nothing of the first may survive, and Version is kept.
func TestParseReuse(t *testing.T) {
	var p Parser
	var r, fresh Request
	fresh.Reset()
	fresh.Version = []byte("2.6")
	for _, name := range []string{"site_pmp_deals.json", "site_multi_imp.json", "site_banner.json", "app_native.json"} {
		mustParse(t, &p, &r, readFixture(t, name))
	}
	r.Version = []byte("2.6")
	mustParse(t, &p, &r, []byte(`{"id":"bare","imp":[{"id":"1"},{"id":"2"},{"id":"3"}]}`))
	want := fresh
	want.ID = []byte("bare")
	for _, id := range []string{"1", "2", "3"} {
		imp := Imp{ID: []byte(id)}
		imp.reset()
		imp.ID = []byte(id)
		want.Imps = append(want.Imps, imp)
	}
	var diffs []string
	diffValues("", reflect.ValueOf(r), reflect.ValueOf(want), &diffs)
	for _, d := range diffs {
		t.Error(d)
	}

	r.Reset()
	diffs = diffs[:0]
	fresh.Version = nil
	diffValues("", reflect.ValueOf(r), reflect.ValueOf(fresh), &diffs)
	for _, d := range diffs {
		t.Errorf("after Reset: %s", d)
	}
	if cap(r.Imps) < 3 {
		t.Errorf("Reset dropped the imp capacity: %d", cap(r.Imps))
	}
}

// TestParseCopiesBody: the caller may reuse its body buffer right after Parse.
func TestParseCopiesBody(t *testing.T) {
	var p Parser
	var r Request
	body := readFixture(t, "site_banner.json")
	mustParse(t, &p, &r, body)
	clear(body)
	if string(r.ID) != "a3f9c2e1-7b4d-4e8a-9c1f-2d6b8e0a5f31" || string(r.Imps[0].TagID) != "homepage-top-leaderboard" {
		t.Errorf("view changed with the caller's buffer: id %q", r.ID)
	}
}

// A member the view reads given twice in one object is refused, whatever
// the values: encoding/json keeps the last value of a repeated key except
// that a null leaves a non-pointer field as the earlier value set it, so
// "bidfloor":5,"bidfloor":null was a floor of 5 to an exchange decoding with
// it and none to the bidder (an outside audit bid under it; a repeated
// site.domain or regs.coppa ending in null got past a block list or COPPA,
// a repeated durfloors or user.data read differently). Members it does not
// read may repeat.
func TestParseRefusesRepeatedKeys(t *testing.T) {
	const head = `{"id":"r","imp":[{"id":"1"}]`
	imp := func(members string) string { return `{"id":"r","imp":[{"id":"1",` + members + `}]}` }
	for body, path := range map[string]string{
		head + `,"cur":["USD"],"cur":null}`:                                          "cur",
		head + `,"tmax":5,"tmax":null}`:                                              "tmax",
		head + `,"at":1,"at":null}`:                                                  "at",
		head + `,"bcat":["IAB2","IAB3"],"bcat":[null]}`:                              "bcat",
		head + `,"site":{"id":"s"},"site":{"domain":"d"}}`:                           "site",
		head + `,"site":{"domain":"blocked.example","domain":null}}`:                 "site.domain",
		head + `,"app":{"publisher":{"id":"p","id":null}}}`:                          "app.publisher.id",
		head + `,"regs":{"coppa":1,"coppa":null}}`:                                   "regs.coppa",
		head + `,"regs":{"ext":{"gdpr":1},"ext":{"us_privacy":"1YNN"}}}`:             "regs.ext",
		head + `,"regs":{"ext":{"gpp_sid":[7,8],"gpp_sid":[null]}}}`:                 "regs.ext.gpp_sid",
		head + `,"user":{"ext":{"consent":"C","consent":null}}}`:                     "user.ext.consent",
		head + `,"user":{"data":[{"segment":[{"id":"a"}],"segment":[{}]}]}}`:         "user.data[0].segment",
		head + `,"user":{"data":[{"segment":[{"id":"a","id":"b"}]}]}}`:               "user.data[0].segment[0].id",
		head + `,"device":{"geo":{"utcoffset":60,"utcoffset":null}}}`:                "device.geo.utcoffset",
		head + `,"device":{"ext":{"atts":3,"atts":null}}}`:                           "device.ext.atts",
		`{"imp":[{"id":"1"}],"id":"r","imp":[{"id":"2"},{"id":"3"}]}`:                "imp",
		imp(`"bidfloor":5,"bidfloor":null`):                                          "imp[0].bidfloor",
		imp(`"qty":{"multiplier":1000,"multiplier":null}`):                           "imp[0].qty.multiplier",
		imp(`"banner":{"format":[{"w":300,"h":250}],"format":[{"w":728}]}`):          "imp[0].banner.format",
		imp(`"banner":{"format":[{"w":300,"w":null,"h":250}]}`):                      "imp[0].banner.format[0].w",
		imp(`"video":{"durfloors":[{"maxdur":30,"bidfloor":20}],"durfloors":[{}]}`):  "imp[0].video.durfloors",
		imp(`"audio":{"durfloors":[{"bidfloor":20,"bidfloor":null}]}`):               "imp[0].audio.durfloors[0].bidfloor",
		imp(`"pmp":{"deals":[{"id":"d","bidfloor":9}],"deals":[null]}`):              "imp[0].pmp.deals",
		imp(`"pmp":{"deals":[{"id":"d","wadomain":["a.example"],"wadomain":null}]}`): "imp[0].pmp.deals[0].wadomain",
		imp(`"native":{"ver":"1.2","ver":null}`):                                     "imp[0].native.ver",
	} {
		var p Parser
		var r Request
		err := p.Parse([]byte(body), &r)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Path != path || fe.Reason != "given more than once" {
			t.Errorf("Parse(%s): %v, want %s: given more than once", body, err, path)
		}
	}
	var p Parser
	var r Request
	body := head + `,"ext":{"a":1},"ext":{"a":2},"site":{"keywords":"a","keywords":"b","content":{"id":"x","id":null}}}`
	if err := p.Parse([]byte(body), &r); err != nil || !r.HasSite {
		t.Errorf("Parse(%s) with members the view does not read repeated: %v", body, err)
	}
}

// A member the view does not read whose key encoding/json would match to one
// it reads (it folds ASCII case, and ſ and the Kelvin sign onto s and k) is
// refused: "BCAT" is not bcat to the spec, but an exchange decoding with
// encoding/json reads it as one, and an outside audit's "BCAT":["IAB22"]
// bid with an IAB22 creative. A key that folds onto nothing read is fine.
func TestParseRefusesFoldedKeys(t *testing.T) {
	const head = `{"id":"r","imp":[{"id":"1"}]`
	for body, path := range map[string]string{
		head + `,"BCAT":["IAB22"]}`:                        "bcat",
		head + `,"cur":["EUR"],"CUR":["USD"]}`:             "cur",
		head + `,"site":{"id":"s"},"APP":{"bundle":"b"}}`:  "app",
		head + `,"regs":{"COPPA":1}}`:                      "regs.coppa",
		head + `,"user":{"conſent":"x"}}`:                  "user.consent",
		head + `,"user":{"ext":{"Consent":"x"}}}`:          "user.ext.consent",
		head + `,"bſeat":["s"]}`:                           "bseat",
		head + `,"device":{"maKe":"m"}}`:                   "device.make",
		`{"id":"r","imp":[{"id":"1","BidFloor":5}]}`:       "imp[0].bidfloor",
		`{"Id":"r","imp":[{"id":"1"}]}`:                    "id",
		`{"id":"r","imp":[{"id":"1","pmp":{"Deals":[]}}]}`: "imp[0].pmp.deals",
	} {
		var p Parser
		var r Request
		err := p.Parse([]byte(body), &r)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Path != path || !strings.HasSuffix(fe.Reason, "member names are case-sensitive") {
			t.Errorf("Parse(%s): %v, want %s: written ...: member names are case-sensitive", body, err, path)
		}
	}
	var p Parser
	var r Request
	body := head + `,"Ext":{"Prebid":1},"site":{"Keywords":"a","Keywords2":"b","dömain":"x"},"device":{"ext":{"ATT":1}}}`
	if err := p.Parse([]byte(body), &r); err != nil || !r.HasSite {
		t.Errorf("Parse(%s) with odd keys that fold onto nothing read: %v", body, err)
	}
}

func TestHasRepeatedKey(t *testing.T) {
	for body, want := range map[string]bool{
		`{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}`: false,
		`{"a":1,"b":2,"a":3}`:                       true,
		`{"a":{"x":[1,{"y":1,"y":2}]}}`:             true,
		`[{"a":1},{"a":1}]`:                         false,
		`{"a":"a","b":"a"}`:                         false,
	} {
		if got := hasRepeatedKey([]byte(body)); got != want {
			t.Errorf("hasRepeatedKey(%s) = %v", body, got)
		}
	}
}

// A request is on a site, in an app or on a screen, never two of them
// (OpenRTB 2.5 3.2.1, 2.6 3.2.1): with both, targeting read the site and
// skipped the app, so a campaign's app_bundles.block (and app.cat against
// its category block list) let a bid through on a blocked app that also
// sent a site object. Such a request is invalid.
func TestParseOneInventoryObject(t *testing.T) {
	const imp = `"id":"r","imp":[{"id":"1"}]`
	for body, bad := range map[string]bool{
		`{` + imp + `,"site":{"id":"s"},"app":{"bundle":"com.bad"}}`: true,
		`{` + imp + `,"app":{"bundle":"b"},"dooh":{"id":"d"}}`:       true,
		`{` + imp + `,"site":{},"dooh":{}}`:                          true,
		`{` + imp + `,"site":{"id":"s"},"app":null}`:                 false,
		`{` + imp + `,"app":{"bundle":"b"},"site":null,"dooh":null}`: false,
		`{` + imp + `}`: false,
	} {
		var p Parser
		var r Request
		err := p.Parse([]byte(body), &r)
		if got := errors.Is(err, ErrInvalid); got != bad {
			t.Errorf("Parse(%s): %v, want invalid %v", body, err, bad)
		}
	}
}

// The 2.6 duration floors (video, audio and deals: durfloors and
// mincpmpersec) and a deal's allowed advertiser domains are read; a parse
// of another request into the same Request leaves none of them behind.
// OpenRTB 2.5's single video.protocol was not read, so a creative of
// another protocol could be bid on such a request.
func TestParseVideoProtocol25(t *testing.T) {
	var p Parser
	for body, want := range map[string][]int64{
		`{"id":"r","imp":[{"id":"1","video":{"protocol":3}}]}`:                                      {3},
		`{"id":"r","imp":[{"id":"1","video":{"protocol":3,"protocols":[7,8]}}]}`:                    {7, 8},
		`{"id":"r","imp":[{"id":"1","video":{"protocols":[],"protocol":2}}]}`:                       {2},
		`{"id":"r","imp":[{"id":"1","video":{"protocol":0,"protocols":null}}]}`:                     {},
		`{"id":"r","imp":[{"id":"1","video":{"protocols":[6]}},{"id":"2","video":{"protocol":2}}]}`: {2},
	} {
		var r Request
		if err := p.Parse([]byte(body), &r); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got := r.Imps[len(r.Imps)-1].Video.Protocols; !slices.Equal(got, want) {
			t.Errorf("%s: protocols %v, want %v", body, got, want)
		}
	}
	var r Request
	if err := p.Parse([]byte(`{"id":"r","imp":[{"id":"1","video":{"protocol":"3"}}]}`), &r); err == nil {
		t.Error("a string protocol was accepted")
	}
}

func TestParseDurFloorsAndWADomain(t *testing.T) {
	const body = `{"id":"r","imp":[{"id":"1","video":{"mimes":["video/mp4"],"durfloors":[{"mindur":1,"maxdur":15,"bidfloor":5},{"mindur":16,"bidfloor":10.5},null],"mincpmpersec":0.25},` +
		`"pmp":{"deals":[{"id":"d","bidfloor":3,"wadomain":["brand.example","Other.example"],"durfloors":[{"maxdur":30,"bidfloor":7}],"mincpmpersec":0.5}]}},` +
		`{"id":"2","audio":{"mimes":["audio/mp4"],"durfloors":[{"mindur":10,"bidfloor":2}],"mincpmpersec":0.1}}]}`
	var p Parser
	var r Request
	if err := p.Parse([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	v, d, a := r.Imps[0].Video, r.Imps[0].Deals[0], r.Imps[1].Audio
	eq(t, "video durfloors", v.DurFloors, []DurFloor{{MinDur: 1, MaxDur: 15, BidFloor: 5}, {MinDur: 16, BidFloor: 10.5}, {}})
	eq(t, "video mincpmpersec", v.MinCPMPerSec, 0.25)
	eq(t, "deal wadomain", joined(d.WADomain), "brand.example,Other.example")
	eq(t, "deal durfloors", d.DurFloors, []DurFloor{{MaxDur: 30, BidFloor: 7}})
	eq(t, "deal mincpmpersec", d.MinCPMPerSec, 0.5)
	eq(t, "audio durfloors", a.DurFloors, []DurFloor{{MinDur: 10, BidFloor: 2}})
	eq(t, "audio mincpmpersec", a.MinCPMPerSec, 0.1)
	if err := p.Parse([]byte(`{"id":"r2","imp":[{"id":"1","video":{"mimes":["video/mp4"]},"pmp":{"deals":[{"id":"d"}]}},{"id":"2","audio":{}}]}`), &r); err != nil {
		t.Fatal(err)
	}
	v, d, a = r.Imps[0].Video, r.Imps[0].Deals[0], r.Imps[1].Audio
	if len(v.DurFloors)+len(d.DurFloors)+len(d.WADomain)+len(a.DurFloors) != 0 || v.MinCPMPerSec+d.MinCPMPerSec+a.MinCPMPerSec != 0 {
		t.Fatalf("left behind: video %+v, deal %+v, audio %+v", v.Pod, d, a.Pod)
	}
	if err := p.Parse([]byte(`{"id":"r3","imp":[{"id":"1","video":{"durfloors":[{"bidfloor":"x"}]}}]}`), &r); err == nil ||
		!strings.Contains(err.Error(), "durfloors[0].bidfloor") {
		t.Fatalf("a string floor: %v, want an error naming imp[0].video.durfloors[0].bidfloor", err)
	}
}

// device.ext.atts (App Tracking Transparency) is read; restricted (1) or
// denied (2) limit the advertising id as lmt=1 does: it is no user key. A
// wrongly typed atts is no signal, and a later request does not keep it; a
// string of digits is read as its number (an outside review: "2" read as
// not limited).
func TestParseATTSLimitsTheAdvertisingID(t *testing.T) {
	var p Parser
	var r Request
	for _, c := range []struct {
		ext     string
		atts    int64
		limited bool
	}{
		{`{"atts":2}`, 2, true},
		{`{"atts":1}`, 1, true},
		{`{"atts":3}`, 3, false},
		{`{"atts":"2"}`, 2, true},
		{`{"atts":"x"}`, 0, false},
		{`{"atts":2.5}`, 0, false},
		{`{}`, 0, false},
	} {
		body := `{"id":"r","imp":[{"id":"1","banner":{"w":1,"h":1}}],"device":{"ifa":"6D92078A-8246-4BA4-AE5B-76104861E7DC","ext":` + c.ext + `}}`
		if err := p.Parse([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if r.Device.ATTS != c.atts || r.Device.TrackingLimited() != c.limited || (r.UserKey() == 0) != c.limited {
			t.Errorf("ext %s: atts %d, limited %v, user key %x", c.ext, r.Device.ATTS, r.Device.TrackingLimited(), r.UserKey())
		}
	}
}

// pagecat and sectioncat are read into PageCat (in either order), and
// content.cat with content.cattax; a reused Request forgets them.
func TestParsePageCats(t *testing.T) {
	var p Parser
	var req Request
	body := []byte(`{"id":"a","imp":[{"id":"1","banner":{"w":1,"h":1}}],"site":{"sectioncat":["IAB1-2"],"cat":["IAB12"],` +
		`"content":{"cat":["IAB26"],"cattax":2,"id":"c"},"pagecat":["IAB26-1"]}}`)
	mustParse(t, &p, &req, body)
	got := fmt.Sprintf("%s %s %d", req.Site.PageCat, req.Site.ContentCat, req.Site.ContentCatTax)
	if got != "[IAB1-2 IAB26-1] [IAB26] 2" {
		t.Fatalf("site page cats: %s", got)
	}
	mustParse(t, &p, &req, []byte(`{"id":"a","imp":[{"id":"1","banner":{"w":1,"h":1}}],"app":{"pagecat":null,"content":{"cat":["IAB3"]}}}`))
	if got := fmt.Sprintf("%s %s %d %s", req.App.PageCat, req.App.ContentCat, req.App.ContentCatTax, req.Site.PageCat); got != "[] [IAB3] 0 []" {
		t.Fatalf("app page cats after reuse: %s", got)
	}
}

// Ids in any script, escaped or not (a surrogate pair included), read as
// the text they are: only what cannot come back as sent is refused
// (TestParseErrors).
func TestParseUnicodeIDs(t *testing.T) {
	var p Parser
	var r Request
	if err := p.Parse([]byte(`{"id":"é日本\ud83d\ude00","imp":[{"id":"ü\u0041\/"}]}`), &r); err != nil {
		t.Fatal(err)
	}
	if string(r.ID) != "é日本😀" || string(r.Imps[0].ID) != "üA/" {
		t.Fatalf("id %q, imp id %q", r.ID, r.Imps[0].ID)
	}
}

// regs.ext.dsa (the IAB's DSA transparency extension): dsarequired and
// pubrender, as integers or strings of digits; absent, null or another
// type is Unset, above 3 is 3; a member given twice is refused as any the
// parser reads.
func TestParseDSA(t *testing.T) {
	var p Parser
	var r Request
	for _, tc := range []struct {
		regs     string
		req, pub int8
	}{
		{`{"ext":{"dsa":{"dsarequired":3,"pubrender":0,"datatopub":2,"transparency":[{"domain":"x.example","dsaparams":[1]}]}}}`, 3, 0},
		{`{"ext":{"dsa":{"dsarequired":"2","pubrender":"1"}}}`, 2, 1},
		{`{"ext":{"dsa":{"dsarequired":7}}}`, 3, Unset},
		// What an encoder writes for an integer (an outside audit's 2.0
		// was read as absent).
		{`{"ext":{"dsa":{"dsarequired":2.0,"pubrender":1.0}}}`, 2, 1},
		{`{"ext":{"dsa":{"dsarequired":2e0,"pubrender":20E-1}}}`, 2, 2},
		{`{"ext":{"dsa":{"dsarequired":0.0,"pubrender":-0.0}}}`, 0, 0},
		// What cannot be read is read the strict way: required, and the
		// publisher does not render it.
		{`{"ext":{"dsa":{"dsarequired":null,"pubrender":true}}}`, Unset, 0},
		{`{"ext":{"dsa":{"dsarequired":2.5,"pubrender":1}}}`, 3, 1},
		{`{"ext":{"dsa":{"dsarequired":-1,"pubrender":"1 "}}}`, 3, 0},
		{`{"ext":{"dsa":{"dsarequired":" 2","pubrender":[1]}}}`, 3, 0},
		{`{"ext":{"dsa":{"dsarequired":true,"pubrender":{}}}}`, 3, 0},
		{`{"ext":{"dsa":{"dsarequired":[2]}}}`, 3, Unset},
		{`{"ext":{"dsa":"required"}}`, 3, 0},
		{`{"ext":{"dsa":[{"dsarequired":2,"pubrender":1}]}}`, 3, 0},
		{`{"ext":{"dsa":null}}`, Unset, Unset},
		{`{"ext":{"dsa":{"dsarequired":2,"pubrender":1e400}}}`, 2, 0}, // +Inf, not a whole number (a review)
		{`{"ext":{"dsa":{"required":3,"pubrender":0}}}`, Unset, 0},    // a sample's wart: no dsarequired
		{`{"ext":{}}`, Unset, Unset},
		{`{"coppa":0}`, Unset, Unset},
	} {
		mustParse(t, &p, &r, []byte(`{"id":"r","imp":[{"id":"1"}],"regs":`+tc.regs+`}`))
		eq(t, tc.regs, [2]int8{r.Regs.DSARequired, r.Regs.DSAPubRender}, [2]int8{tc.req, tc.pub})
	}
	mustParse(t, &p, &r, []byte(`{"id":"r","imp":[{"id":"1"}]}`))
	eq(t, "no regs", [2]int8{r.Regs.DSARequired, r.Regs.DSAPubRender}, [2]int8{Unset, Unset})
	err := p.Parse([]byte(`{"id":"r","imp":[{"id":"1"}],"regs":{"ext":{"dsa":{"dsarequired":0,"dsarequired":3}}}}`), &r)
	if err == nil || !strings.Contains(err.Error(), "dsarequired") {
		t.Errorf("dsarequired given twice: %v, want refused", err)
	}
}

// Prebid's 2.5 twin of imp.rwdd (imp.ext.prebid.is_rewarded_inventory, 1 or
// true) makes the imp rewarded, whichever comes first, and rwdd 1 stays
// rewarded whatever the twin says; anything else in ext is no signal. One
// parser reads every imp, so the twin of one imp does not carry to the next.
func TestParseRewardedExtTwin(t *testing.T) {
	var p Parser
	var r Request
	for _, c := range []struct {
		imp  string
		want bool
	}{
		{`"ext":{"prebid":{"is_rewarded_inventory":1}}`, true},
		{`"ext":{"prebid":{"is_rewarded_inventory":true}}`, true},
		{`"ext":{"prebid":{"is_rewarded_inventory":1}},"rwdd":0`, true},
		{`"rwdd":1,"ext":{"prebid":{"is_rewarded_inventory":0}}`, true},
		{`"ext":{"prebid":{"is_rewarded_inventory":0}}`, false},
		{`"ext":{"prebid":{"is_rewarded_inventory":"1"}}`, false},
		{`"ext":{"prebid":1}`, false},
		{`"ext":[1]`, false},
		{`"ext":null`, false},
	} {
		body := `{"id":"r","imp":[{"id":"1",` + c.imp + `},{"id":"2"}],"site":{"id":"s"}}`
		mustParse(t, &p, &r, []byte(body))
		if r.Imps[0].Rwdd != c.want || r.Imps[1].Rwdd {
			t.Errorf("%s: rwdd %v, the next imp %v; want %v, false", c.imp, r.Imps[0].Rwdd, r.Imps[1].Rwdd, c.want)
		}
	}
	// Given twice or in another letter case, encoding/json reads the last or
	// the folded member: refused, as any member the view reads.
	for _, ext := range []string{
		`{"prebid":{"is_rewarded_inventory":0,"is_rewarded_inventory":1}}`,
		`{"prebid":{"is_rewarded_inventory":1,"is_rewarded_inventory":0}}`,
		`{"prebid":{},"prebid":{"is_rewarded_inventory":1}}`,
		`{"Prebid":{"is_rewarded_inventory":1}}`,
		`{"prebid":{"Is_Rewarded_Inventory":1}}`,
	} {
		body := `{"id":"r","imp":[{"id":"1","ext":` + ext + `}],"site":{"id":"s"}}`
		if err := p.Parse([]byte(body), &r); !errors.Is(err, ErrInvalid) {
			t.Errorf("imp.ext %s: %v, want refused as invalid", ext, err)
		}
	}
}

// TestNativeDocumentValuesBounded: a native request document in a string
// with more than MaxNativeValues values is NativeBad and not parsed (the
// bid path's bound on a body's values does not see inside strings: 2,600
// assets cost 21.5 ms of CPU a request, an outside audit); a real-sized one,
// and one just under the bound, still parse.
func TestNativeDocumentValuesBounded(t *testing.T) {
	doc := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"ver":"1.2","assets":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":%d,"title":{"len":5}}`, i)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	for _, c := range []struct {
		assets int
		want   NativeStatus
		twice  bool // the document encoded as a string inside the string
	}{
		{6, NativeOK, false},
		{255, NativeOK, false},  // 3 + 4*255 = 1,023 values as counted
		{256, NativeBad, false}, // 1,027
		{2600, NativeBad, false},
		{2600, NativeBad, true},
		{6, NativeOK, true},
	} {
		d := doc(c.assets)
		q, _ := json.Marshal(d)
		if c.twice {
			q, _ = json.Marshal(string(q))
		}
		body := `{"id":"r","imp":[{"id":"1","native":{"request":` + string(q) + `}}]}`
		var p Parser
		var r Request
		r.Reset()
		if err := p.Parse([]byte(body), &r); err != nil {
			t.Fatalf("%d assets: %v", c.assets, err)
		}
		n := r.Imps[0].Native
		if n.Status != c.want {
			t.Errorf("%d assets (twice %v): status %d, want %d", c.assets, c.twice, n.Status, c.want)
		}
		if c.want == NativeOK && len(n.Assets) != c.assets {
			t.Errorf("%d assets: read %d", c.assets, len(n.Assets))
		}
	}
	if ValuesOver([]byte(`{"a":"x,y,z,{,[","b":[1,2]}`), 5) {
		t.Error("commas and brackets inside strings were counted")
	}
	if !ValuesOver([]byte(`{"a":"\",","b":[1,2,3]}`), 4) {
		t.Error("an escaped quote ended the string early or values were missed")
	}
}
