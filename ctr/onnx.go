//go:build cgo

package ctr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// ONNX scores rows with an ONNX model on ONNX Runtime. One session, and per
// power-of-two batch size pre-allocated input and output tensors bound to it
// (an IoBinding each), so a run makes no allocation; runs are serialised.
// Use it directly, or under a Batcher to gather rows from concurrent callers.
//
// It takes feature rows whatever the model's input form (Manifest.InputForm):
// a rows model gets them copied into its input, a wide_deep_ids model gets
// them converted (wideDeepConv) into its id and numeric inputs.
type ONNX struct {
	name     string
	width    int
	provider string
	manifest *Manifest
	conv     *wideDeepConv // nil: input form rows
	top      int           // index of the largest bucket; immutable after load

	mu sync.Mutex // guards sess, buckets (tensor contents, runs) and closed
	// sess is the one session of the model: every bucket runs it through
	// its own binding of its tensors. (A session per bucket, as before,
	// held a copy of the weights and arenas each: 69 MB more RSS for the
	// ten buckets of MaxBatch 512 than for one, and a run in one bucket
	// found the weights another bucket's run had left in the cache cold.)
	sess    *ort.DynamicAdvancedSession
	buckets []onnxBucket
	closed  bool

	est      [17]atomic.Int64 // EWMA run time per bucket, nanoseconds
	measured [17]atomic.Int64 // when a run last fed est, per bucket (unix nanoseconds)
	warmRuns int              // runs at load (immutable after)
}

type onnxBucket struct {
	rows int
	ins  []ort.Value // the session's inputs, in onnxIO.inputs order
	out  *ort.Tensor[float32]
	bind *ort.IoBinding // ins and out bound to the model's session
	// Input data: rowsD for input form rows; wideD, deepD, numD for
	// wide_deep_ids (deepD and numD empty when the model has no such input).
	rowsD        []float32
	wideD, deepD []int32
	numD         []float32
	outD         []float32
}

// onnxIO names a model's inputs and output.
type onnxIO struct {
	inputs []string
	output string
}

var (
	_ Scorer     = (*ONNX)(nil)
	_ batchModel = (*ONNX)(nil)
)

// onnxEnv is the process-wide ONNX Runtime environment (onnxruntime_go keeps
// one global environment).
var onnxEnv struct {
	sync.Mutex
	lib      string
	err      error
	done     bool
	provider string // last provider logged
}

// RuntimeVersion is the ONNX Runtime release this build's binding
// (onnxruntime_go v1.27.0, API version 24) is made for; make onnxruntime
// installs it.
const RuntimeVersion = "1.24.3"

func onnxInitEnv(lib string) error {
	onnxEnv.Lock()
	defer onnxEnv.Unlock()
	if onnxEnv.done && lib == onnxEnv.lib {
		// Loaded (or refused) once: a model reload does not need the file
		// again (it may be replaced under a running process).
		return onnxEnv.err
	}
	if _, err := os.Stat(lib); err != nil {
		// Not cached: the library may be installed later in the process's
		// life. Checked before the once-only result: a path with no library
		// is unavailable even where another path's loaded.
		return fmt.Errorf("%w: onnx runtime library: %v", ErrUnavailable, err)
	}
	if onnxEnv.done {
		return onnxEnv.err // one process loads one library
	}
	onnxEnv.done, onnxEnv.lib = true, lib
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		// A library of another version fails as "Error setting ORT API
		// base" (ONNX Runtime's own line, naming both versions, goes to
		// stderr): name the file it is and the version this build needs.
		file := lib
		if real, err := filepath.EvalSymlinks(lib); err == nil && real != lib {
			file = lib + " (" + filepath.Base(real) + ")"
		}
		onnxEnv.err = fmt.Errorf("%w: onnx runtime %s: %v (this build needs ONNX Runtime %s: make onnxruntime installs it)",
			ErrUnavailable, file, err, RuntimeVersion)
		return onnxEnv.err
	}
	return nil
}

// ONNXAvailable reports whether the ONNX Runtime library loads (loading it
// if needed). The error says why not, wrapping ErrUnavailable.
func ONNXAvailable(libraryPath string) error {
	o := ONNXOptions{LibraryPath: libraryPath}
	if err := o.setDefaults(); err != nil {
		return err
	}
	return onnxInitEnv(o.LibraryPath)
}

// LoadONNX loads the model a manifest names and checks it: kind onnx, schema
// and width (when opts.SchemaVersion is set), a known input form (else
// ErrInputForm), sha256, the graph's inputs as the form says (rows: one
// float32 input [N, width]; wide_deep_ids: int32 wide_ids, int32 deep_ids
// and float32 numeric of the widths of the manifest's section), one float32
// output [N] or [N, 1], and the parity sample (feature rows, whatever the
// form) within the manifest's tolerance. It then runs every batch size a few
// times, so the first scored request does not pay ONNX Runtime's first-run
// cost, and seeds the run-time estimates from the warm runs. Refusals wrap
// ErrSchema, ErrInputForm or ErrBadModel; a missing library wraps
// ErrUnavailable.
func LoadONNX(manifestPath string, opts ONNXOptions) (*ONNX, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m, err := LoadManifestFor(manifestPath, opts.SchemaVersion, opts.Width)
	if err != nil {
		return nil, err
	}
	if m.Kind != "onnx" {
		return nil, fmt.Errorf("%w: manifest %s: kind %q, want onnx", ErrBadModel, manifestPath, m.Kind)
	}
	data, err := onnxReadModel(m)
	if err != nil {
		return nil, err
	}
	if m.conv != nil {
		// The weights of this project's graph (wide_deep_ids.py build()),
		// as the GBDT's wide part's (loadGBDTWide): the parity sample cannot
		// see a NaN where its rows read nothing, and such a model answered
		// NaN, or a pCTR of exactly 1 for +Inf, to the rows that read it.
		if err := onnxFloatsFinite(data); err != nil {
			return nil, fmt.Errorf("%w: model %s: %v", ErrBadModel, m.Path(m.File), err)
		}
	}
	if err := onnxInitEnv(opts.LibraryPath); err != nil {
		return nil, err
	}
	io, err := onnxCheckIO(data, m)
	if err != nil {
		return nil, fmt.Errorf("%w: model %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	x := &ONNX{name: m.Name, width: m.Width, manifest: m, conv: m.conv}
	if x.name == "" {
		x.name = "onnx"
	}
	if err := x.build(data, io, &opts); err != nil {
		x.Close()
		return nil, err
	}
	if err := x.warm(); err != nil {
		x.Close()
		return nil, err
	}
	if !opts.SkipParity {
		if err := x.checkParity(); err != nil {
			x.Close()
			return nil, err
		}
	}
	onnxLogProvider(opts.Log, x.provider, opts.Provider, m)
	return x, nil
}

func onnxReadModel(m *Manifest) ([]byte, error) {
	data, err := os.ReadFile(m.Path(m.File))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if m.SHA256 != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != m.SHA256 {
			return nil, fmt.Errorf("%w: model %s has sha256 %s, manifest says %s", ErrBadModel, m.Path(m.File), got, m.SHA256)
		}
	}
	return data, nil
}

// onnxWant is one input the input form expects.
type onnxWant struct {
	name  string // "" for the rows form's single input, whatever its name
	dtype ort.TensorElementDataType
	cols  int
}

// onnxInputsFor lists the inputs of a model of manifest m's form.
func onnxInputsFor(m *Manifest) []onnxWant {
	if m.conv == nil {
		return []onnxWant{{"", ort.TensorElementDataTypeFloat, m.Width}}
	}
	w := []onnxWant{{"wide_ids", ort.TensorElementDataTypeInt32, m.conv.wideWidth()}}
	if n := m.conv.deepWidth(); n > 0 {
		w = append(w, onnxWant{"deep_ids", ort.TensorElementDataTypeInt32, n})
	}
	if n := m.conv.numWidth(); n > 0 {
		w = append(w, onnxWant{"numeric", ort.TensorElementDataTypeFloat, n})
	}
	return w
}

// onnxCheckIO checks the graph's inputs against the manifest's input form
// and its one output, and returns their names.
func onnxCheckIO(data []byte, m *Manifest) (onnxIO, error) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return onnxIO{}, err
	}
	want := onnxInputsFor(m)
	if len(ins) != len(want) || len(outs) != 1 {
		return onnxIO{}, fmt.Errorf("%d inputs and %d outputs, want %d and 1 (input form %s)", len(ins), len(outs), len(want), m.InputForm)
	}
	var io onnxIO
	for _, w := range want {
		var in *ort.InputOutputInfo
		for k := range ins {
			if w.name == "" || ins[k].Name == w.name {
				in = &ins[k]
				break
			}
		}
		if in == nil || in.DataType != w.dtype || len(in.Dimensions) != 2 || in.Dimensions[1] != int64(w.cols) {
			return onnxIO{}, fmt.Errorf("inputs %v, want %s %v [N, %d] (input form %s)", ins, w.name, w.dtype, w.cols, m.InputForm)
		}
		io.inputs = append(io.inputs, in.Name)
	}
	o := outs[0]
	if o.DataType != ort.TensorElementDataTypeFloat || len(o.Dimensions) < 1 || len(o.Dimensions) > 2 ||
		(len(o.Dimensions) == 2 && o.Dimensions[1] != 1) {
		return onnxIO{}, fmt.Errorf("output %s, want float32 [N] or [N, 1]", o.String())
	}
	io.output = o.Name
	return io, nil
}

// build creates the session and the buckets' tensors and bindings, on CUDA
// when asked for and it loads, else on CPU.
func (x *ONNX) build(data []byte, io onnxIO, opts *ONNXOptions) error {
	top := onnxBucketFor(opts.MaxBatch)
	x.top = top
	x.provider = ProviderCPU
	if opts.Provider != ProviderCPU {
		x.provider = ProviderCUDA
		if err := x.buildBuckets(data, io, top, opts); err != nil {
			x.destroyBuckets()
			level := slog.LevelInfo
			if opts.Provider == ProviderCUDA {
				level = slog.LevelWarn
			}
			// The runtime's error leads with its C++ source location and
			// status: the cause alone at INFO or WARN, the whole at DEBUG.
			opts.Log.Log(context.Background(), level, "ctr: onnx cuda provider unavailable, using cpu", "model", x.name, "err", ortCause(err), "help", "docs/gpu.md")
			opts.Log.Debug("ctr: onnx cuda provider error", "model", x.name, "err", err)
			x.provider = ProviderCPU
		} else {
			return nil
		}
	}
	if err := x.buildBuckets(data, io, top, opts); err != nil {
		return fmt.Errorf("%w: model %s: %v", ErrBadModel, x.name, err)
	}
	return nil
}

// ortCause is the cause an ONNX Runtime error states, without the source
// location and status before it ("/onnxruntime_src/...cc:1952 ...
// [ONNXRuntimeError] : 1 : FAIL : Failed to load library ..."); any other
// error whole.
func ortCause(err error) string {
	s := err.Error()
	const mark = "[ONNXRuntimeError] : "
	if i := strings.LastIndex(s, mark); i >= 0 {
		if parts := strings.SplitN(s[i+len(mark):], " : ", 3); len(parts) == 3 {
			return parts[2]
		}
	}
	return s
}

func (x *ONNX) sessionOptions(opts *ONNXOptions) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	err = so.SetIntraOpNumThreads(opts.IntraOpThreads)
	if err == nil {
		err = so.SetInterOpNumThreads(1)
	}
	if err == nil {
		err = so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0")
	}
	if err == nil && x.provider == ProviderCUDA {
		var co *ort.CUDAProviderOptions
		if co, err = ort.NewCUDAProviderOptions(); err == nil {
			err = co.Update(map[string]string{"device_id": fmt.Sprint(opts.CUDADevice)})
			if err == nil {
				err = so.AppendExecutionProviderCUDA(co)
			}
			co.Destroy()
		}
	}
	if err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

func (x *ONNX) buildBuckets(data []byte, io onnxIO, top int, opts *ONNXOptions) error {
	so, err := x.sessionOptions(opts)
	if err != nil {
		return err
	}
	defer so.Destroy()
	if x.sess, err = ort.NewDynamicAdvancedSessionWithONNXData(data, io.inputs, []string{io.output}, so); err != nil {
		return err
	}
	want := onnxInputsFor(x.manifest)
	for b := 0; b <= top; b++ {
		x.buckets = append(x.buckets, onnxBucket{rows: 1 << b})
		bp := &x.buckets[len(x.buckets)-1]
		for _, w := range want {
			if err := bp.addInput(w); err != nil {
				return err
			}
		}
		if bp.out, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(bp.rows), 1)); err != nil {
			return err
		}
		if bp.bind, err = x.sess.CreateIoBinding(); err != nil {
			return err
		}
		for i, name := range io.inputs {
			if err := bp.bind.BindInput(name, bp.ins[i]); err != nil {
				return err
			}
		}
		if err := bp.bind.BindOutput(io.output, bp.out); err != nil {
			return err
		}
		bp.outD = bp.out.GetData()
	}
	return nil
}

// run runs bucket b's bound tensors through the session.
func (x *ONNX) run(b int) error { return x.sess.RunWithBinding(x.buckets[b].bind) }

// addInput allocates the tensor of one input and keeps its data.
func (bk *onnxBucket) addInput(w onnxWant) error {
	shape := ort.NewShape(int64(bk.rows), int64(w.cols))
	if w.dtype == ort.TensorElementDataTypeInt32 {
		t, err := ort.NewEmptyTensor[int32](shape)
		if err != nil {
			return err
		}
		bk.ins = append(bk.ins, t)
		if w.name == "wide_ids" {
			bk.wideD = t.GetData()
		} else {
			bk.deepD = t.GetData()
		}
		return nil
	}
	t, err := ort.NewEmptyTensor[float32](shape)
	if err != nil {
		return err
	}
	bk.ins = append(bk.ins, t)
	if w.name == "" {
		bk.rowsD = t.GetData()
	} else {
		bk.numD = t.GetData()
	}
	return nil
}

func (x *ONNX) destroyBuckets() {
	for i := range x.buckets {
		b := &x.buckets[i]
		if b.bind != nil {
			b.bind.Destroy()
		}
		for _, in := range b.ins {
			in.Destroy()
		}
		if b.out != nil {
			b.out.Destroy()
		}
	}
	x.buckets = x.buckets[:0]
	if x.sess != nil {
		x.sess.Destroy()
		x.sess = nil
	}
}

// put writes rows (whole feature rows) into bucket b's inputs from row off
// on: copied for input form rows, converted for wide_deep_ids.
func (x *ONNX) put(b, off int, rows []float32) {
	bk := &x.buckets[b]
	if x.conv == nil {
		copy(bk.rowsD[off*x.width:], rows)
		return
	}
	c := x.conv
	n := len(rows) / x.width
	c.put(rows, bk.wideD[off*c.wideWidth():(off+n)*c.wideWidth()], bk.deepD[off*c.deepWidth():(off+n)*c.deepWidth()],
		bk.numD[off*c.numWidth():(off+n)*c.numWidth()])
}

// onnxWarmRuns and onnxWarmTimed are the runs per bucket at load: the
// first runs pay ONNX Runtime's one-time costs (memory arenas, kernel
// selection, the densified sparse initializer, cold caches) and are not
// timed; the estimate starts from the median of the timed ones.
const (
	onnxWarmRuns  = 2
	onnxWarmTimed = 5
)

// warm runs every bucket a few times on the inputs as they stand (zeros:
// every index is a valid row) and seeds the run-time estimates from the
// runs after the first ones.
func (x *ONNX) warm() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	var t [onnxWarmTimed]time.Duration
	for b := range x.buckets {
		for i := range onnxWarmRuns + onnxWarmTimed {
			start := time.Now()
			if err := x.run(b); err != nil {
				return fmt.Errorf("%w: model %s: warm-up run of %d rows: %v", ErrBadModel, x.name, x.buckets[b].rows, err)
			}
			if i >= onnxWarmRuns {
				t[i-onnxWarmRuns] = time.Since(start)
			}
		}
		slices.Sort(t[:])
		x.est[b].Store(int64(t[len(t)/2]))
		x.measured[b].Store(time.Now().UnixNano())
		x.warmRuns += onnxWarmRuns + onnxWarmTimed
	}
	return nil
}

// WarmRuns is the number of session runs made at load, before the model
// was returned.
func (x *ONNX) WarmRuns() int { return x.warmRuns }

func (x *ONNX) checkParity() error {
	rows, want, err := onnxLoadParity(x.manifest.Path(x.manifest.Parity), x.width)
	if err != nil {
		return err
	}
	got := make([]float32, len(want))
	if err := x.Score(time.Time{}, rows, got); err != nil {
		return fmt.Errorf("%w: parity run: %v", ErrBadModel, err)
	}
	tol := x.manifest.ParityTolerance
	if tol <= 0 {
		tol = 1e-5
	}
	return onnxCheckParity(x.name, got, want, tol)
}

// onnxLogProvider logs the runtime and its execution provider once, and
// again whenever the provider changes (the process-wide environment is
// shared by every model).
func onnxLogProvider(log *slog.Logger, provider, asked string, m *Manifest) {
	onnxEnv.Lock()
	changed := onnxEnv.provider != provider
	onnxEnv.provider = provider
	lib := onnxEnv.lib
	onnxEnv.Unlock()
	if changed {
		log.Info("ctr: onnx execution provider", "provider", provider, "asked", asked,
			"model", m.Name, "schema", m.SchemaVersion, "width", m.Width, "library", lib, "runtime", ort.GetVersion())
	}
}

// Provider is the execution provider in use: "cuda" or "cpu".
func (x *ONNX) Provider() string { return x.provider }

// Name is the manifest's model name.
func (x *ONNX) Name() string { return x.name }

// Width is the row width.
func (x *ONNX) Width() int { return x.width }

// MaxBatch is the largest batch one session run takes.
func (x *ONNX) MaxBatch() int { return 1 << x.top }

// Manifest is the manifest the model was loaded from.
func (x *ONNX) Manifest() *Manifest { return x.manifest }

// PredictLatency is the expected time of scoring rows rows in one call.
func (x *ONNX) PredictLatency(rows int) time.Duration {
	if rows <= 0 {
		return 0
	}
	top := x.top
	full := rows >> top
	d := time.Duration(full) * time.Duration(x.est[top].Load())
	if rest := rows - full<<top; rest > 0 {
		d += time.Duration(x.est[onnxBucketFor(rest)].Load())
	}
	return d
}

// noteRefusal implements refusalNoter: it lowers the estimates
// PredictLatency(rows) sums (onnxDecay) that no run has measured for
// batchStaleAfter, as the Batcher does. Before, every refusal lowered them:
// calls just short of slack, refused while runs kept measuring the model,
// wore the estimate under the run time, and calls then waited for runs
// that missed their deadline (the models audit found the rule missing
// here after it was added to the Batcher).
func (x *ONNX) noteRefusal(rows int) {
	if rows <= 0 {
		return
	}
	if rows>>x.top > 0 {
		x.decay(x.top)
	}
	if rest := rows - rows>>x.top<<x.top; rest > 0 {
		x.decay(onnxBucketFor(rest))
	}
}

// decay lowers bucket b's estimate (onnxDecay) when no run has measured it
// for batchStaleAfter.
func (x *ONNX) decay(b int) {
	if time.Now().UnixNano()-x.measured[b].Load() >= int64(batchStaleAfter) {
		onnxDecay(&x.est[b])
	}
}

// Score implements Scorer. A zero deadline means none.
func (x *ONNX) Score(deadline time.Time, rows []float32, out []float32) error {
	n := len(out)
	if len(rows) != n*x.width {
		return errBatchShape
	}
	if n == 0 {
		return nil
	}
	if !deadline.IsZero() && time.Until(deadline) < x.PredictLatency(n) {
		x.noteRefusal(n)
		return ErrDeadline
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return ErrUnavailable
	}
	top := x.top
	for off := 0; off < n; {
		k := min(n-off, 1<<top)
		b := onnxBucketFor(k)
		x.put(b, 0, rows[off*x.width:(off+k)*x.width])
		if err := x.runLocked(b); err != nil {
			return err
		}
		copy(out[off:off+k], x.buckets[b].outD[:k])
		off += k
	}
	return nil
}

// runLocked runs bucket b and folds its time into the estimate.
func (x *ONNX) runLocked(b int) error {
	start := time.Now()
	if err := x.run(b); err != nil {
		return fmt.Errorf("%w: onnx run: %v", ErrUnavailable, err)
	}
	x.est[b].Store(int64(onnxEWMA(time.Duration(x.est[b].Load()), time.Since(start))))
	x.measured[b].Store(time.Now().UnixNano())
	return nil
}

// batchLock implements batchModel: it locks the model for a run of n rows
// (n <= MaxBatch); false when closed (batchUnlock is still due).
func (x *ONNX) batchLock(n int) bool {
	x.mu.Lock()
	return !x.closed
}

// batchPut writes rows into the inputs of the bucket for n rows from row
// off on. Only between a successful batchLock(n) and batchUnlock.
func (x *ONNX) batchPut(n, off int, rows []float32) {
	x.put(onnxBucketFor(n), off, rows)
}

// batchRun runs the bucket for n rows; out is valid until batchUnlock.
func (x *ONNX) batchRun(n int) ([]float32, error) {
	if x.closed {
		return nil, ErrUnavailable
	}
	b := onnxBucketFor(n)
	if err := x.runLocked(b); err != nil {
		return nil, err
	}
	return x.buckets[b].outD[:n], nil
}

func (x *ONNX) batchUnlock() { x.mu.Unlock() }

// Close destroys the sessions and tensors; later calls return
// ErrUnavailable. It waits for a run in progress.
func (x *ONNX) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.closed = true
		x.destroyBuckets()
	}
	return nil
}
