//go:build !race

package ortb

import (
	"bytes"
	"testing"
)

// TestParseAllocs: once the Parser and Request have seen a request, parsing it
// (or another of the same shape) allocates nothing.
func TestParseAllocs(t *testing.T) {
	for _, name := range []string{
		"site_banner.json", "app_banner.json", "site_video.json", "app_native.json", "app_audio.json",
		"site_multi_imp.json", "site_pmp_deals.json", "ext_twins_25.json", "user_geo_fallback.json",
		"warts_nulls_odd_ext.json", "dooh_qty.json", "audio_pod_rewarded.json", "native_assets.json", "ctv_video.json",
	} {
		body := readFixture(t, name)
		var p Parser
		var r Request
		if err := p.Parse(body, &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			if err := p.Parse(body, &r); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Parse, want 0", name, allocs)
		}
	}
}

// A member the view does not read whose key has a capital letter (visit
// folds it to see whether it spells one it reads) costs no allocation:
// Google's user.ext.ConsentedProvidersSettings is in real requests, and
// the fold's buffer escaped to the heap (the review of the change).
func TestParseAllocsOddKeys(t *testing.T) {
	body := []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250,"TopFrame":5}}],"site":{"Keywords":"x","d\u00f6main":"y"},` +
		`"user":{"ext":{"ConsentedProvidersSettings":{"consented_providers":"1~2"}}}}`)
	var p Parser
	var r Request
	if err := p.Parse(body, &r); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := p.Parse(body, &r); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per Parse, want 0", allocs)
	}
}

// TestParseAllocsMixed: a pooled parser sees different requests in turn.
func TestParseAllocsMixed(t *testing.T) {
	var bodies [][]byte
	for _, f := range fixtureFiles(t) {
		bodies = append(bodies, readFixture(t, f[len("testdata/"):]))
	}
	var p Parser
	var r Request
	for _, b := range bodies {
		if err := p.Parse(b, &r); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(20, func() {
		for _, b := range bodies {
			if err := p.Parse(b, &r); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of %d requests, want 0", allocs, len(bodies))
	}
}

func TestGunzipAllocs(t *testing.T) {
	body := readFixture(t, "site_banner.json")
	src := gz(t, body)
	var g Gunzipper
	dst := make([]byte, 0, 4096)
	out, err := g.Gunzip(dst, src, 1<<20)
	if err != nil || !bytes.Equal(out, body) {
		t.Fatalf("Gunzip: %v", err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		out, err = g.Gunzip(dst[:0], src, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Gunzip, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		out = AppendJSONString(out[:0], body)
		out = AppendFloat(out, 1.2345, 4)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per append, want 0", allocs)
	}
}
