//go:build cgo

package ctr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// ONNX scores rows with an ONNX model on ONNX Runtime. One session per
// power-of-two batch size, each with pre-allocated input and output tensors,
// so a run makes no allocation; runs are serialised (one set of tensors).
// Use it directly, or under a Batcher to gather rows from concurrent callers.
type ONNX struct {
	name     string
	width    int
	provider string
	manifest *Manifest
	top      int // index of the largest bucket; immutable after load

	mu      sync.Mutex // guards buckets (tensor contents, session runs) and closed
	buckets []onnxBucket
	closed  bool

	est [17]atomic.Int64 // EWMA run time per bucket, nanoseconds
}

type onnxBucket struct {
	rows int
	in   *ort.Tensor[float32]
	out  *ort.Tensor[float32]
	sess *ort.AdvancedSession
	inD  []float32
	outD []float32
}

var _ Scorer = (*ONNX)(nil)

// onnxEnv is the process-wide ONNX Runtime environment (onnxruntime_go keeps
// one global environment).
var onnxEnv struct {
	sync.Mutex
	lib      string
	err      error
	done     bool
	provider string // last provider logged
}

func onnxInitEnv(lib string) error {
	onnxEnv.Lock()
	defer onnxEnv.Unlock()
	if onnxEnv.done {
		return onnxEnv.err
	}
	if _, err := os.Stat(lib); err != nil {
		// Not cached: the library may be installed later in the process's life.
		return fmt.Errorf("%w: onnx runtime library: %v", ErrUnavailable, err)
	}
	onnxEnv.done, onnxEnv.lib = true, lib
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		onnxEnv.err = fmt.Errorf("%w: onnx runtime %s: %v", ErrUnavailable, lib, err)
		return onnxEnv.err
	}
	slog.Info("ctr: onnx runtime loaded", "library", lib, "version", ort.GetVersion())
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
// and width (when opts.SchemaVersion is set), sha256, one float32 input
// [N, width] and one float32 output [N] or [N, 1], and the parity sample
// within the manifest's tolerance. Refusals wrap ErrSchema or ErrBadModel; a
// missing library wraps ErrUnavailable.
func LoadONNX(manifestPath string, opts ONNXOptions) (*ONNX, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m, err := LoadManifest(manifestPath)
	if err != nil {
		return nil, err
	}
	if m.Kind != "onnx" {
		return nil, fmt.Errorf("%w: manifest %s: kind %q, want onnx", ErrBadModel, manifestPath, m.Kind)
	}
	if opts.SchemaVersion != "" {
		if err := m.CheckSchema(opts.SchemaVersion, opts.Width); err != nil {
			return nil, err
		}
	}
	data, err := onnxReadModel(m)
	if err != nil {
		return nil, err
	}
	if err := onnxInitEnv(opts.LibraryPath); err != nil {
		return nil, err
	}
	inName, outName, err := onnxCheckIO(data, m.Width)
	if err != nil {
		return nil, fmt.Errorf("%w: model %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	x := &ONNX{name: m.Name, width: m.Width, manifest: m}
	if x.name == "" {
		x.name = "onnx"
	}
	if err := x.build(data, inName, outName, &opts); err != nil {
		x.Close()
		return nil, err
	}
	x.warm()
	if !opts.SkipParity {
		if err := x.checkParity(); err != nil {
			x.Close()
			return nil, err
		}
	}
	onnxLogProvider(x.provider, opts.Provider, m)
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

func onnxCheckIO(data []byte, width int) (in, out string, err error) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return "", "", err
	}
	if len(ins) != 1 || len(outs) != 1 {
		return "", "", fmt.Errorf("%d inputs and %d outputs, want 1 and 1", len(ins), len(outs))
	}
	i, o := ins[0], outs[0]
	if i.DataType != ort.TensorElementDataTypeFloat || len(i.Dimensions) != 2 || i.Dimensions[1] != int64(width) {
		return "", "", fmt.Errorf("input %s, want float32 [N, %d]", i.String(), width)
	}
	if o.DataType != ort.TensorElementDataTypeFloat || len(o.Dimensions) < 1 || len(o.Dimensions) > 2 ||
		(len(o.Dimensions) == 2 && o.Dimensions[1] != 1) {
		return "", "", fmt.Errorf("output %s, want float32 [N] or [N, 1]", o.String())
	}
	return i.Name, o.Name, nil
}

// build creates one session per bucket, on CUDA when asked for and it
// loads, else on CPU.
func (x *ONNX) build(data []byte, inName, outName string, opts *ONNXOptions) error {
	top := onnxBucketFor(opts.MaxBatch)
	x.top = top
	x.provider = ProviderCPU
	if opts.Provider != ProviderCPU {
		x.provider = ProviderCUDA
		if err := x.buildBuckets(data, inName, outName, top, opts); err != nil {
			x.destroyBuckets()
			level := slog.LevelInfo
			if opts.Provider == ProviderCUDA {
				level = slog.LevelWarn
			}
			slog.Log(context.Background(), level, "ctr: onnx cuda provider unavailable, using cpu", "model", x.name, "err", err)
			x.provider = ProviderCPU
		} else {
			return nil
		}
	}
	if err := x.buildBuckets(data, inName, outName, top, opts); err != nil {
		return fmt.Errorf("%w: model %s: %v", ErrBadModel, x.name, err)
	}
	return nil
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

func (x *ONNX) buildBuckets(data []byte, inName, outName string, top int, opts *ONNXOptions) error {
	so, err := x.sessionOptions(opts)
	if err != nil {
		return err
	}
	defer so.Destroy()
	for b := 0; b <= top; b++ {
		n := 1 << b
		var bk onnxBucket
		bk.rows = n
		if bk.in, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(x.width))); err != nil {
			return err
		}
		x.buckets = append(x.buckets, bk)
		bp := &x.buckets[len(x.buckets)-1]
		if bp.out, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 1)); err != nil {
			return err
		}
		bp.sess, err = ort.NewAdvancedSessionWithONNXData(data, []string{inName}, []string{outName},
			[]ort.Value{bp.in}, []ort.Value{bp.out}, so)
		if err != nil {
			return err
		}
		bp.inD, bp.outD = bp.in.GetData(), bp.out.GetData()
	}
	return nil
}

func (x *ONNX) destroyBuckets() {
	for i := range x.buckets {
		b := &x.buckets[i]
		if b.sess != nil {
			b.sess.Destroy()
		}
		if b.in != nil {
			b.in.Destroy()
		}
		if b.out != nil {
			b.out.Destroy()
		}
	}
	x.buckets = x.buckets[:0]
}

// warm runs every bucket a few times to seed the run-time estimates.
func (x *ONNX) warm() {
	for b := range x.buckets {
		for range 3 {
			x.mu.Lock()
			x.runLocked(b)
			x.mu.Unlock()
		}
	}
}

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

func onnxLogProvider(provider, asked string, m *Manifest) {
	onnxEnv.Lock()
	changed := onnxEnv.provider != provider
	onnxEnv.provider = provider
	onnxEnv.Unlock()
	if changed {
		slog.Info("ctr: onnx execution provider", "provider", provider, "asked", asked,
			"model", m.Name, "schema", m.SchemaVersion, "width", m.Width)
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
		copy(x.buckets[b].inD, rows[off*x.width:(off+k)*x.width])
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
	if err := x.buckets[b].sess.Run(); err != nil {
		return fmt.Errorf("%w: onnx run: %v", ErrUnavailable, err)
	}
	x.est[b].Store(int64(onnxEWMA(time.Duration(x.est[b].Load()), time.Since(start))))
	return nil
}

// batchLock implements batchModel: it locks the model and returns the input
// rows of the bucket for n rows (n <= MaxBatch).
func (x *ONNX) batchLock(n int) []float32 {
	x.mu.Lock()
	if x.closed {
		return nil
	}
	b := onnxBucketFor(n)
	return x.buckets[b].inD[:n*x.width]
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
