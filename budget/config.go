package budget

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// PacingMode selects a campaign's target spend curve.
type PacingMode uint8

// Pacing modes. The zero value is even pacing.
const (
	PacingEven     PacingMode = iota // spend evenly over the day in the campaign's time zone
	PacingForecast                   // spend following the traffic forecast learned from ObserveRequest
	PacingASAP                       // no throttling: spend as fast as traffic allows
)

var pacingNames = [...]string{"even", "forecast", "asap"}

func (p PacingMode) String() string {
	if int(p) < len(pacingNames) {
		return pacingNames[p]
	}
	return "unknown"
}

// ParsePacingMode maps "even", "forecast" and "asap" ("" is even).
func ParsePacingMode(s string) (PacingMode, error) {
	switch s {
	case "", "even":
		return PacingEven, nil
	case "forecast":
		return PacingForecast, nil
	case "asap":
		return PacingASAP, nil
	}
	return 0, fmt.Errorf("%w: pacing mode %q", ErrBadConfig, s)
}

// Campaign is the money side of a campaign, as the campaign files give it.
// DailyMicros or TotalMicros may be zero for "no limit" but not both.
type Campaign struct {
	ID            string
	Currency      string
	DailyMicros   int64
	TotalMicros   int64
	TimeZone      *time.Location // nil means UTC
	Pacing        PacingMode
	FreqCapCount  int           // 0 means no frequency cap
	FreqCapWindow time.Duration // window of the frequency cap
	Start, End    time.Time     // flight; zero means open
	// Hours is the dayparting in TimeZone: bit h of Hours[weekday] is set
	// when the campaign may bid in local hour h of that day. All zero means
	// every hour. Pacing plans the budget over these hours only.
	Hours [7]uint32
	// retired: made by Manager.retired from a budget record, which does not
	// say the campaign's time zone; its steps never roll the record's day.
	retired bool
}

func (c *Campaign) validate() error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: campaign without id", ErrBadConfig)
	case c.DailyMicros < 0 || c.TotalMicros < 0:
		return fmt.Errorf("%w: campaign %s: negative budget", ErrBadConfig, c.ID)
	case c.DailyMicros == 0 && c.TotalMicros == 0:
		return fmt.Errorf("%w: campaign %s: no budget", ErrBadConfig, c.ID)
	case c.FreqCapCount < 0 || (c.FreqCapCount > 0 && c.FreqCapWindow <= 0):
		return fmt.Errorf("%w: campaign %s: frequency cap needs a count and a window", ErrBadConfig, c.ID)
	case !c.End.IsZero() && !c.Start.IsZero() && !c.End.After(c.Start):
		return fmt.Errorf("%w: campaign %s: flight ends before it starts", ErrBadConfig, c.ID)
	}
	for _, h := range c.Hours {
		if h>>24 != 0 {
			return fmt.Errorf("%w: campaign %s: dayparting hour above 23", ErrBadConfig, c.ID)
		}
	}
	return nil
}

func (c *Campaign) loc() *time.Location {
	if c.TimeZone == nil {
		return time.UTC
	}
	return c.TimeZone
}

// Clock gives the time. Tests pass an accelerated or manual clock.
type Clock interface{ Now() time.Time }

// MinReclaimWait is the least default ReclaimWait: the clock skew between
// instances a fleet tolerates at any sync period (2s, what 2 x the default 1s
// sync period gives).
const MinReclaimWait = 2 * time.Second

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// WallClock is the real clock.
var WallClock Clock = wallClock{}

// Config configures a Manager. A zero field means the documented default.
type Config struct {
	// InstanceID names this bidder instance in leases and the ledger; required,
	// unique per running instance (a restarted instance may reuse its id).
	InstanceID string

	// NATS: exactly one of Conn, Server (in-process connection to an embedded
	// server) or URLs (external cluster, comma-joined for nats.Connect).
	Conn   *nats.Conn
	Server *server.Server
	URLs   []string
	// Replicas of the KV buckets, ledger stream and levels object store (default 1; 3 on a 3-node cluster).
	Replicas int
	// Auth is this instance's NATS identity (URLs and Server); TLS secures
	// the connection to URLs (an in-process connection needs none). See
	// natsauth.go.
	Auth Auth
	TLS  TLSFiles

	// Store replaces NATS entirely (tests and single-process tools). When set,
	// the ledger is kept in memory.
	Store Store

	// LeaseTTL is a lease's life after the step that wrote it, and the life of
	// the liveness record each instance writes every SyncPeriod: a lease stays
	// valid while its owner's liveness record does, so idle leases are never
	// rewritten (default max(5m, 2*HoldTTL+2*SyncPeriod)).
	LeaseTTL    time.Duration
	HoldTTL     time.Duration // a hold's lifetime before it is released (default 2m)
	NoticeTTL   time.Duration // token expiry (default 24h); a notice after it is refused
	SyncPeriod  time.Duration // heartbeat, lease steps and ledger flush period (default 1s)
	LeaseAhead  time.Duration // lease headroom as seconds of reservation rate (default 10s)
	ReclaimWait time.Duration // extra wait after a foreign lease and its owner's liveness expired before reclaiming it (default max(2*SyncPeriod, MinReclaimWait)); must exceed the clock skew between instances
	MinLease    int64         // minimum headroom asked for (default 10_000_000 micros = 10 units)
	MaxLease    int64         // maximum headroom asked for (default 1_000_000_000 micros)

	MaxHolds     int // most holds open at once (default 1<<20); memory grows with the holds open, 32 KiB at a time
	FreqQueue    int // bounded queue of impressions to publish (default 65536)
	FreqMaxUsers int // bound on (user, campaign) entries per instance (default 4M)
	// FreqPendingTTL is how long a bid placed here counts against its
	// campaign's frequency cap for the user before its impression or loss
	// notice ends it (FreqPend; default 30s; negative: bids never count,
	// only impressions do).
	FreqPendingTTL time.Duration

	// DedupWindow is how long the de-duplication tier keeps an impression
	// after a notice of each kind (default win 15m, bill 2h, loss 15m); the
	// ledger stream's duplicate window is the longest of them.
	DedupWindow NoticeWindows
	// DedupMaxEntries bounds the impressions the tier keeps (default 4M, 40
	// bytes each at a load of at most 3/4); the oldest are dropped first.
	DedupMaxEntries int
	// AckWait bounds how long Settle waits for its ledger entry to be
	// acknowledged before it returns ErrAckTimeout (default 2s).
	AckWait time.Duration
	// ForwardTimeout bounds the wait for the owner of a notice (the instance
	// that placed the bid) to answer; without an answer the notice is settled
	// here (default 1s; negative: never forward).
	ForwardTimeout time.Duration

	Clock Clock  // default WallClock
	Seed  uint64 // seed of the pacing participation draws (default 1)

	manual bool // tests: Start runs no background loops; the test drives them
	// probeWait: how long Start watches for a newer heartbeat of another
	// boot under this instance id (probeInstance; default 3 sync periods).
	probeWait time.Duration
	backend   ledgerBackend // tests: replaces the in-memory ledger of a Store

	natsOpts []nats.Option // Auth and TLS as connection options (withDefaults)
}

// NoticeWindows are per-kind durations.
type NoticeWindows struct {
	Win, Bill, Loss time.Duration
}

func (w NoticeWindows) Longest() time.Duration { return max(w.Win, w.Bill, w.Loss) }

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.InstanceID == "" {
		return d, fmt.Errorf("%w: InstanceID is required", ErrBadConfig)
	}
	if strings.Contains(d.InstanceID, "@") {
		// A record keeps a taken-over process's mark under instance@boot.
		return d, fmt.Errorf("%w: InstanceID %q holds '@'", ErrBadConfig, d.InstanceID)
	}
	n := 0
	for _, set := range []bool{d.Conn != nil, d.Server != nil, len(d.URLs) > 0, d.Store != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return d, fmt.Errorf("%w: exactly one of Conn, Server, URLs or Store", ErrBadConfig)
	}
	if d.Conn == nil && d.Store == nil {
		var err error
		if d.natsOpts, err = d.connOptions(); err != nil {
			return d, err
		}
	}
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&d.HoldTTL, 2*time.Minute)
	def(&d.NoticeTTL, 24*time.Hour)
	def(&d.SyncPeriod, time.Second)
	def(&d.LeaseTTL, max(5*time.Minute, 2*d.HoldTTL+2*d.SyncPeriod))
	def(&d.LeaseAhead, 10*time.Second)
	// The skew tolerated is ReclaimWait (plus a sync period): never under
	// MinReclaimWait, so a short sync_period does not shrink it to a few
	// hundred milliseconds (TestReclaimWaitToleratesSkewAtShortSyncPeriod).
	def(&d.ReclaimWait, max(2*d.SyncPeriod, MinReclaimWait))
	def(&d.probeWait, 3*d.SyncPeriod)
	def(&d.DedupWindow.Win, 15*time.Minute)
	def(&d.DedupWindow.Bill, 2*time.Hour)
	def(&d.DedupWindow.Loss, 15*time.Minute)
	def(&d.AckWait, 2*time.Second)
	def(&d.ForwardTimeout, time.Second)
	if d.DedupMaxEntries == 0 {
		d.DedupMaxEntries = 4 << 20
	}
	if d.MinLease == 0 {
		d.MinLease = 10_000_000
	}
	if d.MaxLease == 0 {
		d.MaxLease = 1_000_000_000
	}
	if d.MaxHolds == 0 {
		d.MaxHolds = 1 << 20
	}
	if d.FreqQueue == 0 {
		d.FreqQueue = 1 << 16
	}
	if d.FreqMaxUsers == 0 {
		d.FreqMaxUsers = 4 << 20
	}
	def(&d.FreqPendingTTL, 30*time.Second)
	if d.Replicas == 0 {
		d.Replicas = 1
	}
	if d.Clock == nil {
		d.Clock = WallClock
	}
	if d.Seed == 0 {
		d.Seed = 1
	}
	switch {
	case d.LeaseTTL <= d.HoldTTL+2*d.SyncPeriod:
		return d, fmt.Errorf("%w: LeaseTTL %v must exceed HoldTTL %v plus two sync periods", ErrBadConfig, d.LeaseTTL, d.HoldTTL)
	case d.NoticeTTL < d.HoldTTL:
		return d, fmt.Errorf("%w: NoticeTTL must be at least HoldTTL", ErrBadConfig)
	case d.MinLease < 0 || d.MaxLease < d.MinLease:
		return d, fmt.Errorf("%w: lease bounds", ErrBadConfig)
	case d.MaxHolds < 16 || d.MaxHolds > 1<<31:
		return d, fmt.Errorf("%w: MaxHolds", ErrBadConfig)
	case d.DedupWindow.Win < 0 || d.DedupWindow.Bill < 0 || d.DedupWindow.Loss < 0 || d.AckWait < 0:
		return d, fmt.Errorf("%w: negative notice window or ack wait", ErrBadConfig)
	case d.DedupMaxEntries < 1024:
		return d, fmt.Errorf("%w: DedupMaxEntries %d is below 1024", ErrBadConfig, d.DedupMaxEntries)
	case d.SyncPeriod < 0 || d.HoldTTL < 0:
		return d, fmt.Errorf("%w: negative period", ErrBadConfig)
	}
	return d, nil
}
