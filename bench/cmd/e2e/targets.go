package main

import (
	"fmt"
	"math"
	"time"
)

// The targets. They are a report, not a test: a MISS is a finding.
const (
	minRatio1k   = 0.5  // saturation / trivial at 1,000 campaigns
	minRatio10k  = 0.4  // at 10,000
	minBidShare  = 0.90 // of the measured requests, for a saturation to count
	maxIdleCPU   = 2.0  // percent of a core, idle at 10,000 campaigns
	maxIdleRSS   = 256  // MiB
	halfLoad     = 0.5  // the open-loop step the latency targets apply to
	maxP99       = time.Millisecond
	maxP999      = 3 * time.Millisecond
	maxOutlier   = 10 * time.Millisecond
	idleTargetAt = 10000
)

func findServer(res *result, name string, n int) *serverRun {
	for i := range res.Servers {
		if s := &res.Servers[i]; s.Name == name && s.Campaigns == n && s.Error == "" {
			return s
		}
	}
	return nil
}

// evaluate checks the figures against the targets.
func evaluate(res *result) []target {
	var ts []target
	for _, c := range []struct {
		n   int
		min float64
	}{{1000, minRatio1k}, {10000, minRatio10k}} {
		t := target{Name: fmt.Sprintf("saturation, %d campaigns, bundled models", c.n),
			Want: fmt.Sprintf(">= %.1fx the trivial server, >= %.0f%% bidding", c.min, 100*minBidShare), Status: "SKIP", Got: "not measured"}
		if s := findServer(res, "bidder", c.n); s != nil && s.Closed.Ratio > 0 {
			t.Got = fmt.Sprintf("%.2fx (%.0f req/s), %.1f%% bidding", s.Closed.Ratio, s.Closed.Wrk.ReqPerSec, 100*s.Closed.BidShare)
			if s.Closed.BesideRatio > 0 {
				// Reported, not judged: the target is the run's ratio, as stated.
				t.Got += fmt.Sprintf("; %.2fx the trivial run beside it", s.Closed.BesideRatio)
			}
			t.Status = passMiss(s.Closed.Ratio >= c.min && s.Closed.BidShare >= minBidShare)
		}
		ts = append(ts, t)
	}
	cpu := target{Name: fmt.Sprintf("idle CPU, %d campaigns", idleTargetAt), Want: fmt.Sprintf("<= %.0f%% of a core", maxIdleCPU),
		Status: "SKIP", Got: "not measured"}
	rss := target{Name: fmt.Sprintf("idle RSS, %d campaigns", idleTargetAt), Want: fmt.Sprintf("<= %d MiB", maxIdleRSS),
		Status: "SKIP", Got: "not measured"}
	if ir := res.Idle; ir != nil && ir.Campaigns == idleTargetAt {
		cpu.Got, cpu.Status = fmt.Sprintf("%.2f%% over %.0f s", ir.CPUPercent, ir.Window), passMiss(ir.CPUPercent <= maxIdleCPU)
		rss.Got, rss.Status = fmt.Sprintf("%.0f MiB", ir.RSSMiB), passMiss(ir.RSSMiB <= maxIdleRSS)
	}
	ts = append(ts, cpu, rss)
	for _, s := range res.Servers {
		if s.Name != "bidder" || len(s.Ladder) == 0 {
			continue
		}
		ts = append(ts, latencyTargets(s)...)
	}
	return ts
}

// latencyTargets are the open-loop targets at half of saturation, read from
// the bidder's histogram.
func latencyTargets(s serverRun) []target {
	name := fmt.Sprintf("open loop at %.0f%% of saturation, %d campaigns, bidder histogram:", 100*halfLoad, s.Campaigns)
	ts := []target{
		{Name: name + " p99", Want: "<= " + maxP99.String(), Status: "SKIP", Got: "no step at half load"},
		{Name: name + " p99.9", Want: "<= " + maxP999.String(), Status: "SKIP", Got: "no step at half load"},
		{Name: name + " over " + maxOutlier.String(), Want: "none", Status: "SKIP", Got: "no step at half load"},
	}
	var st *ladderStep
	for i := range s.Ladder {
		if math.Abs(s.Ladder[i].Fraction-halfLoad) < 1e-9 {
			st = &s.Ladder[i]
		}
	}
	if st == nil || st.Server == nil || st.Server.Count == 0 {
		return ts
	}
	q := func(t *target, b bucketQ, limit time.Duration) {
		yes, ok := b.atMost(limit)
		t.Got = "in " + b.Range()
		switch {
		case !ok:
			t.Status = "UNSURE"
		default:
			t.Status = passMiss(yes)
		}
	}
	q(&ts[0], st.Server.P99, maxP99)
	q(&ts[1], st.Server.P999, maxP999)
	over := st.Server.Over10ms
	ts[2].Got = fmt.Sprintf("%.0f of %.0f (client max %s)", over, st.Server.Count, us(st.Client.Latency.Max))
	switch {
	case over > 0:
		ts[2].Status = "MISS"
	case st.Server.Over10msMaybe > 0:
		ts[2].Status = "UNSURE"
	default:
		ts[2].Status = "PASS"
	}
	return ts
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// Range is the bucket as "(lo, hi]".
func (b bucketQ) Range() string {
	if b.Hi < 0 {
		return "(" + us(b.Lo) + ", +Inf)"
	}
	return "(" + us(b.Lo) + ", " + us(b.Hi) + "]"
}
