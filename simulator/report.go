package simulator

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency is a percentile summary in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	return Latency{Count: h.TotalCount(), Mean: math.Round(h.Mean()*10) / 10, P50: h.ValueAtQuantile(50),
		P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
}

// CampaignReport is spend and delivery of one campaign (bid.cid) next to
// its budget and pacing plan from the admin endpoint when given.
type CampaignReport struct {
	CID                string   `json:"cid"`
	Currency           string   `json:"currency"`
	Bids               int64    `json:"bids"`
	Wins               int64    `json:"wins"`
	WinRate            float64  `json:"win_rate"`
	Impressions        int64    `json:"impressions"`
	Clicks             int64    `json:"clicks"`
	SpendMicros        int64    `json:"spend_micros"` // billed (rendered) at the clearing price
	Spend              float64  `json:"spend"`        // currency units
	WonMicros          int64    `json:"won_micros"`   // every win at its clearing price
	ECPM               float64  `json:"ecpm"`
	ECPC               *float64 `json:"ecpc"`
	PredictedCTR       *float64 `json:"predicted_ctr"`
	ObservedCTR        *float64 `json:"observed_ctr"`
	TrueCTR            *float64 `json:"true_ctr"`
	TotalBudgetMicros  *int64   `json:"total_budget_micros"`
	DailyBudgetMicros  *int64   `json:"daily_budget_micros"`
	BudgetCurrency     string   `json:"budget_currency,omitempty"`
	SpendBudgetCur     *int64   `json:"spend_budget_currency_micros"` // billed spend converted to the budget's currency
	BidderSpentStart   *int64   `json:"bidder_spent_at_start_micros"`
	BidderSpentMicros  *int64   `json:"bidder_spent_micros"`
	PacingMode         string   `json:"pacing_mode,omitempty"`
	PacingTargetMicros *int64   `json:"pacing_target_micros"`
	PacingError        *float64 `json:"pacing_error"`
	OverspendMicros    *int64   `json:"overspend_micros"`       // max(0, spent at start + billed in the run - total budget); null without one
	DailyOverspend     *int64   `json:"daily_overspend_micros"` // the same against the daily budget and spent_today at start
}

// AuctionReport is our bids in one kind of auction (first price, second
// price, or all), in USD. Surplus is value minus the billed price, over the
// impressions of campaigns with a value (Config.Values): "true" values an
// impression at its ground-truth CTR (the advertiser's worth), "bidder" at
// the bid's pCTR capped at max bid (the bidder's own value, what it bids at
// second price). Null without values.
type AuctionReport struct {
	Bids                 int64    `json:"bids"`
	Wins                 int64    `json:"wins"`
	WinRate              float64  `json:"win_rate"`
	Impressions          int64    `json:"impressions"`
	Clicks               int64    `json:"clicks"`
	ExpectedClicks       float64  `json:"expected_clicks"` // sum of the impressions' ground-truth CTR
	SpendUSD             float64  `json:"spend_usd"`
	PricePerImpression   float64  `json:"price_per_impression_usd"` // spend / impressions
	ECPM                 float64  `json:"ecpm_usd"`
	MeanBidCPM           float64  `json:"mean_bid_cpm_usd"`
	ClicksPerUSD         float64  `json:"clicks_per_usd"`
	ExpectedClicksPerUSD float64  `json:"expected_clicks_per_usd"`
	ValueTrueUSD         *float64 `json:"value_true_usd"`
	ValueBidderUSD       *float64 `json:"value_bidder_usd"`
	SurplusTrueUSD       *float64 `json:"surplus_true_usd"`
	SurplusBidderUSD     *float64 `json:"surplus_bidder_usd"`
}

func auctionReport(a auctionStat) AuctionReport {
	r := AuctionReport{Bids: a.Bids, Wins: a.Wins, WinRate: ratio(a.Wins, a.Bids), Impressions: a.Impressions,
		Clicks: a.Clicks, ExpectedClicks: a.ExpClicks, SpendUSD: a.Spend}
	if a.Impressions > 0 {
		r.PricePerImpression = a.Spend / float64(a.Impressions)
		r.ECPM = 1000 * r.PricePerImpression
	}
	if a.Bids > 0 {
		r.MeanBidCPM = a.BidCPM / float64(a.Bids)
	}
	if a.Spend > 0 {
		r.ClicksPerUSD, r.ExpectedClicksPerUSD = float64(a.Clicks)/a.Spend, a.ExpClicks/a.Spend
	}
	if a.Valued > 0 {
		r.ValueTrueUSD, r.SurplusTrueUSD = ptr(a.ValueTrue), ptr(a.ValueTrue-a.SpendValued)
		if a.BlindBidder == 0 { // else unknown (null), not a value of 0 at a pCTR of 0
			r.ValueBidderUSD, r.SurplusBidderUSD = ptr(a.ValueBidder), ptr(a.ValueBidder-a.SpendValued)
		}
	}
	return r
}

func (a auctionStat) plus(b auctionStat) auctionStat {
	return auctionStat{Bids: a.Bids + b.Bids, Wins: a.Wins + b.Wins, Impressions: a.Impressions + b.Impressions,
		Clicks: a.Clicks + b.Clicks, BidCPM: a.BidCPM + b.BidCPM, Spend: a.Spend + b.Spend,
		ExpClicks: a.ExpClicks + b.ExpClicks, Valued: a.Valued + b.Valued, ValueTrue: a.ValueTrue + b.ValueTrue,
		ValueBidder: a.ValueBidder + b.ValueBidder, SpendValued: a.SpendValued + b.SpendValued,
		BlindBidder: a.BlindBidder + b.BlindBidder}
}

// CalibrationBin is one decile of impressions ordered by predicted CTR.
type CalibrationBin struct {
	N           int     `json:"n"`
	MeanPCTR    float64 `json:"mean_pctr"`
	ObservedCTR float64 `json:"observed_ctr"`
	MeanTrueCTR float64 `json:"mean_true_ctr"`
}

// Second is one second of the run's timeline.
type Second struct {
	T        int   `json:"t"`
	Sent     int64 `json:"sent"`
	Answered int64 `json:"answered"`
	Timeouts int64 `json:"timeouts"`
	Errors   int64 `json:"errors"`
	Bids     int64 `json:"bids"`
	Wins     int64 `json:"wins"`
	P50us    int64 `json:"p50_us"`
	P90us    int64 `json:"p90_us"`
	P99us    int64 `json:"p99_us"`
}

// Report is DIR/report.json.
type Report struct {
	Started         time.Time                `json:"started"`
	Config          map[string]any           `json:"config"`
	SendWindowS     float64                  `json:"send_window_s"`
	ElapsedS        float64                  `json:"elapsed_s"`
	Requests        int64                    `json:"requests"`
	SendRate        float64                  `json:"send_rate"`
	Dropped         int64                    `json:"dropped_inflight_bound"`
	ResponsesByCode map[string]int64         `json:"responses_by_status"`
	Timeouts        int64                    `json:"timeouts"`
	Errors          int64                    `json:"errors"`
	LatencyUs       Latency                  `json:"latency_us"`
	FromSendUs      Latency                  `json:"latency_from_send_us"` // from the actual send, as closed-loop tools measure
	SendLagUs       Latency                  `json:"send_lag_us"`          // actual send minus scheduled send
	Bids            int64                    `json:"bids"`
	BidRate         float64                  `json:"bid_rate"` // answered requests with a bid / answered
	Wins            int64                    `json:"wins"`
	WinRate         float64                  `json:"win_rate"` // wins / bids
	Impressions     int64                    `json:"impressions"`
	Clicks          int64                    `json:"clicks"`
	SpendUSDMicros  int64                    `json:"spend_usd_micros"`
	SpendUSD        float64                  `json:"spend_usd"`
	OverspendMicros int64                    `json:"overspend_usd_micros"` // sum over campaigns with a total budget, in USD micros
	ECPM            float64                  `json:"ecpm_usd"`
	ECPC            *float64                 `json:"ecpc_usd"`
	PredictedCTR    *float64                 `json:"predicted_ctr"`
	ObservedCTR     *float64                 `json:"observed_ctr"`
	TrueCTR         *float64                 `json:"true_ctr"`
	Campaigns       []CampaignReport         `json:"campaigns"`
	Auctions        map[string]AuctionReport `json:"auctions"` // first_price, second_price, all
	Calibration     []CalibrationBin         `json:"calibration"`
	Notices         map[string]NoticeCounts  `json:"notices"`
	Counters        Counters                 `json:"counters"`
	Admin           []AdminBudget            `json:"admin,omitempty"`
	// AdminErrors names the admin URLs the final poll could not read: the
	// overspend figures leave their campaigns out.
	AdminErrors      []string `json:"admin_errors,omitempty"`
	Timeline         []Second `json:"timeline"`
	Plots            []string `json:"plots,omitempty"`
	histogram        *hdrhistogram.Histogram
	spendSeries      []map[string]int64
	planSeries       []map[string]int64
	adminSpentSeries []map[string]int64
	campCur          map[string]string // spend currency per campaign
	budgetCur        map[string]string // budget currency per campaign (admin)
	todayAtStart     map[string]int64  // admin spent_today_micros at start
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ptr[T any](v T) *T { return &v }

func (r *Runner) report(start time.Time, admin, adminStart []AdminBudget) *Report {
	cfg := r.cfg
	s := r.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counters
	rep := &Report{Started: start, SendWindowS: cfg.Duration.Seconds(), ElapsedS: time.Since(start).Seconds(),
		Requests: c.Sent, Dropped: c.DroppedBound, ResponsesByCode: map[string]int64{}, Timeouts: c.Timeouts,
		Errors: c.Errors, LatencyUs: latencyOf(s.hist), SendLagUs: latencyOf(s.lag), FromSendUs: latencyOf(s.svc), Bids: c.Bids,
		BidRate: ratio(c.BidResponses, c.Answered), Wins: c.Wins, WinRate: ratio(c.Wins, c.Bids),
		Impressions: c.Impressions, Clicks: c.Clicks, Notices: r.notifier.Counts(), Counters: c, Admin: admin,
		histogram: s.hist}
	window := cfg.Duration.Seconds()
	if last := math.Float64frombits(r.lastAt.Load()); r.sourceDry.Load() && last > 0 {
		window = last // a replay that ended early
	}
	rep.SendWindowS = window
	rep.SendRate = float64(c.Sent) / window
	rep.Config = map[string]any{"targets": cfg.Targets, "rate": cfg.Rate, "duration_s": cfg.Duration.Seconds(),
		"seed": cfg.Seed, "tmax_ms": cfg.TMax.Milliseconds(), "grace_ms": cfg.Grace.Milliseconds(),
		"max_inflight": cfg.MaxInflight, "gzip_share": cfg.GzipShare, "diurnal": cfg.Diurnal,
		"time_scale": cfg.TimeScale, "render_prob": cfg.RenderProb, "market": cfg.Market, "truth_base": cfg.Truth.Base,
		"min_to_win_share": cfg.MinToWinShare}
	for code, n := range s.status {
		rep.ResponsesByCode[strconv.Itoa(code)] = n
	}
	adm, startAdm := mergeAdmin(admin), mergeAdmin(adminStart)
	rep.campCur, rep.budgetCur = map[string]string{}, map[string]string{}
	rep.todayAtStart = map[string]int64{}
	for id, a := range adm {
		rep.budgetCur[id] = a.Currency
	}
	for id, a := range startAdm {
		rep.todayAtStart[id] = a.SpentTodayMicros
	}
	var sumP, sumT float64
	var nP int64
	var usdMicros float64
	for _, id := range sortedKeys(s.camps) {
		cs := s.camps[id]
		rep.campCur[id] = cs.Currency
		cr := campaignReport(id, cs)
		if a, ok := adm[id]; ok {
			over := budgetView(&cr, cs, a, startAdm[id])
			rep.OverspendMicros += int64(math.Round(ToUSD(float64(over), cr.BudgetCurrency)))
		}
		rep.Campaigns = append(rep.Campaigns, cr)
		sumP += cs.SumPCTR
		nP += cs.PCTRCount
		sumT += cs.SumTruth
		usdMicros += ToUSD(float64(cs.SpendMicros), cs.Currency)
	}
	rep.SpendUSDMicros = int64(math.Round(usdMicros))
	rep.SpendUSD = usdMicros / 1e6
	if c.Impressions > 0 {
		rep.ECPM = usdMicros / 1e3 / float64(c.Impressions)
		rep.ObservedCTR = ptr(ratio(c.Clicks, c.Impressions))
		rep.TrueCTR = ptr(sumT / float64(c.Impressions))
	}
	if c.Clicks > 0 {
		rep.ECPC = ptr(usdMicros / 1e6 / float64(c.Clicks))
	}
	if nP > 0 {
		rep.PredictedCTR = ptr(sumP / float64(nP))
	}
	rep.Auctions = map[string]AuctionReport{"second_price": auctionReport(s.auctions[0]),
		"first_price": auctionReport(s.auctions[1]), "all": auctionReport(s.auctions[0].plus(s.auctions[1]))}
	rep.Calibration = calibration(s.calib, 10)
	for i, b := range s.secs {
		sec := Second{T: i, Sent: b.sent, Answered: b.answered, Timeouts: b.timeouts, Errors: b.errors,
			Bids: b.bids, Wins: b.wins}
		if b.hist != nil {
			sec.P50us, sec.P90us, sec.P99us = b.hist.ValueAtQuantile(50), b.hist.ValueAtQuantile(90), b.hist.ValueAtQuantile(99)
		}
		rep.Timeline = append(rep.Timeline, sec)
		rep.spendSeries = append(rep.spendSeries, b.spend)
		rep.planSeries = append(rep.planSeries, b.plan)
		rep.adminSpentSeries = append(rep.adminSpentSeries, b.adminSpent)
	}
	return rep
}

// budgetView fills the admin fields of cr and returns the overspend against
// the total budget in the budget's currency (0 without one). The run's billed
// spend is converted into the campaign's currency and added to what the
// bidder had spent when the run started.
func budgetView(cr *CampaignReport, cs *campStat, a, atStart AdminCampaign) int64 {
	cur := a.Currency
	if cur == "" {
		cur = cs.Currency
	}
	conv := int64(math.Round(FromUSD(ToUSD(float64(cs.SpendMicros), cs.Currency), cur)))
	cr.BudgetCurrency, cr.SpendBudgetCur = cur, ptr(conv)
	cr.TotalBudgetMicros, cr.DailyBudgetMicros = ptr(a.TotalBudgetMicros), ptr(a.DailyBudgetMicros)
	cr.BidderSpentStart, cr.BidderSpentMicros = ptr(atStart.SpentMicros), ptr(a.SpentMicros)
	cr.PacingMode, cr.PacingTargetMicros, cr.PacingError = a.PacingMode, ptr(a.PacingTargetMicros), ptr(a.PacingError)
	if a.DailyBudgetMicros > 0 {
		cr.DailyOverspend = ptr(max(0, atStart.SpentTodayMicros+conv-a.DailyBudgetMicros))
	}
	if a.TotalBudgetMicros <= 0 {
		return 0
	}
	cr.OverspendMicros = ptr(max(0, atStart.SpentMicros+conv-a.TotalBudgetMicros))
	return *cr.OverspendMicros
}

func campaignReport(id string, cs *campStat) CampaignReport {
	cr := CampaignReport{CID: id, Currency: cs.Currency, Bids: cs.Bids, Wins: cs.Wins, WinRate: ratio(cs.Wins, cs.Bids),
		Impressions: cs.Impressions, Clicks: cs.Clicks, SpendMicros: cs.SpendMicros,
		Spend: float64(cs.SpendMicros) / 1e6, WonMicros: cs.WonMicros}
	if cs.Impressions > 0 {
		cr.ECPM = float64(cs.SpendMicros) / 1e3 / float64(cs.Impressions)
		cr.ObservedCTR = ptr(ratio(cs.Clicks, cs.Impressions))
		cr.TrueCTR = ptr(cs.SumTruth / float64(cs.Impressions))
	}
	if cs.Clicks > 0 {
		cr.ECPC = ptr(float64(cs.SpendMicros) / 1e6 / float64(cs.Clicks))
	}
	if cs.PCTRCount > 0 {
		cr.PredictedCTR = ptr(cs.SumPCTR / float64(cs.PCTRCount))
	}
	return cr
}

// calibration splits impressions (ordered by predicted CTR) into equal bins.
func calibration(pts []calPoint, bins int) []CalibrationBin {
	if len(pts) == 0 {
		return nil
	}
	p := append([]calPoint(nil), pts...)
	sort.Slice(p, func(i, j int) bool { return p[i].pctr < p[j].pctr })
	bins = min(bins, len(p))
	out := make([]CalibrationBin, 0, bins)
	for b := 0; b < bins; b++ {
		lo, hi := b*len(p)/bins, (b+1)*len(p)/bins
		var cb CalibrationBin
		for _, x := range p[lo:hi] {
			cb.MeanPCTR += float64(x.pctr)
			cb.MeanTrueCTR += float64(x.truth)
			if x.click {
				cb.ObservedCTR++
			}
		}
		cb.N = hi - lo
		n := float64(cb.N)
		cb.MeanPCTR, cb.ObservedCTR, cb.MeanTrueCTR = cb.MeanPCTR/n, cb.ObservedCTR/n, cb.MeanTrueCTR/n
		out = append(out, cb)
	}
	return out
}

// startProgress prints one line a second and samples spend and the admin
// plan for the plots. The returned func stops it.
func (r *Runner) startProgress(start time.Time) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			var plan, spent map[string]int64
			if len(r.cfg.Admin) > 0 {
				views, _ := r.admin.fetch()
				plan, spent = planOf(views)
			}
			r.stats.closeSecond(k, plan, spent)
			if r.cfg.Progress != nil {
				p := r.stats.progressAt(k)
				p.inflight = r.inflight.Load()
				writeProgress(r.cfg.Progress, p)
			}
		}
	}()
	return func() { close(stop); <-done }
}

func writeProgress(w io.Writer, p progress) {
	fmt.Fprintf(w, "[%4ds] sent %6d/s  answered %6d/s  p99 %8.2fms  timeouts %4d  bid %5.1f%%  win %5.1f%%  spend $%.4f  inflight %4d  dropped %d\n",
		p.sec+1, p.sent, p.answered, float64(p.p99us)/1000, p.timeouts, 100*p.bidRate, 100*p.winRate,
		float64(p.spendMicros)/1e6, p.inflight, p.dropped)
}

// WriteSummary prints the end-of-run summary.
func (rep *Report) WriteSummary(w io.Writer) {
	l := rep.LatencyUs
	fmt.Fprintf(w, "requests %d in %.1fs (%.1f/s)  dropped(bound) %d  timeouts %d  errors %d\n",
		rep.Requests, rep.SendWindowS, rep.SendRate, rep.Dropped, rep.Timeouts, rep.Errors)
	fmt.Fprintf(w, "latency us (from schedule): p50 %d  p90 %d  p99 %d  p99.9 %d  max %d\n", l.P50, l.P90, l.P99, l.P999, l.Max)
	l = rep.FromSendUs
	fmt.Fprintf(w, "latency us (from send):     p50 %d  p90 %d  p99 %d  p99.9 %d  max %d  (send lag p50 %d p99 %d)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, rep.SendLagUs.P50, rep.SendLagUs.P99)
	fmt.Fprintf(w, "status %v  bid rate %.1f%%  bids %d  wins %d (%.1f%%)  impressions %d  clicks %d\n",
		rep.ResponsesByCode, 100*rep.BidRate, rep.Bids, rep.Wins, 100*rep.WinRate, rep.Impressions, rep.Clicks)
	for _, e := range rep.AdminErrors {
		fmt.Fprintf(w, "WARNING admin not read at the end, overspend not checked there: %s\n", e)
	}
	fmt.Fprintf(w, "spend %.4f USD  eCPM %.4f  overspend(USD micros) %d", rep.SpendUSD, rep.ECPM, rep.OverspendMicros)
	if rep.ECPC != nil {
		fmt.Fprintf(w, "  eCPC %.4f", *rep.ECPC)
	}
	if rep.PredictedCTR != nil && rep.ObservedCTR != nil {
		fmt.Fprintf(w, "  CTR predicted %.4f observed %.4f true %.4f", *rep.PredictedCTR, *rep.ObservedCTR, *rep.TrueCTR)
	}
	fmt.Fprintln(w)
	for _, c := range rep.Campaigns {
		fmt.Fprintf(w, "  %-16s %s bids %d wins %d imps %d clicks %d spend %.4f", c.CID, c.Currency, c.Bids, c.Wins,
			c.Impressions, c.Clicks, c.Spend)
		if c.TotalBudgetMicros != nil && *c.TotalBudgetMicros > 0 {
			fmt.Fprintf(w, " budget %.2f %s", float64(*c.TotalBudgetMicros)/1e6, c.BudgetCurrency)
		}
		if c.DailyBudgetMicros != nil && *c.DailyBudgetMicros > 0 {
			fmt.Fprintf(w, " daily %.2f %s", float64(*c.DailyBudgetMicros)/1e6, c.BudgetCurrency)
		}
		if c.OverspendMicros != nil && *c.OverspendMicros > 0 {
			fmt.Fprintf(w, " OVERSPEND %d", *c.OverspendMicros)
		}
		fmt.Fprintln(w)
	}
}
