package ctr

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// refusalNoter is a PredictingScorer told when a caller declined it
// because PredictLatency(rows) did not fit the slack: its estimate measures
// nothing while it is declined, so it lowers it a little each time (the
// Batcher and ONNX: onnxDecay; the GBDT decays its own on its refusals).
type refusalNoter interface{ noteRefusal(rows int) }

// PredictingScorer is a Scorer that can say how long a call would take:
// *Batcher, *Holder and *ONNX are ones.
type PredictingScorer interface {
	Scorer
	LatencyPredictor
}

// Chain degrades in order: the primary (ONNX micro-batch) when its
// predicted latency fits the remaining slack, else the fallback (GBDT), else
// ErrDeadline so the caller no-bids. Every fall is counted by reason.
type Chain struct {
	primary  PredictingScorer // nil: fallback only
	fallback Scorer           // nil: no fallback
	width    int

	served                                          [2]chainCounter // primary, fallback
	noScore                                         chainCounter
	fallSlack, fallDeadline, fallQueue, fallUnavail chainCounter
	fallError, fallBadOutput                        chainCounter
}

// ErrBadOutput is a scorer's answer with a pCTR that is not a probability
// (NaN, negative or over 1): the Chain does not hand it on.
var ErrBadOutput = fmt.Errorf("%w: a pCTR outside [0, 1] (NaN, negative or over 1)", ErrBadModel)

// ValidPCTR reports whether every value of out is a probability, in [0, 1]
// (NaN is not). The Scorer contract says so; a model file that passed its
// parity sample can still break it on rows the sample does not have (a NaN
// weight for one campaign id), and a NaN pCTR went on into pricing, the
// pCTR histogram's sum and the row log (an outside audit).
func ValidPCTR(out []float32) bool {
	for _, p := range out {
		if !(p >= 0 && p <= 1) {
			return false
		}
	}
	return true
}

// chainCounter is padded so counters bumped by concurrent requests do not
// share a cache line.
type chainCounter struct {
	n atomic.Uint64
	_ [56]byte
}

var _ PredictingScorer = (*Chain)(nil)

// NewChain builds the fallback chain. Either scorer may be nil (no ONNX
// library: fallback only; no GBDT model: primary or no-bid), not both. A
// primary of width 0 is a Holder with no model yet (its first load was
// refused; it loads when its files change): the chain takes the fallback's
// width, and the Holder's loader checks a model's width against the schema.
func NewChain(primary PredictingScorer, fallback Scorer) (*Chain, error) {
	c := &Chain{primary: primary, fallback: fallback}
	switch {
	case primary == nil && fallback == nil:
		return nil, fmt.Errorf("%w: chain needs a primary or a fallback scorer", ErrUnavailable)
	case primary != nil && fallback != nil && primary.Width() != 0 && primary.Width() != fallback.Width():
		return nil, fmt.Errorf("%w: chain primary %s width %d, fallback %s width %d",
			ErrSchema, primary.Name(), primary.Width(), fallback.Name(), fallback.Width())
	case primary != nil && primary.Width() != 0:
		c.width = primary.Width()
	case fallback != nil:
		c.width = fallback.Width()
	default:
		return nil, fmt.Errorf("%w: chain primary %s has no model and there is no fallback", ErrUnavailable, primary.Name())
	}
	return c, nil
}

// Name is "primary>fallback", of the models serving now (a Holder's changes
// with a reload; "none" for no primary, or a Holder with no model).
func (c *Chain) Name() string {
	name := "none"
	if c.primary != nil {
		name = c.primary.Name()
	}
	if c.fallback != nil {
		name += ">" + c.fallback.Name()
	}
	return name
}

// Width is the row width.
func (c *Chain) Width() int { return c.width }

// PredictLatency is the primary's prediction, or 0 without a primary.
func (c *Chain) PredictLatency(rows int) time.Duration {
	if c.primary == nil {
		return 0
	}
	return c.primary.PredictLatency(rows)
}

// Score implements Scorer. It returns the fallback's error (ErrDeadline
// when there was no time left) when neither scorer answered.
func (c *Chain) Score(deadline time.Time, rows []float32, out []float32) error {
	_, err := c.ScoreBy(deadline, rows, out)
	return err
}

// Scored tells which of a Chain's scorers answered a call (ScoreBy).
type Scored int8

const (
	ScoredNone     Scored = iota // neither (an error), or not a Chain
	ScoredPrimary                // the primary (ONNX)
	ScoredFallback               // the fallback (GBDT)
)

// ScoreBy is Score, telling which scorer answered: the row log names the
// model whose pCTR it logs (the one in front of the chain was named, and
// under load most rows of an outside audit's closed loop had been scored
// by the fallback).
func (c *Chain) ScoreBy(deadline time.Time, rows []float32, out []float32) (Scored, error) {
	err := ErrUnavailable
	if c.primary != nil {
		if deadline.IsZero() || c.primary.PredictLatency(len(out)) <= time.Until(deadline) {
			if err = c.primary.Score(deadline, rows, out); err == nil && ValidPCTR(out) {
				c.served[0].n.Add(1)
				return ScoredPrimary, nil
			}
			if err == nil {
				err = ErrBadOutput
				c.fallBadOutput.n.Add(1)
			} else {
				c.countFall(err)
			}
		} else {
			err = ErrDeadline
			c.fallSlack.n.Add(1)
			if r, ok := c.primary.(refusalNoter); ok {
				r.noteRefusal(len(out))
			}
		}
	} else {
		c.fallUnavail.n.Add(1)
	}
	if c.fallback == nil {
		c.noScore.n.Add(1)
		return ScoredNone, err
	}
	if err = c.fallback.Score(deadline, rows, out); err == nil && !ValidPCTR(out) {
		err = ErrBadOutput
	}
	if err != nil {
		c.noScore.n.Add(1)
		return ScoredNone, err
	}
	c.served[1].n.Add(1)
	return ScoredFallback, nil
}

func (c *Chain) countFall(err error) {
	switch {
	case errors.Is(err, ErrDeadline):
		c.fallDeadline.n.Add(1)
	case errors.Is(err, ErrQueueFull):
		c.fallQueue.n.Add(1)
	case errors.Is(err, ErrUnavailable):
		c.fallUnavail.n.Add(1)
	default:
		c.fallError.n.Add(1)
	}
}

// ChainStats counts calls by outcome and falls from the primary by reason.
type ChainStats struct {
	Primary  uint64 // answered by the primary
	Fallback uint64 // answered by the fallback
	NoScore  uint64 // answered by neither: the caller no-bids
	// Falls from the primary, by reason.
	FallSlack       uint64 // predicted latency did not fit the slack
	FallDeadline    uint64 // the primary returned ErrDeadline
	FallQueueFull   uint64 // the batcher's queue was full
	FallUnavailable uint64 // no primary, no model loaded, or closed
	FallError       uint64 // any other error from the primary
	FallBadOutput   uint64 // the primary answered a pCTR outside [0, 1] (ErrBadOutput)
}

// Stats returns the counters.
func (c *Chain) Stats() ChainStats {
	return ChainStats{
		Primary: c.served[0].n.Load(), Fallback: c.served[1].n.Load(), NoScore: c.noScore.n.Load(),
		FallSlack: c.fallSlack.n.Load(), FallDeadline: c.fallDeadline.n.Load(),
		FallQueueFull: c.fallQueue.n.Load(), FallUnavailable: c.fallUnavail.n.Load(),
		FallError: c.fallError.n.Load(), FallBadOutput: c.fallBadOutput.n.Load(),
	}
}
