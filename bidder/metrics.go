package bidder

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Hot counters live in padded stripes; each pooled request context owns a
// stripe index, so concurrent requests rarely share a cache line. Sums are
// taken only when /metrics is scraped.
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
	reasonNone       reason = iota
	reasonTMax              // tmax too short to answer in time
	reasonNotReady          // campaigns or model not loaded
	reasonNoMatch           // no campaign eligible for any imp
	reasonCurrency          // floor or bid currency not in the rate table
	reasonPaced             // pacing throttle said not now
	reasonBudget            // no lease headroom or budget exhausted
	reasonFreqCap           // frequency cap reached
	reasonBelowFloor        // best value under the floor
	reasonDeadline          // no scorer could answer before the deadline
	reasonModelError        // scoring failed
	reasonFailClosed        // budget store unreachable and lease used up
	reasonFlight            // outside flight / budget window
	reasonOverload          // shed by the admission limit (admission.go)
	reasonLate              // answer ready after the deadline: bid withdrawn, holds released
	reasonPaused            // kill switch: all bidding, or the campaign, paused (control.go)
	numReasons
)

var reasonNames = [numReasons]string{
	reasonNone:       "none",
	reasonTMax:       "tmax",
	reasonNotReady:   "not_ready",
	reasonNoMatch:    "no_campaign",
	reasonCurrency:   "currency",
	reasonPaced:      "paced",
	reasonBudget:     "budget",
	reasonFreqCap:    "frequency_cap",
	reasonBelowFloor: "below_floor",
	reasonDeadline:   "deadline",
	reasonModelError: "model_error",
	reasonFailClosed: "fail_closed",
	reasonFlight:     "flight",
	reasonOverload:   "overload",
	reasonLate:       "late",
	reasonPaused:     "paused",
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

// write writes h in the exposition format under name.
func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range latencyBounds {
		cum += h.buckets[i].load()
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b.Seconds(), cum)
	}
	cum += h.buckets[len(latencyBounds)].load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, cum, name, time.Duration(h.sumNS.load()).Seconds(), name, cum)
}

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
	requests       counter
	bids           counter // 200 responses
	bidsPlaced     counter // individual bids (one per imp won)
	nobids         [numReasons]counter
	badRequest     counter
	tooLarge       counter
	panics         counter
	latency        histogram // arrival (edge.go) to answer
	queue          histogram // arrival to handler entry
	shedTime       histogram // handler entry to answer, shed requests
	scored         counter   // rows scored
	trimmed        counter   // requests whose candidates were cut to fit the slack
	notices        [numNoticeKinds]counter
	noticeBad      counter // forged, expired, malformed
	cappedClearing counter // clearing price above the bid
	underFloor     counter // clearing price under the imp's floor

	mu        sync.Mutex // guards campaigns and blocks (not the counters inside)
	campaigns map[string]*campaignStats
	blocks    []*campBlock // the last has room from line len(campaigns) % campBlockLen
}

func newMetrics() *metrics {
	return &metrics{campaigns: make(map[string]*campaignStats)}
}

// campaign returns the stats for id, creating them once (reload path only).
func (m *metrics) campaign(id string) *campaignStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.campaigns[id]
	if s == nil {
		i := len(m.campaigns) % campBlockLen
		if i == 0 {
			m.blocks = append(m.blocks, new(campBlock))
		}
		s = &campaignStats{blk: m.blocks[len(m.blocks)-1], i: i}
		m.campaigns[id] = s
	}
	return s
}

// gauge is one extra metric line set by another part (model, budget).
type gauge struct {
	name, help, typ string
	value           func(w io.Writer, name string)
}

// writePrometheus writes the text exposition format.
func (m *metrics) writePrometheus(w io.Writer, extra []gauge) {
	pc := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	pc("bidder_requests_total", "Bid requests received.", m.requests.load())
	pc("bidder_bid_responses_total", "Bid requests answered 200 with at least one bid.", m.bids.load())
	pc("bidder_bids_total", "Individual bids placed (one per imp).", m.bidsPlaced.load())
	pc("bidder_bad_requests_total", "Bid requests answered 400.", m.badRequest.load())
	pc("bidder_too_large_total", "Bid requests answered 413.", m.tooLarge.load())
	pc("bidder_panics_total", "Handler panics recovered (always a bug).", m.panics.load())
	pc("bidder_scored_rows_total", "Candidate rows scored by a CTR model.", m.scored.load())
	pc("bidder_candidates_trimmed_total", "Requests whose candidates were cut so the scorer fits the deadline.", m.trimmed.load())
	pc("bidder_clearing_capped_total", "Win or billing notices whose clearing price exceeded the bid (charged at the bid).", m.cappedClearing.load())
	pc("bidder_clearing_under_floor_total", "Win or billing notices whose price was under the imp's floor (charged at the floor).", m.underFloor.load())
	pc("bidder_notices_invalid_total", "Notices refused: forged, expired or malformed.", m.noticeBad.load())

	fmt.Fprintf(w, "# HELP bidder_nobids_total Bid requests answered 204, by reason.\n# TYPE bidder_nobids_total counter\n")
	for r := reason(1); r < numReasons; r++ {
		fmt.Fprintf(w, "bidder_nobids_total{reason=%q} %d\n", r.String(), m.nobids[r].load())
	}
	fmt.Fprintf(w, "# HELP bidder_notices_total Notices accepted, by kind.\n# TYPE bidder_notices_total counter\n")
	for k := noticeKind(0); k < numNoticeKinds; k++ {
		fmt.Fprintf(w, "bidder_notices_total{kind=%q} %d\n", k.String(), m.notices[k].load())
	}

	fmt.Fprintf(w, "# HELP bidder_request_duration_seconds Time from a bid request's arrival at this host to its answer.\n# TYPE bidder_request_duration_seconds histogram\n")
	var cum uint64
	for i, b := range latencyBounds {
		cum += m.latency.buckets[i].load()
		fmt.Fprintf(w, "bidder_request_duration_seconds_bucket{le=\"%g\"} %d\n", b.Seconds(), cum)
	}
	cum += m.latency.buckets[len(latencyBounds)].load()
	fmt.Fprintf(w, "bidder_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "bidder_request_duration_seconds_sum %g\n", time.Duration(m.latency.sumNS.load()).Seconds())
	fmt.Fprintf(w, "bidder_request_duration_seconds_count %d\n", cum)
	m.queue.write(w, "bidder_request_queue_seconds", "Time from a bid request's arrival at this host to its handler (queued in socket buffers and the run queue).")
	m.shedTime.write(w, "bidder_shed_duration_seconds", "Time from handler entry to the answer of bid requests shed by the admission limit.")

	m.mu.Lock()
	ids := make([]string, 0, len(m.campaigns))
	for id := range m.campaigns {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	sort.Strings(ids)
	fmt.Fprintf(w, "# HELP bidder_campaign_bids_total Bids placed per campaign.\n# TYPE bidder_campaign_bids_total counter\n")
	for _, id := range ids {
		fmt.Fprintf(w, "bidder_campaign_bids_total{campaign=%q} %d\n", id, m.campaign(id).bids())
	}
	fmt.Fprintf(w, "# HELP bidder_campaign_nobids_total Candidates dropped per campaign, by reason: refused at the gate, or priced under the floor or refused a hold after scoring. Only candidates the bidder reached count: it stops gating an imp once nothing left can beat the kept ones.\n# TYPE bidder_campaign_nobids_total counter\n")
	for _, id := range ids {
		s := m.campaign(id)
		for r := reason(1); r < numReasons; r++ {
			if v := s.nobids(r); v > 0 {
				fmt.Fprintf(w, "bidder_campaign_nobids_total{campaign=%q,reason=%q} %d\n", id, r.String(), v)
			}
		}
	}
	fmt.Fprintf(w, "# HELP bidder_campaign_impressions_total Impression pixels received per campaign.\n# TYPE bidder_campaign_impressions_total counter\n")
	for _, id := range ids {
		fmt.Fprintf(w, "bidder_campaign_impressions_total{campaign=%q} %d\n", id, m.campaign(id).imps.load())
	}
	fmt.Fprintf(w, "# HELP bidder_campaign_clicks_total Clicks received per campaign.\n# TYPE bidder_campaign_clicks_total counter\n")
	for _, id := range ids {
		fmt.Fprintf(w, "bidder_campaign_clicks_total{campaign=%q} %d\n", id, m.campaign(id).clicks.load())
	}
	fmt.Fprintf(w, "# HELP bidder_campaign_predicted_clicks_total Sum of the predicted CTR over impressions per campaign (calibration: compare with clicks).\n# TYPE bidder_campaign_predicted_clicks_total counter\n")
	for _, id := range ids {
		fmt.Fprintf(w, "bidder_campaign_predicted_clicks_total{campaign=%q} %g\n", id, float64(m.campaign(id).predE6.load())/1e6)
	}
	for _, g := range extra {
		if g.name == "" { // a part that writes its own HELP and TYPE lines
			g.value(w, "")
			continue
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", g.name, g.help, g.name, g.typ)
		g.value(w, g.name)
	}
}

// labelValue escapes a Prometheus label value.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
