//go:build !race

package budget

import (
	"testing"
	"time"
)

func TestUnholdAllocs(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	m := newMemManager(t, NewMemStore(), "i1", clk, campaign("c", micros(1_000_000)))
	h := m.Handle("c")
	now := clk.Now()
	if n := testing.AllocsPerRun(1000, func() { id, _ := m.Hold(h, 1000, now); m.Unhold(h, id) }); n != 0 {
		t.Errorf("Hold+Unhold: %v allocs/op", n)
	}
}
