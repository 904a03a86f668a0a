package simulator

import (
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const histMaxUs = 60_000_000 // 60 s

// secStat is one second of the run.
type secStat struct {
	sent, answered, timeouts, errors, bids, wins, imps, clicks int64
	hist                                                       *hdrhistogram.Histogram
	spend                                                      map[string]int64 // cumulative micros per campaign at the end of the second
	plan                                                       map[string]int64 // admin pacing_target_micros
	adminSpent                                                 map[string]int64 // admin spent_today_micros
}

// campStat accumulates one campaign (bid.cid).
type campStat struct {
	Currency    string
	Bids        int64
	Wins        int64
	Impressions int64
	Clicks      int64
	SpendMicros int64 // billed on render, in Currency
	WonMicros   int64 // clearing price of every win, rendered or not
	SumPCTR     float64
	PCTRCount   int64
	SumTruth    float64
}

// auctionStat accumulates our bids by auction type (all amounts USD; CPMs
// summed per bid, spend and values per impression: CPM / 1000).
type auctionStat struct {
	Bids, Wins, Impressions, Clicks int64
	BidCPM                          float64 // sum of our bid CPMs
	Spend                           float64 // billed
	ExpClicks                       float64 // sum of the ground-truth CTR of impressions
	Valued                          int64   // impressions of campaigns with a value (Config.Values)
	ValueTrue, ValueBidder          float64 // their value at the true CTR, and at pCTR capped at max bid
	// BlindBidder counts valued impressions whose value depends on pCTR
	// (target_cpc, target_cpa) but whose bid carried no ext.pctr (the bidder
	// reveals it only with pricing.reveal_pctr): ValueBidder cannot be known.
	BlindBidder int64
	SpendValued float64 // their billed spend
}

type calPoint struct {
	pctr, truth float32
	click       bool
}

// Stats is the run's shared accounting. One mutex; nothing slow under it.
type Stats struct {
	mu        sync.Mutex
	start     time.Time
	hist      *hdrhistogram.Histogram
	lag       *hdrhistogram.Histogram // actual send time minus scheduled time
	svc       *hdrhistogram.Histogram // latency from the actual send (what closed-loop tools report)
	secs      []*secStat
	status    map[int]int64
	camps     map[string]*campStat
	calib     []calPoint
	maxCalib  int
	counters  Counters
	seenBidID map[string]struct{}
	auctions  [2]auctionStat // second price, first price
}

// Counters are the run's totals.
type Counters struct {
	Scheduled     int64 `json:"scheduled"`
	Sent          int64 `json:"sent"`
	DroppedBound  int64 `json:"dropped_inflight_bound"`
	Answered      int64 `json:"answered"`
	Timeouts      int64 `json:"timeouts"`
	TimeoutsNoAns int64 `json:"timeouts_unanswered"`
	TimeoutsLate  int64 `json:"timeouts_answered_late"`
	Errors        int64 `json:"errors"`
	NoBids        int64 `json:"no_bids"`
	BidResponses  int64 `json:"bid_responses"`
	Bids          int64 `json:"bids"`
	LateBids      int64 `json:"late_bids"`
	InvalidBids   int64 `json:"invalid_bids"`
	BadResponses  int64 `json:"bad_responses"`
	ImpsOffered   int64 `json:"imps_offered"`
	Auctions      int64 `json:"auctions_with_our_bid"`
	Wins          int64 `json:"wins"`
	Impressions   int64 `json:"impressions"`
	Clicks        int64 `json:"clicks"`
	LogRows       int64 `json:"log_rows"`
	LogDropped    int64 `json:"log_dropped"`
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, histMaxUs, 3) }

// NewStats starts the clock.
func NewStats(start time.Time, maxCalib int) *Stats {
	return &Stats{start: start, hist: newHist(), lag: newHist(), svc: newHist(), status: map[int]int64{},
		camps: map[string]*campStat{}, maxCalib: maxCalib, seenBidID: map[string]struct{}{}}
}

// sec returns the bucket for t; callers hold mu.
func (s *Stats) sec(t time.Time) *secStat {
	i := int(t.Sub(s.start) / time.Second)
	if i < 0 {
		i = 0
	}
	for len(s.secs) <= i {
		s.secs = append(s.secs, &secStat{})
	}
	return s.secs[i]
}

func (s *Stats) camp(cid, cur string) *campStat {
	c := s.camps[cid]
	if c == nil {
		c = &campStat{Currency: cur}
		s.camps[cid] = c
	}
	return c
}

func (s *Stats) recordSent(due, now time.Time) {
	s.mu.Lock()
	s.counters.Sent++
	s.sec(due).sent++
	_ = s.lag.RecordValue(clampUs(now.Sub(due)))
	s.mu.Unlock()
}

func (s *Stats) recordDropped(due time.Time) {
	s.mu.Lock()
	s.counters.DroppedBound++
	s.mu.Unlock()
}

func clampUs(d time.Duration) int64 {
	us := d.Microseconds()
	if us < 1 {
		return 1
	}
	if us > histMaxUs {
		return histMaxUs
	}
	return us
}

// recordAnswer records latency from the scheduled time; late reports whether
// it came after tmax.
func (s *Stats) recordAnswer(due time.Time, lat, fromSend time.Duration, status int, late bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.svc.RecordValue(clampUs(fromSend))
	s.counters.Answered++
	s.status[status]++
	us := clampUs(lat)
	_ = s.hist.RecordValue(us)
	b := s.sec(due)
	b.answered++
	if b.hist == nil {
		b.hist = hdrhistogram.New(1, histMaxUs, 2)
	}
	_ = b.hist.RecordValue(us)
	if late {
		s.counters.Timeouts++
		s.counters.TimeoutsLate++
		b.timeouts++
	}
	if status == 204 {
		s.counters.NoBids++
	}
}

// recordFailure records a request that got no answer. A timeout (no answer
// by tmax + grace) is the slowest request of all: it counts in the latency
// histograms at the time it was given up, lat from its scheduled send and
// fromSend from the actual one (a lower bound of what it would have taken),
// so that a target that stops answering shows in the percentiles instead of
// leaving them (coordinated omission by survivorship).
func (s *Stats) recordFailure(due time.Time, lat, fromSend time.Duration, timeout bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.sec(due)
	if timeout {
		s.counters.Timeouts++
		s.counters.TimeoutsNoAns++
		b.timeouts++
		us := clampUs(lat)
		_ = s.hist.RecordValue(us)
		_ = s.svc.RecordValue(clampUs(fromSend))
		if b.hist == nil {
			b.hist = hdrhistogram.New(1, histMaxUs, 2)
		}
		_ = b.hist.RecordValue(us)
		return
	}
	s.counters.Errors++
	b.errors++
}

func (s *Stats) add(f func(c *Counters)) {
	s.mu.Lock()
	f(&s.counters)
	s.mu.Unlock()
}

// bidEvent is what one of our bids did in its auction.
type bidEvent struct {
	due      time.Time
	cid, cur string
	won      bool
	clearing int64 // micros of currency per impression, when won
	rendered bool
	clicked  bool
	pctr     float64
	hasPCTR  bool
	truth    float64

	firstPrice             bool
	bid                    float64 // our bid, CPM USD
	valued                 bool    // the campaign has a value (Config.Values)
	blindBidder            bool    // valued at pCTR, and the bid carried none
	valueTrue, valueBidder float64 // CPM USD at the true CTR, and at pCTR capped
}

func (s *Stats) recordBid(e bidEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.camp(e.cid, e.cur)
	b := s.sec(e.due)
	c.Bids++
	s.counters.Bids++
	b.bids++
	a := &s.auctions[0]
	if e.firstPrice {
		a = &s.auctions[1]
	}
	a.Bids++
	a.BidCPM += e.bid
	if !e.won {
		return
	}
	a.Wins++
	c.Wins++
	c.WonMicros += e.clearing
	s.counters.Wins++
	b.wins++
	if !e.rendered {
		return
	}
	c.Impressions++
	c.SpendMicros += e.clearing
	c.SumTruth += e.truth
	spend := ToUSD(float64(e.clearing), e.cur) / 1e6
	a.Impressions++
	a.Spend += spend
	a.ExpClicks += e.truth
	if e.clicked {
		a.Clicks++
	}
	if e.valued {
		a.Valued++
		a.ValueTrue += e.valueTrue / 1000
		a.ValueBidder += e.valueBidder / 1000
		if e.blindBidder {
			a.BlindBidder++
		}
		a.SpendValued += spend
	}
	s.counters.Impressions++
	b.imps++
	if e.hasPCTR {
		c.SumPCTR += e.pctr
		c.PCTRCount++
	}
	if e.clicked {
		c.Clicks++
		s.counters.Clicks++
		b.clicks++
	}
	if e.hasPCTR && len(s.calib) < s.maxCalib {
		s.calib = append(s.calib, calPoint{float32(e.pctr), float32(e.truth), e.clicked})
	}
}

// closeSecond stores the cumulative spend and the admin plan at second i.
func (s *Stats) closeSecond(i int, plan, adminSpent map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.secs) <= i {
		s.secs = append(s.secs, &secStat{})
	}
	b := s.secs[i]
	b.spend = make(map[string]int64, len(s.camps))
	for id, c := range s.camps {
		b.spend[id] = c.SpendMicros
	}
	b.plan, b.adminSpent = plan, adminSpent
}

// progress is a snapshot for the live line.
type progress struct {
	sec                  int
	sent, answered, bids int64
	timeouts, dropped    int64
	p99us                int64
	bidRate, winRate     float64
	spendMicros          int64 // all campaigns, mixed currencies summed as micros
	inflight             int64
}

func (s *Stats) progressAt(i int) progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := progress{sec: i, dropped: s.counters.DroppedBound}
	if i < len(s.secs) {
		b := s.secs[i]
		p.sent, p.answered, p.bids, p.timeouts = b.sent, b.answered, b.bids, b.timeouts
		if b.hist != nil {
			p.p99us = b.hist.ValueAtQuantile(99)
		}
	}
	if s.counters.Answered > 0 {
		p.bidRate = float64(s.counters.BidResponses) / float64(s.counters.Answered)
	}
	if s.counters.Bids > 0 {
		p.winRate = float64(s.counters.Wins) / float64(s.counters.Bids)
	}
	for _, c := range s.camps {
		p.spendMicros += int64(ToUSD(float64(c.SpendMicros), c.Currency))
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
