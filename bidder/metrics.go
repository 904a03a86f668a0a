package bidder

import (
	"sync"
	"sync/atomic"
	"time"
)

// Hot counters live in padded stripes; each pooled request context owns a
// stripe index, so concurrent requests rarely share a cache line. Sums are
// taken only when /metrics is scraped (exposition.go's collectors). They are
// hand-written rather than the library's: a prometheus.Counter is one
// atomic shared by every core, and a labelled one costs a map look-up per
// call; these cost one uncontended atomic add and no allocation.
const stripes = 8

type paddedUint64 struct {
	v atomic.Uint64
	_ [56]byte
}

type counter struct{ s [stripes]paddedUint64 }

func (c *counter) add(stripe int, n uint64) { c.s[stripe&(stripes-1)].v.Add(n) }

func (c *counter) load() uint64 {
	var t uint64
	for i := range c.s {
		t += c.s[i].v.Load()
	}
	return t
}

// reason is why a request or a candidate did not bid.
type reason uint8

const (
	reasonNone        reason = iota
	reasonTMax               // under min_slack of the deadline left when the bid began: queued, or tmax too short
	reasonNotReady           // campaigns or model not loaded
	reasonNoMatch            // no campaign eligible for any imp
	reasonCurrency           // floor or bid currency not in the rate table
	reasonPaced              // pacing throttle said not now
	reasonBudget             // no lease headroom or budget exhausted
	reasonFreqCap            // frequency cap reached
	reasonBelowFloor         // best value under the floor
	reasonDeadline           // no scorer could answer before the deadline
	reasonModelError         // scoring failed
	reasonFailClosed         // budget store unreachable and lease used up
	reasonFlight             // outside flight / budget window
	reasonOverload           // shed by the admission limit (admission.go)
	reasonLate               // answer ready after the deadline: bid withdrawn, holds released
	reasonPaused             // kill switch: all bidding, or the campaign, paused (control.go)
	reasonTestRequest        // a test=1 request on an exchange with test_requests: nobid
	reasonInsecure           // imps with secure=1 and an http public_url (not loopback): no bid on them
	reasonPrivacy            // privacy.require_purpose2 and GDPR without a purpose 2 basis
	reasonImpRefused         // an imp no campaign may bid on: exp past the charge window, a qty.multiplier refused
	reasonInvalidImp         // an imp whose id is repeated in the request, or a request or imp id over 255 bytes
	numReasons
)

var reasonNames = [numReasons]string{
	reasonNone:        "none",
	reasonTMax:        "tmax",
	reasonNotReady:    "not_ready",
	reasonNoMatch:     "no_campaign",
	reasonCurrency:    "currency",
	reasonPaced:       "paced",
	reasonBudget:      "budget",
	reasonFreqCap:     "frequency_cap",
	reasonBelowFloor:  "below_floor",
	reasonDeadline:    "deadline",
	reasonModelError:  "model_error",
	reasonFailClosed:  "fail_closed",
	reasonFlight:      "flight",
	reasonOverload:    "overload",
	reasonLate:        "late",
	reasonPaused:      "paused",
	reasonTestRequest: "test_request",
	reasonInsecure:    "insecure",
	reasonPrivacy:     "privacy",
	reasonImpRefused:  "imp_refused",
	reasonInvalidImp:  "invalid_imp",
}

func (r reason) String() string { return reasonNames[r] }

// latencyBounds are the histogram's upper bounds.
var latencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 200 * time.Microsecond,
	300 * time.Microsecond, 500 * time.Microsecond, 750 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond,
	7500 * time.Microsecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond,
}

type histogram struct {
	buckets [len(latencyBounds) + 1]counter
	sumNS   counter
}

func (h *histogram) observe(stripe int, d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.buckets[i].add(stripe, 1)
	h.sumNS.add(stripe, uint64(d))
}

// Per-campaign counters on the bid path: bids, and candidates refused per
// candidate-level reason. They are laid out stripe-major in blocks of
// campBlockLen campaigns: for each stripe one contiguous run with one
// 64-byte line per campaign holding its campFields counters, so a campaign
// costs stripes x 64 bytes (512) instead of a padded line per counter and
// stripe, and two campaigns or two stripes never share a line. The lines of
// a stripe are summed only when /metrics is scraped.
const (
	campFields   = 8
	campBlockLen = 256 // campaigns per block: 8 x 256 x 64 B = 128 KiB, page aligned
)

// campField is each reason's field in a campaign line (0 holds bids); -1
// for request-level reasons, which no candidate is refused for.
var campField = [numReasons]int8{
	reasonNone: -1, reasonTMax: -1, reasonNotReady: -1, reasonNoMatch: -1,
	reasonCurrency: 1, reasonPaced: 2, reasonBudget: 3, reasonFreqCap: 4,
	reasonBelowFloor: 5, reasonFailClosed: 6, reasonFlight: 7,
	reasonDeadline: -1, reasonModelError: -1,
}

type campLine [campFields]atomic.Uint64

type campBlock struct {
	s [stripes][campBlockLen]campLine
}

// plainCounter is an unstriped counter with counter's methods, for rare
// events (notices): add ignores the stripe.
type plainCounter struct{ v atomic.Uint64 }

func (c *plainCounter) add(_ int, n uint64) { c.v.Add(n) }
func (c *plainCounter) load() uint64        { return c.v.Load() }

// campaignStats are kept per campaign id across reloads.
type campaignStats struct {
	blk *campBlock
	i   int // line in blk
	// Feedback from trackers, for calibration: impressions, clicks, and the
	// sum of the predicted CTR over impressions (millionths).
	imps, clicks, predE6 plainCounter
}

// bid counts a bid placed for the campaign.
func (c *campaignStats) bid(stripe int) { c.blk.s[stripe&(stripes-1)][c.i][0].Add(1) }

// nobid counts one of its candidates refused for r (a candidate-level
// reason; request-level ones are not counted per campaign).
func (c *campaignStats) nobid(stripe int, r reason) {
	if f := campField[r]; f > 0 {
		c.blk.s[stripe&(stripes-1)][c.i][f].Add(1)
	}
}

func (c *campaignStats) field(f int8) uint64 {
	var t uint64
	for s := range c.blk.s {
		t += c.blk.s[s][c.i][f].Load()
	}
	return t
}

// bids is the number of bids placed.
func (c *campaignStats) bids() uint64 { return c.field(0) }

// nobids is the number of candidates refused for r.
func (c *campaignStats) nobids(r reason) uint64 {
	if f := campField[r]; f > 0 {
		return c.field(f)
	}
	return 0
}

// metrics is everything /metrics shows about the bid path.
type metrics struct {
	requests          counter
	bids              counter // 200 responses
	bidsPlaced        counter // individual bids (one per imp won)
	nobids            [numReasons]counter
	badRequest        counter
	timedOut          counter // 408: a request not in whole within read_timeout
	cutShort          counter // a request its client closed or reset before it was in whole
	tooLarge          counter
	sourceRefused     counter // 403: source not in bid_sources
	panics            counter
	latency           histogram // arrival (edge.go) to answer
	queue             histogram // arrival to handler entry
	shedTime          histogram // handler entry to answer, shed requests
	scored            counter   // rows scored
	trimmed           counter   // requests whose candidates were cut to fit the slack
	notices           [numNoticeKinds]counter
	noticeBad         counter // forged, expired, malformed
	noticeSource      counter // 403: a win, billing or loss notice from outside notices.sources
	cappedClearing    counter // clearing price above the bid
	underFloor        counter // clearing price under the imp's floor
	lossBidWon        counter // loss notices with r=0 ("bid won"): nothing released
	testNotices       counter // notices of test-mode bids: answered, never charged
	trackerReplays    counter // impression pixels and clicks seen before: answered, not counted again
	trackersAfterLoss counter // impression pixels and clicks of a bid whose loss came first: answered, not counted
	longID            counter // imps skipped: request or imp id longer than a token carries
	badQty            counter // imps skipped: qty.multiplier outside limits.min_qty..max_qty
	insecureImp       counter // imps skipped: secure=1 with an http public_url (not loopback)

	mu        sync.Mutex // guards campaigns, blocks, lines, free, absent and gone (not the counters inside)
	campaigns map[string]*campaignStats
	blocks    []*campBlock // the last has room from line lines % campBlockLen
	lines     int          // lines ever handed out
	// Campaigns no published set has had for a while are swept
	// (sweepCampaigns): their counts go to gone (summed into
	// campaign="other", which the sweep does not lower) and their line to free, for
	// the next new campaign.
	free   []campSlot
	absent map[string]time.Time // ids not in the published set, since when
	gone   campTotals
	// scrape is held (read) by a scrape from its copy of campaigns to its
	// last read of their counters, and (write) by a sweep: a campaign's
	// counts are in it or in gone, never both or neither.
	scrape sync.RWMutex
}

// campSlot is a campaign's line in a block.
type campSlot struct {
	blk *campBlock
	i   int
}

func newMetrics() *metrics {
	return &metrics{campaigns: make(map[string]*campaignStats), absent: map[string]time.Time{}}
}

// campaign returns the stats for id, creating them once (reload path only).
func (m *metrics) campaign(id string) *campaignStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.campaigns[id]
	if s == nil {
		if n := len(m.free); n > 0 {
			s = &campaignStats{blk: m.free[n-1].blk, i: m.free[n-1].i}
			m.free = m.free[:n-1]
		} else {
			i := m.lines % campBlockLen
			if i == 0 {
				m.blocks = append(m.blocks, new(campBlock))
			}
			m.lines++
			s = &campaignStats{blk: m.blocks[len(m.blocks)-1], i: i}
		}
		m.campaigns[id] = s
	}
	delete(m.absent, id)
	return s
}

// campaignSweepAfter is how long a campaign is out of the published set
// before its counters are swept: longer than any request holds a catalog
// (whose campaigns' lines it counts into).
const campaignSweepAfter = 10 * time.Minute

// sweepCampaigns drops the counters of campaigns that live (the published
// set) has not had for campaignSweepAfter: their counts are added to gone
// (campaign="other" keeps them), their line is zeroed and handed to the
// next new campaign. Without it every id ever loaded kept 512 bytes of
// counters and its map entry (an outside audit: 12 reloads of 1,000 new ids
// each, heap 86 -> 120 MiB). A notice of a swept campaign (an impression
// pixel, a click) counts in a new record. It returns how many were swept.
func (m *metrics) sweepCampaigns(live func(id string) bool, now time.Time) int {
	m.scrape.Lock()
	defer m.scrape.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.campaigns {
		if live(id) {
			delete(m.absent, id)
			continue
		}
		since, ok := m.absent[id]
		if !ok {
			m.absent[id] = now
			continue
		}
		if now.Sub(since) < campaignSweepAfter {
			continue
		}
		m.gone.add(s)
		for st := range s.blk.s {
			for f := range s.blk.s[st][s.i] {
				s.blk.s[st][s.i][f].Store(0)
			}
		}
		m.free = append(m.free, campSlot{s.blk, s.i})
		delete(m.campaigns, id)
		delete(m.absent, id)
		n++
	}
	return n
}
