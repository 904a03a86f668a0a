package bidder

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
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
	Time       string `json:"time"`
	Kind       string `json:"kind"`
	Auction    string `json:"auction"`
	Imp        string `json:"imp"`
	Campaign   string `json:"campaign"`
	Creative   string `json:"creative"`
	Charged    int64  `json:"charged_micros,omitempty"`
	Late       bool   `json:"late,omitempty"`
	LossReason int64  `json:"loss_reason,omitempty"`
}

// eventLog is a bounded queue in front of a file writer: when the writer
// falls behind, events are dropped and counted, never waited for.
type eventLog struct {
	q       chan event
	dropped atomic.Uint64
	written atomic.Uint64
	done    chan struct{}
}

// newEventLog writes to path (JSON lines); an empty path counts only.
func newEventLog(ctx context.Context, path string, size int, log *slog.Logger) (*eventLog, error) {
	l := &eventLog{q: make(chan event, size), done: make(chan struct{})}
	var f *os.File
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		var err error
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return nil, err
		}
	}
	go l.run(ctx, f, log)
	return l, nil
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

func (l *eventLog) run(ctx context.Context, f *os.File, log *slog.Logger) {
	defer close(l.done)
	var w *bufio.Writer
	var enc *json.Encoder
	if f != nil {
		defer f.Close()
		w = bufio.NewWriter(f)
		enc = json.NewEncoder(w)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	write := func(e event) {
		l.written.Add(1)
		if enc == nil {
			return
		}
		t := e.Token
		if err := enc.Encode(eventLine{
			Time: e.Time.UTC().Format(time.RFC3339Nano), Kind: e.Kind,
			Auction: string(t.AuctionID), Imp: string(t.ImpID), Campaign: string(t.Campaign),
			Creative: string(t.Creative), Charged: e.Charged, Late: e.Late, LossReason: e.LossReason,
		}); err != nil {
			log.Warn("event log write failed", "err", err)
		}
	}
	for {
		select {
		case e := <-l.q:
			write(e)
		case <-tick.C:
			if w != nil {
				w.Flush()
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-l.q:
					write(e)
				default:
					if w != nil {
						w.Flush()
					}
					return
				}
			}
		}
	}
}

// wait blocks until the writer has flushed after its context ended.
func (l *eventLog) wait() { <-l.done }
