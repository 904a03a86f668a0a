package campaigns

import (
	"bytes"
	"encoding/json"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openbidder/openbidder/ortb"
)

// Native creatives answer a Native 1.x request asset by asset: each asset
// of the request is filled by one of the creative's assets when the kind,
// the type and the limits agree (NativeAssets.fill), the response carries
// the request's asset ids and only the filled assets, and a creative that
// cannot fill every required asset does not bid (Snapshot.Match).
//
// Native 1.2 asset types: img 1 icon, 3 main image (2, logo, from 1.0, is
// answered with the icon; an img without type with the main image); data 1
// sponsored, 2 description, 12 call to action. Other data types (rating,
// price, ...) and video assets are never filled.

// Native 1.2 response asset ids of the default layout, used when the
// request gives no assets (an empty or absent native request).
const (
	NativeAssetTitle       = 1
	NativeAssetImage       = 2
	NativeAssetDescription = 3
	NativeAssetIcon        = 4
	NativeAssetSponsored   = 5
	NativeAssetCTA         = 6
)

// Native image and data asset types (Native 1.2).
const (
	nativeImgIcon       = 1
	nativeImgLogo       = 2 // Native 1.0; answered with the icon
	nativeImgMain       = 3
	nativeDataSponsored = 1
	nativeDataDesc      = 2
	nativeDataCTA       = 12
)

// NativeAssets is a native creative's assets compiled for answering
// requests. Immutable once compiled.
type NativeAssets struct {
	list []nativeAsset // the default layout's order
}

type nativeAsset struct {
	defaultID int64
	kind      uint8 // ortb.AssetTitle, AssetImg or AssetData
	typ       int64 // img or data type
	chars     int64 // title or data text length, in characters
	w, h      int64 // img size; 0 unknown
	mime      uint8 // img type (ortb.ImgJPEG...) by its URL's extension; 0 unknown
	// body is the asset's member without the id, as JSON string content
	// of the adm (escaped twice): \"title\":{\"text\":\"...\"}
	body []byte
}

func compileNative(n *NativeConfig) *NativeAssets {
	na := &NativeAssets{}
	add := func(id int64, kind uint8, typ int64, text string, w, h int64, member string, v any) {
		var mime uint8
		if img, ok := v.(nativeImg); ok {
			mime = imgMIMEOf(img.URL)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			panic("campaigns: native asset: " + err.Error()) // plain structs cannot fail
		}
		doc := `"` + member + `":` + string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		na.list = append(na.list, nativeAsset{defaultID: id, kind: kind, typ: typ, mime: mime,
			chars: int64(utf8.RuneCountInString(text)), w: w, h: h, body: appendJSONContent(nil, []byte(doc))})
	}
	add(NativeAssetTitle, ortb.AssetTitle, 0, n.Title, 0, 0, "title", nativeTitle{Text: n.Title})
	if n.ImageURL != "" {
		add(NativeAssetImage, ortb.AssetImg, nativeImgMain, "", n.ImageW, n.ImageH, "img",
			nativeImg{Type: nativeImgMain, URL: n.ImageURL, W: n.ImageW, H: n.ImageH})
	}
	if n.Description != "" {
		add(NativeAssetDescription, ortb.AssetData, nativeDataDesc, n.Description, 0, 0, "data",
			nativeData{Type: nativeDataDesc, Value: n.Description})
	}
	if n.IconURL != "" {
		add(NativeAssetIcon, ortb.AssetImg, nativeImgIcon, "", n.IconW, n.IconH, "img",
			nativeImg{Type: nativeImgIcon, URL: n.IconURL, W: n.IconW, H: n.IconH})
	}
	if n.Sponsored != "" {
		add(NativeAssetSponsored, ortb.AssetData, nativeDataSponsored, n.Sponsored, 0, 0, "data",
			nativeData{Type: nativeDataSponsored, Value: n.Sponsored})
	}
	if n.CTA != "" {
		add(NativeAssetCTA, ortb.AssetData, nativeDataCTA, n.CTA, 0, 0, "data",
			nativeData{Type: nativeDataCTA, Value: n.CTA})
	}
	return na
}

type nativeTitle struct {
	Text string `json:"text"`
}

type nativeImg struct {
	Type int64  `json:"type,omitempty"`
	URL  string `json:"url"`
	W    int64  `json:"w,omitempty"`
	H    int64  `json:"h,omitempty"`
}

type nativeData struct {
	Type  int64  `json:"type,omitempty"`
	Value string `json:"value"`
}

// fill returns the index of the creative's asset that answers the
// request's asset a, or -1.
//
// A title fits a.Len (the most characters; 0: any); so does a data value
// of the asked type. An image of the asked type fits a.WMin x a.HMin as a
// minimum when either is given, else a.W x a.H exactly (Native 1.2: "if
// only w is included, it should be considered an exact requirement"); an
// image of unknown size fits only an asset that sets no size.
func (na *NativeAssets) fill(a *ortb.NativeAsset) int {
	for i := range na.list {
		c := &na.list[i]
		if c.kind != a.Kind {
			continue
		}
		switch a.Kind {
		case ortb.AssetTitle:
			if a.Len <= 0 || c.chars <= a.Len {
				return i
			}
		case ortb.AssetData:
			if c.typ == a.Type && (a.Len <= 0 || c.chars <= a.Len) {
				return i
			}
		case ortb.AssetImg:
			if c.typ == imgType(a.Type) && imgFits(c.w, c.h, a) && (a.MIMEs == 0 || c.mime == 0 || a.MIMEs&c.mime != 0) {
				return i
			}
		}
	}
	return -1
}

// imgMIMEOf is the image type a native image URL's extension names
// (.jpg/.jpeg, .png, .gif, .webp), 0 when it names none of them: an image
// of unknown type fills an asset whatever mimes it lists, as a VAST
// wrapper's files are taken on trust. Unread before, a JPEG filled a
// GIF-only asset (an outside conformance audit).
func imgMIMEOf(u string) uint8 {
	p, err := url.Parse(u)
	if err != nil {
		return 0
	}
	switch strings.ToLower(path.Ext(p.Path)) {
	case ".jpg", ".jpeg":
		return ortb.ImgJPEG
	case ".png":
		return ortb.ImgPNG
	case ".gif":
		return ortb.ImgGIF
	case ".webp":
		return ortb.ImgWebP
	}
	return 0
}

func imgType(t int64) int64 {
	switch t {
	case 0:
		return nativeImgMain
	case nativeImgLogo:
		return nativeImgIcon
	}
	return t
}

func imgFits(w, h int64, a *ortb.NativeAsset) bool {
	if a.WMin > 0 || a.HMin > 0 {
		return w >= a.WMin && h >= a.HMin
	}
	return (a.W <= 0 || w == a.W) && (a.H <= 0 || h == a.H)
}

// fits reports whether the creative can answer the imp's native request:
// it is readable, and the creative fills every required asset and at least
// one asset. A request without assets (absent, empty, or {}) is answered
// with the default layout.
func (na *NativeAssets) fits(n *ortb.Native) bool {
	if n.Status == ortb.NativeBad {
		return false
	}
	if len(n.Assets) == 0 {
		return true
	}
	filled := 0
	for i := range n.Assets {
		a := &n.Assets[i]
		if na.fill(a) >= 0 {
			filled++
		} else if a.Required {
			return false
		}
	}
	return filled > 0
}

// AppendNative appends the ad markup of native creative cr answering the
// imp's native object n as JSON string content (without the surrounding
// quotes): a Native 1.2 response document ({"native":{...}} with ver 1.1
// when the request used that form) with the request's asset ids, only the
// assets the creative fills, link.url = clickURL and imptrackers = [impURL],
// the URLs escaped twice. A nil n, or one without assets, gets the default
// layout (ids NativeAssetTitle..NativeAssetCTA). Call it only for a
// candidate Match returned for n's imp. No allocation when dst has room.
func AppendNative(dst []byte, cr *Creative, n *ortb.Native, clickURL, impURL []byte) []byte {
	na := cr.Native
	wrapped := n != nil && n.Wrapped
	if wrapped {
		dst = append(dst, `{\"native\":{\"ver\":\"1.1\",\"assets\":[`...)
	} else {
		dst = append(dst, `{\"ver\":\"1.2\",\"assets\":[`...)
	}
	k := 0
	if n == nil || len(n.Assets) == 0 {
		for i := range na.list {
			dst = appendNativeAsset(dst, k, na.list[i].defaultID, na.list[i].body)
			k++
		}
	} else {
		for i := range n.Assets {
			if j := na.fill(&n.Assets[i]); j >= 0 {
				dst = appendNativeAsset(dst, k, n.Assets[i].ID, na.list[j].body)
				k++
			}
		}
	}
	dst = append(dst, `],\"link\":{\"url\":\"`...)
	dst = appendJSONNested(dst, clickURL)
	dst = append(dst, `\"},\"imptrackers\":[\"`...)
	dst = appendJSONNested(dst, impURL)
	dst = append(dst, `\"]}`...)
	if wrapped {
		dst = append(dst, '}')
	}
	return dst
}

func appendNativeAsset(dst []byte, k int, id int64, body []byte) []byte {
	if k > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, `{\"id\":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, ',')
	dst = append(dst, body...)
	return append(dst, '}')
}
