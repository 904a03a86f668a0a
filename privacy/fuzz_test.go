package privacy

import (
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// FuzzDecide: any signals, however broken, give a decision (never a panic),
// COPPA always takes everything, and the cached and uncached policies agree.
func FuzzDecide(f *testing.F) {
	all := tcString{purposes: []int{1, 2, 3, 4}, vendors: []int{vendor}}.encode()
	f.Add(all, "", "", int64(0), true, false)
	f.Add(tcRealCMP, "DBACNYA~"+all+"~1YNN", "1YNN", int64(2), true, false)
	f.Add(tcTruncated, "DBABL~BVVqAAEABCA.QA", "1YYN", int64(7), false, false)
	f.Add("gdprConsentString", "gppString", "uspConsentString", int64(6), true, true)
	f.Add(all[:30], "DBABzw~1YNN", "1---", int64(-1), true, false)
	cached, err := New(Options{VendorID: vendor})
	if err != nil {
		f.Fatal(err)
	}
	defer cached.Close()
	plain, _ := New(Options{VendorID: vendor, CacheEntries: -1})
	f.Fuzz(func(t *testing.T, consent, gppStr, usp string, sid int64, gdpr, coppa bool) {
		r := req{consent: consent, gpp: gppStr, usp: usp, sid: []int64{sid}}
		if gdpr {
			r.gdpr = ortb.True
		}
		if coppa {
			r.coppa = ortb.True
		}
		d := cached.Decide(r.build())
		if d.Uses&^All != 0 || (d.Uses == All) != (d.Why == Allowed) {
			t.Fatalf("inconsistent decision %v", d)
		}
		if coppa && d != (Decision{Uses: None, Why: COPPA}) {
			t.Fatalf("coppa: %v", d)
		}
		if p := plain.Decide(r.build()); p != d {
			t.Fatalf("cached %v, uncached %v", d, p)
		}
		if cached.Stats().Recovered != 0 {
			t.Logf("a decoder panicked and was recovered")
		}
	})
}
