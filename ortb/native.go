package ortb

import "github.com/valyala/fastjson"

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
// Members Assets does not hold (ver, layout, eventtrackers, img.mimes...)
// are not read. A wrong type costs no allocation; a document fastjson cannot
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
func readNative(n *Native, v *fastjson.Value) {
	if v.Type() != fastjson.TypeObject {
		n.Status = NativeBad
		return
	}
	o, _ := v.Object()
	if w := o.Get("native"); w != nil && w.Type() == fastjson.TypeObject {
		n.Wrapped = true
		o, _ = w.Object()
	}
	n.Status = NativeOK
	ok := true
	o.Visit(func(k []byte, v *fastjson.Value) {
		if !ok || string(k) != "assets" {
			return
		}
		n.Assets = n.Assets[:0] // a repeated key replaces
		switch v.Type() {
		case fastjson.TypeNull:
			return
		case fastjson.TypeArray:
		default:
			ok = false
			return
		}
		a, _ := v.Array()
		for _, e := range a {
			if ok = readAsset(n.nextAsset(), e); !ok {
				return
			}
		}
	})
	if !ok {
		n.Status, n.Wrapped, n.Assets = NativeBad, false, n.Assets[:0]
	}
}

func (n *Native) nextAsset() *NativeAsset {
	n.Assets = append(n.Assets, NativeAsset{})
	return &n.Assets[len(n.Assets)-1]
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
	ok := true
	o.Visit(func(k []byte, v *fastjson.Value) {
		if !ok {
			return
		}
		switch string(k) {
		case "id":
			ok = nInt(v, &a.ID)
		case "required":
			var r int64
			ok = nInt(v, &r)
			a.Required = r != 0
		case "title", "img", "video", "data":
			ok = a.member(k, v, &has)
		}
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
	return ok
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
	ok := true
	o.Visit(func(k []byte, v *fastjson.Value) {
		if !ok {
			return
		}
		switch kind {
		case AssetTitle:
			if string(k) == "len" {
				ok = nInt(v, &a.Len)
			}
		case AssetData:
			switch string(k) {
			case "type":
				ok = nInt(v, &a.Type)
			case "len":
				ok = nInt(v, &a.Len)
			}
		case AssetImg:
			switch string(k) {
			case "type":
				ok = nInt(v, &a.Type)
			case "w":
				ok = nInt(v, &a.W)
			case "h":
				ok = nInt(v, &a.H)
			case "wmin":
				ok = nInt(v, &a.WMin)
			case "hmin":
				ok = nInt(v, &a.HMin)
			}
		}
	})
	return ok
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
