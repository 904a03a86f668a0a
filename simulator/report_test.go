package simulator

import (
	"testing"
	"time"
)

func TestBudgetViewConvertsCurrency(t *testing.T) {
	f := func(name string, cs campStat, a, start AdminCampaign, wantConv int64, wantOver, wantDaily *int64) {
		t.Helper()
		var cr CampaignReport
		over := budgetView(&cr, &cs, a, start)
		if *cr.SpendBudgetCur != wantConv || !eqPtr(cr.OverspendMicros, wantOver) || !eqPtr(cr.DailyOverspend, wantDaily) {
			t.Errorf("%s: converted %d over %v daily %v, want %d %v %v", name, *cr.SpendBudgetCur,
				deref(cr.OverspendMicros), deref(cr.DailyOverspend), wantConv, deref(wantOver), deref(wantDaily))
		}
		if wantOver != nil && over != *wantOver {
			t.Errorf("%s: returned overspend %d", name, over)
		}
	}
	// 1.08 USD billed on a EUR campaign is 1 EUR.
	f("EUR budget, USD bids", campStat{Currency: "USD", SpendMicros: 1_080_000},
		AdminCampaign{Currency: "EUR", TotalBudgetMicros: 5_000_000, DailyBudgetMicros: 1_500_000},
		AdminCampaign{SpentMicros: 4_500_000, SpentTodayMicros: 200_000}, 1_000_000, ptr[int64](500_000), ptr[int64](0))
	f("no budgets", campStat{Currency: "USD", SpendMicros: 10}, AdminCampaign{Currency: "USD"}, AdminCampaign{}, 10, nil, nil)
	f("daily only", campStat{Currency: "GBP", SpendMicros: 300}, AdminCampaign{DailyBudgetMicros: 100}, AdminCampaign{},
		300, nil, ptr[int64](200))
}

func eqPtr(a, b *int64) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// A CPC campaign's value at the bidder's pCTR needs bid.ext.pctr, which the
// bidder writes only with pricing.reveal_pctr: without it the bidder's value
// and surplus are unknown (null), not a value of 0 at a pCTR of 0 and a
// surplus of minus the spend. A fixed-CPM campaign's needs no pCTR.
func TestValueBidderNeedsPCTR(t *testing.T) {
	cpc := CampaignValue{Kind: "target_cpc", CPC: 0.5}
	cpm := CampaignValue{Kind: "fixed_cpm", CPM: 2}
	for _, tc := range []struct {
		name    string
		v       CampaignValue
		hasPCTR bool
		known   bool
	}{
		{"cpc with pctr", cpc, true, true},
		{"cpc without pctr", cpc, false, false},
		{"fixed cpm without pctr", cpm, false, true},
	} {
		s := NewStats(time.Now(), 10)
		ev := bidEvent{cid: "c", cur: "USD", bid: 1, won: true, rendered: true, clearing: 1000, valued: true}
		ev.pctr, ev.hasPCTR = 0.02, tc.hasPCTR
		ev.valueTrue, ev.valueBidder = tc.v.CPMUSD(0.02, false), tc.v.CPMUSD(map[bool]float64{true: 0.02}[tc.hasPCTR], true)
		ev.blindBidder = !tc.hasPCTR && tc.v.needsPCTR()
		s.recordBid(ev)
		r := auctionReport(s.auctions[0])
		if r.ValueTrueUSD == nil {
			t.Fatalf("%s: no true value", tc.name)
		}
		if got := r.ValueBidderUSD != nil && r.SurplusBidderUSD != nil; got != tc.known {
			t.Errorf("%s: bidder value %v surplus %v, want known %v", tc.name, r.ValueBidderUSD, r.SurplusBidderUSD, tc.known)
		}
	}
}
