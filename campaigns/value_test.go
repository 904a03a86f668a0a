package campaigns

import "testing"

func TestValueAndUpper(t *testing.T) {
	f := func(st Strategy, maxBid int64, pctr float32, wantValue float64, wantUpper int64) {
		t.Helper()
		c := &Campaign{Strategy: st, MaxBidMicros: maxBid}
		if got := c.ValueMicros(pctr); got < wantValue-1 || got > wantValue+1 { // pctr is a float32: within a micro
			t.Fatalf("%+v pctr %v: value %v, want %v", st, pctr, got, wantValue)
		}
		if got := c.UpperMicros(); got != wantUpper {
			t.Fatalf("%+v: upper %v, want %v", st, got, wantUpper)
		}
	}
	f(Strategy{Kind: FixedCPM, CPMMicros: 2_000_000}, 5_000_000, 0.5, 2_000_000, 2_000_000)
	f(Strategy{Kind: FixedCPM, CPMMicros: 6_000_000}, 5_000_000, 0, 5_000_000, 5_000_000)                             // capped by max bid
	f(Strategy{Kind: TargetCPC, CPCMicros: 800_000}, 10_000_000, 0.002, 1_600_000, 10_000_000)                        // 0.002 x 0.80 x 1000 = $1.60 CPM
	f(Strategy{Kind: TargetCPC, CPCMicros: 800_000}, 10_000_000, 0.02, 10_000_000, 10_000_000)                        // $16 capped at $10
	f(Strategy{Kind: TargetCPA, CPAMicros: 20_000_000, ConversionRate: 0.05}, 9_000_000, 0.004, 4_000_000, 9_000_000) // 0.004 x 0.05 x $20 x 1000
}
