package bidder

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/ctr"
)

// The App's series: the scorer chain, model reloads, the event log and the
// budget manager's counters. Per-campaign budget figures are the
// campaignCollector's (exposition.go), bounded with the other per-campaign
// series.
var (
	appDescs descSet

	dModelInfo    = appDescs.add("model_info", "The scorer chain in use (primary>fallback) and the ONNX execution provider.", "chain", "provider")
	dModelScored  = appDescs.add("model_scored_total", "Score calls answered, by scorer.", "scorer")
	dModelFalls   = appDescs.add("model_fallbacks_total", "Falls from the ONNX batcher to GBDT or to no-bid, by reason.", "reason")
	dModelReloads = appDescs.add("model_reloads_total", "Model loads, by model slot and outcome (ok or refused).", "slot", "outcome")
	dEventsDrop   = appDescs.add("events_dropped_total", "Notice events dropped because the event writer fell behind.")
	dNATSClients  = appDescs.add("nats_client_errors_total", "Warnings and errors of client connections to the embedded NATS server's listener (bad protocol lines, TLS garbage, failed logins), logged as one summary line a minute.")
	dNATSRoutes   = appDescs.add("nats_route_errors_total", "Warnings and errors of route connections to the embedded NATS server's cluster listener (failed route logins, protocol garbage), logged as one summary line a minute.")
	dCampReloads  = appDescs.add("campaign_reloads_total", "Campaign set reloads (SIGHUP or the directory watch), by outcome: ok (published) or refused (a bad file, or a set the budget store refuses; the running set stays).", "outcome")
	dCampRefused  = appDescs.add("campaign_reload_refused", "1 while the last campaign reload was refused: the campaign files on disk are not the set that is running.")
	dPausedAll    = appDescs.add("paused_all", "1 while the kill switch pauses all bidding (POST /admin/pause all=1).")
	dPausedCamps  = appDescs.add("campaigns_paused", "Loaded campaigns the kill switch pauses.")

	// The ONNX micro-batcher of the model serving now (its warm-up runs
	// included; its counts start again when a reload swaps the model in).
	dBatchRows     = appDescs.add("model_batch_rows", "Rows per ONNX batcher run (the run's batch size).")
	dBatchRequests = appDescs.add("model_batch_requests_total", "Score calls answered by ONNX batcher runs.")
	dBatchWait     = appDescs.add("model_batch_queue_wait_seconds_total", "Time Score calls waited between queueing and the start of their run, summed.")
	dBatchRun      = appDescs.add("model_batch_run_seconds_total", "Time the ONNX batcher's runs took, summed.")

	// budgetDescs maps each budget.Counters figure to its series,
	// openbidder_budget_<name>; a counter added in budget/status.go shows up
	// here with no change.
	budgetDescs = func() map[string]*prometheus.Desc {
		out := map[string]*prometheus.Desc{}
		budget.Counters{}.Each(func(name, _, help string, _ float64) {
			out[name] = appDescs.add("budget_"+name, help)
		})
		return out
	}()
)

// appCollector reads the App's parts at scrape time.
type appCollector struct{ a *App }

func (c appCollector) Describe(ch chan<- *prometheus.Desc) { describe(ch, appDescs) }

func (c appCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	gaugeMetric(ch, dModelInfo, 1, label(a.chain.Name()), a.onnxProvider())
	cs := a.chain.Stats()
	counterMetric(ch, dModelScored, float64(cs.Primary), "primary")
	counterMetric(ch, dModelScored, float64(cs.Fallback), "fallback")
	for _, f := range []struct {
		reason string
		n      uint64
	}{
		{"slack", cs.FallSlack}, {"deadline", cs.FallDeadline}, {"queue_full", cs.FallQueueFull},
		{"unavailable", cs.FallUnavailable}, {"error", cs.FallError}, {"bad_output", cs.FallBadOutput},
		{"no_score", cs.NoScore},
	} {
		counterMetric(ch, dModelFalls, float64(f.n), f.reason)
	}
	for _, h := range []struct {
		slot string
		h    *ctr.Holder
	}{{"onnx", a.onnx}, {"gbdt", a.gbdt}} {
		if h.h == nil {
			continue
		}
		// By slot only: named by the model serving, a refusal moved to
		// another series when a model loaded after it (an operator audit),
		// and the alert's increase() missed the next one.
		st := h.h.Stats()
		counterMetric(ch, dModelReloads, float64(st.Reloads), h.slot, "ok")
		counterMetric(ch, dModelReloads, float64(st.Refused), h.slot, "refused")
	}
	if a.onnx != nil {
		if b, ok := a.onnx.Current().(interface{ Stats() ctr.BatchStats }); ok {
			batchMetrics(ch, b.Stats())
		}
	}
	counterMetric(ch, dEventsDrop, float64(a.events.dropped.Load()))
	counterMetric(ch, dNATSClients, float64(a.natsClientErrs.Load()))
	counterMetric(ch, dNATSRoutes, float64(a.natsRouteErrs.Load()))
	counterMetric(ch, dCampReloads, float64(a.reloadsOK.Load()), "ok")
	counterMetric(ch, dCampReloads, float64(a.reloadsRefused.Load()), "refused")
	gaugeMetric(ch, dCampRefused, b2f(a.reloadRefused.Load()))
	// The kill switch's state, so that a pause nobody lifted shows without
	// traffic (an operator audit: only the status page told).
	if a.Server != nil {
		gaugeMetric(ch, dPausedAll, b2f(a.Server.pausedAll()))
		gaugeMetric(ch, dPausedCamps, float64(a.Server.pausedCampaigns()))
	}
	a.budget.Counters().Each(func(name, typ, _ string, v float64) {
		d := budgetDescs[name]
		if typ == "counter" {
			counterMetric(ch, d, v)
		} else {
			gaugeMetric(ch, d, v)
		}
	})
}

// batchMetrics exposes a batcher's figures: runs by rows as a histogram
// (buckets 1, 2, 4, ... rows: ctr.BatchSizeBucket), requests, queue wait and
// run time.
func batchMetrics(ch chan<- prometheus.Metric, st ctr.BatchStats) {
	cum := make(map[float64]uint64, len(st.BatchSizes))
	var n uint64
	for i, c := range st.BatchSizes {
		n += c
		cum[float64(ctr.BatchSizeBucket(i))] = n
	}
	ch <- prometheus.MustNewConstHistogram(dBatchRows, n, float64(st.Rows), cum)
	counterMetric(ch, dBatchRequests, float64(st.Requests))
	counterMetric(ch, dBatchWait, float64(st.QueueWaitNanos)/1e9)
	counterMetric(ch, dBatchRun, float64(st.RunNanos)/1e9)
}
