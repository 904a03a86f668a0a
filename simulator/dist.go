// Package simulator is an OpenRTB exchange simulator: it generates realistic
// bid request traffic, sends it open loop to one or more bidders over HTTP,
// runs auctions against simulated competitors, sends win/loss/billing notices
// the way exchanges do, draws clicks from a hidden ground-truth CTR model, and
// reports latency, bid and win rates, spend and calibration.
//
// It is an exchange: it imports none of the bidder's packages, only the
// OpenRTB schema types.
package simulator

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf draws ranks 0..n-1 with P(k) proportional to 1/(k+1)^s, exactly, from
// a precomputed cumulative table (n up to a few million is fine).
type Zipf struct {
	cdf []float64
	s   float64
}

// NewZipf builds the table. s may be any value >= 0 (0 is uniform).
func NewZipf(n int, s float64) *Zipf {
	if n < 1 {
		n = 1
	}
	cdf := make([]float64, n)
	sum := 0.0
	for k := 0; k < n; k++ {
		sum += math.Pow(float64(k+1), -s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return &Zipf{cdf: cdf, s: s}
}

// N is the number of ranks.
func (z *Zipf) N() int { return len(z.cdf) }

// Draw returns a rank in [0, N).
func (z *Zipf) Draw(r *rand.Rand) int {
	u := r.Float64()
	i := sort.SearchFloat64s(z.cdf, u)
	if i >= len(z.cdf) {
		i = len(z.cdf) - 1
	}
	return i
}

// LogNormal is exp(N(Mu, Sigma^2)).
type LogNormal struct {
	Mu, Sigma float64
}

// Draw returns one sample.
func (l LogNormal) Draw(r *rand.Rand) float64 {
	return math.Exp(l.Mu + l.Sigma*r.NormFloat64())
}

// CDF is P(X <= x).
func (l LogNormal) CDF(x float64) float64 {
	if x <= 0 {
		return 0
	}
	return 0.5 * math.Erfc(-(math.Log(x)-l.Mu)/(l.Sigma*math.Sqrt2))
}

// Poisson draws a Poisson(mean) count (Knuth for small means, normal
// approximation above 30).
func Poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		v := int(math.Round(mean + math.Sqrt(mean)*r.NormFloat64()))
		if v < 0 {
			return 0
		}
		return v
	}
	l := math.Exp(-mean)
	k, p := 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// RateCurve is the request rate over simulated time: Base requests per second
// times a diurnal factor 1 + Amplitude*sin(2*pi*(hour-PeakHour+6)/24), so the
// rate peaks at PeakHour (UTC) and bottoms twelve hours later. Amplitude 0 is
// a constant rate.
type RateCurve struct {
	Base      float64
	Amplitude float64 // 0..1
	PeakHour  float64 // UTC hour of the peak
}

// At is the rate at a simulated UTC hour of day (fractional).
func (c RateCurve) At(hour float64) float64 {
	if c.Amplitude == 0 {
		return c.Base
	}
	return c.Base * (1 + c.Amplitude*math.Sin(2*math.Pi*(hour-c.PeakHour+6)/24))
}

// Max is the curve's maximum rate.
func (c RateCurve) Max() float64 { return c.Base * (1 + math.Abs(c.Amplitude)) }

// Arrivals yields the arrival times of a (non-homogeneous) Poisson process by
// thinning: candidates at rate Max, each kept with probability At/Max.
type Arrivals struct {
	curve     RateCurve
	rng       *rand.Rand
	t         float64 // seconds since start, real time
	startHour float64 // simulated UTC hour at t=0
	timeScale float64 // simulated seconds per real second
}

// NewArrivals starts a process at t=0; startHour is the simulated UTC hour of
// day at t=0 and timeScale how many simulated seconds pass per real second.
func NewArrivals(c RateCurve, rng *rand.Rand, startHour, timeScale float64) *Arrivals {
	if timeScale <= 0 {
		timeScale = 1
	}
	return &Arrivals{curve: c, rng: rng, startHour: startHour, timeScale: timeScale}
}

// Next returns the next arrival time in seconds since start.
func (a *Arrivals) Next() float64 {
	max := a.curve.Max()
	if max <= 0 {
		return math.Inf(1)
	}
	for i := 0; i < 1<<20; i++ {
		a.t += a.rng.ExpFloat64() / max
		if a.curve.Amplitude == 0 {
			return a.t
		}
		h := math.Mod(a.startHour+a.t*a.timeScale/3600, 24)
		if a.rng.Float64()*max <= a.curve.At(h) {
			return a.t
		}
	}
	return a.t
}
