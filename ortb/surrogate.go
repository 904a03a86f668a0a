package ortb

import "bytes"

// Lone UTF-16 surrogates. JSON may escape a character outside the Basic
// Multilingual Plane as a surrogate pair (\ud83d\ude00); a high surrogate
// without its low one, or a low one alone, is valid JSON syntax but no
// character. encoding/json (and so the schema of record) decodes each such
// escape to U+FFFD. fastjson keeps a lone one as its six literal characters
// (so an id "\ud800" was echoed back as "\\ud800"), and a high surrogate
// followed by another \u escape swallows that escape ("x\ud800\u0041" read
// as "x\ufffd", the A lost). Before parsing, each lone surrogate escape is
// rewritten to \ufffd: six bytes for six, so nothing moves, and then both
// parsers read the same text. Bodies without one (the common case) cost a
// scan for backslashes and are not copied.

// loneSurrogate is the offset of the first lone surrogate escape in b, or
// -1.
func loneSurrogate(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return -1
		}
		i += j
		n, lone := escapeAt(b, i)
		if lone {
			return i
		}
		i += n
	}
}

// fixSurrogates rewrites every lone surrogate escape in b to \ufffd; i is
// the first one's offset (loneSurrogate's answer).
func fixSurrogates(b []byte, i int) {
	for i >= 0 {
		copy(b[i:i+6], `\ufffd`)
		j := loneSurrogate(b[i+6:])
		if j < 0 {
			return
		}
		i += 6 + j
	}
}

// escapeAt reads the escape at b[i] (a backslash): its length (2 for \n or
// \\, 6 for \uXXXX, 12 for a surrogate pair) and whether it is a lone
// surrogate (then n is 6). A truncated or malformed escape is left to the
// parser (n 1 or 2, not lone).
func escapeAt(b []byte, i int) (n int, lone bool) {
	if i+1 >= len(b) {
		return 1, false
	}
	if b[i+1] != 'u' {
		return 2, false
	}
	r, ok := hex4(b, i+2)
	if !ok {
		return 2, false
	}
	switch {
	case r >= 0xdc00 && r <= 0xdfff: // a low surrogate first
		return 6, true
	case r >= 0xd800 && r <= 0xdbff:
		if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
			if lo, ok := hex4(b, i+8); ok && lo >= 0xdc00 && lo <= 0xdfff {
				return 12, false
			}
		}
		return 6, true
	}
	return 6, false
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
