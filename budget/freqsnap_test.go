package budget

import (
	"context"
	"testing"
	"time"
)

// A graceful restart keeps the frequency counts: a user at a campaign's
// cap is still at it in the next process under the id, another user's one
// impression still counts, and the window still ends when it did. Before,
// the next process started with no counts and the user could see the
// campaign up to its cap again (an outside audit, over HTTP: a SIGTERM and
// a restart).
func TestGracefulRestartKeepsFrequencyCounts(t *testing.T) {
	for _, store := range []string{"memory", "nats"} {
		t.Run(store, func(t *testing.T) {
			clk := newManualClock(t0.Add(time.Hour))
			c := campaign("c", micros(10))
			c.FreqCapCount, c.FreqCapWindow = 2, time.Hour
			var start func() *Manager
			if store == "nats" {
				srv := startServer(t, t.TempDir(), -1)
				defer srv.Shutdown()
				start = func() *Manager { return natsManualManager(t, "a", srv, clk, []Campaign{c}) }
			} else {
				st := NewMemStore()
				start = func() *Manager { return storeManager(t, st, "a", clk, c) }
			}
			const capped, once, other, pending = 11, 12, 13, 14
			a := start()
			h := a.Handle("c")
			a.RecordImpression(h, capped, clk.Now())
			a.RecordImpression(h, capped, clk.Now())
			a.RecordImpression(h, once, clk.Now())
			for i, want := range []bool{true, true, false} { // the third finds the cap of 2 full
				if got := a.FreqReserve(h, pending, clk.Now()); got != want {
					t.Fatalf("before the restart: bid %d for the pending user allowed %v, want %v", i+1, got, want)
				}
			}
			if a.FreqAllow(h, capped, clk.Now()) || !a.FreqAllow(h, once, clk.Now()) {
				t.Fatal("before the restart: the capped user allowed, or the other one not")
			}
			if err := a.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Second)
			b := start()
			defer b.Close(context.Background())
			hb := b.Handle("c")
			// Bids pending at the restart count until they lapse: a user
			// with two in flight got one more each (an outside audit).
			if b.FreqReserve(hb, pending, clk.Now()) {
				t.Fatal("after the restart a user with two bids pending under a cap of 2 got a third")
			}
			// The loss of one of them ends its count here, as its own
			// process would have: the user may be bid once more, not
			// twice. (Else the carried counts only lapsed, and each new
			// bid kept them alive: a review's cap of 3 acted as 1.)
			b.EndLost(Notice{Kind: KindLoss, InstanceID: "a", CampaignID: "c", AuctionID: "before-restart", ImpID: "1",
				HoldID: 7, Bid: clk.Now().Add(-2 * time.Second).Truncate(time.Second), User: pending, Time: clk.Now()})
			if !b.FreqReserve(hb, pending, clk.Now()) || b.FreqReserve(hb, pending, clk.Now()) {
				t.Fatal("after a loss of one of the two carried bids: want exactly one more bid under the cap of 2")
			}
			clk.Add(10 * time.Minute) // past freq_pending_ttl
			if !b.FreqAllow(hb, pending, clk.Now()) {
				t.Fatal("the pending bids carried across the restart never lapsed")
			}
			if b.FreqAllow(hb, capped, clk.Now()) {
				t.Fatal("after a graceful restart the user at the cap of 2 may see the campaign again")
			}
			b.RecordImpression(hb, once, clk.Now())
			if b.FreqAllow(hb, once, clk.Now()) {
				t.Fatal("after the restart a user with one impression got a second and may still see a third")
			}
			if !b.FreqAllow(hb, other, clk.Now()) {
				t.Fatal("a user with no impression is refused")
			}
			if got := b.freqRestoredN.Load(); got != 3 {
				t.Fatalf("%d frequency entries restored, want 3", got)
			}
			clk.Add(50 * time.Minute) // the window of the first impressions has ended
			if !b.FreqAllow(hb, capped, clk.Now()) {
				t.Fatal("the restored window did not end an hour after its first impression")
			}
		})
	}
}

// A snapshot of another instance, a short one or one that does not add up
// is dropped, not read.
func TestFrequencySnapshotRefusesOthers(t *testing.T) {
	tb := newFreqTable(1 << 12)
	tb.add(7, 100, int64(time.Hour))
	b, n := tb.encode(nil, "a", 200)
	if n != 1 {
		t.Fatalf("%d entries encoded, want 1", n)
	}
	for name, bad := range map[string][]byte{
		"another instance": b, "cut": b[:len(b)-1], "no magic": append([]byte("X"), b[1:]...), "empty": nil,
	} {
		inst := "a"
		if name == "another instance" {
			inst = "b"
		}
		if n, err := newFreqTable(1<<12).restore(bad, inst, 200); err == nil || n != 0 {
			t.Errorf("%s: restored %d, err %v; want it refused", name, n, err)
		}
	}
	if n, err := newFreqTable(1<<12).restore(b, "a", int64(time.Hour)+100); err != nil || n != 0 {
		t.Errorf("a snapshot read after its window ended: %d restored (%v), want none", n, err)
	}
}
