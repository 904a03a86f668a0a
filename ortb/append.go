package ortb

import (
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// jsonSafe[c] is true for the ASCII bytes that go into a JSON string as they
// are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendJSONString appends s to dst as a quoted JSON string and returns the
// extended slice. It escapes '"', '\\' and control characters, replaces
// invalid UTF-8 with U+FFFD and escapes U+2028 and U+2029 (as encoding/json
// does, so the output is also safe inside a <script>). It does not escape
// '<', '>' and '&': markup in adm stays readable. No allocation beyond
// growing dst.
func AppendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscapedByte(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendJSONStr is AppendJSONString for a string.
func AppendJSONStr(dst []byte, s string) []byte {
	return AppendJSONString(dst, S2B(s))
}

func appendEscapedByte(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// AppendFloat appends f as a JSON number with at most prec digits after the
// point, trailing zeros trimmed ("1.5", "2", "0.0001"). JSON has no NaN or
// infinity: those append 0. Use it for prices (prec 4 or 6).
func AppendFloat(dst []byte, f float64, prec int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, '0')
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', prec, 64)
	if prec <= 0 {
		return fixNegZero(dst, start)
	}
	i := len(dst)
	for dst[i-1] == '0' {
		i--
	}
	if dst[i-1] == '.' {
		i--
	}
	return fixNegZero(dst[:i], start)
}

// fixNegZero turns a "-0" that rounding produced into "0".
func fixNegZero(dst []byte, start int) []byte {
	if len(dst)-start == 2 && dst[start] == '-' && dst[start+1] == '0' {
		dst[start] = '0'
		return dst[:start+1]
	}
	return dst
}
