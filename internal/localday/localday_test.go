package localday

import (
	"testing"
	"time"
	_ "time/tzdata" // the zones on machines without a zoneinfo database
)

// Every day of 2025-2027 in zones whose clocks jump at midnight (and a
// control): the day's start has its date, 00:00 or the jump's 01:00; the
// instant before it has the day before's; the day holds 23 to 25 hours;
// the label is the date.
func TestDaysWhereMidnightIsSkipped(t *testing.T) {
	for _, name := range []string{"America/Santiago", "America/Havana", "Atlantic/Azores", "America/New_York", "UTC", "Pacific/Kiritimati"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		jumps := 0
		for day := time.Date(2025, 1, 1, 12, 0, 0, 0, loc); day.Year() < 2028; day = day.AddDate(0, 0, 1) {
			y, m, d := day.Date()
			start, end, label := Bounds(day, loc)
			if sy, sm, sd := start.In(loc).Date(); sy != y || sm != m || sd != d {
				t.Fatalf("%s %s: start %s is another day", name, label, start.In(loc))
			}
			if py, pm, pd := start.Add(-time.Nanosecond).In(loc).Date(); py == y && pm == m && pd == d {
				t.Fatalf("%s %s: the instant before start %s is the same day", name, label, start.In(loc))
			}
			if label != day.Format(time.DateOnly) {
				t.Fatalf("%s: label %s for %s", name, label, day)
			}
			if h := end.Sub(start); h < 23*time.Hour || h > 25*time.Hour {
				t.Fatalf("%s %s: %v long", name, label, h)
			}
			if hh := start.In(loc).Hour(); hh != 0 {
				jumps++
			}
		}
		if want := map[string]bool{"America/Santiago": true, "America/Havana": true, "Atlantic/Azores": true}[name]; want != (jumps > 0) {
			t.Errorf("%s: %d days start after midnight", name, jumps)
		}
	}
}

// Days on which the clocks went back to midnight in a zone east of UTC:
// midnight occurred twice, and the day begins at the first.
func TestDaysWhereMidnightOccursTwice(t *testing.T) {
	for _, c := range []struct {
		zone string
		y    int
		m    time.Month
		d    int
	}{{"Asia/Amman", 1999, 9, 24}, {"Asia/Amman", 2020, 10, 30}, {"Antarctica/Casey", 2020, 3, 8}} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		s := Start(c.y, c.m, c.d, loc)
		y, m, d := s.In(loc).Date()
		py, pm, pd := s.Add(-time.Second).In(loc).Date()
		if y != c.y || m != c.m || d != c.d || py == c.y && pm == c.m && pd == c.d {
			t.Errorf("%s %d-%02d-%02d: start %s, the second before %s", c.zone, c.y, c.m, c.d,
				s.In(loc).Format(time.DateTime+" -0700"), s.Add(-time.Second).In(loc).Format(time.DateTime+" -0700"))
		}
	}
}
