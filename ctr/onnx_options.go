package ctr

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync/atomic"
	"time"
)

// ONNX provider names, as given in ONNXOptions.Provider and returned by
// (*ONNX).Provider.
const (
	ProviderAuto = "auto" // CUDA when the provider library and a GPU load, else CPU
	ProviderCUDA = "cuda" // as auto, but a fall to CPU is logged as a warning
	ProviderCPU  = "cpu"  // never try CUDA
)

// DefaultORTLibrary is where ctr/install-onnxruntime.sh puts the library.
const DefaultORTLibrary = "./lib/onnxruntime/libonnxruntime.so.1"

// ONNXOptions configures LoadONNX. A zero field means the documented default.
type ONNXOptions struct {
	// LibraryPath is libonnxruntime.so.1. Default: $ORT_LIB, else
	// DefaultORTLibrary. The library is loaded once per process; later loads
	// with another path keep the first one.
	LibraryPath string
	// Provider is "auto" (default), "cuda" or "cpu".
	Provider string
	// CUDADevice is the GPU ordinal used by the CUDA provider.
	CUDADevice int
	// SchemaVersion and Width are the running feature extractor's
	// (features.SchemaVersion, features.Width). When SchemaVersion is set, a
	// model trained on another schema or width is refused with ErrSchema.
	SchemaVersion string
	Width         int
	// MaxBatch is the largest batch one session run takes (default 256).
	// Inputs are pre-allocated for every power of two up to MaxBatch rounded
	// up to a power of two; larger calls are scored in chunks.
	MaxBatch int
	// IntraOpThreads is ONNX Runtime's intra-op thread count (default 1: on
	// a bidder the parallelism is across requests, not inside one run).
	IntraOpThreads int
	// SkipParity skips the parity check at load. Tests and tools only: a
	// served model must reproduce its parity sample.
	SkipParity bool
	// Log receives the provider choice and a fall from CUDA to CPU (default
	// slog.Default(); the bidder hands down its own).
	Log *slog.Logger
}

func (o *ONNXOptions) setDefaults() error {
	if o.LibraryPath == "" {
		o.LibraryPath = os.Getenv("ORT_LIB")
	}
	if o.LibraryPath == "" {
		o.LibraryPath = DefaultORTLibrary
	}
	switch o.Provider {
	case "":
		o.Provider = ProviderAuto
	case ProviderAuto, ProviderCUDA, ProviderCPU:
	default:
		return fmt.Errorf("%w: onnx provider %q is not auto, cuda or cpu", ErrUnavailable, o.Provider)
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 256
	}
	if o.MaxBatch < 1 || o.MaxBatch > 1<<16 {
		return fmt.Errorf("%w: onnx max batch %d out of [1, 65536]", ErrUnavailable, o.MaxBatch)
	}
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = 1
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return nil
}

// onnxParity is a parity sample: rows and the training framework's outputs.
type onnxParity struct {
	Inputs  [][]float32 `json:"inputs"`
	Outputs []float32   `json:"outputs"`
}

// onnxLoadParity reads a parity file and returns its rows flattened.
func onnxLoadParity(path string, width int) (rows, want []float32, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: parity: %v", ErrBadModel, err)
	}
	var p onnxParity
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, fmt.Errorf("%w: parity %s: %v", ErrBadModel, path, err)
	}
	if len(p.Inputs) == 0 || len(p.Inputs) != len(p.Outputs) {
		return nil, nil, fmt.Errorf("%w: parity %s: %d inputs, %d outputs", ErrBadModel, path, len(p.Inputs), len(p.Outputs))
	}
	rows = make([]float32, 0, len(p.Inputs)*width)
	for i, r := range p.Inputs {
		if len(r) != width {
			return nil, nil, fmt.Errorf("%w: parity %s: row %d has %d values, want %d", ErrBadModel, path, i, len(r), width)
		}
		rows = append(rows, r...)
	}
	return rows, p.Outputs, nil
}

// onnxCheckParity compares got with want within tol (absolute).
func onnxCheckParity(name string, got, want []float32, tol float64) error {
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > tol {
		return fmt.Errorf("%w: model %q does not reproduce its parity sample: row %d off by %.3g (tolerance %.3g)",
			ErrBadModel, name, at, worst, tol)
	}
	return nil
}

// onnxBucketFor returns the index of the smallest power-of-two bucket
// holding n rows (n >= 1).
func onnxBucketFor(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}

// onnxEWMA folds a sample into an estimate (weight 1/8); zero means none yet.
func onnxEWMA(est, sample time.Duration) time.Duration {
	if est == 0 {
		return sample
	}
	return est + (sample-est)/8
}

// onnxDecay lowers an estimate after a refusal on it, by the factor the
// GBDT's refusals lower its own (refusalDecay). A refused call measures
// nothing: one run stalled by the machine (120ms where runs take 0.2ms) put
// the batcher's estimate over every request's slack, the model was never
// run again, so never measured again, and the GBDT scored every row until a
// reload (an outside audit). Now the estimate comes down a little with each
// refusal until a call runs and measures the model as it is. The Batcher
// and the ONNX model lower only an estimate no run has measured for
// batchStaleAfter: refusals
// of requests that are just short of slack, while runs keep measuring, wore
// a 3ms estimate to half. Samples are not capped as the GBDT's are
// (gbdtOutlierFactor): an estimate too high only sends rows to the fallback
// for a while, one too low makes callers wait for a run that misses their
// deadline, and then there is no time left for the fallback.
func onnxDecay(est *atomic.Int64) {
	est.Store(int64(float64(est.Load()) * refusalDecay))
}
