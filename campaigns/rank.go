package campaigns

import (
	"sort"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// The ranked walk.
//
// A caller that keeps only the few candidates of an imp that can bid the
// most (the bidder keeps pricing.max_scored_per_imp) need not look at the
// others. Begin and Next yield the eligible candidates of an imp one
// campaign at a time, highest bound first, so the caller can stop as soon as
// nothing left can beat what it kept: the cost follows the campaigns that
// can win, not every eligible one.
//
// The bound of a campaign is the caller's (Ranker), asked by the campaign's
// Index: the walk reads only the index's own dense arrays, never a
// *Campaign, whose scattered structs cost a cache miss each at 10,000
// campaigns. The bidder's bound is
// UpperMicros converted to the response currency, which only a rate table
// knows. What the index knows at compile time is the order within one
// currency, so the snapshot ranks campaigns by currency group (codes in
// ascending order), then UpperMicros descending, then Index; every posting
// list is stored in rank order, which splits it into one run per currency
// group, each run already in descending bound order for any Ranker whose
// bound does not decrease with UpperMicros within a currency. Next merges the
// runs of the request's posting lists with a heap keyed by (bound
// descending, rank ascending): that is the order of the walk, ties included.
// A campaign posted under several of the request's values has the same key
// in each run, so its copies leave the heap one after another and are
// skipped by comparing with the last rank taken.

// Ranker gives the ranked walk each campaign's bound, by the campaign's
// Index in the snapshot: the most it can bid, in the caller's unit, or a
// negative value when it cannot bid at all.
// Among campaigns of the same currency the bound must not decrease as
// UpperMicros grows (a currency conversion rounded the same way for all does
// not). It is called from Begin and Next and must not allocate.
type Ranker interface {
	Bound(index int) int64
}

// cursor is one currency-group run of a posting list, at its head.
type cursor struct {
	pos, end uint32 // in index.postings
	rank     int32  // postings[pos]
	bound    int64  // of the campaign at rank
}

// before orders the heap: higher bound first, then lower rank.
func (a *cursor) before(b *cursor) bool {
	return a.bound > b.bound || a.bound == b.bound && a.rank < b.rank
}

// walk is the state of a ranked walk, kept in Scratch.
type walk struct {
	heap []cursor
	last int32 // rank taken last; -1 none
	req  *ortb.Request
	imp  *ortb.Imp
	rk   Ranker
}

// Rank is the campaign's position in the snapshot's ranking: the tie-break
// of the ranked walk between campaigns of equal bound (lower first).
func (s *Snapshot) Rank(c *Campaign) int { return int(s.idx.rank[c.Index]) }

// Begin starts a ranked walk over the candidates of imp of req at time now
// in sc; Next yields them. The candidates, over the whole walk, are exactly
// those Match returns. req, imp and rk must stay valid until the walk ends
// (the next Begin or Match on sc). It makes no allocation once sc has grown.
func (s *Snapshot) Begin(req *ortb.Request, imp *ortb.Imp, now time.Time, sc *Scratch, rk Ranker) {
	sc.Examined = 0
	w := &sc.walk
	w.heap, w.last, w.req, w.imp, w.rk = w.heap[:0], -1, req, imp, rk
	ix := &s.idx
	seat := sc.seat(ix)
	if !seatAllowed(req.WSeat, req.BSeat, seat) {
		return
	}
	sc.begin(ix, now)
	sc.requestValues(ix, req, imp, seat)
	sc.valsImp, sc.valsIx, sc.valsEpoch = imp, ix, sc.epoch
	for d := range numDims {
		if sc.na[d] {
			continue
		}
		for _, v := range sc.vals[d] {
			p := ix.post[d]
			if int(v)+1 >= len(p) {
				continue
			}
			for lo, hi := p[v], p[v+1]; lo < hi; {
				r := ix.postings[lo]
				ci := ix.byRank[r]
				end := runEnd(ix.postings, lo, hi, ix.groupEnd[ix.camps[ci].group])
				w.heap = append(w.heap, cursor{pos: lo, end: end, rank: r, bound: rk.Bound(int(ci))})
				lo = end
			}
		}
	}
	for i := len(w.heap)/2 - 1; i >= 0; i-- {
		w.down(i)
	}
}

// Next appends to dst the candidates of the next campaign of the walk that
// has any, and reports false when the walk is over. Campaigns come highest
// Ranker bound first, ties in Rank order; a campaign's candidates in the
// order of its creatives.
func (s *Snapshot) Next(dst []Candidate, sc *Scratch) ([]Candidate, bool) {
	ix := &s.idx
	w := &sc.walk
	for len(w.heap) > 0 {
		top := &w.heap[0]
		r := top.rank
		if top.pos++; top.pos < top.end {
			top.rank = ix.postings[top.pos]
			top.bound = w.rk.Bound(int(ix.byRank[top.rank]))
		} else {
			last := len(w.heap) - 1
			w.heap[0] = w.heap[last]
			w.heap = w.heap[:last]
		}
		w.down(0)
		if r == w.last {
			continue // the same campaign from another of the request's values
		}
		w.last = r
		sc.Examined++
		n := len(dst)
		if dst = s.matchCampaign(dst, &ix.camps[ix.byRank[r]], w.req, w.imp, sc); len(dst) > n {
			return dst, true
		}
	}
	return dst, false
}

// runEnd is the first position in postings[lo:hi] (ascending) holding a
// rank at or above end, or hi.
func runEnd(postings []int32, lo, hi uint32, end int32) uint32 {
	for lo < hi {
		m := lo + (hi-lo)/2
		if postings[m] < end {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (w *walk) down(i int) {
	h := w.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			m = r
		}
		if !h[m].before(&h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// rankCampaigns orders the campaigns by currency, then UpperMicros
// descending, then Index, and records each currency group's end.
func (ix *index) rankCampaigns(cs []*Campaign) {
	ix.byRank = make([]int32, len(cs))
	for i := range ix.byRank {
		ix.byRank[i] = int32(i)
	}
	sort.Slice(ix.byRank, func(a, b int) bool {
		x, y := cs[ix.byRank[a]], cs[ix.byRank[b]]
		if x.Currency != y.Currency {
			return x.Currency < y.Currency
		}
		if ux, uy := x.UpperMicros(), y.UpperMicros(); ux != uy {
			return ux > uy
		}
		return x.Index < y.Index
	})
	ix.rank = make([]int32, len(cs))
	ix.groupEnd = ix.groupEnd[:0]
	for r, ci := range ix.byRank {
		ix.rank[ci] = int32(r)
		if r > 0 && cs[ci].Currency != cs[ix.byRank[r-1]].Currency {
			ix.groupEnd = append(ix.groupEnd, int32(r))
		}
		ix.camps[ci].group = uint16(len(ix.groupEnd))
	}
	ix.groupEnd = append(ix.groupEnd, int32(len(cs)))
}
