package budget

import (
	"math"
	"sort"
	"time"
)

// Read-only views for the bidder's status page: the instances of the
// cluster, the leases this instance knows of, and each campaign's pacing
// plan for today. Each is O(campaigns) and allocates: call them when a
// person asks, never per bid.

// Peer is an instance of the cluster as this one sees it: its liveness
// record, from the watch (Self: this instance's own heartbeat).
type Peer struct {
	Instance string    `json:"instance"`
	Self     bool      `json:"self"`
	Boot     string    `json:"boot,omitempty"`   // its process (a restart changes it)
	Expires  time.Time `json:"expires,omitzero"` // its last heartbeat keeps its leases valid until then
	Alive    bool      `json:"alive"`            // heartbeat not expired (plus ReclaimWait for others)
	Left     bool      `json:"left,omitempty"`   // deleted its liveness record: a graceful stop
	// Heartbeat is when this instance last received the other's heartbeat
	// through the watch (self: when its own was last acknowledged).
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	// Silent: alive (its leases still valid) but no heartbeat arrived for
	// three sync periods: killed, hung or cut off, or this watch is behind.
	// A killed instance shows alive until its last heartbeat expires
	// (LeaseTTL, 5 min by default); silent within seconds.
	Silent bool `json:"silent,omitempty"`
}

// LeaseView is one instance's lease on one campaign, as this instance last
// saw it (its own: now; another's: the newest record the watch delivered).
type LeaseView struct {
	Campaign string `json:"campaign"`
	Instance string `json:"instance"`
	Amount   int64  `json:"amount_micros"`
	Currency string `json:"currency"` // the campaign's
}

// Peers returns this instance and every other one whose liveness record
// the watch delivered, or that holds a lease on a campaign, by instance id.
func (m *Manager) Peers() []Peer {
	now := m.cfg.Clock.Now().UnixNano()
	exp := m.live.exp.Load()
	self := Peer{Instance: m.cfg.InstanceID, Self: true, Boot: m.boot,
		Alive: m.started.Load() && !m.closed.Load() && exp >= now}
	if exp > 0 {
		self.Expires = time.Unix(0, exp)
		self.Heartbeat = time.Unix(0, exp-int64(m.cfg.LeaseTTL))
	}
	seen := map[string]bool{m.cfg.InstanceID: true}
	out := []Peer{self}
	m.live.mu.Lock()
	for inst, v := range m.live.others {
		seen[inst] = true
		p := Peer{Instance: inst, Boot: v.boot, Alive: v.alive(now, int64(m.cfg.ReclaimWait)), Left: v.deleted,
			Silent: v.silent(now, int64(m.cfg.ReclaimWait), int64(m.cfg.SyncPeriod))}
		if v.expires > 0 {
			p.Expires = time.Unix(0, v.expires)
		}
		if v.seen > 0 {
			p.Heartbeat = time.Unix(0, v.seen)
		}
		out = append(out, p)
	}
	m.live.mu.Unlock()
	// Instances known only by a lease they hold (their liveness record is
	// gone): one pass over the accounts, without a view of every lease.
	y := NewScanYield()
	for _, a := range *m.accts.Load() {
		y.Step(1)
		a.gmu.Lock()
		for _, f := range a.foreign {
			if f.amount > 0 && !seen[f.inst] {
				seen[f.inst] = true
				out = append(out, Peer{Instance: f.inst})
			}
		}
		a.gmu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}

// Leases returns every lease with money in it that this instance knows of:
// its own, and the other instances' from the newest record of each campaign.
func (m *Manager) Leases() []LeaseView {
	accts := *m.accts.Load()
	out := make([]LeaseView, 0, len(accts)) // one of its own per campaign at most: one allocation at 10,000 campaigns, not a dozen
	y := NewScanYield()
	for _, a := range accts {
		y.Step(1)
		cur := a.campaign().Currency // set before the account is published
		if v := a.lease.Load(); v > 0 {
			out = append(out, LeaseView{Campaign: a.id, Instance: m.cfg.InstanceID, Amount: v, Currency: cur})
		}
		a.gmu.Lock()
		for _, f := range a.foreign {
			if f.amount > 0 {
				out = append(out, LeaseView{Campaign: a.id, Instance: f.inst, Amount: f.amount, Currency: cur})
			}
		}
		a.gmu.Unlock()
	}
	return out
}

// Plan is a campaign's planned spend for its current day: by DayStart +
// i*(DayEnd-DayStart)/(len(Curve)-1), Curve[i]*DailyMicros should be spent.
// The pacing controller steers the global spend to this curve (ASAP pacing
// does not: its plan is shown for reference).
type Plan struct {
	Mode        string    `json:"mode"`
	DayStart    time.Time `json:"day_start"`
	DayEnd      time.Time `json:"day_end"`
	DailyMicros int64     `json:"daily_micros"`
	Curve       []float64 `json:"curve"`
}

// PacingPlan returns the campaign's plan for today at points points (at
// least 2): even, or shaped by the traffic forecast once one was learned.
// A campaign with a total budget and no daily one plans what is left spread
// evenly over the days to its end, as the controller does.
func (m *Manager) PacingPlan(id string, points int) (Plan, bool) {
	a := m.Handle(id)
	if a == nil || a.campaign() == nil {
		return Plan{}, false
	}
	points = max(points, 2)
	c := a.campaign()
	now := m.cfg.Clock.Now()
	start, end, day := dayBounds(now, c.loc())
	daily := c.DailyMicros
	if daily == 0 && !c.End.IsZero() && c.End.After(now) {
		days := max(c.End.Sub(start).Hours()/24, 1)
		daily = int64(float64(c.TotalMicros-a.spentTotal.Load()+a.spentToday(day)) / days)
	}
	p := Plan{Mode: c.Pacing.String(), DayStart: start, DayEnd: end, DailyMicros: daily, Curve: make([]float64, points)}
	shaped := c.Pacing == PacingForecast && m.fc.shares(start, end, p.Curve)
	if !shaped {
		for i := range p.Curve {
			p.Curve[i] = float64(i) / float64(points-1)
		}
	}
	return p, true
}

// shares fills out with the forecast's share of [start, end) due by evenly
// spaced instants from start to end; false when there is no forecast yet.
func (f *forecast) shares(start, end time.Time, out []float64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.have {
		return false
	}
	total := f.cumUTC(start, end)
	if total <= 0 {
		return false
	}
	step := end.Sub(start) / time.Duration(len(out)-1)
	for i := range out {
		out[i] = math.Min(1, f.cumUTC(start, start.Add(time.Duration(i)*step))/total)
	}
	return true
}

// peerCounts counts the other instances this one knows of that are alive
// with heartbeats arriving, and those alive but silent (status.go).
func (m *Manager) peerCounts() (alive, silent int) {
	now := m.cfg.Clock.Now().UnixNano()
	wait, sync := int64(m.cfg.ReclaimWait), int64(m.cfg.SyncPeriod)
	m.live.mu.Lock()
	defer m.live.mu.Unlock()
	for _, v := range m.live.others {
		switch {
		case v.silent(now, wait, sync):
			silent++
		case v.alive(now, wait):
			alive++
		}
	}
	return alive, silent
}
