package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The bidder's own view of a measurement: its /metrics text read before and
// after a step, and the difference. Counters and histogram buckets are
// cumulative, so the difference is what happened in between.

// latencyHist is the bidder's request-duration histogram (bidder/metrics.go).
const latencyHist = "openbidder_request_duration_seconds"

// series maps a series ("name" or "name{labels}", as written) to its value.
type series map[string]float64

// parseMetrics reads the Prometheus text exposition format, keeping only the
// series whose name has one of the given prefixes (the 10,000 per-campaign
// series of a large bidder are not needed). Comments are skipped.
func parseMetrics(r io.Reader, prefixes ...string) (series, error) {
	out := series{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !hasPrefix(line, prefixes) {
			continue
		}
		// The value follows the last space outside the labels (label values
		// may hold spaces, the value never does).
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

func hasPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// sub is after - before, series by series (a series missing before counts
// from 0).
func (after series) sub(before series) series {
	d := make(series, len(after))
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// sum adds every series of a name, whatever its labels.
func (s series) sum(name string) float64 {
	t := 0.0
	for k, v := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			t += v
		}
	}
	return t
}

// byLabel is the series of a name by the value of one label, zeros left out.
func (s series) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range s {
		if !strings.HasPrefix(k, name+"{") || v == 0 {
			continue
		}
		if lv, ok := labelOf(k, label); ok {
			out[lv] += v
		}
	}
	return out
}

// labelOf is the value of label in a series key (no escapes handled: the
// labels read here are plain words and numbers).
func labelOf(key, label string) (string, bool) {
	i := strings.Index(key, label+`="`)
	if i < 0 || (i > 0 && key[i-1] != '{' && key[i-1] != ',') {
		return "", false
	}
	rest := key[i+len(label)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// bucket is one histogram bucket: the observations in (Lower, Upper].
// Upper is +Inf for the last.
type bucket struct {
	Lower, Upper float64 // seconds
	Count        float64
}

// histogram is a cumulative Prometheus histogram turned into per-bucket
// counts, ordered by bound.
type histogram []bucket

var errNoHistogram = errors.New("metrics: histogram not found")

// histogramOf reads the buckets of a histogram named name from s.
func histogramOf(s series, name string) (histogram, error) {
	type cum struct{ le, n float64 }
	var cs []cum
	for k, v := range s {
		if !strings.HasPrefix(k, name+"_bucket{") {
			continue
		}
		le, ok := labelOf(k, "le")
		if !ok {
			return nil, fmt.Errorf("metrics: %s without le", k)
		}
		b, err := strconv.ParseFloat(le, 64) // accepts "+Inf"
		if err != nil {
			return nil, fmt.Errorf("metrics: %s: %w", k, err)
		}
		cs = append(cs, cum{b, v})
	}
	if len(cs) == 0 {
		return nil, errNoHistogram
	}
	slices.SortFunc(cs, func(a, b cum) int { return cmpFloat(a.le, b.le) })
	h := make(histogram, len(cs))
	lower, prev := 0.0, 0.0
	for i, c := range cs {
		h[i] = bucket{Lower: lower, Upper: c.le, Count: c.n - prev}
		lower, prev = c.le, c.n
	}
	return h, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Total is the number of observations.
func (h histogram) Total() float64 {
	t := 0.0
	for _, b := range h {
		t += b.Count
	}
	return t
}

// Quantile is the bucket holding the q-quantile (0 < q <= 1): the true value
// lies in (Lower, Upper]. It also returns an estimate interpolated linearly
// inside the bucket, as Prometheus's histogram_quantile does (the lower
// bound when the bucket is +Inf). ok is false on an empty histogram.
func (h histogram) Quantile(q float64) (b bucket, est float64, ok bool) {
	total := h.Total()
	if total <= 0 {
		return bucket{}, 0, false
	}
	rank := q * total
	seen := 0.0
	for _, b := range h {
		if b.Count > 0 && seen+b.Count >= rank {
			if math.IsInf(b.Upper, 1) {
				return b, b.Lower, true
			}
			return b, b.Lower + (b.Upper-b.Lower)*(rank-seen)/b.Count, true
		}
		seen += b.Count
	}
	last := h[len(h)-1]
	return last, last.Lower, true
}

// Over is the number of observations known to exceed d (in buckets whose
// lower bound is at least d) and the number that may (in the bucket that
// straddles d).
func (h histogram) Over(d time.Duration) (known, maybe float64) {
	s := d.Seconds()
	for _, b := range h {
		switch {
		case b.Lower >= s:
			known += b.Count
		case b.Upper > s:
			maybe += b.Count
		}
	}
	return known, maybe
}

// serverLatency is the bidder's histogram over one step, summarised.
type serverLatency struct {
	Count float64 `json:"count"`
	// Each percentile is the bucket that holds it, in microseconds: the
	// value is above Lo and at most Hi (Hi -1: +Inf); Est interpolates.
	P50  bucketQ `json:"p50"`
	P99  bucketQ `json:"p99"`
	P999 bucketQ `json:"p99_9"`
	Max  bucketQ `json:"max"`
	// Over10ms are the observations above 10 ms (known), and those in a
	// bucket that straddles 10 ms (maybe; 0 with the bidder's bounds).
	Over10ms      float64   `json:"over_10ms"`
	Over10msMaybe float64   `json:"over_10ms_maybe"`
	Bounds        []float64 `json:"bounds_us"` // the histogram's bucket bounds
}

// bucketQ is one percentile read from a histogram.
type bucketQ struct {
	Lo  float64 `json:"lo_us"`
	Hi  float64 `json:"hi_us"` // -1: above the last finite bound
	Est float64 `json:"est_us"`
}

func summarise(h histogram) serverLatency {
	var s serverLatency
	s.Count = h.Total()
	q := func(p float64) bucketQ {
		b, est, ok := h.Quantile(p)
		if !ok {
			return bucketQ{}
		}
		hi := b.Upper * 1e6
		if math.IsInf(b.Upper, 1) {
			hi = -1
		}
		return bucketQ{Lo: b.Lower * 1e6, Hi: hi, Est: est * 1e6}
	}
	s.P50, s.P99, s.P999, s.Max = q(0.5), q(0.99), q(0.999), q(1)
	s.Over10ms, s.Over10msMaybe = h.Over(10 * time.Millisecond)
	for _, b := range h {
		if !math.IsInf(b.Upper, 1) {
			s.Bounds = append(s.Bounds, b.Upper*1e6)
		}
	}
	return s
}

// atMost says whether a percentile read from buckets is at most limit:
// yes when its bucket's upper bound is, no when its lower bound is not
// below it, unknown (ok false) when the bucket straddles the limit.
func (b bucketQ) atMost(limit time.Duration) (yes, ok bool) {
	l := float64(limit.Microseconds())
	switch {
	case b.Hi >= 0 && b.Hi <= l:
		return true, true
	case b.Lo >= l:
		return false, true
	}
	return false, false
}
