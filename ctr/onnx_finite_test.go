//go:build cgo

package ctr

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/features"
	"google.golang.org/protobuf/encoding/protowire"
)

// onnxPoisonWide writes a copy of the tiny wide_deep_ids model into a
// temporary directory with row `row` of its wide table set to v (and the
// manifest's sha256 to match), and returns the copy's manifest.
func onnxPoisonWide(t *testing.T, v float32, pick func(touched map[int32]bool, rows int) int) string {
	t.Helper()
	m, err := LoadManifest(onnxTinyManifest)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(m.Path(m.File))
	if err != nil {
		t.Fatal(err)
	}
	// The rows the parity sample reads: a weight none of them touches is
	// one the parity check cannot see.
	rows, _ := onnxTestRows(t)
	n := len(rows) / features.Width
	c := m.conv
	wide, deep, num := make([]int32, n*c.wideWidth()), make([]int32, n*c.deepWidth()), make([]float32, n*c.numWidth())
	c.put(rows, wide, deep, num)
	touched := map[int32]bool{}
	for _, id := range wide {
		touched[id] = true
	}
	row := pick(touched, int(m.WideDeepIDs.WideRows))
	graph, err := pbField(data, pbModelGraph)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	pbEach(graph, func(num protowire.Number, b []byte) error {
		if num != pbGraphInitializer || done {
			return nil
		}
		if tn, err := pbTensor(b); err == nil && tn.name == "wide" && len(tn.raw) == 4*int(m.WideDeepIDs.WideRows) {
			binary.LittleEndian.PutUint32(tn.raw[4*row:], math.Float32bits(v)) // raw aliases data
			done = true
		}
		return nil
	})
	if !done {
		t.Fatal("the tiny model has no dense float wide table: the test needs another way in")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	b, _ := os.ReadFile(onnxTinyManifest)
	json.Unmarshal(b, &raw)
	sum := sha256.Sum256(data)
	raw["file"], raw["sha256"] = "m.onnx", hex.EncodeToString(sum[:])
	raw["parity"], _ = filepath.Abs(m.Path(m.Parity))
	b, _ = json.Marshal(raw)
	p := filepath.Join(dir, "m.manifest.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A wide_deep_ids model whose weights hold a NaN or an infinity is refused
// at load, as a GBDT's wide part with one is (loadGBDTWide). The parity
// sample cannot see a weight its rows never read: such a model loaded and
// answered NaN (or, for +Inf, a pCTR of exactly 1: the campaign's max bid)
// for every request that read it (an outside audit: NaN at one campaign
// id's weight in configs/models/mlp.onnx, hot-reloaded into a bidder).
func TestONNXRefusesNonFiniteWeights(t *testing.T) {
	lib := onnxTestLib(t)
	untouched := func(touched map[int32]bool, rows int) int {
		for r := rows - 1; r >= 0; r-- {
			if !touched[int32(r)] {
				return r
			}
		}
		t.Fatal("the parity rows touch every weight")
		return 0
	}
	opts := ONNXOptions{LibraryPath: lib, Provider: ProviderCPU, SchemaVersion: features.SchemaVersion, Width: features.Width}
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		x, err := LoadONNX(onnxPoisonWide(t, v, untouched), opts)
		if err == nil {
			x.Close()
			t.Errorf("weight %v: loaded", v)
			continue
		}
		if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "not finite") {
			t.Errorf("weight %v: %v, want a refusal naming the non-finite weight", v, err)
		}
	}
	// The same copy with a finite weight there loads: the check is of the
	// values, not of the copy.
	x, err := LoadONNX(onnxPoisonWide(t, 0.5, untouched), opts)
	if err != nil {
		t.Fatalf("a finite weight: %v", err)
	}
	x.Close()
}
