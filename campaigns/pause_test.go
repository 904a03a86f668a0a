package campaigns

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// On one P, a request that arrives while the store reloads a directory is
// read before the reload ends (loadPause). The reload here is a few
// milliseconds, under the runtime's 10 ms preemption, so without the pauses
// it keeps the only P until it returns and the request is read after it:
// this test fails. The first load (NewStore) is not paced.
//
// A pause lets the request in when the reading goroutine is runnable by the
// time the scheduler looks for work. On a machine whose CPUs are busy with
// other processes the network poller's thread can wake too late for each of
// one reload's few pauses, so the reload is tried up to three times (each
// with one more file to load); without the pauses none lets the request in.
func TestReloadLetsRequestsIn(t *testing.T) {
	dir := t.TempDir()
	for i := range 30 {
		writeConfig(t, dir, baseConfig(fmt.Sprintf("c%03d", i)))
	}
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for try := range 3 {
		writeConfig(t, dir, baseConfig(fmt.Sprintf("c9%02d", try))) // something to reload
		late := readDuring(t, func() {
			if err := st.Reload(); err != nil {
				t.Fatal(err)
			}
		})
		if n := len(st.Current().Campaigns); n != 31+try {
			t.Fatalf("%d campaigns after the reload, want %d", n, 31+try)
		}
		if late < 0 {
			return
		}
		t.Logf("try %d: the request was read %v after the reload ended", try+1, late)
	}
	t.Fatal("in three reloads the request was never read before the reload ended: the reload never let it in")
}

// readDuring sends one byte over a loopback connection whose server
// goroutine is blocked reading, runs work, and returns when the byte was read
// relative to the end of work: negative if it was read before work returned.
func readDuring(t *testing.T, work func()) time.Duration {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted, readAt := make(chan net.Conn, 1), make(chan time.Time, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil {
			readAt <- time.Now()
		}
		close(readAt)
	}()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	for range 100 { // the server goroutine blocks in Read
		runtime.Gosched()
	}
	if _, err := cl.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	work()
	done := time.Now()
	at, ok := <-readAt
	if !ok {
		t.Fatal("the server read nothing")
	}
	return at.Sub(done)
}

// On one P, goroutines already runnable when a paced loop pauses all run
// before it goes on. With a sleep alone the loop's timer put it back first in
// line after each queued goroutine that outlasted the pause, so queued
// requests got in one per pause: 64 goroutines of 50 us each needed about
// 64 pauses, far more than the 8 this loop makes, and this test failed.
func TestLoadPauseRunsQueuedGoroutinesFirst(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const (
		steps   = 8 * pauseEvery // one estimated microsecond each
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
	p := newLoadPause(true)
	for range steps {
		for t0 := time.Now(); time.Since(t0) < 200*time.Nanosecond; {
		}
		done.Add(1)
		p.step(1)
	}
	var last int64
	for range waiters {
		last = max(last, <-ran)
	}
	if last > 2*pauseEvery {
		t.Fatalf("the last of %d queued goroutines ran after %d of %d steps: the loop went on before the queue had run", waiters, last, steps)
	}
	t.Logf("all %d queued goroutines ran within the first %d steps", waiters, last)
}
