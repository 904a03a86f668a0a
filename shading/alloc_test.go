//go:build !race

package shading

import "testing"

func TestNoAllocations(t *testing.T) {
	m := newModel(t, Config{MinObservations: 1})
	seg := Segment{Exchange: []byte("x"), Currency: []byte("USD"), Publisher: []byte("pub-1"), Placement: []byte("slot-1"), Format: FormatBanner}
	k := KeyOf(seg)
	m.Observe(Observation{Key: k, Bid: 3e6, MinToWin: 4e6}, t0)
	var buf [64]byte
	id := uint64(1)
	for name, f := range map[string]func(){
		"bid path: key, lookup, optimal": func() {
			c, ok := m.Lookup(KeyOf(seg))
			if !ok || c.Optimal(12e6, 3e5) <= 0 {
				t.Fatal("no curve")
			}
		},
		"notice path: parse, observe": func() {
			kk, _ := ParseKey(k.AppendHex(buf[:0]))
			id++
			m.Observe(Observation{Key: kk, ID: id, Bid: 3e6, Won: true}, t0)
		},
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}
