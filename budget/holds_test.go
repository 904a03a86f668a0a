package budget

import "testing"

func TestHoldTable(t *testing.T) {
	tb := newHoldTable(32, 0) // 2 slots per shard
	var ids []HoldID
	for i := range 32 {
		id, ok := tb.put(1, int64(i+1), 100)
		if !ok || id == 0 {
			t.Fatalf("put %d", i)
		}
		ids = append(ids, id)
	}
	if _, ok := tb.put(1, 1, 100); ok || tb.full.Load() != 1 {
		t.Fatal("a full table must refuse and count")
	}
	f := func(name string, id HoldID, acct int32, wantAmt int64, wantOK bool) {
		t.Helper()
		amt, ok := tb.take(id, acct)
		if ok != wantOK || amt != wantAmt {
			t.Errorf("%s: take = %d, %v; want %d, %v", name, amt, ok, wantAmt, wantOK)
		}
	}
	f("other account", ids[0], 2, 0, false)
	f("first take", ids[0], 1, 1, true)
	f("second take", ids[0], 1, 0, false)
	f("zero id", 0, 1, 0, false)
	f("out of range", HoldID(1<<32|999), 1, 0, false)
	// The freed slot is reused with a new generation: the old id stays dead.
	id, ok := tb.put(1, 77, 100)
	if !ok || uint32(id) != uint32(ids[0]) || id == ids[0] {
		t.Fatalf("reuse: %x vs %x", id, ids[0])
	}
	f("stale id after reuse", ids[0], 1, 0, false)
	f("new id", id, 1, 77, true)
	// Expiry closes the due holds only.
	tb.put(1, 5, 50)
	got := tb.expire(60, nil)
	if len(got) != 1 || got[0].amount != 5 {
		t.Fatalf("expire: %+v", got)
	}
	if due, open := tb.drainOpen(60, nil, nil); len(due)+len(open) != 31 {
		t.Fatalf("drain closed %d due and %d open, want 31", len(due), len(open))
	}
}

// The table starts with one chunk per shard and grows to the number of holds
// open at once; ids stay valid across growth, a full table still refuses and
// counts, and expiry skips shards with nothing due.
func TestHoldTableGrowsOnDemand(t *testing.T) {
	const capacity = 1 << 20
	tb := newHoldTable(capacity, 7)
	chunks := func() int {
		n := 0
		for i := range tb.shards {
			for _, c := range tb.shards[i].chunks {
				if c != nil {
					n++
				}
			}
		}
		return n
	}
	if n := chunks(); n != holdShards {
		t.Fatalf("%d chunks at start, want one per shard", n)
	}
	const open = 50_000
	ids := make([]HoldID, open)
	for i := range ids {
		id, ok := tb.put(int32(i%3), int64(i+1), 1000+int64(i))
		if !ok {
			t.Fatalf("put %d", i)
		}
		ids[i] = id
	}
	perShard := (open + holdShards - 1) / holdShards
	if n, want := chunks(), holdShards*((perShard+holdChunk-1)/holdChunk); n != want {
		t.Fatalf("%d chunks for %d open holds, want %d", n, open, want)
	}
	for i, id := range ids {
		if amt, ok := tb.take(id, int32(i%3)); !ok || amt != int64(i+1) {
			t.Fatalf("take %d: %d %v", i, amt, ok)
		}
	}
	// Reuse does not grow the table further.
	n := chunks()
	for range 3 {
		for i := range ids {
			ids[i], _ = tb.put(1, 1, 5000)
		}
		for _, id := range ids {
			tb.take(id, 1)
		}
	}
	if chunks() != n {
		t.Fatalf("reuse grew the table: %d chunks, was %d", chunks(), n)
	}
	// Expiry: nothing open, nothing due.
	for i := range tb.shards {
		if s := &tb.shards[i]; s.open != 0 {
			t.Fatalf("shard %d: %d open", i, s.open)
		}
	}
	id, _ := tb.put(2, 9, 100)
	if got := tb.expire(99, nil); len(got) != 0 {
		t.Fatalf("expired early: %+v", got)
	}
	if got := tb.expire(100, nil); len(got) != 1 || got[0].amount != 9 {
		t.Fatalf("expire: %+v", got)
	}
	if _, ok := tb.take(id, 2); ok {
		t.Fatal("an expired hold was taken")
	}
	// Out of the id space and never-used slots.
	if _, ok := tb.take(HoldID(1<<32|capacity+1), 1); ok {
		t.Fatal("take beyond capacity")
	}
	if _, ok := tb.take(HoldID(uint64(7+1)<<32|uint64(capacity/holdShards)), 1); ok {
		t.Fatal("take of a slot never used")
	}
}
