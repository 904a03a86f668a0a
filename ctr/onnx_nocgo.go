//go:build !cgo

package ctr

import (
	"fmt"
	"time"
)

// ONNX is unavailable in builds without cgo: ONNX Runtime is loaded through
// cgo. LoadONNX returns ErrUnavailable, so the bidder runs on GBDT only.
type ONNX struct{}

var _ Scorer = (*ONNX)(nil)

var errONNXNoCgo = fmt.Errorf("%w: built without cgo, onnx runtime cannot load", ErrUnavailable)

// ONNXAvailable reports why ONNX Runtime cannot load: this build has no cgo.
func ONNXAvailable(string) error { return errONNXNoCgo }

// LoadONNX returns ErrUnavailable in builds without cgo.
func LoadONNX(string, ONNXOptions) (*ONNX, error) { return nil, errONNXNoCgo }

func (*ONNX) Provider() string                            { return "" }
func (*ONNX) Name() string                                { return "onnx" }
func (*ONNX) Width() int                                  { return 0 }
func (*ONNX) MaxBatch() int                               { return 0 }
func (*ONNX) Manifest() *Manifest                         { return nil }
func (*ONNX) PredictLatency(int) time.Duration            { return 0 }
func (*ONNX) Score(time.Time, []float32, []float32) error { return errONNXNoCgo }
func (*ONNX) Close() error                                { return nil }
