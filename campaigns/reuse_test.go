package campaigns

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sameSnapshot fails unless a and b hold the same campaigns, creatives and
// index (their load times aside).
func sameSnapshot(t *testing.T, what string, a, b *Snapshot) {
	t.Helper()
	ac, bc := *a, *b
	ac.Loaded, ac.Reused = bc.Loaded, bc.Reused
	if !reflect.DeepEqual(&ac, &bc) {
		for i := range min(len(a.Campaigns), len(b.Campaigns)) {
			if !reflect.DeepEqual(a.Campaigns[i], b.Campaigns[i]) {
				t.Fatalf("%s: campaign %d differs: %+v\nfrom a fresh load: %+v", what, i, a.Campaigns[i], b.Campaigns[i])
			}
		}
		t.Fatalf("%s: the snapshot differs from a fresh load of the directory (%d and %d campaigns)", what, len(a.Campaigns), len(b.Campaigns))
	}
}

// A reload copies the campaigns of unchanged files from the running
// snapshot instead of parsing them again: the result is what a fresh load
// of the directory gives, whatever changed (an edit, a file added, one
// removed so that every later index moves, a file renamed, a file's id
// changed), and the running snapshot a request may still hold
// keeps its own campaigns and indexes.
func TestReloadCopiesUnchangedCampaigns(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		c := baseConfig(fmt.Sprintf("c%02d", i))
		if i%3 == 0 {
			c.Creatives = append(c.Creatives, c.Creatives[0])
			c.Creatives[1].ID += "2"
			c.Creatives[1].Sizes = []string{"728x90"}
		}
		writeConfig(t, dir, c)
	}
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	edited := baseConfig("c05")
	edited.MaxBidCPM = "2.5"
	edited.Targeting.Countries = []string{"FRA"}
	for _, step := range []struct {
		what   string
		reused int // campaigns copied
		do     func()
	}{
		{"nothing changed", 20, func() {}},
		{"one file edited", 19, func() { writeConfig(t, dir, edited) }},
		{"one file added", 20, func() { writeConfig(t, dir, baseConfig("c10a")) }},
		{"the first file removed", 20, func() { os.Remove(filepath.Join(dir, "c00.yaml")) }},
		{"a file renamed", 19, func() { os.Rename(filepath.Join(dir, "c07.yaml"), filepath.Join(dir, "z07.yaml")) }},
		{"a file's id changed", 19, func() {
			c := baseConfig("c08")
			c.ID, c.Creatives[0].ID = "c08b", "c08b-c"
			data, _ := MarshalConfig(c)
			writeAtomic(t, filepath.Join(dir, "c08.yaml"), data)
		}},
	} {
		old := st.Current()
		oldIdx := make([]int, len(old.Creatives))
		for i, cr := range old.Creatives {
			oldIdx[i] = cr.Index
		}
		step.do()
		if err := st.Reload(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		fresh, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		cur := st.Current()
		sameSnapshot(t, step.what, cur, fresh)
		if cur.Reused != step.reused || fresh.Reused != 0 {
			t.Fatalf("%s: %d campaigns copied, want %d (a fresh load: %d, want 0)", step.what, cur.Reused, step.reused, fresh.Reused)
		}
		for i, c := range cur.Campaigns {
			if c.Index != i || c.Creatives[0].Campaign != c {
				t.Fatalf("%s: campaign %d has index %d, its creative points at %p, not %p", step.what, i, c.Index, c.Creatives[0].Campaign, c)
			}
			if prev := old.Campaign(c.ID); prev != nil && (prev == c || prev.Creatives[0] == c.Creatives[0]) {
				t.Fatalf("%s: campaign %s is the running snapshot's own object, not a copy", step.what, c.ID)
			}
		}
		for i, c := range old.Campaigns {
			if c.Index != i {
				t.Fatalf("%s: the running snapshot's campaign %d now has index %d", step.what, i, c.Index)
			}
		}
		for i, cr := range old.Creatives {
			if cr.Index != oldIdx[i] {
				t.Fatalf("%s: the running snapshot's creative %d now has index %d", step.what, i, cr.Index)
			}
		}
	}
	if c := st.Current().Campaign("c05"); c == nil || c.MaxBidMicros != 2_500_000 || len(c.Targeting.Countries) != 1 {
		t.Fatalf("the edit is not in the reloaded snapshot: %+v", c)
	}
}

// A file added under an id an unchanged (copied) campaign has is refused
// naming both files, as on a fresh load; the running set stays.
func TestReloadRefusesAnIDACopiedCampaignHas(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, baseConfig("b1"))
	writeConfig(t, dir, baseConfig("b2"))
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	dup := baseConfig("b1")
	data, _ := MarshalConfig(dup)
	writeAtomic(t, filepath.Join(dir, "c-copy.yaml"), data)
	err = st.Reload()
	if err == nil || !strings.Contains(err.Error(), "already defined in "+filepath.Join(dir, "b1.yaml")) {
		t.Fatalf("a second b1: %v, want it refused as already defined in b1.yaml", err)
	}
	if n := st.Current().Len(); n != 2 {
		t.Fatalf("%d campaigns run after the refused reload, want the 2 before", n)
	}
}
