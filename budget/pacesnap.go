package budget

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Pacing state across a graceful restart. A Close that writes the tier
// snapshot also writes each paced campaign's controller state (participation,
// capacity estimate, integral, the conversion of held money into spend) as a
// third object under the id (paceObject), and the next Start takes it and
// starts those controllers where the last process left them. Before, a
// restarted process started every controller at participation 1 with no
// capacity estimate, and where traffic is far above the plan (a small budget
// on broad traffic, the usual case) every graceful restart spent about 55
// minutes of the plan in its first minute (an outside audit: 1.15 units of a
// 30-unit day; TestPacingRestartKeepsController). A crash writes nothing: the
// controllers start at participation 1, as before. State older than
// paceCarryMax, or of another campaign-local day, is not used: the traffic
// it measured may have changed.
const (
	paceMagic    = "OBPC1"
	paceCarryMax = 15 * time.Minute
)

// paceObject names the pacing snapshot of instance in the levels store ('@'
// is in no instance id).
func paceObject(instance string) string { return instance + "@pace" }

type paceSnap struct {
	Magic     string                 `json:"magic"`
	Instance  string                 `json:"instance"`
	At        int64                  `json:"at"` // unix ns
	Campaigns map[string]paceCarried `json:"campaigns"`
}

// paceCarried is one controller's state.
type paceCarried struct {
	Day       string  `json:"day"` // campaign-local day of the last step
	P         float64 `json:"p"`
	CapEst    float64 `json:"cap"`
	Integ     float64 `json:"integ"`
	SResolved float64 `json:"s_resolved"`
	SDrawn    float64 `json:"s_drawn"`
}

// savePace writes the pacing snapshot for the next process (Close, with the
// tier snapshot, the pacing goroutine stopped). A failure is logged: the
// next process starts its controllers at participation 1.
func (m *Manager) savePace(ctx context.Context) {
	if m.levels == nil {
		return
	}
	now := m.cfg.Clock.Now()
	s := paceSnap{Magic: paceMagic, Instance: m.cfg.InstanceID, At: now.UnixNano(), Campaigns: map[string]paceCarried{}}
	for _, a := range *m.accts.Load() {
		pc := &a.pace
		if !pc.started || pc.capEst <= 0 || a.campaign().retired {
			continue // not paced (ASAP, no budget), or nothing measured yet
		}
		_, _, day := dayBounds(pc.lastT, a.campaign().loc())
		s.Campaigns[a.id] = paceCarried{Day: day, P: pc.p, CapEst: pc.capEst, Integ: pc.integ, SResolved: pc.sResolved, SDrawn: pc.sDrawn}
	}
	if len(s.Campaigns) == 0 {
		return
	}
	b, err := json.Marshal(&s)
	if err == nil {
		err = m.levels.putLevels(ctx, paceObject(m.cfg.InstanceID), b)
	}
	if err != nil {
		m.log.Warn("pacing snapshot not written: the next process starts its controllers at participation 1", "campaigns", len(s.Campaigns), "err", err)
		return
	}
	m.log.Info("pacing snapshot written for the next process", "campaigns", len(s.Campaigns), "bytes", len(b))
}

// loadPace takes the previous process's pacing snapshot (Start, before the
// pacing goroutine runs) and starts the controllers of the campaigns it
// names, on the same day and within paceCarryMax, where it left them.
func (m *Manager) loadPace(ctx context.Context) {
	if m.levels == nil {
		return
	}
	b, err := m.levels.takeLevels(ctx, paceObject(m.cfg.InstanceID))
	if err != nil || b == nil {
		if err != nil {
			m.log.Warn("pacing snapshot not read: controllers start at participation 1", "err", err)
		}
		return
	}
	n, err := m.restorePace(b, m.cfg.Clock.Now())
	if err != nil {
		m.log.Warn("pacing snapshot dropped", "err", err)
		return
	}
	m.log.Info("pacing controllers taken from the previous process", "campaigns", n)
}

func (m *Manager) restorePace(b []byte, now time.Time) (int, error) {
	var s paceSnap
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, fmt.Errorf("%w: pacing snapshot: %v", errLevels, err)
	}
	if s.Magic != paceMagic {
		return 0, fmt.Errorf("%w: pacing snapshot: no magic", errLevels)
	}
	if s.Instance != m.cfg.InstanceID {
		return 0, fmt.Errorf("%w: pacing snapshot written by instance %q", errLevels, s.Instance)
	}
	if age := now.Sub(time.Unix(0, s.At)); age > paceCarryMax || age < -paceCarryMax {
		return 0, nil
	}
	n := 0
	for _, a := range *m.accts.Load() {
		st, ok := s.Campaigns[a.id]
		c := a.campaign()
		if !ok || c.retired || c.Pacing == PacingASAP || !(st.P >= 0 && st.P <= 1) || !(st.CapEst > 0) {
			continue
		}
		if _, _, day := dayBounds(now, c.loc()); day != st.Day {
			continue
		}
		pc := &a.pace
		pc.started, pc.lastT, pc.lastReserved = true, now, a.reserved.Load()
		pc.p, pc.capEst, pc.integ = st.P, st.CapEst, st.Integ
		pc.sResolved, pc.sDrawn = max(st.SResolved, 0), max(st.SDrawn, 0)
		a.throttle.Store(probToThreshold(st.P))
		a.capacity.Store(int64(st.CapEst))
		n++
	}
	return n, nil
}
