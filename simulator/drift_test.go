package simulator

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// From DriftAt on, the ground truth's publisher and OS terms change sign;
// before it, and without drift, nothing changes.
func TestGroundTruthDrift(t *testing.T) {
	const at = 1_780_000_000
	plain := GroundTruth{Seed: 3}
	drift := GroundTruth{Seed: 3, DriftAt: at}
	c := ImpContext{Publisher: "pub-7", Country: "USA", OS: "iOS", DevType: 1, LocalHour: 20, Format: "banner",
		W: 300, H: 250, User: "u-1", CID: "c-1", CrID: "cr-1"}
	for _, tm := range []int64{at - 3600, at - 1} {
		c.Time = tm
		if a, b := plain.CTR(c), drift.CTR(c); a != b {
			t.Fatalf("before drift (t=%d): %v, without drift %v", tm, b, a)
		}
	}
	for _, tm := range []int64{at, at + 86400} {
		c.Time = tm
		got := logit(drift.CTR(c)) - logit(plain.CTR(c))
		want := -2 * (0.50*plain.h("pub", c.Publisher) + 0.20*plain.h("os", c.OS))
		if math.Abs(got-want) > 1e-9 || want == 0 {
			t.Fatalf("after drift (t=%d): logit moved %v, want %v", tm, got, want)
		}
	}
}

// From DriftAt on, each request's publisher is the one DriftPublisherShift
// ranks down; the rest of the request and everything before is unchanged.
func TestTrafficDriftShiftsPublishers(t *testing.T) {
	const at = 1_780_000_000
	cfg := TrafficConfig{Publishers: 50}
	plain := NewWorld(cfg, 9)
	cfg.DriftAt = at
	drift := NewWorld(cfg, 9)
	pubN := func(og *Outgoing) int {
		var id string
		if og.Req.App != nil {
			id = og.Req.App.Publisher.ID
		} else {
			id = og.Req.Site.Publisher.ID
		}
		n, err := strconv.Atoi(strings.TrimPrefix(id, "pub-"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := uint64(0); i < 400; i++ {
		sim := int64(at - 200 + i) // half before, half after
		// One stream per request: a request's later draws depend on its
		// publisher, so a shared stream would diverge after the first drift.
		r1, r2 := rand.New(rand.NewPCG(i, 2)), rand.New(rand.NewPCG(i, 2))
		a, b := plain.Request(r1, i, sim, 0), drift.Request(r2, i, sim, 0)
		want := pubN(a)
		if sim >= at {
			want = (want-1+DriftPublisherShift)%50 + 1
		}
		if got := pubN(b); got != want {
			t.Fatalf("request %d at %v: publisher %d, want %d", i, time.Unix(sim, 0).UTC(), got, want)
		}
		if a.Req.User.ID != b.Req.User.ID || a.Req.Device.OS != b.Req.Device.OS {
			t.Fatalf("request %d: user or device changed with the publisher drift", i)
		}
	}
}

// Config.DriftAt is relative to SimStart and reaches both parts.
func TestConfigDriftAt(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	c, err := Config{Targets: []string{"http://127.0.0.1:1/"}, SimStart: start, DriftAt: 10 * time.Minute}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(10 * time.Minute).Unix(); c.Truth.DriftAt != want || c.Traffic.DriftAt != want {
		t.Fatalf("truth %d traffic %d, want %d", c.Truth.DriftAt, c.Traffic.DriftAt, want)
	}
	c, _ = Config{Targets: []string{"http://127.0.0.1:1/"}, SimStart: start}.withDefaults()
	if c.Truth.DriftAt != 0 || c.Traffic.DriftAt != 0 {
		t.Fatalf("drift without -drift-at: %d %d", c.Truth.DriftAt, c.Traffic.DriftAt)
	}
}
