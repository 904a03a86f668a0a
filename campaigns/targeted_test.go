package campaigns

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Targeted is Match at any time of the campaigns' schedules: its answer is
// whether Match on the same campaigns without flights and dayparting finds a
// candidate, at any time, while Match itself finds none outside them; after
// a Match at now that found nothing, TargetedOffSchedule says the same.
// Neither allocates.
func TestTargetedIgnoresSchedules(t *testing.T) {
	cfgs := Generate(1000, 3)
	r := rand.New(rand.NewPCG(9, 9))
	free := make([]Config, len(cfgs))
	for i := range cfgs {
		free[i] = cfgs[i]
		free[i].Flight = FlightConfig{}
		free[i].Targeting.Dayparting = nil
		switch r.IntN(4) { // most campaigns off their schedule at monday15
		case 0:
			cfgs[i].Flight = FlightConfig{Start: monday15.Add(24 * time.Hour).Format(time.RFC3339)}
		case 1:
			cfgs[i].Flight = FlightConfig{End: monday15.Add(-time.Hour).Format(time.RFC3339)}
		case 2:
			cfgs[i].TimeZone = "UTC"
			cfgs[i].Targeting.Dayparting = &DaypartConf{Days: []string{"sat", "sun"}}
		}
	}
	s := mustCompile(t, cfgs, WithSeat("seat-1"))
	ref := mustCompile(t, free, WithSeat("seat-1"))
	var sc, rsc Scratch
	var dst []Candidate
	targeted, offSchedule := 0, 0
	for _, now := range []time.Time{monday15, monday15.Add(-15 * time.Hour)} {
		for range 400 {
			req, imp := randomRequest(r)
			want := len(ref.Match(dst[:0], req, imp, now, &rsc)) > 0
			if got := s.Targeted(req, imp, now, &sc); got != want {
				t.Fatalf("%v: Targeted %v, Match without schedules found a candidate: %v", now, got, want)
			}
			live := len(s.Match(dst[:0], req, imp, now, &sc)) > 0
			if live && !want {
				t.Fatalf("%v: Match found a candidate Targeted did not", now)
			}
			// The bidder's way: the walk at now, then the campaigns off
			// their schedule only.
			if !live && s.TargetedOffSchedule(req, imp, now, &sc) != want {
				t.Fatalf("%v: Match found nothing and TargetedOffSchedule says %v, Targeted %v", now, !want, want)
			}
			if want {
				targeted++
				if !live {
					offSchedule++
				}
			}
		}
	}
	t.Logf("targeted %d of 800, %d only off schedule", targeted, offSchedule)
	if targeted == 0 || offSchedule == 0 || targeted == 800 {
		t.Fatalf("targeted %d of 800, %d of them only off schedule: the test does not tell", targeted, offSchedule)
	}
	req, imp := randomRequest(r)
	s.Targeted(req, imp, monday15, &sc) // grows sc
	if n := testing.AllocsPerRun(100, func() { s.Targeted(req, imp, monday15, &sc) }); n != 0 {
		t.Errorf("Targeted allocates %v per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.TargetedOffSchedule(req, imp, monday15, &sc) }); n != 0 {
		t.Errorf("TargetedOffSchedule allocates %v per call", n)
	}
}
