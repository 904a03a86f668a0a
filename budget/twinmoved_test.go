package budget

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// behindOnTwinsClose makes other's view of instance a's heartbeat what a
// watch behind the standing twin's close shows: the closed twin's boot,
// live. It first waits until other's watch delivered what the survivor
// wrote (its heartbeat, or the deletion when the survivor has not beaten
// since), so that nothing the watch delivers later undoes it.
func behindOnTwinsClose(t *testing.T, other, yielded, standing *Manager) {
	t.Helper()
	want := ""
	if yielded.ownsItsRecord(t) {
		want = yielded.boot
	}
	deadline := time.Now().Add(10 * time.Second)
	for other.ownerBoot("a") != want {
		if time.Now().After(deadline) {
			t.Fatalf("other's watch never showed %q for a (shows %q)", want, other.ownerBoot("a"))
		}
		time.Sleep(2 * time.Millisecond)
	}
	lv := &other.live
	lv.mu.Lock()
	lv.others["a"] = liveView{boot: standing.boot, expires: time.Now().Add(time.Hour).UnixNano(), seen: time.Now().UnixNano()}
	lv.mu.Unlock()
}

// ownsItsRecord tells whether m's instance id's heartbeat record is m's
// own (it wrote one after the twin's close deleted the twin's).
func (m *Manager) ownsItsRecord(t *testing.T) bool {
	l, ok, err := m.store.GetLiveness(ctxT(t), m.cfg.InstanceID)
	return err == nil && ok && l.Boot == m.boot
}

// A notice a third instance forwards to the closed twin's boot (its watch
// had not delivered the twin's close yet) is answered by the survivor, with
// the twin's levels: the survivor answers "moved" and the sender sends it
// again addressed to the survivor. Before, the survivor left it unanswered
// (it settles none addressed to the twin, which may have answered it), the
// sender waited forward_timeout, and settled it itself: a loss answered 503
// and reversed nothing there (the flaky first loss of
// TestYieldedProcessTakesItsClosedTwinsLevels), a bill at another price than
// the twin's provisional win charged in full on top of it.
func TestForwardToTheClosedTwinReachesTheSurvivor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		survivorRd bool // the survivor ran a sync round (took the levels, wrote its heartbeat) before the notice
		kind       NoticeKind
		price      int64
		wantLedger int64
		wantRev    int64
	}{
		{"loss after the survivor's round", true, KindLoss, 0, 0, 1000},
		{"loss before the survivor's round", false, KindLoss, 0, 0, 1000},
		{"bill after the survivor's round", true, KindBill, 1500, 1500, 0},
		{"bill before the survivor's round", false, KindBill, 1500, 1500, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, clk, c, yielded, standing := yieldedTwins(t)
			other := natsManualManager(t, "b", srv, clk, []Campaign{c})
			clk.Add(time.Second)
			other.syncAll(ctxT(t), clk.Now(), false)
			waitForLease(t, standing, standing.Handle("c"), 2000)
			id, ok := standing.Hold(standing.Handle("c"), 2000, clk.Now())
			if !ok {
				t.Fatal("no hold on the standing process")
			}
			n := Notice{Kind: KindWin, ChargeOn: KindBill, HoldID: id, InstanceID: "a", CampaignID: "c",
				AuctionID: "x", ImpID: "1", BidMicros: 2000, ClearingMicros: 1000, Time: clk.Now()}
			if _, err := standing.Settle(n); err != nil {
				t.Fatal(err)
			}
			if err := standing.ledger.flush(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			closeTwin(t, clk, yielded, standing)
			if tc.survivorRd {
				clk.Add(time.Second)
				yielded.syncAll(ctxT(t), clk.Now(), false)
			}
			behindOnTwinsClose(t, other, yielded, standing)
			n.Kind, n.ClearingMicros = tc.kind, tc.price
			start := time.Now()
			res, err := other.Settle(n)
			took := time.Since(start)
			for _, m := range []*Manager{yielded, other} {
				if err := m.ledger.flush(ctxT(t)); err != nil {
					t.Fatal(err)
				}
			}
			var sum int64
			for _, e := range readLedger(t, srv.ClientURL()) {
				sum += e.Charged
			}
			t.Logf("%v at 'b' addressed to the closed twin: %+v %v in %v; ledger %d", tc.kind, res, err, took, sum)
			if err != nil || !res.Forwarded || res.ReversedMicros != tc.wantRev || sum != tc.wantLedger {
				t.Errorf("%v: %+v %v, ledger %d; want forwarded to the survivor, %d reversed, ledger %d",
					tc.kind, res, err, sum, tc.wantRev, tc.wantLedger)
			}
			if took >= other.cfg.ForwardTimeout {
				t.Errorf("answered in %v: the sender waited out forward_timeout (%v)", took, other.cfg.ForwardTimeout)
			}
			if got := other.Counters().ForwardMoved; got != 1 {
				t.Errorf("notices_forward_moved_total %d, want 1", got)
			}
		})
	}
}

// The survivor answers "moved" only to a caller that takes it (a caller of
// an earlier version took an unknown code for an error and settled
// nothing), names itself, and settles nothing for it.
func TestSurvivorAnswersMovedOnlyToCallersThatTakeIt(t *testing.T) {
	srv, clk, _, yielded, standing := yieldedTwins(t)
	closeTwin(t, clk, yielded, standing)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, moves := range []bool{false, true} {
		n := Notice{Kind: KindLoss, ChargeOn: KindBill, HoldID: 7, InstanceID: "a", CampaignID: "c",
			AuctionID: fmt.Sprint("x-", moves), ImpID: "1", BidMicros: 2000, Time: clk.Now()}
		b, err := json.Marshal(fwdReq{Notice: n, WaitNs: int64(time.Second), SentNs: time.Now().UnixNano(), Boot: standing.boot, Moves: moves})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := nc.Request(noticeSubject+escapeKey("", "a"), b, 300*time.Millisecond)
		var rep fwdRep
		if err == nil {
			err = json.Unmarshal(msg.Data, &rep)
		}
		key, _ := noticeKey(&n)
		s := &yielded.tier.shards[key[0]%tierShards]
		s.mu.Lock()
		_, known := s.find(key)
		s.mu.Unlock()
		switch {
		case known:
			t.Errorf("moves %v: the survivor settled a request addressed to its closed twin", moves)
		case !moves && err == nil:
			t.Errorf("a caller that does not take moved answers: answered %+v, want none", rep)
		case moves && (err != nil || rep.Code != fwdMoved || rep.Boot != yielded.boot):
			t.Errorf("a caller that takes moved answers: %+v %v, want moved to %s", rep, err, yielded.boot)
		}
	}
}
