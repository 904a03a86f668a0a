package budget

import (
	"fmt"
	"testing"
	"time"
)

// FuzzSettlement drives random sequences of hold, win, bill, loss, replay,
// expiry and sync through one manager and checks that nothing is charged
// twice and that the books balance.
func FuzzSettlement(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 2, 3, 4, 5, 0, 1, 6, 1})
	f.Add([]byte{0, 0, 0, 3, 3, 1, 2, 1, 2, 5, 5, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		clk := newManualClock(t0.Add(time.Hour))
		m := newMemManager(t, NewMemStore(), "f", clk, campaign("c", micros(1000)))
		h := m.Handle("c")
		type imp struct {
			id      HoldID
			charged bool
		}
		var imps []imp
		var charged int64
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%8, int(ops[i+1])
			var k int
			if len(imps) > 0 {
				k = arg % len(imps)
			}
			n := Notice{CampaignID: "c", ImpID: "1", BidMicros: 100, ClearingMicros: int64(arg) * 2, ChargeOn: KindWin}
			switch op {
			case 0, 7:
				id, _ := m.Hold(h, 100, clk.Now())
				imps = append(imps, imp{id: id})
				continue
			case 1:
				n.Kind = KindWin
			case 2:
				n.Kind = KindBill
				if arg&1 == 1 {
					n.ChargeOn = KindBill
				}
			case 3:
				n.Kind = KindLoss
			case 4:
				clk.Add(time.Duration(arg) * time.Second)
				m.expireHolds(clk.Now())
				continue
			case 5:
				m.ledger.flush(ctxT(t))
				m.syncAll(ctxT(t), clk.Now(), false)
				continue
			case 6:
				n.Kind = KindWin
				n.ChargeOn = KindBill
			}
			if len(imps) == 0 {
				continue
			}
			n.AuctionID, n.HoldID = fmt.Sprint(k), imps[k].id
			res, err := m.Settle(n)
			if err != nil {
				t.Fatal(err)
			}
			if res.ChargedMicros > 0 {
				if imps[k].charged {
					t.Fatalf("imp %d charged twice", k)
				}
				imps[k].charged = true
				if res.ChargedMicros > 100 {
					t.Fatalf("charged %d above the bid", res.ChargedMicros)
				}
			}
			charged += res.ChargedMicros
			if h.held.Load() < 0 {
				t.Fatalf("negative held %d", h.held.Load())
			}
		}
		if err := m.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		var ledger int64
		for _, e := range m.mem.all() {
			ledger += e.Charged
		}
		r, _ := m.store.Get(ctxT(t), "c")
		if ledger != charged || r.SpentTotal != charged || h.held.Load() != 0 {
			t.Fatalf("charged %d, ledger %d, record %d, held %d", charged, ledger, r.SpentTotal, h.held.Load())
		}
	})
}
