package budget

import (
	"testing"
	"time"
)

func benchManager(b *testing.B) (*Manager, *Account, time.Time) {
	clk := newManualClock(t0.Add(time.Hour))
	m, err := New(Config{InstanceID: "b", Store: NewMemStore(), Clock: clk, manual: true,
		MinLease: 1 << 60, MaxLease: 1 << 60}, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	c := campaign("c", 1<<61)
	c.FreqCapCount, c.FreqCapWindow = 3, time.Hour
	c.Pacing = PacingEven
	m.SetCampaigns([]Campaign{c})
	if err := m.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	h := m.Handle("c")
	h.throttle.Store(probToThreshold(0.9))
	return m, h, clk.Now()
}

// BenchmarkMapLookupBaseline is the floor the bid path is measured against.
func BenchmarkMapLookupBaseline(b *testing.B) {
	m := map[string]int{"c": 1}
	b.ReportAllocs()
	s := 0
	for b.Loop() {
		s += m["c"]
	}
	_ = s
}

func BenchmarkAllowHold(b *testing.B) {
	m, h, now := benchManager(b)
	b.ReportAllocs()
	for b.Loop() {
		if m.Allow(h, 1000, now) == DecisionOK {
			if id, ok := m.Hold(h, 1000, now); ok {
				m.releaseHold(h, id)
			}
		}
	}
}

func BenchmarkAllowHoldParallel(b *testing.B) {
	m, h, now := benchManager(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if m.Allow(h, 1000, now) == DecisionOK {
				if id, ok := m.Hold(h, 1000, now); ok {
					m.releaseHold(h, id)
				}
			}
		}
	})
}

func BenchmarkAllow(b *testing.B) {
	m, h, now := benchManager(b)
	b.ReportAllocs()
	for b.Loop() {
		m.Allow(h, 1000, now)
	}
}

func BenchmarkFreqAllow(b *testing.B) {
	m, h, now := benchManager(b)
	for u := range uint64(10000) {
		m.RecordImpression(h, u, now)
	}
	b.ReportAllocs()
	u := uint64(0)
	for b.Loop() {
		m.FreqAllow(h, u%20000, now)
		u++
	}
}

// BenchmarkSealFiveUses is one bid's notice tokens: the payload signed once,
// then nurl, burl, lurl, pixel and click tokens appended.
func BenchmarkSealFiveUses(b *testing.B) {
	s, _ := NewSigner(testKey)
	buf := make([]byte, 0, 2048)
	tok := sampleToken()
	var sd Sealed
	b.ReportAllocs()
	for b.Loop() {
		s.Seal(&sd, &tok)
		buf = buf[:0]
		for u := UseWin; u < numUses; u++ {
			buf = sd.AppendFor(buf, u)
		}
	}
}

func BenchmarkParseToken(b *testing.B) {
	s, _ := NewSigner(testKey)
	raw := AppendToken(nil, testKey, sampleToken(), UseBill)
	b.ReportAllocs()
	for b.Loop() {
		s.Parse(raw, UseBill, t0)
	}
}

func BenchmarkSettle(b *testing.B) {
	m, h, now := benchManager(b)
	ids := []string{"a", "b", "c", "d"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.expireIfFull(h)
		id, _ := m.Hold(h, 1000, now)
		m.Settle(Notice{Kind: KindWin, ChargeOn: KindWin, HoldID: id, CampaignID: "c", AuctionID: ids[i&3] + string(rune('a'+i%26)), ImpID: "1", BidMicros: 1000, ClearingMicros: 900, Time: now})
		i++
	}
}
