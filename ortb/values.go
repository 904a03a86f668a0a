package ortb

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// The helpers below read one member value into dst. Each treats JSON null as
// absent (dst is set to its absent value: nil, 0, Unset, empty), and
// reports a wrong type as a FieldError at key (a member given twice never
// gets here twice: visit refuses it). None allocates unless it returns an error.

func typeName(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeObject:
		return "object"
	case fastjson.TypeArray:
		return "array"
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "bool"
	}
	return "null"
}

func isNull(v *fastjson.Value) bool { return v.Type() == fastjson.TypeNull }

func wantErr(key []byte, want string, v *fastjson.Value) error {
	return fieldErr(key, "want "+want+", got "+typeName(v))
}

func indexErr(key []byte, i int, want string, v *fastjson.Value) error {
	return &FieldError{
		Path:   string(key) + "[" + strconv.Itoa(i) + "]",
		Reason: "want " + want + ", got " + typeName(v),
	}
}

// getString reads a string member.
func getString(key []byte, v *fastjson.Value, dst *[]byte) error {
	switch v.Type() {
	case fastjson.TypeString:
		*dst, _ = v.StringBytes()
		return nil
	case fastjson.TypeNull:
		*dst = nil
		return nil
	}
	return wantErr(key, "string", v)
}

// getID reads an id the answer echoes (the request's, an imp's): valid
// UTF-8 without U+FFFD. An invalid byte or a lone surrogate escape
// ("\ud800") cannot come back as sent (each becomes U+FFFD), and a bid
// whose id or impid is not the request's is one the exchange cannot match
// (an outside conformance audit: "\xff\xfe" got a bid answered with id
// "\ufffd\ufffd"). A U+FFFD sent as such is refused too: it is what the
// other two look like once decoded.
func getID(key []byte, v *fastjson.Value, dst *[]byte) error {
	if err := getString(key, v, dst); err != nil {
		return err
	}
	if !utf8.Valid(*dst) || bytes.Contains(*dst, replacement) {
		return fieldErr(key, "not valid UTF-8, or U+FFFD: an id must come back as it was sent")
	}
	return nil
}

var replacement = []byte(string(utf8.RuneError))

// toInt converts a number value to int64; ok is false for a fraction, an
// exponent or an overflow (encoding/json rejects those for integer fields too).
func toInt(v *fastjson.Value) (int64, bool) {
	n, err := v.Int64()
	return n, err == nil
}

// getInt reads an integer member.
func getInt(key []byte, v *fastjson.Value, dst *int64) error {
	switch v.Type() {
	case fastjson.TypeNumber:
		n, ok := toInt(v)
		if !ok {
			return fieldErr(key, "want integer, got "+v.String())
		}
		*dst = n
		return nil
	case fastjson.TypeNull:
		*dst = 0
		return nil
	}
	return wantErr(key, "integer", v)
}

// getFlag reads a 0/1 integer into a tri-state: 0 is False, any other
// integer True; null is Unset. Every flag it reads is an int8 in the schema
// of record, and encoding/json refuses a request whose flag does not fit one
// (256 is neither 0 nor 1 to it): so does getFlag, instead of reading it as
// on, so that the exchange and the bidder never read one request two ways.
func getFlag(key []byte, v *fastjson.Value, dst *int8) error {
	switch v.Type() {
	case fastjson.TypeNumber:
		n, ok := toInt(v)
		if !ok {
			return fieldErr(key, "want integer, got "+v.String())
		}
		if n < math.MinInt8 || n > math.MaxInt8 {
			return fieldErr(key, "want int8, got "+v.String())
		}
		*dst = False
		if n != 0 {
			*dst = True
		}
		return nil
	case fastjson.TypeNull:
		*dst = Unset
		return nil
	}
	return wantErr(key, "integer", v)
}

// getBool reads a 0/1 integer as a bool (nonzero is true).
func getBool(key []byte, v *fastjson.Value, dst *bool) error {
	f := Unset
	if err := getFlag(key, v, &f); err != nil {
		return err
	}
	*dst = f == True
	return nil
}

// getFloat reads a finite number member.
func getFloat(key []byte, v *fastjson.Value, dst *float64) error {
	switch v.Type() {
	case fastjson.TypeNumber:
		f, err := v.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fieldErr(key, "want number, got "+v.String())
		}
		*dst = f
		return nil
	case fastjson.TypeNull:
		*dst = 0
		return nil
	}
	return wantErr(key, "number", v)
}

// getStrings reads an array of strings into *dst. A null element reads as
// an empty string, as encoding/json reads it.
// appendStrings is getStrings appending to *dst.
func appendStrings(key []byte, v *fastjson.Value, dst *[][]byte) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	rest := (*dst)[len(*dst):]
	err := getStrings(key, v, &rest)
	*dst = append(*dst, rest...)
	return err
}

func getStrings(key []byte, v *fastjson.Value, dst *[][]byte) error {
	switch v.Type() {
	case fastjson.TypeArray:
	case fastjson.TypeNull:
		*dst = (*dst)[:0]
		return nil
	default:
		return wantErr(key, "array", v)
	}
	a, _ := v.Array()
	out := (*dst)[:0]
	for i, e := range a {
		switch e.Type() {
		case fastjson.TypeString:
			s, _ := e.StringBytes()
			out = append(out, s)
		case fastjson.TypeNull:
			out = append(out, nil)
		default:
			*dst = out
			return indexErr(key, i, "string", e)
		}
	}
	*dst = out
	return nil
}

// getInts reads an array of integers into *dst. A null element reads as 0,
// as encoding/json reads it.
func getInts(key []byte, v *fastjson.Value, dst *[]int64) error {
	switch v.Type() {
	case fastjson.TypeArray:
	case fastjson.TypeNull:
		*dst = (*dst)[:0]
		return nil
	default:
		return wantErr(key, "array", v)
	}
	a, _ := v.Array()
	out := (*dst)[:0]
	for i, e := range a {
		var n int64
		switch e.Type() {
		case fastjson.TypeNumber:
			var ok bool
			if n, ok = toInt(e); !ok {
				*dst = out
				return &FieldError{
					Path:   string(key) + "[" + strconv.Itoa(i) + "]",
					Reason: "want integer, got " + e.String(),
				}
			}
		case fastjson.TypeNull:
			n = 0
		default:
			*dst = out
			return indexErr(key, i, "integer", e)
		}
		out = append(out, n)
	}
	*dst = out
	return nil
}

// getArray returns the elements of an array member; nil for null.
func getArray(key []byte, v *fastjson.Value) ([]*fastjson.Value, error) {
	switch v.Type() {
	case fastjson.TypeArray:
		a, _ := v.Array()
		return a, nil
	case fastjson.TypeNull:
		return nil, nil
	}
	return nil, wantErr(key, "array", v)
}

// getObject returns an object member; nil for null.
func getObject(key []byte, v *fastjson.Value) (*fastjson.Object, error) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o, nil
	case fastjson.TypeNull:
		return nil, nil
	}
	return nil, wantErr(key, "object", v)
}

// extObject returns an ext member when it is an object, else nil: odd ext
// payloads are ignored, never an error.
func extObject(v *fastjson.Value) *fastjson.Object {
	if v.Type() != fastjson.TypeObject {
		return nil
	}
	o, _ := v.Object()
	return o
}
