package campaigns

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
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
// Every file is rewritten before each reload: an unchanged one is copied
// from the running snapshot, not parsed, and the reload would be too short
// to pause.
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
		for i := range 30 {
			c := baseConfig(fmt.Sprintf("c%03d", i))
			c.Advertiser += fmt.Sprintf(" (try %d)", try)
			writeConfig(t, dir, c)
		}
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

// On one P, a request that arrives while a reload parses one large campaign
// file is read before the parse ends: yaml.v3 reads its input through the
// pause (loadPause.input), so a long file pauses inside its parse, not only
// between files. The file here (a block list of 1,500 domains, about 45 KB)
// parses in a few milliseconds, under the runtime's 10 ms preemption:
// with a plain reader the request is read after it, and this test fails
// (checked). Tried up to three times, as TestReloadLetsRequestsIn says why.
func TestLargeFileParseLetsRequestsIn(t *testing.T) {
	data := bigBlockList(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for try := range 3 {
		var got Config
		late := readDuring(t, func() {
			pause := newLoadPause(true)
			var err error
			if got, err = parseConfig("big.yaml", data, &pause); err != nil {
				t.Fatal(err)
			}
		})
		if n := len(got.Targeting.SiteDomains.Block); n != 1500 {
			t.Fatalf("%d domains parsed, want 1500", n)
		}
		if late < 0 {
			return
		}
		t.Logf("try %d: the request was read %v after the parse ended", try+1, late)
	}
	t.Fatal("in three parses the request was never read before the parse ended")
}

// The YAML parse itself pauses as it reads (loadPause.input): a request is
// read before one parse of a large file ends, with no pause of parseConfig's
// around it. TestLargeFileParseLetsRequestsIn passes on those alone (the
// review of cfd3b76); this one fails with a plain reader (checked).
func TestYAMLReadPauses(t *testing.T) {
	data := bigBlockList(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for try := range 3 {
		var root yaml.Node
		late := readDuring(t, func() {
			pause := newLoadPause(true)
			if err := yaml.NewDecoder(pause.input(data)).Decode(&root); err != nil {
				t.Fatal(err)
			}
		})
		if late < 0 {
			return
		}
		t.Logf("try %d: the request was read %v after the parse ended", try+1, late)
	}
	t.Fatal("in three parses the request was never read before the parse ended")
}

// bigBlockList is a campaign file with a block list of 1,500 domains, about
// 45 KB: yaml.v3 parses it in a few milliseconds.
func bigBlockList(t *testing.T) []byte {
	t.Helper()
	c := baseConfig("big")
	for i := range 1500 {
		c.Targeting.SiteDomains.Block = append(c.Targeting.SiteDomains.Block, fmt.Sprintf("blocked-%05d.example", i))
	}
	data, err := MarshalConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
