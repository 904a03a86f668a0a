package bidder

import (
	"math"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// OpenRTB 2.x: imp.bidfloorcur defaults to USD. A floor without it was read
// in currency.base, so a bidder whose base is JPY read a 5 USD floor as
// 5 JPY and bid under it (found by the red-team oracle over
// ../shared/ortb-samples with base JPY).
func TestFloorWithoutCurrencyIsUSD(t *testing.T) {
	f := func(name, base string, rates map[string]float64, amount float64, resp string, want int64, wantOK bool) {
		t.Helper()
		r := newRates(CurrencyConfig{Base: base, Rates: rates})
		got, ok := r.toResponse(amount, nil, []byte(resp))
		if got != want || ok != wantOK {
			t.Errorf("%s: toResponse(%v, no currency, %s) = %d, %v; want %d, %v", name, amount, resp, got, ok, want, wantOK)
		}
	}
	f("base USD", "USD", map[string]float64{"USD": 1}, 1.5, "USD", 1_500_000, true)
	f("base JPY", "JPY", map[string]float64{"JPY": 1, "USD": 150}, 5, "JPY", 750_000_000, true)
	f("base EUR, answered in EUR", "EUR", map[string]float64{"EUR": 1, "USD": 0.5}, 2, "EUR", 1_000_000, true)
	f("no USD rate", "EUR", map[string]float64{"EUR": 1}, 2, "EUR", 0, false)
	f("no floor, no USD rate", "EUR", map[string]float64{"EUR": 1}, 0, "EUR", 0, true)

	ts := newTestServer(t, func(c *Config) {
		c.Currency.Base = "JPY"
		c.Currency.Rates = map[string]float64{"JPY": 1, "USD": 150, "EUR": 160}
	})
	body := strings.Replace(string(readReq(t, "site-banner.json")), `"bidfloor":0.5,"bidfloorcur":"USD"`, `"bidfloor":5`, 1)
	body = strings.Replace(body, `"cur":["USD"],`, "", 1)
	r := ts.bidInTime([]byte(body))
	if r.StatusCode() != 200 {
		return // no campaign reaches 5 USD: right
	}
	resp := decodeResponse(t, r)
	if b := onlyBid(t, resp); resp.Cur != "USD" || b.Price < 5 {
		t.Fatalf("bid %v %s under a 5 USD floor", b.Price, resp.Cur)
	}
}

// A request without cur comes from an exchange that takes one currency, and
// OpenRTB's default is USD: it was answered in currency.base, so a bidder
// with base JPY put a JPY price before an exchange reading USD (150 times
// the bid). Now it is answered in USD, or in the exchange's configured
// currency, and gets no bid when the table has no USD rate.
func TestResponseCurrencyWithoutCur(t *testing.T) {
	// Without cur, and without a floor, so only the response currency can
	// stop a bid.
	orig := string(readReq(t, "site-banner.json"))
	body := strings.Replace(orig, `"cur":["USD"],`, "", 1)
	body = strings.Replace(body, `"bidfloor":0.5,"bidfloorcur":"USD",`, "", 1)
	if len(body) != len(orig)-len(`"cur":["USD"],`)-len(`"bidfloor":0.5,"bidfloorcur":"USD",`) {
		t.Fatal("fixture changed: no cur or floor to remove")
	}
	f := func(name string, setup func(*Config), wantCur string) {
		t.Helper()
		ts := newTestServer(t, setup)
		r := ts.do("POST", "/openrtb2/bid?exchange=jp", []byte(body))
		if wantCur == "" {
			if r.StatusCode() != 204 {
				t.Errorf("%s: status %d, want no bid", name, r.StatusCode())
			}
			return
		}
		if r.StatusCode() != 200 {
			t.Fatalf("%s: status %d, want a bid", name, r.StatusCode())
		}
		if resp := decodeResponse(t, r); resp.Cur != wantCur {
			t.Errorf("%s: answered in %q, want %s", name, resp.Cur, wantCur)
		}
	}
	f("base USD", func(c *Config) {}, "USD")
	f("base JPY", func(c *Config) {
		c.Currency.Base = "JPY"
		c.Currency.Rates = map[string]float64{"JPY": 1, "USD": 150}
	}, "USD")
	f("base JPY, exchange takes JPY", func(c *Config) {
		c.Currency.Base = "JPY"
		c.Currency.Rates = map[string]float64{"JPY": 1, "USD": 150}
		c.Exchanges = map[string]ExchangeConfig{"jp": {Currency: "JPY"}}
	}, "JPY")
	// The fixtures' campaigns are in USD, so a table without USD stops them
	// anyway: the choice itself is checked.
	r := newRates(CurrencyConfig{Base: "JPY", Rates: map[string]float64{"JPY": 1}})
	if cur, ok := r.responseCurrency(&ortb.Request{}, nil); ok {
		t.Errorf("no cur, no USD rate: answered in %s, want no bid", cur)
	}
	if cur, ok := r.responseCurrency(&ortb.Request{}, []byte("JPY")); !ok || string(cur) != "JPY" {
		t.Errorf("no cur, exchange prefers JPY: %s %v, want JPY", cur, ok)
	}
}

// A conversion whose exact result is a whole micro gives that micro, not
// one more (floors round up) or one less (bounds round down) from float64's
// rounding: 0.05 EUR at 1.1 is 55,000 USD micros. A fixed-price deal in
// another currency bid one micro over its price (found by the red-team
// pass: 3.780001 for 3.78). A genuine fraction of a micro still rounds.
func TestConversionKeepsWholeMicros(t *testing.T) {
	r := newRates(CurrencyConfig{Base: "USD", Rates: map[string]float64{"USD": 1, "EUR": 1.1, "GBP": 1.26}})
	usd := []byte("USD")
	for _, c := range []struct {
		amount float64
		cur    string
		want   int64
	}{
		{0.05, "EUR", 55_000},
		{0.09, "EUR", 99_000},
		{3, "GBP", 3_780_000},
		{3.78, "USD", 3_780_000},
		{0.0000015, "USD", 2}, // 1.5 micros: up
		{0.000001, "EUR", 2},  // 1.1 micros: up
	} {
		if got, ok := r.toResponse(c.amount, []byte(c.cur), usd); !ok || got != c.want {
			t.Errorf("floor %v %s in USD: %d micros, want %d", c.amount, c.cur, got, c.want)
		}
	}
	for _, c := range []struct {
		micros   int64
		cur, out string
		want     int64
	}{
		{50_000, "EUR", "USD", 55_000},
		{3_000_000, "GBP", "USD", 3_780_000},
		{110_000, "USD", "EUR", 100_000}, // 99999.99999999999 in float64
		{1_100_000, "USD", "EUR", 1_000_000},
		{1, "EUR", "USD", 1}, // 1.1 micros: down
		// Near the parser's limit, worth more in the response currency:
		// it overflowed int64 (negative) before; now at most MaxInt64/2.
		{9_223_372_036_853_000_000, "GBP", "USD", math.MaxInt64 / 2},
	} {
		if got, ok := r.convertMicros(c.micros, c.cur, []byte(c.out)); !ok || got != c.want {
			t.Errorf("bound %d %s micros in %s: %d, want %d", c.micros, c.cur, c.out, got, c.want)
		}
	}
}
