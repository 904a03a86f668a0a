//go:build !race

package budget

import (
	"testing"
	"time"
)

func TestBidPathAllocs(t *testing.T) {
	clk := newManualClock(t0.Add(time.Hour))
	c := campaign("c", micros(1_000_000))
	c.FreqCapCount, c.FreqCapWindow = 3, time.Hour
	m := newMemManager(t, NewMemStore(), "i1", clk, c)
	h := m.Handle("c")
	now := clk.Now()
	m.RecordImpression(h, 7, now)
	buf := make([]byte, 0, 512)
	tok := sampleToken()
	signer, _ := NewSigner(testKey)
	var sd Sealed
	signer.Seal(&sd, &tok)
	cases := map[string]func(){
		"Handle":         func() { _ = m.Handle("c") },
		"Allow":          func() { _ = m.Allow(h, 1000, now) },
		"Hold":           func() { id, _ := m.Hold(h, 1000, now); m.releaseHold(h, id) },
		"FreqAllow":      func() { _ = m.FreqAllow(h, 7, now) },
		"FreqLeft":       func() { _ = m.FreqLeft(h, 7, now) },
		"FreqReserve":    func() { m.FreqReserve(h, 7, now); m.FreqSettle(h, 7, "", now) },
		"ObserveRequest": func() { m.ObserveRequest(now) },
		"Seal":           func() { signer.Seal(&sd, &tok) },
		"AppendFor":      func() { buf = sd.AppendFor(buf[:0], UseWin) },
		"AppendBinding":  func() { var d [16]byte; buf = sd.AppendBinding(buf[:0], d[:]) },
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs/op", name, n)
		}
	}
}
