package campaigns

import (
	"bytes"
	"io"

	"github.com/openbidder/openbidder/internal/pace"
)

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
// A nil loadPause never pauses.
func (p *loadPause) step(us int) {
	if p == nil || !p.on {
		return
	}
	p.us += us
	if p.us >= pauseEvery {
		p.us = 0
		pace.Pause()
	}
}

// yamlBytesPerUs is how many bytes of a campaign file yaml.v3 parses in a
// microsecond, rounded down: a 1 MiB file of one long flow list parses in
// 45-60 ms on the 2-core development machine (ParseConfig parses it twice).
const yamlBytesPerUs = 4

// input is data for a yaml.v3 Decoder whose parse pauses as it reads: the
// parser asks its reader for 512 bytes at a time, and each read counts
// its bytes as work. A pause between files was not enough: yaml.v3 parses
// a 1 MiB campaign file (the largest LoadDir reads) in one 45-60 ms run,
// and a reload of 300 such files (an outside audit's) answered 310 of
// 7,853 probe requests "tmax".
func (p *loadPause) input(data []byte) io.Reader {
	if p == nil || !p.on {
		return bytes.NewReader(data)
	}
	return &pacedReader{r: bytes.NewReader(data), p: p}
}

type pacedReader struct {
	r *bytes.Reader
	p *loadPause
}

func (r *pacedReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.step(n/yamlBytesPerUs + 1)
	return n, err
}
