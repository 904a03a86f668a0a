package budget

import (
	"fmt"
	"testing"
	"time"
)

// A record's day only moves forward. It was reset whenever a step's day
// differed from it, in either direction, so a campaign whose time zone was
// edited to one behind (UTC+14 to UTC-12: the local date goes back a day), or
// two instances running the campaign in two zones during a rolling reload,
// set spent_day back to 0 at each such step, and the daily budget was spent
// again within the same day: each test spent 2 daily budgets before the fix.
func TestDayNeverRollsBack(t *testing.T) {
	ahead := time.FixedZone("UTC+14", 14*3600)
	behind := time.FixedZone("UTC-12", -12*3600)
	daily := func(tz *time.Location) Campaign {
		return Campaign{ID: "c", Currency: "USD", DailyMicros: micros(2), TimeZone: tz, Pacing: PacingASAP}
	}
	// 20:00 UTC: 10:00 tomorrow at UTC+14, 08:00 today at UTC-12.
	now := t0.Add(20 * time.Hour)

	t.Run("time zone edited to one behind", func(t *testing.T) {
		clk := newManualClock(now)
		m := newMemManager(t, NewMemStore(), "i1", clk, daily(ahead))
		if n := spendDaily(t, m, clk, "a"); n != 2 {
			t.Fatalf("spent %d units, want the daily 2", n)
		}
		if err := m.SetCampaigns([]Campaign{daily(behind)}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		if n := spendDaily(t, m, clk, "b"); n != 0 {
			t.Fatalf("after the time zone edit: spent %d more units the same day, want 0", n)
		}
	})

	// The step's date is later (already tomorrow at UTC+14) but its day
	// began in the middle of the record's: the day's spend was set to 0 and
	// the daily budget spent twice in one day of either zone (an outside
	// audit, UTC edited to Pacific/Kiritimati).
	t.Run("time zone edited to one ahead", func(t *testing.T) {
		clk := newManualClock(now)
		m := newMemManager(t, NewMemStore(), "i1", clk, daily(time.UTC))
		if n := spendDaily(t, m, clk, "a"); n != 2 {
			t.Fatalf("spent %d units, want the daily 2", n)
		}
		if err := m.SetCampaigns([]Campaign{daily(ahead)}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		if n := spendDaily(t, m, clk, "b"); n != 0 {
			t.Fatalf("after the time zone edit: spent %d more units, want 0 (the UTC day and the UTC+14 day each hold the 2)", n)
		}
		// The UTC+14 day that began after the UTC day ended (10:00 UTC the
		// next day) is a new day.
		clk.Set(t0.Add(34*time.Hour + time.Second))
		if n := spendDaily(t, m, clk, "c"); n != 2 {
			t.Fatalf("the next UTC+14 day spent %d units, want its daily 2", n)
		}
	})

	t.Run("two instances in two zones, the zone behind first", func(t *testing.T) {
		clk := newManualClock(now)
		st := NewMemStore()
		m1 := newMemManager(t, st, "i1", clk, daily(behind))
		if n := spendDaily(t, m1, clk, "a"); n != 2 {
			t.Fatalf("spent %d units, want the daily 2", n)
		}
		// i1 gives its idle lease back; then i2, a day ahead by date,
		// starts bidding (a rolling edit of the time zone).
		for range 3 {
			clk.Add(time.Minute)
			m1.syncAll(ctxT(t), clk.Now(), false)
		}
		m2 := newMemManager(t, st, "i2", clk, daily(ahead))
		if n := spendDaily(t, m2, clk, "b"); n != 0 {
			t.Fatalf("the instance a day ahead spent %d units, want 0 (its day began in the middle of i1's)", n)
		}
	})

	// Two instances that keep two zones (a reload that keeps failing on
	// one) still get a new day once a day: the record's day end stretched
	// to the later zone's by every step never let either roll, and the
	// campaign stayed dark (a review: 2 spent in 4 days).
	t.Run("two zones for days", func(t *testing.T) {
		clk := newManualClock(now)
		st := NewMemStore()
		m1 := newMemManager(t, st, "i1", clk, daily(time.UTC))
		m2 := newMemManager(t, st, "i2", clk, daily(ahead))
		total := 0
		for h := range 4 * 24 {
			clk.Add(time.Hour)
			total += spendDaily(t, m1, clk, fmt.Sprint("a-", h))
			total += spendDaily(t, m2, clk, fmt.Sprint("b-", h))
		}
		if total < 3*2 {
			t.Fatalf("spent %d units in 4 days of a daily 2, want a new day at least once a day", total)
		}
	})

	t.Run("two instances in two zones", func(t *testing.T) {
		clk := newManualClock(now)
		st := NewMemStore()
		m1 := newMemManager(t, st, "i1", clk, daily(ahead))
		m2 := newMemManager(t, st, "i2", clk, daily(behind))
		total := 0
		for round := range 4 {
			clk.Add(time.Second)
			total += spendDaily(t, m1, clk, fmt.Sprint("r1-", round))
			total += spendDaily(t, m2, clk, fmt.Sprint("r2-", round))
		}
		if total > 2 {
			t.Fatalf("spent %d units in 8 s, want at most the daily 2", total)
		}
	})

	// A process that has no config for the campaign (its file removed there,
	// then a restart) settles a late bill on an account made from the
	// record, which does not say the campaign's time zone: its step rolled
	// the record to its UTC date, a day ahead of UTC-12, and the instance
	// still running the campaign got its daily budget again.
	t.Run("a process without the campaign's config", func(t *testing.T) {
		clk := newManualClock(t0.Add(26 * time.Hour)) // 02:00 UTC: 14:00 the day before at UTC-12
		st := NewMemStore()
		m1 := newMemManager(t, st, "i1", clk, daily(behind))
		if n := spendDaily(t, m1, clk, "a"); n != 2 {
			t.Fatalf("spent %d units, want the daily 2", n)
		}
		m2 := newMemManager(t, st, "i2", clk, Campaign{ID: "other", DailyMicros: micros(2)})
		late := Notice{Kind: KindBill, CampaignID: "c", InstanceID: "i1", AuctionID: "late", ImpID: "1",
			BidMicros: micros(1), ClearingMicros: micros(1), Time: clk.Now()}
		if res, err := m2.Settle(late); err != nil || res.ChargedMicros != micros(1) {
			t.Fatalf("late bill on the other process: %+v, %v", res, err)
		}
		m2.ledger.flush(ctxT(t))
		m2.syncAll(ctxT(t), clk.Now(), false)
		clk.Add(time.Second)
		if n := spendDaily(t, m1, clk, "b"); n != 0 {
			t.Fatalf("after the other process's step: spent %d more units the same day, want 0", n)
		}
	})
}

// A provisional charge reversed after the campaign's midnight is taken back
// from the day it was counted in, not from the new day: a report carried one
// figure, so a loss after midnight for a win of the day before lowered the new
// day's spent_day and the new day spent its daily budget plus the reversed
// charge. A reversal of a charge of the same day still lowers that day.
func TestReversalAfterMidnightKeepsTheNewDay(t *testing.T) {
	d := newDayRoll(t)
	st := d.st
	win := func(chargeOn NoticeKind) (Notice, bool) { return d.win(chargeOn, true) }
	lose := func(n Notice) { d.lose(n, true) }
	clk := d.clk
	spendAll := func() int {
		n := 0
		for range 4 {
			if _, ok := win(KindWin); !ok {
				break
			}
			n++
		}
		return n
	}

	// The day before: a provisional win and a settled one, the daily budget.
	prov, ok := win(KindBill)
	if !ok {
		t.Fatal("no bid before midnight")
	}
	if _, ok := win(KindWin); !ok {
		t.Fatal("no second bid before midnight")
	}
	clk.Add(2 * time.Minute) // 00:01 the next day
	if n := spendAll(); n != 2 {
		t.Fatalf("the new day spent %d units, want its daily 2", n)
	}
	lose(prov) // the exchange's loss for yesterday's win
	r, _ := st.Get(ctxT(t), "c")
	if r.SpentTotal != micros(3) || r.SpentDay != micros(2) {
		t.Fatalf("after the reversal: spent_total %d, spent_day %d; want 3 and 2 units", r.SpentTotal, r.SpentDay)
	}
	if n := spendAll(); n != 0 {
		t.Fatalf("after yesterday's charge was reversed the new day spent %d more units, want 0", n)
	}

	// The same day: a reversal lowers it.
	clk.Add(24 * time.Hour)
	p, ok := win(KindBill)
	if !ok {
		t.Fatal("no bid on the third day")
	}
	lose(p)
	// The reversed charge goes back to its bid's hold, reserved until the
	// hold expires (its bill may still come); then it is the day's again.
	if n := spendAll(); n != 1 {
		t.Fatalf("while the reversed charge is back in its hold the day spent %d units, want 1", n)
	}
	clk.Add(d.m.cfg.HoldTTL)
	d.m.expireHolds(clk.Now())
	if n := spendAll(); n != 1 {
		t.Fatalf("after a same-day reversal and its hold's expiry the day spent %d more units, want 1 (its daily 2)", n)
	}
	r, _ = st.Get(ctxT(t), "c")
	if r.SpentTotal != micros(5) || r.SpentDay != micros(2) {
		t.Fatalf("third day: spent_total %d, spent_day %d; want 5 and 2 units", r.SpentTotal, r.SpentDay)
	}
}

// The day rule one step at a time: a reversal of a charge of an earlier day
// (kept) leaves spent_day alone, one of the record's day lowers it, one of a
// day the record has left is kept too, and a retried step (its reply lost)
// counts nothing twice; spent_day + leases stays within the daily budget.
func TestApplyLeaseReversalDays(t *testing.T) {
	now := t0.Add(time.Hour)
	q := leaseReq{instance: "a", now: now, day: "2026-11-23", daily: 1000, boot: "a1", ttl: time.Minute, reclaim: time.Second,
		acked: 600, reported: 600, want: 100}
	f := func(name string, r Record, q leaseReq, wantDay, wantTotal int64) Record {
		t.Helper()
		applyLease(&r, q)
		if r.SpentDay != wantDay || r.SpentTotal != wantTotal {
			t.Errorf("%s: spent_day %d, spent_total %d; want %d, %d", name, r.SpentDay, r.SpentTotal, wantDay, wantTotal)
		}
		var leases int64
		for _, l := range r.Leases {
			leases += l.Amount
		}
		if r.SpentDay+leases > q.daily {
			t.Errorf("%s: spent_day %d + leases %d over the daily %d", name, r.SpentDay, leases, q.daily)
		}
		return r
	}
	rec := func() Record {
		return Record{Day: "2026-11-23", SpentDay: 400, SpentTotal: 1000,
			Leases: map[string]Lease{"a": {Amount: 100, Expires: now.UnixNano(), Boot: "a1", Reported: 600}}}
	}
	// 50 new spend, a reversal of 30 of an earlier day and one of 20 of today.
	step := q
	step.reported, step.kept, step.keptSame, step.sameDay = 600+50-30-20, 30, 50, "2026-11-23"
	r := f("today", rec(), step, 400+50-20, 1000)
	f("retried", r, step, 400+50-20, 1000)
	if k := r.Leases["a"].DayKept; k != 30 {
		t.Errorf("day_kept %d, want 30", k)
	}
	// The record's day moved on (another instance, or midnight): today's is kept too.
	ahead := rec()
	ahead.Day, ahead.SpentDay = "2026-11-24", 100
	f("record a day ahead", ahead, step, 100+50, 1000)
	// The entry was dropped after an acknowledged step: the base is the process's own.
	dropped := rec()
	delete(dropped.Leases, "a")
	step2 := step
	step2.acked, step2.keptAcked = 600, 10
	step2.kept, step2.keptSame = 40, 60
	f("no entry", dropped, step2, 400+50-20, 1000)
}

// A loss for a provisional charge of the day before gave the new day room in
// the instance's lease at once: the reversal lowered the instance's
// unreported spend, so until the next step reported it (where it no longer
// lowers spent_day) a hold of the reversed amount fit in a lease the new day
// had already spent, and the new day spent its daily budget plus the
// reversed charge. A reversal gives no room until a step has reported it.
func TestReversalAfterMidnightNoRoomBeforeItsStep(t *testing.T) {
	d := newDayRoll(t)
	clk, st, m, h, win := d.clk, d.st, d.m, d.h, d.win
	prov, ok := win(KindBill, true) // the day before: a provisional win and a settled one, the daily budget
	if !ok {
		t.Fatal("no bid before midnight")
	}
	if _, ok := win(KindWin, true); !ok {
		t.Fatal("no second bid before midnight")
	}
	clk.Add(2 * time.Minute) // 00:01 the next day
	for i := range 2 {
		if _, ok := win(KindWin, true); !ok {
			t.Fatalf("the new day spent %d units, want its daily 2", i)
		}
	}
	d.lose(prov, false) // the exchange's loss for yesterday's win, then bids before any step
	extra := 0
	for range 2 {
		if _, ok := win(KindWin, false); ok {
			extra++
		}
	}
	m.ledger.flush(ctxT(t))
	h.poke.Store(true) // a charge and a reversal that net to 0 wait for a later step
	m.syncAll(ctxT(t), clk.Now(), false)
	r, _ := st.Get(ctxT(t), "c")
	if extra != 0 || r.SpentDay != micros(2) || r.SpentTotal != micros(3) {
		t.Fatalf("after yesterday's charge was reversed the new day spent %d more units before the step: spent_day %d, spent_total %d; want 0 more, 2 and 3 units",
			extra, r.SpentDay, r.SpentTotal)
	}
	// Once reported, nothing is left held for it.
	if h.held.Load() != 0 || h.spent.Load() != 0 || h.revWait.Load() != 0 {
		t.Fatalf("after the step: held %d, spent %d, reversals waiting %d; want 0", h.held.Load(), h.spent.Load(), h.revWait.Load())
	}
}

// A lease reclaimed while its owner was cut off, with a reversal of an
// earlier day's charge in the spend the owner had not reported: the
// reclaim moves the ledger's net figure in (which lowers spent_day by the
// reversal), the tombstone keeps the owner's day_kept, and when the owner
// (same process) reports again nothing is counted twice: spent_total once,
// and spent_day gets the reversal back, as it was never the day's.
func TestReclaimedLeaseReversalDays(t *testing.T) {
	now := t0.Add(time.Hour)
	day := "2026-11-24"
	rec := Record{Day: day, SpentDay: 100, SpentTotal: 1000,
		Leases: map[string]Lease{"a": {Amount: 200, Expires: now.Add(-time.Hour).UnixNano(), Boot: "a1", Reported: 600, Cum: 600, DayKept: 10}}}
	// b reclaims a's lease: a's ledger says 50 charged today and 30 of an
	// earlier day reversed since its last report (cum 600 -> 620).
	rb := applyLease(&rec, leaseReq{instance: "b", now: now, day: day, daily: 1000, boot: "b1", ttl: time.Minute, reclaim: time.Second,
		lapsed: map[string]lapse{"a": {readAt: now.UnixNano()}}, tails: map[string]ledgerTail{"a": {boot: "a1", cum: 620}}})
	if rb.reclaimed != 1 || !rec.Leases["a"].Reclaimed || rec.Leases["a"].DayKept != 10 || rec.SpentTotal != 1020 {
		t.Fatalf("reclaim: %+v, record %+v", rb, rec)
	}
	// a comes back and reports the same entries: 620, 30 more kept.
	ra := applyLease(&rec, leaseReq{instance: "a", now: now, day: day, daily: 1000, boot: "a1", ttl: time.Minute, reclaim: time.Second,
		acked: 600, reported: 620, cum: 620, keptAcked: 10, kept: 40, keptSame: 40, heldLocally: true})
	if !ra.lost || rec.SpentTotal != 1020 || rec.SpentDay != 150 || ra.dayKept != 40 {
		t.Fatalf("the owner's report after the reclaim: %+v, spent_total %d, spent_day %d; want lost, 1020, 150 (day_kept 40)",
			ra, rec.SpentTotal, rec.SpentDay)
	}
	var leases int64
	for _, l := range rec.Leases {
		leases += l.Amount
	}
	if rec.SpentDay+leases > 1000 {
		t.Fatalf("spent_day %d + leases %d over the daily 1000", rec.SpentDay, leases)
	}
}

// dayRoll is one instance with campaign "c", a daily budget of 2 units, its
// clock at 23:59 UTC: wins and losses of one unit each, across midnight.
type dayRoll struct {
	t   *testing.T
	clk *manualClock
	st  *MemStore
	m   *Manager
	h   *Account
	seq int
}

func newDayRoll(t *testing.T) *dayRoll {
	d := &dayRoll{t: t, clk: newManualClock(t0.Add(24*time.Hour - time.Minute)), st: NewMemStore()}
	d.m = newMemManager(t, d.st, "i1", d.clk, Campaign{ID: "c", Currency: "USD", DailyMicros: micros(2), Pacing: PacingASAP})
	d.h = d.m.Handle("c")
	return d
}

// win bids and wins one unit (provisionally where chargeOn is KindBill);
// with sync, a step before the bid and one after the win. False: no bid.
func (d *dayRoll) win(chargeOn NoticeKind, sync bool) (Notice, bool) {
	t, m, now := d.t, d.m, d.clk.Now()
	t.Helper()
	if sync {
		m.syncAll(ctxT(t), now, false)
	}
	if m.Allow(d.h, micros(1), now) != DecisionOK {
		return Notice{}, false
	}
	id, ok := m.Hold(d.h, micros(1), now)
	if !ok {
		return Notice{}, false
	}
	d.seq++
	n := Notice{Kind: KindWin, ChargeOn: chargeOn, HoldID: id, CampaignID: "c", AuctionID: fmt.Sprint("a", d.seq), ImpID: "1",
		BidMicros: micros(1), ClearingMicros: micros(1), Time: now}
	if res, err := m.Settle(n); err != nil || res.ChargedMicros != micros(1) {
		t.Fatalf("win: %+v, %v", res, err)
	}
	m.ledger.flush(ctxT(t))
	if sync {
		m.syncAll(ctxT(t), now, false)
	}
	return n, true
}

// lose settles the exchange's loss for n's provisional charge, now; with
// sync, a step after it.
func (d *dayRoll) lose(n Notice, sync bool) {
	t, m := d.t, d.m
	t.Helper()
	n.Kind, n.Time = KindLoss, d.clk.Now()
	if res, err := m.Settle(n); err != nil || res.ReversedMicros != micros(1) {
		t.Fatalf("loss: %+v, %v", res, err)
	}
	m.ledger.flush(ctxT(t))
	if sync {
		m.syncAll(ctxT(t), d.clk.Now(), false)
	}
}

// Where the clocks jump at local midnight (America/Santiago on 2026-09-06,
// Atlantic/Azores on 2026-03-29), the new day gets its daily budget. Its
// start was computed as time.Date(.., 0, 0, 0, 0, loc), which Go puts at
// 23:00 the day before: the day carried the previous date, never rolled, and
// the campaign spent 0.02 of 24 that day (an outside audit).
func TestDayRollsWhereMidnightIsSkipped(t *testing.T) {
	for _, c := range []struct {
		zone string
		day  time.Time // noon UTC on the day after the jump's eve
	}{
		{"America/Santiago", time.Date(2026, 9, 5, 12, 0, 0, 0, time.UTC)},
		{"Atlantic/Azores", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		clk := newManualClock(c.day)
		camp := Campaign{ID: "c", Currency: "USD", DailyMicros: micros(2), TimeZone: loc, Pacing: PacingASAP}
		m := newMemManager(t, NewMemStore(), "i1", clk, camp)
		if n := spendDaily(t, m, clk, "eve"); n != 2 {
			t.Fatalf("%s, the eve: spent %d, want the daily 2", c.zone, n)
		}
		y, mo, d := c.day.In(loc).Date()
		for _, local := range []time.Time{ // the next day: an hour after the jump, and its evening
			time.Date(y, mo, d+1, 2, 0, 0, 0, loc), time.Date(y, mo, d+1, 20, 0, 0, 0, loc),
		} {
			clk.Set(local)
			got := spendDaily(t, m, clk, local.Format(time.DateTime))
			if first := local.Hour() == 2; first && got != 2 || !first && got != 0 {
				t.Errorf("%s, %s local: spent %d (want the new day's 2 at its start, then nothing)", c.zone, local.Format(time.DateTime), got)
			}
		}
		m.Close(ctxT(t))
	}
}

// spendDaily spends units of 1 on campaign c until m refuses (at most 4),
// each settled as a win at its bid, and reports how many.
func spendDaily(t *testing.T, m *Manager, clk *manualClock, tag string) int {
	t.Helper()
	h := m.Handle("c")
	n := 0
	for i := range 4 {
		m.syncAll(ctxT(t), clk.Now(), false)
		if m.Allow(h, micros(1), clk.Now()) != DecisionOK {
			break
		}
		id, ok := m.Hold(h, micros(1), clk.Now())
		if !ok {
			break
		}
		if _, err := m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: tag,
			ImpID: fmt.Sprint(i), BidMicros: micros(1), ClearingMicros: micros(1), Time: clk.Now()}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	m.ledger.flush(ctxT(t))
	m.syncAll(ctxT(t), clk.Now(), false)
	return n
}
