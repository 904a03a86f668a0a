package pace

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// On one P, goroutines already runnable when a paced loop pauses all run
// before it goes on, however many there are. With a sleep alone the loop's
// timer put it back first in line after each queued goroutine that outlasted
// the pause, so queued work (new connections, requests the poller readied)
// got in one per pause: 64 goroutines of 50 us each needed about 64 pauses,
// far more than the 8 this loop makes, and this test failed. budget's
// ScanYield and campaigns' loadPause pause through Pause.
func TestPauseRunsQueuedGoroutinesFirst(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const (
		every   = 1024 // units between pauses, about 200 ns each
		units   = 8 * every
		waiters = 64
	)
	var done atomic.Int64
	start := make(chan struct{})
	ran := make(chan int64, waiters)
	for range waiters {
		go func() {
			<-start
			for t0 := time.Now(); time.Since(t0) < 50*time.Microsecond; {
			}
			ran <- done.Load()
		}()
	}
	for i := 0; i < 100; i++ { // let them all block on start
		runtime.Gosched()
	}
	close(start) // all runnable, queued behind this goroutine
	for i := range units {
		for t0 := time.Now(); time.Since(t0) < 200*time.Nanosecond; {
		}
		done.Add(1)
		if (i+1)%every == 0 {
			Pause()
		}
	}
	var last int64
	for range waiters {
		last = max(last, <-ran)
	}
	if last > 2*every {
		t.Fatalf("the last of %d queued goroutines ran after %d of %d units: the loop went on before the queue had run", waiters, last, units)
	}
	t.Logf("all %d queued goroutines ran within the first %d units", waiters, last)
}

func TestOn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if !On() {
		t.Fatal("On false with one P")
	}
	runtime.GOMAXPROCS(2)
	if On() {
		t.Fatal("On true with two Ps")
	}
}
