package main

import (
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/openbidder/openbidder/bidder"
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

func TestParseProcStat(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  300 0 100 500 10 0 20 5 0 0\n" +
		"cpu0 200 0 60 100 5 0 15 5 0 0\n" +
		"cpu1 100 0 40 400 5 0 5 0 0 0\n" +
		"intr 12345 0 0\nctxt 999\n"
	got, err := parseProcStat(stat, []int{0})
	if err != nil || got != (cpuTicks{busy: 280, total: 385}) {
		t.Errorf("cpu0: %+v %v", got, err)
	}
	got, err = parseProcStat(stat, []int{0, 1})
	if err != nil || got != (cpuTicks{busy: 425, total: 935}) {
		t.Errorf("cpu0,1: %+v %v", got, err)
	}
	if _, err := parseProcStat(stat, []int{2}); err == nil {
		t.Error("a CPU missing from /proc/stat accepted")
	}
	if _, err := parseProcStat("cpu0 1 x 3 4 5 6 7 8\n", []int{0}); err == nil {
		t.Error("a non-number accepted")
	}
	a, b := cpuTicks{busy: 100, total: 1000}, cpuTicks{busy: 400, total: 1400}
	if s := b.busyShare(a); math.Abs(s-0.75) > 1e-9 {
		t.Errorf("busy share %v, want 0.75", s)
	}
	if s := a.busyShare(a); s != 0 {
		t.Errorf("busy share over no time %v, want 0", s)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "1": {1}, "0,2": {0, 2}, "1-3": {1, 2, 3}, "0,2-3,2": {0, 2, 3}} {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "3-1", "-1", "0-", "0-99999"} {
		if got, err := parseCPUList(bad); err == nil {
			t.Errorf("%q accepted as %v", bad, got)
		}
	}
}

// On Linux the machine's own /proc/stat reads for CPU 0.
func TestReadCPUTicks(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc/stat")
	}
	got, err := readCPUTicks("0")
	if err != nil || got.total == 0 || got.busy > got.total {
		t.Errorf("%+v %v", got, err)
	}
}

// The baseline's ONNX batcher is the bidder's default one, as the docs say
// ("the same models, ONNX behind the same micro-batcher").
func TestBaselineBatchIsTheBidders(t *testing.T) {
	var c bidder.Config
	c.Defaults()
	if baselineBatch.MaxBatch != c.Model.MaxBatch || baselineBatch.MaxWait != c.Model.MaxWait {
		t.Errorf("baseline batcher max batch %d, max wait %v; the bidder's default %d, %v",
			baselineBatch.MaxBatch, baselineBatch.MaxWait, c.Model.MaxBatch, c.Model.MaxWait)
	}
}
