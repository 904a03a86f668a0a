package features

// FNV-1a, 64 bit, over ASCII-lowercased bytes, so "USA" and "usa" or "iOS"
// and "ios" land in the same bucket. Incremental so composite keys
// (country/region, campaign/creative) hash without building a string.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd[T ~string | ~[]byte](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fnvAddByte(h uint64, c byte) uint64 {
	h ^= uint64(c)
	return h * fnvPrime
}

func fnvAddUint(h uint64, v uint64) uint64 {
	for i := 0; i < 8; i++ {
		h = fnvAddByte(h, byte(v>>(8*i)))
	}
	return h
}

// bucket maps a finished hash into [1, n) as a float32 integer; 0 is
// reserved for "absent".
func bucket(h uint64, n int) float32 {
	return float32(1 + h%uint64(n-1))
}

// Bucket returns the bucket id that slot holds for value, or 0 when value is
// empty. It panics when slot is not categorical. Exported for tools and
// tests that need to recognise a value in a row.
func Bucket(slot int, value string) float32 {
	n := Slots[slot].Buckets
	if n == 0 {
		panic("features: Bucket on a numeric slot")
	}
	if value == "" {
		return 0
	}
	return bucket(fnvAdd(fnvOffset, value), n)
}

func catSlot[T ~string | ~[]byte](slot int, v T) float32 {
	if len(v) == 0 {
		return 0
	}
	return bucket(fnvAdd(fnvOffset, v), Slots[slot].Buckets)
}

func sizeSlot(slot int, w, h int64) float32 {
	if w <= 0 && h <= 0 {
		return 0
	}
	return bucket(fnvAddUint(fnvOffset, uint64(w)<<32|uint64(h)&0xffffffff), Slots[slot].Buckets)
}
