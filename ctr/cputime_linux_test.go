//go:build linux

package ctr

import (
	"syscall"
	"time"
)

// benchThreadCPU is the CPU time (user + system) of the calling OS thread,
// for benchmarks that lock their goroutine to one thread: on a shared,
// loaded machine it measures the work, not the waits for a core.
func benchThreadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
