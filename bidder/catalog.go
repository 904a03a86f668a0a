package bidder

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
)

// money is what the bid path needs from the budget store for one campaign
// snapshot, by campaign index. Implementations never allocate, never block
// and never touch the network on these calls.
type money interface {
	// allow is the pacing gate and lease headroom check for a bid whose
	// charge can be at most maxCharge micros (campaign currency), with the
	// participation draw of request number draw: one draw per campaign and
	// request, whatever its creatives and imps (budget.Manager.AllowDraw).
	allow(ci int, maxCharge int64, now time.Time, draw uint64) reason
	// freqLeft is how many more impressions of campaign ci user may see
	// (user 0 is unknown: 0, a capped campaign does not bid on users it
	// cannot count); a request bids ci on at most that many of its imps.
	freqLeft(ci int, user uint64, now time.Time) int64
	// hold reserves, for a known user (not 0), one impression of ci's
	// frequency cap until the bid's impression or loss notice if one is
	// left (budget.Manager.FreqReserve: reasonFreqCap when not), then amount
	// micros against the lease (reasonBudget when it does not fit); the id
	// goes in the bid's signed notice URLs.
	hold(ci int, amount int64, user uint64, now time.Time) (uint64, reason)
	// unhold releases a hold of campaign c, and its frequency-cap count for
	// user, whose bid was withdrawn before its answer was written
	// (admission.go).
	unhold(c *campaigns.Campaign, hold uint64, user uint64, now time.Time)
	// observeRequest counts a request for the traffic forecast that shapes
	// forecast-paced campaigns.
	observeRequest(now time.Time)
}

// catalog is the bid path's view of one campaign snapshot, with everything
// derived from it computed once per reload and swapped atomically.
type catalog struct {
	snap    *campaigns.Snapshot
	money   money
	ads     []features.Ad     // by creative index
	frag    [][]byte          // by creative index: pre-encoded bid fields
	upper   []int64           // by campaign index: highest possible CPM micros
	cur     []uint16          // by campaign index: its currency in curs
	curs    []string          // the campaigns' currencies
	stats   []*campaignStats  // by campaign index
	campID  [][]byte          // by campaign index
	crID    [][]byte          // by creative index
	landing map[string]string // creativeKey -> landing URL (click path only)

	pause atomic.Pointer[pauseView] // paused campaigns (control.go); nil: none
}

// retiredLandings keeps the click destinations of creatives that a reload
// removed, each until notices.token_ttl after its removal: an ad already on
// a page stays clickable (302 to its landing page) while its click token is
// valid, whatever happened to its campaign since. A creative that comes back
// leaves it; entries are pruned at each reload.
type retiredLandings struct {
	mu sync.Mutex
	m  map[string]retiredLanding // creativeKey ->
}

type retiredLanding struct {
	url   string
	until time.Time
}

// retire records what old had and cur has not, and prunes what expired.
func (r *retiredLandings) retire(old, cur *catalog, now time.Time, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.m {
		if _, back := cur.landing[k]; back || !now.Before(e.until) {
			delete(r.m, k)
		}
	}
	if old == nil {
		return
	}
	for k, url := range old.landing {
		if _, kept := cur.landing[k]; !kept && url != "" {
			if r.m == nil {
				r.m = make(map[string]retiredLanding)
			}
			r.m[k] = retiredLanding{url: url, until: now.Add(ttl)}
		}
	}
}

func (r *retiredLandings) lookup(k string, now time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[k]; ok && now.Before(e.until) {
		return e.url
	}
	return ""
}

// creativeKey identifies a creative across snapshots.
func creativeKey(campaign, creative []byte) string {
	return string(campaign) + "\x00" + string(creative)
}

func newCatalog(snap *campaigns.Snapshot, m *metrics, mon money) *catalog {
	c := &catalog{
		snap:    snap,
		money:   mon,
		ads:     make([]features.Ad, len(snap.Creatives)),
		frag:    make([][]byte, len(snap.Creatives)),
		upper:   make([]int64, len(snap.Campaigns)),
		stats:   make([]*campaignStats, len(snap.Campaigns)),
		campID:  make([][]byte, len(snap.Campaigns)),
		crID:    make([][]byte, len(snap.Creatives)),
		landing: make(map[string]string, len(snap.Creatives)),
	}
	c.cur = make([]uint16, len(snap.Campaigns))
	for _, camp := range snap.Campaigns {
		k := slices.Index(c.curs, camp.Currency)
		if k < 0 {
			k = len(c.curs)
			c.curs = append(c.curs, camp.Currency)
		}
		c.cur[camp.Index] = uint16(k)
		c.upper[camp.Index] = camp.UpperMicros()
		c.stats[camp.Index] = m.campaign(camp.ID)
		c.campID[camp.Index] = []byte(camp.ID)
	}
	for _, cr := range snap.Creatives {
		var w, h int64
		if len(cr.Sizes) > 0 {
			w, h = cr.Sizes[0].W, cr.Sizes[0].H
		}
		c.ads[cr.Index] = features.NewAd(cr.Campaign.ID, cr.ID, cr.Campaign.Advertiser, cr.MType(), int(w), int(h))
		c.frag[cr.Index] = bidFragment(cr)
		c.crID[cr.Index] = []byte(cr.ID)
		c.landing[creativeKey(c.campID[cr.Campaign.Index], c.crID[cr.Index])] = cr.LandingURL
	}
	return c
}

// bidFragment pre-encodes the bid fields that depend only on the creative:
// ,"adid":..,"crid":..,"cid":..,"adomain":[..],"cat":[..],"cattax":N (when
// not 1),"attr":[..],"bundle":..,"dur":N (video and audio of known
// duration),"mtype":N
func bidFragment(cr *campaigns.Creative) []byte {
	b := []byte(`,"adid":`)
	b = ortb.AppendJSONStr(b, cr.ID)
	b = append(b, `,"crid":`...)
	b = ortb.AppendJSONStr(b, cr.ID)
	b = append(b, `,"cid":`...)
	b = ortb.AppendJSONStr(b, cr.Campaign.ID)
	if len(cr.ADomain) > 0 {
		b = appendStringArray(append(b, `,"adomain":`...), cr.ADomain)
	}
	if len(cr.Cat) > 0 {
		b = appendStringArray(append(b, `,"cat":`...), cr.Cat)
		if cr.CatTax != 1 {
			b = strconv.AppendInt(append(b, `,"cattax":`...), cr.CatTax, 10)
		}
	}
	if len(cr.Attr) > 0 {
		b = append(b, `,"attr":[`...)
		for i, a := range cr.Attr {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, a, 10)
		}
		b = append(b, ']')
	}
	if cr.Bundle != "" {
		b = append(b, `,"bundle":`...)
		b = ortb.AppendJSONStr(b, cr.Bundle)
	}
	if cr.Language != "" {
		b = append(b, `,"language":`...)
		b = ortb.AppendJSONStr(b, cr.Language)
	}
	if cr.Duration > 0 {
		b = strconv.AppendInt(append(b, `,"dur":`...), cr.Duration, 10)
	}
	b = append(b, `,"mtype":`...)
	return strconv.AppendInt(b, int64(cr.MType()), 10)
}

func appendStringArray(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = ortb.AppendJSONStr(b, s)
	}
	return append(b, ']')
}
