package campaigns

import "testing"

func TestParseMicros(t *testing.T) {
	ok := func(in string, want int64) {
		t.Helper()
		got, err := ParseMicros(in)
		if err != nil || got != want {
			t.Errorf("ParseMicros(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := func(in string, want error) {
		t.Helper()
		if got, err := ParseMicros(in); err != want {
			t.Errorf("ParseMicros(%q) = %d, %v; want error %v", in, got, err, want)
		}
	}
	ok("4.50", 4_500_000)
	ok("4.5", 4_500_000)
	ok("4", 4_000_000)
	ok("+4", 4_000_000)
	ok(" 0.1 ", 100_000)
	ok("0.000001", 1)
	ok(".25", 250_000)
	ok("4.", 4_000_000)
	ok("0", 0)
	ok("1.5000000", 1_500_000)
	ok("0.29", 290_000) // float64 0.29*1e6 = 289999.99999999994
	ok("9223372036853", 9_223_372_036_853_000_000)
	bad("-1", errAmountNegative)
	bad("1.0000001", errAmountPrecision)
	bad("", errAmountEmpty)
	bad(".", errAmountSyntax)
	bad("1e3", errAmountSyntax)
	bad("1,5", errAmountSyntax)
	bad("0x10", errAmountSyntax)
	bad("1.2.3", errAmountSyntax)
	bad("99999999999999999999", errAmountRange)
	bad("9223372036855", errAmountRange)
}

func TestFormatMicrosRoundTrip(t *testing.T) {
	for _, m := range []int64{0, 1, 10, 4_500_000, 4_510_000, 123_456_789, 1_000_000_000_000} {
		s := FormatMicros(m)
		got, err := ParseMicros(s)
		if err != nil || got != m {
			t.Errorf("ParseMicros(FormatMicros(%d) = %q) = %d, %v", m, s, got, err)
		}
	}
	if s := FormatMicros(4_500_000); s != "4.50" {
		t.Errorf("FormatMicros(4500000) = %q, want 4.50", s)
	}
}
