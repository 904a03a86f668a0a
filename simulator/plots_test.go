package simulator

import (
	"bytes"
	"slices"
	"testing"
)

// The spend plot draws, per campaign and since the run started, what was
// billed, what the bidder counted and its pacing plan (dashed); without the
// admin endpoint the billed line alone.
func TestSpendPanelsDrawThePlan(t *testing.T) {
	for _, tc := range []struct {
		name      string
		admin     bool
		wantNames []string
	}{
		{"with admin", true, []string{"billed", "bidder spent", "plan"}},
		{"without admin", false, []string{"billed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{budgetCur: map[string]string{}, campCur: map[string]string{"c": "USD"}}
			for i := range 4 {
				rep.spendSeries = append(rep.spendSeries, map[string]int64{"c": int64(i) * 1_000_000})
				if tc.admin {
					// The plan stood at 50 units when the run started and
					// grows 1 unit a second; the bidder had spent 40.
					rep.planSeries = append(rep.planSeries, map[string]int64{"c": int64(50+i) * 1_000_000})
					rep.adminSpentSeries = append(rep.adminSpentSeries, map[string]int64{"c": int64(40+i) * 1_000_000})
				}
			}
			rep.budgetCur["c"] = "USD"
			panels := rep.spendPanels()
			if len(panels) != 1 {
				t.Fatalf("%d panels", len(panels))
			}
			var names []string
			for _, s := range panels[0].series {
				names = append(names, s.name)
				if s.dashed != (s.name == "plan") {
					t.Errorf("%s dashed %v", s.name, s.dashed)
				}
				// Every line starts at 0 and adds 1 unit a second.
				if want := []float64{0, 1, 2, 3}; !slices.Equal(s.y, want) {
					t.Errorf("%s: %v, want %v", s.name, s.y, want)
				}
			}
			if !slices.Equal(names, tc.wantNames) {
				t.Fatalf("series %v, want %v", names, tc.wantNames)
			}
			svg := grid("spend", panels, 3)
			if hasPlan := bytes.Contains(svg, []byte(">plan</text>")) && bytes.Contains(svg, []byte("stroke-dasharray")); hasPlan != tc.admin {
				t.Errorf("plan line drawn: %v, want %v", hasPlan, tc.admin)
			}
		})
	}
}

// The billed line and the bidder's spent line of a spend panel both count
// from the run's start: the billed one from 0, the bidder's spent_today from
// what /admin/budget said before the first request (not from the first
// per-second sample, which already holds the first second's spend: the
// bidder's line then sat a second's spend below the billed one, though the
// bidder counts every win). The plan is read for its slope, from its first
// sample.
func TestSpendPanelsCountFromTheStart(t *testing.T) {
	rep := &Report{budgetCur: map[string]string{"c": "USD"}, campCur: map[string]string{"c": "USD"},
		todayAtStart: map[string]int64{"c": 40_000_000}}
	for i := range 4 {
		// 1 unit billed, spent and planned in every second, the first too.
		rep.spendSeries = append(rep.spendSeries, map[string]int64{"c": int64(i+1) * 1_000_000})
		rep.planSeries = append(rep.planSeries, map[string]int64{"c": int64(51+i) * 1_000_000})
		rep.adminSpentSeries = append(rep.adminSpentSeries, map[string]int64{"c": int64(41+i) * 1_000_000})
	}
	panels := rep.spendPanels()
	if len(panels) != 1 || len(panels[0].series) != 3 {
		t.Fatalf("panels %+v", panels)
	}
	for _, s := range panels[0].series {
		want := []float64{1, 2, 3, 4}
		if s.name == "plan" {
			want = []float64{0, 1, 2, 3}
		}
		if !slices.Equal(s.y, want) {
			t.Errorf("%s: %v, want %v", s.name, s.y, want)
		}
	}
}
