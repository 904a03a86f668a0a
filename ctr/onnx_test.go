package ctr

import (
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

// The tiny test model (an 8-4 MLP over 64-row tables, trained by
// mlp_train.py --tiny) in the wide_deep_ids form, and the same weights in the
// rows form it was re-exported from (ctr/train/reexport.py).
const (
	onnxTinyManifest     = "testdata/mlp_tiny.manifest.json"
	onnxTinyRowsManifest = "testdata/mlp_tiny_rows.manifest.json"
)

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
	var logs strings.Builder
	x := onnxTestLoad(t, onnxTinyManifest, ONNXOptions{Provider: ProviderAuto, MaxBatch: 4, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	switch p := x.Provider(); p {
	case ProviderCPU: // auto's fall is expected where there is no GPU: info, not a warning
		if !strings.Contains(logs.String(), `level=INFO msg="ctr: onnx cuda provider unavailable, using cpu"`) {
			t.Errorf("fell back to cpu without the info line; log:\n%s", logs.String())
		}
		// Its cause, without the runtime's C++ source location (an ops
		// audit: a long error text at INFO on every CPU-only start).
		if strings.Contains(logs.String(), "onnxruntime_src") || strings.Contains(logs.String(), "[ONNXRuntimeError]") {
			t.Errorf("the info line carries the runtime's source location; log:\n%s", logs.String())
		}
	case ProviderCUDA:
	default:
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
	return onnxTestCopyOf(t, "mlp_tiny", editManifest, editParity)
}

// onnxTestCopyOf is onnxTestCopy for the testdata model named base.
func onnxTestCopyOf(t testing.TB, base string, editManifest func(string) string, editParity func([]byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{base + ".manifest.json", base + ".onnx", base + ".parity.json"} {
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
	return filepath.Join(dir, base+".manifest.json")
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
	f("kind", onnxTestCopyOf(t, "mlp_tiny_rows", func(s string) string {
		return strings.Replace(s, `"kind": "onnx"`, `"kind": "gbdt"`, 1)
	}, nil), ONNXOptions{}, ErrBadModel)
	f("kind of the ids form", onnxTestCopy(t, func(s string) string {
		return strings.Replace(s, `"kind": "onnx"`, `"kind": "gbdt"`, 1)
	}, nil), ONNXOptions{}, ErrInputForm)
	f("unknown input form", onnxTestCopy(t, func(s string) string {
		return strings.Replace(s, `"input_form": "wide_deep_ids"`, `"input_form": "sparse_coo"`, 1)
	}, nil), ONNXOptions{}, ErrInputForm)
	// The manifest's section must match the graph's inputs: one wide column
	// fewer than the graph takes, or the ids graph described as rows.
	f("section narrower than the graph", onnxTestCopy(t, func(s string) string {
		i := strings.Index(s, `"wide_columns": [`) + len(`"wide_columns": [`)
		j := i + strings.Index(s[i:], "},") + len("},")
		return s[:i] + s[j:]
	}, nil), ONNXOptions{}, ErrBadModel)
	f("ids graph as rows", onnxTestCopy(t, func(s string) string {
		s = strings.Replace(s, `"input_form": "wide_deep_ids"`, `"input_form": "rows"`, 1)
		return strings.Replace(s, `"wide_deep_ids": {`, `"unused": {`, 1)
	}, nil), ONNXOptions{}, ErrBadModel)
	f("rows graph as ids", onnxTestCopyOf(t, "mlp_tiny_rows", func(s string) string {
		b, err := os.ReadFile(onnxTinyManifest)
		if err != nil {
			t.Fatal(err)
		}
		ids := string(b)
		section := ids[strings.Index(ids, `"wide_deep_ids": {`):]
		section = section[:strings.Index(section, "\n  }")+4]
		return strings.Replace(s, `"kind": "onnx",`, `"kind": "onnx", "input_form": "wide_deep_ids", `+section+",", 1)
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

// Refusals lower the model's own estimate only when no run has measured it
// for batchStaleAfter, as the Batcher's: refusals of calls just short of
// slack, while runs keep measuring it, wore it under the run time.
func TestONNXRefusalsLowerOnlyAStaleEstimate(t *testing.T) {
	x := onnxTestLoad(t, onnxTinyManifest, ONNXOptions{MaxBatch: 8})
	rows, _ := onnxTestRows(t)
	out := make([]float32, 1)
	b := onnxBucketFor(1)
	if err := x.Score(time.Time{}, rows[:features.Width], out); err != nil { // measured now
		t.Fatal(err)
	}
	x.est[b].Store(int64(3 * time.Millisecond))
	// Fresh for the whole loop, however slow the machine (the loop itself
	// could outlast batchStaleAfter on a loaded one).
	x.measured[b].Store(time.Now().Add(time.Hour).UnixNano())
	for range 100 {
		if err := x.Score(time.Now().Add(time.Millisecond), rows[:features.Width], out); !errors.Is(err, ErrDeadline) {
			t.Fatalf("1ms of slack against a 3ms estimate: %v", err)
		}
	}
	if est := time.Duration(x.est[b].Load()); est != 3*time.Millisecond {
		t.Errorf("a fresh estimate of 3ms is %v after 100 refusals", est)
	}
	x.measured[b].Store(time.Now().Add(-batchStaleAfter).UnixNano())
	for range 100 {
		x.Score(time.Now().Add(time.Millisecond), rows[:features.Width], out)
	}
	if est := time.Duration(x.est[b].Load()); est >= 3*time.Millisecond {
		t.Errorf("a stale estimate of 3ms is still %v after 100 refusals", est)
	}
}

// onnxTestEdgeRows returns rows that exercise the wide_deep_ids conversion
// beyond the parity sample: its rows scaled, negated, shifted by fractions,
// huge, and with random slots replaced by random ids (seeded).
func onnxTestEdgeRows(rows []float32) []float32 {
	out := slices.Clone(rows)
	for _, f := range []func(v float32, i int) float32{
		func(v float32, _ int) float32 { return v * 3 },
		func(v float32, _ int) float32 { return -v },
		func(v float32, _ int) float32 { return v + 0.5 },
		func(v float32, _ int) float32 { return v * 1000 },
		func(_ float32, i int) float32 { return float32(3e7) * float32(1-2*(i&1)) },
	} {
		for i, v := range rows {
			out = append(out, f(v, i))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, v := range rows {
		if r.IntN(5) == 0 {
			v = float32(r.IntN(300005) - 5)
		}
		out = append(out, v)
	}
	return out
}

// The re-exported models compute what their rows-form originals computed:
// the same weights in the lean wide_deep_ids graph, fed by the Go
// conversion, agree within 1e-6 on the parity rows and on edge rows, for the
// tiny model (a live deep part, tables of 64 rows, so the modulos matter)
// and for the served model (the same weights as testdata/mlp_rows, the
// rows-form graph it was re-exported from).
func TestONNXInputFormsAgree(t *testing.T) {
	for _, pair := range []struct{ rows, ids string }{
		{onnxTinyRowsManifest, onnxTinyManifest},
		{onnxRowsManifest, "../configs/models/mlp.manifest.json"},
	} {
		old := onnxTestLoad(t, pair.rows, ONNXOptions{MaxBatch: 64})
		lean := onnxTestLoad(t, pair.ids, ONNXOptions{MaxBatch: 64})
		if old.Manifest().InputForm != InputRows || lean.Manifest().InputForm != InputWideDeepIDs {
			t.Fatalf("%s is %s, %s is %s", pair.rows, old.Manifest().InputForm, pair.ids, lean.Manifest().InputForm)
		}
		par, _, err := onnxLoadParity(lean.Manifest().Path(lean.Manifest().Parity), features.Width)
		if err != nil {
			t.Fatal(err)
		}
		rows := onnxTestEdgeRows(par)
		n := len(rows) / features.Width
		a, b := make([]float32, n), make([]float32, n)
		if err := old.Score(time.Time{}, rows, a); err != nil {
			t.Fatal(err)
		}
		if err := lean.Score(time.Time{}, rows, b); err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range a {
			worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
		}
		t.Logf("%s against %s: %d rows, max |diff| %.3g", pair.ids, pair.rows, n, worst)
		if !(worst <= 1e-6) {
			t.Errorf("%s against %s: max |diff| %.3g over %d rows, want <= 1e-6", pair.ids, pair.rows, worst, n)
		}
	}
}

// Loading runs every batch size before the model is returned, and the
// run-time estimates start from those runs.
func TestONNXWarmsEveryBucketAtLoad(t *testing.T) {
	x := onnxTestLoad(t, onnxTinyManifest, ONNXOptions{MaxBatch: 16})
	if got, want := x.WarmRuns(), 5*(onnxWarmRuns+onnxWarmTimed); got != want {
		t.Errorf("warm runs %d, want %d (5 buckets)", got, want)
	}
	for b := 0; b <= 4; b++ {
		if x.PredictLatency(1<<b) <= 0 {
			t.Errorf("no estimate for %d rows", 1<<b)
		}
	}
}

// Asked for CUDA where no CUDA provider loads (no GPU, no provider library
// here), the model is served on the CPU provider, with a warning, in
// either input form.
func TestONNXProviderCUDAFallsBackToCPU(t *testing.T) {
	for _, m := range []string{onnxTinyManifest, onnxTinyRowsManifest} {
		var logs strings.Builder
		x := onnxTestLoad(t, m, ONNXOptions{Provider: ProviderCUDA, MaxBatch: 4, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		switch p := x.Provider(); p {
		case ProviderCPU:
			if !strings.Contains(logs.String(), `level=WARN msg="ctr: onnx cuda provider unavailable, using cpu"`) {
				t.Errorf("%s: fell back to cpu without a warning; log:\n%s", m, logs.String())
			}
		case ProviderCUDA:
		default:
			t.Fatalf("%s: provider %q", m, p)
		}
		rows, want := onnxTestRows(t)
		got := make([]float32, 4)
		if err := x.Score(time.Time{}, rows[:4*features.Width], got); err != nil {
			t.Fatal(err)
		}
		if err := onnxCheckParity("tiny", got, want[:4], 1e-5); err != nil {
			t.Fatal(err)
		}
	}
}

// TestONNXOnCUDA is the GPU check (docs/gpu.md). It runs only where
// CTR_TEST_CUDA=1: a machine with a GPU whose $ORT_LIB has the CUDA provider
// libraries beside it. Each bundled ONNX model and the tiny model in both
// input forms must load on the CUDA provider, not fall back to the CPU
// (LoadONNX checks each one's parity sample on the provider it chose), and
// score the same rows within 1e-5 of the CPU provider at every bucket size.
func TestONNXOnCUDA(t *testing.T) {
	if os.Getenv("CTR_TEST_CUDA") != "1" {
		t.Skip("GPU check: set CTR_TEST_CUDA=1 on a machine with a GPU and the CUDA provider (docs/gpu.md)")
	}
	for _, m := range []string{onnxTinyManifest, onnxTinyRowsManifest,
		"../configs/models/mlp.manifest.json", "../configs/models/mlp_int8.manifest.json"} {
		var logs strings.Builder
		log := slog.New(slog.NewTextHandler(&logs, nil))
		gpu := onnxTestLoad(t, m, ONNXOptions{Provider: ProviderCUDA, MaxBatch: 64, Log: log})
		if p := gpu.Provider(); p != ProviderCUDA {
			t.Fatalf("%s: provider %q, want cuda; log:\n%s", m, p, logs.String())
		}
		cpu := onnxTestLoad(t, m, ONNXOptions{Provider: ProviderCPU, MaxBatch: 64})
		rows, _ := onnxTestRows(t)
		for _, n := range []int{1, 3, 8, 33, 64} {
			in := rows[:n*features.Width]
			a, b := make([]float32, n), make([]float32, n)
			if err := gpu.Score(time.Time{}, in, a); err != nil {
				t.Fatalf("%s: cuda, %d rows: %v", m, n, err)
			}
			if err := cpu.Score(time.Time{}, in, b); err != nil {
				t.Fatalf("%s: cpu, %d rows: %v", m, n, err)
			}
			if err := onnxCheckParity(m, a, b, 1e-5); err != nil {
				t.Errorf("%s, %d rows: cuda against cpu: %v", m, n, err)
			}
		}
		t.Logf("%s: cuda, %d rows at batch 64 estimated %v", m, 64, gpu.PredictLatency(64))
	}
}

// Once a library has loaded, its path answers from the process's cache (the
// file may be replaced or removed under a running bidder: a model reload
// does not need it again), while a path with no library is unavailable
// even then. Run in a child process: the test process may have loaded
// another path already, and one process loads one library.
func TestONNXAvailableCachesTheLoadedPath(t *testing.T) {
	if os.Getenv("CTR_ONNX_CACHE_CHILD") == "" {
		lib := onnxTestLib(t)
		data, err := os.ReadFile(lib)
		if err != nil {
			t.Fatal(err)
		}
		copyPath := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
		if err := os.WriteFile(copyPath, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestONNXAvailableCachesTheLoadedPath$", "-test.v")
		cmd.Env = append(os.Environ(), "CTR_ONNX_CACHE_CHILD="+copyPath)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	lib := os.Getenv("CTR_ONNX_CACHE_CHILD")
	if err := ONNXAvailable(lib); err != nil {
		t.Fatalf("first load of %s: %v", lib, err)
	}
	if err := os.Remove(lib); err != nil {
		t.Fatal(err)
	}
	if err := ONNXAvailable(lib); err != nil {
		t.Errorf("the loaded path, its file removed: %v, want available (cached)", err)
	}
	missing := filepath.Join(filepath.Dir(lib), "none", "libonnxruntime.so.1")
	if err := ONNXAvailable(missing); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a path with no library, another loaded: %v, want ErrUnavailable", err)
	}
	if err := ONNXAvailable(lib); err != nil {
		t.Errorf("the loaded path again after a missing one: %v", err)
	}
}
