package ctr

import (
	"fmt"
	"math"
	"sort"
	"sync/atomic"
)

// FeatureStats is the training distribution of each feature slot, written
// into a model's manifest ("feature_stats") by the training pipeline, so the
// serving path can measure drift against it.
type FeatureStats struct {
	Rows  int         `json:"rows"`
	Slots []SlotStats `json:"slots"`
}

// SlotStats bins one slot: a value v falls in the first bin i with
// v <= Edges[i], or in the last bin (len(Edges)) when above every edge.
// Probs has len(Edges)+1 entries summing to 1.
type SlotStats struct {
	Slot  int       `json:"slot"`
	Name  string    `json:"name"`
	Group string    `json:"group,omitempty"`
	Edges []float32 `json:"edges"`
	Probs []float64 `json:"probs"`
}

// ComputeFeatureStats bins every slot of rows (row-major, width values per
// row) into at most bins quantile bins. names labels the slots (may be nil);
// groups maps a slot to its feature group (may be nil).
func ComputeFeatureStats(rows []float32, width, bins int, names, groups []string) (*FeatureStats, error) {
	if width <= 0 || len(rows) == 0 || len(rows)%width != 0 || bins < 2 {
		return nil, fmt.Errorf("%w: feature stats need whole rows and at least 2 bins", ErrBadModel)
	}
	n := len(rows) / width
	fs := &FeatureStats{Rows: n}
	col := make([]float32, n)
	for s := 0; s < width; s++ {
		for r := 0; r < n; r++ {
			col[r] = rows[r*width+s]
		}
		sort.Slice(col, func(i, j int) bool { return col[i] < col[j] })
		var edges []float32
		for b := 1; b < bins; b++ {
			e := col[b*n/bins]
			if len(edges) == 0 || e > edges[len(edges)-1] {
				edges = append(edges, e)
			}
		}
		if len(edges) > 0 && edges[len(edges)-1] >= col[n-1] {
			edges = edges[:len(edges)-1] // the last bin must not be empty by construction
		}
		st := SlotStats{Slot: s, Edges: edges, Probs: make([]float64, len(edges)+1)}
		if s < len(names) {
			st.Name = names[s]
		}
		if s < len(groups) {
			st.Group = groups[s]
		}
		for _, v := range col {
			st.Probs[binOf(edges, v)]++
		}
		for i := range st.Probs {
			st.Probs[i] /= float64(n)
		}
		fs.Slots = append(fs.Slots, st)
	}
	return fs, nil
}

func binOf(edges []float32, v float32) int {
	lo, hi := 0, len(edges)
	for lo < hi { // first edge >= v
		m := (lo + hi) / 2
		if edges[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Drift counts serving rows into the training bins and reports the
// population stability index (PSI) per slot: sum (a-e) ln(a/e) over bins.
// Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
// Observe is safe for concurrent use and does not allocate.
type Drift struct {
	stats  *FeatureStats
	width  int
	counts [][]atomic.Uint64 // per stats slot, per bin
	rows   atomic.Uint64
}

// NewDrift prepares drift counters for rows of width values.
func NewDrift(fs *FeatureStats, width int) (*Drift, error) {
	if fs == nil || len(fs.Slots) == 0 {
		return nil, fmt.Errorf("%w: no feature_stats in the manifest", ErrBadModel)
	}
	d := &Drift{stats: fs, width: width, counts: make([][]atomic.Uint64, len(fs.Slots))}
	for i, s := range fs.Slots {
		if s.Slot < 0 || s.Slot >= width || len(s.Probs) != len(s.Edges)+1 {
			return nil, fmt.Errorf("%w: feature_stats slot %d is malformed", ErrBadModel, s.Slot)
		}
		d.counts[i] = make([]atomic.Uint64, len(s.Probs))
	}
	return d, nil
}

// Observe counts rows (row-major, width values each).
func (d *Drift) Observe(rows []float32) {
	for r := 0; r+d.width <= len(rows); r += d.width {
		row := rows[r : r+d.width]
		for i := range d.stats.Slots {
			s := &d.stats.Slots[i]
			d.counts[i][binOf(s.Edges, row[s.Slot])].Add(1)
		}
		d.rows.Add(1)
	}
}

// SlotPSI is one slot's drift.
type SlotPSI struct {
	Slot  int
	Name  string
	Group string
	PSI   float64
}

// Rows is the number of rows observed.
func (d *Drift) Rows() uint64 { return d.rows.Load() }

// PSI returns every slot's PSI against training (0 before any row).
func (d *Drift) PSI() []SlotPSI {
	out := make([]SlotPSI, len(d.stats.Slots))
	n := float64(d.rows.Load())
	const eps = 1e-4 // smooths empty bins
	for i, s := range d.stats.Slots {
		out[i] = SlotPSI{Slot: s.Slot, Name: s.Name, Group: s.Group}
		if n == 0 {
			continue
		}
		for b, e := range s.Probs {
			a := float64(d.counts[i][b].Load()) / n
			a, e = math.Max(a, eps), math.Max(e, eps)
			out[i].PSI += (a - e) * math.Log(a/e)
		}
	}
	return out
}
