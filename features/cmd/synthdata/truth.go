package main

import (
	"math"
)

// The hidden ground truth: pCTR = sigmoid(logit), logit the sum of the terms
// below. Every term reads the true attributes of the impression, including
// user attributes a model does not see without consent, so no model can
// reach the oracle's AUC exactly. The mean CTR comes out near 1%.
const truthBase = -5.0

var (
	deviceEffect  = map[int64]float64{1: 0.1, 2: -0.2, 3: -0.6, 4: 0.25, 5: 0.15, 6: -0.3, 7: -0.4}
	osEffect      = map[string]float64{"iOS": 0.15, "Android": 0.05, "Windows": -0.1, "macOS": 0, "Linux": -0.2}
	countryEffect = map[string]float64{"USA": 0.1, "GBR": 0.05, "DEU": -0.05, "FRA": 0, "CAN": 0.05,
		"BRA": 0.25, "IND": 0.35, "JPN": -0.3, "AUS": 0, "ESP": 0.1}
	sizeEffect = map[[2]int]float64{{300, 250}: 0.1, {728, 90}: -0.25, {320, 50}: -0.35, {300, 600}: 0.2,
		{160, 600}: -0.3, {970, 250}: 0.05, {320, 480}: 0.45}
)

// truthLogit is the documented ground truth:
//
//	base -5.0
//	+ device type, OS and country effects (tables above)
//	+ 0.3 cos(2 pi (localHour - 20) / 24)            evening peak
//	+ 0.1 on Saturday and Sunday (local)
//	+ format: banner by size (table), video 0.5 - 0.01 (maxdur - 30), native 0.35
//	+ 0.3 interstitial, 0.2 above the fold (pos 1), 0.1 in apps, 0.05 on wifi (conntype 2)
//	+ publisher and creative quality (hidden, N(0, 0.25^2) each)
//	+ 0.5 when the campaign's IAB category is the site's/app's
//	- 0.7 when a banner's size is not the imp's primary size
//	+ 0.08 per user segment, 0.1 with a user id, -0.01 per year of age over 30
//	+ 0.15 ln(1 + floor)
func truthLogit(s *sample) float64 {
	req := &s.req
	imp := &req.Imps[0]
	dev := &req.Device
	z := truthBase + deviceEffect[dev.DeviceType] + osEffect[string(dev.OS)] + countryEffect[string(dev.Geo.Country)]
	local := s.now.Add(minutes(dev.Geo.UTCOffset)) // the true local time, sent or not
	h := float64(local.Hour()) + float64(local.Minute())/60
	z += 0.3 * math.Cos(2*math.Pi*(h-20)/24)
	if wd := local.Weekday(); wd == 0 || wd == 6 {
		z += 0.1
	}
	switch s.ad.mtype {
	case 1:
		z += sizeEffect[[2]int{s.ad.w, s.ad.h}]
		if !fitsPrimary(imp, s.ad) {
			z -= 0.7
		}
	case 2:
		z += 0.5 - 0.01*float64(imp.Video.MaxDuration-30)
	case 4:
		z += 0.35
	}
	if imp.Instl {
		z += 0.3
	}
	if imp.Banner.Pos == 1 {
		z += 0.2
	}
	if req.HasApp {
		z += 0.1
	}
	if dev.ConnType == 2 {
		z += 0.05
	}
	z += s.pub.effect + s.ad.effect
	if s.ad.cat == s.pub.cat {
		z += 0.5
	}
	z += 0.08 * float64(s.segs)
	if s.hasID {
		z += 0.1
	}
	z -= 0.01 * float64(s.age-30)
	z += 0.15 * math.Log1p(imp.BidFloor)
	return z
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
