//go:build !linux

package ctr

import "time"

// benchThreadCPU is not measured here (see cputime_linux_test.go).
func benchThreadCPU() time.Duration { return 0 }
