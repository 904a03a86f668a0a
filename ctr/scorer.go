// Package ctr predicts click-through rates for fixed-width feature rows.
// It knows feature vectors, never requests or budgets.
package ctr

import (
	"errors"
	"time"
)

// Sentinel errors.
var (
	ErrDeadline    = errors.New("ctr: deadline too close to score")
	ErrSchema      = errors.New("ctr: model feature schema does not match the extractor")
	ErrBadModel    = errors.New("ctr: model file refused")
	ErrUnavailable = errors.New("ctr: scorer unavailable")
)

// Scorer scores a batch of candidate rows in one call.
//
// rows holds len(out) rows of Width() float32 values each, row-major.
// Score writes one pCTR in [0,1] per row into out. It must return
// ErrDeadline (without scoring) when it cannot finish before deadline, and
// must not allocate on the steady-state path. Implementations are safe for
// concurrent use.
type Scorer interface {
	Score(deadline time.Time, rows []float32, out []float32) error
	Width() int
	Name() string
}
