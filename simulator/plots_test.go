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
