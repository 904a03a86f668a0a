package shading

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ErrConfig wraps every configuration problem.
var ErrConfig = errors.New("shading: invalid config")

// Level is which key of a segment a curve belongs to: the finest that is
// warm wins.
type Level uint8

// Levels, finest first.
const (
	LevelCold      Level = iota // no warm curve: bid unshaded
	LevelPlacement              // exchange, currency, publisher, placement, formats
	LevelPublisher              // exchange, currency, publisher, formats
)

var levelNames = [...]string{"cold", "placement", "publisher"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "unknown"
}

// Config sizes and tunes a Model. A zero field means the documented default.
type Config struct {
	// Segments is the table capacity in curves, placement and publisher
	// keys together (default 65536; rounded up to a power of two, at least
	// 1024). A key that finds no room is not learned: its placement falls
	// back to the publisher curve.
	Segments int
	// MinObservations is how many notices a curve needs before it is used
	// (default 50): colder segments bid unshaded.
	MinObservations int
	// Memory is the effective number of recent notices a curve averages
	// over: the step size never falls below 1/Memory, so a curve follows a
	// market that moves (default 2000).
	Memory int
	// Idle is how long a curve may go without a notice before a new key may
	// take its slot when the table is full (default 1h).
	Idle time.Duration
	// PriorSigma is a new curve's Sigma before its notices move it
	// (default 1: a factor of e either way).
	PriorSigma float64
}

// Defaults are the values of zero Config fields.
var Defaults = Config{Segments: 1 << 16, MinObservations: 50, Memory: 2000, Idle: time.Hour, PriorSigma: 1}

func (c Config) withDefaults() (Config, error) {
	d := Defaults
	if c.Segments == 0 {
		c.Segments = d.Segments
	}
	if c.MinObservations == 0 {
		c.MinObservations = d.MinObservations
	}
	if c.Memory == 0 {
		c.Memory = d.Memory
	}
	if c.Idle == 0 {
		c.Idle = d.Idle
	}
	if c.PriorSigma == 0 {
		c.PriorSigma = d.PriorSigma
	}
	var errs []error
	if c.Segments < 0 || c.Segments > 1<<24 {
		errs = append(errs, fmt.Errorf("%w: segments %d must be in [1, 16777216]", ErrConfig, c.Segments))
	}
	if c.MinObservations < 1 {
		errs = append(errs, fmt.Errorf("%w: min_observations %d must be at least 1", ErrConfig, c.MinObservations))
	}
	if c.Memory < 10 {
		errs = append(errs, fmt.Errorf("%w: memory %d must be at least 10", ErrConfig, c.Memory))
	}
	if c.MinObservations > c.Memory && c.Memory >= 10 {
		// A curve counts at most memory notices: it would never warm, and
		// every bid would stay cold with nothing to say so (an outside audit).
		errs = append(errs, fmt.Errorf("%w: min_observations %d is over memory %d: a curve counts at most memory notices, so none would ever price", ErrConfig, c.MinObservations, c.Memory))
	}
	if c.Idle < 0 {
		errs = append(errs, fmt.Errorf("%w: idle %v must not be negative", ErrConfig, c.Idle))
	}
	if !(c.PriorSigma >= minSigma && c.PriorSigma <= maxSigma) {
		errs = append(errs, fmt.Errorf("%w: prior_sigma %v must be in [%v, %v]", ErrConfig, c.PriorSigma, minSigma, maxSigma))
	}
	return c, errors.Join(errs...)
}

// Validate reports what is wrong with c (zero fields are defaults).
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

const (
	numShards = 64 // writers lock one shard; readers never lock
	probes    = 8  // slots looked at for a key
	minSigma  = 0.02
	maxSigma  = 5
	maxStepS  = 0.25 // most ln Sigma moves in one notice
	// minToWinRatio is how far from the bid (a factor either way) a
	// notice's minimum to win is learned as a price (Observe).
	minToWinRatio = 20
	dedupBits     = 16
)

// slot is one curve. Its fields are written under the shard's lock and read
// without it: seq is odd while a write is in progress, so a reader that sees
// the same even seq before and after its loads has a consistent copy
// (sequence lock; every field is atomic, so the race detector agrees).
type slot struct {
	seq   atomic.Uint64
	key   atomic.Uint64 // 0: empty
	mu    atomic.Uint64 // float64 bits
	sigma atomic.Uint64 // float64 bits
	n     atomic.Uint64
	last  atomic.Int64 // unix nanoseconds of the last notice
}

type shard struct {
	lock  sync.Mutex
	slots []slot
	_     [40]byte // keep the next shard's lock off this cache line
}

// Model is the table of curves: fixed size, open addressing, no allocation
// after New. Lookups (the bid path) are lock-free; Observe (the notice
// path) locks one shard.
type Model struct {
	cfg    Config
	shards [numShards]shard
	mask   uint64 // slots per shard - 1
	seen   []atomic.Uint64
	stats  [numResults]atomic.Uint64
}

// New builds an empty model.
func New(cfg Config) (*Model, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	per := 16
	for per*numShards < cfg.Segments {
		per *= 2
	}
	m := &Model{cfg: cfg, mask: uint64(per - 1), seen: make([]atomic.Uint64, 1<<dedupBits)}
	for i := range m.shards {
		m.shards[i].slots = make([]slot, per)
	}
	return m, nil
}

// Config is the effective configuration.
func (m *Model) Config() Config { return m.cfg }

// Capacity is the number of curves the table holds.
func (m *Model) Capacity() int { return numShards * int(m.mask+1) }

func (m *Model) shardOf(key uint64) *shard { return &m.shards[key>>58] }

// find returns key's slot, or nil.
func (m *Model) find(key uint64) *slot {
	sh := m.shardOf(key)
	for p := uint64(0); p < probes; p++ {
		s := &sh.slots[(key+p)&m.mask]
		switch s.key.Load() {
		case key:
			return s
		case 0:
			return nil // slots are never emptied, so the chain ends here
		}
	}
	return nil
}

// curve reads key's curve without locking; ok is false when the key has no
// slot or a write was in progress.
func (m *Model) curve(key uint64) (c Curve, ok bool) {
	s := m.find(key)
	if s == nil {
		return Curve{}, false
	}
	seq := s.seq.Load()
	if seq&1 != 0 {
		return Curve{}, false
	}
	c = Curve{Mu: math.Float64frombits(s.mu.Load()), Sigma: math.Float64frombits(s.sigma.Load()), N: int(s.n.Load())}
	if s.key.Load() != key || s.seq.Load() != seq {
		return Curve{}, false
	}
	return c, true
}

// Lookup is the curve a bid in segment k should use: the placement's when it
// has MinObservations notices, else the publisher's, else none (Level
// LevelCold, ok false: bid unshaded). It takes no lock and allocates
// nothing.
func (m *Model) Lookup(k Key) (Curve, bool) {
	if c, ok := m.curve(k.Placement); ok && c.N >= m.cfg.MinObservations {
		c.Level = LevelPlacement
		return c, true
	}
	if c, ok := m.curve(k.Publisher); ok && c.N >= m.cfg.MinObservations {
		c.Level = LevelPublisher
		return c, true
	}
	return Curve{}, false
}

// Inspect returns both of k's curves as they are, warm or not (for
// explanations and tests); a zero Curve where a key has none.
func (m *Model) Inspect(k Key) (placement, publisher Curve) {
	placement, _ = m.curve(k.Placement)
	placement.Level = LevelPlacement
	publisher, _ = m.curve(k.Publisher)
	publisher.Level = LevelPublisher
	return placement, publisher
}

// Observation is what one notice says about a bid in a segment.
type Observation struct {
	Key Key
	// ID identifies the impression (auction and imp); the first notice of
	// an ID is learned from, repeats within the recent window are not
	// (exchanges resend notices). 0: no de-duplication.
	ID  uint64
	Bid float64 // our bid (> 0)
	Won bool
	// MinToWin is the exchange's minimum bid to win (> 0), 0 when it sent
	// none. It must agree with the outcome (at most the bid on a win, above
	// it on a loss); one that does not, or that is more than 20 times the
	// bid or under a twentieth of it, is ignored (the outcome is learned).
	MinToWin float64
}

// Result is what Observe did with a notice.
type Result uint8

// Results.
const (
	Learned   Result = iota // at least one curve was updated
	Duplicate               // the ID was seen recently
	Invalid                 // bid missing, negative or not finite; or a segment not verified (Refuse)
	Full                    // neither key found room in the table
	numResults
)

var resultNames = [numResults]string{"learned", "duplicate", "invalid", "full"}

func (r Result) String() string { return resultNames[r] }

// Counts reports how many notices ended in each Result.
func (m *Model) Counts() [numResults]uint64 {
	var out [numResults]uint64
	for i := range out {
		out[i] = m.stats[i].Load()
	}
	return out
}

// Refuse counts a notice the caller would not offer to Observe (its
// segment could not be verified) as Invalid.
func (m *Model) Refuse() { m.stats[Invalid].Add(1) }

// Repeat counts a notice the caller knows to be a repeat (its money path
// found it was not the first on its impression) as Duplicate, without
// offering it to Observe.
func (m *Model) Repeat() { m.stats[Duplicate].Add(1) }

// NumResults is the number of Result values (for exposition).
const NumResults = int(numResults)

// Observe learns from one notice: both of its segment's curves move. It is
// safe for concurrent use and allocates nothing.
func (m *Model) Observe(o Observation, now time.Time) Result {
	r := m.observe(o, now)
	m.stats[r].Add(1)
	return r
}

func (m *Model) observe(o Observation, now time.Time) Result {
	if !(o.Bid > 0) || math.IsInf(o.Bid, 0) {
		return Invalid
	}
	if o.ID != 0 {
		// A direct-mapped window of recent ids: a repeat is caught while no
		// other impression took its place (lossy, bounded, lock-free).
		if m.seen[o.ID&(1<<dedupBits-1)].Swap(o.ID) == o.ID {
			return Duplicate
		}
	}
	x := math.Log(o.Bid)
	kind := obsLoss
	if o.Won {
		kind = obsWin
	}
	// A minimum to win more than minToWinRatio away from the bid is read as
	// the outcome alone (won: M <= bid; lost: M > bid): a new curve is
	// centred on its first price and one in the wrong units (micros for
	// CPM, an outside audit: 4,000,000 for 4.0) held a segment's bids at
	// half its price for hundreds of notices.
	if m2 := o.MinToWin; m2 > 0 && !math.IsInf(m2, 0) && (o.Won && m2 <= o.Bid || !o.Won && m2 > o.Bid) &&
		m2 <= o.Bid*minToWinRatio && m2*minToWinRatio >= o.Bid {
		x, kind = math.Log(m2), obsExact
	}
	learned := false
	for _, key := range [2]uint64{o.Key.Placement, o.Key.Publisher} {
		if key != 0 && m.update(key, x, kind, now) {
			learned = true
		}
	}
	if !learned {
		return Full
	}
	return Learned
}

type obsKind uint8

const (
	obsWin   obsKind = iota // M <= x
	obsLoss                 // M > x
	obsExact                // M = x
)

// update moves key's curve by one observation, taking a slot for it when it
// has none; false when there is no room.
func (m *Model) update(key uint64, x float64, kind obsKind, now time.Time) bool {
	sh := m.shardOf(key)
	sh.lock.Lock()
	defer sh.lock.Unlock()
	s := m.slotFor(sh, key, now)
	if s == nil {
		return false
	}
	mu := math.Float64frombits(s.mu.Load())
	sigma := math.Float64frombits(s.sigma.Load())
	n := s.n.Load()
	if s.key.Load() != key || n == 0 { // new: centred on the first price seen
		mu, sigma, n = x, m.cfg.PriorSigma, 0
	}
	mu, sigma = step(mu, sigma, x, kind, m.eta(n))
	s.seq.Add(1) // odd: readers back off
	s.key.Store(key)
	s.mu.Store(math.Float64bits(mu))
	s.sigma.Store(math.Float64bits(sigma))
	s.n.Store(min(n+1, uint64(m.cfg.Memory)))
	s.last.Store(now.UnixNano())
	s.seq.Add(1)
	return true
}

// eta is the step size after n observations: 1/(n+2), never below 1/Memory.
func (m *Model) eta(n uint64) float64 {
	return max(1/float64(n+2), 1/float64(m.cfg.Memory))
}

// slotFor finds key's slot or a free one in its probe window; when the
// window is full, the curve idle longest takes it if idle past Config.Idle.
// The caller holds sh.lock. A slot taken over keeps its old fields until
// update writes them inside the sequence lock.
func (m *Model) slotFor(sh *shard, key uint64, now time.Time) *slot {
	var oldest *slot
	for p := uint64(0); p < probes; p++ {
		s := &sh.slots[(key+p)&m.mask]
		switch s.key.Load() {
		case key:
			return s
		case 0:
			return s
		}
		if oldest == nil || s.last.Load() < oldest.last.Load() {
			oldest = s
		}
	}
	if now.UnixNano()-oldest.last.Load() < int64(m.cfg.Idle) {
		return nil
	}
	return oldest
}

// step is one natural-gradient step of the censored log-normal likelihood
// in (Mu, ln Sigma), scaled by the Fisher information of an exact
// observation: for exact prices it is the running mean and (in ln Sigma) the
// running spread. With z = (x - Mu)/Sigma:
//
//	exact  M = x:  dMu = eta Sigma z,                 d ln Sigma = eta/2 (z^2 - 1)
//	win    M <= x: dMu = -eta Sigma phi/Phi,          d ln Sigma = -eta/2 z phi/Phi
//	loss   M > x:  dMu = eta Sigma phi/(1-Phi),       d ln Sigma = eta/2 z phi/(1-Phi)
//
// z is clipped to [-8, 8] and ln Sigma's move to maxStepS, so one odd notice
// cannot throw a curve far.
func step(mu, sigma, x float64, kind obsKind, eta float64) (float64, float64) {
	z := min(max((x-mu)/sigma, -8), 8)
	var gMu, gS float64
	switch kind {
	case obsExact:
		gMu, gS = z, z*z-1
	case obsWin:
		l := winHazard(z)
		gMu, gS = -l, -z*l
	case obsLoss:
		l := lossHazard(z)
		gMu, gS = l, z*l
	}
	mu += eta * sigma * gMu
	ds := min(max(eta/2*gS, -maxStepS), maxStepS)
	sigma = min(max(sigma*math.Exp(ds), minSigma), maxSigma)
	return mu, sigma
}
