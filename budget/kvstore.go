package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// kvStore keeps Records in a JetStream KV bucket, one key per campaign
// (c_<campaign>), and one liveness key per instance (i_<instance>).
//
// A watch on the whole bucket keeps the latest value and revision of every
// key here, so a compare-and-set step writes straight away with the revision
// it knows (one request); only when another writer got there first does it
// read the record and try again.
type kvStore struct {
	kv  jetstream.KeyValue
	ljs nats.JetStreamContext // for reads through the stream leader (GetLiveness)

	mu      mutex[lkKVCache]
	cache   map[string]kvCached  // by key
	liveRev map[string]liveWrite // by key: this store's last liveness write (PutLiveness)
}

type liveWrite struct {
	boot string
	rev  uint64
}

func (s *kvStore) lastLive(key, boot string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.liveRev[key]; w.boot == boot {
		return w.rev
	}
	return 0
}

func (s *kvStore) wroteLive(key, boot string, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.liveRev == nil {
		s.liveRev = map[string]liveWrite{}
	}
	s.liveRev[key] = liveWrite{boot: boot, rev: rev}
}

type kvCached struct {
	rev uint64
	val []byte
}

const (
	maxCASAttempts = 64
	kvStream       = "KV_" + KVBucket
	kvSubject      = "$KV." + KVBucket + "."
)

func (s *kvStore) Get(ctx context.Context, id string) (Record, error) {
	r, _, err := s.get(ctx, id)
	return r, err
}

func (s *kvStore) get(ctx context.Context, id string) (Record, uint64, error) {
	e, err := s.kv.Get(ctx, kvKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{Leases: map[string]Lease{}}, 0, nil
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("%w: get %s: %v", ErrStoreDown, id, err)
	}
	var r Record
	if err := decodeRecord(e.Value(), &r); err != nil {
		return Record{}, 0, fmt.Errorf("budget: decode record %s: %w", id, err)
	}
	r.Rev = e.Revision()
	return r, e.Revision(), nil
}

func decodeRecord(b []byte, r *Record) error {
	if err := json.Unmarshal(b, r); err != nil {
		return err
	}
	if r.Leases == nil {
		r.Leases = map[string]Lease{}
	}
	return nil
}

func (s *kvStore) Update(ctx context.Context, id string, fn func(*Record)) (Record, error) {
	key := kvKey(id)
	rev, val, cached := s.cached(key)
	for range maxCASAttempts {
		var r Record
		var err error
		if cached {
			cached = false // after a conflict, read the record afresh
			if err = decodeRecord(val, &r); err != nil {
				continue
			}
		} else if r, rev, err = s.get(ctx, id); err != nil {
			return Record{}, err
		}
		fn(&r)
		b, err := json.Marshal(&r)
		if err != nil {
			return Record{}, err
		}
		var nrev uint64
		if rev == 0 {
			nrev, err = s.kv.Create(ctx, key, b)
		} else {
			nrev, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			s.remember(key, nrev, b)
			r.Rev = nrev
			return r, nil
		}
		if !isConflict(err) {
			return Record{}, fmt.Errorf("%w: update %s: %v", ErrStoreDown, id, err)
		}
	}
	return Record{}, fmt.Errorf("%w: %s", ErrConflict, id)
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}

func (s *kvStore) cached(key string) (uint64, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[key]
	return c.rev, c.val, ok
}

// remember keeps the newest value of key.
func (s *kvStore) remember(key string, rev uint64, val []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]kvCached{}
	}
	if c, ok := s.cache[key]; !ok || c.rev < rev {
		s.cache[key] = kvCached{rev: rev, val: val}
	}
}

func (s *kvStore) PutLiveness(ctx context.Context, inst string, l Liveness, yieldTo int64) (Liveness, error) {
	b, err := json.Marshal(&l)
	if err != nil {
		return Liveness{}, err
	}
	key := livenessKey(inst)
	if yieldTo <= 0 {
		rev, err := s.kv.Put(ctx, key, b)
		if err != nil {
			return Liveness{}, fmt.Errorf("%w: liveness %s: %v", ErrStoreDown, inst, err)
		}
		s.wroteLive(key, l.Boot, rev)
		return Liveness{}, nil
	}
	// Nobody wrote since this store's last beat: one message, as a put.
	if rev := s.lastLive(key, l.Boot); rev > 0 {
		rev, err := s.kv.Update(ctx, key, b, rev)
		if err == nil {
			s.wroteLive(key, l.Boot, rev)
			return Liveness{}, nil
		}
		if !isConflict(err) {
			return Liveness{}, fmt.Errorf("%w: liveness %s: %v", ErrStoreDown, inst, err)
		}
	}
	for range 4 {
		// Read through the stream leader (as GetLiveness), then write only
		// over that revision: another process's heartbeat written meanwhile
		// is not overwritten.
		m, err := s.ljs.GetLastMsg(kvStream, kvSubject+key, nats.Context(ctx))
		var rev uint64
		if errors.Is(err, nats.ErrMsgNotFound) {
			rev, err = s.kv.Create(ctx, key, b)
		} else if err == nil {
			if old, ok, derr := decodeLiveness(m); derr == nil && ok && old.Boot != l.Boot && old.Expires >= yieldTo {
				return old, nil
			}
			rev, err = s.kv.Update(ctx, key, b, m.Sequence)
		}
		if err == nil {
			s.wroteLive(key, l.Boot, rev)
			return Liveness{}, nil
		}
		if !isConflict(err) {
			return Liveness{}, fmt.Errorf("%w: liveness %s: %v", ErrStoreDown, inst, err)
		}
	}
	return Liveness{}, fmt.Errorf("%w: liveness %s", ErrConflict, inst)
}

func (s *kvStore) DeleteLiveness(ctx context.Context, inst, boot string) error {
	key := livenessKey(inst)
	for range 8 {
		// Read through the stream leader, as GetLiveness: a replica that
		// fell behind could show another boot's older heartbeat, and this
		// process's own would then stay until it expired, keeping a new
		// process under the id from bidding.
		m, err := s.ljs.GetLastMsg(kvStream, kvSubject+key, nats.Context(ctx))
		if errors.Is(err, nats.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: liveness %s: %v", ErrStoreDown, inst, err)
		}
		if l, ok, derr := decodeLiveness(m); derr != nil || !ok || l.Boot != boot {
			return nil // deleted, or another process's heartbeat: it stays
		}
		err = s.kv.Delete(ctx, key, jetstream.LastRevision(m.Sequence))
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return fmt.Errorf("%w: liveness %s: %v", ErrStoreDown, inst, err)
		}
	}
	return fmt.Errorf("%w: liveness %s", ErrConflict, inst)
}

// GetLiveness reads through the stream leader (not a direct get, which a
// replica that fell behind may answer).
func (s *kvStore) GetLiveness(ctx context.Context, inst string) (Liveness, bool, error) {
	m, err := s.ljs.GetLastMsg(kvStream, kvSubject+livenessKey(inst), nats.Context(ctx))
	if errors.Is(err, nats.ErrMsgNotFound) {
		return Liveness{}, false, nil
	}
	if err != nil {
		return Liveness{}, false, fmt.Errorf("%w: liveness %s: %v", ErrStoreDown, inst, err)
	}
	l, ok, err := decodeLiveness(m)
	if err != nil {
		return Liveness{}, false, fmt.Errorf("budget: decode liveness %s: %w", inst, err)
	}
	return l, ok, nil
}

// decodeLiveness reads a liveness key's last message: ok is false for a
// delete or purge marker.
func decodeLiveness(m *nats.RawStreamMsg) (l Liveness, ok bool, err error) {
	if m.Header.Get("KV-Operation") != "" || len(m.Data) == 0 {
		return Liveness{}, false, nil
	}
	if err := json.Unmarshal(m.Data, &l); err != nil {
		return Liveness{}, false, err
	}
	return l, true, nil
}

// Watch delivers the bucket's keys, then every change, from an ordered
// consumer (pushed by the server: only changed keys travel). It returns once
// the keys held at the start were delivered (or after watchInitialWait), so
// a first round sees every record: this instance's own entries of a previous
// process among them.
func (s *kvStore) Watch(ctx context.Context, fn func(Change)) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("%w: watch %s: %v", ErrStoreDown, KVBucket, err)
	}
	go func() {
		<-ctx.Done()
		_ = w.Stop()
	}()
	initial := make(chan struct{})
	go func() {
		started := false
		for e := range w.Updates() {
			if e != nil {
				s.deliver(e, fn)
			} else if !started {
				close(initial) // the keys held at the start are delivered
				started = true
			}
		}
	}()
	t := time.NewTimer(watchInitialWait)
	defer t.Stop()
	select {
	case <-initial:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// watchInitialWait bounds Watch's wait for the initial values.
const watchInitialWait = 10 * time.Second

func (s *kvStore) deliver(e jetstream.KeyValueEntry, fn func(Change)) {
	key, del := e.Key(), e.Operation() != jetstream.KeyValuePut
	switch {
	case strings.HasPrefix(key, "i_"):
		inst := unescapeKey(key[2:])
		if del {
			fn(Change{Instance: inst, Deleted: true})
			return
		}
		var l Liveness
		if json.Unmarshal(e.Value(), &l) == nil {
			fn(Change{Instance: inst, Liveness: &l})
		}
	case strings.HasPrefix(key, "c_") && !del:
		s.remember(key, e.Revision(), e.Value())
		var r Record
		if decodeRecord(e.Value(), &r) == nil {
			r.Rev = e.Revision()
			fn(Change{Campaign: unescapeKey(key[2:]), Record: &r})
		}
	}
}

// kvKey maps a campaign id onto the KV key alphabet [-_=A-Za-z0-9]: other
// bytes (and '=') are written as =XX.
func kvKey(id string) string { return escapeKey("c_", id) }

func livenessKey(inst string) string { return escapeKey("i_", inst) }

func escapeKey(prefix, id string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(id)+len(prefix))
	b = append(b, prefix...)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b = append(b, c)
			continue
		}
		b = append(b, '=', hex[c>>4], hex[c&15])
	}
	return string(b)
}

// unescapeKey undoes escapeKey (without the prefix).
func unescapeKey(s string) string {
	if strings.IndexByte(s, '=') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}
