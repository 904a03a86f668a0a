package bidder

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestApplyRuntime(t *testing.T) {
	prevGC := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	})
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	var c Config
	c.Defaults()
	ApplyRuntime(c.Runtime)
	if got := debug.SetGCPercent(100); got != 35 {
		t.Errorf("default gc_percent: GOGC %d, want 35", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("default memory_limit_mib 0 set a limit: %d", got)
	}
	ApplyRuntime(RuntimeConfig{GCPercent: 80, MemoryLimitMiB: 300})
	if got := debug.SetGCPercent(100); got != 80 {
		t.Errorf("gc_percent 80: GOGC %d", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != 300<<20 {
		t.Errorf("memory_limit_mib 300: limit %d", got)
	}
	// The environment wins.
	t.Setenv("GOGC", "200")
	t.Setenv("GOMEMLIMIT", "1GiB")
	ApplyRuntime(RuntimeConfig{GCPercent: 80, MemoryLimitMiB: 300})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set in the environment, but gc_percent applied: %d", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set in the environment, but memory_limit_mib applied: %d", got)
	}
}
