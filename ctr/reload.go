package ctr

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// LoadFunc builds a scorer from a manifest, validating it (schema, parity).
// When the scorer is an io.Closer the Holder closes it after it is
// replaced and its in-flight calls have finished.
type LoadFunc func(manifestPath string) (Scorer, error)

// Holder serves the current model and swaps in new ones atomically: a new
// model is loaded and validated first, then warmed (run a few times at every
// batch size it will serve, so the first real request does not pay the
// runtime's first-run costs), and only then published; a refused one leaves
// the old one serving; calls in flight finish on the model they started on,
// which is closed only after the last of them.
type Holder struct {
	load LoadFunc
	log  *slog.Logger
	cur  atomic.Pointer[reloadEntry]

	mu       sync.Mutex // serialises Reload; guards path, sig and closed
	path     string
	sig      string
	closed   bool // Close ran: Reload loads nothing (a Watch tick that read path before Close)
	reloads  atomic.Uint64
	refusals atomic.Uint64
	warmRuns atomic.Uint64
}

type reloadEntry struct {
	s        Scorer
	manifest string
	loaded   time.Time
	refs     atomic.Int64
	retired  atomic.Bool
	closed   atomic.Bool
}

var _ PredictingScorer = (*Holder)(nil)

// NewHolder returns an empty holder (Score returns ErrUnavailable until a
// Reload succeeds). Loads and refusals are logged to log (nil:
// slog.Default()).
func NewHolder(load LoadFunc, log *slog.Logger) *Holder {
	if log == nil {
		log = slog.Default()
	}
	return &Holder{load: load, log: log}
}

// ONNXLoader loads an ONNX model and puts a Batcher in front of it; closing
// the result closes both.
func ONNXLoader(onnx ONNXOptions, batch BatchOptions) LoadFunc {
	return func(path string) (Scorer, error) {
		x, err := LoadONNX(path, onnx)
		if err != nil {
			return nil, err
		}
		b, err := NewBatcher(x, batch)
		if err != nil {
			x.Close()
			return nil, err
		}
		return &reloadBatched{Batcher: b, x: x}, nil
	}
}

// reloadBatched is a Batcher over an ONNX model it owns.
type reloadBatched struct {
	*Batcher
	x *ONNX
}

func (r *reloadBatched) Close() error {
	r.Batcher.Close()
	return r.x.Close()
}

// Reload loads the model manifestPath names, warms it (warmScorer) and
// swaps it in, or returns the refusal (wrapping ErrBadModel, ErrSchema,
// ErrInputForm or ErrUnavailable) and keeps serving the old model.
func (h *Holder) Reload(manifestPath string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		// A Watch tick that read the path just before Close: a model
		// loaded now would never be closed (an ONNX session and its
		// batcher's goroutine leaked) and the holder would serve again.
		return fmt.Errorf("%w: model holder closed", ErrUnavailable)
	}
	sig := reloadSignature(manifestPath)
	s, err := h.load(manifestPath)
	if err == nil {
		var runs int
		runs, err = warmScorer(s)
		h.warmRuns.Add(uint64(runs))
		if err != nil {
			if c, ok := s.(io.Closer); ok {
				c.Close()
			}
		}
	}
	if err != nil {
		h.refusals.Add(1)
		h.path, h.sig = manifestPath, sig // do not retry the same files
		if h.cur.Load() == nil {
			// Refused at start (or never loaded): there is no previous
			// model. What follows is the caller's: the bidder serves with
			// the chain's next scorer (ONNX) or does not start (GBDT).
			h.log.Warn("ctr: model refused, none loaded in this slot", "manifest", manifestPath, "err", err)
		} else {
			h.log.Warn("ctr: model refused, previous model keeps serving", "manifest", manifestPath, "err", err)
		}
		return err
	}
	e := &reloadEntry{s: s, manifest: manifestPath, loaded: time.Now()}
	old := h.cur.Swap(e)
	h.path, h.sig = manifestPath, sig
	h.reloads.Add(1)
	attrs := []any{"manifest", manifestPath, "model", s.Name()}
	if p, ok := s.(interface{ Provider() string }); ok {
		attrs = append(attrs, "provider", p.Provider())
	}
	h.log.Info("ctr: model loaded", attrs...)
	if old != nil {
		old.retire()
	}
	return nil
}

// warmRounds is how many times warmScorer scores each batch size.
const warmRounds = 3

// warmScorer scores all-zero rows (a valid row for every model) warmRounds
// times at every power of two up to the scorer's MaxBatch (16 when it has
// none, as the GBDT), and MaxBatch itself: the batch sizes it will see. On
// a Batcher over ONNX this runs the whole path a request takes (queue,
// worker, conversion, session) and seeds the run-time estimates the
// deadline checks use from warm runs. It returns the calls made; an error
// refuses the model.
func warmScorer(s Scorer) (int, error) {
	top := 16
	if mb, ok := s.(interface{ MaxBatch() int }); ok && mb.MaxBatch() > 0 {
		top = mb.MaxBatch()
	}
	w := s.Width()
	rows, out := make([]float32, top*w), make([]float32, top)
	runs := 0
	for n := 1; ; n = min(2*n, top) {
		for range warmRounds {
			runs++
			if err := s.Score(time.Time{}, rows[:n*w], out[:n]); err != nil {
				return runs, fmt.Errorf("%w: model %s: warm-up run of %d rows: %v", ErrBadModel, s.Name(), n, err)
			}
		}
		if n == top {
			return runs, nil
		}
	}
}

func (e *reloadEntry) retire() {
	e.retired.Store(true)
	if e.refs.Load() == 0 {
		e.close()
	}
}

func (e *reloadEntry) put() {
	if e.refs.Add(-1) == 0 && e.retired.Load() {
		go e.close() // off the request's path
	}
}

func (e *reloadEntry) close() {
	if e.closed.CompareAndSwap(false, true) {
		if c, ok := e.s.(io.Closer); ok {
			c.Close()
		}
	}
}

// get returns the current entry with a reference held, or nil.
func (h *Holder) get() *reloadEntry {
	for {
		e := h.cur.Load()
		if e == nil {
			return nil
		}
		e.refs.Add(1)
		if !e.retired.Load() {
			return e
		}
		e.put()
	}
}

// Score implements Scorer on the current model.
func (h *Holder) Score(deadline time.Time, rows []float32, out []float32) error {
	e := h.get()
	if e == nil {
		return ErrUnavailable
	}
	err := e.s.Score(deadline, rows, out)
	e.put()
	return err
}

// PredictLatency is the current model's prediction (0 when it has none or
// no model is loaded: Score then answers ErrUnavailable at once).
func (h *Holder) PredictLatency(rows int) time.Duration {
	e := h.get()
	if e == nil {
		return 0
	}
	var d time.Duration
	if lp, ok := e.s.(LatencyPredictor); ok {
		d = lp.PredictLatency(rows)
	}
	e.put()
	return d
}

// noteRefusal implements refusalNoter for the current model.
func (h *Holder) noteRefusal(rows int) {
	e := h.get()
	if e == nil {
		return
	}
	if r, ok := e.s.(refusalNoter); ok {
		r.noteRefusal(rows)
	}
	e.put()
}

// Width is the current model's width (0 when none is loaded).
func (h *Holder) Width() int {
	if e := h.cur.Load(); e != nil {
		return e.s.Width()
	}
	return 0
}

// Name is the current model's name ("none" when none is loaded).
func (h *Holder) Name() string {
	if e := h.cur.Load(); e != nil {
		return e.s.Name()
	}
	return "none"
}

// Loaded tells whether a model is loaded (Score may answer).
func (h *Holder) Loaded() bool { return h.cur.Load() != nil }

// Current returns the scorer now serving, or nil. Do not close it.
func (h *Holder) Current() Scorer {
	if e := h.cur.Load(); e != nil {
		return e.s
	}
	return nil
}

// HolderStats describes the holder's model and reloads.
type HolderStats struct {
	Model    string
	Manifest string
	Provider string // "cuda", "cpu", or "" (no model, or not ONNX)
	LoadedAt time.Time
	Reloads  uint64 // successful loads
	Refused  uint64 // refused loads
	WarmRuns uint64 // Score calls made to warm models before they were published
	Batch    *BatchStats
}

// Stats returns the current model's description and the reload counters.
func (h *Holder) Stats() HolderStats {
	st := HolderStats{Model: "none", Reloads: h.reloads.Load(), Refused: h.refusals.Load(), WarmRuns: h.warmRuns.Load()}
	e := h.get()
	if e == nil {
		return st
	}
	defer e.put()
	st.Model, st.Manifest, st.LoadedAt = e.s.Name(), e.manifest, e.loaded
	if p, ok := e.s.(interface{ Provider() string }); ok {
		st.Provider = p.Provider()
	}
	if b, ok := e.s.(interface{ Stats() BatchStats }); ok {
		bs := b.Stats()
		st.Batch = &bs
	}
	return st
}

// Close retires the current model; later calls return ErrUnavailable, and
// so does a later Reload.
func (h *Holder) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.path, h.sig = "", "" // Watch stops reloading
	h.closed = true
	if old := h.cur.Swap(nil); old != nil {
		old.retire()
	}
	return nil
}

// Watch reloads the model whenever the manifest last given to Reload, or
// the model or parity file it names, changes (size or modification time),
// checking every interval until ctx is done. A refused model is not retried
// until its files change again.
func (h *Holder) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var c sigCache
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		path, sig := h.path, h.sig
		h.mu.Unlock()
		if path != "" && c.signature(path) != sig {
			h.Reload(path) // logs its outcome
		}
	}
}

// sigCache is reloadSignature for a watcher: the manifest (JSON with parity
// rows and feature statistics, tens of kilobytes) is parsed again only when
// its own size or mtime changed; otherwise each tick costs a stat per file
// (three, four with a GBDT's wide part).
type sigCache struct {
	stat  string
	paths []string // files the manifest names; nil when it did not parse
	parse int      // manifests parsed (tests)
}

func (c *sigCache) signature(manifestPath string) string {
	st := reloadStat(manifestPath)
	if st != c.stat || c.paths == nil {
		c.stat, c.paths = st, nil
		c.parse++
		if m, err := LoadManifest(manifestPath); err == nil {
			c.paths = m.watchedFiles()
		}
	}
	sig := st
	for _, p := range c.paths {
		sig += reloadStat(p)
	}
	return sig
}

// reloadSignature names the state of a manifest and the files it names.
func reloadSignature(manifestPath string) string {
	sig := reloadStat(manifestPath)
	if m, err := LoadManifest(manifestPath); err == nil {
		for _, p := range m.watchedFiles() {
			sig += reloadStat(p)
		}
	}
	return sig
}

// watchedFiles are the files a manifest names that a reload reads: the
// model, its parity sample and a GBDT's wide part. A file written after
// the manifest (a wide table copied last) is seen when it lands.
func (m *Manifest) watchedFiles() []string {
	files := []string{m.Path(m.File), m.Path(m.Parity)}
	if m.WidePart != nil {
		files = append(files, m.Path(m.WidePart.File))
	}
	return files
}

func reloadStat(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing;"
	}
	return fmt.Sprintf("%d@%d;", fi.Size(), fi.ModTime().UnixNano())
}
