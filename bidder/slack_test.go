package bidder

import (
	"github.com/openbidder/openbidder/ctr"
	"slices"
	"testing"
	"time"
)

type perRow time.Duration

func (p perRow) PredictLatency(rows int) time.Duration { return time.Duration(rows) * time.Duration(p) }

func TestKeepTopK(t *testing.T) {
	slots := []slot{
		{imp: 0, upper: 5}, {imp: 0, upper: 9}, {imp: 0, upper: 7},
		{imp: 1, upper: 1},
		{imp: 2, upper: 3}, {imp: 2, upper: 4},
	}
	got := keepTopK(slots, 2)
	want := []int64{9, 7, 1, 4, 3}
	if len(got) != len(want) {
		t.Fatalf("kept %d slots, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].upper != w {
			t.Fatalf("slot %d upper %d, want %d (%+v)", i, got[i].upper, w, got)
		}
	}
}

func TestFitSlackTrimsToTheDeadline(t *testing.T) {
	ts := newTestServer(t, nil)
	mk := func() *bidCtx {
		bc := &bidCtx{}
		for imp := 0; imp < 2; imp++ {
			for u := int64(1); u <= 8; u++ {
				bc.slots = append(bc.slots, slot{imp: imp, upper: u*10 + int64(imp)})
			}
		}
		return bc
	}
	deadline := time.Now().Add(time.Hour)
	// 16 rows at 1 ms each fit an hour: nothing trimmed.
	bc := mk()
	ts.fitSlack(bc, &scorerBox{lat: []ctr.LatencyPredictor{perRow(time.Millisecond)}}, deadline)
	if len(bc.slots) != 16 {
		t.Fatalf("trimmed to %d with ample slack", len(bc.slots))
	}
	// 6 minutes a row: 10 rows fit an hour, so 5 per imp, the highest bounds.
	bc = mk()
	ts.fitSlack(bc, &scorerBox{lat: []ctr.LatencyPredictor{perRow(6 * time.Minute)}}, deadline)
	if len(bc.slots) != 8 {
		t.Fatalf("kept %d slots, want 8 (4 per imp: 10 rows do not fit in an hour minus the time spent)", len(bc.slots))
	}
	for _, sl := range bc.slots {
		if sl.upper/10 < 5 {
			t.Fatalf("kept a weak candidate %+v", sl)
		}
	}
	// The fastest scorer decides: a slow primary and a fast fallback keep all.
	bc = mk()
	ts.fitSlack(bc, &scorerBox{lat: []ctr.LatencyPredictor{perRow(time.Hour), perRow(time.Millisecond)}}, deadline)
	if len(bc.slots) != 16 {
		t.Fatalf("trimmed to %d although the fallback fits", len(bc.slots))
	}
	if ts.m.trimmed.load() != 1 {
		t.Fatalf("trimmed counter %d, want 1", ts.m.trimmed.load())
	}
}

func TestKeepBestOneFixedCPMPerImp(t *testing.T) {
	var slots []slot
	add := func(upper int64, fixed, sure bool) {
		slots = keepBest(slots, 0, 4, slot{upper: upper, fixed: fixed, sure: sure}, true)
	}
	add(5, true, true)
	add(9, false, false)
	add(7, true, true)  // replaces the fixed 5
	add(6, true, true)  // dominated by the fixed 7
	add(8, true, false) // a fixed 8 that may not clear its floor: kept as well
	add(7, true, false) // could not beat the sure 7 even if it cleared its floor
	add(4, false, false)
	add(10, false, false) // full: replaces the weakest (4)
	var got []int64
	for _, s := range slots {
		got = append(got, s.upper)
	}
	if !slices.Equal(got, []int64{7, 9, 8, 10}) {
		t.Fatalf("kept %v, want [7 9 8 10]", got)
	}
}
