package bidder

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/openbidder/openbidder/ctr"
)

// monitorSampleEvery: about one request in this many feeds the drift
// counters and the shadow model.
const monitorSampleEvery = 64

// sampled picks requests by a hash of their arrival time in nanoseconds: no
// shared state on the bid path, and unrelated to what the request holds.
func sampled(arrival time.Time) bool {
	return (uint64(arrival.UnixNano())*0x9E3779B97F4A7C15)>>32%monitorSampleEvery == 0
}

// pctrBounds are the predicted-CTR histogram's upper bounds.
var pctrBounds = [...]float32{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1}

// monitor watches the model's predictions off the bid path: their
// distribution, feature drift against training, and an optional shadow model.
type monitor struct {
	pctr   [len(pctrBounds) + 1]counter
	pSumE6 counter // sum of predictions, in millionths
	drift  atomic.Pointer[ctr.Drift]
	shadow atomic.Pointer[shadow]
}

// observe is called once per scored request, on the bid path (no allocation).
func (mo *monitor) observe(bc *bidCtx) {
	var sum uint64
	for _, p := range bc.pctr {
		i := 0
		for i < len(pctrBounds) && p > pctrBounds[i] {
			i++
		}
		mo.pctr[i].add(bc.stripe, 1)
		sum += uint64(p * 1e6)
	}
	mo.pSumE6.add(bc.stripe, sum)
	if !sampled(bc.now) {
		return
	}
	if d := mo.drift.Load(); d != nil {
		d.Observe(bc.rows)
	}
	if sh := mo.shadow.Load(); sh != nil {
		sh.offer(bc.rows, bc.pctr)
	}
}

// setDrift starts drift counting against a model's training statistics.
func (mo *monitor) setDrift(m *ctr.Manifest, width int, log *slog.Logger) {
	if m == nil || m.FeatureStats == nil {
		mo.drift.Store(nil)
		log.Info("feature drift not measured: the model manifest has no feature_stats")
		return
	}
	d, err := ctr.NewDrift(m.FeatureStats, width)
	if err != nil {
		log.Warn("feature drift not measured", "err", err)
		mo.drift.Store(nil)
		return
	}
	mo.drift.Store(d)
}

func (mo *monitor) gauges(g []gauge) []gauge {
	g = append(g, gauge{name: "bidder_predicted_ctr", help: "Predicted CTR of scored candidates.", typ: "histogram",
		value: func(w io.Writer, n string) {
			var cum uint64
			for i, b := range pctrBounds {
				cum += mo.pctr[i].load()
				fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", n, b, cum)
			}
			cum += mo.pctr[len(pctrBounds)].load()
			fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", n, cum, n, float64(mo.pSumE6.load())/1e6, n, cum)
		}})
	if d := mo.drift.Load(); d != nil {
		g = append(g, gauge{name: "bidder_feature_psi", help: "Population stability index of served features against training, per slot (sampled requests).", typ: "gauge",
			value: func(w io.Writer, n string) {
				for _, p := range d.PSI() {
					fmt.Fprintf(w, "%s{slot=%q,group=%q} %.6f\n", n, labelValue(p.Name), labelValue(p.Group), p.PSI)
				}
			}},
			gauge{name: "bidder_feature_drift_rows", help: "Rows counted for feature drift.", typ: "counter",
				value: func(w io.Writer, n string) { fmt.Fprintf(w, "%s %d\n", n, d.Rows()) }})
	}
	if sh := mo.shadow.Load(); sh != nil {
		g = sh.gauges(g)
	}
	return g
}

// shadow scores sampled rows with a second model off the bid path and
// compares its predictions with the served ones. Buffers are allocated once;
// a full queue drops the sample (counted).
type shadow struct {
	model   ctr.Scorer
	name    string
	width   int
	free    chan int
	work    chan int
	rows    [][]float32
	pctr    [][]float32
	n       []int
	out     []float32
	scored  atomic.Uint64
	dropped atomic.Uint64
	errs    atomic.Uint64
	absDiff atomic.Uint64 // sum |shadow - served|, millionths
	sumSrv  atomic.Uint64 // millionths
	sumSh   atomic.Uint64 // millionths
}

const shadowSlots, shadowMaxRows = 32, 128

func newShadow(model ctr.Scorer, name string) *shadow {
	w := model.Width()
	sh := &shadow{model: model, name: name, width: w, free: make(chan int, shadowSlots), work: make(chan int, shadowSlots),
		rows: make([][]float32, shadowSlots), pctr: make([][]float32, shadowSlots), n: make([]int, shadowSlots),
		out: make([]float32, shadowMaxRows)}
	for i := 0; i < shadowSlots; i++ {
		sh.rows[i] = make([]float32, shadowMaxRows*w)
		sh.pctr[i] = make([]float32, shadowMaxRows)
		sh.free <- i
	}
	return sh
}

func (sh *shadow) offer(rows, pctr []float32) {
	var i int
	select {
	case i = <-sh.free:
	default:
		sh.dropped.Add(1)
		return
	}
	n := min(len(pctr), shadowMaxRows, len(rows)/sh.width)
	copy(sh.rows[i], rows[:n*sh.width])
	copy(sh.pctr[i], pctr[:n])
	sh.n[i] = n
	sh.work <- i // never blocks: at most shadowSlots indexes exist
}

// run scores queued samples until done is closed.
func (sh *shadow) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case i := <-sh.work:
			n := sh.n[i]
			if err := sh.model.Score(time.Time{}, sh.rows[i][:n*sh.width], sh.out[:n]); err != nil {
				sh.errs.Add(1)
			} else {
				var d, a, b float64
				for j := 0; j < n; j++ {
					a, b = float64(sh.pctr[i][j]), float64(sh.out[j])
					d += math.Abs(a - b)
					sh.sumSrv.Add(uint64(a * 1e6))
					sh.sumSh.Add(uint64(b * 1e6))
				}
				sh.absDiff.Add(uint64(d * 1e6))
				sh.scored.Add(uint64(n))
			}
			sh.free <- i
		}
	}
}

func (sh *shadow) gauges(g []gauge) []gauge {
	c := func(name, help string, v func() float64) gauge {
		return gauge{name: name, help: help, typ: "counter", value: func(w io.Writer, n string) {
			fmt.Fprintf(w, "%s{shadow=%q} %g\n", n, labelValue(sh.name), v())
		}}
	}
	return append(g,
		c("bidder_shadow_rows_total", "Sampled rows scored by the shadow model.", func() float64 { return float64(sh.scored.Load()) }),
		c("bidder_shadow_dropped_total", "Samples dropped because the shadow model fell behind.", func() float64 { return float64(sh.dropped.Load()) }),
		c("bidder_shadow_errors_total", "Shadow scoring errors.", func() float64 { return float64(sh.errs.Load()) }),
		c("bidder_shadow_abs_diff_sum", "Sum of |shadow - served| predicted CTR over shadow rows.", func() float64 { return float64(sh.absDiff.Load()) / 1e6 }),
		c("bidder_shadow_served_pctr_sum", "Sum of served predicted CTR over shadow rows.", func() float64 { return float64(sh.sumSrv.Load()) / 1e6 }),
		c("bidder_shadow_pctr_sum", "Sum of shadow predicted CTR over shadow rows.", func() float64 { return float64(sh.sumSh.Load()) / 1e6 }),
	)
}
