// Package localday finds where a calendar day begins in a time zone.
//
// Local midnight does not exist in a few zones on the day their clocks jump
// forward at it (America/Santiago, America/Havana, Atlantic/Azores in
// 2025-2027): time.Date then gives an instant of the day before (23:00), so
// a day computed as time.Date(y, m, d, 0, 0, 0, 0, loc) started an hour
// early and, formatted, carried the previous day's date. The budget's day
// never rolled and the campaign spent nothing that day (an outside audit).
package localday

import "time"

// Start is the first instant whose local date in loc is y-m-d (d may be
// out of range, as time.Date normalises it): local midnight (the first of
// two where the clocks go back to it), or where midnight is skipped, the
// instant the clocks jump (01:00 local).
func Start(y int, m time.Month, d int, loc *time.Location) time.Time {
	s := time.Date(y, m, d, 0, 0, 0, 0, loc)
	ny, nm, nd := time.Date(y, m, d, 12, 0, 0, 0, loc).Date() // the normalised date (noon exists)
	if sy, sm, sd := s.Date(); sy != ny || sm != nm || sd != nd {
		_, end := s.ZoneBounds() // s lies before the jump: the day begins at it
		return end
	}
	// Where the clocks go back to midnight (midnight occurs twice: Asia/Amman
	// until 2021, Antarctica/Casey), time.Date may give the later one, an
	// hour into the day: the day began at the earlier (a review's scan of
	// every zone, 1970-2040). Rare, and days are memoised by the callers.
	if zs, _ := s.ZoneBounds(); !zs.IsZero() && zs.After(s.Add(-48*time.Hour)) {
		_, off := zs.Add(-time.Nanosecond).Zone()
		e := time.Date(ny, nm, nd, 0, 0, 0, 0, time.FixedZone("", off))
		if ey, em, ed := e.In(loc).Date(); e.Before(s) && ey == ny && em == nm && ed == nd {
			return e
		}
	}
	return s
}

// Bounds is the local day of t in loc: its first instant, the next day's
// first instant, and its date as 2006-01-02.
func Bounds(t time.Time, loc *time.Location) (start, end time.Time, day string) {
	y, m, d := t.In(loc).Date()
	start, end = Start(y, m, d, loc), Start(y, m, d+1, loc)
	return start, end, time.Date(y, m, d, 12, 0, 0, 0, loc).Format(time.DateOnly)
}
