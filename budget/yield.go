package budget

import (
	"runtime"
	"time"
)

// Background scans and the bid path share one core.
//
// With GOMAXPROCS at 1 (a bidder pinned to one core) a goroutine runs until
// it blocks, and the network is polled only when nothing else can run. A
// scan over every campaign (pacing, due leases) or every open hold, frequency
// entry or de-dup entry is a millisecond or more of one goroutine's work at
// 10,000 campaigns, and every bid request that arrived meanwhile waited
// behind it, unread in its socket. runtime.Gosched alone does not help: the
// scheduler takes the yielding goroutine back from its run queue before it
// polls the network. A short sleep does: with nothing runnable the scheduler
// polls the network and runs the requests that came in. A sleep alone is not
// enough either: its timer puts the scan first in line (runnext) when it
// fires, ahead of every goroutine still queued, so with more than a pause's
// worth of them (a burst of connections, a GC's mark work) the scan let one
// in per pause and a scrape of /metrics at 10,000 campaigns held requests for
// 40 ms. So each pause is Gosched (the scan goes to the back of the global
// queue: what is runnable now runs first), the sleep (nothing is runnable,
// so the network is polled), Gosched again (what that poll readied runs
// before the scan goes on).
//
// With more than one P the other Ps serve requests while a scan runs, so a
// ScanYield does nothing there. The bidder's /metrics collector paces its
// per-campaign loops with it too.

const (
	// yieldEvery is the units of scan work (about 100-200 ns each: an
	// account, a hold slot's chunk share, a map entry) between pauses.
	yieldEvery = 1024
	// yieldPause outlasts the trip through the scheduler to its network
	// poll, so that the timer has not already fired when the scheduler
	// looks for work. An idle process sleeps it as the 1 ms its network poll
	// waits at least (about 10 pauses a scan at 10,000 campaigns).
	yieldPause = 20 * time.Microsecond
)

// ScanYield paces one background scan: Step after each unit of work. Not
// safe for concurrent use; one per scan.
type ScanYield struct {
	n  int
	on bool
}

// NewScanYield returns a ScanYield for a scan starting now.
func NewScanYield() ScanYield { return ScanYield{on: runtime.GOMAXPROCS(0) == 1} }

// Step counts units of work done and, every yieldEvery of them on a single
// P, pauses so that waiting requests run. Call it with no lock held.
func (y *ScanYield) Step(units int) {
	if !y.on {
		return
	}
	y.n += units
	if y.n >= yieldEvery {
		y.n = 0
		runtime.Gosched()
		time.Sleep(yieldPause)
		runtime.Gosched()
	}
}
