package main

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Shared vocabulary (the simulator draws from the same lists).
var (
	countries  = []string{"USA", "GBR", "DEU", "FRA", "CAN", "BRA", "IND", "JPN", "AUS", "ESP"}
	countryW   = []float64{0.34, 0.08, 0.08, 0.06, 0.05, 0.08, 0.12, 0.07, 0.04, 0.08}
	utcOffsets = map[string]int64{"USA": -300, "GBR": 0, "DEU": 60, "FRA": 60, "CAN": -300, "BRA": -180, "IND": 330, "JPN": 540, "AUS": 600, "ESP": 60}
	gdprLand   = map[string]bool{"GBR": true, "DEU": true, "FRA": true, "ESP": true}
	regions    = []string{"R1", "R2", "R3", "R4", "R5"}

	bannerSizes  = [][2]int64{{300, 250}, {728, 90}, {320, 50}, {300, 600}, {160, 600}, {970, 250}, {320, 480}}
	mobileSizes  = []int{0, 2, 6}       // indexes into bannerSizes
	desktopSizes = []int{0, 1, 3, 4, 5} // indexes into bannerSizes
)

// Device types 1..7 (OpenRTB list 5.21) and their shares.
var deviceTypeW = []float64{0.05, 0.30, 0.05, 0.45, 0.10, 0.03, 0.02}

func osFor(r *rand.Rand, dt int64) string {
	switch dt {
	case 2: // PC
		return pick(r, []string{"Windows", "macOS", "Linux"}, []float64{0.7, 0.25, 0.05})
	case 3, 6, 7: // CTV, connected device, set-top box
		return pick(r, []string{"Android", "Linux"}, []float64{0.6, 0.4})
	default: // mobile, phone, tablet
		return pick(r, []string{"iOS", "Android"}, []float64{0.45, 0.55})
	}
}

func makeFor(os string) string {
	switch os {
	case "iOS", "macOS":
		return "Apple"
	case "Android":
		return "Samsung"
	default:
		return "Generic"
	}
}

// publisher is a fixed property of the world: who sells, what, at which floor.
type publisher struct {
	id, domain, bundle, cat string
	app                     bool
	floor                   float64
	effect                  float64 // hidden quality, logit units
	tags                    int
}

// creative is a candidate ad.
type creative struct {
	campaign, id, advertiser, cat string
	mtype                         int
	w, h                          int
	effect                        float64 // hidden quality, logit units
}

type world struct {
	pubs      []publisher
	creatives []creative
}

func newWorld(r *rand.Rand, nPubs, nCampaigns int) *world {
	w := &world{}
	for i := 1; i <= nPubs; i++ {
		p := publisher{
			id:     fmt.Sprintf("pub-%d", i),
			cat:    fmt.Sprintf("IAB%d", 1+r.IntN(26)),
			app:    r.Float64() < 0.3,
			floor:  math.Round(0.3*math.Exp(r.NormFloat64()*0.6)*100) / 100,
			effect: r.NormFloat64() * 0.25,
			tags:   1 + r.IntN(4),
		}
		if p.app {
			p.bundle = fmt.Sprintf("com.example.app%d", i)
		} else {
			p.domain = fmt.Sprintf("site-%d.example.com", i)
		}
		w.pubs = append(w.pubs, p)
	}
	for c := 1; c <= nCampaigns; c++ {
		camp := fmt.Sprintf("camp-%d", c)
		adv := fmt.Sprintf("adv-%d.example.com", 1+r.IntN(max(nCampaigns*2/3, 1)))
		cat := fmt.Sprintf("IAB%d", 1+r.IntN(26))
		n := 2 + r.IntN(5)
		for k := 1; k <= n; k++ {
			cr := creative{campaign: camp, id: fmt.Sprintf("cr-%d-%d", c, k), advertiser: adv, cat: cat,
				effect: r.NormFloat64() * 0.25}
			switch x := r.Float64(); {
			case x < 0.7:
				cr.mtype = 1
				s := bannerSizes[r.IntN(len(bannerSizes))]
				cr.w, cr.h = int(s[0]), int(s[1])
			case x < 0.88:
				cr.mtype = 2
			default:
				cr.mtype = 4
			}
			w.creatives = append(w.creatives, cr)
		}
	}
	return w
}

func pick[T any](r *rand.Rand, xs []T, weights []float64) T {
	x := r.Float64()
	for i, wt := range weights {
		if x < wt {
			return xs[i]
		}
		x -= wt
	}
	return xs[len(xs)-1]
}
