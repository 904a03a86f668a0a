package campaigns

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// On one P, a request that arrives while the store reloads a directory is
// read before the reload ends (loadPause). The reload here is a few
// milliseconds, under the runtime's 10 ms preemption, so without the pauses
// it keeps the only P until it returns and the request is read after it:
// this test fails. The first load (NewStore) is not paced.
func TestReloadLetsRequestsIn(t *testing.T) {
	dir := t.TempDir()
	for i := range 30 {
		writeConfig(t, dir, baseConfig(fmt.Sprintf("c%03d", i)))
	}
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dir, baseConfig("c999")) // something to reload
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))

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
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	at, ok := <-readAt
	if !ok {
		t.Fatal("the server read nothing")
	}
	if !at.Before(done) {
		t.Fatalf("the request was read %v after the reload ended: the reload never let it in", at.Sub(done))
	}
	if len(st.Current().Campaigns) != 31 {
		t.Fatalf("%d campaigns after the reload", len(st.Current().Campaigns))
	}
}
