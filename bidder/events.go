package bidder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"gopkg.in/natefinch/lumberjack.v2"
)

// event is one notice or tracker hit, written as a JSON line for CTR
// feedback and audits. It never sits on the bid path.
type event struct {
	Kind       string
	Token      *bidToken
	Charged    int64
	Late, Dup  bool
	LossReason int64
	Time       time.Time
}

type eventLine struct {
	Time       string  `json:"time"`
	Kind       string  `json:"kind"`
	Auction    eventID `json:"auction"`
	Imp        eventID `json:"imp"`
	Campaign   eventID `json:"campaign"`
	Creative   eventID `json:"creative"`
	Charged    int64   `json:"charged_micros,omitempty"`
	Late       bool    `json:"late,omitempty"`
	LossReason int64   `json:"loss_reason,omitempty"`
}

// eventID is an id (auction, imp, campaign, creative) as the event log
// writes it: a JSON string in which each byte that is not part of valid
// UTF-8 is the escape \udcXX (XX the byte), the lone surrogate Python's
// "surrogateescape" decodes that byte to. ctr/train/rowlog.py decodes the row
// log's raw ids that way, so an id that is not UTF-8 keys its row and its
// impressions and clicks alike, and two such ids stay apart. (Go's
// encoding/json would write U+FFFD for each bad byte, and Python's "replace"
// one per bad run: the rows were lost.) Valid ids are written as
// encoding/json writes them.
type eventID string

func (id eventID) MarshalJSON() ([]byte, error) {
	s := string(id)
	if utf8.ValidString(s) {
		return json.Marshal(s)
	}
	b := []byte{'"'}
	for len(s) > 0 {
		valid := 0
		for valid < len(s) {
			r, n := utf8.DecodeRuneInString(s[valid:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			valid += n
		}
		if valid > 0 {
			q, err := json.Marshal(s[:valid])
			if err != nil {
				return nil, err
			}
			b, s = append(b, q[1:len(q)-1]...), s[valid:]
			continue
		}
		b, s = fmt.Appendf(b, `\udc%02x`, s[0]), s[1:]
	}
	return append(b, '"'), nil
}

// eventLog is a bounded queue in front of a file writer: when the writer
// falls behind, events are dropped and counted, never waited for.
type eventLog struct {
	q       chan event
	dropped atomic.Uint64 // queue full
	written atomic.Uint64 // taken by the writer
	failed  atomic.Uint64 // writes or flushes that failed (lines lost)
	done    chan struct{}
}

// eventsOff as events.path keeps the counters and writes no file.
const eventsOff = "off"

// openEventFile opens the rotated event log file c names (nil for "off").
// The file is created (or opened for append) here, so a path the bidder
// cannot write is refused at start rather than at the first event.
// Rotation (lumberjack: a size limit, backups kept by count and age,
// optional gzip) happens on the writer goroutine, never on the bid path.
func openEventFile(c EventsConfig) (io.WriteCloser, error) {
	if c.Path == eventsOff {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return nil, fmt.Errorf("events.path: %w", err)
	}
	// Owner only when created (lumberjack keeps the mode when it rotates):
	// its events name auctions, users' impressions and clicks.
	f, err := os.OpenFile(c.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("events.path: %w", err)
	}
	f.Close()
	return &lumberjack.Logger{
		Filename:   c.Path,
		MaxSize:    c.MaxSizeMB,
		MaxBackups: max(c.MaxBackups, 0), // negative (keep all) is lumberjack's 0
		MaxAge:     c.MaxAgeDays,
		Compress:   c.Compress,
	}, nil
}

// newEventLog writes JSON lines to w, through a queue of size events; a nil
// w counts only. The writer is closed when ctx ends and the queue is drained.
func newEventLog(ctx context.Context, w io.WriteCloser, size int, log *slog.Logger) *eventLog {
	l := &eventLog{q: make(chan event, size), done: make(chan struct{})}
	go l.run(ctx, w, log)
	return l
}

func (l *eventLog) add(e event) {
	if l == nil {
		return
	}
	select {
	case l.q <- e:
	default:
		l.dropped.Add(1)
	}
}

func (l *eventLog) run(ctx context.Context, f io.WriteCloser, log *slog.Logger) {
	defer close(l.done)
	var w *eventWriter
	if f != nil {
		defer f.Close()
		w = newEventWriter(f, log, &l.failed)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	write := func(e event) {
		l.written.Add(1)
		w.write(e)
	}
	for {
		select {
		case e := <-l.q:
			write(e)
		case <-tick.C:
			w.flush()
		case <-ctx.Done():
			for {
				select {
				case e := <-l.q:
					write(e)
				default:
					w.flush()
					return
				}
			}
		}
	}
}

// eventWriterBuffer is how many bytes of whole lines are gathered before
// one Write; the file is also flushed every second.
const eventWriterBuffer = 64 << 10

// eventWriter encodes events into a buffer of whole lines and writes it to
// the file in one Write, so a rotation (which happens between writes) never
// splits a line across two files. A failed write (a full disk) loses the
// buffered lines, is counted, and is logged once until writes succeed
// again. A nil eventWriter writes nothing.
type eventWriter struct {
	f       io.Writer
	buf     bytes.Buffer
	enc     *json.Encoder
	log     *slog.Logger
	failed  *atomic.Uint64
	failing bool
}

func newEventWriter(f io.Writer, log *slog.Logger, failed *atomic.Uint64) *eventWriter {
	w := &eventWriter{f: f, log: log, failed: failed}
	w.enc = json.NewEncoder(&w.buf)
	return w
}

func (w *eventWriter) write(e event) {
	if w == nil {
		return
	}
	t := e.Token
	n := w.buf.Len()
	if err := w.enc.Encode(eventLine{
		Time: e.Time.UTC().Format(time.RFC3339Nano), Kind: e.Kind,
		Auction: eventID(t.AuctionID), Imp: eventID(t.ImpID), Campaign: eventID(t.Campaign),
		Creative: eventID(t.Creative), Charged: e.Charged, Late: e.Late, LossReason: e.LossReason,
	}); err != nil {
		w.buf.Truncate(n)
		return
	}
	if w.buf.Len() >= eventWriterBuffer {
		w.flush()
	}
}

func (w *eventWriter) flush() {
	if w == nil || w.buf.Len() == 0 {
		return
	}
	_, err := w.f.Write(w.buf.Bytes())
	w.buf.Reset()
	switch {
	case err != nil:
		w.failed.Add(1)
		if !w.failing {
			w.failing = true
			w.log.Warn("event log write failed; events are lost until writes succeed again", "err", err)
		}
	case w.failing:
		w.failing = false
		w.log.Info("event log writes succeed again", "failures", w.failed.Load())
	}
}

// wait blocks until the writer has flushed after its context ended.
func (l *eventLog) wait() { <-l.done }
