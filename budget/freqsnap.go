package budget

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Frequency counts across a graceful restart. A Close that writes the tier
// snapshot (levels.go: the ledger flushed, no twin standing under the id)
// also writes the frequency table's impressions in windows still open, as
// a second object under the id (freqObject), and the next Start under the
// id takes it (reads, then deletes) and puts them back before it bids.
// Before, every restart, a graceful deploy of a single instance included,
// forgot every count: each capped campaign could show each user its cap
// again (an outside audit: a user at a cap of 2 bid again right after a
// SIGTERM and restart). Bids still pending are carried too, and their
// notices end them here as their own process would have (freqSettle); not
// carried, a user with bids in flight at the restart could get one more
// each (an outside audit: 3 impressions under a cap of 2). A crash writes nothing: the next
// process starts with no counts, as before, and learns the other instances'
// impressions as they publish them. An earlier version ignores the object.
// It expires with the levels, after the longest notices.dedup_window (2 h
// by default): an instance stopped longer than that starts with no counts,
// whatever its caps' windows.

const (
	freqMagic      = "OBFQ1\n"
	freqEntryBytes = 40 // key, window start, window end (unix ns), count, pending, pending end (unix ns)
)

// freqObject names the frequency snapshot of instance in the levels store:
// '@' is in no instance id (Config.validate), so no instance's levels
// object has this name.
func freqObject(instance string) string { return instance + "@freq" }

// encode appends the entries with impressions counted in a window still
// open at now, or bids pending, and returns how many.
func (t *freqTable) encode(dst []byte, instance string, now int64) ([]byte, int) {
	dst = append(dst, freqMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(instance)))
	dst = append(dst, instance...)
	countAt := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, 0)
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		for k, e := range s.m {
			if !freqLive(&e, now) {
				continue
			}
			dst = binary.LittleEndian.AppendUint64(dst, k)
			dst = binary.LittleEndian.AppendUint64(dst, uint64(e.start))
			dst = binary.LittleEndian.AppendUint64(dst, uint64(e.expires))
			dst = binary.LittleEndian.AppendUint32(dst, e.count)
			dst = binary.LittleEndian.AppendUint32(dst, e.pend)
			dst = binary.LittleEndian.AppendUint64(dst, uint64(e.pendExp))
			n++
		}
		s.mu.RUnlock()
	}
	binary.LittleEndian.PutUint64(dst[countAt:], uint64(n))
	return dst, n
}

// freqLive reports whether e counts anything at now or later: impressions
// in an open window, or bids pending.
func freqLive(e *freqEntry, now int64) bool {
	return e.count > 0 && e.expires > now || e.pend > 0 && e.pendExp > now
}

// restore puts a snapshot's windows still open at now, and its pending
// bids, into the table and returns how many entries. A key the table has
// already keeps its entry, with the snapshot's count where both are the
// same window and the snapshot's is higher, and the snapshot's pending bids
// where it has none.
func (t *freqTable) restore(b []byte, instance string, now int64) (int, error) {
	if len(b) < len(freqMagic) || string(b[:len(freqMagic)]) != freqMagic {
		return 0, fmt.Errorf("%w: frequency snapshot: no magic", errLevels)
	}
	b = b[len(freqMagic):]
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) {
		return 0, fmt.Errorf("%w: frequency snapshot: short header", errLevels)
	}
	if inst := string(b[k : k+int(l)]); inst != instance {
		return 0, fmt.Errorf("%w: frequency snapshot written by instance %q", errLevels, inst)
	}
	b = b[k+int(l):]
	if len(b) < 8 {
		return 0, fmt.Errorf("%w: frequency snapshot: short header", errLevels)
	}
	count := binary.LittleEndian.Uint64(b)
	b = b[8:]
	if count != uint64(len(b))/freqEntryBytes || len(b)%freqEntryBytes != 0 {
		return 0, fmt.Errorf("%w: frequency snapshot: %d entries in %d bytes", errLevels, count, len(b))
	}
	n := 0
	for ; len(b) > 0; b = b[freqEntryBytes:] {
		key := binary.LittleEndian.Uint64(b)
		e := freqEntry{start: int64(binary.LittleEndian.Uint64(b[8:])), expires: int64(binary.LittleEndian.Uint64(b[16:])),
			count: binary.LittleEndian.Uint32(b[24:]), pend: binary.LittleEndian.Uint32(b[28:]),
			pendExp: int64(binary.LittleEndian.Uint64(b[32:]))}
		if !freqLive(&e, now) {
			continue
		}
		s := &t.shards[key&63]
		s.mu.Lock()
		if old, ok := s.m[key]; ok {
			if old.start == e.start && old.expires == e.expires && e.count > old.count {
				old.count = e.count
			}
			if (old.pend == 0 || old.pendExp <= now) && e.pend > 0 && e.pendExp > now {
				old.pend, old.pendExp = e.pend, e.pendExp
			}
			s.m[key] = old
		} else {
			if len(s.m) >= t.maxPer {
				t.makeRoomLocked(s, now)
			}
			s.m[key] = e
			n++
		}
		s.mu.Unlock()
	}
	return n, nil
}

// saveFreq writes the frequency snapshot for the next process (Close, with
// the tier snapshot). A failure loses the counts, as a crash does: logged.
func (m *Manager) saveFreq(ctx context.Context) {
	if m.levels == nil {
		return
	}
	b, n := m.freq.encode(nil, m.cfg.InstanceID, m.cfg.Clock.Now().UnixNano())
	if err := m.levels.putLevels(ctx, freqObject(m.cfg.InstanceID), b); err != nil {
		m.log.Warn("frequency snapshot not written: the next process starts with no frequency counts", "entries", n, "err", err)
		return
	}
	m.log.Info("frequency snapshot written for the next process", "entries", n, "bytes", len(b))
}

// loadFreq takes the previous process's frequency snapshot (Start). One
// that cannot be read is left (it expires) and the process starts without
// it: the counts are lost, as after a crash.
func (m *Manager) loadFreq(ctx context.Context) {
	if m.levels == nil {
		return
	}
	b, err := m.levels.takeLevels(ctx, freqObject(m.cfg.InstanceID))
	if err != nil || b == nil {
		if err != nil {
			m.log.Warn("frequency snapshot not read: starting with no frequency counts", "err", err)
		} else if m.restoredN.Load() > 0 {
			// The tier snapshot was there: this one was not written, or
			// expired first (they expire together).
			m.log.Warn("no frequency snapshot beside the tier snapshot: starting with no frequency counts")
		}
		return
	}
	n, err := m.freq.restore(b, m.cfg.InstanceID, m.cfg.Clock.Now().UnixNano())
	if err != nil {
		m.log.Warn("frequency snapshot dropped", "err", err)
		return
	}
	m.freqRestoredN.Store(uint64(n))
	m.freqCarried.Store(true)
	m.log.Info("frequency counts taken from the previous process", "entries", n)
}
