package bidder

import (
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
)

// Dayparting reaches the budget's pacing plan as per-weekday hour bits.
func TestDaypartHours(t *testing.T) {
	var none campaigns.Targeting
	if h := daypartHours(&none); h != [7]uint32{} {
		t.Errorf("no dayparting: %v", h)
	}
	dp := campaigns.Targeting{Dayparting: true}
	dp.Days[time.Monday], dp.Days[time.Friday] = true, true
	dp.Hours[6], dp.Hours[10] = true, true
	h := daypartHours(&dp)
	for d := range h {
		want := uint32(0)
		if d == int(time.Monday) || d == int(time.Friday) {
			want = 1<<6 | 1<<10
		}
		if h[d] != want {
			t.Errorf("day %d: %b, want %b", d, h[d], want)
		}
	}
}
