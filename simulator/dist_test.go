package simulator

import (
	"math"
	"math/rand/v2"
	"testing"
)

// fitZipf estimates the exponent by least squares on log(frequency) against
// log(rank) over the top ranks.
func fitZipf(counts []int, top int) float64 {
	var sx, sy, sxx, sxy float64
	n := float64(top)
	for k := 0; k < top; k++ {
		x, y := math.Log(float64(k+1)), math.Log(float64(counts[k]))
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	return -(n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func TestZipfExponent(t *testing.T) {
	f := func(n int, s float64, seed uint64) {
		t.Helper()
		z := NewZipf(n, s)
		r := rand.New(rand.NewPCG(seed, 1))
		counts := make([]int, n)
		for i := 0; i < 400_000; i++ {
			counts[z.Draw(r)]++
		}
		if got := fitZipf(counts, 30); math.Abs(got-s) > 0.05 {
			t.Errorf("Zipf(n=%d, s=%v): fitted exponent %.3f", n, s, got)
		}
		// The head's share is exact: P(0) = 1/H(n,s).
		h := 0.0
		for k := 1; k <= n; k++ {
			h += math.Pow(float64(k), -s)
		}
		p0 := 1 / h
		sd := math.Sqrt(p0 * (1 - p0) / 400_000)
		if got := float64(counts[0]) / 400_000; math.Abs(got-p0) > 5*sd {
			t.Errorf("Zipf(n=%d, s=%v): P(rank 1) %.4f, want %.4f", n, s, got, p0)
		}
	}
	f(1000, 1.1, 1)
	f(1000, 0.9, 2)
	f(100000, 0.9, 3)
}

func TestPoissonArrivalsConstantRate(t *testing.T) {
	const rate, horizon = 1000.0, 100.0
	a := NewArrivals(RateCurve{Base: rate}, rand.New(rand.NewPCG(42, 1)), 0, 1)
	var n int
	var prev, sum, sumSq float64
	for tt := a.Next(); tt < horizon; tt = a.Next() {
		gap := tt - prev
		prev = tt
		sum, sumSq = sum+gap, sumSq+gap*gap
		n++
	}
	want := rate * horizon
	if math.Abs(float64(n)-want) > 4*math.Sqrt(want) {
		t.Errorf("arrivals in %vs: %d, want %v +- 4 sd", horizon, n, want)
	}
	mean := sum / float64(n)
	cv := math.Sqrt(sumSq/float64(n)-mean*mean) / mean
	if math.Abs(cv-1) > 0.02 {
		t.Errorf("inter-arrival coefficient of variation %.3f, want 1 (exponential gaps)", cv)
	}
}

func TestDiurnalArrivals(t *testing.T) {
	// One simulated day in 100 real seconds; amplitude 0.5, peak at 20:00 UTC.
	const base, horizon = 500.0, 100.0
	c := RateCurve{Base: base, Amplitude: 0.5, PeakHour: 20}
	a := NewArrivals(c, rand.New(rand.NewPCG(7, 1)), 0, 86400/horizon)
	byHour := make([]int, 24)
	n := 0
	for tt := a.Next(); tt < horizon; tt = a.Next() {
		byHour[int(tt/horizon*24)]++
		n++
	}
	want := base * horizon // the sine integrates to zero over a day
	if math.Abs(float64(n)-want) > 4*math.Sqrt(want) {
		t.Errorf("arrivals over a day: %d, want %v", n, want)
	}
	peak, trough := float64(byHour[20]), float64(byHour[8])
	if r := peak / trough; r < 2.6 || r > 3.4 {
		t.Errorf("peak/trough hour ratio %.2f, want about (1+0.5)/(1-0.5) = 3", r)
	}
}

func TestLogNormalAndPoissonCount(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	l := LogNormal{Mu: math.Log(0.5), Sigma: 0.8}
	below, sumK := 0, 0
	const n = 100_000
	for i := 0; i < n; i++ {
		if l.Draw(r) <= 0.5 {
			below++
		}
		sumK += Poisson(r, 4)
	}
	if got := float64(below) / n; math.Abs(got-0.5) > 0.01 {
		t.Errorf("log-normal median: P(X <= 0.5) = %.3f, want 0.5", got)
	}
	if got := l.CDF(0.5); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("CDF(median) = %v", got)
	}
	if got := float64(sumK) / n; math.Abs(got-4) > 0.05 {
		t.Errorf("Poisson(4) mean %.3f", got)
	}
}
