package simulator

import "testing"

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
