package budget

import (
	"sync/atomic"
	"time"
)

// dayReport tells the record which of a campaign's reported reversals may
// lower spent_day. A report carries one cumulative figure, not one per day,
// and a provisional charge of one day reversed by a loss after the
// campaign's midnight was taken back from the new day's spent_day, so the
// new day could spend its daily budget plus the reversed charge. Now a
// reversal lowers spent_total always and spent_day only while the record's
// day is still the day its charge was counted in
// (TestReversalAfterMidnightKeepsTheNewDay).
//
// The day of a charge is told by its ledger sequence: the first charge this
// process enqueues on a campaign-local day marks the day's start (every
// entry enqueued before it is of an earlier day). A reversal whose charge
// is of an earlier day than the reversal's own is old: it never lowers
// spent_day. One of the current day lowers it if the record's day is still
// that day when the reversal is reported (applyLease). Where a charge's day
// is unsure it counts as old, which over-counts spent_day (never under):
// a charge of the last moments before midnight reported after the record's
// day rolled is counted in the new day and its reversal does not take it
// back; so is a level raised across midnight, and every reversal on an
// account with no time zone (a retired campaign).
type dayReport struct {
	dayEnd atomic.Int64 // unix ns: the end of day (0: none yet)
	day    string       // the campaign-local day of the newest charge
	seq    uint64       // entries up to this sequence are of days before day
	// Acknowledged reversals not yet reported: old ones, and those of
	// confDay's charges.
	confOld, confSame int64
	confDay           string
	kept              int64 // owned by the sync goroutine: the record's DayKept after this process's last step
}

// markCharge notes a charge enqueued at t with sequence seq. Called with the
// impression's tierShard.mu held; takes Account.mu.
func (a *Account) markCharge(t time.Time, seq uint64) {
	if t.UnixNano() < a.days.dayEnd.Load() {
		return
	}
	c := a.campaign()
	_, end, day := dayBounds(t, c.loc())
	a.mu.Lock()
	if day > a.days.day {
		a.days.day, a.days.seq = day, seq-1
	}
	a.days.dayEnd.Store(end.UnixNano())
	a.mu.Unlock()
}

// oldCharge tells whether the charge enqueued as seq, reversed at t, is of
// an earlier day than the current one, and names the current day. Called
// with the impression's tierShard.mu held; takes Account.mu.
func (a *Account) oldCharge(seq uint64, t time.Time) (old bool, day string) {
	if a.campaign().retired || t.UnixNano() >= a.days.dayEnd.Load() {
		return true, "" // no zone, or the day ended since the last charge: every charge is older
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return seq <= a.days.seq, a.days.day
}

// confirmReversal counts an acknowledged reversal of amount (under a.mu).
// Same-day reversals of a day that ended are old.
func (d *dayReport) confirmReversal(amount int64, day string, old bool) {
	switch {
	case old || day < d.confDay:
		d.confOld += amount
	case day == d.confDay:
		d.confSame += amount
	default:
		d.confOld += d.confSame
		d.confDay, d.confSame = day, amount
	}
}

// snapshot is what a step reports (under a.mu).
func (d *dayReport) snapshot() (old, same int64, day string) { return d.confOld, d.confSame, d.confDay }

// reported takes a snapshot's reversals out once its step is acknowledged
// (under a.mu).
func (d *dayReport) reported(old, same int64, day string) {
	d.confOld -= old
	if d.confDay == day {
		d.confSame -= same
	} else {
		d.confOld -= same // moved to old when the day changed
	}
}
