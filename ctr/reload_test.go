package ctr

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
)

func TestReloadKeepsOldModelUntilInFlightCallsFinish(t *testing.T) {
	models := map[string]*batchFake{
		"a": {width: 2},
		"b": {width: 2},
	}
	h := NewHolder(func(path string) (Scorer, error) {
		if m, ok := models[path]; ok {
			return m, nil
		}
		return nil, ErrBadModel
	}, nil)
	defer h.Close()
	out := make([]float32, 1)
	if err := h.Score(time.Time{}, make([]float32, 2), out); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("empty holder: %v", err)
	}
	if err := h.Reload("a"); err != nil {
		t.Fatal(err)
	}
	// Published (and warmed): from now on a's calls block until released.
	models["a"].gate, models["a"].entered = make(chan struct{}), make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() { errc <- h.Score(time.Time{}, []float32{1, 2}, make([]float32, 1)) }()
	<-models["a"].entered // a call is in flight on a
	if err := h.Reload("bad"); !errors.Is(err, ErrBadModel) || h.Current() != models["a"] {
		t.Fatalf("bad model: %v, current %v", err, h.Current())
	}
	if err := h.Reload("b"); err != nil {
		t.Fatal(err)
	}
	if err := h.Score(time.Time{}, []float32{1, 2}, out); err != nil || h.Current() != models["b"] {
		t.Fatalf("after swap: %v", err)
	}
	if models["a"].closed.Load() {
		t.Fatal("old model closed while a call was in flight")
	}
	close(models["a"].gate)
	if err := <-errc; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
	batchWaitFor(t, "old model closed", models["a"].closed.Load)
	st := h.Stats()
	if st.Reloads != 2 || st.Refused != 1 || st.Model != "fake" || st.Manifest != "b" {
		t.Fatalf("stats %+v", st)
	}
	h.Close()
	batchWaitFor(t, "model closed on holder close", models["b"].closed.Load)
	if err := h.Score(time.Time{}, []float32{1, 2}, out); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("closed holder: %v", err)
	}
}

// reloadTestTwoModels writes two valid copies of the tiny model (as a
// different version would be) and returns their manifests.
func reloadTestTwoModels(t *testing.T) (a, b string) {
	a = onnxTestCopy(t, nil, nil)
	b = onnxTestCopy(t, func(s string) string {
		return strings.Replace(s, `"name": "mlp_tiny"`, `"name": "mlp_tiny_b"`, 1)
	}, nil)
	return a, b
}

func TestReloadSwapWhileScoring(t *testing.T) {
	lib := onnxTestLib(t)
	h := NewHolder(ONNXLoader(ONNXOptions{LibraryPath: lib, Provider: ProviderCPU, MaxBatch: 16},
		BatchOptions{MaxWait: 100 * time.Microsecond}), nil)
	defer h.Close()
	a, b := reloadTestTwoModels(t)
	if err := h.Reload(a); err != nil {
		t.Fatal(err)
	}
	rows, want := onnxTestRows(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var scored, bad atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, 2)
			for i := g; ; i = (i + 1) % (len(want) - 1) {
				select {
				case <-stop:
					return
				default:
				}
				err := h.Score(time.Now().Add(time.Second), rows[i*features.Width:(i+2)*features.Width], out)
				if err != nil || onnxCheckParity("tiny", out, want[i:i+2], 1e-5) != nil {
					bad.Add(1)
				}
				scored.Add(1)
			}
		}()
	}
	for i := range 6 {
		m := a
		if i%2 == 0 {
			m = b
		}
		if err := h.Reload(m); err != nil {
			t.Fatal(err)
		}
		n := scored.Load()
		batchWaitFor(t, "scoring continues", func() bool { return scored.Load() > n+20 })
	}
	if err := h.Reload(onnxTestCopy(t, nil, func(b []byte) []byte { return []byte(onnxTestShiftParity(t, b)) })); !errors.Is(err, ErrBadModel) {
		t.Fatalf("bad parity: %v", err)
	}
	n := scored.Load()
	batchWaitFor(t, "scoring continues after a refusal", func() bool { return scored.Load() > n+20 })
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d calls failed or wrong during reloads", bad.Load(), scored.Load())
	}
	st := h.Stats()
	if st.Reloads != 7 || st.Refused != 1 || st.Model != "mlp_tiny" || st.Provider != ProviderCPU || st.Batch == nil {
		t.Fatalf("stats %+v", st)
	}
}

func TestReloadWatchPicksUpChangedManifest(t *testing.T) {
	lib := onnxTestLib(t)
	h := NewHolder(ONNXLoader(ONNXOptions{LibraryPath: lib, Provider: ProviderCPU, MaxBatch: 4}, BatchOptions{}), nil)
	defer h.Close()
	path := onnxTestCopy(t, nil, nil)
	if err := h.Reload(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Watch(ctx, 5*time.Millisecond)

	edit := func(from, to string, mtime time.Time) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, mtime, mtime) // a distinct mtime even on coarse clocks
	}
	edit(`"name": "mlp_tiny"`, `"name": "mlp_tiny_v2"`, time.Now().Add(time.Hour))
	batchWaitFor(t, "watch reload", func() bool { return h.Name() == "mlp_tiny_v2" })

	// A broken model file is refused once and the old model keeps serving.
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "mlp_tiny.onnx"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	batchWaitFor(t, "refusal", func() bool { return h.Stats().Refused == 1 })
	out := make([]float32, 1)
	if err := h.Score(time.Now().Add(time.Second), make([]float32, features.Width), out); err != nil || h.Name() != "mlp_tiny_v2" {
		t.Fatalf("after refusal: %v, model %s", err, h.Name())
	}
}

// reloadWarmFake records the batch sizes it is scored at and how many calls
// came while its holder did not serve it yet.
type reloadWarmFake struct {
	batchFake
	h             *Holder
	maxBatch      int
	sizes         map[int]int
	beforePublish int
}

func (f *reloadWarmFake) MaxBatch() int { return f.maxBatch }

func (f *reloadWarmFake) Score(deadline time.Time, rows, out []float32) error {
	if f.h.Current() != Scorer(f) {
		f.beforePublish++
	}
	f.sizes[len(out)]++
	return f.batchFake.Score(deadline, rows, out)
}

// A loaded model is run at every batch size it will serve before it is
// published, on load and on reload; a model that fails its warm-up is
// refused and the old one keeps serving.
func TestReloadWarmsBeforePublishing(t *testing.T) {
	models := map[string]*reloadWarmFake{}
	h := NewHolder(func(path string) (Scorer, error) { return models[path], nil }, nil)
	defer h.Close()
	for _, name := range []string{"a", "b", "broken"} {
		models[name] = &reloadWarmFake{batchFake: batchFake{width: 3}, h: h, maxBatch: 24, sizes: map[int]int{}}
	}
	models["broken"].err = errors.New("boom")
	for _, name := range []string{"a", "b"} {
		if err := h.Reload(name); err != nil {
			t.Fatal(err)
		}
		f := models[name]
		want := map[int]int{1: warmRounds, 2: warmRounds, 4: warmRounds, 8: warmRounds, 16: warmRounds, 24: warmRounds}
		if !maps.Equal(f.sizes, want) || f.beforePublish != 6*warmRounds {
			t.Fatalf("%s: scored at %v (%d calls before publishing), want %v, all before", name, f.sizes, f.beforePublish, want)
		}
	}
	if err := h.Reload("broken"); !errors.Is(err, ErrBadModel) || h.Current() != Scorer(models["b"]) {
		t.Fatalf("broken warm-up: %v, serving %v", err, h.Current())
	}
	batchWaitFor(t, "refused model closed", models["broken"].closed.Load)
	if st := h.Stats(); st.Reloads != 2 || st.Refused != 1 || st.WarmRuns != 2*6*warmRounds+1 {
		t.Fatalf("stats %+v", st)
	}
}

// The ONNX loader's model is warmed through its batcher: every run size up
// to the batcher's MaxBatch has run before the first caller's request.
func TestReloadWarmsONNXBatcher(t *testing.T) {
	lib := onnxTestLib(t)
	h := NewHolder(ONNXLoader(ONNXOptions{LibraryPath: lib, Provider: ProviderCPU, MaxBatch: 64}, BatchOptions{MaxBatch: 16}), nil)
	defer h.Close()
	if err := h.Reload(onnxTinyManifest); err != nil {
		t.Fatal(err)
	}
	st := h.Stats()
	if st.Batch == nil || st.WarmRuns != 5*warmRounds || st.Batch.Requests != 5*warmRounds {
		t.Fatalf("stats %+v batch %+v", st, st.Batch)
	}
	for i := 0; i <= 4; i++ {
		if st.Batch.BatchSizes[i] != warmRounds {
			t.Errorf("runs of up to %d rows: %d, want %d", BatchSizeBucket(i), st.Batch.BatchSizes[i], warmRounds)
		}
	}
	if x := h.Current().(*reloadBatched).x; x.WarmRuns() != 7*(onnxWarmRuns+onnxWarmTimed) {
		t.Errorf("session runs at load %d, want every bucket up to 64", x.WarmRuns())
	}
}

// The watcher parses a manifest again only when the manifest itself
// changed; a change of a file it names is still seen (by its stat).
func TestWatchSignatureParsesManifestOnlyWhenItChanges(t *testing.T) {
	path := onnxTestCopy(t, nil, nil)
	var c sigCache
	first := c.signature(path)
	for range 5 {
		if c.signature(path) != first {
			t.Fatal("signature changed with nothing changed")
		}
	}
	if c.parse != 1 {
		t.Fatalf("manifest parsed %d times for 6 unchanged ticks, want 1", c.parse)
	}
	model := filepath.Join(filepath.Dir(path), "mlp_tiny.onnx")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(model, later, later); err != nil {
		t.Fatal(err)
	}
	if c.signature(path) == first || c.parse != 1 {
		t.Fatalf("a changed model file: parse count %d, signature unchanged %v", c.parse, c.signature(path) == first)
	}
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if c.signature(path); c.parse != 2 {
		t.Fatalf("a changed manifest was not parsed again (%d)", c.parse)
	}
}

// A GBDT's wide part is watched with the model: a wide table copied after
// its manifest (refused until then: its sha256 differs) is picked up when
// it lands.
func TestWatchSignatureSeesWidePart(t *testing.T) {
	path := gbdtWriteWideFixture(t, "w.f32.gz", gbdtWideBytes(gbdtWideTable(), true), nil)
	var c sigCache
	first := c.signature(path)
	if first != reloadSignature(path) {
		t.Fatalf("watcher signature %q, reloadSignature %q", first, reloadSignature(path))
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(filepath.Dir(path), "w.f32.gz"), later, later); err != nil {
		t.Fatal(err)
	}
	if c.signature(path) == first || reloadSignature(path) == first {
		t.Fatal("a changed wide table left the signature unchanged")
	}
}
