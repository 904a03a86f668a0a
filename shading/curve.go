// Package shading learns first-price win-probability curves from win and loss
// notices and picks the bid that maximises expected surplus.
//
// A segment's curve models the minimum bid to win, M (the highest competing
// bid, or the floor), as log-normal: ln M ~ N(Mu, Sigma^2), so a bid b wins
// with probability W(b) = Phi((ln b - Mu) / Sigma). Notices update it online
// (model.go): a win at b says M <= b, a loss at b says M > b, and a minimum
// bid to win m (${AUCTION_MIN_TO_WIN}) says M = m. The bid for value v is
// argmax over b in [floor, v] of (v - b) W(b) (Curve.Optimal).
//
// The package knows prices as float64 in whatever unit the caller learns and
// bids in (the bidder uses CPM micros of the response currency); it knows no
// requests, campaigns or budgets.
package shading

import "math"

const (
	sqrt2    = math.Sqrt2
	invSqrt2 = 1 / math.Sqrt2
	sqrt2Pi  = 2.5066282746310002 // sqrt(2 pi)
	// zLimit bounds |z| where Phi and phi are evaluated: phi(38) underflows
	// to 0 and Phi(-38) with it; past it the asymptotic forms are used.
	zLimit = 35
)

// Curve is one segment's learned win-probability curve.
type Curve struct {
	Mu    float64 // mean of ln M (M: the minimum bid to win)
	Sigma float64 // standard deviation of ln M (> 0)
	N     int     // observations behind it (saturates at the model's memory)
	Level Level   // which key of the segment it came from
}

// WinProb is W(b) = P(M <= b): the probability that bid b wins.
func (c Curve) WinProb(b float64) float64 {
	if b <= 0 || c.Sigma <= 0 {
		return 0
	}
	return normCDF((math.Log(b) - c.Mu) / c.Sigma)
}

// Surplus is the expected surplus (value - b) W(b) of bidding b.
func (c Curve) Surplus(value, b float64) float64 {
	return (value - b) * c.WinProb(b)
}

// Optimal is the bid in [floor, value] that maximises (value - b) W(b).
// The objective is log-concave in b (W is the log-normal CDF, whose log is
// concave in b), so its stationary point is the unique maximum and the
// answer clamped into [floor, value] is the constrained one. The stationary
// point solves h(u) = u + ln(1 + Sigma R(z)) - ln value = 0 in u = ln b,
// z = (u - Mu)/Sigma, R = Phi/phi (the first-order condition
// value = b (1 + Sigma Phi(z)/phi(z))); h is increasing with h' >= 1, so a
// Newton iteration kept inside a bracket by bisection finds it in a few
// steps (typically 3 to 6). It allocates nothing. value <= 0 or floor >=
// value give value (nothing to shade); a floor <= 0 means none.
func (c Curve) Optimal(value, floor float64) float64 {
	if value <= 0 || floor >= value || c.Sigma <= 0 || math.IsNaN(c.Mu) {
		return value
	}
	lv := math.Log(value)
	lo, hi := lv-60, lv // h(lv - 60) < 0 < h(lv) = ln(1 + Sigma R)
	u := c.Mu           // start where W = 1/2, kept inside the bracket
	if u >= hi || u <= lo {
		u = hi - c.Sigma
	}
	for range 60 {
		h, dh := c.foc(u, lv)
		if h > 0 {
			hi = u
		} else {
			lo = u
		}
		next := u - h/dh
		if !(next > lo && next < hi) { // also catches NaN
			next = lo + (hi-lo)/2
		}
		done := math.Abs(next-u) < 1e-7 // relative precision of the price
		u = next
		if done {
			break
		}
	}
	// Log-concave: an unconstrained optimum under the floor means the floor.
	return min(max(math.Exp(u), floor), value)
}

// foc is h(u) and h'(u) of Optimal's first-order condition.
func (c Curve) foc(u, lv float64) (h, dh float64) {
	z := (u - c.Mu) / c.Sigma
	r := millsR(z)
	h = u + math.Log1p(c.Sigma*r) - lv
	dh = 1 + (1+z*r)/(1+c.Sigma*r) // R' = 1 + z R > 0
	return h, dh
}

// normCDF is Phi(z).
func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z*invSqrt2) }

// normPDF is phi(z).
func normPDF(z float64) float64 { return math.Exp(-z*z/2) / sqrt2Pi }

// millsR is R(z) = Phi(z)/phi(z), the reciprocal of the reversed hazard:
// it runs from ~ -1/z (z -> -inf) to ~ sqrt(2 pi) exp(z^2/2) (z -> +inf).
func millsR(z float64) float64 {
	switch {
	case z < -zLimit:
		z2 := z * z
		return -1 / z * (1 - 1/z2 + 3/(z2*z2)) // asymptotic series
	case z > zLimit:
		z = zLimit
	}
	return normCDF(z) / normPDF(z)
}

// hazards are phi/Phi (a win's pull) and phi/(1 - Phi) (a loss's), both
// finite for every z.
func winHazard(z float64) float64  { return 1 / millsR(z) }
func lossHazard(z float64) float64 { return 1 / millsR(-z) }
