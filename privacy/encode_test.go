package privacy

import (
	"encoding/base64"
	"slices"
	"strings"
	"time"
)

// tcString describes a TCF v2 TC string (core segment) for encode, an
// encoder written from the IAB "TCF v2 Consent string and vendor list
// formats" core-segment table, independent of the decoder under test.
type tcString struct {
	purposes     []int // purposes consented (1-24)
	li           []int // purposes with legitimate interest established
	vendors      []int // vendors consented
	vendorsLI    []int // vendors with legitimate interest established
	rangeVendors bool  // encode the vendor consents as a range section
	restrictions []restriction
	policy       int // TCF policy version (default 4, TCF v2.2)
	p1Treatment  bool
	updated      time.Time // Created and LastUpdated (default 2020-09-13, 16e9 deciseconds)
	created      time.Time // Created, where it differs from updated (zero: updated)
	// segments after the core one, in order, joined with '.' (TCF v2.3:
	// the Disclosed Vendors segment, disclosedSegment)
	segments []string
}

// disclosedSegment encodes a Disclosed Vendors segment (SegmentType 1, then
// a vendor section): a bit field of ids, or, with spans, range entries
// (IsARange 1 for a span of more than one id).
func disclosedSegment(ids []int, spans [][2]int) string {
	var b bits
	b.int(1, 3) // SegmentType: Disclosed Vendors
	if spans == nil {
		b.vendorSection(ids, false)
	} else {
		maxID := 0
		for _, s := range spans {
			maxID = maxInt(maxID, s[1])
		}
		b.int(maxID, 16)
		b.flag(true)
		b.int(len(spans), 12)
		for _, s := range spans {
			b.flag(s[0] != s[1])
			b.int(s[0], 16)
			if s[0] != s[1] {
				b.int(s[1], 16)
			}
		}
	}
	return b.base64()
}

type restriction struct {
	purpose, kind int // kind: 0 not allowed, 1 require consent, 2 require LI
	vendors       []int
}

type bits []byte // one byte per bit, for clarity

func (b *bits) int(v, n int) {
	for i := n - 1; i >= 0; i-- {
		*b = append(*b, byte(v>>i)&1)
	}
}

func (b *bits) flag(v bool) {
	if v {
		b.int(1, 1)
	} else {
		b.int(0, 1)
	}
}

func (b *bits) set(ids []int, n int) { // a bit field of n bits, id 1 first
	for id := 1; id <= n; id++ {
		b.flag(slices.Contains(ids, id))
	}
}

// ranges writes NumEntries then one single-id entry per id (IsARange 0).
func (b *bits) ranges(ids []int) {
	b.int(len(ids), 12)
	for _, id := range ids {
		b.int(0, 1)
		b.int(id, 16)
	}
}

// vendorSection writes MaxVendorId, IsRangeEncoding and the bit field or
// range entries.
func (b *bits) vendorSection(ids []int, asRange bool) {
	max := 0
	for _, id := range ids {
		max = maxInt(max, id)
	}
	b.int(max, 16)
	b.flag(asRange)
	if asRange {
		b.ranges(ids)
	} else {
		b.set(ids, max)
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func (t tcString) encode() string {
	var b bits
	at := 16000000000 // deciseconds
	if !t.updated.IsZero() {
		at = int(t.updated.UnixMilli() / 100)
	}
	created := at
	if !t.created.IsZero() {
		created = int(t.created.UnixMilli() / 100)
	}
	b.int(2, 6)        // Version
	b.int(created, 36) // Created, deciseconds
	b.int(at, 36)      // LastUpdated
	b.int(7, 12)       // CmpId
	b.int(1, 12)       // CmpVersion
	b.int(1, 6)        // ConsentScreen
	b.int(4, 6)        // ConsentLanguage "EN": E
	b.int(13, 6)       //   N
	b.int(100, 12)     // VendorListVersion
	policy := t.policy
	if policy == 0 {
		policy = 4
	}
	b.int(policy, 6) // TcfPolicyVersion
	b.int(1, 1)      // IsServiceSpecific
	b.int(0, 1)      // UseNonStandardTexts
	b.int(0, 12)     // SpecialFeatureOptIns
	b.set(t.purposes, 24)
	b.set(t.li, 24)
	b.flag(t.p1Treatment)
	b.int(0, 6) // PublisherCC "AA"
	b.int(0, 6)
	b.vendorSection(t.vendors, t.rangeVendors)
	b.vendorSection(t.vendorsLI, false)
	b.int(len(t.restrictions), 12)
	for _, r := range t.restrictions {
		b.int(r.purpose, 6)
		b.int(r.kind, 2)
		b.ranges(r.vendors)
	}
	return strings.Join(append([]string{b.base64()}, t.segments...), ".")
}

// base64 pads b to whole bytes and encodes it as a TC string segment.
func (b bits) base64() string {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	out := make([]byte, len(b)/8)
	for i, bit := range b {
		out[i/8] |= bit << (7 - i%8)
	}
	return base64.RawURLEncoding.EncodeToString(out)
}
