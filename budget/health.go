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
// Allow answers fail_closed per campaign as before. O(campaigns): call it
// from probes and scrapes, not per bid.
func (m *Manager) Health() Health {
	ok, why := m.Ready()
	switch {
	case ok:
		return Health{Ready: true, Reason: "ok", LeasedCampaigns: m.leasedCampaigns()}
	case m.closed.Load() || !m.started.Load():
		return Health{Reason: why}
	}
	n := m.leasedCampaigns()
	if n == 0 {
		return Health{Reason: why + "; no lease left (fail closed)"}
	}
	return Health{Ready: true, Degraded: true, Reason: why + "; bidding inside held leases", LeasedCampaigns: n}
}

// leasedCampaigns counts active campaigns whose lease is valid now and has
// room for more holds.
func (m *Manager) leasedCampaigns() int {
	ns := m.cfg.Clock.Now().UnixNano()
	n := 0
	for _, a := range *m.accts.Load() {
		if a.active.Load() && m.leaseValid(a, ns) &&
			a.spent.Load()+a.held.Load() < a.lease.Load() {
			n++
		}
	}
	return n
}
