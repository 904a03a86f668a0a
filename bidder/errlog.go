package bidder

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/openbidder/openbidder/budget"
)

// recentErrors is an slog.Handler in front of the app's own: it passes every
// record on, and keeps the last few at level WARN or above for the status
// page. Handlers made by WithAttrs and WithGroup share the ring. A summary
// line that repeats (the embedded NATS server's client connection errors,
// written once a minute while a flood of bad connections lasts) keeps one
// place in the ring, its newest, so that it cannot push the bidder's own
// warnings and errors out.
type recentErrors struct {
	next   slog.Handler
	ring   *errorRing
	attrs  string // pre-formatted attributes of WithAttrs
	groups string // group prefix of WithGroup, "a.b."
}

// errorRing is a bounded ring of log records.
type errorRing struct {
	mu    sync.Mutex
	recs  []errorRecord
	next  int    // where the next record goes once full
	total uint64 // records seen at WARN or above
}

// errorRecord is one logged warning or error.
type errorRecord struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	Attrs string    `json:"attrs,omitempty"` // key=value ...
}

// recentErrorsKept is how many records the status page shows at most.
const recentErrorsKept = 50

// maxErrorText bounds the message and the attributes of a kept record.
const maxErrorText = 512

var _ slog.Handler = (*recentErrors)(nil)

func newRecentErrors(next slog.Handler, keep int) *recentErrors {
	return &recentErrors{next: next, ring: &errorRing{recs: make([]errorRecord, 0, keep)}}
}

func (h *recentErrors) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *recentErrors) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(h.attrs)
		r.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, h.groups, a)
			return b.Len() < maxErrorText
		})
		e := errorRecord{Time: r.Time, Level: r.Level.String(), Msg: clipText(r.Message), Attrs: clipText(strings.TrimSpace(b.String()))}
		if r.Message == budget.ClientErrorsMsg || r.Message == budget.RouteErrorsMsg {
			h.ring.replace(e)
		} else {
			h.ring.add(e)
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *recentErrors) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		appendAttr(&b, h.groups, a)
	}
	c.attrs = b.String()
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *recentErrors) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.groups = h.groups + name + "."
	c.next = h.next.WithGroup(name)
	return &c
}

func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	b.WriteString(prefix)
	b.WriteString(a.Key)
	b.WriteByte('=')
	b.WriteString(a.Value.String())
	b.WriteByte(' ')
}

func clipText(s string) string {
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func (r *errorRing) add(e errorRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.push(e)
}

// push adds e in place of the oldest once full; r.mu is held.
func (r *errorRing) push(e errorRecord) {
	r.total++
	if len(r.recs) < cap(r.recs) {
		r.recs = append(r.recs, e)
		return
	}
	r.recs[r.next] = e
	r.next = (r.next + 1) % len(r.recs)
}

// replace adds e in place of the kept record with the same message, if
// there is one.
func (r *errorRing) replace(e errorRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.recs)
	for i := range n {
		if r.recs[(r.next+i)%n].Msg != e.Msg {
			continue
		}
		// Oldest first without the old one: the ring has room again.
		keep := make([]errorRecord, 0, cap(r.recs))
		for j := range n {
			if j != i {
				keep = append(keep, r.recs[(r.next+j)%n])
			}
		}
		r.recs, r.next = keep, 0
		r.push(e)
		return
	}
	r.push(e)
}

// recent returns the kept records, newest first, and how many were seen.
func (r *errorRing) recent() ([]errorRecord, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]errorRecord, 0, len(r.recs))
	for i := len(r.recs) - 1; i >= 0; i-- {
		out = append(out, r.recs[(r.next+i)%len(r.recs)])
	}
	return out, r.total
}
