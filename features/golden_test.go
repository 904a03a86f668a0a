package features

import (
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "write testdata/golden_<SchemaVersion>.json if it does not exist yet")

// golden pins the schema: slot table and full rows for fixed inputs. A change
// to any slot shows up here; the fix is to bump SchemaVersion (old models
// are then refused at load) and write the new golden file with -update.
type golden struct {
	SchemaVersion string               `json:"schema_version"`
	Width         int                  `json:"width"`
	Slots         []Slot               `json:"slots"`
	Rows          map[string][]float32 `json:"rows"`
}

func goldenRows() map[string][]float32 {
	rows := map[string][]float32{}
	banner := NewAd("camp-1", "cr-300x250", "adv-1.example", 1, 300, 250)
	video := NewAd("camp-2", "cr-video", "adv-2.example", 2, 0, 0)
	for name, req := range map[string]func() []float32{
		"site_banner_user":    func() []float32 { r := extract(siteBannerRequest(), true); SetAd(r[:], &banner); return r[:] },
		"site_banner_no_user": func() []float32 { r := extract(siteBannerRequest(), false); SetAd(r[:], &banner); return r[:] },
		"app_video":           func() []float32 { r := extract(appVideoRequest(), true); SetAd(r[:], &video); return r[:] },
	} {
		rows[name] = req()
	}
	return rows
}

func TestGoldenSchema(t *testing.T) {
	path := filepath.Join("testdata", "golden_"+SchemaVersion+".json")
	cur := golden{SchemaVersion: SchemaVersion, Width: Width, Slots: Slots[:], Rows: goldenRows()}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && *update {
		out, _ := json.MarshalIndent(cur, "", " ")
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		return
	}
	if err != nil {
		t.Fatalf("%v: a new SchemaVersion needs its golden file: go test ./features -run Golden -update", err)
	}
	var want golden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	const hint = "the feature schema changed without a SchemaVersion bump: bump it, then go test ./features -run Golden -update"
	if want.SchemaVersion != SchemaVersion || want.Width != Width || len(want.Slots) != Width {
		t.Fatalf("%s: golden has %s width %d, code has %s width %d", hint, want.SchemaVersion, want.Width, SchemaVersion, Width)
	}
	for i, s := range want.Slots {
		if s != Slots[i] {
			t.Errorf("%s: slot %d is %+v, golden %+v", hint, i, Slots[i], s)
		}
	}
	if len(want.Rows) != len(cur.Rows) {
		t.Errorf("golden has %d rows, test makes %d", len(want.Rows), len(cur.Rows))
	}
	for name, w := range want.Rows {
		g := cur.Rows[name]
		if len(g) != len(w) {
			t.Errorf("%s: row %s has %d values, golden %d", hint, name, len(g), len(w))
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("%s: row %s slot %d (%s) = %v, golden %v", hint, name, i, Slots[i].Name, g[i], w[i])
			}
		}
	}
}
