package privacy

import (
	"testing"
)

// BenchmarkDecide: a decision from the cache (the common case: a string seen
// before), with and without a TTL (a TTL costs ristretto a clock read per
// hit), beside decoding the same string every time (a first-seen string).
func BenchmarkDecide(b *testing.B) {
	all := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	reqs := []struct {
		name string
		r    req
	}{
		{"none", req{}},
		{"us_privacy", req{usp: "1YNN"}},
		{"tcf", req{gdpr: yes, consent: all}},
		{"tcf_real_cmp", req{gdpr: yes, consent: tcRealCMP}},
		{"gpp_usnat", req{gpp: "DBABL~BVVqAAEABCA.QA", sid: []int64{7}}},
		{"gpp_tcf_usp", req{gpp: "DBACNYA~" + all + "~1YNN", sid: []int64{2, 6}}},
	}
	for _, c := range reqs {
		for _, mode := range []string{"cached", "cached_no_ttl", "decode"} {
			name := c.name + "/" + mode
			o := Options{VendorID: vendor}
			switch mode {
			case "cached_no_ttl":
				o.CacheTTL = -1
			case "decode":
				o.CacheEntries = -1
			}
			b.Run(name, func(b *testing.B) {
				p := newPolicy(b, o)
				r := c.r.build()
				p.Decide(r)
				p.cache.wait()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					p.Decide(r)
				}
			})
		}
	}
}
