// Command featurestats writes the training distribution of every feature
// slot into model manifests ("feature_stats"), so the bidder can report
// feature drift (PSI) of served traffic against training.
//
//	featurestats -rows rows.f32 [-stride 42] [-max-rows 200000] [-bins 10] MANIFEST...
//
// rows.f32 holds little-endian float32 records of -stride values whose first
// features.Width are the feature row (the layout features/cmd/featurize
// writes: features, label, true probability).
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

func main() {
	rowsPath := flag.String("rows", "", "little-endian float32 records (required)")
	stride := flag.Int("stride", features.Width+2, "float32 values per record; the first features.Width are the row")
	maxRows := flag.Int("max-rows", 200000, "use at most this many records (the first ones)")
	bins := flag.Int("bins", 10, "quantile bins per slot")
	flag.Parse()
	if *rowsPath == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: featurestats -rows FILE [-stride N] MANIFEST...")
		os.Exit(2)
	}
	if err := run(*rowsPath, *stride, *maxRows, *bins, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "featurestats:", err)
		os.Exit(1)
	}
}

func run(rowsPath string, stride, maxRows, bins int, manifests []string) error {
	if stride < features.Width {
		return fmt.Errorf("-stride %d is below the feature width %d", stride, features.Width)
	}
	rows, err := readRows(rowsPath, stride, maxRows)
	if err != nil {
		return err
	}
	names := make([]string, features.Width)
	groups := make([]string, features.Width)
	for i, s := range features.Slots {
		names[i], groups[i] = s.Name, group(i, s)
	}
	fs, err := ctr.ComputeFeatureStats(rows, features.Width, bins, names, groups)
	if err != nil {
		return err
	}
	for _, m := range manifests {
		if err := setStats(m, fs); err != nil {
			return err
		}
		fmt.Printf("%s: feature_stats over %d rows\n", m, fs.Rows)
	}
	return nil
}

func readRows(path string, stride, maxRows int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec := make([]byte, 4*stride)
	var rows []float32
	for n := 0; n < maxRows; n++ {
		if _, err := io.ReadFull(f, rec); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, n, err)
		}
		for j := 0; j < features.Width; j++ {
			rows = append(rows, math.Float32frombits(binary.LittleEndian.Uint32(rec[4*j:])))
		}
	}
	return rows, nil
}

// group names the feature group of slot i, for drift per group.
func group(i int, s features.Slot) string {
	switch {
	case s.User:
		return "user"
	case i >= features.ImpWidth:
		return "ad"
	}
	switch s.Name {
	case "country", "region":
		return "geo"
	case "os", "make", "language", "device_type", "conn_type", "limit_ad_tracking":
		return "device"
	case "publisher", "inventory", "category", "tagid", "is_app":
		return "inventory"
	case "hour_local", "day_of_week_local":
		return "time"
	}
	return "imp"
}

// setStats rewrites a manifest with feature_stats set, keeping every other
// field as it was.
func setStats(path string, fs *ctr.FeatureStats) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	raw, err := json.Marshal(fs)
	if err != nil {
		return err
	}
	m["feature_stats"] = raw
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}
