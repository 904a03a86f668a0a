package budget

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The kill switch: pause and resume all bidding or one campaign. The state
// lives in its own KV bucket (ControlBucket), key "all" for all bidding and
// c_<campaign> (kvKey) per campaign, each value a Pause. Every instance
// watches the bucket (pushed by the server: a change reaches every watcher
// in milliseconds) and keeps the newest value of each key by revision. The
// bucket is durable, so a pause survives restarts; Start reads it before it
// returns. With Config.Store (tests, single-process tools) the state lives
// in the MemStore, shared by the managers that share it.
//
// The bid path does not read this file: the bidder turns Control into flags
// it checks with one atomic load (OnControl tells it when to).

// ControlBucket is the KV bucket of the kill switch.
const ControlBucket = "CONTROL"

const (
	controlAllKey      = "all"
	controlHistory     = 16               // values kept per key in the bucket: a short audit trail
	controlInitTimeout = 10 * time.Second // wait for the watch's initial values
	maxControlText     = 200              // bytes of Who and Reason kept
)

// Pause is one kill-switch setting, as written by the instance that took it.
type Pause struct {
	Paused bool      `json:"paused"`
	Who    string    `json:"who"`              // the admin token's name that set it
	When   time.Time `json:"when"`             // the writer's clock
	Reason string    `json:"reason,omitempty"` // free text from the operator
	Rev    uint64    `json:"rev,omitempty"`    // the store's revision of this value
}

// Control is the kill-switch state an instance obeys: an immutable snapshot.
type Control struct {
	All       Pause            // all bidding; zero when never set
	Campaigns map[string]Pause // by campaign id: every campaign ever set, resumed ones with Paused false
	Rev       uint64           // the newest store revision applied
}

// CampaignPaused tells whether the campaign is paused (all bidding aside).
func (c *Control) CampaignPaused(id string) bool { return c.Campaigns[id].Paused }

// ControlChange asks to pause or resume all bidding (All) or one campaign.
type ControlChange struct {
	All      bool
	Campaign string
	Paused   bool
	Who      string
	Reason   string
}

// controlEntry is one key's value as a control store delivers it.
type controlEntry struct {
	key     string
	val     []byte
	rev     uint64
	deleted bool
}

// controlStore keeps the kill-switch keys (ControlBucket, or a MemStore).
type controlStore interface {
	put(ctx context.Context, key string, val []byte) (rev uint64, err error)
	// watch calls fn with every key's newest value, then with each change,
	// until ctx ends; with wait it returns once the initial values were
	// delivered. fn is called with no store lock held and must not block.
	watch(ctx context.Context, fn func(controlEntry), wait bool) error
}

type lkControl struct{}
type lkControlApply struct{}
type lkMemControl struct{}

func (lkControl) lockName() string      { return "control.mu" }
func (lkControlApply) lockName() string { return "control.applyMu" }
func (lkMemControl) lockName() string   { return "memControl.mu" }

// control is the Manager's kill-switch state.
type control struct {
	// applyMu makes applying a state and telling the OnControl functions
	// one step: a SetControl that finds its revision applied by the watch
	// returns only once the functions were told of it.
	applyMu mutex[lkControlApply]
	mu      mutex[lkControl] // guards store, keys, fns
	store   controlStore
	keys    map[string]Pause // by store key
	fns     []func()
	cur     atomic.Pointer[Control]
}

// Control returns the kill-switch state this instance obeys (never nil).
func (m *Manager) Control() *Control {
	if c := m.ctl.cur.Load(); c != nil {
		return c
	}
	return &Control{Campaigns: map[string]Pause{}}
}

// OnControl registers fn, called after every change of the kill-switch state
// (from the store's watch, or a SetControl on this instance), in the order
// of the changes: under the lock that applies them (control.applyMu, as
// doc.go's lock order says), so fn reads Control, must not block, and must
// not call SetControl (it would wait on that lock forever). The comment
// said "with no lock held" (the concurrency audit).
func (m *Manager) OnControl(fn func()) {
	m.ctl.mu.Lock()
	m.ctl.fns = append(m.ctl.fns[:len(m.ctl.fns):len(m.ctl.fns)], fn)
	m.ctl.mu.Unlock()
}

// SetControl writes a pause or a resume to the store; this instance obeys
// it when SetControl returns, every other one when its watch delivers it.
// It fails (and changes nothing) when the store cannot be written.
func (m *Manager) SetControl(ctx context.Context, ch ControlChange) (Pause, error) {
	if !ch.All && ch.Campaign == "" {
		return Pause{}, fmt.Errorf("%w: control: a campaign or all", ErrBadConfig)
	}
	m.ctl.mu.Lock()
	st := m.ctl.store
	m.ctl.mu.Unlock()
	if st == nil {
		return Pause{}, ErrNotStarted
	}
	if m.closed.Load() {
		return Pause{}, ErrClosed
	}
	p := Pause{Paused: ch.Paused, Who: clip(ch.Who), When: m.cfg.Clock.Now().UTC(), Reason: clip(ch.Reason)}
	val, err := json.Marshal(&p)
	if err != nil {
		return Pause{}, err
	}
	key := controlAllKey
	if !ch.All {
		key = kvKey(ch.Campaign)
	}
	rev, err := st.put(ctx, key, val)
	if err != nil {
		return Pause{}, err
	}
	p.Rev = rev
	m.applyControl(controlEntry{key: key, val: val, rev: rev})
	return p, nil
}

func clip(s string) string {
	if len(s) > maxControlText {
		s = s[:maxControlText]
	}
	return strings.ToValidUTF8(s, "?")
}

// watchControl starts (or restarts) the watch on the control store, making
// the store first. Called by watch, so it follows the budget watch through
// outages. At Start it returns once the stored state is applied; a restart
// (the sync loop, after an outage) does not wait for it.
func (m *Manager) watchControl(ctx context.Context) error {
	st, err := m.controlStore(ctx)
	if err != nil {
		return err
	}
	return st.watch(ctx, m.applyControl, !m.started.Load())
}

// controlStore returns the control store, creating the bucket at first use.
func (m *Manager) controlStore(ctx context.Context) (controlStore, error) {
	m.ctl.mu.Lock()
	st := m.ctl.store
	m.ctl.mu.Unlock()
	if st != nil {
		return st, nil
	}
	switch {
	case m.js != nil:
		cctx, cancel := context.WithTimeout(ctx, controlInitTimeout)
		defer cancel()
		var kv jetstream.KeyValue
		err := jsRetry(cctx, m.nc.IsConnected, func(ctx context.Context) (err error) {
			kv, err = m.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: ControlBucket, Description: "openbidder kill switch: pause all bidding (all) or one campaign (c_<campaign>)",
				History: controlHistory, Storage: jetstream.FileStorage, Replicas: m.cfg.Replicas,
			})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("budget: create kv %s: %w", ControlBucket, err)
		}
		st = &kvControl{kv: kv}
	case m.cfg.Store != nil:
		if ms, ok := m.cfg.Store.(*MemStore); ok {
			st = memControlStore{ms}
		} else {
			st = memControlStore{NewMemStore()} // another Store: a kill switch of this process only
		}
	default:
		return nil, ErrNotStarted
	}
	m.ctl.mu.Lock()
	if m.ctl.store == nil {
		m.ctl.store = st
	}
	st = m.ctl.store
	m.ctl.mu.Unlock()
	return st, nil
}

// applyControl keeps e when it is newer than what the key holds, and tells
// the OnControl functions. Older or repeated values change nothing.
func (m *Manager) applyControl(e controlEntry) {
	var p Pause
	if !e.deleted {
		if err := json.Unmarshal(e.val, &p); err != nil {
			m.log.Warn("kill switch value unreadable; ignored", "key", e.key, "rev", e.rev, "err", err)
			return
		}
	}
	p.Rev = e.rev
	c := &m.ctl
	// Held while the functions run: the watch and SetControl both apply
	// a change, and the one that came second returned at once, maybe
	// before the first had told the bid path (the admin API answered 200
	// to a resume and the next bid was still refused "paused", 1 in ~40
	// runs of TestKillSwitchAdminAPI under load).
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.mu.Lock()
	if old, ok := c.keys[e.key]; ok && old.Rev >= e.rev {
		c.mu.Unlock()
		return
	}
	if c.keys == nil {
		c.keys = map[string]Pause{}
	}
	c.keys[e.key] = p
	c.cur.Store(c.snapshot())
	fns := c.fns
	c.mu.Unlock()
	target := "all"
	if e.key != controlAllKey {
		target = unescapeKey(strings.TrimPrefix(e.key, "c_"))
	}
	m.log.Info("kill switch", "target", target, "paused", p.Paused, "who", p.Who, "when", p.When, "reason", p.Reason, "rev", e.rev)
	for _, fn := range fns {
		fn()
	}
}

// snapshot builds the Control of c.keys; under c.mu.
func (c *control) snapshot() *Control {
	out := &Control{Campaigns: make(map[string]Pause, len(c.keys))}
	for k, p := range c.keys {
		out.Rev = max(out.Rev, p.Rev)
		switch {
		case k == controlAllKey:
			out.All = p
		case strings.HasPrefix(k, "c_"):
			out.Campaigns[unescapeKey(k[2:])] = p
		}
	}
	return out
}

// kvControl is the control store in ControlBucket.
type kvControl struct{ kv jetstream.KeyValue }

func (s *kvControl) put(ctx context.Context, key string, val []byte) (uint64, error) {
	rev, err := s.kv.Put(ctx, key, val)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %v", ErrStoreDown, ControlBucket, key, err)
	}
	return rev, nil
}

func (s *kvControl) watch(ctx context.Context, fn func(controlEntry), wait bool) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("%w: watch %s: %v", ErrStoreDown, ControlBucket, err)
	}
	ready := make(chan struct{})
	go func() {
		<-ctx.Done()
		_ = w.Stop()
	}()
	go func() {
		initial := true
		for e := range w.Updates() {
			if e == nil { // the initial values are all delivered
				if initial {
					initial = false
					close(ready)
				}
				continue
			}
			fn(controlEntry{key: e.Key(), val: e.Value(), rev: e.Revision(), deleted: e.Operation() != jetstream.KeyValuePut})
		}
	}()
	if !wait {
		return nil
	}
	t := time.NewTimer(controlInitTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%w: watch %s: initial values not delivered in %v", ErrStoreDown, ControlBucket, controlInitTimeout)
	}
}

// memControl is a MemStore's control keys (the zero value is empty).
type memControl struct {
	mu       mutex[lkMemControl]
	vals     map[string]controlEntry
	rev      uint64
	watchers []*memControlWatcher
}

type memControlWatcher struct {
	ctx context.Context
	fn  func(controlEntry)
}

// memControlStore is the control store of a MemStore; it fails while the
// MemStore is down.
type memControlStore struct{ s *MemStore }

func (m memControlStore) put(_ context.Context, key string, val []byte) (uint64, error) {
	if m.s.isDown() {
		return 0, ErrStoreDown
	}
	c := &m.s.ctl
	c.mu.Lock()
	if c.vals == nil {
		c.vals = map[string]controlEntry{}
	}
	c.rev++
	e := controlEntry{key: key, val: append([]byte(nil), val...), rev: c.rev}
	c.vals[key] = e
	ws := c.watchers
	c.mu.Unlock()
	for _, w := range ws {
		if w.ctx.Err() == nil {
			w.fn(e)
		}
	}
	return e.rev, nil
}

func (m memControlStore) watch(ctx context.Context, fn func(controlEntry), _ bool) error {
	if m.s.isDown() {
		return ErrStoreDown
	}
	c := &m.s.ctl
	c.mu.Lock()
	initial := make([]controlEntry, 0, len(c.vals))
	for _, e := range c.vals {
		initial = append(initial, e)
	}
	live := c.watchers[:0:0]
	for _, w := range c.watchers {
		if w.ctx.Err() == nil {
			live = append(live, w)
		}
	}
	c.watchers = append(live, &memControlWatcher{ctx: ctx, fn: fn})
	c.mu.Unlock()
	for _, e := range initial {
		fn(e)
	}
	return nil
}
