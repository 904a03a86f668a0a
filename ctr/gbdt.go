package ctr

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmitryikh/leaves"
)

// GBDT scores rows with a gradient-boosted tree ensemble read by
// github.com/dmitryikh/leaves from a LightGBM text model and its Manifest.
//
// Output: leaves is loaded without its own transformation, so it returns the
// raw margin (sum of leaf values); Score adds the wide part's logit when the
// manifest has one (WidePart: a distilled fallback carrying its teacher's
// wide table), applies the logistic sigmoid and writes the probability, a
// pCTR in [0,1]. The model is trusted to be a
// binary:logistic / LightGBM "binary" model; the parity check at load proves
// the Go path reproduces the training framework's probabilities.
//
// Cost: about 66 ns per tree per row on this project's machines (13 us per
// row at 200 trees of depth 6); batching does not amortise anything. The
// scorer keeps an estimate of its per-row cost (measured at load over the
// parity sample, then an EWMA of served calls) and refuses with ErrDeadline,
// without scoring, when len(out) rows would not finish before the deadline.
type GBDT struct {
	ens      *leaves.Ensemble
	width    int
	name     string
	trees    int
	manifest *Manifest
	wide     *gbdtWide     // nil: trees only
	rowCost  atomic.Uint64 // float64 bits: estimated ns per row
	scratch  sync.Pool     // *gbdtScratch
}

var _ Scorer = (*GBDT)(nil)

type gbdtScratch struct {
	fvals []float64
	ids   []int32 // the wide part's ids of one row
	raw   [1]float64
}

// gbdtEWMAWeight is the weight of one Score call's measured per-row cost in
// the running estimate.
const gbdtEWMAWeight = 0.05

// gbdtOutlierFactor caps one call's per-row sample relative to the estimate;
// refusalDecay scales a latency estimate down on each ErrDeadline refusal
// (the GBDT's, and the ONNX model's and the batcher's: onnxDecay).
const (
	gbdtOutlierFactor = 4
	refusalDecay      = 63.0 / 64
)

// gbdtDefaultTolerance applies when a manifest sets no parity_tolerance.
const gbdtDefaultTolerance = 1e-5

var (
	errGBDTShape = fmt.Errorf("%w: gbdt: len(rows) is not len(out) times the width", ErrSchema)
	errGBDTNil   = fmt.Errorf("%w: gbdt: nil scorer", ErrUnavailable)
)

// LoadGBDT loads the model a manifest of kind "gbdt" names and refuses it,
// before it can serve, when:
//   - the manifest's schema version or width differ from the running
//     extractor's (ErrSchema);
//   - the file is over 64 MiB, its sha256 differs from the manifest's, or it
//     is not a well-formed LightGBM text model with one output and splits on
//     features below width (ErrBadModel); the file is checked before leaves
//     sees it, so an XGBoost binary or JSON file never reaches leaves;
//   - the manifest has a wide_part (WidePart) whose section does not
//     compile, whose file is not the sha256 it names or not wide_rows
//     finite float32 values (ErrBadModel);
//   - the manifest names no parity sample, or the model (the trees plus the
//     wide part, if any) does not reproduce it within parity_tolerance
//     (default 1e-5) (ErrBadModel).
func LoadGBDT(manifestPath string, schemaVersion string, width int) (*GBDT, error) {
	m, err := LoadManifestFor(manifestPath, schemaVersion, width)
	if err != nil {
		return nil, err
	}
	if m.Kind != "gbdt" {
		return nil, fmt.Errorf("%w: manifest %s: kind %q is not gbdt", ErrBadModel, manifestPath, m.Kind)
	}
	if err := m.CheckSchema(schemaVersion, width); err != nil {
		return nil, err
	}
	b, err := gbdtReadModel(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	trees, err := gbdtCheckText(b, width)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	ens, err := gbdtParse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: leaves: %v", ErrBadModel, m.Path(m.File), err)
	}
	if ens.NRawOutputGroups() != 1 || ens.NEstimators() != trees || ens.NFeatures() > width {
		return nil, fmt.Errorf("%w: %s: leaves read %d outputs, %d trees, %d features; want 1, %d, <= %d",
			ErrBadModel, m.Path(m.File), ens.NRawOutputGroups(), ens.NEstimators(), ens.NFeatures(), trees, width)
	}
	g := &GBDT{ens: ens, width: width, name: m.Name, trees: trees, manifest: m}
	if g.name == "" {
		g.name = "gbdt"
	}
	if m.WidePart != nil {
		if g.wide, err = loadGBDTWide(m); err != nil {
			return nil, err
		}
	}
	nids := 0
	if g.wide != nil {
		nids = g.wide.conv.wideWidth()
	}
	g.scratch.New = func() any { return &gbdtScratch{fvals: make([]float64, width), ids: make([]int32, nids)} }
	if err := g.checkParity(); err != nil {
		return nil, err
	}
	return g, nil
}

func gbdtReadModel(m *Manifest) ([]byte, error) {
	return readModelFile(m.Path(m.File), m.SHA256)
}

// readModelFile reads a model file of at most gbdtMaxModelBytes, checks its
// sha256 against want (hex; empty: not checked) and gunzips it when its name
// ends in .gz (the digest is of the compressed bytes).
func readModelFile(path, want string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > gbdtMaxModelBytes {
		return nil, fmt.Errorf("model is %d bytes, over the %d byte limit", st.Size(), gbdtMaxModelBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, gbdtMaxModelBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > gbdtMaxModelBytes {
		return nil, fmt.Errorf("model is over the %d byte limit", gbdtMaxModelBytes)
	}
	if want != "" {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("sha256 %s, manifest says %s", got, want)
		}
	}
	if strings.HasSuffix(path, ".gz") {
		return gunzipModel(b)
	}
	return b, nil
}

// gunzipModel expands a gzipped model file (a file name ending in .gz; the
// manifest's sha256 is of the compressed bytes), within the same size limit
// as a plain one.
func gunzipModel(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, gbdtMaxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > gbdtMaxModelBytes {
		return nil, fmt.Errorf("model is over the %d byte limit uncompressed", gbdtMaxModelBytes)
	}
	return out, nil
}

// gbdtParse hands checked text to leaves, turning a panic into an error.
func gbdtParse(b []byte) (ens *leaves.Ensemble, err error) {
	defer func() {
		if r := recover(); r != nil {
			ens, err = nil, fmt.Errorf("panic while parsing: %v", r)
		}
	}()
	return leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(b)), false)
}

// gbdtParity is the parity sample file written by ctr/train/gbdt_train.py.
type gbdtParity struct {
	SchemaVersion string      `json:"schema_version"`
	Width         int         `json:"width"`
	Output        string      `json:"output"` // "probability"
	Inputs        [][]float64 `json:"inputs"`
	Outputs       []float64   `json:"outputs"`
}

// checkParity scores the manifest's parity sample and compares with the
// training framework's outputs; it also seeds the per-row cost estimate.
func (g *GBDT) checkParity() error {
	m := g.manifest
	if m.Parity == "" {
		return fmt.Errorf("%w: model %q: manifest names no parity sample", ErrBadModel, g.name)
	}
	p, err := gbdtLoadParity(m.Path(m.Parity), g.width)
	if err != nil {
		return fmt.Errorf("%w: model %q: parity %s: %v", ErrBadModel, g.name, m.Parity, err)
	}
	tol := m.ParityTolerance
	if tol <= 0 {
		tol = gbdtDefaultTolerance
	}
	n := len(p.Outputs)
	rows := make([]float32, 0, n*g.width)
	for _, in := range p.Inputs {
		for _, v := range in {
			rows = append(rows, float32(v))
		}
	}
	out := make([]float32, n)
	// Two passes: the first checks for panics and warms caches, the second
	// (timed) seeds the per-row cost estimate.
	if err := g.scoreSafe(rows, out); err != nil {
		return fmt.Errorf("%w: model %q: parity: %v", ErrBadModel, g.name, err)
	}
	t0 := time.Now()
	g.score(rows, out)
	g.rowCost.Store(math.Float64bits(float64(time.Since(t0).Nanoseconds()) / float64(n)))
	for i, want := range p.Outputs {
		if d := math.Abs(float64(out[i]) - want); !(d <= tol) {
			return fmt.Errorf("%w: model %q: parity row %d: got %.9g, training framework %.9g (|diff| %.3g > %.3g)",
				ErrBadModel, g.name, i, out[i], want, d, tol)
		}
	}
	return nil
}

func gbdtLoadParity(path string, width int) (*gbdtParity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p gbdtParity
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	switch {
	case len(p.Inputs) == 0:
		return nil, errors.New("no rows")
	case len(p.Inputs) != len(p.Outputs):
		return nil, fmt.Errorf("%d inputs but %d outputs", len(p.Inputs), len(p.Outputs))
	case p.Output != "" && p.Output != "probability":
		return nil, fmt.Errorf("output %q is not probability", p.Output)
	}
	for i, in := range p.Inputs {
		if len(in) != width {
			return nil, fmt.Errorf("row %d has %d values, want %d", i, len(in), width)
		}
	}
	return &p, nil
}

// scoreSafe scores without a deadline, turning a panic inside leaves into an
// error (used at load only).
func (g *GBDT) scoreSafe(rows, out []float32) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic while scoring: %v", r)
		}
	}()
	g.score(rows, out)
	return nil
}

// Score writes one pCTR in [0,1] per row of rows (len(out) rows of Width()
// values) into out. It returns ErrDeadline without scoring when the
// estimated cost of len(out) rows exceeds the time left before deadline (a
// zero deadline means none), and an ErrSchema error when the lengths
// disagree. It does not allocate and is safe for concurrent use.
func (g *GBDT) Score(deadline time.Time, rows []float32, out []float32) error {
	if g == nil || g.ens == nil {
		return errGBDTNil
	}
	n := len(out)
	if len(rows) != n*g.width {
		return errGBDTShape
	}
	if n == 0 {
		return nil
	}
	t0 := time.Now()
	if !deadline.IsZero() {
		est := time.Duration(float64(n) * g.costNS())
		if deadline.Sub(t0) < est {
			g.decay()
			return ErrDeadline
		}
	}
	g.score(rows, out)
	g.observe(time.Since(t0), n)
	return nil
}

func (g *GBDT) score(rows, out []float32) {
	s := g.scratch.Get().(*gbdtScratch)
	w := g.width
	for i := range out {
		row := rows[i*w : (i+1)*w : (i+1)*w]
		for j, v := range row {
			s.fvals[j] = float64(v)
		}
		// Predict with leaves' raw transform writes into the caller's slice
		// and allocates nothing (PredictSingle allocates its result array).
		_ = g.ens.Predict(s.fvals, 0, s.raw[:])
		z := s.raw[0]
		if g.wide != nil {
			z += g.wide.logit(row, s.ids)
		}
		out[i] = float32(gbdtSigmoid(z))
	}
	g.scratch.Put(s)
}

func gbdtSigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

func (g *GBDT) costNS() float64 { return math.Float64frombits(g.rowCost.Load()) }

// observe folds one call's per-row cost into the estimate. A sample is
// capped at gbdtOutlierFactor times the estimate, so one call stalled by GC
// or preemption cannot make the scorer refuse everything after it.
// Concurrent updates may overwrite each other; the estimate stays a recent
// average.
func (g *GBDT) observe(d time.Duration, n int) {
	per := float64(d.Nanoseconds()) / float64(n)
	old := g.costNS()
	if old > 0 {
		per = min(per, gbdtOutlierFactor*old)
	}
	g.rowCost.Store(math.Float64bits(old + gbdtEWMAWeight*(per-old)))
}

// decay lowers the estimate a little on every refusal: a refused call
// measures nothing, so without it an estimate that ran high would refuse
// forever. A truly slow model is measured again on the next call that runs.
func (g *GBDT) decay() {
	g.rowCost.Store(math.Float64bits(g.costNS() * refusalDecay))
}

// Width is the feature row width the model was loaded for.
func (g *GBDT) Width() int { return g.width }

// Name is the manifest's model name ("gbdt" when it has none).
func (g *GBDT) Name() string { return g.name }

// Trees is the number of trees in the ensemble.
func (g *GBDT) Trees() int { return g.trees }

// PredictLatency is rows times the current per-row cost estimate.
func (g *GBDT) PredictLatency(rows int) time.Duration { return time.Duration(rows) * g.RowCost() }

// RowCost is the current estimate of the time to score one row: what Score
// multiplies by the row count to decide ErrDeadline. Use it to decide how
// many candidates are worth scoring.
func (g *GBDT) RowCost() time.Duration { return time.Duration(g.costNS()) }

// Manifest is the manifest the model was loaded from. Do not modify it.
func (g *GBDT) Manifest() *Manifest { return g.manifest }
