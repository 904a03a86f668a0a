package budget

// Unhold releases a hold this instance placed and never offered to an
// exchange (the bid was withdrawn before its answer was written, e.g. past
// its deadline). Nothing is recorded against the (auction, imp): no notice
// can come for a bid that was not sent. A hold already settled, released or
// expired is left alone. It never allocates or waits on I/O.
func (m *Manager) Unhold(h *Account, id HoldID) {
	if h == nil || id == 0 {
		return
	}
	amt, fresh, ok := m.holds.takeFresh(id, h.idx)
	if !ok {
		return
	}
	if fresh {
		h.pending.Add(-amt)
	}
	h.mu.Lock()
	h.held.Add(-amt)
	h.mu.Unlock()
	h.reserved.Add(-amt) // not a reservation after all: keep the lease sizing honest
}
