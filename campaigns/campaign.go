package campaigns

import "time"

// Status of a campaign. Paused campaigns stay in the snapshot (their Index is
// stable for the budget) but never match.
type Status uint8

const (
	StatusActive Status = iota
	StatusPaused
)

func (s Status) String() string {
	if s == StatusPaused {
		return "paused"
	}
	return "active"
}

// StrategyKind is how a campaign values an impression.
type StrategyKind uint8

const (
	FixedCPM  StrategyKind = iota // bid Strategy.CPMMicros
	TargetCPC                     // value = pCTR x CPCMicros x 1000
	TargetCPA                     // value = pCTR x ConversionRate x CPAMicros x 1000
)

func (k StrategyKind) String() string {
	switch k {
	case TargetCPC:
		return "target_cpc"
	case TargetCPA:
		return "target_cpa"
	}
	return "fixed_cpm"
}

// PacingMode is how the budget is spread over the day.
type PacingMode uint8

const (
	PacingEven     PacingMode = iota // flat target curve over the day
	PacingForecast                   // target curve shaped by a traffic forecast
	PacingASAP                       // no throttling
)

func (m PacingMode) String() string {
	switch m {
	case PacingForecast:
		return "forecast"
	case PacingASAP:
		return "asap"
	}
	return "even"
}

// Format is a creative's media type; its value is the OpenRTB 2.6 bid.mtype
// (see Creative.MType).
type Format uint8

const (
	FormatBanner Format = 1
	FormatVideo  Format = 2
	FormatAudio  Format = 3
	FormatNative Format = 4
)

func (f Format) String() string {
	switch f {
	case FormatBanner:
		return "banner"
	case FormatVideo:
		return "video"
	case FormatAudio:
		return "audio"
	case FormatNative:
		return "native"
	}
	return "unknown"
}

// Strategy is the bid strategy with amounts in micro-units of the campaign
// currency (CPM amounts are per thousand impressions).
type Strategy struct {
	Kind           StrategyKind
	CPMMicros      int64   // FixedCPM: the bid
	CPCMicros      int64   // TargetCPC: the value of one click
	CPAMicros      int64   // TargetCPA: the value of one conversion
	ConversionRate float64 // TargetCPA: conversions per click, in (0, 1]
}

// Budget is in micro-units of the campaign currency. TotalMicros 0 means no
// lifetime cap. The day is the calendar day in Campaign.TimeZone.
type Budget struct {
	DailyMicros int64
	TotalMicros int64
}

// Pacing selects the target spend curve.
type Pacing struct {
	Mode PacingMode
}

// FreqCap limits impressions per user per campaign: at most Count in any
// Window. Count 0 means no cap.
type FreqCap struct {
	Count  int
	Window time.Duration
}

// DSA is a campaign's DSA transparency. JSON is bid.ext's member for it,
// `"dsa":{"behalf":...,"paid":...,"adrender":0}` (the bidder does not
// render the notice in its ads: the publisher must), encoded once.
type DSA struct {
	Behalf, Paid string
	JSON         []byte
}

// Size is a creative size in pixels.
type Size struct{ W, H int64 }

// Campaign is one compiled campaign. It is immutable once published in a
// Snapshot; never modify it.
type Campaign struct {
	Index      int    // dense, 0..len(Snapshot.Campaigns)-1, stable within one snapshot
	ID         string // unique across the snapshot
	File       string // config file it came from
	Advertiser string
	ADomain    []string // advertiser domains (lowercase)
	Status     Status
	Start      time.Time // zero: no start bound
	End        time.Time // exclusive; zero: no end bound
	Currency   string    // ISO 4217, upper case
	TimeZone   *time.Location
	Strategy   Strategy
	// MaxBidMicros caps every bid, as CPM micro-units of Currency.
	MaxBidMicros int64
	Budget       Budget
	Pacing       Pacing
	FreqCap      FreqCap
	Creatives    []*Creative
	AllowCOPPA   bool
	// DSA is the campaign's DSA transparency (nil: none given): a request
	// whose regs.ext.dsa requires it (dsarequired 2 or 3) gets no bid from
	// a campaign without it.
	DSA *DSA
	// Targeting as written (normalised), for display and for the bidder's
	// features; Match uses the compiled index instead.
	Targeting Targeting

	sum [32]byte // SHA-256 of the file it was compiled from (LoadDir; zero: none)
}

// Targeting is the normalised targeting of a campaign (lower case where the
// match is case-insensitive). Empty means unrestricted.
type Targeting struct {
	Countries, Regions   []string
	Metros, Cities       []string
	DeviceTypes          []int64
	OS                   []string
	Languages            []string // ISO 639 codes, lower case
	ConnTypes            []int64  // OpenRTB connection types 1..7
	Carriers             []string
	Site, App, DOOH      bool // inventory allowed
	SiteAllow, SiteBlock []string
	AppAllow, AppBlock   []string
	VenueTypes           []string
	Publishers           []string
	CatAllow, CatBlock   []string
	CatTax               int64 // taxonomy of CatAllow/CatBlock (1 unless set)
	Deals                []string
	Exchanges            []string // names the request's exchange must have (Scratch.Exchange); empty: any
	OpenAuction          bool
	Rewarded             int8 // 1 rewarded imps only, -1 never, 0 any
	Segments             []string
	Dayparting           bool
	Days                 [7]bool // by time.Weekday
	Hours                [24]bool
}

// Creative is one compiled creative of a campaign.
type Creative struct {
	Index      int // dense, 0..len(Snapshot.Creatives)-1
	ID         string
	Campaign   *Campaign
	Format     Format
	Sizes      []Size   // banner sizes; video/native/audio may be empty
	MIMEs      []string // video/audio MIME types (default video/mp4, audio/mpeg)
	LandingURL string
	Cat        []string // categories as written (IAB ones upper case)
	CatTax     int64    // taxonomy of Cat (1: IAB Content Category Taxonomy 1.0)
	Attr       []int64
	ADomain    []string // defaults to the campaign's
	Secure     bool
	Bundle     string
	// Language is the ad's language, ISO 639-1 lower case ("xx": no
	// linguistic content; "": not declared), checked against wlang and
	// wlangb and sent as bid.language. BType is what banner ad types it is
	// (1 XHTML text, 2 XHTML banner, 3 JavaScript, 4 iframe; empty: not
	// declared), checked against imp.banner.btype.
	Language string
	BType    []int64
	// Video and audio: Duration in seconds (0 unknown), the protocols it is
	// served as, the video placements it may run in (empty any), whether
	// it needs a skippable player (1) or an unskippable one (-1, 0 either),
	// and the pods and pod slots it may take (empty any). Linearity is a
	// video's from its VAST (1 linear, 2 non-linear, 0 unknown).
	Duration  int64
	Linearity int64
	Protocols []int64
	// Delivery is how its media files are delivered, from the VAST's
	// <MediaFile delivery=...> as OpenRTB counts them (1 streaming, 2
	// progressive); empty: not known (a wrapper), fits any player.
	Delivery []int64
	// VPAID: every <MediaFile> of its VAST is a VPAID unit
	// (apiFramework="VPAID"): it runs only where the player lists VPAID
	// 1.0 or 2.0 in video.api.
	VPAID bool
	// MRAID: the banner's markup loads mraid.js, which only an app SDK
	// that supports MRAID serves: it runs only where banner.api lists
	// MRAID 1.0, 2.0 or 3.0.
	MRAID     bool
	Plcmt     []int64
	Skippable int8
	PodSeq    []int64
	SlotInPod []int64
	// Adm is the markup template compiled into literal parts (already
	// JSON-string escaped) and tracker slots; see AppendAdm. Native
	// creatives have Native instead.
	Adm    []AdmPart
	Native *NativeAssets
}

// MType is the OpenRTB 2.6 bid.mtype: 1 banner, 2 video, 3 audio, 4 native.
func (c *Creative) MType() int { return int(c.Format) }

// ValueMicros is what the campaign would pay for an impression whose
// predicted click-through rate is pctr: CPM micro-units of its currency by
// its bid strategy (fixed CPM; target CPC: pCTR x CPC x 1000; target CPA:
// pCTR x conversion rate x CPA x 1000), capped by its max bid.
func (c *Campaign) ValueMicros(pctr float32) float64 {
	st := &c.Strategy
	var v float64
	switch st.Kind {
	case TargetCPC:
		v = float64(pctr) * float64(st.CPCMicros) * 1000
	case TargetCPA:
		v = float64(pctr) * st.ConversionRate * float64(st.CPAMicros) * 1000
	default:
		v = float64(st.CPMMicros)
	}
	return min(v, float64(c.MaxBidMicros))
}

// UpperMicros is the most the campaign can bid for any impression (CPM
// micros of its currency): its fixed CPM, or its max bid.
func (c *Campaign) UpperMicros() int64 {
	if c.Strategy.Kind == FixedCPM {
		return min(c.Strategy.CPMMicros, c.MaxBidMicros)
	}
	return c.MaxBidMicros
}
