package campaigns

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Store holds the current Snapshot of a campaign directory and replaces it
// atomically on Reload. Readers call Current once per request and keep that
// snapshot for the whole request.
type Store struct {
	dir  string
	opts []Option
	cur  atomic.Pointer[Snapshot]

	mu      sync.Mutex // serialises Reload; never held by readers
	sig     dirSig     // directory signature of the last load
	pending dirSig     // Watch: a changed signature waiting to hold still for one tick
	// linkDirs are the directories that symlinked campaign files point
	// into, as the last summary found them: Watch watches them too, since
	// an edit there touches nothing in dir.
	linkDirs []string

	ticks, checks atomic.Uint64 // Watch: ticks, and directory summaries taken
}

// NewStore loads dir and returns a Store publishing it. A directory with a
// bad file is an error (every problem listed, wrapping ErrInvalid).
func NewStore(dir string, opts ...Option) (*Store, error) {
	st := &Store{dir: dir, opts: opts}
	if err := st.Reload(); err != nil {
		return nil, err
	}
	return st, nil
}

// Current returns the published snapshot; never nil after NewStore.
func (st *Store) Current() *Snapshot { return st.cur.Load() }

// Dir is the campaign directory.
func (st *Store) Dir() string { return st.dir }

// Reload reads the directory again and publishes the new snapshot. On any
// error the running snapshot stays in place and the error is returned.
func (st *Store) Reload() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	sig, links, err := dirSignature(st.dir)
	if err != nil {
		return err
	}
	st.linkDirs = links
	opts := st.opts
	if cur := st.cur.Load(); cur != nil { // a reload, while bid requests are served: paced
		opts = append(slices.Clip(opts), paced, reuse(cur))
	}
	s, err := LoadDir(st.dir, opts...)
	if err != nil {
		st.sig = sig // do not retry the same broken directory on every tick
		return err
	}
	st.sig = sig
	st.cur.Store(s)
	return nil
}

// Watch reloads when a campaign file's name, size, modification time or
// identity (inode, change time: dirSig) changed and then stayed the same for one more interval (so a file caught
// half-written is not loaded). The directory is watched with inotify
// (fsnotify): it is summarised only on the ticks after an event touched it,
// plus once every fullCheckEvery ticks in case an event was lost (network
// filesystems); a directory replaced by another (its identity, checked
// every tick) is watched again; where inotify is unavailable it is
// summarised every interval. A summary stats every file, so at 10,000
// campaigns polling alone cost ~2% of a core. Reload errors go to onErr (may
// be nil); the running snapshot stays, and the same broken directory is not
// reported again until it changes. It returns when ctx is done.
func (st *Store) Watch(ctx context.Context, interval time.Duration, onErr func(error)) {
	var (
		events  <-chan fsnotify.Event
		errs    <-chan error
		w       *fsnotify.Watcher
		fw      *fsnotify.Watcher // w, or one that could not watch the directory
		watched map[string]bool
		dirID   os.FileInfo // the directory watched, as it was when its watch was added
	)
	// watchDir watches the directory (again): an inotify watch follows the
	// directory it was added on, so one renamed away, or replaced (mv dir
	// dir.old; mv dir.new dir, or a symlink to a release switched), was no
	// longer watched, and edits waited for the full check (60 s by default,
	// an outside audit) until a restart.
	watchDir := func() {
		if fw != nil {
			fw.Close()
		}
		fw, w, events, errs, watched = nil, nil, nil, nil, map[string]bool{}
		dirID, _ = os.Stat(st.dir)
		if nw, err := fsnotify.NewWatcher(); err == nil {
			fw = nw
			if nw.Add(st.dir) == nil {
				w, events, errs = nw, nw.Events, nw.Errors
			}
		}
	}
	watchDir()
	defer func() {
		if fw != nil {
			fw.Close()
		}
	}()
	watchLinks := func() { // the directories symlinked files point into
		if w == nil {
			return
		}
		st.mu.Lock()
		dirs := st.linkDirs
		st.mu.Unlock()
		for _, d := range dirs {
			if !watched[d] && w.Add(d) == nil {
				watched[d] = true
			}
		}
	}
	watchLinks()
	t := time.NewTicker(interval)
	defer t.Stop()
	dirty, ticks := 2, 0
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil // the watcher died: poll every tick
			} else if ev.Has(fsnotify.Remove|fsnotify.Rename) && filepath.Clean(ev.Name) == filepath.Clean(st.dir) {
				// The directory itself went: watch what is there on the
				// next tick, even if it has the old one's identity (an
				// inode number reused by rm -rf and mkdir: a review).
				dirID = nil
			}
			dirty = 2
			continue
		case _, ok := <-errs:
			if !ok {
				errs = nil
			}
			dirty = 2 // an overflow: events were lost
			continue
		case <-t.C:
		}
		ticks++
		st.ticks.Add(1)
		if fi, err := os.Stat(st.dir); err == nil && (dirID == nil || !os.SameFile(fi, dirID)) {
			watchDir()
			watchLinks()
			dirty = 2
		}
		if events != nil && dirty == 0 && ticks%fullCheckEvery != 0 && st.settled() {
			continue
		}
		dirty = max(dirty-1, 0)
		if err := st.reloadIfChanged(); err != nil && onErr != nil {
			onErr(err)
		}
		watchLinks()
	}
}

// fullCheckEvery is how many ticks pass between summaries with no event.
const fullCheckEvery = 30

// settled tells that no change is waiting to hold still.
func (st *Store) settled() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pending == st.sig
}

func (st *Store) reloadIfChanged() error {
	st.checks.Add(1)
	sig, links, err := dirSignature(st.dir)
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.linkDirs = links
	if sig == st.sig || sig != st.pending {
		st.pending = sig
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()
	return st.Reload()
}

// dirSig is a digest of the campaign files' names, sizes, mtimes and (where
// the system has them) inode numbers and change times: 32 bytes however
// many files (the text itself is 60 bytes or so per file). Size and mtime
// alone missed an edit that kept both: a file renamed over another by a
// tool that keeps or fixes mtimes (cp -p, tar, a reproducible build's
// fixed mtime), with a budget of "200.00" made "500.00", was never loaded
// by the watch, full checks included, while the old budget ran (an outside
// audit). A rename gives another inode; a write in place, another ctime.
type dirSig [sha256.Size]byte

// fileID is appendFileID, but in a test of the digest's order.
var fileID = appendFileID

// dirSignature summarises the campaign files (campaignFiles' choice of
// names): names, sizes, mtimes and file identities (fileID). At 10,000 files the stats are 40-60 ms,
// paced (loadPause). The directory is read 256 entries at a time and not
// sorted: each file's line is hashed on its own and the hashes are added
// lane by lane, so the digest does not depend on the order the directory
// lists them in. Reading and sorting all 10,000 names first (os.ReadDir)
// was 7 ms of unbroken work, every minute, on the bid path's core.
//
// A symlinked file is summarised by its target's size and mtime, and links
// lists the directories such targets are in (Watch watches them: an edit
// there touches nothing in dir). A file whose stat fails (a dangling link,
// or one removed since the listing) still counts, by name, so a broken link
// added to the directory is a change, reloaded and reported like any bad
// file, not found only by the next SIGHUP.
func dirSignature(dir string) (sig dirSig, links []string, err error) {
	var sum [4]uint64
	files := 0
	b := make([]byte, 0, 256)
	pause := newLoadPause(true)
	err = eachCampaignFile(dir, &pause, func(n string, link bool) {
		pause.step(5) // a stat is a few microseconds
		p := filepath.Join(dir, n)
		b = append(b[:0], n...)
		b = append(b, 0)
		if fi, err := os.Stat(p); err != nil {
			b = append(b, "unreadable"...)
		} else {
			b = strconv.AppendInt(b, fi.Size(), 10)
			b = append(b, 0)
			b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 10)
			b = fileID(b, fi)
		}
		if link { // one readlink: the directory it points into (a chain of links: its first hop's)
			if t, err := os.Readlink(p); err == nil {
				if !filepath.IsAbs(t) {
					t = filepath.Join(dir, t)
				}
				if d := filepath.Dir(t); d != filepath.Clean(dir) && !slices.Contains(links, d) {
					links = append(links, d)
				}
			}
		}
		h := sha256.Sum256(b)
		for i := range sum {
			sum[i] += binary.LittleEndian.Uint64(h[8*i:])
		}
		files++
	})
	if err != nil {
		return dirSig{}, nil, err
	}
	b = b[:0]
	for _, v := range sum {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = strconv.AppendInt(b, int64(files), 10)
	return sha256.Sum256(b), links, nil
}
