package budget

// Health is the budget store's state as readiness sees it.
type Health struct {
	// Ready: this instance can place bids. True while NATS is reachable, and
	// during an outage while some campaign still has a valid lease with
	// headroom (bids go on inside it; see Degraded).
	Ready bool
	// Degraded: NATS is unreachable but the instance bids inside the leases
	// it holds. It turns not ready (fail closed) once they are used up or
	// expire.
	Degraded bool
	// Reason says why the instance is not ready or degraded ("ok" otherwise).
	Reason string
	// LeasedCampaigns counts campaigns with a valid lease with headroom left.
	LeasedCampaigns int
}

// Health reports readiness from the connection state and the leases held. A
// NATS blip within valid leases keeps the instance ready (degraded), so a
// whole fleet does not turn unready at once while it can still bid safely;
// Allow answers fail_closed per campaign as before. O(campaigns) (it counts
// LeasedCampaigns): for a probe use Readiness.
func (m *Manager) Health() Health {
	ready, degraded, reason := m.Readiness()
	h := Health{Ready: ready, Degraded: degraded, Reason: reason}
	if ready {
		h.LeasedCampaigns = m.leasedCampaigns()
	}
	return h
}

// Readiness is Health's Ready, Degraded and Reason without the count: no
// scan while the store is reachable, and during an outage one that stops at
// the first campaign that can still bid. /readyz answers anyone on the bid
// port, and counting 10,000 campaigns there cost about as much as a bid.
func (m *Manager) Readiness() (ready, degraded bool, reason string) {
	ok, why := m.Ready()
	switch {
	case ok:
		return true, false, "ok"
	case m.closed.Load() || !m.started.Load():
		return false, false, why
	case !m.anyLeased():
		return false, false, why + "; no lease left (fail closed)"
	}
	return true, true, why + "; bidding inside held leases"
}

// leasedCampaigns counts active campaigns whose lease is valid now and has
// room for more holds.
func (m *Manager) leasedCampaigns() int {
	ns := m.cfg.Clock.Now().UnixNano()
	n := 0
	for _, a := range *m.accts.Load() {
		if m.canHold(a, ns) {
			n++
		}
	}
	return n
}

// anyLeased says whether leasedCampaigns would be above 0.
func (m *Manager) anyLeased() bool {
	ns := m.cfg.Clock.Now().UnixNano()
	for _, a := range *m.accts.Load() {
		if m.canHold(a, ns) {
			return true
		}
	}
	return false
}

func (m *Manager) canHold(a *Account, ns int64) bool {
	return a.active.Load() && m.leaseValid(a, ns) && a.spent.Load()+a.revWait.Load()+a.held.Load() < a.usableLease()
}
