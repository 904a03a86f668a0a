package campaigns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A key written many times in one mapping is one problem per repeat, found
// in one pass. yaml.v3 compares every pair of a mapping's keys and makes a
// message for every equal pair: 4,000 lines of "zz: 1" (24 KB) made 8
// million messages, 2.8 GB and 82 s in -check-config, and a SIGHUP or the
// watch loading such a file ran a bidder out of memory (an outside audit:
// dead 15 s after the reload, under a 3 GB limit). Each form a key may take
// is checked: block, explicit ("? zz") and flow ({zz, zz}).
func TestLoadDirRepeatedKeysStaySmall(t *testing.T) {
	const n = 1500
	for _, c := range []struct{ name, tail string }{
		{"block", strings.Repeat("zz: 1\n", n)},
		{"explicit", strings.Repeat("? zz\n", n)},
		{"flow", "targeting: {" + strings.Repeat("zz, ", n-1) + "zz}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConfig(t, dir, baseConfig("rep"))
			name := filepath.Join(dir, "rep.yaml")
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			writeAtomic(t, name, append(data, c.tail...))
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			_, err = LoadDir(dir)
			runtime.ReadMemStats(&m1)
			ps := Problems(err)
			if len(ps) != maxListed+1 {
				t.Fatalf("%d problems, want %d: %v", len(ps), maxListed+1, ps)
			}
			if !strings.Contains(ps[0].Error(), `mapping key "zz" already defined at line`) {
				t.Errorf("first problem %q", ps[0].Error())
			}
			if want := fmt.Sprintf("%d more problems not listed", n-1-maxListed); ps[maxListed].Reason != want {
				t.Errorf("last problem %q, want %q (one problem per repeat)", ps[maxListed].Reason, want)
			}
			if a := m1.TotalAlloc - m0.TotalAlloc; a > 64<<20 {
				t.Errorf("loading allocated %d MB", a>>20)
			}
		})
	}
}

// A mapping with more keys than any campaign field has is refused before
// yaml.v3 decodes it: its check of every pair of keys is quadratic (20,000
// distinct unknown keys, 190 KB, took 6 s; 80,000 took 102 s of a core
// the bid path shares, a reload meanwhile holding every later one back).
func TestLoadDirRefusesHugeMappings(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, baseConfig("wide"))
	name := filepath.Join(dir, "wide.yaml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.Write(data)
	b.WriteString("targeting:\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  k%d: 1\n", i)
	}
	writeAtomic(t, name, []byte(b.String()))
	_, err = LoadDir(dir)
	ps := Problems(err)
	if len(ps) != 1 || ps[0].File != name || ps[0].Path != fmt.Sprintf("targeting.k%d", maxMappingKeys) ||
		!strings.Contains(ps[0].Reason, fmt.Sprintf("5000 keys in one mapping, more than the %d a campaign's may have", maxMappingKeys)) {
		t.Fatalf("problems %v", err)
	}
	// A file of ordinary size with many separators (a long list) still loads.
	c := baseConfig("pubs")
	for i := range 5000 {
		c.Targeting.Publishers = append(c.Targeting.Publishers, fmt.Sprintf("p%d", i))
	}
	writeConfig(t, dir, c)
	os.Remove(name)
	s, err := LoadDir(dir)
	if err != nil || len(s.Campaigns) != 1 {
		t.Fatalf("a long list: %v", err)
	}
}
