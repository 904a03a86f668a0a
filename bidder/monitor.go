package bidder

import (
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// pctrLE are the same bounds as /metrics labels them (0.02, not the
// float32's 0.019999999552965164).
var pctrLE = func() (le [len(pctrBounds)]float64) {
	for i, b := range pctrBounds {
		le[i], _ = strconv.ParseFloat(strconv.FormatFloat(float64(b), 'g', -1, 32), 64)
	}
	return le
}()

// monitor watches the model's predictions off the bid path: their
// distribution, feature drift against training, and an optional shadow model.
type monitor struct {
	pctr   [len(pctrBounds) + 1]counter
	pSumE6 counter // sum of predictions, in millionths
	drift  atomic.Pointer[ctr.Drift]
	// driftRows is the rows the drift counters that a model reload
	// replaced had counted: openbidder_feature_drift_rows_total adds them,
	// so the counter does not start again at every reload. driftMu makes
	// a swap and the collector's read of both one step each: a scrape
	// between the swap and the add saw the counter go back.
	driftMu   sync.Mutex
	driftRows uint64
	shadow    atomic.Pointer[shadow]
	rows      *rowLog // model.row_log (rowlog.go); nil: off. Set before serving
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
		mo.swapDrift(nil)
		log.Info("feature drift not measured: the model manifest has no feature_stats")
		return
	}
	d, err := ctr.NewDrift(m.FeatureStats, width)
	if err != nil {
		log.Warn("feature drift not measured", "err", err)
		mo.swapDrift(nil)
		return
	}
	mo.swapDrift(d)
}

// swapDrift puts d in place of the drift counters, keeping the rows the
// old ones counted (rows a bid still counts into the old ones after the
// swap are not kept: the total never goes back).
func (mo *monitor) swapDrift(d *ctr.Drift) {
	mo.driftMu.Lock()
	defer mo.driftMu.Unlock()
	if old := mo.drift.Swap(d); old != nil {
		mo.driftRows += old.Rows()
	}
}

var (
	dPCTR      = serverDescs.add("predicted_ctr", "Predicted CTR of scored candidates.")
	dPSI       = serverDescs.add("feature_psi", "Population stability index of served features against training, per slot (sampled requests).", "slot", "group")
	dDriftRows = serverDescs.add("feature_drift_rows_total", "Rows counted for feature drift.")
	dShRows    = serverDescs.add("shadow_rows_total", "Sampled rows scored by the shadow model.", "shadow")
	dShDropped = serverDescs.add("shadow_dropped_total", "Samples dropped because the shadow model fell behind.", "shadow")
	dShErrors  = serverDescs.add("shadow_errors_total", "Shadow scoring errors.", "shadow")
	dShAbsDiff = serverDescs.add("shadow_abs_diff_total", "Sum of |shadow - served| predicted CTR over shadow rows.", "shadow")
	dShServed  = serverDescs.add("shadow_served_pctr_total", "Sum of served predicted CTR over shadow rows.", "shadow")
	dShPredSum = serverDescs.add("shadow_pctr_total", "Sum of shadow predicted CTR over shadow rows.", "shadow")
)

// collect sends the prediction histogram, and drift and shadow figures
// when they are measured.
func (mo *monitor) collect(ch chan<- prometheus.Metric) {
	b := make(map[float64]uint64, len(pctrBounds))
	var cum uint64
	for i, ub := range pctrLE {
		cum += mo.pctr[i].load()
		b[ub] = cum
	}
	cum += mo.pctr[len(pctrBounds)].load()
	ch <- prometheus.MustNewConstHistogram(dPCTR, cum, float64(mo.pSumE6.load())/1e6, b)
	if d := mo.drift.Load(); d != nil {
		seen := map[string]bool{}
		for _, p := range d.PSI() {
			name := p.Name
			if name == "" || seen[name] { // unnamed or repeated: the slot's index keeps series apart
				name = strconv.Itoa(p.Slot)
			}
			seen[name] = true
			gaugeMetric(ch, dPSI, p.PSI, label(name), label(p.Group))
		}
	}
	mo.driftMu.Lock()
	d, n := mo.drift.Load(), mo.driftRows
	if d != nil {
		n += d.Rows()
	}
	mo.driftMu.Unlock()
	if d != nil || n > 0 {
		counterMetric(ch, dDriftRows, float64(n))
	}
	if sh := mo.shadow.Load(); sh != nil {
		sh.collect(ch)
	}
	if mo.rows != nil {
		mo.rows.collect(ch)
	}
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
			// An answer with a pCTR outside [0, 1] (NaN included) is an
			// error, as on the bid path (ctr.ErrBadOutput): summed, a NaN
			// read as 2^63 millionths.
			if err := sh.model.Score(time.Time{}, sh.rows[i][:n*sh.width], sh.out[:n]); err != nil || !ctr.ValidPCTR(sh.out[:n]) {
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

func (sh *shadow) collect(ch chan<- prometheus.Metric) {
	n := label(sh.name)
	counterMetric(ch, dShRows, float64(sh.scored.Load()), n)
	counterMetric(ch, dShDropped, float64(sh.dropped.Load()), n)
	counterMetric(ch, dShErrors, float64(sh.errs.Load()), n)
	counterMetric(ch, dShAbsDiff, float64(sh.absDiff.Load())/1e6, n)
	counterMetric(ch, dShServed, float64(sh.sumSrv.Load())/1e6, n)
	counterMetric(ch, dShPredSum, float64(sh.sumSh.Load())/1e6, n)
}
