//go:build !race

package privacy

import (
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// TestDecideCachedAllocs: once a string is in the cache, deciding a request
// that carries it allocates nothing; so does a request whose signals need no
// decoding (none, COPPA, us_privacy).
func TestDecideCachedAllocs(t *testing.T) {
	p := newPolicy(t, Options{VendorID: vendor})
	all := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	cases := []struct {
		name string
		r    *ortb.Request
	}{
		{"no signal", req{}.build()},
		{"coppa", req{coppa: yes}.build()},
		{"us_privacy", req{usp: "1YYN"}.build()},
		{"tcf", req{gdpr: yes, consent: all}.build()},
		{"tcf real CMP string", req{gdpr: yes, consent: tcRealCMP}.build()},
		{"tcf malformed", req{gdpr: yes, consent: "gdprConsentString"}.build()},
		{"gpp usnat", req{gpp: gppStringOf(usnatSec(nil)), sid: []int64{7}}.build()},
		{"gpp tcfeuv2 + usp", req{gpp: "DBACNYA~" + all + "~1YNN", sid: []int64{2, 6}, usp: "1YNN"}.build()},
		{"gpp malformed", req{gpp: "gppString"}.build()},
	}
	for _, c := range cases {
		want := p.Decide(c.r)
		p.cache.wait()
		decodes := p.Stats().Decodes
		n := testing.AllocsPerRun(1000, func() {
			if p.Decide(c.r) != want {
				t.Fatal("decision changed")
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per cached decision, want 0", c.name, n)
		}
		if p.Stats().Decodes != decodes {
			t.Errorf("%s: decoded again: the string did not stay cached", c.name)
		}
	}
}
