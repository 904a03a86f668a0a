package shading

// Key names a segment at both levels: Placement (exchange, response
// currency, publisher, placement, formats) and Publisher (the same without
// the placement). Each is a 64-bit FNV-1a hash, mixed, never 0. Deal and
// open-auction bids of an imp share its curve (their floors differ, and
// Optimal honours each).
type Key struct {
	Placement, Publisher uint64
}

// Format is the set of ad formats an imp offers (a multi-format imp is a
// segment of its own).
type Format uint8

// Formats.
const (
	FormatBanner Format = 1 << iota
	FormatVideo
	FormatNative
	FormatAudio
)

// Segment is what a Key is made of. Byte slices are read, not kept.
type Segment struct {
	Exchange  []byte // the exchange's name; empty when it sends none
	Currency  []byte // the bid's currency: curves are learned in its units
	Publisher []byte // publisher id (site or app id when there is none)
	Placement []byte // imp.tagid (or another stable placement id)
	Format    Format
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	// a separator, so ("ab","c") and ("a","bc") differ
	h ^= 0xff
	h *= fnvPrime
	return h
}

// KeyOf hashes a segment; it allocates nothing.
func KeyOf(s Segment) Key {
	h := uint64(fnvOffset)
	h = fnv(h, s.Exchange)
	h = fnv(h, s.Currency)
	h = fnv(h, s.Publisher)
	h ^= uint64(s.Format)
	h *= fnvPrime
	pub := mix(h ^ 0x9e3779b97f4a7c15)
	place := mix(fnv(h, s.Placement))
	return Key{Placement: nonZero(place), Publisher: nonZero(pub)}
}

// mix spreads the hash's bits (the shard is chosen by the top bits and the
// slot by the low ones; FNV's top bits are weak for short inputs).
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func nonZero(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// ImpressionID hashes an auction id and an imp id into an Observation.ID.
func ImpressionID(auction, imp []byte) uint64 {
	return nonZero(mix(fnv(fnv(fnvOffset, auction), imp)))
}

// AppendHex appends k as 32 lowercase hex digits (placement, then
// publisher), the form notice URLs carry.
func (k Key) AppendHex(dst []byte) []byte {
	dst = appendHex64(dst, k.Placement)
	return appendHex64(dst, k.Publisher)
}

func appendHex64(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xf])
	}
	return dst
}

// ParseKey reads AppendHex's form back; ok is false for anything else.
func ParseKey(b []byte) (Key, bool) {
	if len(b) != 32 {
		return Key{}, false
	}
	p, ok1 := parseHex64(b[:16])
	q, ok2 := parseHex64(b[16:])
	if !ok1 || !ok2 || p == 0 || q == 0 {
		return Key{}, false
	}
	return Key{Placement: p, Publisher: q}, true
}

func parseHex64(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}
