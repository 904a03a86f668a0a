package ctr

import (
	"errors"
	"fmt"
	"math"
)

// ErrInputForm refuses a model whose manifest names an input form this
// build does not know, or whose form does not fit the model kind.
var ErrInputForm = errors.New("ctr: model input form not supported")

// Input forms (Manifest.InputForm): what a model's graph takes as input.
// Every Scorer takes feature rows; a model of another form gets its inputs
// converted from the rows inside ctr, without allocation.
const (
	// InputRows is the feature row itself, float32 [N, width]. A manifest
	// without input_form means this (every model before the field existed,
	// and every GBDT).
	InputRows = "rows"
	// InputWideDeepIDs is the wide & deep graph that only looks up and adds
	// (ctr/train/wide_deep_ids.py): int32 wide_ids [N, wide columns +
	// crosses], int32 deep_ids [N, deep columns], float32 numeric [N,
	// numeric slots]. The id arithmetic, which nothing learns (clamps,
	// modulos, hashed crosses, table offsets), is done here, by
	// wideDeepConv, from the manifest's wide_deep_ids section.
	InputWideDeepIDs = "wide_deep_ids"
)

// WideDeepIDs is the manifest section of the wide_deep_ids form. With
// id(c) = trunc(clamp(row[c.Slot] + c.Add, 0, c.Max)) in float32:
//
//	wide_ids: id(c) mod c.Size + c.Offset, for each wide column c, then
//	          (id(A) * x.Mul + id(B)) mod x.Buckets + x.Offset, for each cross x
//	deep_ids: id(WideColumns[d.Column]) mod d.Size + d.Offset, for each deep column d
//	numeric:  clamp(row[n.Slot], n.Lo, n.Hi), for each numeric slot n
type WideDeepIDs struct {
	WideColumns []WideColumn  `json:"wide_columns"`
	Crosses     []WideCross   `json:"crosses"`
	DeepColumns []DeepColumn  `json:"deep_columns"`
	Numeric     []NumericSlot `json:"numeric"`
	WideRows    int64         `json:"wide_rows"` // rows of the concatenated wide table
	DeepRows    int64         `json:"deep_rows"` // rows of the concatenated embedding table
}

// WideColumn is one wide table indexed by a slot's id.
type WideColumn struct {
	Slot   int     `json:"slot"`
	Add    float32 `json:"add"` // added before the clamp (1 for small-int slots, whose -1 is a value)
	Max    float32 `json:"max"`
	Size   int64   `json:"size"`
	Offset int64   `json:"offset"`
}

// WideCross is one hashed cross of two wide columns' ids.
type WideCross struct {
	A       int   `json:"a"` // index into WideColumns
	B       int   `json:"b"`
	Mul     int64 `json:"mul"`
	Buckets int64 `json:"buckets"`
	Offset  int64 `json:"offset"`
}

// DeepColumn is one embedding table indexed by a wide column's id.
type DeepColumn struct {
	Column int   `json:"column"` // index into WideColumns
	Size   int64 `json:"size"`
	Offset int64 `json:"offset"`
}

// NumericSlot is a slot the deep part reads as a number, clamped to its
// training range.
type NumericSlot struct {
	Slot int     `json:"slot"`
	Lo   float32 `json:"lo"`
	Hi   float32 `json:"hi"`
}

// wideDeepMaxColumns bounds the wide columns (ids are computed into a stack
// array of this size).
const wideDeepMaxColumns = 256

// wideDeepConv converts feature rows to wide_deep_ids inputs. Immutable
// after newWideDeepConv; safe for concurrent use.
type wideDeepConv struct {
	width   int
	cols    []wdCol
	crosses []wdCross
	deep    []wdDeep
	num     []NumericSlot
}

type wdCol struct {
	slot       int
	add, max   float32
	size, mask int64 // mask: size-1 when size is a power of two, else -1
	offset     int64
}

type wdCross struct {
	a, b               int
	mul, buckets, mask int64
	offset             int64
}

type wdDeep struct {
	col                int
	size, mask, offset int64
}

// newWideDeepConv checks a wide_deep_ids section against the row width and
// compiles it. Every index it can produce lies inside its table.
func newWideDeepConv(s *WideDeepIDs, width int) (*wideDeepConv, error) {
	if s == nil {
		return nil, fmt.Errorf("input form %s without a wide_deep_ids section", InputWideDeepIDs)
	}
	nc := len(s.WideColumns)
	if nc == 0 || nc > wideDeepMaxColumns {
		return nil, fmt.Errorf("wide_deep_ids: %d wide columns, want 1 to %d", nc, wideDeepMaxColumns)
	}
	if s.WideRows <= 0 || s.WideRows > math.MaxInt32 || s.DeepRows < 0 || s.DeepRows > math.MaxInt32 {
		return nil, fmt.Errorf("wide_deep_ids: table rows %d and %d out of [1, 2^31)", s.WideRows, s.DeepRows)
	}
	c := &wideDeepConv{width: width, num: s.Numeric}
	table := func(what string, i int, size, offset, rows int64) error {
		if size < 1 || offset < 0 || offset+size > rows {
			return fmt.Errorf("wide_deep_ids: %s %d: rows [%d, %d+%d) outside the table's %d", what, i, offset, offset, size, rows)
		}
		return nil
	}
	for i, w := range s.WideColumns {
		if w.Slot < 0 || w.Slot >= width || !(w.Max >= 0 && w.Max <= 1<<31) || math.IsNaN(float64(w.Add)) ||
			math.IsInf(float64(w.Add), 0) {
			return nil, fmt.Errorf("wide_deep_ids: wide column %d: slot %d of %d, add %v, max %v", i, w.Slot, width, w.Add, w.Max)
		}
		if err := table("wide column", i, w.Size, w.Offset, s.WideRows); err != nil {
			return nil, err
		}
		c.cols = append(c.cols, wdCol{slot: w.Slot, add: w.Add, max: w.Max, size: w.Size, mask: wdMask(w.Size), offset: w.Offset})
	}
	for i, x := range s.Crosses {
		if x.A < 0 || x.A >= nc || x.B < 0 || x.B >= nc || x.Mul < 1 || x.Mul > 1<<30 {
			return nil, fmt.Errorf("wide_deep_ids: cross %d: columns %d and %d of %d, mul %d", i, x.A, x.B, nc, x.Mul)
		}
		if err := table("cross", i, x.Buckets, x.Offset, s.WideRows); err != nil {
			return nil, err
		}
		c.crosses = append(c.crosses, wdCross{a: x.A, b: x.B, mul: x.Mul, buckets: x.Buckets, mask: wdMask(x.Buckets), offset: x.Offset})
	}
	for i, d := range s.DeepColumns {
		if d.Column < 0 || d.Column >= nc {
			return nil, fmt.Errorf("wide_deep_ids: deep column %d: column %d of %d", i, d.Column, nc)
		}
		if err := table("deep column", i, d.Size, d.Offset, s.DeepRows); err != nil {
			return nil, err
		}
		c.deep = append(c.deep, wdDeep{col: d.Column, size: d.Size, mask: wdMask(d.Size), offset: d.Offset})
	}
	for i, n := range s.Numeric {
		if n.Slot < 0 || n.Slot >= width || !(n.Lo <= n.Hi) || math.IsInf(float64(n.Lo), 0) || math.IsInf(float64(n.Hi), 0) {
			return nil, fmt.Errorf("wide_deep_ids: numeric %d: slot %d of %d, range [%v, %v]", i, n.Slot, width, n.Lo, n.Hi)
		}
	}
	if len(c.deep) == 0 && len(c.num) > 0 {
		return nil, fmt.Errorf("wide_deep_ids: %d numeric slots without a deep part", len(c.num))
	}
	return c, nil
}

func wdMask(size int64) int64 {
	if size&(size-1) == 0 {
		return size - 1
	}
	return -1
}

// wdMod is v mod size for v >= 0.
func wdMod(v, size, mask int64) int64 {
	if mask >= 0 {
		return v & mask
	}
	return v % size
}

// Widths of the three inputs per row.
func (c *wideDeepConv) wideWidth() int { return len(c.cols) + len(c.crosses) }
func (c *wideDeepConv) deepWidth() int { return len(c.deep) }
func (c *wideDeepConv) numWidth() int  { return len(c.num) }

// put converts len(rows)/width rows into wide, deep and num (each at least
// that many rows of its width). It does not allocate. (The parts are small
// functions: one loop nest holding every slice spills its registers.)
func (c *wideDeepConv) put(rows []float32, wide, deep []int32, num []float32) {
	nw, nd, nn := c.wideWidth(), len(c.deep), len(c.num)
	var ids [wideDeepMaxColumns]int64
	for i := 0; (i+1)*c.width <= len(rows); i++ {
		row := rows[i*c.width : (i+1)*c.width : (i+1)*c.width]
		w := wide[i*nw : (i+1)*nw : (i+1)*nw]
		wdColumns(c.cols, row, w, &ids)
		wdCrosses(c.crosses, &ids, w[len(c.cols):])
		wdDeepIDs(c.deep, &ids, deep[i*nd:(i+1)*nd:(i+1)*nd])
		wdNumeric(c.num, row, num[i*nn:(i+1)*nn:(i+1)*nn])
	}
}

// wdColumns writes the wide columns' rows of one feature row and keeps
// their ids for the crosses and the deep part.
func wdColumns(cols []wdCol, row []float32, w []int32, ids *[wideDeepMaxColumns]int64) {
	w = w[:len(cols)]
	for k := range cols {
		col := &cols[k]
		v := row[col.slot] + col.add
		if !(v > 0) { // NaN too
			v = 0
		}
		if v > col.max {
			v = col.max
		}
		id := int64(v)
		ids[uint8(k)] = id // k < wideDeepMaxColumns
		w[k] = int32(wdMod(id, col.size, col.mask) + col.offset)
	}
}

func wdCrosses(xs []wdCross, ids *[wideDeepMaxColumns]int64, w []int32) {
	w = w[:len(xs)]
	for k := range xs {
		x := &xs[k]
		w[k] = int32(wdMod(ids[uint8(x.a)]*x.mul+ids[uint8(x.b)], x.buckets, x.mask) + x.offset)
	}
}

func wdDeepIDs(ds []wdDeep, ids *[wideDeepMaxColumns]int64, d []int32) {
	d = d[:len(ds)]
	for k := range ds {
		dc := &ds[k]
		d[k] = int32(wdMod(ids[uint8(dc.col)], dc.size, dc.mask) + dc.offset)
	}
}

func wdNumeric(ns []NumericSlot, row []float32, f []float32) {
	f = f[:len(ns)]
	for k := range ns {
		n := &ns[k]
		v := row[n.Slot]
		if !(v >= n.Lo) { // NaN too
			v = n.Lo
		}
		if v > n.Hi {
			v = n.Hi
		}
		f[k] = v
	}
}

// checkInputForm refuses a form this build does not know, or a section
// that does not fit it, and returns the converter of a wide_deep_ids model
// (nil for rows).
func (m *Manifest) checkInputForm() (*wideDeepConv, error) {
	switch m.InputForm {
	case InputRows:
		if m.WideDeepIDs != nil {
			return nil, fmt.Errorf("%w: model %q: input form rows with a wide_deep_ids section", ErrInputForm, m.Name)
		}
		return nil, nil
	case InputWideDeepIDs:
		if m.Kind != "onnx" {
			return nil, fmt.Errorf("%w: model %q: input form %s on a %s model (only onnx)", ErrInputForm, m.Name, m.InputForm, m.Kind)
		}
		c, err := newWideDeepConv(m.WideDeepIDs, m.Width)
		if err != nil {
			return nil, fmt.Errorf("%w: model %q: %v", ErrBadModel, m.Name, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: model %q takes input form %q; this build knows %s and %s",
		ErrInputForm, m.Name, m.InputForm, InputRows, InputWideDeepIDs)
}
