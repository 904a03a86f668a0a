package budget

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// levelsNotice is a notice of one impression of campaign c held on m.
func levelsNotice(k NoticeKind, id HoldID, clk Clock, clearing int64) Notice {
	return Notice{Kind: k, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c", AuctionID: "x", ImpID: "1",
		BidMicros: 2000, ClearingMicros: clearing, Time: clk.Now(), Bid: clk.Now().Add(-time.Second)}
}

// levelsSetup is these tests' MemStore rig: a manual clock, campaign "c" of
// 100 units, process "a" and a hold of 2,000 on it.
func levelsSetup(t *testing.T) (*manualClock, *MemStore, Campaign, *Manager, HoldID) {
	t.Helper()
	clk := newManualClock(t0.Add(time.Hour))
	st := NewMemStore()
	c := campaign("c", micros(100))
	a := storeManager(t, st, "a", clk, c)
	id, _ := a.Hold(a.Handle("c"), 2000, clk.Now())
	return clk, st, c, a, id
}

func ledgerSum(st *MemStore) int64 {
	var sum int64
	for _, e := range st.ledger.all() {
		sum += e.Charged
	}
	return sum
}

// A loss notice after a graceful restart for a win the previous process
// charged provisionally reverses it: the restarted process takes over the
// previous one's levels. Before, the charge stood (an outside audit's rolling
// restart of three instances left 23 lost impressions charged).
func TestLossAfterGracefulRestartReversesWin(t *testing.T) {
	clk, st, c, a, id := levelsSetup(t)
	if res, err := a.Settle(levelsNotice(KindWin, id, clk, 1500)); err != nil || !res.Provisional || res.ChargedMicros != 1500 {
		t.Fatalf("win: %+v %v", res, err)
	}
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	b := storeManager(t, st, "a", clk, c)
	defer b.Close(context.Background())
	res, err := b.Settle(levelsNotice(KindLoss, id, clk, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if res.ReversedMicros != 1500 || ledgerSum(st) != 0 {
		t.Fatalf("loss after the restart: %+v, ledger %d; want 1500 reversed, ledger 0", res, ledgerSum(st))
	}
	b.syncAll(ctxT(t), clk.Now(), false)
	// The reversal's charge was restored without its day, so it keeps
	// spent_day; today's spend is still never above the total.
	if r, _ := st.Get(ctxT(t), "c"); r.SpentTotal != 0 || r.SpentDay != 0 {
		t.Fatalf("record after the reversal: %+v, want 0 spent in total and today", r)
	}
	// The snapshot was taken: nothing is left to restore twice.
	if b, _ := st.takeLevels(ctxT(t), "a"); b != nil {
		t.Fatalf("snapshot still stored after its restore (%d bytes)", len(b))
	}
}

// A replayed bill under the level after a graceful restart is a duplicate:
// before, the restarted process charged it again (a bill at 1,800, a
// restart, the bill at 1,700: 3,500 charged).
func TestLowerBillAfterGracefulRestartChargesNothing(t *testing.T) {
	clk, st, c, a, id := levelsSetup(t)
	if _, err := a.Settle(levelsNotice(KindBill, id, clk, 1800)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b := storeManager(t, st, "a", clk, c)
	defer b.Close(context.Background())
	res, err := b.Settle(levelsNotice(KindBill, id, clk, 1700))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if res.ChargedMicros != 0 || !res.Duplicate || ledgerSum(st) != 1800 {
		t.Fatalf("lower bill after the restart: %+v, ledger %d; want a duplicate, ledger 1800", res, ledgerSum(st))
	}
}

// The restored level does not make a billed impression free: a win here, a
// graceful close, its bill settled by another instance meanwhile (nothing
// forwarded to a process that is down), then the loss URL fired at the
// restarted process. The other instance sealed the generation; the
// reversal is refused as a duplicate and the bill stands.
func TestRestoredWinBilledElsewhereStaysBilled(t *testing.T) {
	clk, st, c, a, id := levelsSetup(t)
	other := storeManager(t, st, "b", clk, c)
	defer other.Close(context.Background())
	if _, err := a.Settle(levelsNotice(KindWin, id, clk, 1500)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Settle(levelsNotice(KindBill, id, clk, 1500)); err != nil {
		t.Fatal(err)
	}
	if err := other.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b := storeManager(t, st, "a", clk, c)
	defer b.Close(context.Background())
	if _, err := b.Settle(levelsNotice(KindLoss, id, clk, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := ledgerSum(st); got != 1500 {
		t.Fatalf("billed impression after a restart and a loss: ledger %d, want 1500", got)
	}
	// The refused reversal gives back nothing and holds nothing back: no
	// step will report it, so money left waiting for one stayed unusable.
	if ac := b.account("c"); ac.revWait.Load() != 0 {
		t.Fatalf("a refused reversal left %d waiting for a step", ac.revWait.Load())
	}
}

// A snapshot is restored once: a process that restored it and then died
// (no Close) leaves nothing for the next one, which knows no levels (a
// stale snapshot would make it reverse wins the dead process saw billed).
func TestLevelsSnapshotTakenOnce(t *testing.T) {
	clk, st, c, a, id := levelsSetup(t)
	if _, err := a.Settle(levelsNotice(KindWin, id, clk, 1500)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b := storeManager(t, st, "a", clk, c)
	if b.restoredN.Load() != 1 {
		t.Fatalf("restored %d, want 1", b.restoredN.Load())
	}
	b.closed.Store(true) // dies: no Close, no snapshot
	clk.Add(10 * time.Minute)
	d := storeManager(t, st, "a", clk, c)
	defer d.Close(context.Background())
	if n := d.restoredN.Load(); n != 0 {
		t.Fatalf("the process after a crash restored %d entries of an older snapshot", n)
	}
}

// A Close whose flush fails writes no snapshot: a level whose ledger entry
// never got there must not be restored (its reversal would lower the
// record). And only acknowledged entries are written.
func TestLevelsOnlyAcknowledged(t *testing.T) {
	clk, st, _, a, id := levelsSetup(t)
	if _, err := a.Settle(levelsNotice(KindWin, id, clk, 1500)); err != nil {
		t.Fatal(err)
	}
	st.SetDown(true)
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	if err := a.Close(ctx); err == nil {
		t.Fatal("Close with the store down succeeded")
	}
	st.SetDown(false)
	if b, _ := st.takeLevels(ctxT(t), "a"); b != nil {
		t.Fatalf("a snapshot (%d bytes) was written after a failed flush", len(b))
	}

	tr := newTier(1024, time.Hour, t0)
	for i, seq := range []uint64{3, 9} {
		s, e, _ := tr.acquire(impKey{uint64(i), uint64(i)}, tr.sec(t0.UnixNano()))
		e.level, e.seq, e.flags = 100, seq, fWin|fProv
		tr.touch(s, e, tr.sec(t0.Add(time.Minute).UnixNano()))
		s.mu.Unlock()
	}
	b, n := tr.encode(nil, "a", "boot", t0.UnixNano(), 5)
	if n != 1 {
		t.Fatalf("encoded %d entries with durable 5, want the one at sequence 3", n)
	}
	back := newTier(1024, time.Hour, t0)
	if got, _, _, err := back.restore(b, "a", t0.Add(time.Second).UnixNano()); err != nil || got != 1 {
		t.Fatalf("restore: %d %v", got, err)
	}
	if _, _, _, err := back.restore(b, "z", t0.UnixNano()); err == nil {
		t.Fatal("another instance's snapshot restored")
	}
	if _, _, _, err := back.restore(b[:len(b)-3], "a", t0.UnixNano()); err == nil {
		t.Fatal("a truncated snapshot restored")
	}
	if got, _, _, _ := newTier(1024, time.Hour, t0).restore(b, "a", t0.Add(2*time.Minute).UnixNano()); got != 0 {
		t.Fatalf("restored %d expired entries", got)
	}
}

// The same on a real NATS server: the snapshot goes through LevelsBucket
// and is gone once restored.
func TestNATSLossAfterGracefulRestartReversesWin(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown)
	clk := newManualClock(time.Now())
	c := campaign("c", micros(5))
	a := natsManualManager(t, "a", srv, clk, []Campaign{c})
	h := a.Handle("c")
	id, _ := a.Hold(h, 400_000, clk.Now())
	n := Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c", AuctionID: "x",
		ImpID: "1", BidMicros: 400_000, ClearingMicros: 350_000, Time: clk.Now()}
	if _, err := a.Settle(n); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	b := natsManualManager(t, "a", srv, clk, []Campaign{c})
	n.Kind, n.ClearingMicros, n.Time = KindLoss, 0, clk.Now()
	res, err := b.Settle(n)
	if err != nil || res.ReversedMicros != 350_000 {
		t.Fatalf("loss after the restart: %+v %v, want 350000 reversed", res, err)
	}
	if err := b.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b.syncAll(ctxT(t), clk.Now(), false)
	if r := getRecord(t, srv.ClientURL(), "c"); r.SpentTotal != 0 {
		t.Fatalf("record: %+v, want 0 spent", r)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	os, err := js.ObjectStore(ctxT(t), LevelsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.GetInfo(ctxT(t), "a"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("snapshot after its restore: %v, want not found", err)
	}
}

// settleFlush settles one notice of the impression (auction x, imp 1, bid
// of "a" made after a's start) on m and flushes the ledger.
func settleFlush(t *testing.T, m *Manager, clk *manualClock, id HoldID, k NoticeKind, price int64) Result {
	t.Helper()
	res, err := m.Settle(Notice{Kind: k, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c",
		AuctionID: "x", ImpID: "1", BidMicros: 2000, ClearingMicros: price, Time: clk.Now(), Bid: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ledger.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Millisecond)
	return res
}

// While the owner is down, another instance settles its notices (nothing
// is forwarded to a process that is not there): a win charged there and
// reversed there makes the restored level stale. The restored entry is
// unsure, so the bill that reaches the restarted owner seals the generation
// and charges again. Restored as certain, the bill was a duplicate of the
// reversed win and the billed impression cost nothing, or 500 of a bill of
// 1,000 (an outside review of the restore; the code before it charged the
// bill, knowing nothing).
func TestRestoredLevelChangedElsewhereStillBills(t *testing.T) {
	for _, c := range []struct {
		name        string
		before      []NoticeKind // at the owner, before its close (at 500 for a win)
		replayedWin bool         // the win at 1000 reaches the restarted owner before the bill
	}{
		{"loss here, win and loss elsewhere", []NoticeKind{KindLoss}, false},
		{"win here, win and loss elsewhere", []NoticeKind{KindWin}, false},
		{"win here, win and loss elsewhere, win replayed", []NoticeKind{KindWin}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk, st, cp, a, id := levelsSetup(t)
			other := storeManager(t, st, "b", clk, cp)
			defer other.Close(context.Background())
			for _, k := range c.before {
				settleFlush(t, a, clk, id, k, 500)
			}
			if err := a.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			settleFlush(t, other, clk, id, KindWin, 1000)
			settleFlush(t, other, clk, id, KindLoss, 0)
			b := storeManager(t, st, "a", clk, cp)
			defer b.Close(context.Background())
			if c.replayedWin {
				settleFlush(t, b, clk, id, KindWin, 1000)
			}
			res := settleFlush(t, b, clk, id, KindBill, 1000)
			if sum := ledgerSum(st); sum < 1000 {
				t.Fatalf("bill at 1000 after the restart: %+v; ledger %d, under the bill", res, sum)
			}
		})
	}
}

// A loss notice for another instance's bid whose owner is there but does
// not answer (stalled: a timeout; or NATS down), and that changes nothing
// where it arrived, is answered ErrOwnerUnreachable (503: the exchange
// retries); the retry, once the owner answers, reverses its provisional win.
// Before, it was answered 200 and the win stayed charged (a fleet audit,
// during a NATS outage). An owner nothing serves (no responders) gets no
// retry: 200, as before.
func TestLossWhileOwnerAwayAsksForARetry(t *testing.T) {
	srv, _, a, b, n := provisionalWinOnA(t)
	// The owner stalls: something holds its subject and never answers.
	if err := a.fwdSub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	a.fwdSub = nil
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stalled, err := nc.Subscribe(noticeSubject+"a", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	n.Kind, n.ClearingMicros = KindLoss, 0
	if _, err := b.Settle(n); !errors.Is(err, ErrOwnerUnreachable) {
		t.Fatalf("loss while the owner is stalled: %v, want ErrOwnerUnreachable", err)
	}
	stalled.Unsubscribe()
	nc.Flush()
	if err := a.serveForwarded(); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil { // the subscription is at the server before the retry
		t.Fatal(err)
	}
	res, err := b.Settle(n) // the exchange's retry
	if err != nil || res.ReversedMicros != 350_000 || !res.Forwarded {
		t.Fatalf("the retry: %+v %v, want the owner's reversal of 350000", res, err)
	}
	// Nothing serves "gone": its losses are answered as before.
	n.InstanceID, n.AuctionID = "gone", "y"
	if _, err := b.Settle(n); err != nil {
		t.Fatalf("loss for an instance nothing serves: %v, want nil", err)
	}
}

// A reversal the ledger refuses because a bill settled its generation
// elsewhere (the bill's seal) puts the owner's tier entry back at its level,
// settled: a replay of the bill at the owner is then a duplicate. Left
// reversed, the owner took the impression for free and charged the replay
// again (a fleet audit, across a graceful restart: 5,000 for a bill of 2,500;
// the same without a restart while the owner could not be reached).
func TestRefusedReversalLeavesTheBillStanding(t *testing.T) {
	for _, restart := range []bool{true, false} {
		clk, st, c, a, id := levelsSetup(t)
		other := storeManager(t, st, "b", clk, c)
		settleFlush(t, a, clk, id, KindWin, 1500)
		if restart {
			if err := a.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		}
		settleFlush(t, other, clk, id, KindBill, 1500) // the owner is down or cannot be reached: settled here, sealed
		if restart {
			a = storeManager(t, st, "a", clk, c)
		}
		settleFlush(t, a, clk, id, KindLoss, 0)
		res := settleFlush(t, a, clk, id, KindBill, 1500) // the exchange replays the bill to the owner
		if sum := ledgerSum(st); sum != 1500 {
			t.Errorf("restart %v: win, bill elsewhere, loss and the bill again at the owner: ledger %d (%+v), want 1500", restart, sum, res)
		}
		a.Close(ctxT(t))
		other.Close(ctxT(t))
	}
}

// The bill replayed to the owner while its loss's reversal still waits for
// the ledger's acknowledgement is not charged under the next generation: it
// waits for the ledger's word on the reversal, and answers ErrAckTimeout (a
// 503: retry) when that does not come within AckWait. Refused by the bill's
// seal, the reversal puts the level back and the bill is a duplicate.
// Before, it was charged again: 3,000 for a bill of 1,500 (a review of
// 79890ae).
func TestBillDuringPendingReversalWaitsForIt(t *testing.T) {
	for _, ackDuringWait := range []bool{false, true} {
		st := NewMemStore()
		g := &gateLedger{inner: st.ledger, gate: make(chan struct{}, 16)}
		a := startedSmall(t, Config{InstanceID: "a", Store: st, backend: g, AckWait: 300 * time.Millisecond})
		other := startedSmall(t, Config{InstanceID: "b", Store: st})
		h := a.Handle("c")
		waitForLease(t, a, h, 2000)
		id, _ := a.Hold(h, 2000, time.Now())
		n := func(k NoticeKind, p int64) Notice {
			return Notice{Kind: k, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c",
				AuctionID: "x", ImpID: "1", BidMicros: 2000, ClearingMicros: p}
		}
		g.gate <- struct{}{}
		if _, err := a.Settle(n(KindWin, 1500)); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Settle(n(KindBill, 1500)); err != nil { // settled elsewhere, sealed
			t.Fatal(err)
		}
		if _, err := a.Settle(n(KindLoss, 0)); !errors.Is(err, ErrAckTimeout) { // its reversal waits at the gate
			t.Fatalf("loss: %v, want ErrAckTimeout (held at the gate)", err)
		}
		if ackDuringWait {
			go func() { time.Sleep(50 * time.Millisecond); g.gate <- struct{}{} }()
		} else if _, err := a.Settle(n(KindBill, 1500)); !errors.Is(err, ErrAckTimeout) {
			t.Fatalf("the bill while the reversal is pending: %v, want ErrAckTimeout (retry)", err)
		} else {
			g.gate <- struct{}{}
		}
		res, err := a.Settle(n(KindBill, 1500)) // the exchange's replay (or its retry)
		if err != nil {
			t.Fatal(err)
		}
		a.Close(ctxT(t))
		other.Close(ctxT(t))
		if sum := ledgerSum(st); sum != 1500 || !res.Duplicate {
			t.Errorf("ack during the wait %v: win, bill elsewhere, loss, the bill again: ledger %d (%+v), want 1500, a duplicate",
				ackDuringWait, sum, res)
		}
	}
}

// A process that yielded to a twin and outlived it (the twin closed, this
// one bid again) writes its snapshot at its graceful close, with the twin's
// taken in: the next process knows its provisional wins, and a loss reverses
// one. With the snapshot left out for any process that ever yielded, the
// next process restored nothing and the win stood (a review of 79890ae).
func TestYieldedSurvivorKeepsItsSnapshot(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	mem := NewMemStore()
	c := campaign("c", micros(100))
	a := storeManager(t, mem, "a", clk, c)
	ha := a.Handle("c")
	leaseUp(t, a, ha, clk)
	b := storeManager(t, mem, "a", clk, c) // a twin started beside it
	for range 3 {
		a.syncAll(ctxT(t), clk.Now(), false)
		b.syncAll(ctxT(t), clk.Now(), false)
		clk.Add(time.Second)
	}
	if !a.twinAlive(clk.Now().UnixNano()) {
		t.Fatal("a did not yield")
	}
	if err := b.Close(ctxT(t)); err != nil { // the twin goes away; a bids again
		t.Fatal(err)
	}
	leaseUp(t, a, ha, clk)
	id, ok := a.Hold(ha, 2000, clk.Now())
	if !ok {
		t.Fatal("no hold after the twin closed")
	}
	settleFlush(t, a, clk, id, KindWin, 1500)
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	a2 := storeManager(t, mem, "a", clk, c)
	defer a2.Close(context.Background())
	res := settleFlush(t, a2, clk, id, KindLoss, 0)
	if sum := ledgerSum(mem); sum != 0 {
		t.Errorf("win, a graceful restart after a twin episode, loss: ledger %d (%+v), want 0 (restored %d)", sum, res, a2.restoredN.Load())
	}
}

// A loss whose owner has no subscription (no responders) while its
// heartbeat is live asks for a retry too: in a cluster an owner cut off
// from NATS, or moving to another node, has none (a fleet audit: 30 losses
// for a running owner whose node was killed were answered 200, and its 30
// wins stayed charged). Once the owner closed (its heartbeat deleted) the
// loss is answered as for an owner that is gone.
func TestLossWhileOwnerHasNoSubscriptionAsksForARetry(t *testing.T) {
	_, clk, a, b, n := provisionalWinOnA(t)
	deadline := time.Now().Add(5 * time.Second)
	for !b.ownerLive("a", clk.Now().UnixNano()) {
		if time.Now().After(deadline) {
			t.Fatal("b never saw a's heartbeat")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// a is cut off: nothing serves its subject, its heartbeat is live.
	if err := a.fwdSub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	a.fwdSub = nil
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n.Kind, n.ClearingMicros = KindLoss, 0
	if _, err := b.Settle(n); !errors.Is(err, ErrOwnerUnreachable) {
		t.Fatalf("loss while the owner is cut off: %v, want ErrOwnerUnreachable", err)
	}
	if err := a.serveForwarded(); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := b.Settle(n) // the exchange's retry
	if err != nil || res.ReversedMicros != 350_000 || !res.Forwarded {
		t.Fatalf("the retry: %+v %v, want the owner's reversal of 350000", res, err)
	}
	// Closed: its heartbeat deleted, its losses are answered where they land.
	a.Close(ctxT(t))
	for b.ownerLive("a", clk.Now().UnixNano()) {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("b still sees a's heartbeat after its close")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.AuctionID = "y"
	if _, err := b.Settle(n); err != nil {
		t.Fatalf("loss for a closed owner: %v, want nil", err)
	}
}

// provisionalWinOnA starts a NATS server and instances a and b with one
// campaign, and settles a's provisional win of 350,000 (charged on bill) on
// a; n is that win notice.
func provisionalWinOnA(t *testing.T) (*server.Server, *manualClock, *Manager, *Manager, Notice) {
	t.Helper()
	srv := startServer(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown)
	clk := newManualClock(time.Now())
	c := campaign("c", micros(5))
	a := natsManualManager(t, "a", srv, clk, []Campaign{c})
	b := natsManualManager(t, "b", srv, clk, []Campaign{c})
	id, _ := a.Hold(a.Handle("c"), 400_000, clk.Now())
	n := Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c", AuctionID: "x",
		ImpID: "1", BidMicros: 400_000, ClearingMicros: 350_000, Time: clk.Now()}
	if _, err := a.Settle(n); err != nil {
		t.Fatal(err)
	}
	return srv, clk, a, b, n
}
