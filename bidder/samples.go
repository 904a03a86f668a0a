package bidder

import (
	"math"
	"sort"
	"strconv"

	dto "github.com/prometheus/client_model/go"
)

// Sample is one series of /metrics as a Go value, named as on the page: a
// histogram appears as its NAME_bucket (label le), NAME_sum and NAME_count
// series, a summary as NAME (label quantile), NAME_sum and NAME_count.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is a gathering of every series /metrics shows.
type Samples []Sample

// Metrics gathers the figures /metrics shows, from the same collectors,
// without going through the text: for a status page or a kill switch that
// reads them in process. Names are those of docs/metrics.md.
func (s *Server) Metrics() (Samples, error) {
	mfs, err := s.reg.Gather()
	var out Samples
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			lb := make(map[string]string, len(m.GetLabel())+1)
			for _, l := range m.GetLabel() {
				lb[l.GetName()] = l.GetValue()
			}
			out = appendSamples(out, name, lb, m)
		}
	}
	return out, err
}

func appendSamples(out Samples, name string, lb map[string]string, m *dto.Metric) Samples {
	with := func(k, v string) map[string]string {
		c := make(map[string]string, len(lb)+1)
		for a, b := range lb {
			c[a] = b
		}
		c[k] = v
		return c
	}
	switch {
	case m.Counter != nil:
		return append(out, Sample{name, lb, m.Counter.GetValue()})
	case m.Gauge != nil:
		return append(out, Sample{name, lb, m.Gauge.GetValue()})
	case m.Untyped != nil:
		return append(out, Sample{name, lb, m.Untyped.GetValue()})
	case m.Histogram != nil:
		h := m.Histogram
		for _, b := range h.GetBucket() {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue // written below from the count
			}
			out = append(out, Sample{name + "_bucket", with("le", formatFloat(b.GetUpperBound())), float64(b.GetCumulativeCount())})
		}
		out = append(out, Sample{name + "_bucket", with("le", "+Inf"), float64(h.GetSampleCount())})
		return append(out, Sample{name + "_sum", lb, h.GetSampleSum()}, Sample{name + "_count", lb, float64(h.GetSampleCount())})
	case m.Summary != nil:
		sm := m.Summary
		for _, q := range sm.GetQuantile() {
			out = append(out, Sample{name, with("quantile", formatFloat(q.GetQuantile())), q.GetValue()})
		}
		return append(out, Sample{name + "_sum", lb, sm.GetSampleSum()}, Sample{name + "_count", lb, float64(sm.GetSampleCount())})
	}
	return out
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// matches reports whether the sample has every label pair of kv
// ("reason", "budget", ...).
func (x *Sample) matches(name string, kv []string) bool {
	if x.Name != name {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if x.Labels[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

// Value is the first series named name whose labels include the pairs kv;
// false when there is none.
func (ss Samples) Value(name string, kv ...string) (float64, bool) {
	for i := range ss {
		if ss[i].matches(name, kv) {
			return ss[i].Value, true
		}
	}
	return 0, false
}

// Sum adds every series named name whose labels include the pairs kv.
func (ss Samples) Sum(name string, kv ...string) float64 {
	var t float64
	for i := range ss {
		if ss[i].matches(name, kv) {
			t += ss[i].Value
		}
	}
	return t
}

// Quantile estimates the q-quantile of histogram name (its _bucket
// series) by linear interpolation inside the bucket that holds it, as
// PromQL's histogram_quantile does; NaN when the histogram is empty or
// absent.
func (ss Samples) Quantile(name string, q float64, kv ...string) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for i := range ss {
		if !ss[i].matches(name+"_bucket", kv) {
			continue
		}
		le, err := strconv.ParseFloat(ss[i].Labels["le"], 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, ss[i].Value})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].n
	lo, prev := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return lo // above the highest bound: its bound, as PromQL does
			}
			if b.n == prev {
				return b.le
			}
			return lo + (b.le-lo)*(rank-prev)/(b.n-prev)
		}
		lo, prev = b.le, b.n
	}
	return lo
}
