package simulator

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// ImpContext is what the ground truth sees about one impression: request
// attributes and the ad shown. Everything in it can be read from the request
// JSON, the bid and the time, so a model trained on the logs can learn it.
type ImpContext struct {
	Publisher string // site/app publisher.id
	App       bool
	Country   string
	OS        string
	DevType   int
	LocalHour int // 0..23 at the device: simulated UTC time + geo.utcoffset
	Format    string
	W, H      int64
	User      string
	CID       string
	CrID      string
	Time      int64 // simulated unix seconds of the request
}

// ContextFor builds the context for one imp of req and the bid shown.
func ContextFor(req *openrtb2.BidRequest, imp *openrtb2.Imp, simTime int64, bid *openrtb2.Bid) ImpContext {
	c := ImpContext{CID: bid.CID, CrID: bid.CrID, W: bid.W, H: bid.H, Time: simTime}
	var off int64
	if req.Site != nil && req.Site.Publisher != nil {
		c.Publisher = req.Site.Publisher.ID
	}
	if req.App != nil {
		c.App = true
		if req.App.Publisher != nil {
			c.Publisher = req.App.Publisher.ID
		}
	}
	if d := req.Device; d != nil {
		c.OS, c.DevType = d.OS, int(d.DeviceType)
		if d.Geo != nil {
			c.Country, off = d.Geo.Country, d.Geo.UTCOffset
		}
	}
	if req.User != nil {
		c.User = req.User.ID
	}
	c.LocalHour = time.Unix(simTime+off*60, 0).UTC().Hour()
	switch {
	case imp.Video != nil:
		c.Format = "video"
		if c.W == 0 && imp.Video.W != nil && imp.Video.H != nil {
			c.W, c.H = *imp.Video.W, *imp.Video.H
		}
	case imp.Native != nil:
		c.Format = "native"
	default:
		c.Format = "banner"
		if c.W == 0 && imp.Banner != nil && len(imp.Banner.Format) > 0 {
			c.W, c.H = imp.Banner.Format[0].W, imp.Banner.Format[0].H
		}
	}
	return c
}

// GroundTruth is the hidden click model. The probability is
//
//	logit(p) = logit(Base) + format + device + hour
//	         + 0.30 h(size) + 0.20 h(os) + 0.30 h(country) + 0.50 h(publisher)
//	         + 0.40 h(cid) + 0.30 h(crid) + 0.25 h(crid x country) + 0.25 h(cid x devtype)
//	         + 0.40 h(user)
//
// with format: banner 0, video +0.6, native +0.3; device by OpenRTB device
// type 1..7: +0.1 +-0.2 -0.5 +0.2 +0.1 -0.3 -0.4; hour: 0.25 cos(2 pi (h-20)/24)
// (evening peak, device local time); and h(x) a value in [-1, 1] from an
// FNV-1a hash of Seed and x. Scale multiplies every term after the base.
//
// Drift: from simulated time DriftAt on (unix seconds; 0 never), the
// publisher and OS terms change sign (-0.50 h(publisher), -0.20 h(os)):
// what a model learned about them before is now backwards.
type GroundTruth struct {
	Base    float64 // CTR when every term is 0; default 0.01 (traffic mean about 0.02)
	Seed    uint64
	Scale   float64 // default 1 (0); negative: 0, every term off (a flat CTR of Base)
	DriftAt int64   // simulated unix seconds from which the publisher and OS terms flip (0: never)
}

var devTypeWeight = [8]float64{0, 0.1, -0.2, -0.5, 0.2, 0.1, -0.3, -0.4}

// CTR returns the click probability for c.
func (g GroundTruth) CTR(c ImpContext) float64 {
	base := g.Base
	if base <= 0 {
		base = 0.01
	}
	scale := g.Scale
	switch {
	case scale == 0:
		scale = 1
	case scale < 0: // explicitly 0 (the command's -ctr-scale 0): every attribute term off
		scale = 0
	}
	z := 0.0
	switch c.Format {
	case "video":
		z += 0.6
	case "native":
		z += 0.3
	}
	if c.DevType >= 1 && c.DevType <= 7 {
		z += devTypeWeight[c.DevType]
	}
	z += 0.25 * math.Cos(2*math.Pi*float64(c.LocalHour-20)/24)
	size := strconv.FormatInt(c.W, 10) + "x" + strconv.FormatInt(c.H, 10)
	pubW, osW := 0.50, 0.20
	if g.DriftAt != 0 && c.Time >= g.DriftAt {
		pubW, osW = -pubW, -osW
	}
	z += 0.30*g.h("size", size) + osW*g.h("os", c.OS) + 0.30*g.h("country", c.Country)
	z += pubW*g.h("pub", c.Publisher) + 0.40*g.h("cid", c.CID) + 0.30*g.h("crid", c.CrID)
	z += 0.25*g.h("crid*country", c.CrID+"|"+c.Country) + 0.25*g.h("cid*dev", c.CID+"|"+strconv.Itoa(c.DevType))
	z += 0.40 * g.h("user", c.User)
	return sigmoid(logit(base) + scale*z)
}

// h maps (name, key) to [-1, 1].
func (g GroundTruth) h(name, key string) float64 {
	f := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], g.Seed)
	f.Write(b[:])
	f.Write([]byte(name))
	f.Write([]byte{0})
	f.Write([]byte(key))
	return float64(f.Sum64()>>11)/float64(1<<53)*2 - 1
}

func logit(p float64) float64   { return math.Log(p / (1 - p)) }
func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
