// Package ortb is the bidder's zero-allocation view of an OpenRTB 2.5/2.6 bid
// request: the fields the bid path reads, parsed with a reused parser into a
// pooled Request. github.com/prebid/openrtb/v20 stays the schema of record;
// tests decode every fixture both ways and compare.
//
// Lifetime rule: every []byte in a Request points into the Parser's buffers
// and is valid only until the next Parse or Reset on the same Parser/Request.
// Clone anything that must outlive the request (a cache key, a log line).
package ortb

// Tri-state flags: OpenRTB uses 0/1 integers where "absent" matters
// (regs.gdpr, imp.secure, regs.coppa). Unset means the field was absent or null.
const (
	Unset int8 = -1
	False int8 = 0
	True  int8 = 1
)

// Media types, as in OpenRTB 2.6 bid.mtype.
const (
	MediaBanner = 1
	MediaVideo  = 2
	MediaAudio  = 3
	MediaNative = 4
)

// Request is the parsed bid request. Reuse it: Reset keeps the capacity of
// every slice.
type Request struct {
	ID      []byte
	Version []byte // x-openrtb-version header, when the caller sets it
	Imps    []Imp
	// LaterImpIDs are the ids of the imps past Parser.MaxImps, in request
	// order: their other fields are checked as any imp's, and not kept.
	LaterImpIDs [][]byte

	TMax int64 // milliseconds; 0 = not given
	AT   int64 // auction type: 1 first price, 2 second price (default 2)
	Test bool

	Cur  [][]byte // allowed bid currencies
	BCat [][]byte // blocked IAB categories
	ACat [][]byte // allowed advertiser categories (2.6): a bid's every category must be one
	BAdv [][]byte // blocked advertiser domains
	BApp [][]byte // blocked app bundles
	// WLang and WLangB are the allowed languages of creatives (2.6 wlang,
	// ISO-639-1-alpha-2; wlangb, BCP 47), as sent; empty: any.
	WLang  [][]byte
	WLangB [][]byte
	WSeat  [][]byte
	BSeat  [][]byte

	// CatTax is request.cattax, the taxonomy of bcat and acat (2.6; 0 when absent,
	// which means 1: IAB Content Category Taxonomy 1.0).
	CatTax int64

	HasSite bool
	HasApp  bool
	HasDOOH bool
	Site    Site // filled when HasSite
	App     App  // filled when HasApp
	DOOH    DOOH // filled when HasDOOH

	HasDevice bool
	Device    Device

	HasUser bool
	User    User

	Regs Regs
}

// Publisher is site.publisher or app.publisher.
type Publisher struct {
	ID     []byte
	Domain []byte
}

// Site is request.site.
type Site struct {
	ID        []byte
	Domain    []byte
	Page      []byte
	Cat       [][]byte
	CatTax    int64 // taxonomy of Cat (0: absent, meaning 1)
	Publisher Publisher
	PageCats
}

// PageCats are a site's or app's categories beside cat: the current page's
// and section's (pagecat, sectioncat, in cattax's taxonomy) and the
// content's (content.cat, in content.cattax's). Category blocks read them
// with cat: a campaign blocking IAB26 must not bid on a page the request
// says is IAB26 because the site as a whole is IAB12.
type PageCats struct {
	PageCat       [][]byte // pagecat, then sectioncat
	ContentCat    [][]byte
	ContentCatTax int64 // taxonomy of ContentCat (0: absent, meaning 1)
}

// App is request.app.
type App struct {
	ID        []byte
	Bundle    []byte
	Domain    []byte
	Cat       [][]byte
	CatTax    int64 // taxonomy of Cat (0: absent, meaning 1)
	Publisher Publisher
	PageCats
}

// DOOH is request.dooh (2.6): a digital out-of-home screen, sent instead of
// site or app.
type DOOH struct {
	ID           []byte
	Domain       []byte
	VenueType    [][]byte // dooh.venuetype, as sent (OpenOOH venue ids)
	VenueTypeTax int64    // dooh.venuetypetax (0: absent)
	Publisher    Publisher
	PageCats     // content.cat only (DOOH has no pagecat or sectioncat)
}

// Geo is device.geo (or user.geo when device.geo is absent).
type Geo struct {
	Country      []byte // ISO-3166-1 alpha-3, as sent
	Region       []byte
	Metro        []byte // Nielsen DMA code (or the exchange's metro code)
	City         []byte
	UTCOffset    int64 // minutes; HasUTCOffset says whether it was sent
	HasUTCOffset bool
	Lat, Lon     float64
}

// Device is request.device.
type Device struct {
	UA         []byte
	IP         []byte
	IFA        []byte
	DeviceType int64
	Make       []byte
	Model      []byte
	OS         []byte
	OSV        []byte
	Language   []byte // ISO-639-1-alpha-2
	LangB      []byte // BCP 47 (2.6 langb)
	Carrier    []byte
	ConnType   int64
	W, H       int64
	DNT        int8
	LMT        int8
	// ATTS is device.ext.atts, Apple's App Tracking Transparency status
	// (0 not determined, 1 restricted, 2 denied, 3 authorized); see
	// TrackingLimited.
	ATTS   int64
	Geo    Geo  // device.geo, else user.geo
	HasGeo bool // device.geo or user.geo was sent (even when HasDevice is false)
	// GeoFromUser: Geo is user.geo (device.geo was absent), the user's
	// home location: a profile field, dropped where user-level data is not
	// allowed (Request.DropUserLevel).
	GeoFromUser bool
}

// User is request.user. Segments flattens user.data[].segment[].id.
type User struct {
	ID       []byte
	BuyerUID []byte
	Yob      int64
	Gender   []byte
	Consent  []byte // user.consent (2.6) or user.ext.consent (2.5)
	// ConsentExt is user.ext.consent when user.consent is sent too and
	// differs: a doubt, both must allow (package privacy).
	ConsentExt []byte
	Segments   [][]byte
	// Country is user.geo.country (the user's home country), read for
	// where privacy laws apply even when device.geo names none.
	Country []byte
}

// Regs is request.regs with the 2.5 ext twins folded in (the 2.6 field where
// sent; a twin that differs is kept beside it).
// The consent strings are raw: package privacy decodes them.
type Regs struct {
	COPPA     int8
	GDPR      int8
	USPrivacy []byte  // CCPA string, "1YNN" style
	GPP       []byte  // IAB GPP string
	GPPSID    []int64 // gpp_sid: the GPP section ids that apply to this request (with regs.ext.gpp_sid's when both are sent)
	GPC       bool    // regs.ext.gpc "1": the user's browser sends Global Privacy Control
	// USPrivacyExt and GPPExt are regs.ext's us_privacy and gpp when the
	// 2.6 field is sent too and differs: a doubt, resolved the restrictive
	// way (package privacy reads both).
	USPrivacyExt []byte
	GPPExt       []byte
	// DSARequired and DSAPubRender are regs.ext.dsa's dsarequired and
	// pubrender (the IAB's DSA transparency extension), Unset when absent:
	// dsarequired 2 and 3 ask every bid for its transparency (bid.ext.dsa);
	// pubrender 0 says the publisher cannot render it.
	DSARequired, DSAPubRender int8
}

// Size is a width and height in pixels.
type Size struct{ W, H int64 }

// Banner is imp.banner.
type Banner struct {
	W, H   int64
	Format []Size
	// WMin, WMax, HMin, HMax: 2.5's size range (deprecated in favour of
	// format); 0 is no bound.
	WMin, WMax, HMin, HMax int64
	BAttr                  []int64
	BType                  []int64 // blocked banner ad types (1 XHTML text, 2 XHTML banner, 3 JavaScript, 4 iframe)
	Pos                    int64
	// API lists the API frameworks the placement supports (3 MRAID 1.0, 5
	// MRAID 2.0, 6 MRAID 3.0, 7 OMID 1.0, ...); one not listed is not
	// supported.
	API []int64
}

// Pod is the ad-pod part of imp.video and imp.audio (2.6).
type Pod struct {
	PodID     []byte
	PodSeq    int64   // 0 any, 1 first pod, -1 last pod of the content
	SlotInPod int64   // 0 any, 1 first, -1 last, 2 first or last
	PodDur    int64   // seconds, dynamic pods
	MaxSeq    int64   // most ads in a dynamic pod
	RqdDurs   []int64 // the only durations allowed (seconds), when given
	// DurFloors are floors by creative duration and MinCPMPerSec a floor
	// per second of the creative (2.6, in the imp's bidfloorcur).
	DurFloors    []DurFloor
	MinCPMPerSec float64
}

// DurFloor is one durfloors[] element (2.6, 3.2.35): the floor, in CPM, of
// a video or audio creative whose duration in seconds is in [MinDur,
// MaxDur], an absent (0) end being unbounded. Where none holds a
// creative's duration, the imp's (or deal's) bidfloor applies.
type DurFloor struct {
	MinDur, MaxDur int64
	BidFloor       float64
}

// Video is imp.video.
type Video struct {
	MIMEs       [][]byte
	MinDuration int64
	MaxDuration int64
	Protocols   []int64
	// Protocol is OpenRTB 2.5's single video.protocol (deprecated there for
	// protocols): the parser puts it in Protocols when protocols is absent
	// or empty.
	Protocol  int64
	W, H      int64
	Placement int64
	Plcmt     int64
	Linearity int64
	Skip      int8 // tri-state: the player allows skipping
	SkipMin   int64
	SkipAfter int64
	BAttr     []int64
	// Delivery lists the delivery methods the player supports (1
	// streaming, 2 progressive, 3 download; empty: any).
	Delivery []int64
	// API lists the API frameworks the player supports (1 VPAID 1.0, 2
	// VPAID 2.0, 7 OMID 1.0, ...); one not listed is not supported.
	API []int64
	Pod
}

// Audio is imp.audio.
type Audio struct {
	MIMEs       [][]byte
	MinDuration int64
	MaxDuration int64
	Protocols   []int64
	BAttr       []int64
	Delivery    []int64 // as video.delivery
	Pod
}

// Native is imp.native. Request is the raw native request string; its
// Native 1.x document is parsed into Assets (see NativeStatus).
type Native struct {
	Request []byte
	Ver     []byte
	BAttr   []int64
	// Status says whether Request held a readable Native request document;
	// Assets are its assets (the request's order), Wrapped that it was the
	// 1.0/1.1 form {"native":{...}} (both only when NativeOK).
	Status  NativeStatus
	Wrapped bool
	Assets  []NativeAsset
}

// NativeStatus is what became of imp.native.request.
type NativeStatus uint8

const (
	NativeAbsent NativeStatus = iota // no request, or an empty string
	NativeOK                         // a Native 1.x request document, read into Assets
	NativeBad                        // not JSON, not an object, or a wrongly typed member Assets holds
)

// Native asset kinds: which one of title, img, video or data an asset is.
const (
	AssetNone  uint8 = iota // none of them, or more than one: no creative can fill it
	AssetTitle              // Len: the most characters
	AssetImg                // Type (1 icon, 3 main), W/H or WMin/HMin
	AssetVideo              // never filled by this bidder
	AssetData               // Type (1 sponsored, 2 desc, 12 cta...), Len
)

// NativeAsset is one assets[] element of a Native 1.x request.
type NativeAsset struct {
	ID       int64
	Required bool
	Kind     uint8
	Type     int64 // img.type or data.type
	Len      int64 // title.len or data.len
	W, H     int64 // img
	WMin     int64
	HMin     int64
	// MIMEs is an img asset's mimes as ImgJPEG... bits (0: not given, any).
	MIMEs uint8
}

// Qty is imp.qty (2.6): how many people one impression reaches (DOOH).
type Qty struct {
	Multiplier float64
	SourceType int64
	Vendor     []byte
}

// Deal is imp.pmp.deals[].
type Deal struct {
	ID          []byte
	BidFloor    float64
	BidFloorCur []byte
	WSeat       [][]byte
	// AT is the deal's auction type when it overrides the request's: 3
	// means BidFloor is the agreed deal price (a fixed-price deal); 0 when
	// absent.
	AT int64
	// WADomain are the advertiser domains allowed on the deal (2.6; empty:
	// any). DurFloors and MinCPMPerSec are its floors by a video or audio
	// creative's duration, in BidFloorCur, as the pod's are for the imp.
	WADomain     [][]byte
	DurFloors    []DurFloor
	MinCPMPerSec float64
}

// Imp is one request.imp[].
type Imp struct {
	ID          []byte
	TagID       []byte
	BidFloor    float64
	BidFloorCur []byte // empty means USD
	Secure      int8
	Instl       bool
	Exp         int64 // seconds the impression may come after the auction (advisory); 0 unknown

	HasBanner bool
	Banner    Banner
	HasVideo  bool
	Video     Video
	HasAudio  bool
	Audio     Audio
	HasNative bool
	Native    Native

	Rwdd   bool // imp.rwdd: the user is rewarded for viewing
	HasQty bool
	Qty    Qty // imp.qty, when HasQty

	PrivateAuction bool
	Deals          []Deal
}
