package bidder

import (
	"runtime"
	"runtime/debug"
)

// version and commit are set at link time by `make build`:
//
//	go build -ldflags "-X github.com/openbidder/openbidder/bidder.version=$(git describe --tags --always --dirty) \
//	  -X github.com/openbidder/openbidder/bidder.commit=$(git rev-parse HEAD)"
//
// Without them Build falls back on what the Go toolchain stamped in the
// binary (module version, vcs.revision), then on "devel" and "unknown".
var version, commit string

// BuildInfo names the running build, as `bidder -version` prints it and
// openbidder_build_info labels it.
type BuildInfo struct {
	Version string
	Commit  string
	Go      string // toolchain, e.g. go1.26.8
}

// Build returns the running binary's build information.
func Build() BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, Go: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; b.Version == "" && v != "" && v != "(devel)" {
			b.Version = v
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && b.Commit == "" {
				b.Commit = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// String is the -version line: "VERSION (commit COMMIT, GO)".
func (b BuildInfo) String() string {
	return b.Version + " (commit " + b.Commit + ", " + b.Go + ")"
}
