package main

import (
	"math"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// pid (comm with spaces and a paren) state ppid ... utime=1234 stime=566 ...
	line := []byte("4242 (bid der) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 566 0 0 20 0 9 0 100 1000000 5000 18446744073709551615\n")
	got, err := parseStatCPU(line, 100)
	if err != nil || got != 18*time.Second {
		t.Errorf("%v %v, want 18s", got, err)
	}
	if _, err := parseStatCPU([]byte("4242 (short) S 1 2"), 100); err == nil {
		t.Error("short line accepted")
	}
}

func TestParseStatusMem(t *testing.T) {
	s := "Name:\tbidder\nVmPeak:\t 2000000 kB\nVmHWM:\t  262144 kB\nVmRSS:\t  131072 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatusMem(s)
	if err != nil || rss != 128 || hwm != 256 {
		t.Errorf("rss %v hwm %v %v", rss, hwm, err)
	}
	if _, _, err := parseStatusMem("Name:\tx\n"); err == nil {
		t.Error("no VmRSS accepted")
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-campaigns", "1000", "-ladder", "0.1,0.5", "-baseline-campaigns", ""})
	if err != nil || len(o.campaigns) != 1 || len(o.ladder) != 2 || len(o.baselineN) != 0 {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range [][]string{{"-campaigns", "0"}, {"-ladder", "3"}, {"-duration", "100ms"}, {"-campaigns", "x"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// The recorded command is make's, with the flags the binary got.
func TestCommandRecorded(t *testing.T) {
	o, err := parseFlags([]string{"-command", "make bench-e2e", "-duration", "3s", "-baseline-campaigns="})
	if err != nil {
		t.Fatal(err)
	}
	if want := "make bench-e2e (bin/e2e -duration 3s -baseline-campaigns=)"; o.command != want {
		t.Errorf("command %q, want %q", o.command, want)
	}
}

func TestParseSchedstatWait(t *testing.T) {
	got, err := parseSchedstatWait("3003061192 6195906999 3562\n")
	if err != nil || got != 6195906999*time.Nanosecond {
		t.Errorf("%v %v", got, err)
	}
	if _, err := parseSchedstatWait("12"); err == nil {
		t.Error("one field accepted")
	}
}

// The harness's own process has a schedstat per thread to sum.
func TestProcRunWait(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := procRunWait(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// -serve-work's burner is calibrated to a positive, finite rate, and the
// flag reaches it; a burn of zero returns at once.
func TestServeWork(t *testing.T) {
	b := newBurner()
	if !(b.perUS > 0) || math.IsInf(b.perUS, 0) {
		t.Fatalf("iterations per microsecond: %v", b.perUS)
	}
	b.burn(0)
	b.burn(10 * time.Microsecond)
	o, err := parseFlags([]string{"-serve", "trivial", "-serve-work", "15us"})
	if err != nil || o.serveWork != 15*time.Microsecond {
		t.Fatalf("-serve-work 15us: %v %v", o.serveWork, err)
	}
	if _, err := parseFlags([]string{"-serve-work", "lots"}); err == nil {
		t.Fatal("-serve-work lots accepted")
	}
}
