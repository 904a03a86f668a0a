package campaigns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func writeConfig(t *testing.T, dir string, c Config) {
	t.Helper()
	data, err := MarshalConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, c.ID+".yaml"), data)
}

// writeAtomic writes through a temporary name and a rename, so a watcher
// never sees a half-written file.
func writeAtomic(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name+".tmp", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for an event
	}
}

func TestStoreReload(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, baseConfig("a"))
	st, err := NewStore(dir, WithSeat("seat-9"))
	if err != nil {
		t.Fatal(err)
	}
	s1 := st.Current()
	if s1.Len() != 1 || s1.Campaign("a") == nil || s1.Seat != "seat-9" || s1.Dir != dir {
		t.Fatalf("first snapshot %+v", s1)
	}
	writeConfig(t, dir, baseConfig("b"))
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	s2 := st.Current()
	if s2 == s1 || s2.Len() != 2 || s2.Campaign("b") == nil {
		t.Fatalf("second snapshot %d campaigns", s2.Len())
	}
	if s1.Len() != 1 {
		t.Error("the old snapshot changed")
	}
	// A bad file: the error names it, the running snapshot stays.
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("id: broken\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = st.Reload()
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "broken.yaml: bogus: unknown field (line 2)") {
		t.Fatalf("reload with a bad file: %v", err)
	}
	if st.Current() != s2 {
		t.Error("a bad reload replaced the snapshot")
	}
	if _, err := NewStore(dir); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewStore on a bad dir: %v", err)
	}
	if _, err := NewStore(filepath.Join(dir, "missing")); err == nil {
		t.Error("NewStore on a missing dir: no error")
	}
}

func TestStoreWatch(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, baseConfig("a"))
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Watch(ctx, 2*time.Millisecond, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
	}()
	writeConfig(t, dir, baseConfig("b"))
	waitFor(t, "the watcher to load b", func() bool { return st.Current().Campaign("b") != nil })

	good := st.Current()
	writeAtomic(t, filepath.Join(dir, "c.yaml"), []byte("id: c\n"))
	const want = "c.yaml: advertiser: required"
	waitFor(t, "the watcher to report "+want, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, err := range errs {
			if errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), want) {
				return true
			}
		}
		return false
	})
	if st.Current() != good {
		t.Error("a bad file replaced the snapshot")
	}
	if err := os.Remove(filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watcher to drop a", func() bool { return st.Current().Campaign("a") == nil })
	cancel()
	<-done
}

// A change is loaded once the directory has held still for one poll.
func TestStoreWatchWaitsForQuietDirectory(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, baseConfig("a"))
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := st.Current()
	if err := st.reloadIfChanged(); err != nil || st.Current() != first {
		t.Fatalf("unchanged directory reloaded: %v", err)
	}
	half := []byte("id: b\nadvertiser: B\n") // a file caught while being written
	if err := os.WriteFile(filepath.Join(dir, "b.yaml"), half, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.reloadIfChanged(); err != nil || st.Current() != first {
		t.Fatalf("first poll after a change: %v", err)
	}
	writeConfig(t, dir, baseConfig("b")) // the write completes before the next poll
	if err := st.reloadIfChanged(); err != nil || st.Current() != first {
		t.Fatalf("still changing: %v", err)
	}
	if err := st.reloadIfChanged(); err != nil || st.Current().Campaign("b") == nil {
		t.Fatalf("quiet directory not loaded: %v", err)
	}
}

// With inotify, an unchanged directory is not summarised on every tick (a
// summary stats every campaign file): only after an event, and on one tick
// in fullCheckEvery. A change is still picked up.
func TestStoreWatchIdleCostsNoSummaries(t *testing.T) {
	if w, err := fsnotify.NewWatcher(); err != nil {
		t.Skipf("no inotify here (%v): Watch polls every tick", err)
	} else {
		w.Close()
	}
	dir := t.TempDir()
	writeConfig(t, dir, baseConfig("a"))
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); st.Watch(ctx, time.Millisecond, nil) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "300 ticks", func() bool { return st.ticks.Load() >= 300 })
	ticks, checks := st.ticks.Load(), st.checks.Load()
	if max := 3 + ticks/fullCheckEvery + 1; checks > max {
		t.Fatalf("%d summaries in %d idle ticks, want at most %d", checks, ticks, max)
	}
	writeConfig(t, dir, baseConfig("b"))
	waitFor(t, "the watcher to load b", func() bool { return st.Current().Campaign("b") != nil })
}
