package ortb

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestAppendJSONString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got := string(AppendJSONString([]byte("x:"), []byte(in)))
		if got != "x:"+want {
			t.Errorf("AppendJSONString(%q) = %s, want %s", in, got, want)
		}
		if got := string(AppendJSONStr(nil, in)); got != want {
			t.Errorf("AppendJSONStr(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(want), &back); err != nil {
			t.Errorf("%s is not a JSON string: %v", want, err)
		}
		if utf8.ValidString(in) && back != in {
			t.Errorf("round trip of %q gave %q", in, back)
		}
	}
	f("", `""`)
	f("plain", `"plain"`)
	f(`say "hi" \ bye`, `"say \"hi\" \\ bye"`)
	f("a\nb\rc\td", `"a\nb\rc\td"`)
	f("\x00\x01\x1f\x7f", `"\u0000\u0001\u001f`+"\x7f"+`"`)
	f(`<img src="x.png">&amp;`, `"<img src=\"x.png\">&amp;"`)
	f("São Paulo €", `"São Paulo €"`)
	f("line\u2028sep\u2029", `"line\u2028sep\u2029"`)
	f("bad\xffutf8\xc3", `"bad\ufffdutf8\ufffd"`)
	f("😀", `"😀"`)
}

// TestAppendJSONStringMatchesEncodingJSON compares with encoding/json (which
// also escapes <, > and &, so those are left out) over every byte value.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for c := range 256 {
		if c == '<' || c == '>' || c == '&' {
			continue
		}
		in := string([]byte{'a', byte(c), 'z'})
		want, _ := json.Marshal(in)
		got := AppendJSONString(nil, []byte(in))
		var a, b string
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil || a != b {
			t.Errorf("byte %#x: got %s, encoding/json %s", c, got, want)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	f := func(v float64, prec int, want string) {
		t.Helper()
		if got := string(AppendFloat([]byte("p="), v, prec)); got != "p="+want {
			t.Errorf("AppendFloat(%v, %d) = %s, want p=%s", v, prec, got, want)
		}
	}
	f(1.5, 4, "1.5")
	f(2, 4, "2")
	f(0, 4, "0")
	f(0.0001, 4, "0.0001")
	f(0.00004, 4, "0")
	f(-0.00004, 4, "0")
	f(1.23456789, 6, "1.234568")
	f(-3.25, 2, "-3.25")
	f(100, 0, "100")
	f(1234567.5, 1, "1234567.5")
	f(math.NaN(), 4, "0")
	f(math.Inf(1), 4, "0")
	for _, v := range []float64{0.1, 12.3456, 99.99, 1e-3} {
		got := AppendFloat(nil, v, 6)
		back, err := strconv.ParseFloat(string(got), 64)
		if err != nil || math.Abs(back-v) > 1e-6 {
			t.Errorf("AppendFloat(%v) = %s does not read back", v, got)
		}
	}
}

func TestB2SS2B(t *testing.T) {
	b := []byte("bid")
	if s := B2S(b); s != "bid" {
		t.Errorf("B2S = %q", s)
	}
	if b := S2B("win"); string(b) != "win" || len(b) != 3 {
		t.Errorf("S2B = %q", b)
	}
	if B2S(nil) != "" || len(S2B("")) != 0 {
		t.Error("empty conversions")
	}
}
