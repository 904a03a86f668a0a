package ctr

import (
	"errors"
	"math"
	"testing"
	"time"
)

// chainConst answers a constant, or err.
type chainConst struct {
	v       float32
	width   int
	err     error
	predict time.Duration
}

func (c *chainConst) Name() string                     { return "const" }
func (c *chainConst) Width() int                       { return c.width }
func (c *chainConst) PredictLatency(int) time.Duration { return c.predict }
func (c *chainConst) Score(_ time.Time, _, out []float32) error {
	if c.err != nil {
		return c.err
	}
	for i := range out {
		out[i] = c.v
	}
	return nil
}

func TestChainFallsBackByReason(t *testing.T) {
	boom := errors.New("boom")
	f := func(name string, primary *chainConst, fallback Scorer, slack time.Duration, wantV float32, wantErr error, want ChainStats) {
		t.Helper()
		var p PredictingScorer
		if primary != nil {
			p = primary
		}
		c, err := NewChain(p, fallback)
		if err != nil {
			t.Fatal(err)
		}
		out := []float32{-1, -1}
		err = c.Score(time.Now().Add(slack), make([]float32, 4), out)
		if !errors.Is(err, wantErr) || (err == nil && out[1] != wantV) {
			t.Errorf("%s: out %v err %v, want %v %v", name, out, err, wantV, wantErr)
		}
		if got := c.Stats(); got != want {
			t.Errorf("%s: stats %+v, want %+v", name, got, want)
		}
	}
	gbdt := &chainConst{v: 0.2, width: 2}
	f("fits", &chainConst{v: 0.1, width: 2, predict: time.Millisecond}, gbdt, time.Second, 0.1, nil,
		ChainStats{Primary: 1})
	f("slack short", &chainConst{v: 0.1, width: 2, predict: time.Second}, gbdt, time.Millisecond, 0.2, nil,
		ChainStats{Fallback: 1, FallSlack: 1})
	f("primary deadline", &chainConst{width: 2, err: ErrDeadline}, gbdt, time.Second, 0.2, nil,
		ChainStats{Fallback: 1, FallDeadline: 1})
	f("primary queue full", &chainConst{width: 2, err: ErrQueueFull}, gbdt, time.Second, 0.2, nil,
		ChainStats{Fallback: 1, FallQueueFull: 1})
	f("primary unavailable", &chainConst{width: 2, err: ErrUnavailable}, gbdt, time.Second, 0.2, nil,
		ChainStats{Fallback: 1, FallUnavailable: 1})
	f("primary error", &chainConst{width: 2, err: boom}, gbdt, time.Second, 0.2, nil,
		ChainStats{Fallback: 1, FallError: 1})
	f("no primary", nil, gbdt, time.Second, 0.2, nil, ChainStats{Fallback: 1, FallUnavailable: 1})
	f("both fail", &chainConst{width: 2, predict: time.Second}, &chainConst{width: 2, err: ErrDeadline},
		time.Millisecond, 0, ErrDeadline, ChainStats{NoScore: 1, FallSlack: 1})
	f("no fallback", &chainConst{width: 2, predict: time.Second}, nil, time.Millisecond, 0, ErrDeadline,
		ChainStats{NoScore: 1, FallSlack: 1})
}

func TestChainRefusesBadPairs(t *testing.T) {
	if _, err := NewChain(nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no scorers: %v", err)
	}
	if _, err := NewChain(&chainConst{width: 3}, &chainConst{width: 4}); !errors.Is(err, ErrSchema) {
		t.Errorf("width mismatch: %v", err)
	}
	c, err := NewChain(&chainConst{width: 3, predict: 7}, &chainConst{width: 3})
	if err != nil || c.Name() != "const>const" || c.Width() != 3 || c.PredictLatency(1) != 7 {
		t.Errorf("chain %v %q %d", err, c.Name(), c.Width())
	}
}

func TestChainOverBatcherFallsBackWhenModelBlocks(t *testing.T) {
	f := &batchFake{width: 2, gate: make(chan struct{}), entered: make(chan struct{}, 8)}
	b := batchNew(t, f, BatchOptions{MaxBatch: 4, MaxWait: -1})
	c, err := NewChain(b, &chainConst{v: 0.5, width: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 1)
	if err := c.Score(time.Now().Add(20*time.Millisecond), make([]float32, 2), out); err != nil || out[0] != 0.5 {
		t.Fatalf("out %v err %v", out, err)
	}
	if st := c.Stats(); st.Fallback != 1 || st.FallDeadline != 1 {
		t.Fatalf("stats %+v", st)
	}
	close(f.gate)
}

// A pCTR that is not a probability (NaN, negative, over 1) is not handed
// on: the primary's answer falls to the fallback, counted as bad_output,
// and a fallback's is no score. Before, a model whose wide table held a NaN
// for one campaign id (its parity rows never touched it) loaded and served
// that campaign NaN: priced as below the floor without a word, summed into
// openbidder_predicted_ctr's _sum as 9.2e12, and answered by
// /admin/explain as an empty 200 (an outside audit).
func TestChainRefusesPCTROutsideZeroOne(t *testing.T) {
	nan := float32(math.NaN())
	for _, v := range []float32{nan, float32(math.Inf(1)), float32(math.Inf(-1)), -0.01, 1.5} {
		c, err := NewChain(&chainConst{v: v, width: 2}, &chainConst{v: 0.25, width: 2})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, 3)
		by, err := c.ScoreBy(time.Now().Add(time.Second), make([]float32, 6), out)
		if err != nil || by != ScoredFallback || out[0] != 0.25 || out[2] != 0.25 {
			t.Errorf("primary answering %v: by %v, err %v, out %v; want the fallback's 0.25", v, by, err, out)
		}
		if st := c.Stats(); st.FallBadOutput != 1 || st.Primary != 0 || st.Fallback != 1 {
			t.Errorf("primary answering %v: stats %+v", v, st)
		}
		c, _ = NewChain(nil, &chainConst{v: v, width: 2})
		if by, err := c.ScoreBy(time.Now().Add(time.Second), make([]float32, 6), out); !errors.Is(err, ErrBadOutput) || by != ScoredNone {
			t.Errorf("fallback answering %v: by %v, err %v; want ErrBadOutput", v, by, err)
		}
	}
	for _, v := range []float32{0, 1, 0.5} {
		c, _ := NewChain(&chainConst{v: v, width: 2}, &chainConst{v: 0.25, width: 2})
		out := make([]float32, 1)
		if by, err := c.ScoreBy(time.Time{}, make([]float32, 2), out); err != nil || by != ScoredPrimary || out[0] != v {
			t.Errorf("primary answering %v: by %v, err %v, out %v", v, by, err, out)
		}
	}
}
