package privacy

import (
	"encoding/base64"
	"strings"
)

// go-gpp v0.2.0 is not safe on hostile headers (found by FuzzDecide): it
// expands the header's section-id ranges one id at a time with a uint16 loop
// that never ends when a range reaches id 65535, and computes Fibonacci
// weights by plain recursion, exponential in the length of a run of zero
// bits. A 30-character header pins a core for minutes. So the header is read
// here first, the way go-gpp reads it (util.BitStream, ReadFibonacciRange),
// and handed to go-gpp only when it lists a few small ids, one per section.
// This is the only GPP bit reading the bidder does by hand; go-gpp still
// decodes everything.
//
// The string's shape is bounded too, since go-gpp's cost grows with it
// (an outside audit): after a section that does not decode, go-gpp.Parse
// formats an error for every later section it does not read (it tests an
// err left over from that section), so a 2.9 KB string of 1,023 one-letter
// sections cost 950 us and 3,900 allocations, more than a whole bid request's
// CPU; and it splits a US section at every '.', so a usnat section followed
// by 16,000 dots cost 590 us and a 256 KB slice. A string with more than
// maxSections sections, or a section of more than maxSegments '.'-separated
// segments, is malformed; no real one comes near either bound.

const (
	maxHeaderLen  = 64   // base64 characters: a header of every section id below 64 fits in far less
	maxSectionID  = 1023 // the IAB registry is in the tens
	maxFibonacciI = 24   // fib(24) = 46368: any larger weight overflows go-gpp's uint16 sum
	maxSections   = 64   // the IAB registry has fewer ids; a CMP writes the few that apply
	maxSegments   = 8    // a TC string has 4 at most (core, disclosed and allowed vendors, publisher TC), a US section 2
)

// gppHeaderSane reports whether the header of s (before the first '~')
// decodes to a list of section ids, each at most maxSectionID, as many as
// the sections that follow it, and whether s is of a shape go-gpp decodes
// cheaply: at most maxSections sections of at most maxSegments segments.
func gppHeaderSane(s string) bool {
	h, secs, _ := strings.Cut(s, "~")
	if len(h) < 4 || len(h) > maxHeaderLen || h[0] != 'D' {
		return false
	}
	sections, dots := 1, 0
	for i := 0; i < len(secs); i++ {
		switch secs[i] {
		case '~':
			sections, dots = sections+1, 0
		case '.':
			dots++
		}
		if sections > maxSections || dots >= maxSegments {
			return false
		}
	}
	if len(h)%4 != 0 {
		h += "A" // as go-gpp pads the last quantum
	}
	var buf [maxHeaderLen]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(h))
	if err != nil {
		return false
	}
	r := bitReader{b: buf[:n], pos: 12} // type and version, 6 bits each
	entries := r.uint(12)
	ids, want := 0, strings.Count(s, "~")
	max := 0 // offsets are at least 1, so ids only grow and never wrap go-gpp's uint16
	for range entries {
		isRange := r.uint(1) == 1
		start := max + int(r.fibonacci())
		end := start
		if isRange {
			end = start + int(r.fibonacci())
		}
		if r.bad || end > maxSectionID {
			return false
		}
		max = end
		ids += end - start + 1
		if ids > want {
			return false
		}
	}
	return !r.bad && ids == want
}

// bitReader reads big-endian bit fields; bad is set when it runs out.
type bitReader struct {
	b   []byte
	pos int
	bad bool
}

func (r *bitReader) uint(n int) uint16 {
	var v uint16
	for range n {
		if r.pos >= 8*len(r.b) {
			r.bad = true
			return 0
		}
		bit := r.b[r.pos/8] >> (7 - r.pos%8) & 1
		v = v<<1 | uint16(bit)
		r.pos++
	}
	return v
}

// fibonacci reads a Fibonacci-coded integer (weights 1, 2, 3, 5, ...; a
// second 1 in a row ends it), as go-gpp's ReadFibonacciInt does. A code
// longer than maxFibonacciI bits is bad.
func (r *bitReader) fibonacci() uint16 {
	last, next := r.uint(1), r.uint(1)
	sum := last
	fa, fb := uint16(1), uint16(2) // fib(i-1), fib(i) for i = 3
	for i := 3; last == 0 || next == 0; i++ {
		if r.bad || i > maxFibonacciI {
			r.bad = true
			return 0
		}
		last, next = next, r.uint(1)
		if last == 1 {
			sum += fb
		}
		fa, fb = fb, fa+fb
	}
	return sum
}
