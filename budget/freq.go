package budget

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Frequency caps: a sharded map keyed by mix(user, campaign) holds the window
// start and the count of impressions, and the bids placed here whose
// impression has not been counted yet (pending: FreqPend). A cap counts
// both, so concurrent requests of one user, or requests before the first
// bid's pixel fired, cannot each bid up to the cap; a pending count ends at
// the bid's impression or loss notice (FreqSettle) or FreqPendingTTL after
// the last bid, whichever comes first. Pending counts are this instance's
// own: they are not published. Impressions recorded here are applied
// locally at once and published on NATS (core, not JetStream) in batches; every
// instance applies the others' batches. Staleness across instances: the
// publish period (freqFlush) plus NATS latency while connected; impressions
// published while NATS was down are lost to the other instances (each instance
// still counts its own). See docs/budget.md.

const freqFlush = 50 * time.Millisecond

type freqEntry struct {
	start   int64 // unix ns of the window's first impression
	expires int64 // start + window; 0: no impression yet
	pendExp int64 // unix ns when the pending bids stop counting: the last one's bid + FreqPendingTTL
	count   uint32
	pend    uint32 // bids placed here whose impression or loss has not come
}

// live is what the entry counts against the cap at now.
func (e *freqEntry) live(now int64) uint32 {
	var n uint32
	if now < e.expires {
		n = e.count
	}
	if now < e.pendExp {
		n += e.pend
	}
	return n
}

type freqShard struct {
	mu rwMutex[lkFreqShard]
	m  map[uint64]freqEntry
	_  [32]byte
}

type freqTable struct {
	shards [64]freqShard
	maxPer int
	// evicted counts entries still counting that a full shard dropped to
	// make room (makeRoomLocked).
	evicted atomic.Uint64
}

func newFreqTable(maxUsers int) *freqTable {
	t := &freqTable{maxPer: max(maxUsers/64, 1)}
	for i := range t.shards {
		t.shards[i].m = map[uint64]freqEntry{}
	}
	return t
}

func freqKey(user, campaign uint64) uint64 { return splitmix64(user ^ splitmix64(campaign)) }

func (t *freqTable) count(key uint64, now int64) uint32 {
	s := &t.shards[key&63]
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return 0
	}
	return e.live(now)
}

// freqSample is how many entries a full shard looks at to choose the one it
// drops.
const freqSample = 16

// makeRoomLocked drops one entry of a full shard (s.mu held for writing):
// of freqSample of them (a Go map's range starts at a random place), the
// one whose counting ends first (expired ones first: what the once-a-minute
// prune has not reached yet). A dropped entry still counting loses its
// user's count for the campaign (it starts over: that user may see the
// campaign up to its cap again), counted in evicted. Before, a full shard
// stored no new key: first every new user of a capped campaign went
// uncapped (an outside audit: 10 impressions under a cap of 2), then, failing
// closed, none was bid (another audit filled a small table from outside with
// bids and pixels and stopped every capped campaign for new users for the
// caps' hour). A bounded cache that forgets its oldest counts is what a cap
// can keep; the alert says the table is too small.
func (t *freqTable) makeRoomLocked(s *freqShard, now int64) {
	var victim uint64
	var best int64
	n := 0
	for k, e := range s.m {
		if end := max(e.expires, e.pendExp); n == 0 || end < best {
			victim, best = k, end // the first sampled one however far its end (a review: all at MaxInt64 chose none)
		}
		if n++; n == freqSample || best <= now {
			break
		}
	}
	delete(s.m, victim)
	if best > now {
		t.evicted.Add(1)
	}
}

func (t *freqTable) add(key uint64, ts int64, window int64) {
	s := &t.shards[key&63]
	s.mu.Lock()
	e, ok := s.m[key]
	switch {
	case ok && ts < e.expires && ts >= e.start:
		e.count++
	case ok && ts < e.start && windowEnd(ts, window) > e.start:
		e.count++ // a late-arriving impression inside the current window
	case ok && ts < e.start:
		// A late impression of a window that ended before the current one
		// began (published during a NATS outage, delivered after it):
		// nothing of it counts now. It replaced the current window, and the
		// user's count started over (a review).
		s.mu.Unlock()
		return
	default: // a new window; the pending bids carry over
		if !ok && len(s.m) >= t.maxPer {
			t.makeRoomLocked(s, ts)
		}
		e = freqEntry{start: ts, expires: windowEnd(ts, window), count: 1, pend: e.pend, pendExp: e.pendExp}
	}
	s.m[key] = e
	s.mu.Unlock()
}

// pend counts one more pending bid until now+ttl (the earlier ones too: an
// entry keeps one expiry, so a bid's pending count may outlive its TTL by
// the time between it and the key's last bid, never fall short of it).
func (t *freqTable) pend(key uint64, now, ttl int64) {
	t.tryPend(key, math.MaxUint32, now, ttl) // no count reaches the limit
}

// tryPend is pend when the key counts fewer than limit at now, checked and
// counted under one lock; false (nothing counted) when it counts limit or
// more. A new key in a full shard takes the place of the entry
// makeRoomLocked drops.
func (t *freqTable) tryPend(key uint64, limit uint32, now, ttl int64) bool {
	s := &t.shards[key&63]
	s.mu.Lock()
	e, ok := s.m[key]
	if e.live(now) >= limit {
		s.mu.Unlock()
		return false
	}
	if !ok && len(s.m) >= t.maxPer {
		t.makeRoomLocked(s, now)
	}
	if now >= e.pendExp {
		e.pend = 0
	}
	e.pend++
	e.pendExp = windowEnd(now, ttl)
	s.m[key] = e
	s.mu.Unlock()
	return true
}

// unpend ends one pending bid, if any still counts, unless the bid (made
// at bid, unix ns; a notice token's second is enough; 0: unknown) stopped
// counting on its own, ttl after it: its late loss or pixel would end a
// later bid's count instead (an outside audit: two bids' loss notices after
// freq_pending_ttl ended the counts of the two bids placed since, and the
// user saw 4 impressions under a cap of 2). A bid's count that a later bid
// kept alive (an entry keeps one expiry) then lasts to that expiry: the cap
// errs toward fewer impressions.
func (t *freqTable) unpend(key uint64, bid, ttl, now int64) {
	if bid != 0 && windowEnd(bid, ttl) <= now {
		return
	}
	s := &t.shards[key&63]
	s.mu.Lock()
	if e, ok := s.m[key]; ok && e.pend > 0 && now < e.pendExp {
		e.pend--
		s.m[key] = e
	}
	s.mu.Unlock()
}

// windowEnd is ts + window, at most math.MaxInt64: a window running past
// 2262 wrapped negative, and its entry expired at once.
func windowEnd(ts, window int64) int64 {
	if ts > 0 && window > math.MaxInt64-ts {
		return math.MaxInt64
	}
	return ts + window
}

// prune drops entries whose window ended: expired keys are found under the
// read lock (FreqAllow goes on) and deleted in small batches.
func (t *freqTable) prune(now int64) {
	var keys []uint64
	y := NewScanYield()
	for i := range t.shards {
		s := &t.shards[i]
		keys = keys[:0]
		s.mu.RLock()
		scanned := len(s.m)
		for k, e := range s.m {
			if e.expires <= now && e.pendExp <= now {
				keys = append(keys, k)
			}
		}
		s.mu.RUnlock()
		y.Step(scanned / 4) // a map entry read is a fraction of a unit
		for len(keys) > 0 {
			n := min(len(keys), 256)
			s.mu.Lock()
			for _, k := range keys[:n] {
				if e, ok := s.m[k]; ok && e.expires <= now && e.pendExp <= now {
					delete(s.m, k)
				}
			}
			s.mu.Unlock()
			keys = keys[n:]
			y.Step(n)
		}
	}
}

// FreqAllow tells whether the user may see another impression of the
// campaign. No allocation, no network.
func (m *Manager) FreqAllow(h *Account, userKey uint64, now time.Time) bool {
	return m.FreqLeft(h, userKey, now) > 0
}

// FreqLeft is how many more impressions of the campaign the user may see
// (math.MaxInt64 for a campaign without a cap, 0 for an unknown one): the
// cap less the impressions counted in its window and the bids placed here
// still pending (FreqPend). A request with several imps bids the campaign
// on at most that many. No allocation, no network.
func (m *Manager) FreqLeft(h *Account, userKey uint64, now time.Time) int64 {
	if h == nil {
		return 0
	}
	c := h.cfg.Load()
	if c == nil || c.FreqCapCount <= 0 {
		return math.MaxInt64
	}
	return max(int64(c.FreqCapCount)-int64(m.freq.count(freqKey(userKey, h.idHash), now.UnixNano())), 0)
}

// FreqPend counts a bid of the campaign placed here for the user against
// its frequency cap, until FreqSettle ends it or FreqPendingTTL passes. A
// campaign without a cap, or a negative FreqPendingTTL, counts nothing. No
// allocation once the key is known, no network.
func (m *Manager) FreqPend(h *Account, userKey uint64, now time.Time) {
	if h == nil || m.cfg.FreqPendingTTL < 0 {
		return
	}
	if c := h.cfg.Load(); c == nil || c.FreqCapCount <= 0 {
		return
	}
	m.freq.pend(freqKey(userKey, h.idHash), now.UnixNano(), int64(m.cfg.FreqPendingTTL))
}

// FreqReserve counts a bid of the campaign for the user against its
// frequency cap, as FreqPend does, if the user has an impression left (the
// check and the count under one lock); false, counting nothing, when the
// cap is reached. FreqLeft alone leaves a gap between the check and the
// count in which a user's concurrent requests (a page's slots, header
// bidding's parallel calls) each saw the last impression left and each bid.
// A campaign without a cap is always allowed; with a negative
// FreqPendingTTL it only checks. No allocation once the key is known, no
// network.
func (m *Manager) FreqReserve(h *Account, userKey uint64, now time.Time) bool {
	if h == nil {
		return false
	}
	c := h.cfg.Load()
	if c == nil || c.FreqCapCount <= 0 {
		return true
	}
	k, limit := freqKey(userKey, h.idHash), uint32(min(c.FreqCapCount, math.MaxUint32))
	if m.cfg.FreqPendingTTL < 0 {
		return m.freq.count(k, now.UnixNano()) < limit
	}
	return m.freq.tryPend(k, limit, now.UnixNano(), int64(m.cfg.FreqPendingTTL))
}

// FreqSettle ends the pending count of one bid (FreqPend) whose impression
// was counted (after RecordImpression) or which lost. instance is the one
// that placed the bid (the notice token's): another instance's bid pends
// there, not here, and changes nothing.
func (m *Manager) FreqSettle(h *Account, userKey uint64, instance string, now time.Time) {
	m.freqSettle(h, userKey, instance, now, now)
}

// freqSettle is FreqSettle for a bid made at bid (zero: unknown): a notice
// that comes FreqPendingTTL or more after its bid ends nothing
// (freqTable.unpend).
func (m *Manager) freqSettle(h *Account, userKey uint64, instance string, bid, now time.Time) {
	if h == nil || (instance != "" && instance != m.cfg.InstanceID) {
		return
	}
	if c := h.cfg.Load(); c == nil || c.FreqCapCount <= 0 {
		return
	}
	var b int64
	if !bid.IsZero() {
		b = bid.UnixNano()
		// A bid placed before this process started (the previous process
		// under this instance id) has a pending count here only when the
		// previous process's frequency snapshot was read (a graceful
		// restart, freqsnap.go): then its loss or pixel ends it, as its
		// process would have (else the carried counts only lapsed, and a
		// user bid again meanwhile kept them alive: one shared expiry; a
		// review). Without a snapshot (a crash) its loss or pixel would end
		// the count of a bid placed here instead (an outside audit: a user
		// under a cap of 1 shown two impressions after a restart). A token
		// keeps the bid's second: a bid in this process's first second is
		// taken for this process's.
		if b < m.startNs-m.startNs%int64(time.Second) && !m.freqCarried.Load() {
			return
		}
	}
	m.freq.unpend(freqKey(userKey, h.idHash), b, int64(m.cfg.FreqPendingTTL), now.UnixNano())
}

// noticeBid is when n's bid was made, as its token says (zero: unknown).
func (m *Manager) noticeBid(n *Notice) time.Time {
	bid, _ := m.bidTime(n)
	return bid
}

// EndPending tells whether n's bid (its impression key: auction, imp, the
// bid's instance and hold) still has its pending frequency count to end, and
// marks it ended: the first of its impression pixel and its loss notice
// ends it (FreqSettle), the other must not end another bid's. Before, a bid
// whose pixel and loss both came ended two pending counts, and the user was
// shown more than the cap (an outside audit: 3 impressions under a cap of 2).
// Kept in the de-duplication tier.
func (m *Manager) EndPending(n Notice) bool { return m.mark(n, fUnpended) != 0 }

// Shown marks n's bid shown (its pixel, its win or its billing notice) and
// tells whether its impression is still to be counted for frequency caps
// (RecordImpression) and its pending count still to be ended (FreqSettle):
// the first of the pixel, the win and the bill counts it, and the first of
// them and the loss ends the count. A billed impression whose pixel
// never fired (a blocked tracker) was never counted, and the user saw the
// campaign again every freq_pending_ttl (an outside audit: 6 billed
// impressions in a minute under a cap of 2 an hour).
func (m *Manager) Shown(n Notice) (count, endPending bool) {
	set := m.mark(n, fCounted|fUnpended)
	return set&fCounted != 0, set&fUnpended != 0
}

// LostBid tells whether n's bid had its loss notice settled here, and no win
// or bill: an impression pixel or a click of it comes from markup that
// cannot have been shown (an outside audit: the pixels of two lost bids
// used up a user's cap of 2 an hour, and counted as impressions; their
// clicks as clicks).
func (m *Manager) LostBid(n Notice) bool {
	_, had := m.markHad(n, 0, false)
	return lostFirst(had)
}

// lostFirst tells whether an impression's flags say its loss was settled,
// and no win or bill.
func lostFirst(flags uint16) bool { return flags&fLoss != 0 && flags&(fWin|fBill) == 0 }

// CountShown counts n's impression toward its campaign's frequency cap for
// n.User once (Shown), and ends its pending count once: the first of its
// pixel, win and bill does, on the tier of the instance that settles it.
func (m *Manager) CountShown(n Notice) {
	m.countShown(n, false)
}

// CountPixel is CountShown for an impression pixel; lost: the bid's loss
// came first, and nothing was counted (LostBid).
func (m *Manager) CountPixel(n Notice) (lost bool) {
	return m.countShown(n, true)
}

func (m *Manager) countShown(n Notice, pixel bool) (lost bool) {
	h := m.Handle(n.CampaignID)
	if h == nil || n.User == 0 && !pixel {
		return false
	}
	var flags uint16
	if n.User != 0 {
		flags = fCounted | fUnpended // Shown's
	}
	// One look-up: a pixel's bid that lost first is marked nothing.
	set, had := m.markHad(n, flags, pixel)
	if pixel && lostFirst(had) {
		return true
	}
	if n.User == 0 {
		return false
	}
	count, endPending := set&fCounted != 0, set&fUnpended != 0
	if count {
		m.RecordImpression(h, n.User, n.Time)
	}
	if endPending { // not if its loss ended it
		m.freqSettle(h, n.User, n.InstanceID, m.noticeBid(&n), n.Time) // after the count: never under the cap between
	}
	return false
}

// EndLost ends the pending count of n's bid (a loss) once, unless its
// pixel, win or bill ended it.
func (m *Manager) EndLost(n Notice) {
	if n.User != 0 && m.EndPending(n) {
		m.freqSettle(m.Handle(n.CampaignID), n.User, n.InstanceID, m.noticeBid(&n), n.Time)
	}
}

// mark sets flags on n's tier entry and returns those it set (the ones that
// were unset).
func (m *Manager) mark(n Notice, flags uint16) uint16 {
	set, _ := m.markHad(n, flags, false)
	return set
}

// markHad is mark, also returning the flags the entry had before; with
// unlessLost it sets nothing on an entry whose loss came first (lostFirst).
func (m *Manager) markHad(n Notice, flags uint16, unlessLost bool) (set, had uint16) {
	if n.Time.IsZero() {
		n.Time = m.cfg.Clock.Now()
	}
	key, _ := noticeKey(&n)
	now := m.tier.sec(n.Time.UnixNano())
	s, e, _ := m.tier.acquire(key, now)
	defer s.mu.Unlock()
	m.tier.touch(s, e, now+windowSec(max(m.cfg.DedupWindow.Loss, m.cfg.DedupWindow.Bill)))
	had = e.flags
	if unlessLost && lostFirst(had) {
		return 0, had
	}
	set = flags &^ e.flags
	e.flags |= flags
	return set, had
}

// freqMsg is one impression on the wire: key, time, window (24 bytes).
type freqMsg struct {
	key, ts, window uint64
}

// RecordImpression counts an impression of the campaign for the user here and
// queues it for the other instances (dropped with a counter when the queue is full).
func (m *Manager) RecordImpression(h *Account, userKey uint64, now time.Time) {
	if h == nil {
		return
	}
	c := h.cfg.Load()
	if c == nil || c.FreqCapCount <= 0 {
		return
	}
	k := freqKey(userKey, h.idHash)
	ts, w := now.UnixNano(), int64(c.FreqCapWindow)
	m.freq.add(k, ts, w)
	select {
	case m.freqQ <- freqMsg{k, uint64(ts), uint64(w)}:
	default:
		m.freqDropped.Add(1)
	}
}

func encodeFreq(dst []byte, batch []freqMsg) []byte {
	for _, f := range batch {
		dst = binary.LittleEndian.AppendUint64(dst, f.key)
		dst = binary.LittleEndian.AppendUint64(dst, f.ts)
		dst = binary.LittleEndian.AppendUint64(dst, f.window)
	}
	return dst
}

func (t *freqTable) applyWire(b []byte) {
	for len(b) >= 24 {
		k := binary.LittleEndian.Uint64(b)
		ts := int64(binary.LittleEndian.Uint64(b[8:]))
		w := int64(binary.LittleEndian.Uint64(b[16:]))
		if w > 0 {
			t.add(k, ts, w)
		}
		b = b[24:]
	}
}

// onFreq applies another instance's impressions.
func (m *Manager) onFreq(msg *nats.Msg) {
	if strings.HasSuffix(msg.Subject, "."+m.instToken()) {
		return
	}
	m.freq.applyWire(msg.Data)
}

// freqPublisher sends the queued impressions in batches: at most freqFlush
// after the first one of a batch, or when a batch is full. With no
// impressions it sleeps (no timer runs).
func (m *Manager) freqPublisher(ctx context.Context) {
	t := time.NewTimer(freqFlush)
	t.Stop()
	subj := freqSubject + m.instToken()
	batch := make([]freqMsg, 0, 512)
	buf := make([]byte, 0, 512*24)
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-m.freqQ:
			if len(batch) == 0 {
				t.Reset(freqFlush)
			}
			batch = append(batch, f)
			if len(batch) < cap(batch) {
				continue
			}
			t.Stop()
		case <-t.C:
		}
		buf = m.publishFreq(subj, batch, buf)
		batch = batch[:0]
	}
}

func (m *Manager) publishFreq(subj string, batch []freqMsg, buf []byte) []byte {
	if len(batch) == 0 || m.nc == nil {
		return buf
	}
	if !m.nc.IsConnected() {
		m.freqDropped.Add(uint64(len(batch)))
		return buf
	}
	buf = encodeFreq(buf[:0], batch)
	if err := m.nc.Publish(subj, buf); err != nil {
		m.freqDropped.Add(uint64(len(batch)))
	}
	return buf
}

func (m *Manager) drainFreq() {
	for {
		select {
		case <-m.freqQ:
		default:
			return
		}
	}
}
