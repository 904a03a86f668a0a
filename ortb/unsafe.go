package ortb

import "unsafe"

// This file is the only place in the project that converts between []byte and
// string without copying.
//
// Lifetime rule: the result aliases its argument's memory. B2S(b) is valid only
// while b is neither modified nor reused; for a request field that means only
// until the next Parse or Reset on the Parser/Request that produced it. Never
// store the result in a map, a cache, a log record or anything else that can
// outlive the request: use string(b) (a copy) there. S2B(s) must never be
// written to: the bytes of a Go string are immutable and may live in read-only
// memory.

// B2S converts b to a string without copying. See the lifetime rule above.
func B2S(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// S2B converts s to a []byte without copying. The result is read-only.
func S2B(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
