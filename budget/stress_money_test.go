package budget

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Bids, notices (win/bill/loss, replays, at the other instance),
// reloads, kill switch, status reads and sync rounds at once on two
// managers sharing an embedded NATS; then graceful close. Money must stay
// within the budget plus the late charges, and the record must hold what
// the notices charged.
func TestConcurrentMoneyStress(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	const total = 3_000_000
	c := campaign("c", total)
	d := campaign("d", 50_000_000)
	a := natsManager(t, "a", nil, srv, 1, c, d)
	b := natsManager(t, "b", []string{srv.ClientURL()}, nil, 1, c, d)
	ms := []*Manager{a, b}
	var charged, reversed, late atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int64
	for mi, m := range ms {
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func(mi, g int, m *Manager) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(mi), uint64(g)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					cid := "c"
					if r.IntN(3) == 0 {
						cid = "d"
					}
					h := m.Handle(cid)
					now := time.Now()
					price := int64(10_000 + r.IntN(40_000))
					if h == nil || m.Allow(h, price, now) != DecisionOK {
						time.Sleep(time.Millisecond)
						continue
					}
					id, ok := m.Hold(h, price, now)
					if !ok {
						continue
					}
					n := Notice{ChargeOn: KindBill, HoldID: id, InstanceID: m.cfg.InstanceID, CampaignID: cid,
						AuctionID: fmt.Sprint("x", seq.Add(1)), ImpID: "1", BidMicros: price, Bid: now}
					var kinds []NoticeKind
					switch r.IntN(4) {
					case 0:
						kinds = []NoticeKind{KindLoss}
					case 1:
						kinds = []NoticeKind{KindWin, KindBill}
					case 2:
						kinds = []NoticeKind{KindWin, KindLoss}
					default:
						kinds = []NoticeKind{KindBill, KindWin, KindBill}
					}
					for _, k := range kinds {
						n.Kind = k
						n.ClearingMicros = price/2 + int64(r.IntN(int(price/2)))
						n.Time = time.Now()
						target := m
						if r.IntN(4) == 0 {
							target = ms[1-mi] // the notice reaches the other instance
						}
						res, _ := target.Settle(n) // an ack timeout still charged (the entry stays queued)
						charged.Add(res.ChargedMicros)
						reversed.Add(res.ReversedMicros)
						if res.Late {
							late.Add(res.ChargedMicros)
						}
						if r.IntN(5) == 0 { // a replay
							res, _ = ms[r.IntN(2)].Settle(n)
							charged.Add(res.ChargedMicros)
							reversed.Add(res.ReversedMicros)
							if res.Late {
								late.Add(res.ChargedMicros)
							}
						}
					}
				}
			}(mi, g, m)
		}
		wg.Add(1)
		go func(m *Manager) { // reloads
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cs := []Campaign{c, d}
				cs[1].DailyMicros = int64(20_000_000 + i%3*1_000_000)
				if i%4 == 1 {
					cs = cs[:1] // d removed, then back
				}
				if err := m.SetCampaigns(cs); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(3 * time.Millisecond)
			}
		}(m)
		wg.Add(1)
		go func(m *Manager) { // kill switch and status reads
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m.SetControl(context.Background(), ControlChange{Campaign: "d", Paused: i%2 == 0, Who: "t"})
				m.Status()
				m.EachStatus(func(*CampaignStatus) {})
				m.Leases()
				m.Peers()
				m.Counters()
				m.Control()
				time.Sleep(5 * time.Millisecond)
			}
		}(m)
	}
	time.Sleep(3 * time.Second) // bounded: every loop above stops on stop
	close(stop)
	wg.Wait()
	for _, m := range ms {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	rc := getRecord(t, srv.ClientURL(), "c")
	rd := getRecord(t, srv.ClientURL(), "d")
	net := charged.Load() - reversed.Load()
	t.Logf("charged %d reversed %d late %d; record c spent %d, d spent %d", charged.Load(), reversed.Load(), late.Load(), rc.SpentTotal, rd.SpentTotal)
	if rc.SpentTotal > total+late.Load() {
		t.Errorf("c spent %d over its budget %d + late %d", rc.SpentTotal, total, late.Load())
	}
	if rc.SpentTotal+rd.SpentTotal != net {
		t.Errorf("records hold %d, the notices charged %d net", rc.SpentTotal+rd.SpentTotal, net)
	}
}
