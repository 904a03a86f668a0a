package simulator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// GenLine is one line of a `simulator gen` file.
type GenLine struct {
	T       float64         `json:"t"`      // send offset, seconds since start
	SimTS   int64           `json:"sim_ts"` // simulated unix seconds
	Version string          `json:"version"`
	Gzip    bool            `json:"gzip"`
	Request json.RawMessage `json:"request"`
}

// Generate writes n generated requests from cfg's traffic model as JSONL.
func Generate(w io.Writer, cfg Config, n int) error {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultConfig.Rate
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	src := NewGenSource(cfg)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := 0; i < n; i++ {
		og, at, _ := src.Next()
		if err := enc.Encode(GenLine{T: at, SimTS: og.SimTime, Version: og.Version, Gzip: og.Gzip, Request: og.Body}); err != nil {
			return fmt.Errorf("simulator: gen: %w", err)
		}
	}
	return bw.Flush()
}

// ReplaySource sends recorded requests: at their recorded offsets, or on a
// fresh Poisson schedule when rate > 0. It loops over the file at most
// loops times (1 by default).
type ReplaySource struct {
	lines []GenLine
	reqs  []*openrtb2.BidRequest
	i     int
	seq   uint64
	rate  float64
	rng   *rand.Rand
	t     float64
	loops int
	span  float64
}

// NewReplaySource reads the whole file (it is bounded by what gen wrote).
func NewReplaySource(r io.Reader, rate float64, seed uint64, loops int) (*ReplaySource, error) {
	src := &ReplaySource{rate: rate, rng: rand.New(rand.NewPCG(seed, 0x4e71a7)), loops: max(loops, 1)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var l GenLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("simulator: replay line %d: %w", n, err)
		}
		var req openrtb2.BidRequest
		if err := json.Unmarshal(l.Request, &req); err != nil {
			return nil, fmt.Errorf("simulator: replay line %d request: %w", n, err)
		}
		if l.Version == "" {
			l.Version = "2.6"
		}
		src.lines, src.reqs = append(src.lines, l), append(src.reqs, &req)
		src.span = max(src.span, l.T)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("simulator: replay read: %w", err)
	}
	return src, nil
}

// Span is the offset of the last recorded request, in seconds.
func (s *ReplaySource) Span() float64 { return s.span }

// Len is the number of recorded requests.
func (s *ReplaySource) Len() int { return len(s.lines) }

// Next implements Source.
func (s *ReplaySource) Next() (*Outgoing, float64, bool) {
	if len(s.lines) == 0 || s.i >= len(s.lines)*s.loops {
		return nil, 0, false
	}
	k := s.i % len(s.lines)
	loop := s.i / len(s.lines)
	s.i++
	s.seq++
	l := s.lines[k]
	at := l.T + float64(loop)*s.span
	if s.rate > 0 {
		s.t += s.rng.ExpFloat64() / s.rate
		at = s.t
	}
	return &Outgoing{Seq: s.seq, Body: l.Request, Version: l.Version, Gzip: l.Gzip, Req: s.reqs[k], SimTime: l.SimTS}, at, true
}
