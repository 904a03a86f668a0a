package budget

import "time"

// The global figures of a campaign (spend today and in total, money left,
// money nobody holds, the other instances' leases) come from the newest
// record seen: the result of this instance's own steps, and every record the
// store's watch pushes when any instance writes one. Only changed records
// travel, so pacing sees global spend within a sync period of it being
// reported while idle campaigns cost nothing.

// onChange applies a record or liveness record delivered by the watch.
func (m *Manager) onChange(ch Change) {
	switch {
	case ch.Record != nil:
		a := m.Handle(ch.Campaign)
		if a == nil {
			a = m.unloadedRecord(ch.Campaign, ch.Record.Currency)
		}
		if a != nil {
			m.setGlobal(a, ch.Record, m.cfg.Clock.Now())
		}
	case ch.Instance != "" && ch.Instance != m.cfg.InstanceID:
		m.onLiveness(ch)
	case ch.Instance != "":
		m.onOwnLiveness(ch)
	}
}

// unloadedRecord notes the currency of a record of a campaign with no
// account here (SetCampaigns refuses to add it in another one). It returns
// the campaign's account if SetCampaigns added it meanwhile.
func (m *Manager) unloadedRecord(id, currency string) *Account {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.byID[id]; a != nil {
		return a
	}
	if currency != "" {
		if m.otherCur == nil {
			m.otherCur = map[string]string{}
		}
		m.otherCur[id] = currency
	}
	return nil
}

// setGlobal installs rec's figures unless a newer record was seen already.
// When the record shows this instance's lease reclaimed while it believes it
// holds one, the account takes a step at the next round.
func (m *Manager) setGlobal(a *Account, rec *Record, now time.Time) {
	c := a.campaign()
	_, _, day := dayBounds(now, c.loc())
	spentDay := spentOnDay(rec.Day, rec.SpentDay, day)
	remaining := budgetLeft(&Record{SpentTotal: rec.SpentTotal, SpentDay: spentDay},
		leaseReq{total: c.TotalMicros, daily: c.DailyMicros})
	var leased, reserveEnd, reserveAmt int64
	var foreign []foreignLease
	ownBoot := ""
	for inst, l := range rec.Leases {
		leased += l.outstanding(now.UnixNano())
		if l.Reserve > 0 {
			reserveEnd = max(reserveEnd, l.ReserveUntil)
			if now.UnixNano() < l.ReserveUntil {
				reserveAmt += l.Reserve
			}
		}
		switch {
		case inst == m.cfg.InstanceID:
			if !l.Reclaimed {
				ownBoot = l.Boot
			}
		case !l.Reclaimed:
			foreign = append(foreign, foreignLease{inst: inst, boot: l.Boot, expires: l.Expires, amount: l.Amount, capacity: l.Cap})
		}
	}
	recDay := rec.Day
	a.gmu.Lock()
	if rec.Rev != 0 && rec.Rev <= a.recRev {
		a.gmu.Unlock()
		return
	}
	a.recRev = rec.Rev
	a.foreign = foreign
	a.reserveEnd, a.reserveAmt = reserveEnd, reserveAmt
	a.ownBoot = ownBoot
	a.recDay.Store(&recDay)
	if cur := rec.Currency; cur != "" {
		a.recCur.Store(&cur)
	}
	if rec.Currency == "" || rec.Currency == c.Currency {
		a.seeBudget(c, m.cfg.InstanceID, rec.BudgetBy, rec.BudgetDaily, rec.BudgetTotal, rec.BudgetZone, rec.BudgetPacing, now)
	}
	a.spentDay.Store(rec.SpentDay)
	a.spentTotal.Store(rec.SpentTotal)
	a.remaining.Store(remaining)
	a.poolFree.Store(max(remaining-leased, 0))
	a.gmu.Unlock()
	if own, ok := rec.Leases[m.cfg.InstanceID]; (!ok || own.Reclaimed) && a.lease.Load() > 0 {
		a.poke.Store(true)
	}
}

// spentToday is the campaign's global spend today (campaign-local day), as of
// the newest record seen, without this instance's unreported spend.
func (a *Account) spentToday(day string) int64 {
	if d := a.recDay.Load(); d != nil {
		return spentOnDay(*d, a.spentDay.Load(), day)
	}
	return 0
}
