package budget

import (
	"testing"
	"time"
)

// skewedClock is a manualClock read with an offset: another host's clock.
type skewedClock struct {
	base *manualClock
	off  time.Duration
}

func (c skewedClock) Now() time.Time { return c.base.Now().Add(c.off) }

// A reclaimer whose clock runs ahead of a cut-off owner's must not reclaim the
// owner's lease while a hold the owner placed against it is open, for a skew
// under the documented tolerance (ReclaimWait), whatever the sync period. With
// ReclaimWait at 2 x SyncPeriod, a sync_period of 100ms (allowed) left 300ms of
// tolerance: 1.5s of skew had the lease reclaimed, and granted again, 1.2s
// before the owner's last hold ended (an outside fleet audit).
func TestReclaimWaitToleratesSkewAtShortSyncPeriod(t *testing.T) {
	const sync, skew = 100 * time.Millisecond, 1500 * time.Millisecond
	base := newManualClock(t0.Add(time.Hour))
	ca, cb := skewedClock{base, 0}, skewedClock{base, skew}
	mem := NewMemStore()
	c := campaign("c", micros(4))
	sa := &opStore{Store: mem}
	cfa, cfb := storeConfig(sa, "a", ca), storeConfig(mem, "b", cb)
	cfa.SyncPeriod, cfb.SyncPeriod = sync, sync
	a, b := startManager(t, cfa, c), startManager(t, cfb, c)
	if a.cfg.ReclaimWait <= skew {
		t.Errorf("ReclaimWait %v at sync_period %v: under the %v of skew this test allows", a.cfg.ReclaimWait, sync, skew)
	}
	ha, hb := a.Handle("c"), b.Handle("c")
	var holdEnd time.Time // true time
	bid := func() {
		now := ca.Now()
		if a.Allow(ha, 100_000, now) == DecisionOK {
			if id, ok := a.Hold(ha, 100_000, now); ok {
				holdEnd = base.Now().Add(a.cfg.HoldTTL)
				a.releaseHold(ha, id)
			}
		}
	}
	for range 10 {
		base.Add(sync)
		bid()
		a.syncAll(ctxT(t), ca.Now(), false)
		b.syncAll(ctxT(t), cb.Now(), false)
	}
	sa.down.Store(true) // a is cut off from the store, still bidding on its lease
	var reclaimed time.Time
	for i := 0; i < 40000 && reclaimed.IsZero(); i++ {
		base.Add(sync / 10)
		bid()
		if i%10 == 0 {
			a.syncAll(ctxT(t), ca.Now(), false)
		}
		b.Allow(hb, micros(4), cb.Now()) // b wants all the money
		if i%10 == 5 {
			b.syncAll(ctxT(t), cb.Now(), false)
		}
		if r, _ := mem.Get(ctxT(t), "c"); r.Leases["a"].Reclaimed {
			reclaimed = base.Now()
		}
	}
	if reclaimed.IsZero() {
		t.Fatal("a's lease never reclaimed")
	}
	if holdEnd.After(reclaimed) {
		t.Fatalf("b's clock %v ahead: a's last hold ends %v after its lease was reclaimed", skew, holdEnd.Sub(reclaimed))
	}
}
