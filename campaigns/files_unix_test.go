//go:build unix

package campaigns

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A campaign directory entry that is not a regular file of reasonable size
// is a problem with its file and reason, read without waiting or filling
// memory, and a reload that finds one keeps the running set.
func TestLoadDirRefusesOddFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		make   func(t *testing.T, path string)
		reason string
	}{
		{"fifo", func(t *testing.T, path string) {
			// Opening it for reading would wait for a writer forever.
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Skip("mkfifo:", err)
			}
		}, "not a regular file (p"},
		{"device", func(t *testing.T, path string) {
			// Reading it would never end (and take all the memory on the way).
			if _, err := os.Stat("/dev/zero"); err != nil {
				t.Skip("no /dev/zero")
			}
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (D"},
		{"huge", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, MaxFileBytes+1); err != nil { // sparse: nothing written
				t.Fatal(err)
			}
		}, "1048577 bytes, more than the 1048576 a campaign file may have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConfig(t, dir, baseConfig("a"))
			st, err := NewStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			running := st.Current()
			bad := filepath.Join(dir, "zz-bad.yaml")
			tc.make(t, bad)
			err = st.Reload()
			ps := Problems(err)
			if len(ps) != 1 || ps[0].File != bad || !strings.HasPrefix(ps[0].Reason, tc.reason) {
				t.Fatalf("problems %v, want one for %s starting %q", err, bad, tc.reason)
			}
			if st.Current() != running {
				t.Error("the running snapshot was replaced")
			}
		})
	}
}
