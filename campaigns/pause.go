package campaigns

import (
	"runtime"
	"time"
)

// loadPause paces the long loops of a directory summary and of a reload on a
// bidder pinned to one core.
//
// With GOMAXPROCS 1 a goroutine runs until it blocks, and the network is
// polled only when nothing else can run; a stat is too short a system call
// for the runtime to hand the P to another thread. At 10,000 campaigns the
// directory summary (dirSignature) is 40-60 ms and a reload seconds of one
// goroutine's work, and every bid request that arrived meanwhile waited
// unread. A short sleep lets the scheduler poll the network and run them,
// then the loop resumes (runtime.Gosched alone would not: the scheduler
// takes the yielding goroutine back before it polls). A sleep alone is not
// enough either: when its timer fires the loop goes first in line, ahead of
// the requests the poll readied, and they got in one per pause; at 10,000
// campaigns the summary every minute then held requests for 30 ms and more.
// So a pause is Gosched, the sleep, Gosched again, as budget.ScanYield's is
// (campaigns/ may not import budget/). An idle process sleeps each
// pause as 1 ms (its network poll's least wait), so a paced loop takes up to
// half as long again in wall time, no more CPU. With more than one P it does
// nothing.
type loadPause struct {
	on bool
	us int // work done since the last pause, in microseconds (estimated)
}

const (
	pauseEvery = 2000 // microseconds of work between pauses
	pauseFor   = 20 * time.Microsecond
)

func newLoadPause(on bool) loadPause { return loadPause{on: on && runtime.GOMAXPROCS(0) == 1} }

// step counts about us microseconds of work and pauses every pauseEvery.
func (p *loadPause) step(us int) {
	if !p.on {
		return
	}
	p.us += us
	if p.us >= pauseEvery {
		p.us = 0
		runtime.Gosched() // what is runnable now runs first
		time.Sleep(pauseFor)
		runtime.Gosched() // and what the network poll readied
	}
}
