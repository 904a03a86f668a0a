package ctr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// wideExplainer holds the wide part of a wide_deep_ids ONNX model, read
// from its graph (ctr/train/wide_deep_ids.py build()): the initializer
// "wide" (float32 [wide_rows], dense or sparse) and the bias, "bias" when
// the graph has no deep part, else "b_wide" (the deep part's last bias plus
// the model's bias, added with the wide sum).
type wideExplainer struct {
	conv *wideDeepConv
	wide []float32
	bias float64
	deep bool // the graph has a deep part: its term is the logit minus the wide part
}

func newWideExplainer(m *Manifest) (*wideExplainer, error) {
	conv, err := m.checkInputForm()
	if err != nil {
		return nil, err
	}
	b, err := gbdtReadModel(m) // size limit and sha256, as for any model file
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	inits, err := onnxInitializers(b, map[string]bool{"wide": true, "bias": true, "b_wide": true})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	w := &wideExplainer{conv: conv, wide: inits["wide"]}
	if int64(len(w.wide)) != m.WideDeepIDs.WideRows {
		return nil, fmt.Errorf("%w: %s: wide table of %d rows, manifest says %d", ErrBadModel, m.Path(m.File), len(w.wide), m.WideDeepIDs.WideRows)
	}
	bias, ok := inits["bias"]
	if b2, ok2 := inits["b_wide"]; ok2 {
		bias, ok, w.deep = b2, true, true
	}
	if !ok || len(bias) != 1 {
		return nil, fmt.Errorf("%w: %s: no bias initializer (bias or b_wide)", ErrBadModel, m.Path(m.File))
	}
	w.bias = float64(bias[0])
	return w, nil
}

func (w *wideExplainer) explain(name string, row []float32, pctr float32) Contributions {
	c := w.conv
	wide := make([]int32, c.wideWidth())
	deep := make([]int32, c.deepWidth())
	num := make([]float32, c.numWidth())
	c.put(row, wide, deep, num)
	out := Contributions{Model: name, Bias: w.bias}
	var sum float64
	for k, id := range wide {
		t := Contribution{Slot2: -1, Logit: float64(w.wide[id])}
		if k < len(c.cols) {
			t.Slot = c.cols[k].slot
		} else {
			x := c.crosses[k-len(c.cols)]
			t.Slot, t.Slot2 = c.cols[x.a].slot, c.cols[x.b].slot
		}
		t.Value = row[t.Slot]
		sum += t.Logit
		out.Terms = append(out.Terms, t)
	}
	if w.deep && pctr > 0 && pctr < 1 {
		p := float64(pctr)
		out.Terms = append(out.Terms, Contribution{Slot: -1, Slot2: -1, Logit: math.Log(p/(1-p)) - w.bias - sum})
	}
	out.finish()
	return out
}

// ONNX protobuf field numbers (onnx.proto3) read here.
const (
	pbModelGraph             = 7  // ModelProto.graph
	pbGraphInitializer       = 5  // GraphProto.initializer
	pbGraphSparseInitializer = 15 // GraphProto.sparse_initializer
	pbTensorDims             = 1
	pbTensorDataType         = 2
	pbTensorFloatData        = 4
	pbTensorInt64Data        = 7
	pbTensorName             = 8
	pbTensorRawData          = 9
	pbSparseValues           = 1
	pbSparseIndices          = 2
	pbSparseDims             = 3
	onnxFloat                = 1 // TensorProto.FLOAT
	onnxInt64                = 7 // TensorProto.INT64
)

// onnxInitializers reads the float initializers named in want from an ONNX
// model (dense ones, and sparse ones densified as ONNX Runtime does).
func onnxInitializers(model []byte, want map[string]bool) (map[string][]float32, error) {
	graph, err := pbField(model, pbModelGraph)
	if err != nil {
		return nil, err
	}
	out := map[string][]float32{}
	err = pbEach(graph, func(num protowire.Number, v []byte) error {
		switch num {
		case pbGraphInitializer:
			t, err := pbTensor(v)
			if err == nil && want[t.name] {
				out[t.name], err = t.floats()
			}
			return err
		case pbGraphSparseInitializer:
			return onnxSparse(v, want, out)
		}
		return nil
	})
	return out, err
}

// onnxFloatsFinite refuses a model whose float initializers (dense, and
// the values of sparse ones) hold a NaN or an infinity: the weights of a
// wide_deep_ids graph. Every occurrence of the graph field is read (a
// protobuf reader merges them).
func onnxFloatsFinite(model []byte) error {
	check := func(t pbTensorData) error {
		if t.dtype != onnxFloat {
			return nil
		}
		f, err := t.floats()
		if err != nil {
			return err
		}
		for i, v := range f {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("initializer %q: stored value %d is %v, not finite", t.name, i, v)
			}
		}
		return nil
	}
	return pbEach(model, func(num protowire.Number, graph []byte) error {
		if num != pbModelGraph {
			return nil
		}
		return pbEach(graph, func(num protowire.Number, v []byte) error {
			switch num {
			case pbGraphInitializer:
				t, err := pbTensor(v)
				if err != nil {
					return err
				}
				return check(t)
			case pbGraphSparseInitializer:
				return pbEach(v, func(num protowire.Number, b []byte) error {
					if num != pbSparseValues {
						return nil
					}
					t, err := pbTensor(b)
					if err != nil {
						return err
					}
					return check(t)
				})
			}
			return nil
		})
	})
}

func onnxSparse(v []byte, want map[string]bool, out map[string][]float32) error {
	var values, indices pbTensorData
	var dims []int64
	err := pbEach(v, func(num protowire.Number, b []byte) error {
		var err error
		switch num {
		case pbSparseValues:
			values, err = pbTensor(b)
		case pbSparseIndices:
			indices, err = pbTensor(b)
		case pbSparseDims:
			dims, err = pbInts(b, dims)
		}
		return err
	})
	if err != nil || !want[values.name] {
		return err
	}
	vals, err := values.floats()
	if err != nil {
		return err
	}
	idx, err := indices.int64s()
	if err != nil {
		return err
	}
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	if len(dims) != 1 || n < 0 || n > 1<<28 || len(idx) != len(vals) {
		return fmt.Errorf("sparse initializer %q: dims %v, %d indices, %d values", values.name, dims, len(idx), len(vals))
	}
	dense := make([]float32, n)
	for i, j := range idx {
		if j < 0 || j >= n {
			return fmt.Errorf("sparse initializer %q: index %d outside %d", values.name, j, n)
		}
		dense[j] = vals[i]
	}
	out[values.name] = dense
	return nil
}

// pbTensorData is the part of a TensorProto read here.
type pbTensorData struct {
	name     string
	dtype    uint64
	dims     []int64
	raw      []byte
	floatsPB []float32
	int64PB  []int64
}

func pbTensor(b []byte) (pbTensorData, error) {
	var t pbTensorData
	err := pbEach(b, func(num protowire.Number, v []byte) error {
		var err error
		switch num {
		case pbTensorName:
			t.name = string(v)
		case pbTensorRawData:
			t.raw = v
		case pbTensorDims:
			t.dims, err = pbInts(v, t.dims)
		case pbTensorDataType:
			t.dtype, _ = protowire.ConsumeVarint(v)
		case pbTensorFloatData:
			for len(v) >= 4 { // packed fixed32
				t.floatsPB = append(t.floatsPB, math.Float32frombits(binary.LittleEndian.Uint32(v)))
				v = v[4:]
			}
		case pbTensorInt64Data:
			var ints []int64
			ints, err = pbInts(v, nil)
			t.int64PB = append(t.int64PB, ints...)
		}
		return err
	})
	return t, err
}

func (t pbTensorData) floats() ([]float32, error) {
	if t.dtype != onnxFloat {
		return nil, fmt.Errorf("initializer %q: data type %d, want float", t.name, t.dtype)
	}
	if t.raw == nil {
		return t.floatsPB, nil
	}
	if len(t.raw)%4 != 0 {
		return nil, fmt.Errorf("initializer %q: %d raw bytes", t.name, len(t.raw))
	}
	out := make([]float32, len(t.raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.raw[4*i:]))
	}
	return out, nil
}

func (t pbTensorData) int64s() ([]int64, error) {
	if t.dtype != onnxInt64 {
		return nil, fmt.Errorf("initializer %q: data type %d, want int64", t.name, t.dtype)
	}
	if t.raw == nil {
		return t.int64PB, nil
	}
	if len(t.raw)%8 != 0 {
		return nil, fmt.Errorf("initializer %q: %d raw bytes", t.name, len(t.raw))
	}
	out := make([]int64, len(t.raw)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.raw[8*i:]))
	}
	return out, nil
}

var errPB = errors.New("malformed protobuf")

// pbEach calls f with every field of message b: the varint's bytes for a
// varint field (so a packed and an unpacked repeated field read alike),
// the contents of a length-delimited one, the 4 or 8 bytes of a fixed one.
func pbEach(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errPB
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				v = b[:n]
			}
		}
		if n < 0 {
			return errPB
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// pbField returns the contents of the first length-delimited field num.
func pbField(b []byte, num protowire.Number) ([]byte, error) {
	var out []byte
	found := false
	err := pbEach(b, func(n protowire.Number, v []byte) error {
		if n == num && !found {
			out, found = v, true
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("no field %d", num)
	}
	return out, err
}

// pbInts appends the varints in b (one, or a packed run) to dst.
func pbInts(b []byte, dst []int64) ([]int64, error) {
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return dst, errPB
		}
		dst = append(dst, int64(v))
		b = b[n:]
	}
	return dst, nil
}
