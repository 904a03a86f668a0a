package bidder

import "testing"

// The clearing price is a plain decimal CPM: anything else is refused (400)
// rather than read as some number, so a notice never charges a price the
// exchange did not send.
func TestParsePriceMicros(t *testing.T) {
	f := func(p string, want int64, ok bool) {
		t.Helper()
		got, err := parsePriceMicros([]byte(p))
		if (err == nil) != ok || got != want {
			t.Errorf("parsePriceMicros(%q) = %d, %v; want %d, ok %v", p, got, err, want, ok)
		}
	}
	f("1.5", 1_500_000, true)
	f("0", 0, true)
	f("5.", 5_000_000, true)
	f(".5", 500_000, true)
	f("0.0000009", 0, true) // past the sixth decimal: dropped
	f("8.9999999", 8_999_999, true)
	f("1000000000", 1_000_000_000_000_000, true)
	for _, bad := range []string{"", ".", "..5", "1.2.3", "-1", "+1", " 1", "1 ", "1e3", "0x10", "NaN", "Inf",
		"1,5", "${AUCTION_PRICE}", "1000000001", "1\x00", "000000000000000000000000000000009"} {
		f(bad, 0, false)
	}
}
