package bidder

import (
	"strconv"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

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

// The charge is the clearing price's share of the hold, exactly: a price at
// the bid charges the whole hold, however large (DOOH: a play's hold is the
// CPM times qty.multiplier), and shares round down to the micro.
func TestClearingChargeExact(t *testing.T) {
	s := &Server{m: newMetrics()}
	f := func(hold, price, floor int64, p string, want int64) {
		t.Helper()
		tok := bidToken{ChargeMicros: hold, PriceMicros: price, FloorMicros: floor}
		got, err := s.clearingCharge(&tok, []byte(p))
		if err != nil || got != want {
			t.Errorf("hold %d, bid %d, floor %d, p=%s: %d, %v; want %d", hold, price, floor, p, got, err, want)
		}
	}
	f(9000, 9_000_000, 500_000, "9", 9000)
	f(9000, 9_000_000, 500_000, "4.5", 4500)
	f(9000, 9_000_000, 500_000, "0.1", 500)                 // under the floor: at the floor
	f(9000, 9_000_000, 500_000, "100", 9000)                // over the bid: at the bid
	f(9000, 8_333_333, 0, "4.1666665", 4499)                // rounds down
	f(958_551_637, 950_257_100, 0, "950.2571", 958_551_637) // float64 gave 958551636
	f(389_572_542, 923_308_594, 0, "923.308594", 389_572_542)
	f(585_305_648, 478_658_548, 0, "358.993911", 438_979_236)
	f(1<<62, 1_000_000_000_000_000, 0, "1000000000", 1<<62)
}

// A notice at the bid's own price charges under a micro below the exact
// price, never above it: the token carries impCharge's due (the value
// rounded down), while the hold is rounded up so that it covers the bid.
// With the hold in the token, a bid at 8.926346 CPM was charged 8,927
// micros for an exact 8,926.346 (an outside audit).
func TestChargeAtTheBidIsNeverAboveThePrice(t *testing.T) {
	s := &Server{m: newMetrics()}
	lim := &LimitsConfig{MinQty: 0.01, MaxQty: 1000}
	for _, v := range []int64{8_926_346, 1_000_001, 1_999_999, 2_000_000, 999, 123_456_789} {
		imp := &ortb.Imp{}
		hold, due, ok := impCharge(float64(v), imp, lim)
		if !ok || hold*1000 < v {
			t.Fatalf("value %d: hold %d does not cover it", v, hold)
		}
		tok := bidToken{ChargeMicros: due, PriceMicros: v}
		for _, p := range []int64{v, v / 2, v / 3} {
			got, err := s.clearingCharge(&tok, []byte(strconv.FormatFloat(float64(p)/1e6, 'f', 6, 64)))
			if err != nil {
				t.Fatal(err)
			}
			// exact: p/1000 micros; charged: never above it, under a micro
			// below at the bid's price, under two below under it (the
			// share of a rounded-down due, rounded down)
			under := int64(2000)
			if p == v {
				under = 1000
			}
			if got*1000 > p || got*1000 <= p-under {
				t.Errorf("bid %d, clearing %d micros CPM: charged %d micros for an exact %.3f", v, p, got, float64(p)/1000)
			}
		}
	}
}
