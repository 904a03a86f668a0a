package campaigns

import "github.com/openbidder/openbidder/internal/pace"

// loadPause paces the long loops of a directory summary and of a reload on a
// bidder pinned to one core: a stat is too short a system call for the
// runtime to hand the P to another thread, and at 10,000 campaigns the
// directory summary (dirSignature) is 40-60 ms and a reload seconds of one
// goroutine's work, with every bid request that arrives meanwhile waiting
// unread. It counts estimated microseconds of work and pauses every
// pauseEvery (internal/pace says why a pause is what it is; budget.ScanYield
// pauses the same way). With more than one P it does nothing.
type loadPause struct {
	on bool
	us int // work done since the last pause, in microseconds (estimated)
}

const pauseEvery = 2000 // microseconds of work between pauses

func newLoadPause(on bool) loadPause { return loadPause{on: on && pace.On()} }

// step counts about us microseconds of work and pauses every pauseEvery.
func (p *loadPause) step(us int) {
	if !p.on {
		return
	}
	p.us += us
	if p.us >= pauseEvery {
		p.us = 0
		pace.Pause()
	}
}
