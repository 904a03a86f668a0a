package budget

import "time"

// The spend plan. Every campaign's controller follows a plan for the rest of
// its local day: the daily budget not yet spent when the plan was made,
// spread over the time left today in which the campaign may bid (its
// dayparting hours, inside its flight), evenly or in proportion to the
// traffic forecast. A campaign started, resumed or raised at noon thus plans
// its budget over the afternoon instead of finding itself half a day behind
// a plan that began at midnight, and does not burst to catch up. The plan is
// made again on a new day, when the campaign's budget, flight, dayparting,
// time zone or pacing mode change (a reload), when the forecast changes, and
// every replanEvery, so what is left (not what was due) is what the rest of
// the day spreads and errors do not accumulate.

// replanEvery is the longest a plan is followed before it is made again
// from the spend and the time left.
const replanEvery = 15 * time.Minute

// plan is one campaign's plan; owned by the pacing goroutine.
type plan struct {
	made     time.Time // when it was made (zero: never)
	day      string    // campaign-local day it plans
	key      planKey   // the campaign settings it was made for
	at, end  time.Time // the part of the day it spreads the budget over
	base     int64     // spent today when it was made
	daily    int64     // the day's budget it spreads (what is left: daily - base)
	total    float64   // weight of the eligible time in [at, end)
	forecast bool      // weights from the traffic forecast, else seconds
	gen      uint64    // the forecast's generation it used
	cur      time.Time // planAt's cursor: cum is the weight of [at, cur)
	cum      float64
}

// planKey is what a plan depends on in a campaign's settings.
type planKey struct {
	daily, total int64
	start, end   int64
	hours        [7]uint32
	pacing       PacingMode
	zone         string
}

func planKeyOf(c *Campaign) planKey {
	return planKey{daily: c.DailyMicros, total: c.TotalMicros, start: unixOrZero(c.Start), end: unixOrZero(c.End),
		hours: c.Hours, pacing: c.Pacing, zone: c.loc().String()}
}

// planSpan is what makePlan needs besides the campaign.
type planSpan struct {
	now, dayEnd time.Time
	day         string
	daily       int64 // today's budget
	spent       int64 // spent today
}

// mayBid reports whether the campaign's dayparting allows bidding at lt
// (a time in the campaign's zone).
func (c *Campaign) mayBid(lt time.Time) bool {
	if c.Hours == ([7]uint32{}) {
		return true
	}
	return c.Hours[lt.Weekday()]&(1<<uint(lt.Hour())) != 0
}

// shortfallKeep is how much of its plan a campaign that fell behind keeps
// to catch up when its plan is made again mid-day (every replanEvery, or a
// new forecast): the plan's spend of that long.
const shortfallKeep = time.Hour

// shortfallKept is what a plan made again mid-day from spent starts from:
// spent, plus what the old plan had due by now beyond it (the shortfall),
// up to what the old plan would spend in shortfallKeep; a larger
// shortfall's rest is spread over the rest of the day, and so is spend
// ahead of the plan. A plan re-made from spend alone every 15 minutes set
// the gap to the plan to 0 each time, so the controller never caught up a
// shortfall when traffic came back: traffic that came in spells (30 minutes
// on, 30 off, twice the plan's rate on average) delivered 87% of the daily
// budget, its last hour at 2.2 times its plan, and 2-minute bursts every
// half hour 35% (TestPacingTrafficInSpells). Kept whole (a plan never
// re-made), a 3-hour outage was caught up at 3.5 times the plan in the
// hour after it.
func (m *Manager) shortfallKept(pl *plan, c *Campaign, now time.Time, spent int64) int64 {
	due, _ := m.planAt(pl, c, now)
	if due <= spent || pl.end.Sub(now) < 2*shortfallKeep {
		return spent
	}
	left := pl.daily - due
	w := m.planWeight(c, pl.forecast, now, pl.end)
	if left <= 0 || w <= 0 {
		return spent
	}
	until := now.Add(shortfallKeep)
	if pl.end.Before(until) {
		until = pl.end
	}
	keep := int64(float64(left) * m.planWeight(c, pl.forecast, now, until) / w)
	return min(due, spent+keep)
}

// replanDue tells whether the plan must be made (again) now.
func (m *Manager) replanDue(pl *plan, c *Campaign, day string, daily int64, now time.Time) bool {
	switch {
	case pl.made.IsZero(), pl.day != day, pl.daily != daily, pl.key != planKeyOf(c),
		now.Sub(pl.made) >= replanEvery, now.Before(pl.made):
		return true
	case c.Pacing == PacingForecast:
		gen, have := m.fc.generation()
		return have && (!pl.forecast || gen != pl.gen)
	}
	return false
}

// makePlan spreads what is left of today's budget over the eligible time
// from now (or the flight's start) to the end of the day (or the flight).
func (m *Manager) makePlan(pl *plan, c *Campaign, s planSpan) {
	*pl = plan{made: s.now, day: s.day, key: planKeyOf(c), at: s.now, end: s.dayEnd, base: s.spent, daily: s.daily}
	if c.Start.After(pl.at) {
		pl.at = c.Start
	}
	if !c.End.IsZero() && c.End.Before(pl.end) {
		pl.end = c.End
	}
	if pl.end.Before(pl.at) {
		pl.end = pl.at
	}
	if c.Pacing == PacingForecast {
		pl.gen, pl.forecast = m.fc.generation()
	}
	pl.cur = pl.at
	pl.total = m.planWeight(c, pl.forecast, pl.at, pl.end)
}

// planAt returns the plan's spend due by now (micros spent today) and its
// spend rate now (micros/s).
func (m *Manager) planAt(pl *plan, c *Campaign, now time.Time) (target int64, rate float64) {
	left := pl.daily - pl.base
	if left <= 0 || pl.total <= 0 {
		return pl.base, 0
	}
	t := now
	if t.Before(pl.at) {
		t = pl.at
	}
	if t.After(pl.end) {
		t = pl.end
	}
	if t.Before(pl.cur) { // never: the clock does not go back within a plan
		pl.cur, pl.cum = pl.at, 0
	}
	pl.cum += m.planWeight(c, pl.forecast, pl.cur, t)
	pl.cur = t
	target = pl.base + int64(float64(left)*min(1, pl.cum/pl.total))
	if now.Before(pl.at) || !now.Before(pl.end) || !c.mayBid(now.In(c.loc())) {
		return target, 0
	}
	d := 1.0
	if pl.forecast {
		d = m.fc.density(now)
	}
	return target, float64(left) * d / pl.total
}

// planWeight is the weight of the time in [a, b) in which the campaign may
// bid: seconds, or the forecast's traffic over them. It walks the local
// hours (at most 25 a day).
func (m *Manager) planWeight(c *Campaign, forecast bool, a, b time.Time) float64 {
	if !b.After(a) {
		return 0
	}
	if forecast {
		m.fc.mu.RLock()
		defer m.fc.mu.RUnlock()
	}
	loc := c.loc()
	var w float64
	for t := a; t.Before(b); {
		lt := t.In(loc)
		next := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour()+1, 0, 0, 0, loc)
		if !next.After(t) { // a repeated hour at a DST change
			next = t.Add(time.Hour).Truncate(time.Hour)
		}
		if next.After(b) {
			next = b
		}
		if c.mayBid(lt) {
			if forecast {
				w += m.fc.cumUTC(t, next)
			} else {
				w += next.Sub(t).Seconds()
			}
		}
		t = next
	}
	return w
}
