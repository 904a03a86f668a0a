package budget

import (
	"context"
	"testing"
	"time"
)

// Result.First tells the event log which notice is the first of its kind
// (win, bill, loss) for an impression: a bill at the win's price and a loss
// after the bill change nothing and are still first; replays are not. After
// a restart the impression's kinds are forgotten, and a bill replayed then
// (the ledger had its level: it charges nothing) is not first either: it
// was, and the event log wrote the bill twice (the review of 35541d9).
func TestResultFirst(t *testing.T) {
	for _, bid := range []time.Time{{}, time.Now()} { // the token's bid time, as the bidder's carry, or none
		resultFirst(t, bid)
	}
}

func resultFirst(t *testing.T, bid time.Time) {
	st := NewMemStore()
	start := func() *Manager { return startedSmall(t, Config{InstanceID: "a", Store: st, AckWait: 2 * time.Second}) }
	stop := func(m *Manager) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m := start()
	n := Notice{ChargeOn: KindBill, CampaignID: "c", AuctionID: "x", ImpID: "1", BidMicros: 1000, ClearingMicros: 900, Bid: bid}
	for i, s := range []struct {
		kind  NoticeKind
		first bool
	}{
		{KindWin, true}, {KindBill, true}, {KindBill, false}, {KindWin, false}, {KindLoss, true}, {KindLoss, false},
	} {
		n.Kind = s.kind
		r, err := m.Settle(n)
		if err != nil {
			t.Fatal(err)
		}
		if r.First != s.first {
			t.Fatalf("notice %d (%v): First %v, want %v (%+v)", i, s.kind, r.First, s.first, r)
		}
	}
	stop(m)
	m = start()
	defer stop(m)
	n.Kind = KindBill
	if r, err := m.Settle(n); err != nil || r.First || r.ChargedMicros != 0 {
		t.Fatalf("bid time %v: the bill replayed after a restart: %+v %v, want no charge and not First", bid, r, err)
	}
}

// A win that comes after the impression's bill priced it is the first win
// once: its replays are not first. Each was, and the event log wrote a win
// line per replay (an outside audit: 5 win lines for one impression after
// its bill, 17-20 under concurrent replays).
func TestResultFirstWinAfterBill(t *testing.T) {
	m := startedSmall(t, Config{InstanceID: "a", Store: NewMemStore(), AckWait: 2 * time.Second})
	defer m.Close(context.Background())
	n := Notice{ChargeOn: KindBill, CampaignID: "c", AuctionID: "x", ImpID: "1", BidMicros: 1000, ClearingMicros: 900}
	for i, s := range []struct {
		kind  NoticeKind
		first bool
	}{
		{KindBill, true}, {KindWin, true}, {KindWin, false}, {KindWin, false}, {KindBill, false},
	} {
		n.Kind = s.kind
		r, err := m.Settle(n)
		if err != nil {
			t.Fatal(err)
		}
		if r.First != s.first || r.ChargedMicros != 0 && i > 0 {
			t.Fatalf("notice %d (%v): First %v, charged %d; want First %v, nothing charged after the bill", i, s.kind, r.First, r.ChargedMicros, s.first)
		}
	}
}
