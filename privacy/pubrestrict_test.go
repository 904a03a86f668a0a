package privacy

import (
	"math/rand/v2"
	"testing"

	tcf2 "github.com/prebid/go-gdpr/vendorconsent/tcf2"
)

// A TC string may hold two publisher-restriction records for one purpose and
// restriction type. The IAB's reference decoder (@iabtechlabtcf/core
// 1.5.21) merges their vendors: it decodes tcDupRestriction, the second
// string below, as purpose 3 not allowed for vendors 7 and 42. go-gdpr
// v1.12.1 keeps the records in a map keyed by (purpose, type), so the last
// record replaced the earlier ones: vendor 42's restriction was lost, and
// the bidder personalised where the publisher had forbidden purpose 3 (an
// outside audit got a segment-targeted bid with it).
func TestTCFRepeatedPubRestriction(t *testing.T) {
	all := []int{1, 2, 3, 4, 7, 10}
	seg := []string{disclosedSegment([]int{7, vendor}, nil)}
	cases := []struct {
		name string
		s    string
		want Use
	}{
		{"single record", tcString{purposes: all, vendors: []int{vendor}, vendorsLI: []int{vendor}, segments: seg,
			restrictions: []restriction{{3, restrictNotAllowed, []int{vendor}}}}.encode(), FreqCap},
		{"vendor in the first of two records", tcDupRestriction, FreqCap},
		{"vendor in the second of two records", tcString{purposes: all, vendors: []int{vendor}, vendorsLI: []int{vendor}, segments: seg,
			restrictions: []restriction{{3, restrictNotAllowed, []int{7}}, {3, restrictNotAllowed, []int{vendor}}}}.encode(), FreqCap},
		// Purpose 2 by legitimate interest only, and the publisher requires
		// consent for it in the first of two records: no basis for purpose 2.
		{"require consent, first of two", tcString{purposes: []int{1}, li: []int{2}, vendors: []int{vendor}, vendorsLI: []int{vendor}, segments: seg,
			restrictions: []restriction{{2, restrictConsent, []int{vendor}}, {2, restrictConsent, []int{7}}}}.encode(), None},
		// Purposes 3 and 4 consented, and the publisher requires legitimate
		// interest for purpose 4 (which has none since TCF v2.2).
		{"require LI, first of two", tcString{purposes: all, vendors: []int{vendor}, vendorsLI: []int{vendor}, segments: seg,
			restrictions: []restriction{{4, restrictLI, []int{vendor}}, {4, restrictLI, []int{7}}}}.encode(), FreqCap},
		// A core segment longer than pubRestrictions' stack buffer (a bit
		// field of 5,000 vendors).
		{"long core, vendor in the first of two records", tcString{purposes: all, vendors: []int{vendor, 5000}, vendorsLI: []int{vendor}, segments: seg,
			restrictions: []restriction{{3, restrictNotAllowed, []int{vendor}}, {3, restrictNotAllowed, []int{7}}}}.encode(), FreqCap},
		{"another vendor's records only", tcString{purposes: all, vendors: []int{vendor}, vendorsLI: []int{vendor}, segments: seg,
			restrictions: []restriction{{3, restrictNotAllowed, []int{7}}, {3, restrictNotAllowed, []int{8}}}}.encode(), All},
	}
	for _, c := range cases {
		v := decodeTCF(c.s, vendor, false)
		if !v.ok || v.uses != c.want {
			t.Errorf("%s: %+v, want uses %s", c.name, v, useName(c.want))
		}
	}
}

// tcDupRestriction: purposes 1-4, 7 and 10 consented, vendor 42 consented and
// disclosed, then two restriction records for purpose 3, type 0 (not
// allowed): vendor 42, then vendor 7. Created 2026-06-01.
const tcDupRestriction = "CQlH_MAQlH_MAAHABBENBkEgAPJAAAAAAAAAAVAAAAAAAQAqAAAAAAAgBBgAIAKgwAEAA4A.IAVAIAAAAAQ"

// Where no (purpose, type) repeats, pubRestrictions reads what go-gdpr reads,
// for every vendor, whatever the vendor sections before the restrictions
// (bit fields and ranges of several lengths).
func TestPubRestrictionsAgreeWithGoGDPR(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		tc := tcString{purposes: []int{1, 2, 3}, rangeVendors: rng.IntN(2) == 0}
		for v := 1; v <= 60; v++ {
			if rng.IntN(3) == 0 {
				tc.vendors = append(tc.vendors, v)
			}
			if rng.IntN(4) == 0 {
				tc.vendorsLI = append(tc.vendorsLI, v)
			}
		}
		seen := map[[2]int]bool{}
		for range rng.IntN(6) {
			k := [2]int{1 + rng.IntN(11), rng.IntN(3)}
			if seen[k] {
				continue
			}
			seen[k] = true
			r := restriction{purpose: k[0], kind: k[1]}
			for v := 1; v <= 60; v++ {
				if rng.IntN(5) == 0 {
					r.vendors = append(r.vendors, v)
				}
			}
			tc.restrictions = append(tc.restrictions, r)
		}
		s := tc.encode()
		c, err := tcf2.ParseString(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		m := c.(tcf2.ConsentMetadata)
		for v := uint16(1); v <= 61; v++ {
			r, ok := pubRestrictions(s, v)
			if !ok {
				t.Fatalf("%s: pubRestrictions failed", s)
			}
			for p := uint8(1); p <= 11; p++ {
				for kind := uint8(0); kind < 3; kind++ {
					if got, want := r[kind]&(1<<p) != 0, m.CheckPubRestriction(p, kind, v); got != want {
						t.Fatalf("%s: vendor %d purpose %d type %d: %v, go-gdpr %v", s, v, p, kind, got, want)
					}
				}
			}
		}
	}
}
