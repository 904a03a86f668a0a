package ortb

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"sync"

	"github.com/valyala/fastjson"
)

// Parser parses bid requests into a Request without allocating once warm.
// It is reusable but not safe for concurrent use: keep one per pooled request
// context.
//
// Lifetime rule: Parse copies body into the Parser's own buffer (so the
// caller may reuse body at once), and every []byte in the Request points into
// that buffer. They stay valid until the next Parse on the same Parser. The
// bytes are read-only: writing through them corrupts the parser's state.
type Parser struct {
	// MaxImps is how many imps a request keeps whole (Request.Imps; 0: all).
	// Each later imp is read into one scratch imp, for the same errors, and
	// only its id kept (Request.LaterImpIDs): a request of 2,000 imps grew
	// Imps to 2 MB (1,008 bytes an imp) in every pooled request, and the
	// collector scanning them cost about 10 ms of CPU a request (an outside
	// audit), where a bidder reads the first limits.max_imps only.
	MaxImps int
	later   Imp

	jp fastjson.Parser
	// np parses the Native request document inside imp.native.request (a
	// JSON string holding JSON). Only integers are kept from it, so one
	// parser serves every native imp of a request.
	np   fastjson.Parser
	nbuf []byte // the native string np parses (np copies it; it must not be np's own buffer)
	// fixed is the body with its lone surrogate escapes rewritten
	// (surrogate.go), only for a body that has one.
	fixed []byte

	// Per-Parse scratch for values folded in at the end.
	userGeo    Geo
	hasUserGeo bool
	extGDPR    int8
	extUSPriv  []byte
	extGPP     []byte
	extGPPSID  []int64 // capacity reused; hasExtSID says whether it was read
	hasExtSID  bool
	extConsent []byte
	extGPC     bool
	extDSAReq  int8
	extDSAPub  int8
	impExtRwdd bool // the imp being read: imp.ext.prebid.is_rewarded_inventory
}

// Parse parses body (an OpenRTB 2.5 or 2.6 BidRequest, already decompressed)
// into req, which it resets first; req.Version is kept, so the caller may set
// it before or after. The error wraps ErrMalformed (not JSON) or ErrInvalid
// (see FieldError). On error req holds a partial parse and must not be used.
//
// Rules: explicit null equals absent; a member the view reads given twice
// in one object, or spelled other than as the spec spells it in a way
// encoding/json would still match ("BCAT"), is ErrInvalid (visit says why);
// unknown members and ext payloads that are not objects are ignored; the 2.5 ext twins
// regs.ext.gdpr, regs.ext.us_privacy, regs.ext.gpp, regs.ext.gpp_sid and
// user.ext.consent fill Regs and User when the 2.6 member is absent (or an
// empty string or array), and a string twin that differs from its 2.6 member
// is kept beside it (Regs.USPrivacyExt, Regs.GPPExt, User.ConsentExt; two
// different gpp_sid lists are joined; regs.gdpr: either saying 1); at most one of site, app and dooh may be present
// (ErrInvalid: the spec allows one, and targeting reads one);
// Device.Geo is device.geo, else user.geo; imp.native.request is parsed as
// a Native 1.x request (see Native.Status: a bad one is no error, it only
// keeps native creatives out); imp.ext.prebid.is_rewarded_inventory 1 (or
// true), Prebid's 2.5 signal, makes the imp rewarded as imp.rwdd 1 does
// (either says so); User.Segments flattens
// user.data[].segment[].id (empty ids skipped); AT is 2 when absent or 0.
// Keys match exactly as the spec spells them. A lone UTF-16 surrogate escape ("\ud800") reads as
// U+FFFD, as encoding/json reads it (surrogate.go).
//
// Every member the view holds is type-checked (a float where an integer
// belongs, NaN or an out-of-range number included). Members it does not hold
// are skipped unread, and fastjson tolerates some malformed scalars there
// (a number like 1.2.3, an invalid string escape): such a request parses. A
// strict validation pass would double the cost (BenchmarkFastjsonValidate).
func (p *Parser) Parse(body []byte, req *Request) error {
	ver := req.Version
	req.Reset()
	req.Version = ver
	p.userGeo = Geo{}
	p.hasUserGeo = false
	p.extGDPR = Unset
	p.extUSPriv = nil
	p.extGPP = nil
	p.extGPPSID, p.hasExtSID = p.extGPPSID[:0], false
	p.extConsent = nil
	p.extGPC = false
	p.extDSAReq, p.extDSAPub = Unset, Unset

	if i := loneSurrogate(body); i >= 0 {
		p.fixed = append(p.fixed[:0], body...)
		fixSurrogates(p.fixed, i)
		body = p.fixed
	}
	if DepthOver(body, MaxDepth) {
		return &malformedError{msg: errDepth}
	}
	v, err := p.jp.ParseBytes(body)
	if err != nil {
		return &malformedError{msg: err.Error()}
	}
	if v.Type() != fastjson.TypeObject {
		return &FieldError{Reason: "want object, got " + typeName(v)}
	}
	o, _ := v.Object()
	if err := visit(o, func(k []byte, v *fastjson.Value) error {
		return p.requestField(req, k, v)
	}); err != nil {
		return err
	}
	return p.finish(req)
}

// MaxDepth bounds the nesting of objects and arrays in a request body: a
// deeper body is ErrMalformed before fastjson reads it. fastjson's own
// limit is 300, and its error on a value it cannot parse is wrapped once
// more at each level it is nested in (fmt.Errorf, the whole message each
// time): a 700-byte body malformed 299 levels down cost 5 ms and 4.4 MB
// of garbage to refuse, a hundred times the example request (an outside
// audit); 61 levels down, 0.16 ms and 200 KB, 31 levels 0.04 ms and 50 KB.
// The deepest of the 813 shared real requests nests 10 levels and the
// most bracketed holds 65 brackets. 64, not 32 as first set: a body with
// at most MaxDepth brackets is not scanned (DepthOver), and the 1.7 KB
// bench request, 36 brackets, paid 1.2 us a request for the scan.
const MaxDepth = 64

var errDepth = "nesting depth over " + strconv.Itoa(MaxDepth) + " levels"

// DepthOver reports whether the JSON text s nests objects and arrays more
// than n deep, outside strings. bytes.Count bounds it first (a text with
// at most n brackets nests at most n deep): most texts stop there. It
// counts as fastjson nests up to fastjson's first error, so fastjson never
// goes deeper than n on a text it passes.
func DepthOver(s []byte, n int) bool {
	if bytes.Count(s, nvObject)+bytes.Count(s, nvArray) <= n {
		return false
	}
	d := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			// Most of a request's bytes are in strings: skip to the quote
			// that ends this one (IndexByte, not a byte at a time: the
			// 1.7 KB bench request took 2.2 us a byte at a time, 10% of
			// the handler).
			i = stringEnd(s, i+1)
		case '{', '[':
			if d++; d > n {
				return true
			}
		case '}', ']':
			if d > 0 {
				d--
			}
		}
	}
	return false
}

// stringEnd returns the index of the quote that ends the JSON string whose
// content starts at i (one not escaped: preceded by an even number of
// backslashes), or len(s) when none does.
func stringEnd(s []byte, i int) int {
	for {
		j := bytes.IndexByte(s[i:], '"')
		if j < 0 {
			return len(s)
		}
		j += i
		k := j
		for k > i && s[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j
		}
		i = j + 1
	}
}

// malformedError wraps ErrMalformed with fastjson's one-line reason.
type malformedError struct{ msg string }

func (e *malformedError) Error() string { return ErrMalformed.Error() + ": " + e.msg }
func (e *malformedError) Unwrap() error { return ErrMalformed }

// errUnread is what a member function passed to visit returns for a key it
// does not read. visit never returns it.
var errUnread = errors.New("ortb: member not read")

// visit calls f for every member of o, in document order, and stops at the
// first error. f returns errUnread for a member it does not read. A member f
// reads must be there once, spelled as the spec spells it:
//
//   - a key f read that o holds twice is an error ("given more than once").
//     encoding/json keeps the last value of a repeated key, except that a
//     null there leaves a field that is not a pointer as the earlier value
//     set it; an outside audit's "bidfloor":5,"bidfloor":null bid under the
//     5 floor, a repeated site.domain or regs.coppa ending in null got past
//     a block list or COPPA, and a repeated durfloors or user.data was read
//     differently. A request whose meaning depends on the parser is refused.
//   - a key f does not read that folds (as encoding/json matches keys:
//     ASCII case, ſ for s, the Kelvin sign for k) onto one it reads is an
//     error: "BCAT" is no bcat to the spec and this view, but encoding/json
//     reads it as one.
//
// The repeat check costs a bit test per member read: a 128-bit mask of the
// keys read so far, and a scan of o's earlier keys only when the bit is set.
func visit(o *fastjson.Object, f func(k []byte, v *fastjson.Value) error) error {
	var (
		err  error
		mask [2]uint64
		i    int
	)
	o.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		i++
		switch e := f(k, v); {
		case e == errUnread:
			if oddKey(k) {
				err = foldedRead(k, v, f)
			}
			return
		case e != nil:
			err = e
			return
		}
		h := keyBit(k)
		if mask[h>>6]&(1<<(h&63)) != 0 && earlierKey(o, k, i) {
			err = fieldErr(k, "given more than once")
			return
		}
		mask[h>>6] |= 1 << (h & 63)
	})
	return err
}

// keyBit is a key's bit in visit's mask (k is not empty: f reads no empty key).
func keyBit(k []byte) uint {
	return (uint(len(k))*29 + uint(k[0])*7 + uint(k[len(k)-1])*3 + uint(k[len(k)/2])) & 127
}

// earlierKey reports whether one of o's first i-1 members is named k.
func earlierKey(o *fastjson.Object, k []byte, i int) bool {
	j, found := 0, false
	o.Visit(func(k2 []byte, _ *fastjson.Value) {
		j++
		if j < i && string(k2) == string(k) {
			found = true
		}
	})
	return found
}

// oddKey reports whether k has an upper-case ASCII letter or a byte of a
// multi-byte UTF-8 sequence: only such a key can fold onto another.
func oddKey(k []byte) bool {
	for _, c := range k {
		if c >= 0x80 || 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// foldBufs are foldedRead's buffers: one passed to a func value escapes,
// and a key such as user.ext's ConsentedProvidersSettings (Google's) is in
// real requests, so a buffer of its own cost every such request an
// allocation (the review of the change).
var foldBufs = sync.Pool{New: func() any { return new([32]byte) }}

// foldedRead is visit's error for a member f did not read whose key folds
// onto one f reads; nil when it folds onto none. Only the spelling rule is
// reported: whatever f did with the value is discarded with the request.
func foldedRead(k []byte, v *fastjson.Value, f func(k []byte, v *fastjson.Value) error) error {
	buf := foldBufs.Get().(*[32]byte)
	defer foldBufs.Put(buf)
	n := 0
	for i := 0; i < len(k); n++ {
		if n == len(buf) {
			return nil // longer than any member name the view reads
		}
		switch c := k[i]; {
		case c < 0x80:
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[n] = c
			i++
		case c == 0xc5 && i+1 < len(k) && k[i+1] == 0xbf: // U+017F, long s
			buf[n] = 's'
			i += 2
		case c == 0xe2 && i+2 < len(k) && k[i+1] == 0x84 && k[i+2] == 0xaa: // U+212A, Kelvin sign
			buf[n] = 'k'
			i += 3
		default:
			return nil // a character that folds onto no ASCII letter
		}
	}
	if f(buf[:n], v) == errUnread {
		return nil
	}
	return &FieldError{Path: string(buf[:n]), Reason: "written " + strconv.Quote(string(k)) + ": member names are case-sensitive"}
}

func (p *Parser) requestField(req *Request, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "id":
		return getID(k, v, &req.ID)
	case "imp":
		return p.imps(req, k, v)
	case "site":
		if isNull(v) {
			req.HasSite, req.Site = false, req.Site.empty()
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		req.HasSite = true
		return within("site", visit(o, func(k []byte, v *fastjson.Value) error {
			return siteField(&req.Site, k, v)
		}))
	case "app":
		if isNull(v) {
			req.HasApp, req.App = false, req.App.empty()
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		req.HasApp = true
		return within("app", visit(o, func(k []byte, v *fastjson.Value) error {
			return appField(&req.App, k, v)
		}))
	case "dooh":
		if isNull(v) {
			req.HasDOOH, req.DOOH = false, req.DOOH.empty()
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		req.HasDOOH = true
		return within("dooh", visit(o, func(k []byte, v *fastjson.Value) error {
			return doohField(&req.DOOH, k, v)
		}))
	case "device":
		if isNull(v) {
			req.HasDevice, req.Device = false, Device{DNT: Unset, LMT: Unset}
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		req.HasDevice = true
		return within("device", visit(o, func(k []byte, v *fastjson.Value) error {
			return deviceField(&req.Device, k, v)
		}))
	case "user":
		if isNull(v) {
			req.HasUser, req.User = false, req.User.empty()
			p.userGeo, p.hasUserGeo, p.extConsent = Geo{}, false, nil
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		req.HasUser = true
		return within("user", visit(o, func(k []byte, v *fastjson.Value) error {
			return p.userField(&req.User, k, v)
		}))
	case "regs":
		if isNull(v) {
			req.Regs = req.Regs.empty()
			p.extGDPR, p.extUSPriv, p.extGPP, p.extGPC = Unset, nil, nil, false
			p.extGPPSID, p.hasExtSID = p.extGPPSID[:0], false
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		return within("regs", visit(o, func(k []byte, v *fastjson.Value) error {
			return p.regsField(&req.Regs, k, v)
		}))
	case "tmax":
		return getInt(k, v, &req.TMax)
	case "at":
		return getInt(k, v, &req.AT)
	case "test":
		return getBool(k, v, &req.Test)
	case "cattax":
		return getInt(k, v, &req.CatTax)
	case "cur":
		return getStrings(k, v, &req.Cur)
	case "bcat":
		return getStrings(k, v, &req.BCat)
	case "acat":
		return getStrings(k, v, &req.ACat)
	case "badv":
		return getStrings(k, v, &req.BAdv)
	case "bapp":
		return getStrings(k, v, &req.BApp)
	case "wlang":
		return getStrings(k, v, &req.WLang)
	case "wlangb":
		return getStrings(k, v, &req.WLangB)
	case "wseat":
		return getStrings(k, v, &req.WSeat)
	case "bseat":
		return getStrings(k, v, &req.BSeat)
	}
	return errUnread
}

// finish folds the 2.5 twins and the geo fallback in and checks the required
// members.
func (p *Parser) finish(req *Request) error {
	if len(req.ID) == 0 {
		return &FieldError{Path: "id", Reason: "missing or empty"}
	}
	if len(req.Imps) == 0 {
		return &FieldError{Path: "imp", Reason: "missing or empty"}
	}
	if b2i(req.HasSite)+b2i(req.HasApp)+b2i(req.HasDOOH) > 1 {
		// Targeting reads one of them: the other's block lists would go
		// unchecked (a blocked app that also sends a site).
		return &FieldError{Path: "site, app, dooh", Reason: "more than one present"}
	}
	if req.AT == 0 {
		req.AT = 2
	}
	if req.Regs.GDPR == Unset || p.extGDPR == True {
		// Either field saying 1 applies GDPR: with "gdpr":0 beside
		// "ext":{"gdpr":1} the sender may have meant it to apply, and
		// reading 0 would let user-level data through.
		req.Regs.GDPR = max(req.Regs.GDPR, p.extGDPR)
	}
	// A 2.5 ext twin that differs from the 2.6 field is kept beside it:
	// which one the sender meant is a doubt, and package privacy resolves
	// it the restrictive way (an outside audit got user-level bids with
	// "us_privacy":"1NNN" beside "ext":{"us_privacy":"1YYN"}).
	req.Regs.USPrivacy, req.Regs.USPrivacyExt = twin(req.Regs.USPrivacy, p.extUSPriv)
	req.Regs.GPP, req.Regs.GPPExt = twin(req.Regs.GPP, p.extGPP)
	req.User.Consent, req.User.ConsentExt = twin(req.User.Consent, p.extConsent)
	if p.hasExtSID && !slices.Equal(req.Regs.GPPSID, p.extGPPSID) {
		req.Regs.GPPSID = append(req.Regs.GPPSID, p.extGPPSID...) // either list's sections apply
	}
	req.User.Country = p.userGeo.Country
	req.Regs.GPC = p.extGPC
	req.Regs.DSARequired, req.Regs.DSAPubRender = p.extDSAReq, p.extDSAPub
	if !req.Device.HasGeo && p.hasUserGeo {
		req.Device.Geo = p.userGeo
		req.Device.HasGeo, req.Device.GeoFromUser = true, true
	}
	return nil
}

// twin folds a 2.5 ext field into its 2.6 field: the ext value where the
// 2.6 one is empty, else the 2.6 one and, when the ext one differs, it.
func twin(v26, ext []byte) (v, other []byte) {
	switch {
	case len(v26) == 0:
		return ext, nil
	case len(ext) == 0 || bytes.Equal(v26, ext):
		return v26, nil
	}
	return v26, ext
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
