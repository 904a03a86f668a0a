package bidder

import (
	"strings"
	"testing"
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
	if b := onlyBid(t, resp); resp.Cur != "JPY" || b.Price < 750 {
		t.Fatalf("bid %v %s under a 5 USD floor (750 JPY)", b.Price, resp.Cur)
	}
}
