package bidder

import (
	"math"

	"github.com/openbidder/openbidder/ortb"
)

// rates converts amounts between currencies with the configured table
// (units of the base currency per unit). A single price conversion may use
// float64; sums of money never do.
type rates struct {
	base []byte
	rate map[string]float64
}

func newRates(c CurrencyConfig) *rates {
	r := &rates{base: []byte(c.Base), rate: make(map[string]float64, len(c.Rates))}
	for k, v := range c.Rates {
		r.rate[k] = v
	}
	return r
}

func (r *rates) lookup(cur []byte) (float64, bool) {
	if len(cur) == 0 {
		cur = r.base
	}
	v, ok := r.rate[string(cur)] // no allocation: map index by converted []byte
	return v, ok
}

// responseCurrency picks the bid currency: the exchange's preferred one
// (pref, which the table knows) when the request allows it, else USD when
// the request names no currency, else the first allowed currency the table
// knows.
//
// A request without cur comes from an exchange that takes one currency,
// and OpenRTB's default is USD (bidresponse.cur and imp.bidfloorcur alike).
// Answering such a request in currency.base, as before, put a JPY price
// before an exchange that reads every price as USD: 150 times the bid. An
// exchange that takes another currency without saying so is configured
// with exchanges.NAME.currency. Without a USD rate such a request gets no
// bid.
func (r *rates) responseCurrency(req *ortb.Request, pref []byte) ([]byte, bool) {
	if pref != nil && req.AllowsCurrency(pref) {
		return pref, true
	}
	if len(req.Cur) == 0 {
		_, ok := r.lookup(ortbDefaultCur)
		return ortbDefaultCur, ok
	}
	for _, c := range req.Cur {
		if _, ok := r.rate[string(c)]; ok {
			return c, true
		}
	}
	return nil, false
}

// ortbDefaultCur is OpenRTB's default currency, whatever currency.base is:
// of a floor that names none (imp.bidfloorcur, deal.bidfloorcur) and of the
// answer to a request that lists none (bidresponse.cur).
var ortbDefaultCur = []byte("USD")

// toResponse converts a floor in cur (USD when empty) to response-currency
// micros, rounding up so a floor is never undercut.
func (r *rates) toResponse(amount float64, cur, resp []byte) (int64, bool) {
	if amount <= 0 || math.IsNaN(amount) {
		return 0, true // negative or absent floors mean no floor
	}
	if len(cur) == 0 {
		cur = ortbDefaultCur
	}
	from, ok := r.lookup(cur)
	if !ok {
		return 0, false
	}
	to, ok := r.lookup(resp)
	if !ok {
		return 0, false
	}
	return clampMicros(ceilMicros(amount * 1e6 * from / to)), true
}

// convertMicros converts micros in currency from (a campaign's) to resp,
// rounding down so a bid never exceeds what the campaign allows.
func (r *rates) convertMicros(v int64, from string, resp []byte) (int64, bool) {
	if from == ortb.B2S(resp) {
		return v, true
	}
	f, ok := r.rate[from]
	if !ok {
		return 0, false
	}
	to, ok := r.lookup(resp)
	if !ok {
		return 0, false
	}
	return clampMicros(floorMicros(float64(v) * f / to)), true
}

// clampMicros converts converted micros to int64, at most MaxInt64/2 (an
// infinity too): a campaign amount near the parser's limit in a currency
// worth more than the response's overflowed int64, came out negative, and
// the campaign never bid while explain blamed another rule.
func clampMicros(x float64) int64 {
	if !(x < math.MaxInt64/2) {
		return math.MaxInt64 / 2
	}
	return int64(x)
}

// wholeMicro is the whole number of micros x is, when x is one but for
// float64's rounding in the conversion that gave it (a relative error far
// below a micro); ok is false otherwise. 0.05 EUR at 1.1 is 55,000 USD
// micros, which float64 gives as 55000.000000000007: rounded up that was one
// micro more, and for 1,891 of 16,000 two-decimal prices at eight common
// rates the floor or bound was a micro off. A fixed-price deal's bid is its
// floor, so its price came out a micro over the deal's.
func wholeMicro(x float64) (float64, bool) {
	r := math.Round(x)
	return r, math.Abs(x-r) <= 1e-12*math.Abs(x)
}

// ceilMicros rounds converted micros up (a floor is never undercut), a whole
// micro but for float rounding staying what it is.
func ceilMicros(x float64) float64 {
	if r, ok := wholeMicro(x); ok {
		return r
	}
	return math.Ceil(x)
}

// floorMicros rounds converted micros down (a bid never exceeds what the
// campaign allows), a whole micro but for float rounding staying what it is.
func floorMicros(x float64) float64 {
	if r, ok := wholeMicro(x); ok {
		return r
	}
	return math.Floor(x)
}
