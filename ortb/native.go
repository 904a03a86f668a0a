package ortb

import (
	"bytes"
	"errors"
	"math"

	"github.com/valyala/fastjson"
)

// The Native request document. imp.native.request is a JSON string holding
// a Native 1.x request ({"ver":"1.2","assets":[...]}, or the 1.0/1.1 form
// {"native":{...}}); some exchanges send the document itself as an object,
// or a string holding a string holding it. Parse reads its assets with a
// second reused fastjson parser (Parser.np), keeping only integers, so the
// view stays zero-allocation and one parser serves every native imp.
//
// A document that is not JSON, not an object, or has a wrongly typed member
// that Assets holds is NativeBad: no native creative can answer it, but the
// bid request is not refused for it (its other imps and formats still bid).
// Members Assets does not hold (ver, layout, eventtrackers...) are not
// read; img.mimes is held as bits (ImgJPEG...), strings not kept. A wrong type costs no allocation; a document fastjson cannot
// parse, or a number with a fraction or exponent where an integer belongs,
// costs the few allocations of fastjson's error value.

func (p *Parser) nativeField(n *Native, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "request":
		n.Request, n.Status, n.Wrapped, n.Assets = nil, NativeAbsent, false, n.Assets[:0]
		switch v.Type() {
		case fastjson.TypeString:
			n.Request, _ = v.StringBytes()
			p.nativeString(n, n.Request)
		case fastjson.TypeObject:
			readNative(n, v)
		case fastjson.TypeNull:
		default:
			return wantErr(k, "string", v)
		}
		return nil
	case "ver":
		return getString(k, v, &n.Ver)
	case "battr":
		return getInts(k, v, &n.BAttr)
	}
	return errUnread
}

// nativeString parses a native request string; a string inside it (the
// request encoded twice) is parsed once more.
func (p *Parser) nativeString(n *Native, s []byte) {
	if len(s) == 0 {
		return // an empty request string: absent
	}
	for range 2 {
		if ValuesOver(s, MaxNativeValues) || DepthOver(s, maxNativeDepth) {
			break // NativeBad before fastjson builds a value for each, or an error per level
		}
		p.nbuf = append(p.nbuf[:0], s...) // np must not parse its own buffer
		if i := loneSurrogate(p.nbuf); i >= 0 {
			fixSurrogates(p.nbuf, i)
		}
		v, err := p.np.ParseBytes(p.nbuf)
		if err != nil {
			break
		}
		if v.Type() != fastjson.TypeString {
			readNative(n, v)
			return
		}
		s, _ = v.StringBytes()
	}
	n.Status = NativeBad
}

// readNative reads a native request document into n. Type errors mark it
// NativeBad without building an error: no allocation, whatever the input.
// Its objects are read through visit as the request's are: a member read
// given twice, or spelled so that encoding/json would fold it onto one, is
// NativeBad too ("w":300,"w":null was a width of 0 here and 300 to
// encoding/json: the review of 8e1596a).
func readNative(n *Native, v *fastjson.Value) {
	if v.Type() != fastjson.TypeObject {
		n.Status = NativeBad
		return
	}
	o, _ := v.Object()
	var wrapper *fastjson.Object
	var assets *fastjson.Value
	err := visit(o, func(k []byte, v *fastjson.Value) error {
		switch string(k) {
		case "native":
			if v.Type() == fastjson.TypeObject {
				wrapper, _ = v.Object()
			}
			return nil
		case "assets":
			assets = v
			return nil
		}
		return errUnread
	})
	if err == nil && wrapper != nil {
		n.Wrapped, assets = true, nil
		err = visit(wrapper, func(k []byte, v *fastjson.Value) error {
			if string(k) != "assets" {
				return errUnread
			}
			assets = v
			return nil
		})
	}
	n.Status = NativeOK
	n.Assets = n.Assets[:0]
	ok := err == nil
	if ok && assets != nil {
		switch assets.Type() {
		case fastjson.TypeNull:
		case fastjson.TypeArray:
			a, _ := assets.Array()
			for _, e := range a {
				if ok = readAsset(n.nextAsset(), e); !ok {
					break
				}
			}
		default:
			ok = false
		}
	}
	if !ok {
		n.Status, n.Wrapped, n.Assets = NativeBad, false, n.Assets[:0]
	}
}

func (n *Native) nextAsset() *NativeAsset {
	n.Assets = append(n.Assets, NativeAsset{})
	return &n.Assets[len(n.Assets)-1]
}

// errNativeBad is a native member function's answer to a wrongly typed
// member: the document is NativeBad (never returned from Parse).
var errNativeBad = errors.New("ortb: native member of the wrong type")

// nIntErr is nInt for a visit function.
func nIntErr(v *fastjson.Value, dst *int64) error {
	if !nInt(v, dst) {
		return errNativeBad
	}
	return nil
}

// readAsset reads one assets[] element (null reads as an empty asset); false
// on a wrongly typed member.
func readAsset(a *NativeAsset, v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeObject:
	default:
		return false
	}
	o, _ := v.Object()
	var has [AssetData + 1]bool
	err := visit(o, func(k []byte, v *fastjson.Value) error {
		switch string(k) {
		case "id":
			return nIntErr(v, &a.ID)
		case "required":
			var r int64
			err := nIntErr(v, &r)
			if err == nil && (r < math.MinInt8 || r > math.MaxInt8) {
				err = errNativeBad // Native 1.2's is an int8: encoding/json refuses the document
			}
			a.Required = r != 0
			return err
		case "title", "img", "video", "data":
			if !a.member(k, v, &has) {
				return errNativeBad
			}
			return nil
		}
		return errUnread
	})
	n := 0
	for kind, in := range has {
		if in {
			a.Kind = uint8(kind)
			n++
		}
	}
	if n != 1 { // none, or more than one: not a valid asset
		*a = NativeAsset{ID: a.ID, Required: a.Required}
	}
	return err == nil
}

// member reads an asset's title, img, video or data object; null makes it
// absent. Of video only its presence matters.
func (a *NativeAsset) member(k []byte, v *fastjson.Value, has *[AssetData + 1]bool) bool {
	kind := AssetTitle
	switch string(k) {
	case "img":
		kind = AssetImg
	case "video":
		kind = AssetVideo
	case "data":
		kind = AssetData
	}
	switch v.Type() {
	case fastjson.TypeNull:
		has[kind] = false
		return true
	case fastjson.TypeObject:
		has[kind] = true
	default:
		return false
	}
	if kind == AssetVideo {
		return true
	}
	o, _ := v.Object()
	return visit(o, func(k []byte, v *fastjson.Value) error {
		switch kind {
		case AssetTitle:
			if string(k) == "len" {
				return nIntErr(v, &a.Len)
			}
		case AssetData:
			switch string(k) {
			case "type":
				return nIntErr(v, &a.Type)
			case "len":
				return nIntErr(v, &a.Len)
			}
		case AssetImg:
			switch string(k) {
			case "mimes":
				if !nMIMEs(v, &a.MIMEs) {
					return errNativeBad
				}
				return nil
			case "type":
				return nIntErr(v, &a.Type)
			case "w":
				return nIntErr(v, &a.W)
			case "h":
				return nIntErr(v, &a.H)
			case "wmin":
				return nIntErr(v, &a.WMin)
			case "hmin":
				return nIntErr(v, &a.HMin)
			}
		}
		return errUnread
	}) == nil
}

// Image MIME types of a native img asset's mimes (NativeAsset.MIMEs), as
// bits: what a creative's image can be told apart by.
const (
	ImgJPEG  uint8 = 1 << iota // image/jpeg (image/jpg)
	ImgPNG                     // image/png
	ImgGIF                     // image/gif
	ImgWebP                    // image/webp
	ImgOther                   // any other type named
)

// ImgMIMEBit is the bit of image MIME type t (letter case aside).
func ImgMIMEBit(t []byte) uint8 {
	switch {
	case bytes.EqualFold(t, []byte("image/jpeg")), bytes.EqualFold(t, []byte("image/jpg")):
		return ImgJPEG
	case bytes.EqualFold(t, []byte("image/png")):
		return ImgPNG
	case bytes.EqualFold(t, []byte("image/gif")):
		return ImgGIF
	case bytes.EqualFold(t, []byte("image/webp")):
		return ImgWebP
	}
	return ImgOther
}

// nMIMEs reads an img asset's mimes (an array of strings; null or empty:
// any) into bits; false for any other type.
func nMIMEs(v *fastjson.Value, dst *uint8) bool {
	*dst = 0
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeArray:
	default:
		return false
	}
	arr, _ := v.Array()
	for _, e := range arr {
		s, err := e.StringBytes()
		if err != nil {
			return false
		}
		*dst |= ImgMIMEBit(bytes.TrimSpace(s))
	}
	return true
}

// nInt reads an integer member of the native document (null reads as 0);
// false for any other type, a fraction or an overflow.
func nInt(v *fastjson.Value, dst *int64) bool {
	switch v.Type() {
	case fastjson.TypeNumber:
		n, ok := toInt(v)
		*dst = n
		return ok
	case fastjson.TypeNull:
		*dst = 0
		return true
	}
	return false
}

// MaxNativeValues bounds the JSON values of a native request document held
// in a string (imp.native.request): one with more is NativeBad, unparsed.
// The bid path bounds a large body's values (4,096) because fastjson builds
// a value for each before anything is read, but it counts values outside
// strings only, and this document is one string there: 2,600 img assets in
// a 212 KB body (7.9 KB gzipped) took 21.5 ms of CPU per request against
// 0.5 ms for the example request, and two connections of them answered 36%
// of other requests 204 tmax (an outside audit). A Native 1.2 request with
// every asset kind and its event trackers has well under 200 values.
const MaxNativeValues = 1 << 10

// maxNativeDepth bounds the nesting of a native request document held in a
// string: one deeper is NativeBad, unparsed. A Native 1.2 request nests 6
// deep ({"native":{"assets":[{"img":{"mimes":[...]}}]}}). fastjson's error
// on a document nested 301 deep cost 12 ms and 4.4 MB (it wraps the whole
// message once per level), and the body's own bounds do not see inside the
// string: 150 such imps in a 1.3 KB gzipped request took 1.5 s of CPU to
// parse (an outside audit).
const maxNativeDepth = 16

// ValuesOver reports whether the JSON text s holds more than n values: a
// value is the first of the text, follows a comma or opens a container,
// outside strings (a keywords string of 4,200 commas is one value: counted,
// a 29 KB request of 57 values was refused as over 4,096, an outside audit).
// bytes.Count of the three (SIMD) bounds it first: most texts stop there;
// the exact walk, a byte at a time (a string of escaped quotes costs it as
// much as any other: under 1 ms for 256 KB), stops once it passes n. The
// bid path bounds a large body with it, and nativeString a native document.
func ValuesOver(s []byte, n int) bool {
	if 1+bytes.Count(s, nvComma)+bytes.Count(s, nvObject)+bytes.Count(s, nvArray) <= n {
		return false
	}
	c, in := 1, false
	for i := 0; i < len(s); i++ {
		b := s[i]
		if in {
			if b == '\\' {
				i++ // the escaped byte: a quote there does not end the string
			} else if b == '"' {
				in = false
			}
			continue
		}
		switch b {
		case '"':
			in = true
		case ',', '{', '[':
			if c++; c > n {
				return true
			}
		}
	}
	return false
}

var (
	nvComma  = []byte(",")
	nvObject = []byte("{")
	nvArray  = []byte("[")
)
