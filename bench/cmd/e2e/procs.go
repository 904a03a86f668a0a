package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A server under test runs as its own process, pinned with taskset to the
// server CPU when there are two, so that its Go runtime sees one CPU
// (GOMAXPROCS 1) as the bidder did when the issue was measured.

// proc is a child process the harness started and must stop.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startProc runs argv (under taskset -c cpu when cpu is set) with its
// output in logPath.
func startProc(name, cpu, logPath string, env []string, argv ...string) (*proc, error) {
	if cpu != "" {
		argv = append([]string{"taskset", "-c", cpu}, argv...)
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: lf, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid is the server's process id (taskset execs the program: same pid).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM (the bidder drains and flushes), then SIGKILL after
// grace. It is safe to call twice.
func (p *proc) stop(grace time.Duration) error {
	if p == nil {
		return nil
	}
	defer p.log.Close()
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s: killed after %v without exiting", p.name, grace)
	}
}

// waitReady polls url until it answers 2xx, the process exits, or timeout.
func (p *proc) waitReady(url string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c := &http.Client{Timeout: 2 * time.Second}
	for deadline := start.Add(timeout); time.Now().Before(deadline); {
		select {
		case <-p.exited:
			return 0, fmt.Errorf("%s exited before it was ready (%v); see %s", p.name, p.err, p.log.Name())
		default:
		}
		if resp, err := c.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return time.Since(start), nil
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a process that is starting, bounded by timeout
	}
	return 0, fmt.Errorf("%s not ready after %v; see %s", p.name, timeout, p.log.Name())
}

// freePort is a loopback address with a port free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// scrape reads url (a /metrics page) and parses the series with prefixes.
func scrape(ctx context.Context, url string, prefixes ...string) (series, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body, prefixes...)
}

// procCPU is a process's user+system CPU time so far (all threads), from
// /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b, clockTicks())
}

var errStat = errors.New("/proc/PID/stat not understood")

// parseStatCPU reads utime and stime (fields 14 and 15, in clock ticks)
// from a /proc/PID/stat line; the command name in parentheses may hold
// spaces, so fields are counted after its closing parenthesis.
func parseStatCPU(b []byte, hz int64) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || hz <= 0 {
		return 0, errStat
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errStat
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errStat
	}
	return time.Duration((ut + st) * int64(time.Second) / hz), nil
}

// clockTicks is USER_HZ (getconf CLK_TCK; 100 on Linux where getconf is
// missing).
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
		return v
	}
	return 100
}

// procMem is a process's resident set and its peak, in MiB, from
// /proc/PID/status.
func procMem(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	return parseStatusMem(string(b))
}

// parseStatusMem reads VmRSS and VmHWM (kB) from /proc/PID/status.
func parseStatusMem(s string) (rss, hwm float64, err error) {
	found := 0
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		v, perr := strconv.ParseFloat(f[1], 64)
		if perr != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, found = v/1024, found|1
		case "VmHWM:":
			hwm, found = v/1024, found|2
		}
	}
	if found != 3 {
		return 0, 0, errors.New("/proc/PID/status: no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}

// procRunWait is the time a process's threads spent runnable but waiting
// for a CPU so far: the second field of /proc/PID/task/TID/schedstat,
// summed over the threads alive now (a thread that exited takes its share
// with it).
func procRunWait(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited
		}
		w, err := parseSchedstatWait(string(b))
		if err != nil {
			return 0, err
		}
		total += w
	}
	return total, nil
}

// parseSchedstatWait reads "run_ns wait_ns timeslices".
func parseSchedstatWait(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0, errors.New("schedstat not understood")
	}
	v, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("schedstat: %w", err)
	}
	return time.Duration(v), nil
}

// cpuTicks is the busy and total time of some CPUs, in USER_HZ ticks, from
// /proc/stat.
type cpuTicks struct{ busy, total uint64 }

// busyShare is the share of (b - a)'s time the CPUs were busy.
func (b cpuTicks) busyShare(a cpuTicks) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}

// readCPUTicks sums /proc/stat's lines of the CPUs in list (a taskset list:
// "0", "0,2", "1-3").
func readCPUTicks(list string) (cpuTicks, error) {
	cpus, err := parseCPUList(list)
	if err != nil {
		return cpuTicks{}, err
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, err
	}
	return parseProcStat(string(b), cpus)
}

// parseProcStat sums the cpuN lines of cpus. Busy is everything but idle
// and iowait: user, nice, system, irq, softirq and steal, so the kernel's
// network work on the CPU counts as well as the processes'. (guest time is
// already inside user.)
func parseProcStat(s string, cpus []int) (cpuTicks, error) {
	var t cpuTicks
	found := 0
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || !slices.Contains(cpus, n) {
			continue
		}
		for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
			x, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return cpuTicks{}, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
			t.total += x
			if i != 3 && i != 4 {
				t.busy += x
			}
		}
		found++
	}
	if found != len(cpus) {
		return cpuTicks{}, fmt.Errorf("/proc/stat: %d of CPUs %v found", found, cpus)
	}
	return t, nil
}

// parseCPUList reads a taskset CPU list.
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b-a > 4096 {
			return nil, fmt.Errorf("CPU list %q not understood", s)
		}
		for c := a; c <= b; c++ {
			if !slices.Contains(cpus, c) {
				cpus = append(cpus, c)
			}
		}
	}
	return cpus, nil
}
