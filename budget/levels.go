package budget

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Levels across a graceful restart. The tier (tier.go) is what this process
// knows of each impression it settled: without it, a restarted process took a
// loss notice for a win its previous process had charged provisionally as a
// loss of an unknown bid and left the charge standing (an outside audit's
// rolling restart of three instances: 23 lost impressions charged), and
// charged a replayed bill at a lower price again. A graceful Close whose
// ledger flush succeeded writes the tier's live entries as one object named
// by the instance id (LevelsBucket on NATS; in the MemStore for tests), and
// the next Start under that id takes it (reads, then deletes) and puts the
// entries back before it settles anything. The restarted process then stands
// where its predecessor stood: a loss reverses the provisional win (under the
// same ledger id, so a bill settled elsewhere meanwhile, whose seal the
// ledger holds, still stops the reversal), a bill under the level is the
// duplicate it is.
//
// The open holds go with the levels (Close keeps their money in its lease
// entry; restoreHolds opens them again here at their ids, so that this
// process bids none of it and their bills draw from them). What is not
// carried: the entries' ledger sequences (another process's queue; a
// restored entry waits for nothing), the day of each charge (a reversal of
// a restored charge counts as one of an earlier day: it lowers spent_total
// and leaves spent_day, an over-count of the day only), and the bids'
// pending frequency counts (their process is gone: restored entries read as
// ended). A crash writes nothing; the next process starts unknowing, as
// before. The object is taken once: it is deleted before its entries are
// used, and a Start that cannot read or delete it fails (and is retried), so
// a stale snapshot is never restored after a later process ran under the id.
// Objects expire after the longest dedup window (nothing in them matters
// later).

// LevelsBucket is the NATS object store of the tier snapshots.
const LevelsBucket = "BUDGET_LEVELS"

const (
	levelsMagic      = "OBLV2\n" // entries, then the open holds
	levelsMagicV1    = "OBLV1\n" // entries only (written before the holds were carried)
	levelsEntryBytes = 36        // k0, k1, level, exp (unix seconds), gen, flags
)

// levelStore keeps one tier snapshot per instance between a Close and the
// next Start.
type levelStore interface {
	putLevels(ctx context.Context, instance string, b []byte) error
	// takeLevels returns the instance's snapshot and deletes it; nil, nil
	// when there is none. readLevels returns it and leaves it.
	takeLevels(ctx context.Context, instance string) ([]byte, error)
	readLevels(ctx context.Context, instance string) ([]byte, error)
}

// encode appends the tier's live entries whose last ledger entry is
// acknowledged (seq <= durable) and returns how many.
func (t *tier) encode(dst []byte, instance, boot string, nowNs int64, durable uint64) ([]byte, int) {
	dst = append(dst, levelsMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(instance)))
	dst = append(dst, instance...)
	dst = binary.AppendUvarint(dst, uint64(len(boot)))
	dst = append(dst, boot...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(nowNs))
	countAt := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, 0)
	now := t.sec(nowNs)
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for j := range s.slots {
			e := &s.slots[j]
			if e.exp <= now || e.seq > durable {
				continue
			}
			dst = binary.LittleEndian.AppendUint64(dst, e.k0)
			dst = binary.LittleEndian.AppendUint64(dst, e.k1)
			dst = binary.LittleEndian.AppendUint64(dst, uint64(e.level))
			dst = binary.LittleEndian.AppendUint64(dst, uint64(t.epoch+int64(e.exp)))
			dst = binary.LittleEndian.AppendUint16(dst, e.gen)
			dst = binary.LittleEndian.AppendUint16(dst, e.flags)
			n++
		}
		s.mu.Unlock()
	}
	binary.LittleEndian.PutUint64(dst[countAt:], uint64(n))
	return dst, n
}

var errLevels = errors.New("budget: tier snapshot unreadable")

// restore puts a snapshot's unexpired entries into the tier, unless the
// tier knows the impression already (a notice settled before the restore is
// newer). It returns the entries restored, the snapshot's writer and its
// open holds' section (nil in a snapshot written before holds were carried).
func (t *tier) restore(b []byte, instance string, nowNs int64) (n int, boot string, holds []byte, err error) {
	v1 := len(b) >= len(levelsMagicV1) && string(b[:len(levelsMagicV1)]) == levelsMagicV1
	if !v1 && (len(b) < len(levelsMagic) || string(b[:len(levelsMagic)]) != levelsMagic) {
		return 0, "", nil, fmt.Errorf("%w: no magic", errLevels)
	}
	b = b[len(levelsMagic):]
	str := func() (string, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s, true
	}
	inst, ok1 := str()
	boot, ok2 := str()
	if !ok1 || !ok2 || len(b) < 16 {
		return 0, "", nil, fmt.Errorf("%w: short header", errLevels)
	}
	if inst != instance {
		return 0, boot, nil, fmt.Errorf("%w: written by instance %q", errLevels, inst)
	}
	count := binary.LittleEndian.Uint64(b[8:])
	b = b[16:]
	switch {
	case v1 && (count != uint64(len(b))/levelsEntryBytes || len(b)%levelsEntryBytes != 0),
		!v1 && count > uint64(len(b))/levelsEntryBytes:
		return 0, boot, nil, fmt.Errorf("%w: %d entries in %d bytes", errLevels, count, len(b))
	case !v1:
		b, holds = b[:count*levelsEntryBytes], b[count*levelsEntryBytes:]
	}
	now := t.sec(nowNs)
	// Each shard is sized for its entries first: inserted in the order they
	// were written (slot order, hash order) into a small shard that then
	// grows, they formed long probe runs (an outside review: 16 s to
	// restore 4M entries at Start, 1.4 s once sized).
	var per [tierShards]int
	for r := b; len(r) > 0; r = r[levelsEntryBytes:] {
		per[binary.LittleEndian.Uint64(r)%tierShards]++
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for (s.n+per[i])*4 > len(s.slots)*3 && len(s.slots) < s.maxSlots {
			t.grow(s)
		}
		s.mu.Unlock()
	}
	for ; len(b) > 0; b = b[levelsEntryBytes:] {
		k := impKey{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
		exp := t.sec(int64(binary.LittleEndian.Uint64(b[24:])) * 1e9)
		if exp <= now {
			continue
		}
		s, e, existed := t.acquire(k, now)
		if !existed {
			e.level = int64(binary.LittleEndian.Uint64(b[16:]))
			e.gen = binary.LittleEndian.Uint16(b[32:])
			// Its pending frequency count went with its process. And while
			// this instance was down, another settled its notices (nothing
			// is forwarded to a process that is not there): a win charged and
			// reversed there under this generation makes the level here a
			// stale one, so it is unsure (recharge.go) like a level charged
			// on another instance's bid: its bill seals the generation and
			// charges again if it finds it reversed. Restored as certain, the
			// bill was taken for a duplicate of the reversed win and the
			// billed impression cost nothing (an outside review).
			e.flags = binary.LittleEndian.Uint16(b[34:]) | fUnpended | fUnsure
			if e.level > 0 {
				e.flags |= fOldDay // the charge's day is not carried: its reversal keeps spent_day
			}
			t.touch(s, e, exp)
			n++
		}
		s.mu.Unlock()
	}
	return n, boot, holds, nil
}

// saveLevels writes the tier and the open holds for the next process under
// this instance id (Close, after a flush that left nothing unacknowledged).
func (m *Manager) saveLevels(ctx context.Context, open []openHold) {
	if m.levels == nil {
		return
	}
	b, n := m.tier.encode(nil, m.cfg.InstanceID, m.boot, m.cfg.Clock.Now().UnixNano(), m.ledger.durable.Load())
	b, nh := m.appendHolds(b, open)
	if err := m.levels.putLevels(ctx, m.cfg.InstanceID, b); err != nil {
		m.log.Warn("tier snapshot not written: the next process will not know this one's charge levels or open holds",
			"entries", n, "holds", nh, "err", err)
		return
	}
	m.log.Info("tier snapshot written for the next process", "entries", n, "holds", nh, "bytes", len(b))
}

// appendHolds appends the snapshot's holds section: the table's slots per
// shard, a count, then each open hold (one its charges drew to nothing
// too: a loss's reversal refills it, and the bill may still come within
// hold_ttl; left out, the reversal went to the lease and that bill was
// late): its id, amount, expiry (unix nanoseconds),
// campaign id (the next process numbers its accounts its own way) and the
// currency of its amount.
func (m *Manager) appendHolds(dst []byte, open []openHold) ([]byte, int) {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.holds.per))
	countAt := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, 0)
	n := 0
	for _, h := range open {
		a := m.accountByIdx(h.acct)
		if a == nil || h.amount < 0 {
			continue
		}
		dst = binary.LittleEndian.AppendUint64(dst, uint64(h.id))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(h.amount))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(h.expires))
		cur := a.campaign().Currency
		dst = binary.AppendUvarint(dst, uint64(len(a.id)))
		dst = append(dst, a.id...)
		dst = binary.AppendUvarint(dst, uint64(len(cur)))
		dst = append(dst, cur...)
		n++
	}
	binary.LittleEndian.PutUint64(dst[countAt:], uint64(n))
	return dst, n
}

// restoreHolds opens the holds of a snapshot's holds section again (Start,
// or a yielded process's close taking its twin's snapshot) and adds them to
// their campaigns' held money, so that this process's lease covers them and
// their bills draw from them. A campaign this process does not load gets a
// retired account (its notices are charged to its record, and its steps
// keep the holds' money in the lease entry until they end: left out, the
// previous process's entry stood as long as this process ran, since nothing
// stepped the campaign and no other instance reclaims an entry of a live
// id, an outside review). Holds that have expired are left out, and so are
// those in another currency than their campaign's now (their money would be
// counted in the wrong one; this process's step takes the entry over with
// nothing in it, no lease being granted in another currency, so their bills
// are late, as before the holds were carried). It returns how many it
// opened and their money, and the campaigns of the unexpired ones it left out.
func (m *Manager) restoreHolds(b []byte, nowNs int64) (n int, micros int64, leftOut map[string]bool, err error) {
	if len(b) < 16 {
		return 0, 0, nil, fmt.Errorf("%w: short holds section", errLevels)
	}
	per, count := int(binary.LittleEndian.Uint64(b)), binary.LittleEndian.Uint64(b[8:])
	b = b[16:]
	hs := make([]openHold, 0, min(count, uint64(len(b))/26))
	for range count {
		if len(b) < 24 {
			return 0, 0, nil, fmt.Errorf("%w: short hold", errLevels)
		}
		h := openHold{id: HoldID(binary.LittleEndian.Uint64(b)), amount: int64(binary.LittleEndian.Uint64(b[8:])),
			expires: int64(binary.LittleEndian.Uint64(b[16:]))}
		b = b[24:]
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return 0, 0, nil, fmt.Errorf("%w: short hold", errLevels)
		}
		id := string(b[k : k+int(l)])
		b = b[k+int(l):]
		l, k = binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return 0, 0, nil, fmt.Errorf("%w: short hold", errLevels)
		}
		cur := string(b[k : k+int(l)])
		b = b[k+int(l):]
		if h.amount < 0 || h.expires <= nowNs {
			continue
		}
		a := m.Handle(id)
		if a == nil {
			a = m.retired(id)
		}
		if a == nil && cur != "" {
			// The record could not be read now; the holds were leased
			// from it, in their currency (skipped, the closed entry
			// stood until this process stepped the campaign).
			a = m.retiredIn(id, cur)
		}
		if a == nil || a.campaign().Currency != cur {
			leftOut = addID(leftOut, id)
			continue
		}
		h.acct = a.idx
		hs = append(hs, h)
	}
	placed, atID := m.holds.restoreOpen(hs, per)
	if left := len(hs) - len(placed); left > 0 {
		missing := map[int32]int{} // each campaign's holds not placed
		for _, h := range hs {
			missing[h.acct]++
		}
		for _, h := range placed {
			missing[h.acct]--
		}
		for acct, n := range missing {
			if n > 0 {
				leftOut = addID(leftOut, m.accountByIdx(acct).id)
			}
		}
		m.log.Warn("open holds not restored: the hold table is full", "holds", left)
	}
	for _, h := range placed {
		a := m.accountByIdx(h.acct)
		a.mu.Lock()
		a.held.Add(h.amount)
		a.mu.Unlock()
		micros += h.amount
	}
	if moved := len(placed) - atID; moved > 0 {
		m.log.Warn("open holds restored under new ids (another budget.max_holds): their notices will be charged as late",
			"holds", moved)
	}
	return len(placed), micros, leftOut, nil
}

// addID adds id to the set s (made when nil).
func addID(s map[string]bool, id string) map[string]bool {
	if s == nil {
		s = map[string]bool{}
	}
	s[id] = true
	return s
}

// loadLevels takes the previous process's tier snapshot (Start). An error
// reading or deleting it fails Start; an unreadable snapshot is dropped.
func (m *Manager) loadLevels(ctx context.Context) error {
	n, err := m.takeLevels(ctx, "previous process's")
	if err != nil {
		return fmt.Errorf("budget: read tier snapshot: %w", err)
	}
	m.restoredN.Store(uint64(n))
	return nil
}

// mergeTwinLevels takes the snapshot a twin under this id wrote at its
// close (any there was written after this process took its own at Start)
// into the tier, as a restore does (entries this process knows are kept;
// the others come in unsure).
func (m *Manager) mergeTwinLevels(ctx context.Context) {
	if _, err := m.takeLevels(ctx, "twin's"); err != nil {
		m.log.Warn("twin's tier snapshot not read: this process's replaces it", "err", err)
	}
}

// readTwinLevels takes the levels of the snapshot a twin under this id
// wrote at its close into the tier while this process runs on (onOwnLiveness
// saw the twin's heartbeat deleted, which its close does after writing the
// snapshot). Before, the survivor took them only at its own close, and a
// loss meanwhile for the twin's provisional win reversed nothing: a fleet
// audit's 15 losses left 15 wins charged. Levels only: the snapshot's open
// holds cannot be placed in a hold table in use, so the snapshot is left
// for this process's close (mergeTwinLevels), which takes them if they are
// still open; entries this process knows are kept either way.
func (m *Manager) readTwinLevels(ctx context.Context) {
	if m.levels == nil {
		return
	}
	b, err := m.levels.readLevels(ctx, m.cfg.InstanceID)
	if err != nil || b == nil {
		if err != nil {
			m.log.Warn("twin's tier snapshot not read: its levels come in at this process's close", "err", err)
		}
		return
	}
	n, _, _, err := m.tier.restore(b, m.cfg.InstanceID, m.cfg.Clock.Now().UnixNano())
	if err != nil {
		m.log.Warn("twin's tier snapshot dropped", "err", err)
		return
	}
	m.twinLevelsN.Add(uint64(n))
	m.log.Info("the twin under this instance_id closed: its charge levels taken", "entries", n)
}

// twinTake is one take of a closed twin's levels into the tier
// (readTwinLevels): started once, done closed when it ended, whatever it
// found.
type twinTake struct {
	started atomic.Bool
	done    chan struct{}
}

// ended tells whether the take is over (every notice after it goes on at
// once, without a context to wait with).
func (tk *twinTake) ended() bool {
	select {
	case <-tk.done:
		return true
	default:
		return false
	}
}

// closedTwinLevels puts the levels of the twin this process yielded to into
// the tier once the twin closed (its heartbeat deleted, onOwnLiveness), before
// this process settles anything more: it starts the take when none ran since
// the close was seen, and waits for it until ctx ends (a notice that cannot
// wait longer is settled without them, as before). Before, the take waited for
// the next sync round (up to SyncPeriod), and a loss settled here meanwhile
// for one of the twin's provisional wins reversed nothing; a notice now waits
// for it instead. The take runs under its own timeout, so a notice that stops
// waiting does not cut it short. Nothing is held while it waits.
func (m *Manager) closedTwinLevels(ctx context.Context) {
	tk := m.twinTake.Load()
	if tk == nil {
		return
	}
	if tk.started.CompareAndSwap(false, true) {
		go func() {
			defer close(tk.done)
			lctx, cancel := context.WithTimeout(context.Background(), max(m.cfg.SyncPeriod, time.Second))
			defer cancel()
			m.readTwinLevels(lctx)
		}()
	}
	select {
	case <-tk.done:
	case <-ctx.Done():
	}
}

// awaitTwinLevels waits up to d for the levels of a closed twin this
// process yielded to (closedTwinLevels) before a notice is settled, so a
// loss for the twin's provisional win reverses it. Nothing to wait for
// (no twin closed, or its levels taken) costs an atomic load.
func (m *Manager) awaitTwinLevels(d time.Duration) {
	tk := m.twinTake.Load()
	if tk == nil || tk.ended() || d <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	m.closedTwinLevels(ctx)
	cancel()
}

// twinTakeEnded waits for a take of a closed twin's levels that is running
// (Close, before it writes the tier: the take's entries go in it).
func (m *Manager) twinTakeEnded() {
	if tk := m.twinTake.Load(); tk != nil && tk.started.Load() {
		<-tk.done
	}
}

// takeLevels takes this id's snapshot (read, then deleted) into the tier
// and returns the entries restored; whose names the writer in the log. An
// unreadable snapshot is dropped with a warning.
func (m *Manager) takeLevels(ctx context.Context, whose string) (int, error) {
	if m.levels == nil {
		return 0, nil
	}
	b, err := m.levels.takeLevels(ctx, m.cfg.InstanceID)
	if err != nil || b == nil {
		return 0, err
	}
	now := m.cfg.Clock.Now().UnixNano()
	n, boot, hb, err := m.tier.restore(b, m.cfg.InstanceID, now)
	if err != nil {
		m.log.Warn("tier snapshot dropped", "whose", whose, "err", err)
		return 0, nil
	}
	var nh int
	var held int64
	var left map[string]bool
	if hb != nil {
		if nh, held, left, err = m.restoreHolds(hb, now); err != nil {
			m.log.Warn("tier snapshot's open holds dropped", "whose", whose, "err", err)
		}
	}
	if len(left) > 0 {
		// Holds left out (a fuller table, another currency): those
		// campaigns' takeovers reserve the entry, less what came back, as
		// after a crash (an outside review bid 3,500 while 8,795 of the
		// closed process's bids were still open, on a budget of 10,000).
		merged := maps.Clone(left)
		if p := m.restoreLeftOut.Load(); p != nil {
			maps.Copy(merged, *p)
		}
		m.restoreLeftOut.Store(&merged)
	}
	if err == nil && boot != "" {
		// The open holds came back: the entry's money is in this
		// process's holds.
		var boots []string
		if p := m.restoredBoots.Load(); p != nil {
			boots = append(boots, *p...)
		}
		boots = append(boots, boot)
		m.restoredBoots.Store(&boots)
	}
	m.log.Info("tier snapshot restored", "whose", whose, "entries", n, "holds", nh, "held_micros", held, "from_boot", boot)
	return n, nil
}

// objLevels keeps the snapshots in LevelsBucket.
type objLevels struct {
	nc func() bool
	os jetstream.ObjectStore
}

func (m *Manager) provisionLevels(ctx context.Context) error {
	var os jetstream.ObjectStore
	err := jsRetry(ctx, m.nc.IsConnected, func(ctx context.Context) (err error) {
		os, err = m.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: LevelsBucket, Description: "openbidder charge levels kept from a closing process for the next one under its instance id",
			TTL: m.cfg.DedupWindow.Longest(), Storage: jetstream.FileStorage, Replicas: m.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("budget: create object store %s: %w", LevelsBucket, err)
	}
	m.levels = &objLevels{nc: m.nc.IsConnected, os: os}
	return nil
}

func (o *objLevels) putLevels(ctx context.Context, instance string, b []byte) error {
	return jsRetry(ctx, o.nc, func(ctx context.Context) error {
		_, err := o.os.PutBytes(ctx, instance, b)
		return err
	})
}

func (o *objLevels) readLevels(ctx context.Context, instance string) ([]byte, error) {
	var b []byte
	err := jsRetry(ctx, o.nc, func(ctx context.Context) (err error) {
		b, err = o.os.GetBytes(ctx, instance)
		return err
	})
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	return b, err
}

func (o *objLevels) takeLevels(ctx context.Context, instance string) ([]byte, error) {
	b, err := o.readLevels(ctx, instance)
	if err != nil || b == nil {
		return nil, err
	}
	err = jsRetry(ctx, o.nc, func(ctx context.Context) error {
		err := o.os.Delete(ctx, instance)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// The MemStore keeps snapshots in memory (tests, single-process tools).
func (s *MemStore) putLevels(_ context.Context, instance string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return ErrStoreDown
	}
	if s.levels == nil {
		s.levels = map[string][]byte{}
	}
	s.levels[instance] = append([]byte(nil), b...)
	return nil
}

func (s *MemStore) takeLevels(_ context.Context, instance string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, ErrStoreDown
	}
	b := s.levels[instance]
	delete(s.levels, instance)
	return b, nil
}

func (s *MemStore) readLevels(_ context.Context, instance string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, ErrStoreDown
	}
	return s.levels[instance], nil
}

var _ levelStore = (*MemStore)(nil)

// levelsTimeout bounds the snapshot's write at Close when its context has
// no deadline.
const levelsTimeout = 30 * time.Second
