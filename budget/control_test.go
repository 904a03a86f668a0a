package budget

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Two managers on one MemStore: a pause written through one is obeyed by
// both (the writer at once), carries who, when and why, and a resume lifts
// it; the state outlives the managers that wrote it.
func TestControlMemStore(t *testing.T) {
	st := NewMemStore()
	clk := newManualClock(t0)
	a := newMemManager(t, st, "a", clk, campaign("c1", micros(10)), campaign("c2", micros(10)))
	b := newMemManager(t, st, "b", clk, campaign("c1", micros(10)), campaign("c2", micros(10)))
	var told atomic.Int32
	b.OnControl(func() { told.Add(1) })
	if a.Control().All.Paused || a.Control().CampaignPaused("c1") || len(b.Control().Campaigns) != 0 {
		t.Fatalf("fresh state not empty: %+v", a.Control())
	}

	type step struct {
		ch             ControlChange
		all, c1, c2    bool
		who, why, last string
	}
	steps := []step{
		{ch: ControlChange{Campaign: "c1", Paused: true, Who: "ops-alice", Reason: "creative complaint"}, c1: true, who: "ops-alice", why: "creative complaint", last: "c1"},
		{ch: ControlChange{All: true, Paused: true, Who: "ops-bob", Reason: "exchange incident"}, all: true, c1: true, who: "ops-bob", why: "exchange incident", last: "all"},
		{ch: ControlChange{All: true, Paused: false, Who: "ops-bob"}, c1: true, who: "ops-bob", last: "all"},
		{ch: ControlChange{Campaign: "c2", Paused: true, Who: "admin"}, c1: true, c2: true, who: "admin", last: "c2"},
		{ch: ControlChange{Campaign: "c1", Paused: false, Who: "ops-alice", Reason: "fixed"}, c2: true, who: "ops-alice", why: "fixed", last: "c1"},
	}
	var rev uint64
	for i, s := range steps {
		clk.Add(time.Second)
		p, err := a.SetControl(ctxT(t), s.ch)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if p.Rev <= rev || p.Who != s.who || p.Reason != s.why || !p.When.Equal(clk.Now()) || p.Paused != s.ch.Paused {
			t.Fatalf("step %d: pause %+v (previous rev %d)", i, p, rev)
		}
		rev = p.Rev
		for _, m := range []*Manager{a, b} {
			c := m.Control()
			if c.All.Paused != s.all || c.CampaignPaused("c1") != s.c1 || c.CampaignPaused("c2") != s.c2 || c.Rev != rev {
				t.Fatalf("step %d, %s: all %v c1 %v c2 %v rev %d; want %v %v %v %d", i, m.cfg.InstanceID,
					c.All.Paused, c.CampaignPaused("c1"), c.CampaignPaused("c2"), c.Rev, s.all, s.c1, s.c2, rev)
			}
			got := c.All
			if s.last != "all" {
				got = c.Campaigns[s.last]
			}
			if got != p {
				t.Fatalf("step %d, %s: %s is %+v, want %+v", i, m.cfg.InstanceID, s.last, got, p)
			}
		}
	}
	if n := told.Load(); n != int32(len(steps)) {
		t.Errorf("OnControl told %d times, want %d", n, len(steps))
	}
	for _, m := range []*Manager{a, b} {
		if err := m.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	c := newMemManager(t, st, "a", clk, campaign("c1", micros(10))).Control()
	if !c.CampaignPaused("c2") || c.CampaignPaused("c1") || c.All.Paused || c.Rev != rev {
		t.Fatalf("after a restart: %+v", c)
	}
}

// A pause that cannot be written changes nothing and says so; bad changes
// are refused before the store is asked.
func TestControlRefused(t *testing.T) {
	st := NewMemStore()
	m := newMemManager(t, st, "a", newManualClock(t0), campaign("c1", micros(10)))
	if _, err := m.SetControl(ctxT(t), ControlChange{Paused: true, Who: "x"}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("no target: %v", err)
	}
	st.SetDown(true)
	if _, err := m.SetControl(ctxT(t), ControlChange{All: true, Paused: true, Who: "x"}); !errors.Is(err, ErrStoreDown) {
		t.Fatalf("store down: %v", err)
	}
	if m.Control().All.Paused {
		t.Fatal("a pause the store refused is obeyed")
	}
	st.SetDown(false)
	unstarted, err := New(Config{InstanceID: "u", Store: st}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unstarted.SetControl(ctxT(t), ControlChange{All: true, Paused: true}); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("before Start: %v", err)
	}
	long := strings.Repeat("é", maxControlText)
	p, err := m.SetControl(ctxT(t), ControlChange{Campaign: "c/1 x", Paused: true, Who: long, Reason: long})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Who) > maxControlText || len(p.Reason) > maxControlText || !strings.HasPrefix(p.Reason, "éé") {
		t.Fatalf("long texts kept as %d and %d bytes", len(p.Who), len(p.Reason))
	}
	if !m.Control().CampaignPaused("c/1 x") {
		t.Fatal("a campaign id outside the key alphabet does not round-trip")
	}
}

// An older value delivered late, or the same one twice, changes nothing.
func TestControlOlderValueIgnored(t *testing.T) {
	m := newMemManager(t, NewMemStore(), "a", newManualClock(t0), campaign("c1", micros(10)))
	var told atomic.Int32
	m.OnControl(func() { told.Add(1) })
	m.applyControl(controlEntry{key: "all", val: []byte(`{"paused":true,"who":"new"}`), rev: 7})
	m.applyControl(controlEntry{key: "all", val: []byte(`{"paused":false,"who":"old"}`), rev: 5})
	m.applyControl(controlEntry{key: "all", val: []byte(`{"paused":false,"who":"same"}`), rev: 7})
	m.applyControl(controlEntry{key: "c_c1", val: []byte(`not json`), rev: 9})
	if c := m.Control(); !c.All.Paused || c.All.Who != "new" || c.Rev != 7 || told.Load() != 1 {
		t.Fatalf("state %+v after %d calls", c, told.Load())
	}
	m.applyControl(controlEntry{key: "all", rev: 8, deleted: true}) // removed by hand: not paused
	if c := m.Control(); c.All.Paused || c.Rev != 8 {
		t.Fatalf("after a delete: %+v", c)
	}
}

// A change applied twice at once (the watch and SetControl): the second
// returns only once the first has told the bid path. It returned at once,
// and the admin API answered a resume while the bid path still refused
// bids "paused" (a flaky TestKillSwitchAdminAPI run under load).
func TestControlSecondApplyWaitsForTheFirst(t *testing.T) {
	m := newMemManager(t, NewMemStore(), "a", newManualClock(t0), campaign("c1", micros(10)))
	entered, release := make(chan struct{}), make(chan struct{})
	var told atomic.Int32
	m.OnControl(func() {
		if told.Add(1) == 1 {
			close(entered)
			<-release // the first telling is slow
		}
	})
	e := controlEntry{key: "all", val: []byte(`{"paused":true,"who":"w"}`), rev: 3}
	go m.applyControl(e)
	<-entered
	second := make(chan struct{})
	go func() { m.applyControl(e); close(second) }()
	select {
	case <-second:
		t.Error("the second apply returned before the first had told the bid path")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-second
	if told.Load() != 1 {
		t.Errorf("told %d times, want once", told.Load())
	}
}

// Over NATS: a pause written through one manager reaches another through
// the watch, also after the server restarted under both, and a manager
// started later on the restarted server reads the state.
func TestControlNATS(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, -1)
	url := srv.ClientURL()
	var port int
	fmt.Sscan(url[len("nats://127.0.0.1:"):], &port)
	c := campaign("c", micros(100))
	a := natsManager(t, "a", []string{url}, nil, 1, c)
	b := natsManager(t, "b", []string{url}, nil, 1, c)
	p, err := a.SetControl(ctxT(t), ControlChange{Campaign: "c", Paused: true, Who: "ops", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Control().CampaignPaused("c") {
		t.Fatal("the writer does not obey its own pause")
	}
	start := time.Now()
	seen := func(m *Manager, rev uint64) func() error {
		return func() error {
			if got := m.Control(); got.Rev < rev {
				return fmt.Errorf("%s at rev %d, want %d", m.cfg.InstanceID, got.Rev, rev)
			}
			return nil
		}
	}
	checkFor(t, 10*time.Second, time.Millisecond, seen(b, p.Rev))
	t.Logf("pause seen by the other manager %v after the write returned", time.Since(start))
	if got := b.Control().Campaigns["c"]; got != p {
		t.Fatalf("b sees %+v, want %+v", got, p)
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	srv = startServer(t, dir, port)
	defer srv.Shutdown()
	var all Pause
	checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		all, err = a.SetControl(ctxT(t), ControlChange{All: true, Paused: true, Who: "ops"})
		return err
	})
	checkFor(t, 20*time.Second, 10*time.Millisecond, seen(b, all.Rev))
	if !b.Control().All.Paused || !b.Control().CampaignPaused("c") {
		t.Fatalf("b after the server restart: %+v", b.Control())
	}
	for _, m := range []*Manager{a, b} {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	d := natsManager(t, "d", []string{url}, nil, 1, c)
	defer d.Close(context.Background())
	if got := d.Control(); !got.CampaignPaused("c") || got.Campaigns["c"] != p || got.All != all {
		t.Fatalf("a manager started later: %+v", got)
	}
}

// doc.go's lock order names the kill switch's locks (both leaves).
func TestControlLocksDocumented(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{lockName[lkControl](), lockName[lkControlApply](), lockName[lkMemControl]()} {
		if !strings.Contains(string(b), n) {
			t.Errorf("doc.go does not name the lock %s", n)
		}
	}
}
