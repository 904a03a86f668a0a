package budget

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// On one P, a request that arrives while a long scan runs is served before
// the scan ends: ScanYield's pauses let the scheduler poll the network.
// Without them the scan (about 4 ms here, under the runtime's 10 ms
// preemption) runs to its end first, and this test fails. A pause lets the
// request in when the reading goroutine is runnable by the time the scheduler
// looks for work; on a machine whose CPUs are busy with other processes the
// network poller's thread can wake too late for each pause of one scan, so
// the scan is tried up to three times.
func TestScanYieldLetsRequestsIn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const units = 8 * yieldEvery
	for try := range 3 {
		at := unitsBeforeRead(t, units)
		if at < units {
			t.Logf("the request ran after %d of %d units", at, units)
			return
		}
		t.Logf("try %d: the request ran after the whole scan", try+1)
	}
	t.Fatal("in three scans the request never ran before the scan ended: the scan never let it in")
}

// unitsBeforeRead sends one byte over a loopback connection whose server
// goroutine is blocked reading, runs a paced scan of units units of about
// 500 ns each, and returns how many units were done when the byte was read.
func unitsBeforeRead(t *testing.T, units int64) int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var done atomic.Int64
	accepted, seen := make(chan net.Conn, 1), make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil {
			seen <- done.Load() // how far the scan had got when the request ran
		}
		close(seen)
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
	// Let the server goroutine block in Read, then send while the scan starts.
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
	if _, err := cl.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	y := NewScanYield()
	for range units {
		for start := time.Now(); time.Since(start) < 500*time.Nanosecond; {
		}
		done.Add(1)
		y.Step(1)
	}
	at, ok := <-seen
	if !ok {
		t.Fatal("the server read nothing")
	}
	return at
}

// With more than one P a ScanYield never pauses.
func TestScanYieldOffWithSeveralPs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	y := NewScanYield()
	y.Step(10 * yieldEvery)
	if y.on || y.n != 0 {
		t.Fatalf("ScanYield on with 2 Ps: %+v", y)
	}
}
