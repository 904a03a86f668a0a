package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// sample is one shown ad: the request (one imp), the ad, and when.
type sample struct {
	req   ortb.Request
	pub   *publisher
	ad    *creative
	now   time.Time
	age   int64 // true user age; the model may not see it (consent)
	segs  int
	hasID bool
	// userLevel: the drawn user allows user-level data (no COPPA; consent
	// where GDPR applies). synthdata draws the decision, it does not build
	// consent strings for package privacy to decode.
	userLevel bool
}

var start = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday

// draw fills s with a plausible request and a candidate ad that fits it.
// It reuses s's slices.
func (w *world) draw(r *rand.Rand, zipf *rand.Zipf, s *sample) {
	s.req = ortb.Request{Imps: s.req.Imps[:0], Regs: ortb.Regs{COPPA: ortb.Unset, GDPR: ortb.Unset}}
	req := &s.req
	s.now = start.Add(time.Duration(r.Int64N(int64(7 * 24 * time.Hour))))
	s.pub = &w.pubs[zipf.Uint64()]
	p := s.pub
	req.ID = []byte("r")
	req.TMax = 80 + 10*r.Int64N(23)
	if p.app {
		req.HasApp = true
		req.App = ortb.App{Bundle: []byte(p.bundle), Cat: [][]byte{[]byte(p.cat)}, Publisher: ortb.Publisher{ID: []byte(p.id)}}
	} else {
		req.HasSite = true
		req.Site = ortb.Site{Domain: []byte(p.domain), Cat: [][]byte{[]byte(p.cat)}, Publisher: ortb.Publisher{ID: []byte(p.id)}}
	}
	dt := int64(1 + pickIndex(r, deviceTypeW))
	country := pick(r, countries, countryW)
	os := osFor(r, dt)
	req.HasDevice = true
	req.Device = ortb.Device{
		DeviceType: dt, OS: []byte(os), Make: []byte(makeFor(os)), Language: []byte("en"),
		ConnType: 1 + r.Int64N(6), DNT: ortb.False, LMT: ortb.False,
		Geo: ortb.Geo{Country: []byte(country), Region: []byte(regions[r.IntN(len(regions))]),
			UTCOffset: utcOffsets[country], HasUTCOffset: r.Float64() < 0.9},
	}
	if r.Float64() < 0.05 {
		req.Device.LMT = ortb.True
	}
	w.drawUser(r, s, country)
	w.drawImp(r, s, dt)
}

func (w *world) drawUser(r *rand.Rand, s *sample, country string) {
	req := &s.req
	s.hasID = r.Float64() < 0.8
	s.segs = r.IntN(7)
	s.age = 18 + r.Int64N(50)
	req.HasUser = true
	req.User = ortb.User{Yob: int64(s.now.Year()) - s.age, Gender: []byte(pick(r, []string{"M", "F", "O"}, []float64{0.48, 0.48, 0.04}))}
	if s.hasID {
		req.User.ID = []byte("u")
	}
	for i := 0; i < s.segs; i++ {
		req.User.Segments = append(req.User.Segments, []byte(fmt.Sprint("seg", i)))
	}
	s.userLevel = true
	if gdprLand[country] {
		req.Regs.GDPR = ortb.True
		if r.Float64() < 0.75 {
			req.User.Consent = []byte("CONSENT")
		} else {
			s.userLevel = false
		}
	}
	if r.Float64() < 0.01 {
		req.Regs.COPPA = ortb.True
		s.userLevel = false
	}
}

func (w *world) drawImp(r *rand.Rand, s *sample, dt int64) {
	imp := ortb.Imp{ID: []byte("1"), Secure: ortb.True, BidFloor: s.pub.floor, TagID: []byte(fmt.Sprint("tag-", r.IntN(s.pub.tags)))}
	if r.Float64() < 0.1 {
		imp.Secure = ortb.False
	}
	x := r.Float64()
	switch {
	case dt == 3 || dt == 7 || x < 0.22: // video
		imp.HasVideo = true
		imp.Video = ortb.Video{W: 640, H: 360, MaxDuration: []int64{15, 30, 60}[r.IntN(3)], Plcmt: 1 + r.Int64N(4)}
		imp.BidFloor *= 3
	case x < 0.35:
		imp.HasNative = true
	default:
		imp.HasBanner = true
		sizes := desktopSizes
		if dt == 4 || dt == 1 || dt == 5 {
			sizes = mobileSizes
		}
		sz := bannerSizes[sizes[r.IntN(len(sizes))]]
		if r.Float64() < 0.5 {
			imp.Banner.W, imp.Banner.H = sz[0], sz[1]
		} else {
			imp.Banner.Format = append(imp.Banner.Format, ortb.Size{W: sz[0], H: sz[1]})
			if r.Float64() < 0.5 {
				o := bannerSizes[r.IntN(len(bannerSizes))]
				imp.Banner.Format = append(imp.Banner.Format, ortb.Size{W: o[0], H: o[1]})
			}
		}
		imp.Banner.Pos = []int64{0, 1, 3}[r.IntN(3)]
		imp.Instl = sz == [2]int64{320, 480} && r.Float64() < 0.5
	}
	s.req.Imps = append(s.req.Imps, imp)
	s.ad = w.pickAd(r, &s.req.Imps[0])
}

// pickAd chooses a creative the imp can show: its format and, mostly, its
// primary size; sometimes another offered size (a weaker fit).
func (w *world) pickAd(r *rand.Rand, imp *ortb.Imp) *creative {
	for try := 0; try < 64; try++ {
		c := &w.creatives[r.IntN(len(w.creatives))]
		switch {
		case c.mtype == 2 && imp.HasVideo, c.mtype == 4 && imp.HasNative:
			return c
		case c.mtype == 1 && imp.HasBanner:
			if fitsPrimary(imp, c) || (try > 32 && fitsAny(imp, c)) {
				return c
			}
		}
	}
	for i := range w.creatives { // any creative of the right media type
		c := &w.creatives[i]
		if (c.mtype == 1 && imp.HasBanner) || (c.mtype == 2 && imp.HasVideo) || (c.mtype == 4 && imp.HasNative) {
			return c
		}
	}
	return &w.creatives[0]
}

func primarySize(imp *ortb.Imp) (int64, int64) {
	if imp.Banner.W > 0 {
		return imp.Banner.W, imp.Banner.H
	}
	if len(imp.Banner.Format) > 0 {
		return imp.Banner.Format[0].W, imp.Banner.Format[0].H
	}
	return 0, 0
}

func fitsPrimary(imp *ortb.Imp, c *creative) bool {
	w, h := primarySize(imp)
	return int64(c.w) == w && int64(c.h) == h
}

func fitsAny(imp *ortb.Imp, c *creative) bool {
	for _, f := range imp.Banner.Format {
		if int64(c.w) == f.W && int64(c.h) == f.H {
			return true
		}
	}
	return fitsPrimary(imp, c)
}

func pickIndex(r *rand.Rand, weights []float64) int {
	x := r.Float64()
	for i, wt := range weights {
		if x < wt {
			return i
		}
		x -= wt
	}
	return len(weights) - 1
}
