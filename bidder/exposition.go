package bidder

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/privacy"
)

// The /metrics exposition: one prometheus/client_golang registry per
// Server, the one writer of the page. It holds the library's go_* and
// process_* collectors, openbidder_build_info, and collectors that read the
// bid path's striped counters (metrics.go) when Prometheus scrapes: the hot
// path never calls the library. Every name starts with openbidder_,
// counters end in _total, durations are _seconds, money _micros
// (docs/metrics.md lists every series and the names they replace).

const metricPrefix = "openbidder_"

// otherCampaign labels the aggregate of the campaigns that get no series
// of their own (metrics.campaign_series).
const otherCampaign = "other"

// descSet collects a collector's descriptors for Describe.
type descSet []*prometheus.Desc

func (ds *descSet) add(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(metricPrefix+name, help, labels, nil)
	*ds = append(*ds, d)
	return d
}

// The bid path's series (serverCollector).
var (
	serverDescs descSet

	dRequests         = serverDescs.add("requests_total", "Bid requests received.")
	dBidResponses     = serverDescs.add("bid_responses_total", "Bid requests answered 200 with at least one bid.")
	dBids             = serverDescs.add("bids_total", "Individual bids placed (one per imp).")
	dBadRequests      = serverDescs.add("bad_requests_total", "Bid requests answered 400.")
	dTooLarge         = serverDescs.add("too_large_requests_total", "Bid requests answered 413.")
	dTimedOut         = serverDescs.add("request_timeouts_total", "Requests answered 408: not in whole within limits.read_timeout of their first byte (a slow or stalled client).")
	dCutShort         = serverDescs.add("requests_cut_total", "Requests whose client closed or reset the connection before they were in whole (a client that only half-closed gets a 400 saying so).")
	dSourceRefused    = serverDescs.add("bid_source_refused_total", "Bid requests answered 403: their source address is not in limits.bid_sources (or the named exchange's sources), or they came from a browser (an Origin or Sec-Fetch-Site header).")
	dPanics           = serverDescs.add("panics_total", "Handler panics recovered (always a bug).")
	dScored           = serverDescs.add("scored_rows_total", "Candidate rows scored by a CTR model.")
	dTrimmed          = serverDescs.add("candidates_trimmed_total", "Requests whose candidates were cut so the scorer fits the deadline.")
	dCapped           = serverDescs.add("clearing_capped_total", "Win or billing notices whose clearing price exceeded the bid (charged at the bid).")
	dUnderFloor       = serverDescs.add("clearing_under_floor_total", "Win or billing notices whose price was under the imp's floor (charged at the floor).")
	dBadQty           = serverDescs.add("imps_bad_qty_total", "Imps not bid because imp.qty.multiplier was outside limits.min_qty..max_qty.")
	dInsecureImp      = serverDescs.add("imps_insecure_total", "Imps not bid because they ask for https (secure=1) and public_url is http on a host other than loopback.")
	dConnsRefused     = serverDescs.add("connections_refused_total", "Bid listener connections closed as soon as accepted: the listener held limits.max_conns already, none of them one it may close (edge.go).")
	dConnsEvicted     = serverDescs.add("connections_evicted_total", "Bid listener connections closed, at limits.max_conns, for a new one: idle and never a bid request's first, then reading a request for over 50 ms, then exchanges' idle ones.")
	dConnsOpen        = serverDescs.add("connections_open", "Bid listener connections open (lingering ones included).")
	dConnsMax         = serverDescs.add("connections_max", "The bid listener's connection cap (limits.max_conns, or its default from the file descriptor limit).")
	dAcceptRetries    = serverDescs.add("accept_retries_total", "Waits of the bid listener's accept for want of file descriptors or kernel memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): new connections wait in the kernel's backlog until some close.")
	dLongID           = serverDescs.add("imps_long_id_total", "Imps not bid because the request's or the imp's id is longer than a notice token carries (255 bytes).")
	dTrackerReplay    = serverDescs.add("tracker_replays_total", "Impression pixels and clicks of an impression already counted (trackers.go): answered, not counted again (frequency caps, impressions, clicks, events).")
	dTrackerAfterLoss = serverDescs.add("tracker_after_loss_total", "Impression pixels and clicks of a bid whose loss notice came first (no win or bill): answered, not counted (frequency caps, impressions, clicks, events).")
	dTestNotices      = serverDescs.add("test_notices_total", "Notices of free bids (test=1 requests on an exchange with test_requests: free): answered, nothing charged or held.")
	dLossBidWon       = serverDescs.add("loss_notices_bid_won_total", "Loss notices whose reason was 0 (OpenRTB: bid won): the hold and any charge left as they were.")
	dNoticeBad        = serverDescs.add("notices_invalid_total", "Notices refused: forged, expired or malformed.")
	dNoticeSource     = serverDescs.add("notice_source_refused_total", "Win, billing and loss notices answered 403: their source address is not in notices.sources.")
	dNobids           = serverDescs.add("nobids_total", "Bid requests answered 204, by reason.", "reason")
	dNotices          = serverDescs.add("notices_total", "Notices accepted, by kind.", "kind")
	dLatency          = serverDescs.add("request_duration_seconds", "Time from a bid request's arrival at this host to its answer.")
	dQueue            = serverDescs.add("request_queue_seconds", "Time from a bid request's arrival at this host to its handler (queued in socket buffers and the run queue).")
	dShed             = serverDescs.add("shed_duration_seconds", "Time from handler entry to the answer of bid requests shed by the admission limit.")
	dAdmLimit         = serverDescs.add("admission_limit", "Adaptive limit on bid requests in the system (admission.go).")
	dAdmInflight      = serverDescs.add("admission_inflight", "Bid requests inside the handler.")
	dInternal         = serverDescs.add("internal_budget_seconds", "limits.internal_budget: the time from a bid request's arrival the bidder allows itself (the latency alert's deadline).")
	dDegraded         = serverDescs.add("degraded", "1 while the budget store is unreachable and bids go on inside held leases.")
	dPrivDecisions    = serverDescs.add("privacy_decisions_total", "Bid requests that reached targeting, by privacy decision: allowed, or the first regime that took a user-level use away.", "reason")
	dPrivDecodes      = serverDescs.add("privacy_decodes_total", "Consent strings decoded (not found in the cache).")
	dPrivMalformed    = serverDescs.add("privacy_malformed_total", "Decoded consent strings that were malformed (no consent).")
	dPrivPanics       = serverDescs.add("privacy_decoder_panics_total", "Consent decoder panics recovered (each a malformed string; report upstream).")
	dPrivUndisclosed  = serverDescs.add("privacy_tcf_undisclosed_total", "Decoded TC strings written since 2026-02-28 without TCF v2.3's Disclosed Vendors segment: malformed, unless privacy.allow_missing_disclosed_vendors reads them as before v2.3.")
)

// serverCollector reads the Server's own counters at scrape time.
type serverCollector struct{ s *Server }

func (c serverCollector) Describe(ch chan<- *prometheus.Desc) { describe(ch, serverDescs) }

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	s, m := c.s, c.s.m
	for _, x := range []struct {
		d *prometheus.Desc
		v uint64
	}{
		{dRequests, m.requests.load()}, {dBidResponses, m.bids.load()}, {dBids, m.bidsPlaced.load()},
		{dBadRequests, m.badRequest.load()}, {dTooLarge, m.tooLarge.load()}, {dTimedOut, m.timedOut.load()}, {dCutShort, m.cutShort.load()}, {dSourceRefused, m.sourceRefused.load()}, {dPanics, m.panics.load()},
		{dScored, m.scored.load()}, {dTrimmed, m.trimmed.load()}, {dCapped, m.cappedClearing.load()},
		{dUnderFloor, m.underFloor.load()}, {dNoticeBad, m.noticeBad.load()}, {dNoticeSource, m.noticeSource.load()},
		{dBadQty, m.badQty.load()}, {dLossBidWon, m.lossBidWon.load()}, {dTestNotices, m.testNotices.load()}, {dTrackerReplay, m.trackerReplays.load()}, {dTrackerAfterLoss, m.trackersAfterLoss.load()},
		{dLongID, m.longID.load()}, {dInsecureImp, m.insecureImp.load()}, {dAcceptRetries, s.acceptRetries()},
		{dConnsRefused, s.connsRefused()}, {dConnsEvicted, s.connsEvicted()},
	} {
		counterMetric(ch, x.d, float64(x.v))
	}
	for r := reason(1); r < numReasons; r++ {
		counterMetric(ch, dNobids, float64(m.nobids[r].load()), r.String())
	}
	for k := noticeKind(0); k < numNoticeKinds; k++ {
		counterMetric(ch, dNotices, float64(m.notices[k].load()), k.String())
	}
	ch <- m.latency.metric(dLatency)
	ch <- m.queue.metric(dQueue)
	ch <- m.shedTime.metric(dShed)
	gaugeMetric(ch, dAdmLimit, s.adm.load())
	gaugeMetric(ch, dAdmInflight, float64(s.adm.inflight.Load()))
	if el := s.edgeLn.Load(); el != nil {
		gaugeMetric(ch, dConnsOpen, float64(el.open.Load()))
		gaugeMetric(ch, dConnsMax, float64(el.maxConns))
	}
	gaugeMetric(ch, dInternal, s.cfg.Limits.InternalBudget.Seconds())
	gaugeMetric(ch, dDegraded, b2f(s.degraded != nil && s.degraded()))
	for r := range privacy.NumReasons {
		counterMetric(ch, dPrivDecisions, float64(s.privStat.decisions[r].load()), privacy.Reason(r).String())
	}
	st := s.privacy.Stats()
	counterMetric(ch, dPrivDecodes, float64(st.Decodes))
	counterMetric(ch, dPrivMalformed, float64(st.Malformed))
	counterMetric(ch, dPrivPanics, float64(st.Recovered))
	counterMetric(ch, dPrivUndisclosed, float64(st.Undisclosed))
	s.mon.collect(ch)
}

// metric is the histogram as Prometheus shows it: cumulative buckets in
// seconds.
func (h *histogram) metric(d *prometheus.Desc) prometheus.Metric {
	b := make(map[float64]uint64, len(latencyBounds))
	var cum uint64
	for i, ub := range latencyBounds {
		cum += h.buckets[i].load()
		b[ub.Seconds()] = cum
	}
	cum += h.buckets[len(latencyBounds)].load()
	return prometheus.MustNewConstHistogram(d, cum, time.Duration(h.sumNS.load()).Seconds(), b)
}

func counterMetric(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gaugeMetric(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// label makes a configured string (campaign id, model name) a valid label
// value: the library refuses invalid UTF-8, and escapes the rest itself.
func label(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func describe(ch chan<- *prometheus.Desc, ds descSet) {
	for _, d := range ds {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry is the Server's registry: the runtime's and the process's
// series, build info, the bid path's and the per-campaign collectors. The
// App adds its own (models, events, budget) with register.
func newRegistry(s *Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bi := Build()
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: metricPrefix + "build_info",
		Help:        "Always 1: the running build's version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "go": bi.Go}})
	info.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info,
		serverCollector{s},
		campaignCollector{s},
	)
	return reg
}

// metricsHandler serves the registry's page (text format, gzip when asked).
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:      promLog{s.log},
		ErrorHandling: promhttp.ContinueOnError, // a broken series never hides the others
	})
}

// promLog sends the library's scrape errors to the server's log.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) {
	parts := make([]string, len(v))
	for i, x := range v {
		if e, ok := x.(error); ok {
			parts[i] = e.Error()
		} else if s, ok := x.(string); ok {
			parts[i] = s
		}
	}
	l.log.Error("metrics scrape", "err", strings.Join(parts, " "))
}

// ---- Per-campaign series, bounded ----

var (
	campaignDescs descSet

	dCampBids   = campaignDescs.add("campaign_bids_total", "Bids placed per campaign (top metrics.campaign_series campaigns by spend, the rest as campaign=\"other\").", "campaign")
	dCampNobids = campaignDescs.add("campaign_nobids_total", "Candidates dropped per campaign, by reason: refused at the gate, or priced under the floor or refused a hold after scoring. Only candidates the bidder reached count: it stops gating an imp once nothing left can beat the kept ones.", "campaign", "reason")
	dCampImps   = campaignDescs.add("campaign_impressions_total", "Impression pixels received per campaign.", "campaign")
	dCampClicks = campaignDescs.add("campaign_clicks_total", "Clicks received per campaign.", "campaign")
	dCampPred   = campaignDescs.add("campaign_predicted_clicks_total", "Sum of the predicted CTR over impressions per campaign (calibration: compare with clicks).", "campaign")

	// Budget figures per campaign (budget.CampaignStatus). Money sums into
	// "other" (micros of each campaign's own currency); the ratios do not.
	budgetGauges = []struct {
		d   *prometheus.Desc
		v   func(*budget.CampaignStatus) float64
		sum bool // meaningful summed over campaigns
	}{
		{campaignDescs.add("budget_total_budget_micros", "Total budget.", "campaign"), func(c *budget.CampaignStatus) float64 { return float64(c.TotalBudgetMicros) }, true},
		{campaignDescs.add("budget_daily_budget_micros", "Daily budget.", "campaign"), func(c *budget.CampaignStatus) float64 { return float64(c.DailyBudgetMicros) }, true},
		{campaignDescs.add("budget_spent_micros", "Total spend (global as of the newest record seen plus local unreported).", "campaign"), func(c *budget.CampaignStatus) float64 { return float64(c.SpentMicros) }, true},
		{campaignDescs.add("budget_spent_today_micros", "Spend today in the campaign's time zone.", "campaign"), func(c *budget.CampaignStatus) float64 { return float64(c.SpentTodayMicros) }, true},
		{campaignDescs.add("budget_held_micros", "Open holds on this instance.", "campaign"), func(c *budget.CampaignStatus) float64 { return float64(c.HeldMicros) }, true},
		{campaignDescs.add("budget_leased_micros", "Lease held by this instance.", "campaign"), func(c *budget.CampaignStatus) float64 { return float64(c.LeasedMicros) }, true},
		{campaignDescs.add("budget_pacing_target_micros", "Planned spend by now today.", "campaign"), func(c *budget.CampaignStatus) float64 { return float64(c.PacingTargetMicros) }, true},
		{campaignDescs.add("budget_pacing_error", "(spent today - target) / daily budget.", "campaign"), func(c *budget.CampaignStatus) float64 { return c.PacingError }, false},
		{campaignDescs.add("budget_throttle", "Participation probability.", "campaign"), func(c *budget.CampaignStatus) float64 { return c.Throttle }, false},
	}
)

// campaignCollector writes the per-campaign series: one set for each of
// the metrics.campaign_series campaigns with the most spend (ties by id),
// one campaign="other" set summing the rest, so 10,000 campaigns cost a
// bounded number of series.
type campaignCollector struct{ s *Server }

func (c campaignCollector) Describe(ch chan<- *prometheus.Desc) { describe(ch, campaignDescs) }

func (c campaignCollector) Collect(ch chan<- prometheus.Metric) {
	// Swept campaigns' counts are in gone or still in their record, not
	// both (sweepCampaigns), while this reads them.
	c.s.m.scrape.RLock()
	defer c.s.m.scrape.RUnlock()
	stats := c.s.m.snapshotCampaigns() // a copy: entries are taken out below
	// One entry per campaign with money or a bid-path record, offered to the
	// top metrics.campaign_series as it is read; what is not kept is summed
	// into "other" at once, so no list of every campaign is built. At 10,000
	// campaigns this is milliseconds of one goroutine's work, paced
	// (budget.ScanYield: the budget's walk paces itself and this callback)
	// so that bid requests on the same core are not held behind a scrape.
	top := newFirstN(c.s.cfg.Metrics.CampaignSeries, (*campEntry).before)
	other := &campOther{money: make([]float64, len(budgetGauges))}
	if c.s.campaignMoney != nil {
		c.s.campaignMoney(func(st *budget.CampaignStatus) {
			other.anyMoney = true
			e := campEntry{id: st.ID, spent: st.SpentMicros, money: *st, hasMoney: true, stats: stats[st.ID]}
			delete(stats, st.ID)
			if out := top.offer(e); out != nil {
				other.add(out)
			}
		})
	}
	y := budget.NewScanYield()
	for id, s := range stats {
		if out := top.offer(campEntry{id: id, stats: s}); out != nil {
			other.add(out)
		}
		y.Step(1)
	}
	kept := top.kept()
	slices.SortFunc(kept, func(a, b campEntry) int { return strings.Compare(a.id, b.id) })
	for i := range kept {
		e := &kept[i]
		var one campTotals
		one.add(e.stats)
		one.collect(ch, label(e.id))
		if e.hasMoney {
			for _, g := range budgetGauges {
				gaugeMetric(ch, g.d, g.v(&e.money), label(e.id))
			}
		}
	}
	c.s.m.mu.Lock()
	gone := c.s.m.gone
	c.s.m.mu.Unlock()
	if other.n == 0 && gone == (campTotals{}) {
		return
	}
	other.totals.addTotals(&gone) // swept campaigns: a sweep does not lower "other" (a campaign entering the top by spend still does)
	other.totals.collect(ch, otherCampaign)
	for i, g := range budgetGauges {
		if g.sum && other.anyMoney {
			gaugeMetric(ch, g.d, other.money[i], otherCampaign)
		}
	}
}

// campOther sums the campaigns of a scrape left out of the top: their
// counters, and their money where the gauge sums (in budgetGauges' order).
type campOther struct {
	n        int
	anyMoney bool // the budget listed some campaign (money series are due)
	totals   campTotals
	money    []float64
}

func (o *campOther) add(e *campEntry) {
	o.n++
	o.totals.add(e.stats)
	if e.hasMoney {
		for i, g := range budgetGauges {
			o.money[i] += g.v(&e.money)
		}
	}
}

// campEntry is one campaign of a scrape: its spend, its money figures
// (hasMoney: the budget listed it) and its bid-path counters (nil without).
type campEntry struct {
	id       string
	spent    int64
	hasMoney bool
	money    budget.CampaignStatus
	stats    *campaignStats
}

// before says whether a ranks above b: more spend, ties by id (the same set
// at every scrape for the same figures).
func (a *campEntry) before(b *campEntry) bool {
	if a.spent != b.spent {
		return a.spent > b.spent
	}
	return a.id < b.id
}

// firstN keeps the n entries that rank first (before(a, b): a ranks above
// b) of those offered, in a heap whose root is the lowest kept: 10,000
// offers cost about 10,000 comparisons with that root, not a sort (a sort
// of 10,000 status rows was milliseconds of unbroken work on the bid
// path's core), and no list of them all. n <= 0 keeps none.
type firstN[T any] struct {
	n      int
	before func(a, b *T) bool
	es     []T
}

func newFirstN[T any](n int, before func(a, b *T) bool) *firstN[T] {
	n = max(n, 0)
	return &firstN[T]{n: n, before: before, es: make([]T, 0, min(n, 1024)+1)}
}

// offer adds e. It returns the entry left out, e or the kept one e
// displaced (valid until the next offer), or nil when e was kept and
// nothing left. Entries are compared and left out from their places in es
// (e is appended past the kept, the one left out ends there): before is a
// func value, so a pointer to a variable would move it to the heap on
// every offer.
func (f *firstN[T]) offer(e T) *T {
	f.es = append(f.es, e)
	last := len(f.es) - 1
	if last < f.n {
		for i := last; i > 0; { // sift up
			p := (i - 1) / 2
			if !f.lower(i, p) {
				break
			}
			f.es[i], f.es[p] = f.es[p], f.es[i]
			i = p
		}
		return nil
	}
	if f.before(&f.es[last], &f.es[0]) {
		f.es[0], f.es[last] = f.es[last], f.es[0]
		for i := 0; ; { // sink
			l, m := 2*i+1, i
			if l < last && f.lower(l, m) {
				m = l
			}
			if r := l + 1; r < last && f.lower(r, m) {
				m = r
			}
			if m == i {
				break
			}
			f.es[i], f.es[m] = f.es[m], f.es[i]
			i = m
		}
	}
	f.es = f.es[:last]
	return &f.es[:last+1][last]
}

// lower says es[i] ranks below es[j].
func (f *firstN[T]) lower(i, j int) bool { return f.before(&f.es[j], &f.es[i]) }

// kept is the entries kept, in no order.
func (f *firstN[T]) kept() []T { return f.es }

// campTotals sums campaigns' hot counters.
type campTotals struct {
	bids, imps, clicks, predE6 uint64
	nobids                     [numReasons]uint64
}

func (t *campTotals) add(s *campaignStats) {
	if s == nil { // money but no bid-path record yet
		return
	}
	t.bids += s.bids()
	for r := reason(1); r < numReasons; r++ {
		t.nobids[r] += s.nobids(r)
	}
	t.imps += s.imps.load()
	t.clicks += s.clicks.load()
	t.predE6 += s.predE6.load()
}

func (t *campTotals) addTotals(o *campTotals) {
	t.bids += o.bids
	for r := range t.nobids {
		t.nobids[r] += o.nobids[r]
	}
	t.imps += o.imps
	t.clicks += o.clicks
	t.predE6 += o.predE6
}

func (t *campTotals) collect(ch chan<- prometheus.Metric, id string) {
	counterMetric(ch, dCampBids, float64(t.bids), id)
	for r := reason(1); r < numReasons; r++ {
		if v := t.nobids[r]; v > 0 {
			counterMetric(ch, dCampNobids, float64(v), id, r.String())
		}
	}
	counterMetric(ch, dCampImps, float64(t.imps), id)
	counterMetric(ch, dCampClicks, float64(t.clicks), id)
	counterMetric(ch, dCampPred, float64(t.predE6)/1e6, id)
}

// snapshotCampaigns copies the id -> stats map (the records themselves are
// shared; their counters are read atomically).
func (m *metrics) snapshotCampaigns() map[string]*campaignStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*campaignStats, len(m.campaigns))
	for id, s := range m.campaigns {
		out[id] = s
	}
	return out
}
