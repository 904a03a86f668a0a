//go:build unix

package campaigns

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// A FIFO renamed over a campaign file between a check of its name and its
// opening made the open wait for a writer for ever: the reload, and then
// the bidder's shutdown, never finished (an outside audit swapped one in
// while sending SIGHUPs). The file is now opened without blocking and the
// open file checked, so no read waits, whatever is swapped in when.
func TestReadFileNeverWaitsOnASwappedFIFO(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "c.yaml")
	body, err := MarshalConfig(baseConfig("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, body, 0o644); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	swapped := make(chan int)
	go func() { // a regular file and a FIFO, renamed over it in turn
		n := 0
		defer func() { swapped <- n }()
		for ; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := filepath.Join(dir, "tmp")
			var err error
			if n%2 == 0 {
				err = syscall.Mkfifo(tmp, 0o644)
			} else {
				err = os.WriteFile(tmp, body, 0o644)
			}
			if err == nil {
				err = os.Rename(tmp, target)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	reads, fifos := 0, 0
	for time.Now().Before(deadline) {
		done := make(chan error, 1)
		go func() { _, err := readFile(target); done <- err }()
		select {
		case err := <-done:
			reads++
			if err != nil && strings.HasPrefix(err.Error(), "not a regular file") {
				fifos++
			}
		case <-time.After(5 * time.Second):
			// Hung on a FIFO: a writer frees it, then fail.
			if w, err := os.OpenFile(target, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			close(stop)
			<-swapped
			t.Fatalf("readFile waited on a FIFO after %d reads", reads)
		}
	}
	close(stop)
	n := <-swapped
	t.Logf("%d reads over %d swaps, %d of them refused a FIFO", reads, n, fifos)
	if fifos == 0 {
		t.Fatal("no read met a FIFO: the test did not test anything")
	}
}
