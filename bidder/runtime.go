package bidder

import (
	"os"
	"runtime/debug"
)

// ApplyRuntime sets the process's collector target and memory limit from
// rc (config runtime), leaving each to its environment variable (GOGC,
// GOMEMLIMIT) when that is set. It changes process-wide state: the bidder
// command calls it once, before Run.
func ApplyRuntime(rc RuntimeConfig) {
	if os.Getenv("GOGC") == "" && rc.GCPercent != 0 {
		debug.SetGCPercent(rc.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && rc.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(rc.MemoryLimitMiB) << 20)
	}
}
