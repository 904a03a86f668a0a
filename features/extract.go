package features

import (
	"math"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// ExtractImp writes the request/imp slots [0, ImpWidth) of a row into
// dst[:ImpWidth] for one imp of req. now is the bid time (it gives the local
// hour and day from device.geo.utcoffset and the user's age). When userLevel
// is false the user-level slots (Slot.User) are written as 0. userLevel is
// the request's privacy decision, which this package does not take: the
// bidder passes privacy.Decision.Allows(privacy.Personalize), decided once
// per request from COPPA, the TCF consent string, us_privacy and GPP
// (docs/privacy.md). It does not allocate and panics if len(dst) < ImpWidth.
func ExtractImp(dst []float32, req *ortb.Request, imp *ortb.Imp, now time.Time, userLevel bool) {
	d := dst[:ImpWidth:ImpWidth]
	clear(d)
	extractContext(d, req)
	extractDevice(d, req, now)
	extractImp(d, imp)
	d[SlotTMax] = float32(max(req.TMax, 0))
	if userLevel {
		extractUser(d, req, now)
	}
}

func extractContext(d []float32, req *ortb.Request) {
	var pub *ortb.Publisher
	var cats [][]byte
	switch {
	case req.HasSite:
		pub, cats = &req.Site.Publisher, req.Site.Cat
		d[SlotInventory] = catSlot(SlotInventory, req.Site.Domain)
		d[SlotIsApp] = 0
	case req.HasApp:
		pub, cats = &req.App.Publisher, req.App.Cat
		d[SlotInventory] = catSlot(SlotInventory, req.App.Bundle)
		d[SlotIsApp] = 1
	default:
		d[SlotIsApp] = -1
		return
	}
	d[SlotPublisher] = catSlot(SlotPublisher, pub.ID)
	if len(cats) > 0 {
		d[SlotCategory] = catSlot(SlotCategory, topCategory(cats[0]))
	}
}

// topCategory cuts an IAB subcategory to its tier-1 parent: "IAB1-2" -> "IAB1".
func topCategory(c []byte) []byte {
	for i, b := range c {
		if b == '-' {
			return c[:i]
		}
	}
	return c
}

func extractDevice(d []float32, req *ortb.Request, now time.Time) {
	d[SlotHour], d[SlotDayOfWeek] = -1, -1
	d[SlotLimitAdTrk] = -1
	// Geo is read even without a device object: the parser folds user.geo
	// into Device.Geo when device.geo is absent (Device.HasGeo).
	dev := &req.Device
	g := &dev.Geo
	d[SlotCountry] = catSlot(SlotCountry, g.Country)
	if len(g.Region) > 0 {
		h := fnvAddByte(fnvAdd(fnvOffset, g.Country), '/')
		d[SlotRegion] = bucket(fnvAdd(h, g.Region), Slots[SlotRegion].Buckets)
	}
	if g.HasUTCOffset && g.UTCOffset >= -16*60 && g.UTCOffset <= 16*60 {
		d[SlotHour], d[SlotDayOfWeek] = localHourDay(now, g.UTCOffset)
	}
	if !req.HasDevice {
		return
	}
	d[SlotOS] = catSlot(SlotOS, dev.OS)
	d[SlotMake] = catSlot(SlotMake, dev.Make)
	d[SlotLanguage] = catSlot(SlotLanguage, dev.Language)
	d[SlotDeviceType] = float32(clampInt(dev.DeviceType, 0, 255))
	d[SlotConnType] = float32(clampInt(dev.ConnType, 0, 255))
	d[SlotLimitAdTrk] = float32(max(dev.DNT, dev.LMT))
}

// localHourDay returns the hour 0..23 and weekday 0 (Sunday)..6 at now in a
// zone offsetMin minutes east of UTC.
func localHourDay(now time.Time, offsetMin int64) (hour, day float32) {
	s := now.Unix() + offsetMin*60
	days := floorDiv(s, 86400)
	hour = float32(floorDiv(s-days*86400, 3600))
	day = float32(((days+4)%7 + 7) % 7) // 1970-01-01 was a Thursday
	return hour, day
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func clampInt(v, lo, hi int64) int64 {
	return min(max(v, lo), hi)
}

func extractImp(d []float32, imp *ortb.Imp) {
	var mask float32
	var w, h int64
	if imp.HasBanner {
		mask++
		w, h = imp.Banner.W, imp.Banner.H
		if (w <= 0 || h <= 0) && len(imp.Banner.Format) > 0 {
			w, h = imp.Banner.Format[0].W, imp.Banner.Format[0].H
		}
		d[SlotFormatCount] = float32(len(imp.Banner.Format))
		d[SlotPos] = float32(clampInt(imp.Banner.Pos, 0, 255))
	}
	if imp.HasVideo {
		mask += 2
		if w <= 0 || h <= 0 {
			w, h = imp.Video.W, imp.Video.H
		}
		d[SlotVideoMaxDur] = float32(clampInt(imp.Video.MaxDuration, 0, 3600))
		p := imp.Video.Plcmt
		if p <= 0 {
			p = imp.Video.Placement
		}
		d[SlotVideoPlcmt] = float32(clampInt(p, 0, 255))
	}
	if imp.HasAudio {
		mask += 4
	}
	if imp.HasNative {
		mask += 8
	}
	w, h = clampInt(w, 0, 1<<16), clampInt(h, 0, 1<<16)
	d[SlotImpFormats] = mask
	d[SlotImpW], d[SlotImpH] = float32(w), float32(h)
	d[SlotImpSizeCat] = sizeSlot(SlotImpSizeCat, w, h)
	if imp.BidFloor > 0 && !math.IsInf(imp.BidFloor, 0) {
		d[SlotLogFloor] = float32(math.Log1p(imp.BidFloor))
	}
	d[SlotSecure] = float32(imp.Secure)
	if imp.Instl {
		d[SlotInstl] = 1
	}
	deals := float32(len(imp.Deals))
	if imp.PrivateAuction {
		deals += 0.5
	}
	d[SlotDeals] = deals
	d[SlotTagID] = catSlot(SlotTagID, imp.TagID)
}

func extractUser(d []float32, req *ortb.Request, now time.Time) {
	u := &req.User
	// The advertising id counts only where the device allows tracking, as
	// for the frequency key (ortb.Device.AdID). Under lmt=1 it was still the
	// user slot, and the row log kept it for training.
	ifa := req.Device.AdID()
	if len(u.ID) > 0 || len(u.BuyerUID) > 0 || ifa != nil {
		d[SlotHasUserID] = 1
	}
	switch {
	case len(u.BuyerUID) > 0:
		d[SlotUser] = catSlot(SlotUser, u.BuyerUID)
	case len(u.ID) > 0:
		d[SlotUser] = catSlot(SlotUser, u.ID)
	case ifa != nil:
		d[SlotUser] = catSlot(SlotUser, ifa)
	}
	d[SlotSegments] = float32(len(u.Segments))
	if u.Yob > 0 {
		if age := int64(now.Year()) - u.Yob; age > 0 && age <= 120 {
			d[SlotUserAge] = float32(age)
		}
	}
	if len(u.Gender) == 1 {
		switch u.Gender[0] {
		case 'M', 'm':
			d[SlotGender] = 1
		case 'F', 'f':
			d[SlotGender] = 2
		case 'O', 'o':
			d[SlotGender] = 3
		}
	}
}
