package bidder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func eventsTestEvent(i int) event {
	return event{Kind: "imp", Time: time.Unix(1e9, int64(i)), Token: &bidToken{
		AuctionID: []byte("auction-" + strings.Repeat("x", 100)), ImpID: []byte("1"),
		Campaign: []byte("camp-1"), Creative: []byte("cr-1"),
	}}
}

// countLines counts the JSON lines in every file of dir, failing on one that
// does not parse.
func countLines(t *testing.T, dir string) (files, lines int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if os.IsNotExist(err) {
			continue // an old backup removed in the background since ReadDir
		}
		if err != nil {
			t.Fatal(err)
		}
		files++
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l eventLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Kind != "imp" {
				t.Fatalf("%s: line %q: %v", e.Name(), sc.Text(), err)
			}
			lines++
		}
		f.Close()
	}
	return files, lines
}

// The event log rotates by size and keeps max_backups rotated files.
func TestEventLogRotates(t *testing.T) {
	f := func(backups, n, wantFiles int, wantAll bool) {
		t.Helper()
		dir := t.TempDir()
		c := EventsConfig{Path: filepath.Join(dir, "events.jsonl"), MaxSizeMB: 1, MaxBackups: backups, Queue: n}
		w, err := openEventFile(c)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := newEventLog(ctx, w, c.Queue, slog.New(slog.DiscardHandler))
		for i := range n {
			l.add(eventsTestEvent(i))
		}
		cancel()
		l.wait()
		if l.dropped.Load() != 0 || l.written.Load() != uint64(n) || l.failed.Load() != 0 {
			t.Fatalf("dropped %d written %d failed %d", l.dropped.Load(), l.written.Load(), l.failed.Load())
		}
		// Old backups are removed in the background: poll.
		var files, lines int
		for deadline := time.Now().Add(10 * time.Second); ; {
			if files, lines = countLines(t, dir); files == wantFiles || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if files != wantFiles {
			t.Errorf("backups %d: %d files, want %d", backups, files, wantFiles)
		}
		if wantAll && lines != n {
			t.Errorf("backups %d: %d lines, want %d", backups, lines, n)
		}
	}
	// About 230 bytes a line: 16000 lines are 3.5 MB, three rotations.
	f(-1, 16000, 4, true) // every rotated file kept: nothing lost
	f(1, 16000, 2, false) // the current file and one backup
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	buf     bytes.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.buf.Write(p)
}

func (b *blockingWriter) Close() error { return nil }

// A writer that falls behind never blocks add: the queue fills and later
// events are dropped and counted; every event is either written or dropped.
func TestEventLogDropsWhenTheWriterFallsBehind(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	l := newEventLog(ctx, w, 4, slog.New(slog.DiscardHandler))
	added := 0
	for deadline := time.Now().Add(10 * time.Second); ; added++ {
		select {
		case <-w.entered:
		default:
			if time.Now().After(deadline) {
				t.Fatal("the writer never wrote")
			}
			l.add(eventsTestEvent(added))
			continue
		}
		break
	}
	// The writer is stuck in Write: these can only queue (4) or drop.
	const burst = 1000
	for i := range burst {
		l.add(eventsTestEvent(added + i))
	}
	if d := l.dropped.Load(); d < burst-4 {
		t.Errorf("dropped %d of a burst of %d behind a stuck writer, want at least %d", d, burst, burst-4)
	}
	close(w.release)
	cancel()
	l.wait()
	if got := l.written.Load() + l.dropped.Load(); got != uint64(added+burst) {
		t.Errorf("written %d + dropped %d = %d, want %d", l.written.Load(), l.dropped.Load(), got, added+burst)
	}
}

// failingWriter fails its first fails writes.
type failingWriter struct {
	fails int
	buf   bytes.Buffer
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.fails > 0 {
		f.fails--
		return 0, errors.New("no space left on device")
	}
	return f.buf.Write(p)
}

// A failed write is logged once, not per event, and the log carries on
// once writes succeed again.
func TestEventWriterRecoversFromFailedWrites(t *testing.T) {
	var logBuf bytes.Buffer
	var failed atomic.Uint64
	f := &failingWriter{fails: 3}
	w := newEventWriter(f, slog.New(slog.NewTextHandler(&logBuf, nil)), &failed)
	for i := range 3 { // three failed flushes
		w.write(eventsTestEvent(i))
		w.flush()
	}
	w.write(eventsTestEvent(3))
	w.flush()
	if n := strings.Count(logBuf.String(), "event log write failed"); n != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", n, logBuf.String())
	}
	if !strings.Contains(logBuf.String(), "event log writes succeed again") {
		t.Errorf("no recovery line:\n%s", logBuf.String())
	}
	if failed.Load() != 3 {
		t.Errorf("failed %d, want 3", failed.Load())
	}
	if n := strings.Count(f.buf.String(), "\n"); n != 1 {
		t.Errorf("%d lines written after recovery, want 1: %q", n, f.buf.String())
	}
}

func TestOpenEventFile(t *testing.T) {
	if w, err := openEventFile(EventsConfig{Path: "off"}); w != nil || err != nil {
		t.Errorf("off: %v, %v", w, err)
	}
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	if _, err := openEventFile(EventsConfig{Path: filepath.Join(notDir, "events.jsonl"), MaxSizeMB: 1}); err == nil {
		t.Error("a path under a regular file was accepted")
	}
	w, err := openEventFile(EventsConfig{Path: filepath.Join(dir, "sub", "events.jsonl"), MaxSizeMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	var _ io.WriteCloser = w
	w.Close()
	if _, err := os.Stat(filepath.Join(dir, "sub", "events.jsonl")); err != nil {
		t.Errorf("file not created at start: %v", err)
	}
}

// A replayed notice is one event: win and billing replays were left out of
// the event log, a loss was appended every time it came, so one lurl fired
// in a loop (a retry storm, or anyone holding it) filled the log with the
// same loss and rotated the real events out of it.
//
// And the first notice of each kind is one event, whether or not it changed
// the charge: an outside audit found a bill at the win's price (an
// exchange's normal settlement) or under it never logged, so the log could
// not tell "won and billed" from "won, the bill never came"; a first loss
// after the bill was not logged either.
func TestReplayedLossLoggedOnce(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	app := startApp(t, func(c *Config) { c.Events = EventsConfig{Path: events} })
	lost, reversed := bidOnce(t, app, "ev-lost"), bidOnce(t, app, "ev-reversed")
	billed, lower := bidOnce(t, app, "ev-billed"), bidOnce(t, app, "ev-lower")
	for _, u := range []string{lost.LURL, lost.LURL, lost.LURL,
		reversed.NURL, reversed.LURL, reversed.LURL, reversed.LURL, reversed.NURL,
		billed.NURL, billed.BURL, billed.BURL, billed.NURL, billed.LURL, billed.LURL,
		lower.NURL} {
		if code, msg := get(t, substitute(u, "1.50")); code != 200 {
			t.Fatalf("%s: %d %s", u, code, msg)
		}
	}
	if code, msg := get(t, substitute(lower.BURL, "1.00")); code != 200 {
		t.Fatalf("%s: %d %s", lower.BURL, code, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e struct{ Kind, Auction string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		got[e.Auction+" "+e.Kind]++
	}
	want := map[string]int{"ev-lost loss": 1, "ev-reversed win": 1, "ev-reversed loss": 1,
		"ev-billed win": 1, "ev-billed bill": 1, "ev-billed loss": 1, "ev-lower win": 1, "ev-lower bill": 1}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v:\n%s", got, want, data)
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("events %v, want %v:\n%s", got, want, data)
		}
	}
}

// The event log is created readable by its owner only: its events name
// auctions and users' impressions and clicks (it was 0644: an outside audit).
func TestEventFileOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev", "events.jsonl")
	w, err := openEventFile(EventsConfig{Path: path, MaxSizeMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("events file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}
