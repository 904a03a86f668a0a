package budget

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestMeasureNATSMessages reports NATS messages per second for a given bid
// rate (BUDGET_MEASURE=1 go test -run MeasureNATS -v ./budget). It asserts
// nothing about speed.
func TestMeasureNATSMessages(t *testing.T) {
	if os.Getenv("BUDGET_MEASURE") == "" {
		t.Skip("set BUDGET_MEASURE=1")
	}
	srv := startServer(t, t.TempDir(), -1)
	defer srv.Shutdown()
	const campaigns, bidsPerSec, winEvery = 10, 5000, 10
	var cs []Campaign
	for i := range campaigns {
		cs = append(cs, campaign(fmt.Sprint("c", i), micros(1e6)))
	}
	m, err := New(Config{InstanceID: "m", URLs: []string{srv.ClientURL()}, MinLease: micros(100), MaxLease: micros(1000)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	m.SetCampaigns(cs)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	vz := func() (int64, int64) {
		v, _ := srv.Varz(&server.VarzOptions{})
		return v.InMsgs, v.OutMsgs
	}
	in0, out0 := vz()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	n := 0
	for time.Since(start) < 5*time.Second {
		<-tick.C
		for range bidsPerSec / 1000 {
			h := m.Handle(cs[n%campaigns].ID)
			now := time.Now()
			if m.Allow(h, 1000, now) == DecisionOK {
				if id, ok := m.Hold(h, 1000, now); ok && n%winEvery == 0 {
					m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: h.id, AuctionID: fmt.Sprint(n), ImpID: "1", BidMicros: 1000, ClearingMicros: 800})
				}
			}
			m.RecordImpression(h, uint64(n), now)
			n++
		}
	}
	el := time.Since(start).Seconds()
	in1, out1 := vz()
	t.Logf("%.0f bids/s, %.0f wins/s, %d campaigns: NATS in %.0f msgs/s, out %.0f msgs/s",
		float64(n)/el, float64(n/winEvery)/el, campaigns, float64(in1-in0)/el, float64(out1-out0)/el)
}
