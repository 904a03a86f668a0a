package shading

import (
	"math"
	"testing"
)

// gridOptimal is the brute-force answer Optimal must match.
func gridOptimal(c Curve, value, floor float64) float64 {
	best, bestS := floor, -1.0
	const n = 200000
	for i := 0; i <= n; i++ {
		b := floor + (value-floor)*float64(i)/n
		if s := c.Surplus(value, b); s > bestS {
			best, bestS = b, s
		}
	}
	return best
}

func TestOptimalMatchesGrid(t *testing.T) {
	for _, tc := range []struct {
		name             string
		mu, sigma        float64
		value, floor     float64
		wantFloor, wantV bool
	}{
		{name: "value far above competition", mu: math.Log(2), sigma: 0.5, value: 20, floor: 0.1},
		{name: "value near the median", mu: math.Log(5), sigma: 0.8, value: 5, floor: 0.3},
		{name: "value below the median", mu: math.Log(5), sigma: 0.8, value: 2, floor: 0.3},
		{name: "narrow curve", mu: math.Log(3), sigma: 0.05, value: 4, floor: 1},
		{name: "wide curve", mu: math.Log(3), sigma: 3, value: 4, floor: 0.01},
		{name: "no floor", mu: math.Log(3), sigma: 0.7, value: 10, floor: 0},
		{name: "floor binds", mu: math.Log(0.5), sigma: 0.3, value: 10, floor: 3, wantFloor: true},
		{name: "micros scale", mu: math.Log(4e6), sigma: 0.7, value: 12e6, floor: 3e5},
		{name: "competition far above", mu: math.Log(500), sigma: 0.5, value: 1, floor: 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Curve{Mu: tc.mu, Sigma: tc.sigma}
			got := c.Optimal(tc.value, tc.floor)
			if got > tc.value || got < tc.floor {
				t.Fatalf("Optimal = %v outside [floor %v, value %v]", got, tc.floor, tc.value)
			}
			if tc.wantFloor && got != tc.floor {
				t.Fatalf("Optimal = %v, want the floor %v", got, tc.floor)
			}
			want := gridOptimal(c, tc.value, tc.floor)
			sGot, sWant := c.Surplus(tc.value, got), c.Surplus(tc.value, want)
			if sGot < sWant*(1-1e-6)-1e-300 {
				t.Fatalf("Optimal = %v (surplus %v) worse than grid %v (surplus %v)", got, sGot, want, sWant)
			}
			if sWant > 1e-12*tc.value && math.Abs(got-want) > 1e-3*tc.value {
				t.Fatalf("Optimal = %v, grid optimum %v", got, want)
			}
		})
	}
}

func TestOptimalEdges(t *testing.T) {
	c := Curve{Mu: math.Log(2), Sigma: 0.5}
	for _, tc := range []struct {
		name         string
		c            Curve
		value, floor float64
		want         float64
	}{
		{"zero value", c, 0, 0, 0},
		{"floor at value", c, 3, 3, 3},
		{"floor above value", c, 3, 4, 3},
		{"no sigma", Curve{Mu: 1}, 3, 0.1, 3},
		{"nan mu", Curve{Mu: math.NaN(), Sigma: 1}, 3, 0.1, 3},
	} {
		if got := tc.c.Optimal(tc.value, tc.floor); got != tc.want {
			t.Errorf("%s: Optimal(%v, %v) = %v, want %v", tc.name, tc.value, tc.floor, got, tc.want)
		}
	}
}

// The analytic first-order condition v = b (1 + Sigma Phi(z)/phi(z)) holds
// at an interior optimum.
func TestOptimalFirstOrderCondition(t *testing.T) {
	c := Curve{Mu: math.Log(4), Sigma: 0.7}
	for _, v := range []float64{3, 6, 10, 40} {
		b := c.Optimal(v, 0)
		z := (math.Log(b) - c.Mu) / c.Sigma
		if got := b * (1 + c.Sigma*normCDF(z)/normPDF(z)); math.Abs(got-v) > 1e-6*v {
			t.Errorf("value %v: bid %v gives b(1+Sigma R) = %v", v, b, got)
		}
	}
}

func TestMillsRTails(t *testing.T) {
	for _, z := range []float64{-100, -36, -35, -10, -3, 0, 3, 10, 35, 40} {
		r := millsR(z)
		if !(r > 0) || math.IsInf(r, 0) {
			t.Errorf("millsR(%v) = %v", z, r)
		}
		if z < 0 {
			if want := -1 / z; math.Abs(r-want) > 0.02*want && z < -10 {
				t.Errorf("millsR(%v) = %v, asymptote %v", z, r, want)
			}
		}
	}
}

func BenchmarkOptimal(b *testing.B) {
	c := Curve{Mu: math.Log(4e6), Sigma: 0.7}
	b.ReportAllocs()
	v := 12e6
	var sink float64
	for i := 0; b.Loop(); i++ {
		sink += c.Optimal(v+float64(i&1023)*1e3, 3e5)
	}
	_ = sink
}
