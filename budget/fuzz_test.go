package budget

import (
	"fmt"
	"testing"
	"time"
)

// impModel is the settlement rule of one impression, written plainly: the
// charge is the highest price reported (capped at the bid), never lowered,
// by the first win and the first bill over the floor (a later notice of a kind
// that priced the impression is a replay, whatever its price, and so is a win
// after a priced bill and, on a charge-on-win exchange, a bill after a priced
// win); a
// win on a charge-on-billing exchange charges provisionally, its bill settles
// it, a loss before the bill reverses it; a loss with no charge releases the
// hold; a win after a loss on a billing exchange waits for the bill. Charges
// draw from the hold, which stays open until it expires (or that loss): a
// charge is late only when its hold is no longer open.
type impModel struct {
	hold      HoldID
	holdUntil time.Time
	holdOpen  bool
	level     int64
	prov      bool // the level is provisional
	settled   bool
	lost      bool
	// a win, a bill at or over the floor was seen
	winPriced, billPriced bool
}

func (im *impModel) charge(kind, chargeOn NoticeKind, price, bid int64, underFloor bool) (delta int64) {
	prov := kind == KindWin && chargeOn == KindBill
	if prov && im.lost && !im.settled {
		return 0 // a win after a loss waits for its bill
	}
	priced := &im.winPriced
	if kind == KindBill {
		priced = &im.billPriced
	}
	if *priced || kind == KindWin && im.billPriced || kind == KindBill && chargeOn == KindWin && im.winPriced {
		return 0
	}
	*priced = !underFloor
	price = min(price, bid) // the hold stays open: charges draw from it until it expires
	if !prov {
		im.settled, im.prov = true, false
	}
	if price <= im.level {
		return 0
	}
	delta = price - im.level
	if prov && !im.settled {
		im.prov = true
	}
	im.level = price
	return delta
}

func (im *impModel) loss() (reversed int64) {
	switch {
	case im.prov && im.level > 0:
		reversed = im.level
		im.level, im.prov, im.lost = 0, false, true
	case im.lost || im.settled || im.level > 0:
		im.lost = true
	default:
		im.lost, im.holdOpen = true, false
	}
	return reversed
}

// FuzzSettlement drives random sequences of hold, win, bill, loss (on
// charge-on-win and charge-on-billing exchanges, at random prices), replays,
// expiry and sync through one manager and checks every result against the
// rule above, then that the books balance: the ledger's sum, the record's
// spend and the charges reported agree, and each impression's ledger
// entries add up to its level.
func FuzzSettlement(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 2, 3, 4, 5, 0, 1, 6, 1})
	f.Add([]byte{0, 0, 0, 3, 3, 1, 2, 1, 2, 5, 5, 1})
	f.Add([]byte{0, 0, 6, 0, 2, 20, 6, 40, 2, 30, 3, 0, 5, 0, 2, 60}) // floor first, then the real price; lower; replays
	f.Add([]byte{0, 0, 6, 40, 3, 0, 6, 40, 2, 41, 5, 0, 3, 0})        // win, loss (reversed), win, bill
	f.Add([]byte{0, 0, 0, 1, 6, 30, 6, 31, 4, 90, 2, 81, 3, 1, 5, 0}) // two imps, a rise after the hold expired
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		clk := newManualClock(t0.Add(time.Hour))
		m, err := New(Config{
			InstanceID: "f", Store: NewMemStore(), Clock: clk, manual: true,
			HoldTTL: time.Minute, LeaseTTL: 3 * time.Minute, MinLease: micros(1), MaxLease: micros(10),
			MaxHolds: 1024, FreqQueue: 64, FreqMaxUsers: 1 << 12,
			DedupWindow: NoticeWindows{Win: 1000 * time.Hour, Bill: 1000 * time.Hour, Loss: 1000 * time.Hour},
		}, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		m.SetCampaigns([]Campaign{campaign("c", micros(1000))})
		if err := m.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		h := m.Handle("c")
		const bid = 100
		var imps []*impModel
		var charged int64
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%8, int(ops[i+1])
			var k int
			if len(imps) > 0 {
				k = arg % len(imps)
			}
			n := Notice{CampaignID: "c", ImpID: "1", BidMicros: bid, ClearingMicros: int64(arg) * 2, ChargeOn: KindWin,
				UnderFloor: arg%5 == 0} // the caller charged a price under the floor at the floor
			switch op {
			case 0, 7:
				id, ok := m.Hold(h, bid, clk.Now())
				imps = append(imps, &impModel{hold: id, holdOpen: ok, holdUntil: clk.Now().Add(m.cfg.HoldTTL)})
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
				for _, im := range imps {
					if !clk.Now().Before(im.holdUntil) {
						im.holdOpen = false
					}
				}
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
			im := imps[k]
			n.AuctionID, n.HoldID = fmt.Sprint(k), im.hold
			wasOpen := im.holdOpen
			var wantCharge, wantRev int64
			if n.Kind == KindLoss {
				wantRev = im.loss()
			} else {
				wantCharge = im.charge(n.Kind, n.ChargeOn, n.ClearingMicros, bid, n.UnderFloor)
			}
			res, err := m.Settle(n)
			if err != nil {
				t.Fatal(err)
			}
			if res.ChargedMicros != wantCharge || res.ReversedMicros != wantRev {
				t.Fatalf("op %d %v (charge on %v) at %d on imp %d: %+v, want charged %d reversed %d",
					i/2, n.Kind, n.ChargeOn, n.ClearingMicros, k, res, wantCharge, wantRev)
			}
			if res.ChargedMicros > 0 && res.Late == wasOpen {
				t.Fatalf("imp %d: late %v with the hold open %v", k, res.Late, wasOpen)
			}
			charged += res.ChargedMicros - res.ReversedMicros
			if h.held.Load() < 0 {
				t.Fatalf("negative held %d", h.held.Load())
			}
		}
		// held is the money of the open holds; a graceful close keeps that
		// of the unexpired ones (the release step keeps it in the lease
		// entry, the snapshot hands the holds on).
		var inTable, unexpired int64
		for si := range m.holds.shards {
			s := &m.holds.shards[si]
			for i := 0; i < s.hi; i++ {
				if sl := m.holds.slot(s, int32(i)); sl.open {
					inTable += sl.amount
					if sl.expires > clk.Now().UnixNano() {
						unexpired += sl.amount
					}
				}
			}
		}
		if h.held.Load() != inTable {
			t.Fatalf("held %d, the open holds %d", h.held.Load(), inTable)
		}
		if err := m.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		var ledger int64
		perImp := map[string]int64{}
		for _, e := range m.mem.all() {
			ledger += e.Charged
			perImp[e.Auction] += e.Charged
			if e.Level > bid || e.Level < 0 {
				t.Fatalf("entry level %d outside [0, bid]: %+v", e.Level, e)
			}
		}
		for k, im := range imps {
			if got := perImp[fmt.Sprint(k)]; got != im.level {
				t.Fatalf("imp %d: ledger sums to %d, level %d", k, got, im.level)
			}
		}
		r, _ := m.store.Get(ctxT(t), "c")
		if ledger != charged || r.SpentTotal != charged || h.held.Load() != unexpired {
			t.Fatalf("charged %d, ledger %d, record %d, held %d", charged, ledger, r.SpentTotal, h.held.Load())
		}
	})
}
