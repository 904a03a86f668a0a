package bidder

import (
	"bytes"
	"sync"
	"testing"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
)

// fakeControl is a kill-switch source a test sets by hand.
type fakeControl struct {
	mu  sync.Mutex
	c   *budget.Control
	fns []func()
}

func newFakeControl() *fakeControl {
	return &fakeControl{c: &budget.Control{Campaigns: map[string]budget.Pause{}}}
}

func (f *fakeControl) Control() *budget.Control { f.mu.Lock(); defer f.mu.Unlock(); return f.c }
func (f *fakeControl) OnControl(fn func())      { f.mu.Lock(); f.fns = append(f.fns, fn); f.mu.Unlock() }

// set pauses (or resumes) all bidding (id "") or one campaign, and tells.
func (f *fakeControl) set(id string, paused bool) {
	f.mu.Lock()
	next := &budget.Control{All: f.c.All, Campaigns: map[string]budget.Pause{}, Rev: f.c.Rev + 1}
	for k, v := range f.c.Campaigns {
		next.Campaigns[k] = v
	}
	p := budget.Pause{Paused: paused, Who: "test", Rev: next.Rev}
	if id == "" {
		next.All = p
	} else {
		next.Campaigns[id] = p
	}
	f.c = next
	fns := f.fns
	f.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// The bid path obeys the kill switch: a paused campaign's candidates are
// refused (reason paused, counted per campaign), all paused answers 204
// paused before the body is even parsed, a resume restores bidding, and a
// campaign reload keeps a pause.
func TestKillSwitchBidPath(t *testing.T) {
	ts := newTestServer(t, nil)
	ctl := newFakeControl()
	ts.followControl(ctl)
	site := readReq(t, "site-banner.json")
	bidder := func() (int, string, string) {
		t.Helper()
		r := ts.bidInTime(site)
		if r.StatusCode() != 200 {
			return r.StatusCode(), string(r.Header.Peek("x-nobid-reason")), ""
		}
		return 200, "", onlyBid(t, decodeResponse(t, r)).CID
	}
	paused := func() uint64 { return ts.m.nobids[reasonPaused].load() }

	if code, _, cid := bidder(); code != 200 || cid != "acme-banner" {
		t.Fatalf("before any pause: %d %s", code, cid)
	}
	ctl.set("acme-banner", true)
	if code, why, _ := bidder(); code != 204 || why != "paused" {
		t.Fatalf("acme paused: %d %q, want 204 paused", code, why)
	}
	if n := ts.pausedCandidates("acme-banner"); n != 1 {
		t.Fatalf("paused candidates of acme: %d, want 1", n)
	}
	if ts.pausedCandidates("globex-cpc") != 0 {
		t.Fatal("a campaign that is not paused counted as paused")
	}
	// A reload publishes a new catalog: the pause stays.
	snap, err := campaigns.LoadDir("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
	if code, why, _ := bidder(); code != 204 || why != "paused" {
		t.Fatalf("acme paused, after a reload: %d %q", code, why)
	}
	ctl.set("acme-banner", false)
	if code, _, cid := bidder(); code != 200 || cid != "acme-banner" {
		t.Fatalf("acme resumed: %d %s", code, cid)
	}
	// A paused campaign walked first (globex: the higher bound) gives way to
	// the reason of an active one (acme's fixed 2.00 under a 3.00 floor): an
	// outside audit saw "paused" where the campaign the request targeted had
	// no budget.
	ctl.set("globex-cpc", true)
	floored := bytes.Replace(bytes.Replace(site, []byte(`"bidfloor":0.5`), []byte(`"bidfloor":3`), 1),
		[]byte(`"format":[{"w":300,"h":250}]`), []byte(`"format":[{"w":300,"h":250},{"w":320,"h":50}]`), 1)
	if r := ts.bidInTime(floored); r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != "below_floor" {
		t.Fatalf("globex paused, acme under the floor: %d %q, want 204 below_floor", r.StatusCode(), r.Header.Peek("x-nobid-reason"))
	}
	if ts.pausedCandidates("globex-cpc") != 1 {
		t.Fatal("globex was not walked (paused) for the floored request")
	}
	ctl.set("globex-cpc", false)

	before := paused()
	ctl.set("", true)
	for _, body := range [][]byte{site, []byte(`{"not":"a bid request"`)} {
		if r := ts.bidInTime(body); r.StatusCode() != 204 || string(r.Header.Peek("x-nobid-reason")) != "paused" {
			t.Fatalf("all paused, body %.20q: %d %q", body, r.StatusCode(), r.Header.Peek("x-nobid-reason"))
		}
	}
	if got := paused() - before; got != 2 {
		t.Fatalf("paused no-bids counted %d, want 2", got)
	}
	if ts.m.badRequest.load() != 0 {
		t.Fatal("a paused instance parsed the body")
	}
	ctl.set("", false)
	if code, _, cid := bidder(); code != 200 || cid != "acme-banner" {
		t.Fatalf("all resumed: %d %s", code, cid)
	}
}
