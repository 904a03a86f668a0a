package campaigns

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/prebid/openrtb/v20/native1/response"

	"github.com/openbidder/openbidder/ortb"
)

// nativeCreative compiles one native creative with every asset: a 12-
// character title, a 1200x627 main image, an 80x80 icon, a description,
// sponsored-by and a call to action.
func nativeCreative(t *testing.T, edit func(*NativeConfig)) *Creative {
	t.Helper()
	n := &NativeConfig{Title: "Initech TPSé", Description: "Reports, done.", ImageURL: "https://i.example/m.jpg",
		ImageW: 1200, ImageH: 627, IconURL: "https://i.example/i.png", IconW: 80, IconH: 80, CTA: "Learn more", Sponsored: "Initech"}
	if edit != nil {
		edit(n)
	}
	c := baseConfig("n")
	c.Creatives[0] = CreativeConfig{ID: "n1", Format: "native", LandingURL: "https://n.example/", Secure: true, Native: n}
	return mustCompile(t, []Config{c}).Creatives[0]
}

func TestNativeFill(t *testing.T) {
	title := func(l int64) ortb.NativeAsset { return ortb.NativeAsset{ID: 1, Kind: ortb.AssetTitle, Len: l} }
	img := func(typ, w, h, wmin, hmin int64) ortb.NativeAsset {
		return ortb.NativeAsset{ID: 2, Kind: ortb.AssetImg, Type: typ, W: w, H: h, WMin: wmin, HMin: hmin}
	}
	data := func(typ, l int64) ortb.NativeAsset {
		return ortb.NativeAsset{ID: 3, Kind: ortb.AssetData, Type: typ, Len: l}
	}
	full := nativeCreative(t, nil)
	bare := nativeCreative(t, func(n *NativeConfig) { *n = NativeConfig{Title: "T", ImageURL: "https://i.example/m.jpg"} })
	untyped := nativeCreative(t, func(n *NativeConfig) { n.ImageURL = "https://i.example/render?id=7" })
	mimes := func(a ortb.NativeAsset, m uint8) ortb.NativeAsset { a.MIMEs = m; return a }
	for _, c := range []struct {
		name  string
		cr    *Creative
		asset ortb.NativeAsset
		want  bool
	}{
		{"title fits", full, title(12), true}, // 12 characters, é is one
		{"title too long", full, title(11), false},
		{"title any length", full, title(0), true},
		{"main image exact", full, img(3, 1200, 627, 0, 0), true},
		{"main image other size", full, img(3, 1200, 628, 0, 0), false},
		{"main image width only", full, img(3, 1200, 0, 0, 0), true},
		{"main image min", full, img(3, 0, 0, 600, 314), true},
		{"main image min too big", full, img(3, 0, 0, 1600, 900), false},
		{"min wins over exact", full, img(3, 600, 314, 600, 314), true},
		{"main image without type", full, img(0, 0, 0, 0, 0), true},
		{"icon", full, img(1, 80, 80, 0, 0), true},
		{"logo answered with the icon", full, img(2, 0, 0, 50, 50), true},
		{"icon too small", full, img(1, 0, 0, 100, 100), false},
		{"unknown image type", full, img(500, 0, 0, 0, 0), false},
		{"image size unknown, exact asked", bare, img(3, 1200, 627, 0, 0), false},
		{"image size unknown, no size asked", bare, img(3, 0, 0, 0, 0), true},
		{"no icon", bare, img(1, 0, 0, 0, 0), false},
		{"description", full, data(2, 90), true},
		{"description too long", full, data(2, 10), false},
		{"sponsored", full, data(1, 0), true},
		{"cta", full, data(12, 20), true},
		{"rating not held", full, data(3, 0), false},
		{"no description", bare, data(2, 0), false},
		// img.mimes: the main image is a .jpg, the icon a .png; an image
		// URL without a known extension fits any type.
		{"main image, mimes jpeg", full, mimes(img(3, 0, 0, 0, 0), ortb.ImgJPEG|ortb.ImgPNG), true},
		{"main image, mimes gif only", full, mimes(img(3, 0, 0, 0, 0), ortb.ImgGIF), false},
		{"icon, mimes png", full, mimes(img(1, 0, 0, 0, 0), ortb.ImgPNG), true},
		{"icon, mimes jpeg only", full, mimes(img(1, 0, 0, 0, 0), ortb.ImgJPEG), false},
		{"main image of unknown type, mimes gif", untyped, mimes(img(3, 0, 0, 0, 0), ortb.ImgGIF), true},
		{"video asset", full, ortb.NativeAsset{ID: 4, Kind: ortb.AssetVideo}, false},
		{"invalid asset", full, ortb.NativeAsset{ID: 5}, false},
	} {
		if got := c.cr.Native.fill(&c.asset) >= 0; got != c.want {
			t.Errorf("%s: fill %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNativeFits(t *testing.T) {
	cr := nativeCreative(t, nil)
	n := func(status ortb.NativeStatus, assets ...ortb.NativeAsset) *ortb.Native {
		return &ortb.Native{Status: status, Assets: assets}
	}
	req := func(a ortb.NativeAsset) ortb.NativeAsset { a.Required = true; return a }
	title := ortb.NativeAsset{ID: 1, Kind: ortb.AssetTitle, Len: 90}
	video := ortb.NativeAsset{ID: 9, Kind: ortb.AssetVideo}
	for _, c := range []struct {
		name string
		n    *ortb.Native
		want bool
	}{
		{"absent request: default layout", n(ortb.NativeAbsent), true},
		{"no assets: default layout", n(ortb.NativeOK), true},
		{"unreadable request", n(ortb.NativeBad), false},
		{"required title", n(ortb.NativeOK, req(title), video), true},
		{"required video", n(ortb.NativeOK, title, req(video)), false},
		{"only an optional video", n(ortb.NativeOK, video), false},
	} {
		if got := cr.Native.fits(c.n); got != c.want {
			t.Errorf("%s: fits %v, want %v", c.name, got, c.want)
		}
	}
}

// decodeNative decodes AppendNative's output (adm string content) into the
// Native 1.2 response type of record.
func decodeNative(t *testing.T, adm []byte) (response.Response, bool) {
	t.Helper()
	var doc string
	if err := json.Unmarshal(append(append([]byte{'"'}, adm...), '"'), &doc); err != nil {
		t.Fatalf("adm is not JSON string content: %v\n%s", err, adm)
	}
	var wrapped struct{ Native *response.Response }
	if json.Unmarshal([]byte(doc), &wrapped) == nil && wrapped.Native != nil {
		return *wrapped.Native, true
	}
	var r response.Response
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		t.Fatalf("not a Native response: %v\n%s", err, doc)
	}
	return r, false
}

// The response answers the request's asset ids with only the assets the
// creative fills, in the request's order, and keeps the 1.1 wrapper.
func TestAppendNative(t *testing.T) {
	cr := nativeCreative(t, nil)
	n := &ortb.Native{Status: ortb.NativeOK, Wrapped: true, Assets: []ortb.NativeAsset{
		{ID: 101, Required: true, Kind: ortb.AssetTitle, Len: 25},
		{ID: 102, Kind: ortb.AssetVideo},
		{ID: 103, Kind: ortb.AssetData, Type: 12},
		{ID: 104, Required: true, Kind: ortb.AssetImg, Type: 3, WMin: 600, HMin: 314},
		{ID: 105, Kind: ortb.AssetData, Type: 2, Len: 5}, // too short for the description
		{ID: 106, Kind: ortb.AssetImg, Type: 1},
	}}
	click, imp := `https://b.example/c?t=a&x="q"`, "https://b.example/i?t=b"
	adm := AppendNative(nil, cr, n, []byte(click), []byte(imp))
	r, wrapped := decodeNative(t, adm)
	if !wrapped || r.Ver != "1.1" || r.Link.URL != click || !slices.Equal(r.ImpTrackers, []string{imp}) {
		t.Fatalf("response %+v (wrapped %v)", r, wrapped)
	}
	var ids []int64
	for _, a := range r.Assets {
		ids = append(ids, *a.ID)
	}
	if !slices.Equal(ids, []int64{101, 103, 104, 106}) {
		t.Fatalf("asset ids %v, want 101 103 104 106", ids)
	}
	if r.Assets[0].Title.Text != "Initech TPSé" || r.Assets[1].Data.Value != "Learn more" ||
		r.Assets[2].Img.URL != "https://i.example/m.jpg" || r.Assets[2].Img.W != 1200 || r.Assets[3].Img.URL != "https://i.example/i.png" {
		t.Errorf("assets %+v", r.Assets)
	}
	// The 1.2 form; and the default layout without assets, as before.
	n.Wrapped = false
	if r, wrapped := decodeNative(t, AppendNative(nil, cr, n, nil, nil)); wrapped || r.Ver != "1.2" {
		t.Errorf("1.2 request answered %+v (wrapped %v)", r, wrapped)
	}
	r, _ = decodeNative(t, AppendNative(nil, cr, nil, []byte(click), []byte(imp)))
	ids = ids[:0]
	for _, a := range r.Assets {
		ids = append(ids, *a.ID)
	}
	if !slices.Equal(ids, []int64{NativeAssetTitle, NativeAssetImage, NativeAssetDescription, NativeAssetIcon, NativeAssetSponsored, NativeAssetCTA}) {
		t.Errorf("default layout ids %v", ids)
	}
	if got := string(AppendAdm(nil, cr, []byte(click), []byte(imp))); got != string(AppendNative(nil, cr, nil, []byte(click), []byte(imp))) {
		t.Errorf("AppendAdm of a native creative is not its default layout:\n%s", got)
	}
}
