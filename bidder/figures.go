package bidder

import (
	"sync"
	"time"
)

// Read-only accessors over the bid path's counters (metrics.go) for the
// status page: every read of the metrics struct's fields outside the
// /metrics writer is here. They sum the stripes when called (a status
// request), never on the bid path.

// trafficFigures are the instance's request-level counters.
type trafficFigures struct {
	Requests       uint64            `json:"requests"`
	BidResponses   uint64            `json:"bid_responses"` // answered 200
	Bids           uint64            `json:"bids"`          // individual bids (one per imp)
	BadRequests    uint64            `json:"bad_requests"`
	TooLarge       uint64            `json:"too_large"`
	Panics         uint64            `json:"panics"`
	ScoredRows     uint64            `json:"scored_rows"`
	NoBids         map[string]uint64 `json:"nobids"`  // 204 answers by reason (non-zero ones)
	Notices        map[string]uint64 `json:"notices"` // accepted, by kind
	NoticesInvalid uint64            `json:"notices_invalid"`
	LatencyP50     float64           `json:"latency_p50_seconds"` // arrival to answer, estimated from the histogram
	LatencyP99     float64           `json:"latency_p99_seconds"`
	// LatencyWindow is the seconds LatencyP50 and LatencyP99 cover: the
	// time since the oldest status read of the last minute (latencyWindow),
	// 0 for "since the start" (the first read in a minute).
	LatencyWindow float64 `json:"latency_window_seconds"`
}

func (m *metrics) traffic() trafficFigures {
	f := trafficFigures{
		Requests: m.requests.load(), BidResponses: m.bids.load(), Bids: m.bidsPlaced.load(),
		BadRequests: m.badRequest.load(), TooLarge: m.tooLarge.load(), Panics: m.panics.load(),
		ScoredRows: m.scored.load(), NoticesInvalid: m.noticeBad.load(),
		NoBids: map[string]uint64{}, Notices: map[string]uint64{},
	}
	for r := reason(1); r < numReasons; r++ {
		if v := m.nobids[r].load(); v > 0 {
			f.NoBids[r.String()] = v
		}
	}
	for k := noticeKind(0); k < numNoticeKinds; k++ {
		f.Notices[k.String()] = m.notices[k].load()
	}
	// LatencyP50, LatencyP99 and LatencyWindow: App.status, over the last
	// minute (latencyWindow).
	return f
}

// latencyCounts is a histogram's buckets, summed over the stripes.
type latencyCounts [len(latencyBounds) + 1]uint64

func (h *histogram) counts() latencyCounts {
	var c latencyCounts
	for i := range c {
		c[i] = h.buckets[i].load()
	}
	return c
}

// quantile estimates the q-quantile in seconds, interpolating inside the
// bucket it falls in (0 before any observation; the last bound past it).
func (counts *latencyCounts) quantile(q float64) float64 {
	var total uint64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	for i, n := range counts {
		if i == len(latencyBounds) {
			break
		}
		if cum+float64(n) >= rank && n > 0 {
			lo := time.Duration(0)
			if i > 0 {
				lo = latencyBounds[i-1]
			}
			frac := (rank - cum) / float64(n)
			return (lo + time.Duration(frac*float64(latencyBounds[i]-lo))).Seconds()
		}
		cum += float64(n)
	}
	return latencyBounds[len(latencyBounds)-1].Seconds()
}

// campaignFigures are one campaign's bid-path counters.
type campaignFigures struct {
	Bids            uint64            `json:"bids"`
	NoBids          map[string]uint64 `json:"nobids"` // candidates refused or dropped, by reason (non-zero ones)
	Impressions     uint64            `json:"impressions"`
	Clicks          uint64            `json:"clicks"`
	PredictedClicks float64           `json:"predicted_clicks"` // sum of predicted CTR over impressions
}

// campaignFigures reads campaign id's counters (zero when it has none).
func (m *metrics) campaignFigures(id string) campaignFigures {
	m.mu.Lock()
	st := m.campaigns[id]
	m.mu.Unlock()
	f := campaignFigures{NoBids: map[string]uint64{}}
	if st == nil {
		return f
	}
	f.Bids = st.bids()
	for r := reason(1); r < numReasons; r++ {
		if v := st.nobids(r); v > 0 {
			f.NoBids[r.String()] = v
		}
	}
	f.Impressions, f.Clicks = st.imps.load(), st.clicks.load()
	f.PredictedClicks = float64(st.predE6.load()) / 1e6
	return f
}

// predictions are the served model's predictions: rows scored and their mean.
func (mo *monitor) predictions() (rows uint64, mean float64) {
	for i := range mo.pctr {
		rows += mo.pctr[i].load()
	}
	if rows > 0 {
		mean = float64(mo.pSumE6.load()) / 1e6 / float64(rows)
	}
	return rows, mean
}

// latencyWindow makes the status page's latency figures those of about the
// last minute: a p99 since the start hardly moves, after a day of traffic,
// for a slow spell the operator is looking at the page for. It keeps the
// latency histogram's buckets as they were at status reads (one every
// latencySnapEvery at most, none older than latencySpan), and the figures
// are those of the answers since the oldest kept. Status reads only: the
// bid path is not touched.
type latencyWindow struct {
	mu    sync.Mutex
	snaps []latencySnap // oldest first
}

type latencySnap struct {
	at     time.Time
	counts latencyCounts
}

const (
	latencySpan      = time.Minute
	latencySnapEvery = 5 * time.Second
)

// figures returns p50 and p99 of the answers since the oldest status read
// of the last latencySpan, and the seconds that covers; with none (the first
// read in a minute), those since the start, and 0 seconds.
func (w *latencyWindow) figures(h *histogram, now time.Time) (p50, p99, seconds float64) {
	cur := h.counts()
	w.mu.Lock()
	defer w.mu.Unlock()
	i := 0
	for i < len(w.snaps) && now.Sub(w.snaps[i].at) > latencySpan {
		i++
	}
	w.snaps = append(w.snaps[:0], w.snaps[i:]...)
	d := cur
	if len(w.snaps) > 0 {
		base := &w.snaps[0]
		for j := range d {
			d[j] -= min(d[j], base.counts[j])
		}
		seconds = now.Sub(base.at).Seconds()
	}
	if len(w.snaps) == 0 || now.Sub(w.snaps[len(w.snaps)-1].at) >= latencySnapEvery {
		w.snaps = append(w.snaps, latencySnap{at: now, counts: cur})
	}
	return d.quantile(0.5), d.quantile(0.99), seconds
}
