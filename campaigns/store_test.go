package campaigns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// The directory signature changes with any campaign file's name, size or
// mtime, or a file added or removed, and with nothing else: not with files
// that are not campaign files, and not with the order the directory lists
// its entries in (the hashes of the files are added, not chained; the same
// files written in another order give the same signature).
func TestDirSignature(t *testing.T) {
	sig := func(dir string) dirSig {
		t.Helper()
		s, _, err := dirSignature(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	write := func(dir, name, text string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	a, b := t.TempDir(), t.TempDir()
	for i := range 600 { // more than one 256-entry read
		write(a, fmt.Sprintf("c%03d.yaml", i), "id: x", t0)
	}
	for i := 599; i >= 0; i-- { // the same files, created the other way round
		write(b, fmt.Sprintf("c%03d.yaml", i), "id: x", t0)
	}
	// Two directories hold two sets of files (inodes, change times): the
	// order is compared on names, sizes and mtimes alone.
	fileID = func(b []byte, _ os.FileInfo) []byte { return b }
	same := sig(a) == sig(b)
	fileID = appendFileID
	if !same {
		t.Fatal("the same files in another order give another signature")
	}
	base := sig(a)
	if got := sig(a); got != base {
		t.Fatal("nothing changed, the signature did")
	}
	// Not campaign files: no change.
	write(a, ".hidden.yaml", "x", t0)
	write(a, "notes.txt", "x", t0)
	if err := os.Mkdir(filepath.Join(a, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := sig(a); got != base {
		t.Fatal("a hidden file, a .txt file or a directory changed the signature")
	}
	seen := map[dirSig]string{base: "base"}
	change := func(what string, do func()) {
		t.Helper()
		do()
		s := sig(a)
		if prev, ok := seen[s]; ok {
			t.Fatalf("%s: signature unchanged (same as after %s)", what, prev)
		}
		seen[s] = what
	}
	change("size", func() { write(a, "c010.yaml", "id: xy", t0) })
	change("mtime", func() { write(a, "c010.yaml", "id: xy", t0.Add(time.Second)) })
	// The same size and mtime: another file renamed over it (cp -p, tar
	// and reproducible builds keep or fix mtimes; "200.00" -> "500.00" keeps
	// the size), and the same file written again with its mtime put back.
	change("replaced, same size and mtime", func() {
		write(a, ".c010.tmp", "id: xz", t0.Add(time.Second))
		if err := os.Rename(filepath.Join(a, ".c010.tmp"), filepath.Join(a, "c010.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	change("rewritten, same size and mtime", func() {
		time.Sleep(20 * time.Millisecond) // the kernel's clock for ctime is coarse (a few ms)
		write(a, "c010.yaml", "id: xw", t0.Add(time.Second))
	})
	change("added", func() { write(a, "c600.yml", "id: x", t0) })
	change("removed", func() {
		if err := os.Remove(filepath.Join(a, "c005.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	change("renamed", func() {
		if err := os.Rename(filepath.Join(a, "c006.yaml"), filepath.Join(a, "d006.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	// A dangling link is a change (it was left out of the summary, so only
	// a SIGHUP found it); pointed at a file, another one.
	change("dangling link", func() {
		if err := os.Symlink(filepath.Join(b, "nowhere.yaml"), filepath.Join(a, "link.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	change("link target written", func() { write(b, "nowhere.yaml", "id: x", t0) })
	if _, _, err := dirSignature(filepath.Join(a, "missing")); err == nil {
		t.Fatal("a missing directory gave no error")
	}
}

// A campaign file that is a symlink into another directory is reloaded when
// its target is edited there: Watch watches the directories links point
// into. Before, an edit there touched nothing the watch saw, and the old
// campaign kept bidding until the full check (fullCheckEvery ticks, twice:
// a change must hold still for one summary) or a SIGHUP (an outside audit
// waited 12 s). Counted in ticks, not time: an event loads it within a few.
func TestStoreWatchFollowsSymlinkedFiles(t *testing.T) {
	if w, err := fsnotify.NewWatcher(); err != nil {
		t.Skipf("no inotify here (%v): Watch polls every tick", err)
	} else {
		w.Close()
	}
	dir, elsewhere := t.TempDir(), t.TempDir()
	writeConfig(t, dir, baseConfig("a"))
	writeConfig(t, elsewhere, baseConfig("linked"))
	if err := os.Symlink(filepath.Join(elsewhere, "linked.yaml"), filepath.Join(dir, "linked.yaml")); err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current().Campaign("linked") == nil {
		t.Fatal("the symlinked file was not loaded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); st.Watch(ctx, 5*time.Millisecond, nil) }()
	defer func() { cancel(); <-done }()
	// Edit just after a full check, so that without the event the next
	// one is most of fullCheckEvery ticks away.
	waitFor(t, "a full check", func() bool { n := st.ticks.Load(); return n > fullCheckEvery && n%fullCheckEvery < 5 })
	c := baseConfig("linked")
	c.Advertiser = "Changed behind the link"
	before := st.ticks.Load()
	writeConfig(t, elsewhere, c)
	waitFor(t, "the edit behind the link", func() bool { return st.Current().Campaign("linked").Advertiser == c.Advertiser })
	if n := st.ticks.Load() - before; n >= fullCheckEvery/2 {
		t.Fatalf("the edit behind the link was loaded %d ticks after it: by a full check, not by an event", n)
	}
}

// A campaign directory replaced by another (mv dir dir.old; mv dir.new dir,
// or a symlink to a release switched) is watched again: the watch had
// stayed on the old directory, and each later edit waited for the full
// check (an outside audit: 40-60 s with the default watch_every) until a
// restart. Counted in ticks, as TestStoreWatchFollowsSymlinkedFiles.
func TestStoreWatchFollowsAReplacedDirectory(t *testing.T) {
	if w, err := fsnotify.NewWatcher(); err != nil {
		t.Skipf("no inotify here (%v): Watch polls every tick", err)
	} else {
		w.Close()
	}
	// rename: mv dir old; mv new dir. link: a switched symlink. remade:
	// rm -rf dir; mkdir dir (the new directory may get the old one's inode
	// number, so only the removal's event tells it is another).
	for _, mode := range []string{"rename", "link", "remade"} {
		link := mode == "link"
		parent := t.TempDir()
		dir := filepath.Join(parent, "campaigns")
		release := func(name string, ids ...string) string {
			d := filepath.Join(parent, name)
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				writeConfig(t, d, baseConfig(id))
			}
			return d
		}
		swap := func(d string) { // atomically, as a deploy does
			if mode == "remade" {
				old, _ := os.Stat(dir)
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if fi, err := os.Stat(dir); err == nil && os.SameFile(fi, old) {
					t.Logf("remade: the new directory has the old one's identity")
				}
				ents, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ents {
					if err := os.Rename(filepath.Join(d, e.Name()), filepath.Join(dir, e.Name())); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			tmp := dir + ".new"
			if link {
				if err := os.Symlink(d, tmp); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Rename(d, tmp); err != nil {
				t.Fatal(err)
			} else if err := os.Rename(dir, filepath.Join(parent, "old")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, dir); err != nil {
				t.Fatal(err)
			}
		}
		if link {
			if err := os.Symlink(release("r1", "a"), dir); err != nil {
				t.Fatal(err)
			}
		} else {
			release("campaigns", "a")
		}
		st, err := NewStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); st.Watch(ctx, 5*time.Millisecond, nil) }()
		swap(release("r2", "a", "b"))
		waitFor(t, "the replaced directory's campaigns", func() bool { return st.Current().Campaign("b") != nil })
		// Edit just after a full check, so that without an event the
		// next one is most of fullCheckEvery ticks away.
		waitFor(t, "a full check", func() bool { n := st.ticks.Load(); return n > fullCheckEvery && n%fullCheckEvery < 5 })
		before := st.ticks.Load()
		writeConfig(t, dir, baseConfig("c"))
		waitFor(t, "an edit in the replaced directory", func() bool { return st.Current().Campaign("c") != nil })
		if n := st.ticks.Load() - before; n >= fullCheckEvery/2 {
			t.Errorf("%s: the edit in the replaced directory was loaded %d ticks after it: by a full check, not by an event", mode, n)
		}
		cancel()
		<-done
	}
}

// A campaign file's extension is read in any letter case: ACME.YAML and
// b.Yml load (they were skipped without a word, so their campaigns never
// ran); other names and dot files are still not campaign files.
func TestLoadDirReadsExtensionsInAnyCase(t *testing.T) {
	dir := t.TempDir()
	for name, id := range map[string]string{"ACME.YAML": "upper", "b.Yml": "mixed", "c.yaml": "lower"} {
		data, err := MarshalConfig(baseConfig(id))
		if err != nil {
			t.Fatal(err)
		}
		writeAtomic(t, filepath.Join(dir, name), data)
	}
	writeAtomic(t, filepath.Join(dir, "notes.txt"), []byte("not yaml"))
	writeAtomic(t, filepath.Join(dir, ".hidden.YAML"), []byte("not: a campaign"))
	s, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range s.Campaigns {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"lower", "mixed", "upper"}) {
		t.Fatalf("loaded %v, want lower, mixed and upper", ids)
	}
}
