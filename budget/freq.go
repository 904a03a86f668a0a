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
// start and the count of impressions. Impressions recorded here are applied
// locally at once and published on NATS (core, not JetStream) in batches; every
// instance applies the others' batches. Staleness across instances: the
// publish period (freqFlush) plus NATS latency while connected; impressions
// published while NATS was down are lost to the other instances (each instance
// still counts its own). See docs/budget.md.

const freqFlush = 50 * time.Millisecond

type freqEntry struct {
	start   int64 // unix ns of the window's first impression
	expires int64 // start + window
	count   uint32
}

type freqShard struct {
	mu rwMutex[lkFreqShard]
	m  map[uint64]freqEntry
	_  [32]byte
}

type freqTable struct {
	shards  [64]freqShard
	maxPer  int
	dropped atomic.Uint64 // entries not stored because the table was full
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
	if !ok || now >= e.expires {
		return 0
	}
	return e.count
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
	case !ok && len(s.m) >= t.maxPer:
		s.mu.Unlock()
		t.dropped.Add(1)
		return
	default:
		e = freqEntry{start: ts, expires: windowEnd(ts, window), count: 1}
	}
	s.m[key] = e
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
	for i := range t.shards {
		s := &t.shards[i]
		keys = keys[:0]
		s.mu.RLock()
		for k, e := range s.m {
			if e.expires <= now {
				keys = append(keys, k)
			}
		}
		s.mu.RUnlock()
		for len(keys) > 0 {
			n := min(len(keys), 256)
			s.mu.Lock()
			for _, k := range keys[:n] {
				if e, ok := s.m[k]; ok && e.expires <= now {
					delete(s.m, k)
				}
			}
			s.mu.Unlock()
			keys = keys[n:]
		}
	}
}

// FreqAllow tells whether the user may see another impression of the
// campaign. No allocation, no network.
func (m *Manager) FreqAllow(h *Account, userKey uint64, now time.Time) bool {
	return m.FreqLeft(h, userKey, now) > 0
}

// FreqLeft is how many more impressions of the campaign the user may see
// (math.MaxInt64 for a campaign without a cap, 0 for an unknown one): a
// request with several imps bids the campaign on at most that many. No
// allocation, no network.
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
