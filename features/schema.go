// Package features turns a (request, imp, candidate ad) triple into a
// fixed-width, hashed float32 feature row: the one input every CTR model of
// this bidder reads, in training and in serving alike.
//
// The layout is versioned (SchemaVersion) and documented slot by slot in
// SCHEMA.md. A model records the SchemaVersion and Width it was trained on and
// is refused at load when they differ from the running extractor's.
//
// Extraction is two-step so the request/imp part is computed once per imp and
// copied per candidate:
//
//	userLevel := policy.Decide(req).Allows(privacy.Personalize) // package privacy, once per request
//	features.ExtractImp(impRow[:], req, imp, now, userLevel)
//	for each candidate ad: rows = features.AppendRow(rows, impRow[:], &ad)
//
// Nothing here allocates. features knows the ortb request view and nothing else.
package features

// SchemaVersion names the slot layout below. Bump it whenever a slot's
// meaning, source, transform or bucket count changes; the golden test under
// testdata/ fails until you do.
const SchemaVersion = "v2"

// Width is the number of float32 slots in a row. ImpWidth slots come from the
// request and imp, AdWidth slots from the candidate ad.
const (
	ImpWidth = 33
	AdWidth  = 8
	Width    = ImpWidth + AdWidth
)

// Slot indexes. Categorical slots hold a hashed bucket id as an exact float32
// integer in [0, Buckets[slot]): 0 means absent/empty, otherwise
// 1 + fnv1a64(lowercased value) % (Buckets[slot]-1). Numeric slots hold the
// transformed value documented in SCHEMA.md.
const (
	SlotCountry     = 0  // cat: device.geo.country
	SlotRegion      = 1  // cat: country + "/" + device.geo.region
	SlotOS          = 2  // cat: device.os
	SlotMake        = 3  // cat: device.make
	SlotLanguage    = 4  // cat: device.language
	SlotPublisher   = 5  // cat: site/app.publisher.id
	SlotInventory   = 6  // cat: site.domain or app.bundle
	SlotCategory    = 7  // cat: top-level IAB of the first site/app cat
	SlotTagID       = 8  // cat: imp.tagid
	SlotImpSizeCat  = 9  // cat: imp primary size w x h
	SlotDeviceType  = 10 // num: device.devicetype (0 unknown)
	SlotConnType    = 11 // num: device.connectiontype (0 unknown)
	SlotHour        = 12 // num: local hour 0..23, -1 without geo.utcoffset
	SlotDayOfWeek   = 13 // num: local day 0 (Sunday)..6, -1 without geo.utcoffset
	SlotLogFloor    = 14 // num: ln(1 + imp.bidfloor)
	SlotTMax        = 15 // num: tmax in ms, 0 when absent
	SlotSecure      = 16 // num: imp.secure -1 unset, 0, 1
	SlotInstl       = 17 // num: imp.instl 0/1
	SlotIsApp       = 18 // num: 1 app, 0 site, -1 neither
	SlotImpFormats  = 19 // num: bitmask banner 1, video 2, audio 4, native 8
	SlotImpW        = 20 // num: imp primary width
	SlotImpH        = 21 // num: imp primary height
	SlotFormatCount = 22 // num: len(banner.format)
	SlotPos         = 23 // num: banner.pos
	SlotVideoMaxDur = 24 // num: video.maxduration seconds
	SlotVideoPlcmt  = 25 // num: video.plcmt, else video.placement
	SlotDeals       = 26 // num: len(pmp.deals), +0.5 when private auction
	SlotLimitAdTrk  = 27 // num: max(device.dnt, device.lmt): -1 unset, 0, 1
	SlotHasUserID   = 28 // num, user-level: 1 if user.id, buyeruid or device.ifa
	SlotSegments    = 29 // num, user-level: number of user.data segments
	SlotUserAge     = 30 // num, user-level: years from user.yob, 0 unknown
	SlotGender      = 31 // num, user-level: 0 unknown, 1 M, 2 F, 3 O
	SlotUser        = 32 // cat, user-level: user.buyeruid, else user.id, else device.ifa

	SlotCampaign   = 33 // cat: campaign id
	SlotCreative   = 34 // cat: campaign id + "/" + creative id
	SlotAdvertiser = 35 // cat: advertiser (domain or id)
	SlotAdFormat   = 36 // num: creative mtype 1 banner, 2 video, 3 audio, 4 native
	SlotAdW        = 37 // num: creative width (0 when not sized)
	SlotAdH        = 38 // num: creative height
	SlotAdFit      = 39 // num: 1 when the imp offers the ad's format and a sized ad equals the imp's primary size
	SlotAdSizeCat  = 40 // cat: creative size w x h
)

// Slot describes one slot for documentation, manifests and drift monitoring.
type Slot struct {
	Name    string
	Buckets int  // > 0 for categorical slots: values lie in [0, Buckets)
	User    bool // user-level: zeroed when user-level data is not allowed
}

// Slots describes every slot of SchemaVersion, in order.
var Slots = [Width]Slot{
	{Name: "country", Buckets: 512},
	{Name: "region", Buckets: 2048},
	{Name: "os", Buckets: 64},
	{Name: "make", Buckets: 512},
	{Name: "language", Buckets: 256},
	{Name: "publisher", Buckets: 8192},
	{Name: "inventory", Buckets: 32768},
	{Name: "category", Buckets: 64},
	{Name: "tagid", Buckets: 8192},
	{Name: "imp_size", Buckets: 512},
	{Name: "device_type"},
	{Name: "conn_type"},
	{Name: "hour_local"},
	{Name: "day_of_week_local"},
	{Name: "log_floor"},
	{Name: "tmax_ms"},
	{Name: "secure"},
	{Name: "instl"},
	{Name: "is_app"},
	{Name: "imp_formats"},
	{Name: "imp_w"},
	{Name: "imp_h"},
	{Name: "format_count"},
	{Name: "pos"},
	{Name: "video_maxdur"},
	{Name: "video_plcmt"},
	{Name: "deals"},
	{Name: "limit_ad_tracking"},
	{Name: "has_user_id", User: true},
	{Name: "segments", User: true},
	{Name: "user_age", User: true},
	{Name: "gender", User: true},
	{Name: "user", Buckets: 262144, User: true},
	{Name: "campaign", Buckets: 65536},
	{Name: "creative", Buckets: 65536},
	{Name: "advertiser", Buckets: 8192},
	{Name: "ad_format"},
	{Name: "ad_w"},
	{Name: "ad_h"},
	{Name: "ad_fit"},
	{Name: "ad_size", Buckets: 512},
}
