// Package pace pauses long background loops on a process pinned to one core,
// so that bid requests are not held behind them. budget.ScanYield (budget's
// scans, the bidder's /metrics and /admin/status loops) and campaigns'
// loadPause (the directory summary, the reload) count their own work and
// call Pause; this is the one place the pause itself lives.
//
// With GOMAXPROCS at 1 a goroutine runs until it blocks, and the network is
// polled only when nothing else can run. runtime.Gosched alone does not help:
// the scheduler takes the yielding goroutine back from its run queue before
// it polls the network. A short sleep does: with nothing runnable the
// scheduler polls the network and runs the requests that came in. A sleep
// alone is not enough either: its timer puts the loop first in line (runnext)
// when it fires, ahead of every goroutine still queued, so with more than a
// pause's worth of them (a burst of connections, a GC's mark work) the loop
// let one in per pause; at 10,000 campaigns a /metrics scrape and the minute's
// directory summary each held requests for 40-80 ms. So a pause is Gosched
// (the loop goes to the back of the global queue: what is runnable now runs
// first), the sleep (nothing is runnable, so the network is polled), and
// Gosched again (what that poll readied runs before the loop goes on).
//
// With more than one P the other Ps serve requests while a loop runs, so
// callers pause only where On says so.
package pace

import (
	"runtime"
	"time"
)

// sleep outlasts the trip through the scheduler to its network poll, so that
// the timer has not already fired when the scheduler looks for work. An idle
// process sleeps it as the 1 ms its network poll waits at least: a paced loop
// takes longer in wall time, no more CPU.
const sleep = 20 * time.Microsecond

// On reports whether pausing helps: the process has one P.
func On() bool { return runtime.GOMAXPROCS(0) == 1 }

// Pause lets every goroutine runnable now, and every request the network
// poll finds meanwhile, run before the caller goes on. Call it with no lock
// held.
func Pause() {
	runtime.Gosched()
	time.Sleep(sleep)
	runtime.Gosched()
}
