package main

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

func TestWritesStatsAndKeepsTheManifest(t *testing.T) {
	dir := t.TempDir()
	stride := features.Width + 2
	var buf []byte
	for r := 0; r < 500; r++ {
		for j := 0; j < stride; j++ {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32((r*7+j)%13)))
		}
	}
	rows := filepath.Join(dir, "rows.f32")
	os.WriteFile(rows, buf, 0o644)
	man := filepath.Join(dir, "m.manifest.json")
	os.WriteFile(man, []byte(`{"name":"m","kind":"gbdt","file":"m.txt","schema_version":"v1","width":40,"metrics":{"auc":0.7}}`), 0o644)
	if err := run(rows, stride, 1000, 5, []string{man}); err != nil {
		t.Fatal(err)
	}
	m, err := ctr.LoadManifest(man)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "m" || m.Metrics["auc"] != 0.7 {
		t.Fatalf("other fields changed: %+v", m)
	}
	fs := m.FeatureStats
	if fs == nil || fs.Rows != 500 || len(fs.Slots) != features.Width {
		t.Fatalf("stats %+v", fs)
	}
	if fs.Slots[0].Name != "country" || fs.Slots[0].Group != "geo" || fs.Slots[features.ImpWidth].Group != "ad" {
		t.Fatalf("names/groups: %+v %+v", fs.Slots[0], fs.Slots[features.ImpWidth])
	}
	if _, err := ctr.NewDrift(fs, features.Width); err != nil {
		t.Fatal(err)
	}
}
