package simulator

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/prebid/openrtb/v20/adcom1"
	"github.com/prebid/openrtb/v20/openrtb2"
)

// Country is one entry of the shared geo vocabulary.
type Country struct {
	Code      string  // ISO alpha-3
	UTCOffset int64   // minutes
	EU        bool    // GDPR applies
	Weight    float64 // share of users
}

// Countries is the shared traffic vocabulary with time zones and mix.
var Countries = []Country{
	{"USA", -300, false, 0.35}, {"GBR", 0, true, 0.10}, {"DEU", 60, true, 0.10},
	{"FRA", 60, true, 0.08}, {"CAN", -300, false, 0.05}, {"BRA", -180, false, 0.08},
	{"IND", 330, false, 0.10}, {"JPN", 540, false, 0.06}, {"AUS", 600, false, 0.04},
	{"ESP", 60, true, 0.04},
}

// BannerSizes and VideoSizes are the shared ad sizes.
var (
	BannerSizes = [][2]int64{{300, 250}, {728, 90}, {320, 50}, {300, 600}, {160, 600}, {970, 250}, {320, 480}}
	VideoSizes  = [][2]int64{{640, 360}, {1280, 720}}
)

// Currency rates: USD per unit. Floors in other currencies are converted with
// these for the auction; bids in other currencies likewise.
var usdPerUnit = map[string]float64{"USD": 1, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}

// ToUSD converts an amount in cur to USD (unknown currencies are treated as USD).
func ToUSD(amount float64, cur string) float64 {
	if r, ok := usdPerUnit[cur]; ok {
		return amount * r
	}
	return amount
}

// FromUSD converts a USD amount to cur.
func FromUSD(amount float64, cur string) float64 {
	if r, ok := usdPerUnit[cur]; ok {
		return amount / r
	}
	return amount
}

// TrafficConfig shapes generated traffic. Zero fields take the defaults
// documented on DefaultTraffic.
type TrafficConfig struct {
	Publishers      int     // number of publishers
	PublisherZipf   float64 // Zipf exponent of publisher popularity
	Users           int     // number of users
	UserZipf        float64 // Zipf exponent of user activity
	AppShare        float64 // share of publishers that are apps
	V26Share        float64 // share of publishers speaking OpenRTB 2.6 (rest 2.5)
	FirstPriceShare float64 // share of publishers running first-price auctions
	DealShare       float64 // share of publishers with deals
	CoppaShare      float64 // share of publishers with regs.coppa=1
	FloorMedianUSD  float64 // median floor CPM in USD
	FloorSigma      float64 // log-normal sigma of floors
	MultiImpShare   float64 // share of requests with two imps
	TMaxMs          int64   // typical tmax; each publisher uses 0.8x to 2x of it
	// DriftAt (simulated unix seconds; 0 never): from then on each request's
	// publisher is drawn DriftPublisherShift ranks down, so the most
	// popular publishers lose their traffic to the next ones (Config.DriftAt).
	DriftAt int64
}

// DriftPublisherShift is how many popularity ranks publishers move at
// TrafficConfig.DriftAt.
const DriftPublisherShift = 10

// DefaultTraffic holds the defaults.
var DefaultTraffic = TrafficConfig{
	Publishers: 1000, PublisherZipf: 1.1, Users: 100000, UserZipf: 0.9,
	AppShare: 0.3, V26Share: 0.6, FirstPriceShare: 0.7, DealShare: 0.15, CoppaShare: 0.02,
	FloorMedianUSD: 0.3, FloorSigma: 0.6, MultiImpShare: 0.1, TMaxMs: 100,
}

func (c TrafficConfig) withDefaults() TrafficConfig {
	d := DefaultTraffic
	if c.Publishers > 0 {
		d.Publishers = c.Publishers
	}
	if c.PublisherZipf > 0 {
		d.PublisherZipf = c.PublisherZipf
	}
	if c.Users > 0 {
		d.Users = c.Users
	}
	if c.UserZipf > 0 {
		d.UserZipf = c.UserZipf
	}
	setShare := func(dst *float64, v float64) {
		if v > 0 {
			*dst = v
		}
		if v < 0 { // negative means explicitly zero
			*dst = 0
		}
	}
	setShare(&d.AppShare, c.AppShare)
	setShare(&d.V26Share, c.V26Share)
	setShare(&d.FirstPriceShare, c.FirstPriceShare)
	setShare(&d.DealShare, c.DealShare)
	setShare(&d.CoppaShare, c.CoppaShare)
	setShare(&d.MultiImpShare, c.MultiImpShare)
	if c.FloorMedianUSD > 0 {
		d.FloorMedianUSD = c.FloorMedianUSD
	}
	if c.FloorSigma > 0 {
		d.FloorSigma = c.FloorSigma
	}
	if c.TMaxMs > 0 {
		d.TMaxMs = c.TMaxMs
	}
	d.DriftAt = c.DriftAt
	return d
}

// Publisher has fixed properties drawn once per world.
type Publisher struct {
	N          int // 1-based: pub-N, site-N.example.com, com.example.appN
	App        bool
	Cats       []string
	Sizes      [][2]int64
	Media      string // "banner", "banner+video", "video", "native"
	FloorUSD   float64
	FloorCur   string
	Deals      []openrtb2.Deal
	Coppa      bool
	V26        bool
	FirstPrice bool
	TMaxMs     int64 // the publisher's tmax: TMaxMs x one of 0.8, 1, 1, 1.2, 1.5, 2
}

// User has fixed properties drawn once per world.
type User struct {
	ID       string
	Country  int // index into Countries
	DevType  adcom1.DeviceType
	OS       string
	Segments []string
}

// World is the fixed population of publishers and users for one seed.
type World struct {
	cfg     TrafficConfig
	pubs    []Publisher
	users   []User
	pubZipf *Zipf
	usrZipf *Zipf
}

// NewWorld draws publishers and users from seed.
func NewWorld(cfg TrafficConfig, seed uint64) *World {
	cfg = cfg.withDefaults()
	r := rand.New(rand.NewPCG(seed, 0x5eed0001))
	w := &World{cfg: cfg, pubZipf: NewZipf(cfg.Publishers, cfg.PublisherZipf), usrZipf: NewZipf(cfg.Users, cfg.UserZipf)}
	w.pubs = make([]Publisher, cfg.Publishers)
	for i := range w.pubs {
		w.pubs[i] = newPublisher(r, cfg, i+1)
	}
	w.users = make([]User, cfg.Users)
	for i := range w.users {
		w.users[i] = newUser(r, i)
	}
	return w
}

func newPublisher(r *rand.Rand, cfg TrafficConfig, n int) Publisher {
	p := Publisher{N: n, App: r.Float64() < cfg.AppShare, V26: r.Float64() < cfg.V26Share,
		FirstPrice: r.Float64() < cfg.FirstPriceShare, Coppa: r.Float64() < cfg.CoppaShare}
	p.TMaxMs = int64(float64(cfg.TMaxMs) * [...]float64{0.8, 1, 1, 1.2, 1.5, 2}[r.IntN(6)])
	for k := 1 + r.IntN(2); k > 0; k-- {
		c := "IAB" + strconv.Itoa(1+r.IntN(26))
		if r.IntN(2) == 0 {
			c += "-" + strconv.Itoa(1+r.IntN(8))
		}
		p.Cats = append(p.Cats, c)
	}
	perm := r.Perm(len(BannerSizes))
	for _, i := range perm[:2+r.IntN(2)] {
		p.Sizes = append(p.Sizes, BannerSizes[i])
	}
	switch u := r.Float64(); {
	case u < 0.6:
		p.Media = "banner"
	case u < 0.8:
		p.Media = "banner+video"
	case u < 0.9:
		p.Media = "video"
	default:
		p.Media = "native"
	}
	p.FloorUSD = math.Round(LogNormal{math.Log(cfg.FloorMedianUSD), cfg.FloorSigma}.Draw(r)*100) / 100
	switch u := r.Float64(); {
	case u < 0.8:
		p.FloorCur = "USD"
	case u < 0.9:
		p.FloorCur = "EUR"
	case u < 0.95:
		p.FloorCur = "GBP"
	default:
		p.FloorCur = "JPY"
	}
	if r.Float64() < cfg.DealShare {
		for k := 1 + r.IntN(2); k > 0; k-- {
			p.Deals = append(p.Deals, openrtb2.Deal{ID: "deal-" + strconv.Itoa(1+r.IntN(100)),
				BidFloor: math.Round(p.FloorUSD*(1.5+r.Float64())*100) / 100, BidFloorCur: "USD", AT: 1})
		}
	}
	return p
}

func newUser(r *rand.Rand, i int) User {
	u := User{ID: fmt.Sprintf("u-%08x", uint32(i)*2654435761)}
	x, acc := r.Float64(), 0.0
	for ci, c := range Countries {
		acc += c.Weight
		if x < acc || ci == len(Countries)-1 {
			u.Country = ci
			break
		}
	}
	switch x := r.Float64(); {
	case x < 0.45:
		u.DevType, u.OS = adcom1.DevicePhone, pick(r, "iOS", "Android", "Android")
	case x < 0.55:
		u.DevType, u.OS = adcom1.DeviceTablet, pick(r, "iOS", "Android")
	case x < 0.60:
		u.DevType, u.OS = adcom1.DeviceMobile, pick(r, "iOS", "Android")
	case x < 0.88:
		u.DevType, u.OS = adcom1.DevicePC, pick(r, "Windows", "Windows", "macOS", "Linux")
	case x < 0.95:
		u.DevType, u.OS = adcom1.DeviceTV, pick(r, "Android", "Linux")
	case x < 0.98:
		u.DevType, u.OS = adcom1.DeviceConnected, "Linux"
	default:
		u.DevType, u.OS = adcom1.DeviceSetTopBox, "Linux"
	}
	for k := r.IntN(5); k > 0; k-- {
		u.Segments = append(u.Segments, "seg-"+strconv.Itoa(1+r.IntN(50)))
	}
	return u
}

func pick(r *rand.Rand, xs ...string) string { return xs[r.IntN(len(xs))] }

// Publishers returns the world's publishers (rank order).
func (w *World) Publishers() []Publisher { return w.pubs }

// Users returns the world's users (rank order).
func (w *World) Users() []User { return w.users }

// Outgoing is one request ready to send.
type Outgoing struct {
	Seq     uint64
	Body    []byte // uncompressed JSON
	Version string // "2.5" or "2.6"
	Gzip    bool
	Req     *openrtb2.BidRequest
	SimTime int64  // simulated unix seconds when the request is sent
	wire    []byte // gzip-compressed Body, built ahead of the send time
}

const nativeRequest = `{"ver":"1.2","context":1,"plcmttype":1,"assets":[` +
	`{"id":1,"required":1,"title":{"len":90}},` +
	`{"id":2,"required":1,"img":{"type":3,"w":1200,"h":627}},` +
	`{"id":3,"required":0,"data":{"type":2,"len":140}}]}`

// Request builds request number seq at simulated unix time simTime. It is
// deterministic in (world, seed, seq).
func (w *World) Request(r *rand.Rand, seq uint64, simTime int64, gzipShare float64) *Outgoing {
	pi := w.pubZipf.Draw(r)
	if w.cfg.DriftAt != 0 && simTime >= w.cfg.DriftAt {
		pi = (pi + DriftPublisherShift) % len(w.pubs)
	}
	pub := &w.pubs[pi]
	usr := &w.users[w.usrZipf.Draw(r)]
	ctry := Countries[usr.Country]
	req := &openrtb2.BidRequest{ID: fmt.Sprintf("req-%x", seq), TMax: pub.TMaxMs, Cur: []string{"USD"}, AT: 2}
	if pub.FirstPrice {
		req.AT = 1
	}
	nimp := 1
	if r.Float64() < w.cfg.MultiImpShare {
		nimp = 2
	}
	for i := 0; i < nimp; i++ {
		req.Imp = append(req.Imp, w.imp(r, pub, i+1))
	}
	pubObj := &openrtb2.Publisher{ID: "pub-" + strconv.Itoa(pub.N)}
	if pub.App {
		req.App = &openrtb2.App{ID: "app-" + strconv.Itoa(pub.N), Bundle: "com.example.app" + strconv.Itoa(pub.N),
			Cat: pub.Cats, Publisher: pubObj}
	} else {
		dom := "site-" + strconv.Itoa(pub.N) + ".example.com"
		req.Site = &openrtb2.Site{ID: "site-" + strconv.Itoa(pub.N), Domain: dom, Page: "https://" + dom + "/",
			Cat: pub.Cats, Publisher: pubObj}
	}
	req.Device = &openrtb2.Device{DeviceType: usr.DevType, OS: usr.OS, UA: "Mozilla/5.0 (" + usr.OS + ")",
		IP: fmt.Sprintf("203.0.113.%d", 1+r.IntN(254)), Geo: &openrtb2.Geo{Country: ctry.Code, UTCOffset: ctry.UTCOffset}}
	if pub.App {
		req.Device.IFA = usr.ID
	}
	req.User = &openrtb2.User{ID: usr.ID}
	if len(usr.Segments) > 0 {
		d := openrtb2.Data{ID: "dmp-1"}
		for _, s := range usr.Segments {
			d.Segment = append(d.Segment, openrtb2.Segment{ID: s})
		}
		req.User.Data = []openrtb2.Data{d}
	}
	req.Source = &openrtb2.Source{TID: fmt.Sprintf("tid-%x", seq)}
	w.privacy(req, pub, ctry)
	body, err := json.Marshal(req)
	if err != nil {
		panic("simulator: marshal request: " + err.Error()) // openrtb2 types always marshal
	}
	v := "2.5"
	if pub.V26 {
		v = "2.6"
	}
	return &Outgoing{Seq: seq, Body: body, Version: v, Gzip: r.Float64() < gzipShare, Req: req, SimTime: simTime}
}

func (w *World) privacy(req *openrtb2.BidRequest, pub *Publisher, ctry Country) {
	var regs openrtb2.Regs
	set := false
	if pub.Coppa {
		regs.COPPA, set = 1, true
	}
	if ctry.EU {
		consent := "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
		if pub.V26 {
			one := int8(1)
			regs.GDPR = &one
			req.User.Consent = consent
		} else {
			regs.Ext = json.RawMessage(`{"gdpr":1}`)
			req.User.Ext = json.RawMessage(`{"consent":"` + consent + `"}`)
		}
		set = true
	}
	if set {
		req.Regs = &regs
	}
}

func (w *World) imp(r *rand.Rand, pub *Publisher, n int) openrtb2.Imp {
	imp := openrtb2.Imp{ID: strconv.Itoa(n), TagID: fmt.Sprintf("pub-%d-slot-%d", pub.N, n),
		BidFloor: math.Round(FromUSD(pub.FloorUSD, pub.FloorCur)*100) / 100, BidFloorCur: pub.FloorCur}
	secure := int8(1)
	imp.Secure = &secure
	media := pub.Media
	if media == "banner+video" {
		media = pick(r, "banner", "banner", "video")
	}
	switch media {
	case "video":
		sz := VideoSizes[r.IntN(len(VideoSizes))]
		w, h := sz[0], sz[1]
		imp.Video = &openrtb2.Video{MIMEs: []string{"video/mp4"}, W: &w, H: &h, MinDuration: 5, MaxDuration: 30,
			Protocols: []adcom1.MediaCreativeSubtype{2, 3, 5, 6}}
		imp.BidFloor = math.Round(imp.BidFloor*300) / 100 // video floors are higher
	case "native":
		imp.Native = &openrtb2.Native{Request: nativeRequest, Ver: "1.2"}
	default:
		sz := pub.Sizes[r.IntN(len(pub.Sizes))]
		imp.Banner = &openrtb2.Banner{Format: []openrtb2.Format{{W: sz[0], H: sz[1]}}}
	}
	if len(pub.Deals) > 0 {
		imp.PMP = &openrtb2.PMP{Deals: pub.Deals}
	}
	return imp
}
