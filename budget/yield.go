package budget

import "github.com/openbidder/openbidder/internal/pace"

// Background scans and the bid path share one core. With GOMAXPROCS at 1 a
// scan over every campaign (pacing, due leases) or every open hold, frequency
// entry or de-dup entry is a millisecond or more of one goroutine's work at
// 10,000 campaigns, and every bid request that arrives meanwhile waits behind
// it, unread in its socket. A ScanYield counts a scan's work and pauses it
// every yieldEvery units (internal/pace says why a pause is what it is). With
// more than one P the other Ps serve requests while a scan runs, so a
// ScanYield does nothing there. The bidder's /metrics collector and
// /admin/status pace their per-campaign loops with it too.

// yieldEvery is the units of scan work (about 100-200 ns each: an account, a
// hold slot's chunk share, a map entry) between pauses (about 10 a scan at
// 10,000 campaigns).
const yieldEvery = 1024

// ScanYield paces one background scan: Step after each unit of work. Not
// safe for concurrent use; one per scan.
type ScanYield struct {
	n  int
	on bool
}

// NewScanYield returns a ScanYield for a scan starting now.
func NewScanYield() ScanYield { return ScanYield{on: pace.On()} }

// Step counts units of work done and, every yieldEvery of them on a single
// P, pauses so that waiting requests run. Call it with no lock held.
func (y *ScanYield) Step(units int) {
	if !y.on {
		return
	}
	y.n += units
	if y.n >= yieldEvery {
		y.n = 0
		pace.Pause()
	}
}
