package bidder

import (
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
	r := ts.bid([]byte(body))
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
