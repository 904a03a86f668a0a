// Command servescore scores held-out feature rows with the served model files
// through the Go serving path (ctr.LoadGBDT, ctr.LoadONNX on the CPU
// provider), so the evaluation report measures what the bidder runs, not
// only what the training framework predicted.
//
//	servescore -rows rows.f32 [-stride 42] [-from N | -heldout 0.25] -out DIR MANIFEST...
//
// rows.f32 holds little-endian float32 records of -stride values whose first
// features.Width are the feature row (features/cmd/featurize's layout).
// Records from -from on (or the last int(n x -heldout), the held-out part
// of ctr/train/gbdt_train.py) are scored; each manifest's predictions are written
// to DIR/KIND.pred.f32 (little-endian float32, one per record). A model that
// cannot load here (no ONNX Runtime library, a build without cgo) is reported
// and skipped, not fatal.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

func main() {
	rowsPath := flag.String("rows", "", "little-endian float32 records (required)")
	stride := flag.Int("stride", features.Width+2, "float32 values per record; the first features.Width are the row")
	from := flag.Int("from", 0, "first record to score")
	heldout := flag.Float64("heldout", 0, "score the last int(n x heldout) records instead of -from (the training scripts' split)")
	out := flag.String("out", "", "output directory (required)")
	flag.Parse()
	if *rowsPath == "" || *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: servescore -rows FILE [-stride N] [-from N] -out DIR MANIFEST...")
		os.Exit(2)
	}
	rows, err := readRows(*rowsPath, *stride, *from, *heldout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "servescore:", err)
		os.Exit(1)
	}
	for _, m := range flag.Args() {
		if err := scoreOne(m, rows, *out); err != nil {
			fmt.Fprintf(os.Stderr, "servescore: %s skipped: %v\n", m, err)
		}
	}
}

// readRows returns the feature rows of records from on, row-major.
func readRows(path string, stride, from int, heldout float64) ([]float32, error) {
	if stride < features.Width {
		return nil, fmt.Errorf("-stride %d is below the feature width %d", stride, features.Width)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%(4*stride) != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not whole records of %d values", path, len(b), stride)
	}
	n := len(b) / (4 * stride)
	if heldout > 0 {
		from = n - int(float64(n)*heldout)
	}
	if from < 0 || from >= n {
		return nil, fmt.Errorf("-from %d outside %d records", from, n)
	}
	rows := make([]float32, 0, (n-from)*features.Width)
	for r := from; r < n; r++ {
		off := r * 4 * stride
		for j := 0; j < features.Width; j++ {
			rows = append(rows, math.Float32frombits(binary.LittleEndian.Uint32(b[off+4*j:])))
		}
	}
	return rows, nil
}

func load(manifest string) (ctr.Scorer, string, error) {
	m, err := ctr.LoadManifest(manifest)
	if err != nil {
		return nil, "", err
	}
	if m.Kind == "gbdt" {
		g, err := ctr.LoadGBDT(manifest, features.SchemaVersion, features.Width)
		return g, m.Kind, err
	}
	x, err := ctr.LoadONNX(manifest, ctr.ONNXOptions{Provider: ctr.ProviderCPU, SchemaVersion: features.SchemaVersion,
		Width: features.Width, MaxBatch: 512})
	return x, m.Kind, err
}

func scoreOne(manifest string, rows []float32, dir string) error {
	s, kind, err := load(manifest)
	if err != nil {
		return err
	}
	n := len(rows) / features.Width
	pred := make([]float32, n)
	const chunk = 512
	deadline := time.Now().Add(24 * time.Hour) // offline: no bid deadline
	for i := 0; i < n; i += chunk {
		j := min(i+chunk, n)
		if err := s.Score(deadline, rows[i*features.Width:j*features.Width], pred[i:j]); err != nil {
			return fmt.Errorf("rows %d-%d: %w", i, j, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, kind+".pred.f32")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	if err := binary.Write(bw, binary.LittleEndian, pred); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "servescore: %s (%s): %d rows -> %s\n", manifest, s.Name(), n, path)
	return f.Close()
}
