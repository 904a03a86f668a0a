package budget

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Pacing controller constants. The controller works on the spend rate: it
// estimates the campaign's spend rate at full participation (capacity) from
// global spend, asks for the plan's rate plus a proportional correction of the
// gap to the plan (closed in about pacingTc) plus an integral term, and turns
// that rate into a participation probability.
const (
	pacingTc    = 600.0  // seconds to close a gap to the plan (P term)
	pacingTi    = 3600.0 // integral time
	capAlpha    = 0.05   // EWMA weight of one second's capacity estimate
	minCapProbe = 0.02   // below this participation the capacity estimate is not updated
)

// pacer is one campaign's controller; owned by the pacing goroutine.
type pacer struct {
	p         float64
	integ     float64 // integral of the gap, micros*s
	capEst    float64 // spend per second at p=1, micros/s
	lastSpent int64
	lastT     time.Time
	started   bool
}

// pacingIn is one controller step's input.
type pacingIn struct {
	now      time.Time
	spent    int64   // global spend today
	daily    int64   // today's budget
	frac     float64 // share of the day's plan due by now
	fracRate float64 // share of the day's plan due per second now
	asap     bool
}

// step updates the participation probability and returns it with the target.
func (pc *pacer) step(in pacingIn) (p float64, target int64) {
	target = int64(float64(in.daily) * in.frac)
	if in.asap || in.daily <= 0 {
		pc.p = 1
		return 1, target
	}
	if !pc.started {
		pc.started, pc.p, pc.lastT, pc.lastSpent = true, 1, in.now, in.spent
		return pc.p, target
	}
	dt := in.now.Sub(pc.lastT).Seconds()
	if dt <= 0 {
		return pc.p, target
	}
	if d := in.spent - pc.lastSpent; d >= 0 && pc.p >= minCapProbe {
		inst := float64(d) / dt / pc.p
		if pc.capEst == 0 {
			pc.capEst = inst
		} else {
			pc.capEst += capAlpha * (inst - pc.capEst)
		}
	}
	pc.lastT, pc.lastSpent = in.now, in.spent
	gap := float64(target - in.spent)
	rate := float64(in.daily)*in.fracRate + gap/pacingTc + pc.integ/(pacingTc*pacingTi)
	p = 1.0
	if pc.capEst > 0 {
		p = rate / pc.capEst
	}
	satHigh, satLow := p >= 1, p <= 0
	p = math.Min(1, math.Max(0, p))
	if !(satHigh && gap > 0) && !(satLow && gap < 0) {
		pc.integ += gap * dt
	}
	// Never stop completely while behind: keep probing so capacity stays known.
	if gap > 0 && p < minCapProbe {
		p = minCapProbe
	}
	pc.p = p
	return p, target
}

func probToThreshold(p float64) uint64 {
	if p >= 1 {
		return ^uint64(0)
	}
	if p <= 0 {
		return 0
	}
	return uint64(p * (1 << 64))
}

// dayBounds returns the campaign-local day containing t.
func dayBounds(t time.Time, loc *time.Location) (start, end time.Time, day string) {
	lt := t.In(loc)
	y, mo, d := lt.Date()
	start = time.Date(y, mo, d, 0, 0, 0, 0, loc)
	end = time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	return start, end, start.Format("2006-01-02")
}

type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte
}

// forecast learns the instance's traffic per minute of the UTC day from
// ObserveRequest and shapes forecast pacing.
type forecast struct {
	cur [16]paddedCounter

	mu      sync.RWMutex
	today   [1440]float64
	w       [1440]float64
	prefix  [1441]float64
	have    bool
	dayNum  int64
	started bool
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
		f.started, f.dayNum = true, day
	}
	if day != f.dayNum {
		var total float64
		for _, v := range f.today {
			total += v
		}
		if total > 0 {
			for i := range f.w {
				if f.have {
					f.w[i] = 0.7*f.w[i] + 0.3*f.today[i]
				} else {
					f.w[i] = f.today[i]
				}
			}
			f.have = true
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

// shape returns the share of the plan due by now and the share per second,
// for a campaign-local day [start, end).
func (f *forecast) shape(now, start, end time.Time) (frac, rate float64, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.have {
		return 0, 0, false
	}
	total := f.cumUTC(start, end)
	if total <= 0 {
		return 0, 0, false
	}
	done := f.cumUTC(start, now)
	i := int((now.Unix()%86400 + 86400) % 86400 / 60)
	rate = (f.prefix[i+1] - f.prefix[i]) / 60 / total
	return math.Min(1, done/total), rate, true
}
