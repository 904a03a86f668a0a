package budget

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte
}

// forecast learns the instance's traffic per minute of the UTC day from
// ObserveRequest and shapes forecast pacing.
type forecast struct {
	cur [16]paddedCounter

	mu      rwMutex[lkForecast]
	today   [1440]float64
	w       [1440]float64
	prefix  [1441]float64
	have    bool
	gen     uint64 // bumped whenever w changes: plans made on older weights are made again
	dayNum  int64
	started bool
	// from is the first minute of today this process counted (0 once a
	// whole day was seen): the minutes before it are not a day's shape.
	// Installed as one (no requests then), a start at noon planned the
	// next day's whole budget into the afternoon (nothing bid before noon)
	// and one at 23:00 into its last hour (an outside audit: 6.7% of the
	// day delivered). They are learned as the mean minute of the ones
	// seen, so a process restarted every day (a daily deploy) still learns
	// the shape of the hours it sees.
	from int
}

// ObserveRequest counts one bid request for the traffic forecast. No
// allocation, no lock.
func (m *Manager) ObserveRequest(now time.Time) {
	_ = now
	m.fc.cur[rand.Uint32()&15].n.Add(1)
}

// fold moves the counted requests into the minute of now; on a new UTC day
// it blends the finished day into the forecast.
func (f *forecast) fold(now time.Time) {
	var n uint64
	for i := range f.cur {
		n += f.cur[i].n.Swap(0)
	}
	u := now.UTC()
	day := u.Unix() / 86400
	minute := u.Hour()*60 + u.Minute()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started {
		// The first fold comes a second after the start: a start in the
		// day's first two minutes still sees it (nearly) whole.
		f.started, f.dayNum = true, day
		if minute > 1 {
			f.from = minute
		}
	}
	if day != f.dayNum {
		var total float64
		for _, v := range f.today[f.from:] {
			total += v
		}
		if total > 0 && f.from > 0 {
			mean := total / float64(1440-f.from)
			for i := range f.from {
				f.today[i] = mean
			}
			total += mean * float64(f.from)
		}
		f.from = 0
		if total > 0 {
			for i := range f.w {
				if f.have {
					f.w[i] = 0.7*f.w[i] + 0.3*f.today[i]
				} else {
					f.w[i] = f.today[i]
				}
			}
			f.have = true
			f.gen++
			f.prefix[0] = 0
			for i, v := range f.w {
				f.prefix[i+1] = f.prefix[i] + v + 1e-9
			}
		}
		f.today = [1440]float64{}
		f.dayNum = day
	}
	f.today[minute] += float64(n)
}

// setWeights installs a forecast directly (tests, or a forecast restored from elsewhere).
func (f *forecast) setWeights(w [1440]float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w, f.have = w, true
	f.gen++
	for i, v := range f.w {
		f.prefix[i+1] = f.prefix[i] + v + 1e-9
	}
}

// cumUTC returns the forecast weight from UTC instant a to b (b-a <= 24h).
func (f *forecast) cumUTC(a, b time.Time) float64 {
	at := float64(a.Unix()%86400+86400)/60 - 0
	bt := at + b.Sub(a).Minutes()
	return f.cumMinutes(math.Mod(at, 1440), math.Mod(at, 1440)+(bt-at))
}

// cumMinutes integrates the per-minute weights from minute a to b (a in
// [0,1440), b >= a, b-a <= 1440), wrapping around midnight.
func (f *forecast) cumMinutes(a, b float64) float64 {
	at := func(x float64) float64 { // integral from 0 to x, x in [0, 2880]
		full := math.Floor(x / 1440)
		x -= full * 1440
		i := int(x)
		v := full*f.prefix[1440] + f.prefix[i]
		if i < 1440 {
			v += (x - float64(i)) * (f.prefix[i+1] - f.prefix[i])
		}
		return v
	}
	return at(b) - at(a)
}

// generation returns the generation of the weights, and whether a
// forecast is known at all.
func (f *forecast) generation() (uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.gen, f.have
}

// density is the forecast weight per second at t.
func (f *forecast) density(t time.Time) float64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	i := int((t.Unix()%86400 + 86400) % 86400 / 60)
	return (f.prefix[i+1] - f.prefix[i]) / 60
}
