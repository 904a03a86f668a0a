package ctr

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

const onnxTinyManifest = "testdata/mlp_tiny.manifest.json"

// onnxTestLib returns the ONNX Runtime library for tests, or skips the test
// when it is not installed.
func onnxTestLib(t testing.TB) string {
	t.Helper()
	lib := os.Getenv("ORT_LIB")
	if lib == "" {
		lib = filepath.Join("..", DefaultORTLibrary)
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("libonnxruntime not found at %s (run ctr/install-onnxruntime.sh or set ORT_LIB): %v", lib, err)
	}
	if err := ONNXAvailable(lib); err != nil {
		t.Skipf("onnx runtime cannot load: %v", err)
	}
	return lib
}

func onnxTestLoad(t testing.TB, manifest string, opts ONNXOptions) *ONNX {
	t.Helper()
	opts.LibraryPath = onnxTestLib(t)
	if opts.Provider == "" {
		opts.Provider = ProviderCPU
	}
	x, err := LoadONNX(manifest, opts)
	if err != nil {
		t.Fatalf("LoadONNX(%s): %v", manifest, err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// onnxTestRows returns the tiny model's parity rows and outputs.
func onnxTestRows(t testing.TB) (rows, want []float32) {
	t.Helper()
	rows, want, err := onnxLoadParity("testdata/mlp_tiny.parity.json", features.Width)
	if err != nil {
		t.Fatal(err)
	}
	return rows, want
}

func TestONNXParity(t *testing.T) {
	for _, mb := range []int{1, 8, 64} { // chunked, partly chunked, one run
		x := onnxTestLoad(t, onnxTinyManifest, ONNXOptions{MaxBatch: mb, SchemaVersion: features.SchemaVersion, Width: features.Width})
		if x.Provider() != ProviderCPU || x.Width() != features.Width || x.MaxBatch() != mb {
			t.Fatalf("provider %q width %d max batch %d", x.Provider(), x.Width(), x.MaxBatch())
		}
		rows, want := onnxTestRows(t)
		for _, n := range []int{1, 3, 17, len(want)} {
			got := make([]float32, n)
			if err := x.Score(time.Now().Add(time.Second), rows[:n*features.Width], got); err != nil {
				t.Fatal(err)
			}
			if err := onnxCheckParity("tiny", got, want[:n], 1e-5); err != nil {
				t.Errorf("max batch %d, %d rows: %v", mb, n, err)
			}
		}
	}
}

func TestONNXServedModelParity(t *testing.T) {
	x := onnxTestLoad(t, "../configs/models/mlp.manifest.json", ONNXOptions{SchemaVersion: features.SchemaVersion, Width: features.Width})
	if x.PredictLatency(64) <= 0 {
		t.Errorf("no latency estimate after warm-up")
	}
}

func TestONNXProviderAutoFallsBackToCPU(t *testing.T) {
	// No CUDA provider library is installed beside the core library in CI, so
	// auto must land on the CPU provider (on a GPU host it may pick cuda).
	x := onnxTestLoad(t, onnxTinyManifest, ONNXOptions{Provider: ProviderAuto, MaxBatch: 4})
	if p := x.Provider(); p != ProviderCPU && p != ProviderCUDA {
		t.Fatalf("provider %q", p)
	}
	rows, want := onnxTestRows(t)
	got := make([]float32, 4)
	if err := x.Score(time.Time{}, rows[:4*features.Width], got); err != nil {
		t.Fatal(err)
	}
	if err := onnxCheckParity("tiny", got, want[:4], 1e-4); err != nil {
		t.Fatal(err)
	}
}

// onnxTestCopy copies the tiny model into a temp dir, letting edit change the
// manifest text and the parity file, and returns the manifest path.
func onnxTestCopy(t testing.TB, editManifest func(string) string, editParity func([]byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"mlp_tiny.manifest.json", "mlp_tiny.onnx", "mlp_tiny.parity.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(f, "manifest.json") && editManifest != nil:
			b = []byte(editManifest(string(b)))
		case strings.HasSuffix(f, "parity.json") && editParity != nil:
			b = editParity(b)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "mlp_tiny.manifest.json")
}

func TestONNXRefusesBadModels(t *testing.T) {
	lib := onnxTestLib(t)
	f := func(name string, path string, opts ONNXOptions, want error) {
		t.Helper()
		opts.LibraryPath = lib
		if opts.Provider == "" {
			opts.Provider = ProviderCPU
		}
		x, err := LoadONNX(path, opts)
		if !errors.Is(err, want) {
			if x != nil {
				x.Close()
			}
			t.Errorf("%s: err %v, want %v", name, err, want)
		}
	}
	f("schema", onnxTinyManifest, ONNXOptions{SchemaVersion: "v0", Width: features.Width}, ErrSchema)
	f("width", onnxTinyManifest, ONNXOptions{SchemaVersion: features.SchemaVersion, Width: features.Width + 1}, ErrSchema)
	f("sha256", onnxTestCopy(t, func(s string) string {
		return strings.Replace(s, `"sha256": "`, `"sha256": "00`, 1)
	}, nil), ONNXOptions{}, ErrBadModel)
	f("parity", onnxTestCopy(t, nil, func(b []byte) []byte {
		return []byte(onnxTestShiftParity(t, b))
	}), ONNXOptions{}, ErrBadModel)
	f("kind", onnxTestCopy(t, func(s string) string {
		return strings.Replace(s, `"kind": "onnx"`, `"kind": "gbdt"`, 1)
	}, nil), ONNXOptions{}, ErrBadModel)
	f("manifest width", onnxTestCopy(t, func(s string) string {
		return strings.Replace(s, `"width": 41`, `"width": features.Width`, 1)
	}, nil), ONNXOptions{}, ErrBadModel)
	f("missing", filepath.Join(t.TempDir(), "none.manifest.json"), ONNXOptions{}, ErrBadModel)
	f("library", onnxTinyManifest, ONNXOptions{Provider: "tpu"}, ErrUnavailable)
}

// onnxTestShiftParity returns the parity file with its first output moved by 0.01.
func onnxTestShiftParity(t testing.TB, b []byte) string {
	t.Helper()
	s := string(b)
	i := strings.Index(s, `"outputs":[`) + len(`"outputs":[`)
	j := i + strings.IndexAny(s[i:], ",]")
	v, err := strconv.ParseFloat(s[i:j], 64)
	if err != nil {
		t.Fatal(err)
	}
	return s[:i] + strconv.FormatFloat(math.Mod(v+0.01, 1), 'g', -1, 64) + s[j:]
}

func TestONNXScoreRejectsShortDeadlineAndBadShape(t *testing.T) {
	x := onnxTestLoad(t, onnxTinyManifest, ONNXOptions{MaxBatch: 8})
	rows, _ := onnxTestRows(t)
	out := make([]float32, 8)
	if err := x.Score(time.Now().Add(-time.Millisecond), rows[:8*features.Width], out); !errors.Is(err, ErrDeadline) {
		t.Errorf("past deadline: %v", err)
	}
	if err := x.Score(time.Time{}, rows[:8*features.Width-1], out); err == nil {
		t.Errorf("bad shape accepted")
	}
	x.Close()
	if err := x.Score(time.Time{}, rows[:8*features.Width], out); !errors.Is(err, ErrUnavailable) {
		t.Errorf("after close: %v", err)
	}
}
