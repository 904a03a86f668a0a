package main

import (
	"flag"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Without -out, run and replay write under a directory git ignores: the
// README's replay command has no -out, and run in a checkout it must not
// leave untracked files behind.
func TestDefaultOutIsIgnored(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f flags
	bind(fs, &f, true)
	out := fs.Lookup("out").DefValue
	if filepath.IsAbs(out) {
		t.Fatalf("-out defaults to an absolute path %q", out)
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout:", err)
	}
	probe := filepath.Join(strings.TrimSpace(string(root)), out, "report.json")
	if err := exec.Command("git", "check-ignore", "-q", probe).Run(); err != nil {
		t.Errorf("-out defaults to %q, which git does not ignore (%v)", out, err)
	}
}
