package ctr

import (
	"encoding/binary"
	"fmt"
	"math"
)

// WidePart is the wide part of a wide_deep_ids model carried by a GBDT
// manifest (ctr/train/distill.py --wide): the fallback's logit is
//
//	Bias + sum of Table[id] over the row's wide ids + the trees' margin
//
// where the ids come from WideDeepIDs' wide columns and crosses (the same
// arithmetic as the ONNX model's input conversion, wideDeepConv) and Table
// is File: WideDeepIDs.WideRows float32 values, little-endian, gzipped when
// the name ends in .gz. A tree needs a pair of splits per id to copy a
// table of per-id weights (a 262,144-bucket user slot, publishers, hashed
// crosses); a lookup copies it exactly, so the trees only learn what the
// table does not (the teacher's deep part, if any). It is read by ctr
// itself: no ONNX Runtime.
type WidePart struct {
	File        string      `json:"file"`
	SHA256      string      `json:"sha256"` // hex digest of File's bytes; required
	Bias        float64     `json:"bias"`
	WideDeepIDs WideDeepIDs `json:"wide_deep_ids"` // wide columns and crosses only
}

// gbdtWide is a loaded WidePart. Immutable; safe for concurrent use.
type gbdtWide struct {
	conv  *wideDeepConv
	table []float32
	bias  float64
}

// loadGBDTWide reads and checks m.WidePart: the section compiles against
// the row width and has no deep columns or numeric slots, the file's sha256
// is the manifest's, it holds exactly wide_rows finite float32 values, and
// the bias is finite. (The parity sample, checked after, proves the sum.)
func loadGBDTWide(m *Manifest) (*gbdtWide, error) {
	wp := m.WidePart
	s := &wp.WideDeepIDs
	if len(s.DeepColumns) != 0 || len(s.Numeric) != 0 || s.DeepRows != 0 {
		return nil, fmt.Errorf("%w: model %q: wide_part has a deep part (%d deep columns, %d numeric slots)",
			ErrBadModel, m.Name, len(s.DeepColumns), len(s.Numeric))
	}
	conv, err := newWideDeepConv(s, m.Width)
	if err != nil {
		return nil, fmt.Errorf("%w: model %q: wide_part: %v", ErrBadModel, m.Name, err)
	}
	if math.IsNaN(wp.Bias) || math.IsInf(wp.Bias, 0) {
		return nil, fmt.Errorf("%w: model %q: wide_part bias %v", ErrBadModel, m.Name, wp.Bias)
	}
	if wp.File == "" || wp.SHA256 == "" {
		return nil, fmt.Errorf("%w: model %q: wide_part needs a file and its sha256", ErrBadModel, m.Name)
	}
	path := m.Path(wp.File)
	b, err := readModelFile(path, wp.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, path, err)
	}
	if int64(len(b)) != 4*s.WideRows {
		return nil, fmt.Errorf("%w: %s: %d bytes, want %d (wide_rows %d float32 values)", ErrBadModel, path, len(b), 4*s.WideRows, s.WideRows)
	}
	w := &gbdtWide{conv: conv, table: make([]float32, s.WideRows), bias: wp.Bias}
	for i := range w.table {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%w: %s: weight %d is %v", ErrBadModel, path, i, v)
		}
		w.table[i] = v
	}
	return w, nil
}

// logit is the wide part's logit for one row: bias plus one table lookup
// per wide column and cross, summed in float64. ids is scratch of
// conv.wideWidth() values. It does not allocate.
func (w *gbdtWide) logit(row []float32, ids []int32) float64 {
	var cols [wideDeepMaxColumns]int64
	c := w.conv
	wdColumns(c.cols, row, ids, &cols)
	wdCrosses(c.crosses, &cols, ids[len(c.cols):])
	sum := w.bias
	for _, id := range ids {
		sum += float64(w.table[id])
	}
	return sum
}
