package bidder

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// retrainFixture writes a served model (the tiny test model, whose deep part
// is live), a row log of n shown bids and their event log. A bid's click
// probability is trainCTR (the first 80% of bids) or heldCTR (the rest)
// times 4 when its publisher slot is even, and 0.25 times otherwise: a
// signal the served model does not have.
func retrainFixture(t *testing.T, n int, trainCTR, heldCTR float64) (dir, served string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range []string{"mlp_tiny.manifest.json", "mlp_tiny.onnx", "mlp_tiny.parity.json"} {
		b, err := os.ReadFile(filepath.Join("../ctr/testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var par struct{ Inputs [][]float32 }
	b, err := os.ReadFile(filepath.Join(dir, "mlp_tiny.parity.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &par); err != nil {
		t.Fatal(err)
	}
	cfg := rowLogTestConfig(dir)
	rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, func(ctr.Scored) string { return "mlp_tiny" }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	w := &rowLogWriter{path: cfg.Path, max: cfg.MaxBytes, backups: cfg.Backups, header: rl.header()}
	if err := w.open(); err != nil {
		t.Fatal(err)
	}
	ev, err := os.Create(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	k := <-rl.free
	for i := range n {
		row := append([]float32(nil), par.Inputs[i%len(par.Inputs)]...)
		pub := rng.IntN(40)
		row[5] = float32(pub)
		at := start.Add(time.Duration(i) * time.Millisecond)
		auction := fmt.Sprintf("a-%d", i)
		rl.slots[k] = rl.appendRecord(rl.slots[k][:0], at, 0.05, []byte(auction), []byte("1"), "c", "cr", ctr.ScoredNone, row, false, false)
		rl.write(w, k) // returns the slot to free
		k = <-rl.free
		ctr := trainCTR
		if i >= n*8/10 {
			ctr = heldCTR
		}
		if pub%2 == 0 {
			ctr *= 4
		} else {
			ctr *= 0.25
		}
		evAt := start.Add(time.Duration(n)*time.Millisecond + time.Minute).Format(time.RFC3339Nano)
		fmt.Fprintf(ev, `{"time":%q,"kind":"imp","auction":%q,"imp":"1","campaign":"c","creative":"cr"}`+"\n", evAt, auction)
		if rng.Float64() < ctr {
			fmt.Fprintf(ev, `{"time":%q,"kind":"click","auction":%q,"imp":"1","campaign":"c","creative":"cr"}`+"\n", evAt, auction)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "mlp_tiny.manifest.json")
}

func retrainRun(t *testing.T, dir, served string) map[string]any {
	t.Helper()
	report := filepath.Join(dir, "report.json")
	cmd := exec.Command("/usr/bin/python3", "../ctr/train/retrain.py", "--rows", filepath.Join(dir, "rows.bin"),
		"--events", filepath.Join(dir, "events.jsonl"), "--served", served, "--settle", "0", "--report", report)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("retrain.py: %v\n%s", err, out)
	}
	var r map[string]any
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	t.Log(r["decision"])
	return r
}

func retrainNeedsPython(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, onnx, scipy").Run(); err != nil {
		t.Skip("no /usr/bin/python3 with numpy, onnx and scipy")
	}
}

// retrain.py promotes a candidate trained on the row log joined with the
// events when it beats the served model's held-out log loss with
// calibration within 5%: the served manifest is replaced by one naming
// the new files, which load with their parity sample checked (what the
// bidder's hot reload does).
func TestRetrainPromotesBetterModel(t *testing.T) {
	retrainNeedsPython(t)
	dir, served := retrainFixture(t, 20000, 0.05, 0.05)
	r := retrainRun(t, dir, served)
	name, _ := r["promoted"].(string)
	if !strings.HasPrefix(name, "mlp_tiny-r") {
		t.Fatalf("not promoted: %v", r["decision"])
	}
	m, err := ctr.LoadManifest(served)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != name || m.File != name+".onnx" || m.CheckSchema(features.SchemaVersion, features.Width) != nil {
		t.Fatalf("served manifest now names %q file %q", m.Name, m.File)
	}
	lib := cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
	if ctr.ONNXAvailable(lib) != nil {
		t.Log("no ONNX Runtime: the promoted model's parity is not checked")
		return
	}
	x, err := ctr.LoadONNX(served, ctr.ONNXOptions{LibraryPath: lib, Provider: ctr.ProviderCPU,
		SchemaVersion: features.SchemaVersion, Width: features.Width})
	if err != nil {
		t.Fatalf("promoted model refused at load: %v", err)
	}
	x.Close()
}

// When the most recent held-out slice's click rate fell to a fifth of the
// training rows', the candidate is miscalibrated there (and worse on log
// loss): it is not promoted, and the served manifest is left as it was.
func TestRetrainKeepsServedModelWhenCandidateMiscalibrated(t *testing.T) {
	retrainNeedsPython(t)
	dir, served := retrainFixture(t, 10000, 0.10, 0.02)
	before, err := os.ReadFile(served)
	if err != nil {
		t.Fatal(err)
	}
	r := retrainRun(t, dir, served)
	if _, ok := r["promoted"]; ok || !strings.HasPrefix(fmt.Sprint(r["decision"]), "keep") {
		t.Fatalf("decision %v", r["decision"])
	}
	after, err := os.ReadFile(served)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatal("served manifest changed without a promotion")
	}
}

// retrain.py's fits on a synthetic model (ctr/train/retrain_test.py): the
// per-table rescale turns a table whose effect reversed back around from
// about 200 clicks, and beats the per-weight refit there. And the training
// pipeline's data checks on small files (ctr/train/pipeline_test.py: the
// join's keys, torn row logs, non-finite rows, the held-out split, the
// promoted manifest).
func TestRetrainFitsPython(t *testing.T) {
	retrainNeedsPython(t)
	cmd := exec.Command("/usr/bin/python3", "-m", "unittest", "-v", "retrain_test", "pipeline_test")
	cmd.Dir = "../ctr/train"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ctr/train/retrain_test.py: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "test_rescale_reverses_a_flipped_table") ||
		!strings.Contains(string(out), "test_join_keys_on_campaign_and_creative") || !strings.Contains(string(out), "\nOK") {
		t.Fatalf("rescale test did not run:\n%s", out)
	}
}
