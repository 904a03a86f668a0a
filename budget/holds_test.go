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
	if n := len(tb.drain(nil)); n != 31 {
		t.Fatalf("drain closed %d, want 31", n)
	}
}
