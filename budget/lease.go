package budget

import (
	"math"
	"slices"
	"time"
)

// leaseReq is one instance's lease step on a campaign's record.
type leaseReq struct {
	instance string
	currency string // the campaign's; "" is not checked
	now      time.Time
	day      string
	// dayStart and dayEnd bound day in the campaign's time zone (unix ns;
	// 0 where day is ""); zone is that zone's name.
	dayStart, dayEnd int64
	zone             string
	pacing           string // the campaign's pacing mode in this instance's file (Record.BudgetPacing)
	total, daily     int64  // 0 means no limit
	budgetKnown      bool   // total and daily are the campaign file's (not a retired campaign's)
	boot             string
	acked            int64 // cumulative spend this process reported in steps that succeeded
	reported         int64 // cumulative spend this process reports, including this step's new part
	cum              int64 // the ledger's cumulative figure (LedgerEntry.Cum) through the entries in reported
	// The reversals in reported (dayReport): keptAcked is the cumulative
	// amount of this process's reported reversals that did not lower
	// spent_day, as of its last acknowledged step; kept adds those of this
	// report whose charge was counted on an earlier day than sameDay, and
	// keptSame adds the rest too (charges of sameDay: they lower spent_day
	// only while the record's day is still sameDay).
	keptAcked, kept, keptSame int64
	sameDay                   string
	want                      int64 // outstanding lease wanted after the report
	capacity                  int64 // the pacing controller's capacity estimate, written into the entry (Lease.Cap)
	committed                 int64 // the part of want already committed (unreported spend, open holds): granted whatever the pool
	ttl, reclaim              time.Duration
	reserveFor                time.Duration // how long a takeover mark's reserve stands (LeaseTTL + ReclaimWait)
	// restored are the boots of the processes whose open holds this one
	// restored from their snapshots: such an entry's money is in this
	// process's holds, and a takeover reserves none of it.
	restored []string
	// leftOut: some of this campaign's holds in a restored snapshot were
	// left out; the takeover reserves the entry less what is committed.
	leftOut     bool
	release     bool // give everything back (graceful close)
	heldLocally bool // this instance believes its lease entry is in the record
	// twin is the boot of another running process under this instance id
	// whose heartbeat this one saw after its own and is still valid ("" when
	// none).
	twin string
	// ackedSeq is the queue sequence of the last ledger entry acknowledged
	// to this process (the one cum is of).
	ackedSeq uint64
	// lapsed names the instances whose liveness records were read from the
	// store's authority and showed them lapsed (see reclaimable).
	lapsed map[string]lapse
	// tails are the ledger's last figures of lapsed instances on this
	// campaign: a lease is reclaimed only with its owner's tail read.
	tails map[string]ledgerTail
	// prev is the ledger's last figure of this instance on this campaign,
	// read when the record holds an entry of a previous process (nil: not read).
	prev *ledgerTail
}

// lapse is what an authoritative liveness read showed: the record's boot and
// expiry ("" and 0 when there was none) and when it was read.
type lapse struct {
	boot    string
	expires int64
	readAt  int64
}

type leaseRes struct {
	amount     int64
	floor      int64 // the part of amount granted above the pool because it was committed (no headroom)
	expires    int64
	kept       bool     // this instance's entry stays in the record
	lost       bool     // the lease was reclaimed by another instance before this report
	reclaimed  int      // foreign leases reclaimed in this step
	suspects   []string // foreign owners whose lease is past its own expiry (liveness to check)
	needTail   []string // lapsed owners whose lease waits for a read of their ledger tail
	gap        int64    // acknowledged spend of dead processes moved into the record (the crash gap)
	gapUnknown int      // dead processes' leases whose unreported spend could not be read
	poolFree   int64    // money nobody holds after this step
	remaining  int64    // budget minus spend
	spentDay   int64
	spentTotal int64
	dayKept    int64 // the entry's DayKept after the step
	// wrongCurrency is the record's currency when it is not the
	// campaign's: the step changed nothing.
	wrongCurrency string
	// The budget and time zone another instance wrote last (otherBy "":
	// none); seeBudget compares them with this instance's.
	otherBy, otherZone     string
	otherPacing            string
	otherDaily, otherTotal int64
}

const unlimited = math.MaxInt64 / 4

// applyLease is the whole global protocol: roll the day, reclaim lapsed
// foreign leases, move reported spend out of the lease, then grant no more
// than the budget minus spend minus every other outstanding lease. An entry
// left with nothing (no amount, nothing wanted, nothing in flight) is removed,
// so an idle campaign costs its instance nothing, not even at close.
func applyLease(rec *Record, q leaseReq) leaseRes {
	var res leaseRes
	if rec.Currency == "" {
		rec.Currency = q.currency // a new record, or one written before records named theirs
	}
	if q.currency != "" && rec.Currency != q.currency {
		// No lease in another currency. The step still reports: every
		// micro this process charged was for a bid placed under a lease,
		// and a lease is only granted in the record's currency (a previous
		// process's bids, settled here), so its spend is the record's
		// money. Left unreported it was lost at the next restart (a
		// process with no entry is never reclaimed). Its entry is kept
		// (with no amount) while it has spend to report, for a crash's
		// reclaim, and it never rolls the record's day: its time zone
		// may be another campaign file's too.
		res.wrongCurrency = rec.Currency
		q.day = ""
	}
	if rec.Leases == nil {
		rec.Leases = map[string]Lease{}
	}
	rollDay(rec, q)
	now := q.now.UnixNano()
	if q.budgetKnown && res.wrongCurrency == "" {
		if rec.BudgetBy != "" && rec.BudgetBy != q.instance {
			res.otherBy, res.otherDaily, res.otherTotal, res.otherZone = rec.BudgetBy, rec.BudgetDaily, rec.BudgetTotal, rec.BudgetZone
			res.otherPacing = rec.BudgetPacing
		}
		rec.BudgetBy, rec.BudgetDaily, rec.BudgetTotal, rec.BudgetZone = q.instance, q.daily, q.total, q.zone
		rec.BudgetPacing = q.pacing
	}
	reclaimForeign(rec, q, now, &res)
	waiting := behindMark(rec, q)
	if waiting {
		res.lost = q.heldLocally
		res.dayKept = max(keptNow(rec, q), q.keptAcked) // nothing reported: the next try reports from here
	}
	if waiting || reportTaken(rec, q, now, &res) {
		// Waiting for acknowledgements, or a later process under this
		// instance id holds the entry: its spend went into the record
		// through the mark the takeover left, and this one gets no lease.
		res.remaining = budgetLeft(rec, q)
		res.spentDay, res.spentTotal = rec.SpentDay, rec.SpentTotal
		return res
	}
	own := reportOwn(rec, q, now, &res)
	remaining := budgetLeft(rec, q)
	var others int64
	for inst, l := range rec.Leases {
		if inst != q.instance {
			others += l.outstanding(now)
		}
	}
	avail := max(remaining-others, 0)
	amount := min(max(q.want, 0), avail)
	// Never below what is committed (open holds, spend not reported yet):
	// those bids are placed, and their bills draw from the
	// holds as covered. Granted less after a budget cut (a reload, or a
	// restart restoring its holds under a lower budget), the rest counted as
	// free in the pool, and another instance bid it once the budget was
	// raised again: an outside audit spent 57,000 of a 30,000 budget with
	// nothing counted late.
	// The part above the pool is not the instance's to bid (res.floor):
	// as those holds end it goes back at the next step (stepDue), not to
	// new bids (an outside review: cut to 1,000 under 10,000 of holds, the
	// holds lost, and 10,000 of new bids placed on the floor's lease).
	pooled := amount
	amount = max(amount, min(max(q.committed, 0), max(q.want, 0)))
	if res.wrongCurrency != "" {
		amount, pooled = 0, 0 // no lease in another currency
	}
	res.floor = amount - pooled
	// A step that reports nothing new (and has no report of unknown outcome
	// behind it) may drop the entry: a retry finds no entry and takes q.acked
	// as its base, which is then exact.
	if amount == 0 && (q.release || (q.want <= 0 && q.reported == q.acked && q.keptSame == q.keptAcked)) {
		delete(rec.Leases, q.instance)
	} else {
		own.Amount, own.Expires, own.Cap = amount, now+int64(q.ttl), q.capacity
		rec.Leases[q.instance] = own
		res.kept = true
	}
	res.amount, res.expires = amount, now+int64(q.ttl)
	res.poolFree = max(avail-amount, 0)
	res.remaining = remaining
	res.spentDay, res.spentTotal = rec.SpentDay, rec.SpentTotal
	return res
}

// reportOwn moves the spend reported since this process's last step out of
// its lease into the record's spend; it returns the entry to write back. A
// report may be negative (a provisional charge reversed after it was
// reported). An entry of a previous process of this instance (a restart) is
// taken over: the spend that process had charged but not reported (the
// ledger's last figure minus the entry's Cum) is added first.
func reportOwn(rec *Record, q leaseReq, now int64, res *leaseRes) Lease {
	own, had := rec.Leases[q.instance]
	res.lost = q.heldLocally && (!had || own.Reclaimed)
	base := q.acked // what this process reported before is in the record, entry or not
	baseKept := q.keptAcked
	if had && own.Boot != q.boot && own.Boot != "" {
		// The entry is a previous process's: it is taken over below, and
		// its figures stay in the record as that process's takeover mark
		// (reportTaken), in case it is still running.
		mark := own
		if !own.Reclaimed {
			mark = Lease{Expires: now, Boot: own.Boot, Reported: own.Reported, Cum: own.Cum, DayKept: own.DayKept, Reclaimed: true}
		}
		defer func() { rec.Leases[takenKey(q.instance, mark.Boot)] = mark }()
		gap := int64(0)
		if !own.Reclaimed && q.prev != nil && q.prev.boot == own.Boot {
			gap = q.prev.cum - own.Cum
			mark.Reported += gap
			mark.Cum, mark.Seq = q.prev.cum, q.prev.seq
		}
		if !own.Reclaimed && (!slices.Contains(q.restored, own.Boot) || q.leftOut) {
			// The previous process's open holds did not come with a
			// snapshot (it died, or its close wrote none, or some of this
			// campaign's were left out of the restore): their bills are
			// charged here as late, on top of the spend. What its lease
			// still held (less the spend the ledger shows it made) stays
			// reserved until every such hold has ended; granted to this
			// process at once, it was bid a second time (2x a budget with a
			// SIGKILL and a restart under the same id). A dead process's
			// holds end within HoldTTL of now; one cut off, not dead, may
			// place holds until its last heartbeat's expiry (LeaseTTL after
			// it, on its clock): the reserve stands that long, as the lease
			// would for another instance's reclaim. Less what this process
			// has committed: holds restored from the
			// snapshot (they are its own), late bills of the dead process's
			// bids charged before this step (their money is spent).
			if r := own.Amount - max(gap, 0) - max(q.committed, 0); r > 0 {
				mark.Reserve, mark.ReserveUntil = r, now+int64(q.reserveFor)
			}
		}
	}
	if !had || own.Boot != q.boot {
		if mark, ok := rec.Leases[takenKey(q.instance, q.boot)]; ok {
			// Taken over, and the other process's entry is gone or dead:
			// the mark holds what the record has of this process
			// (reportTaken).
			base, baseKept = mark.Reported, mark.DayKept
			delete(rec.Leases, takenKey(q.instance, q.boot))
		}
	}
	switch {
	case had && own.Boot == q.boot:
		base, baseKept = own.Reported, own.DayKept
	case had && !own.Reclaimed && own.Boot != "" && q.prev != nil:
		if q.prev.boot == own.Boot {
			addSpent(rec, q.prev.cum-own.Cum)
			res.gap += q.prev.cum - own.Cum
		} else if q.prev.boot == q.boot {
			res.gapUnknown++ // this process charged the campaign before its first step: the old figure is hidden
		}
	case had && !own.Reclaimed && own.Boot != "":
		res.gapUnknown++ // a previous process's entry, and its ledger figure could not be read
	}
	if own.Reclaimed {
		own.Amount, own.Reclaimed = 0, false
	}
	delta := q.reported - base
	// A reversal lowers spent_day only while the record's day is still the
	// day its charge was counted in; spent_total always.
	kept := max(keptNow(rec, q), baseKept) // a retry never lowers spent_day by what an earlier try kept
	rec.SpentTotal += delta
	setSpentDay(rec, rec.SpentDay+delta+kept-baseKept)
	own.Amount = max(own.Amount-delta, 0)
	own.Boot, own.Reported, own.Cum, own.DayKept = q.boot, q.reported, q.cum, kept
	res.dayKept = kept
	return own
}

// keptNow is the cumulative amount of this process's reported reversals
// that do not lower spent_day, as of this report: those of earlier days'
// charges, and those of sameDay's once the record's day moved past it.
func keptNow(rec *Record, q leaseReq) int64 {
	if q.sameDay == "" || rec.Day != q.sameDay {
		return q.keptSame
	}
	return q.kept
}

// behindMark tells whether the ledger has not yet acknowledged to this
// process the entry whose figure a takeover (its mark) or a reclaim (its
// tombstone) read: its report would miss charges the record already holds
// and lower it, and a lower figure written then stayed if the process died
// before the acknowledgements came (a review), so its step changes nothing.
func behindMark(rec *Record, q leaseReq) bool {
	if own, had := rec.Leases[q.instance]; had && own.Reclaimed && own.Boot == q.boot && q.ackedSeq < own.Seq {
		return true
	}
	mark, ok := rec.Leases[takenKey(q.instance, q.boot)]
	return ok && q.ackedSeq < mark.Seq
}

// takenKey is where a record keeps the takeover mark of an instance's
// process (boot) whose entry a later process under the same instance id took
// over. Instance ids cannot hold '@' (the bidder's instance_id rule), so the
// key is never an instance's own.
func takenKey(instance, boot string) string { return instance + "@" + boot }

// reportTaken handles a step of a process whose entry a later process under
// its instance id took over while it still ran (reportOwn left the mark), or
// that finds the entry of a live later process: that happens when a process
// is cut off from the store for longer than the start probe and a new one
// starts under its id (the new one takes the old entry for a dead process's
// and moves the ledger's figure of its unreported spend into the record), or
// when two start at once. While the other process's entry is live (its boot
// is this process's twin, or this process has a mark and the entry is within
// its own expiry), this process reports through its mark (made from what it reported in acknowledged
// steps when it has none): the difference between its cumulative report and
// the mark's, a reversal making it negative. It leaves the entry alone and
// gets no lease (applyLease waits first while behindMark). Otherwise
// reportOwn takes the mark as this process's base and drops it.
// It reports true when the step was handled here.
func reportTaken(rec *Record, q leaseReq, now int64, res *leaseRes) bool {
	own, had := rec.Leases[q.instance]
	if had && own.Boot == q.boot {
		return false
	}
	key := takenKey(q.instance, q.boot)
	mark, marked := rec.Leases[key]
	live := had && !own.Reclaimed && own.Boot != "" &&
		((q.twin != "" && own.Boot == q.twin) || (marked && own.Expires+int64(q.reclaim) >= now))
	if !live {
		return false
	}
	res.lost = q.heldLocally
	if !marked {
		mark = Lease{Expires: now, Boot: q.boot, Reported: q.acked, DayKept: q.keptAcked, Reclaimed: true}
	}
	delta := q.reported - mark.Reported
	kept := max(keptNow(rec, q), mark.DayKept)
	rec.SpentTotal += delta
	setSpentDay(rec, rec.SpentDay+delta+kept-mark.DayKept)
	mark.Reported, mark.Cum, mark.DayKept = q.reported, q.cum, kept
	rec.Leases[key] = mark
	res.dayKept = kept
	return true
}

// rollDay moves the record's day to the step's when that is later. The
// spend counted so far is set to 0 only when the step's day began at or
// after the end of the record's day (DayEnd, the end of the day in the zone
// of the step that last rolled it): dates alone compare days of the
// campaign's time zone, and a time zone edited to one ahead (UTC to
// Pacific/Kiritimati: already tomorrow there) made the step's date later
// while its day had begun in the middle of the record's; the spend of that
// day was set to 0 and the campaign spent its daily budget twice in one day
// of either zone (an outside audit). Such a step takes the later date and
// keeps the spend: it over-counts the new day until a day of the step's
// zone begins after the record's ended, never under-counts it. DayEnd moves
// only when the day rolls: stretched to the latest zone's end by every
// step, two instances running two zones (a lasting disagreement) never
// rolled again and the campaign went dark (a review). With two zones for
// good the day rolls once a day, at the zone ahead's midnight, which is in
// the middle of the other zone's day, as before. A record written before
// DayEnd was kept (0) rolls on dates alone, once.
func rollDay(rec *Record, q leaseReq) {
	switch {
	case q.day == "" || q.day < rec.Day:
		// A step on an earlier day counts its spend to the record's.
	case q.day == rec.Day:
		if rec.DayEnd == 0 {
			rec.DayEnd = q.dayEnd
		}
	case rec.DayEnd == 0 || q.dayStart >= rec.DayEnd:
		rec.Day, rec.SpentDay, rec.DayEnd = q.day, 0, q.dayEnd
	default:
		rec.Day = q.day
	}
}

// spentOnDay is what a record's spend today (recDay's) counts on day:
// nothing on a day after the record's, all of it on the record's day or one
// before it. A record's day only moves forward (dates "2006-01-02" compare as
// strings): a step on an earlier day (the campaign's time zone edited to one
// behind, or an instance still running the old zone or with a clock behind)
// counts its spend to the record's day and never sets it back to 0, which
// gave the daily budget a second time (TestDayNeverRollsBack).
func spentOnDay(recDay string, spent int64, day string) int64 {
	if day > recDay {
		return 0
	}
	return spent
}

// addSpent adds d (which may be negative) to the record's spend; today's
// spend never goes under zero (a reversal of yesterday's charge).
func addSpent(rec *Record, d int64) {
	rec.SpentTotal += d
	setSpentDay(rec, rec.SpentDay+d)
}

// setSpentDay sets the record's spend today to v, within 0 and spent_total:
// today's spend is part of the total. A reversal whose charge's day is not
// known (one of a charge restored from a snapshot, levels.go) keeps
// spent_day, an over-count that showed today's spend above the total after
// losses across a graceful restart (an outside audit); the bound takes the
// over-count out wherever every charge in the total is of today.
func setSpentDay(rec *Record, v int64) { rec.SpentDay = max(min(v, rec.SpentTotal), 0) }

func budgetLeft(rec *Record, q leaseReq) int64 {
	remaining := int64(unlimited)
	if q.total > 0 {
		remaining = min(remaining, q.total-rec.SpentTotal)
	}
	if q.daily > 0 {
		remaining = min(remaining, q.daily-rec.SpentDay)
	}
	return remaining
}

// reclaimForeign turns lapsed foreign leases into tombstones, drops old
// tombstones, and lists the owners of leases past their own expiry that it
// could not reclaim yet (their liveness is for the caller to check).
func reclaimForeign(rec *Record, q leaseReq, now int64, res *leaseRes) {
	for inst, l := range rec.Leases {
		switch {
		case inst == q.instance:
		case l.Reclaimed:
			if l.Expires+int64(tombstoneTTL) < now {
				delete(rec.Leases, inst)
			} else if l.Reserve != 0 && l.ReserveUntil <= now {
				l.Reserve, l.ReserveUntil = 0, 0 // a takeover's reserve has ended
				rec.Leases[inst] = l
			}
		case l.Expires+int64(q.reclaim) >= now:
			// within its own expiry
		case reclaimable(q.lapsed[inst], l, now, q):
			tail, ok := q.tails[inst]
			if !ok {
				res.needTail = append(res.needTail, inst)
				continue
			}
			tomb := Lease{Expires: now, Boot: l.Boot, Reported: l.Reported, Cum: l.Cum, DayKept: l.DayKept, Reclaimed: true}
			switch {
			case tail.boot == l.Boot && l.Boot != "":
				// The crash gap: spend the dead process charged (in the
				// ledger) but had not reported goes into the record now, so
				// the money is not granted again.
				gap := tail.cum - l.Cum
				addSpent(rec, gap)
				tomb.Reported += gap
				tomb.Cum, tomb.Seq = tail.cum, tail.seq
				res.gap += gap
			case tail.boot != "" && tail.boot == q.lapsed[inst].boot:
				res.gapUnknown++ // a newer process of the instance wrote last: the old figure is hidden
			}
			rec.Leases[inst] = tomb
			res.reclaimed++
		default:
			res.suspects = append(res.suspects, inst)
		}
	}
}

// reclaimable tells whether a foreign lease past its own expiry (+ReclaimWait)
// may be reclaimed: an authoritative read of its owner's liveness record, less
// than LeaseTTL old, showed no record, another process, or a record expired
// ReclaimWait before the read. Such an owner has started no hold against the
// lease since its liveness expired minus HoldTTL (its own rule, on a clock
// within ReclaimWait of ours); a renewal after the read is a lapse the owner
// sees too, and after it the owner trusts only leases it has rewritten since
// (which would carry a fresh Expires).
func reclaimable(lp lapse, l Lease, now int64, q leaseReq) bool {
	if lp.readAt == 0 || now-lp.readAt >= int64(q.ttl) {
		return false
	}
	return lp.boot == "" || lp.boot != l.Boot || lp.expires+int64(q.reclaim) < lp.readAt
}
