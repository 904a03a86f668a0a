package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleResult is a run with every part measured; the figures are made up.
func sampleResult() *result {
	srvLat := func(p99lo, p99hi, over float64) *serverLatency {
		return &serverLatency{Count: 10000, P50: bucketQ{Lo: 100, Hi: 200, Est: 150}, P99: bucketQ{Lo: p99lo, Hi: p99hi, Est: p99hi},
			P999: bucketQ{Lo: 2000, Hi: 3000, Est: 2500}, Max: bucketQ{Lo: 5000, Hi: 7500, Est: 7000}, Over10ms: over}
	}
	step := func(f, rate float64, lat *serverLatency) ladderStep {
		return ladderStep{Fraction: f, Server: lat, Requests: rate * 10, Bids: rate * 10, BidShare: 1,
			Client: openLoopResult{Rate: rate, Achieved: rate, Seconds: 10, Latency: latencySummary{P50: 400, P99: 1500, P999: 4000, Max: 9000},
				SendDelay: latencySummary{P99: 300}, Lag: latencySummary{P99: 120}},
			stepCPU: stepCPU{ServerCPU: f, CPUPerRequest: 1e6 * f / rate, ServerCoreBusy: min(1.3*f, 1), LoadCoreBusy: 0.6 * f}}
	}
	return &result{Schema: 1, Date: "2026-12-02T19:00:00Z", Commit: "0123456789abcdef0123", Command: "make bench-e2e",
		Machine: machine{CPUs: 2, CPUModel: "AMD EPYC", Kernel: "6.1", Go: "go1.26", Wrk: "wrk 4.1.0", Pinned: true, ServerCPU: "0", LoadCPU: "1",
			Placement: "server pinned to one CPU, wrk and the open-loop generator on another (taskset)"},
		Load: loadInfo{UptimeBefore: "up 1 day, load average: 0.50, 0.40, 0.30", UptimeAfter: "up 1 day, load average: 1.50, 0.90, 0.50",
			Before: "0.50 0.40 0.30 1/100 1", After: "1.50 0.90 0.50 1/100 2"},
		Set: settings{Duration: 10, Warmup: 3, StepWarmup: 2, WrkConns: 32, WrkThreads: 2, OLConns: 64, Ladder: []float64{0.1, 0.5, 0.9}, RequestBytes: 1726},
		Trivial: []closedLoop{{Wrk: wrkResult{ReqPerSec: 80000, P50: 300, P99: 900, LatencyMax: 5000}, ServerCPU: 1, RunWait: 0.01, PerCPUSecond: 80000},
			{Wrk: wrkResult{ReqPerSec: 76000, P50: 310, P99: 950, LatencyMax: 6000}, ServerCPU: 0.95, PerCPUSecond: 80000}},
		Servers: []serverRun{
			{Name: "bidder", Campaigns: 1000, RSSMiB: 120, Closed: closedLoop{Wrk: wrkResult{ReqPerSec: 42000, P50: 700, P99: 2100, LatencyMax: 12000},
				Ratio: 42000.0 / 78000, Beside: 70000, BesideRatio: 0.6, ServerCPU: 0.7, RunWait: 0.3, PerCPUSecond: 60000, CPURatio: 0.75, Requests: 420000, Bids: 419000, BidShare: 419000.0 / 420000, NoBids: map[string]float64{"deadline": 1000},
				Server: srvLat(750, 1000, 0), Model: &modelUse{Chain: "mlp>gbdt", Provider: "cpu", PerRequest: 6}},
				Ladder: []ladderStep{step(0.1, 4200, srvLat(300, 500, 0)), step(0.5, 21000, srvLat(750, 1000, 0)), step(0.9, 37800, srvLat(1000, 2000, 3))}},
			{Name: "bidder", Campaigns: 10000, RSSMiB: 240, Closed: closedLoop{Wrk: wrkResult{ReqPerSec: 20000}, Ratio: 20000.0 / 78000,
				Requests: 200000, Bids: 150000, BidShare: 0.75},
				Ladder: []ladderStep{withErrors(step(0.5, 10000, srvLat(1000, 2000, 2)), map[string]int64{"timeout": 5, "connection reset": 2})}},
			{Name: "baseline", Campaigns: 1000, Closed: closedLoop{Wrk: wrkResult{ReqPerSec: 6000}, Ratio: 6000.0 / 78000, Requests: 60000, Bids: 60000, BidShare: 1}},
		},
		TrivialLadder: []floorStep{{Campaigns: 1000, Fraction: 0.5, Client: openLoopResult{Rate: 21000, Achieved: 20990, Over10ms: 12,
			Latency: latencySummary{P50: 150, P99: 900, P999: 3500, Max: 12000}, Lag: latencySummary{P99: 110}},
			stepCPU: stepCPU{ServerCPU: 0.4, CPUPerRequest: 19, ServerCoreBusy: 0.55, LoadCoreBusy: 0.7}}},
		Idle: &idleRun{Campaigns: 10000, Settle: 15, Window: 30, CPUSeconds: 0.3, CPUPercent: 1, RSSMiB: 200, PeakMiB: 210},
	}
}

func withErrors(st ladderStep, kinds map[string]int64) ladderStep {
	st.Client.ErrorKinds = kinds
	for _, v := range kinds {
		st.Client.Errors += v
	}
	return st
}

func TestEvaluate(t *testing.T) {
	res := sampleResult()
	got := map[string]string{}
	for _, tg := range evaluate(res) {
		got[tg.Name] = tg.Status
	}
	want := map[string]string{
		"saturation, 1000 campaigns, bundled models":                                   "PASS", // 0.54x, 99.8% bidding
		"saturation, 10000 campaigns, bundled models":                                  "MISS", // 0.26x and 75% bidding
		"idle CPU, 10000 campaigns":                                                    "PASS",
		"idle RSS, 10000 campaigns":                                                    "PASS",
		"open loop at 50% of saturation, 1000 campaigns, bidder histogram: p99":        "PASS", // (0.75, 1] ms
		"open loop at 50% of saturation, 1000 campaigns, bidder histogram: p99.9":      "PASS", // (2, 3] ms
		"open loop at 50% of saturation, 1000 campaigns, bidder histogram: over 10ms":  "PASS",
		"open loop at 50% of saturation, 10000 campaigns, bidder histogram: p99":       "MISS", // (1, 2] ms
		"open loop at 50% of saturation, 10000 campaigns, bidder histogram: over 10ms": "MISS",
	}
	for name, st := range want {
		if got[name] != st {
			t.Errorf("%s: %q, want %s", name, got[name], st)
		}
	}
	// Not measured: SKIP, not PASS.
	res.Idle, res.Servers = nil, res.Servers[2:]
	for _, tg := range evaluate(res) {
		if tg.Status != "SKIP" {
			t.Errorf("%s: %s without figures", tg.Name, tg.Status)
		}
	}
}

// The docs section is rendered from the result alone, with every figure a
// reader needs to judge it: load, placement, commit, both trivial runs.
func TestMarkdown(t *testing.T) {
	res := sampleResult()
	res.Targets = evaluate(res)
	md := markdown(res, "out/bench-e2e")
	for _, want := range []string{
		"`make bench-e2e`",
		"from its `out/bench-e2e/result.json` (plot: `out/bench-e2e/plot.svg`)",
		"commit 0123456789ab",
		"load average: 0.50, 0.40, 0.30",
		"load average: 1.50, 0.90, 0.50",
		"Server on CPU 0, load on CPU 1",
		"| trivial fasthttp 204 (first) | - | 80,000 | 1 | - | - | 1.00 | 0.01 | 80,000 | 1 |",
		"| trivial fasthttp 204 (last) | - | 76,000 | 1 | - | - | 0.95 | 0.00 | 80,000 | 1 |",
		"| bidder | 1,000 | 42,000 | 0.54 | 0.60 (70,000) | 99.8 | 0.70 | 0.30 | 60,000 | 0.75 | 700us | 2.10ms | 12.00ms | (750us, 1.00ms] | mlp>gbdt (cpu), 6.0 | 120 MiB |",
		"| baseline | 1,000 | 6,000 | 0.08 | - | 100.0 |",
		"| saturation, 1000 campaigns, bundled models | >= 0.5x the trivial server, >= 90% bidding | 0.54x (42000 req/s), 99.8% bidding; 0.60x the trivial run beside it | PASS |",
		"| 1,000 | 50% | 21,000 | 21,000 | 100.0 | 400us | 1.50ms | 4.00ms | 9.00ms | (100us, 200us] | (750us, 1.00ms] | (2.00ms, 3.00ms] | (5.00ms, 7.50ms] | 0 | 120us | 0.50 | 24 | 65% | 30% |",
		"| 50% at 1,000 campaigns | 21,000 | 20,990 | 150us | 900us | 3.50ms | 12.00ms | 12 | 0 | 110us | 0.40 | 19 | 55% | 70% |",
		"**Idle** at 10,000 campaigns: 1.00% of a core",
		"| saturation, 10000 campaigns, bundled models | >= 0.4x the trivial server, >= 90% bidding | 0.26x (20000 req/s), 75.0% bidding | MISS |",
		"No-bids of the bidder at 1,000 campaigns in the measured window: deadline 1000.",
		"Errors at 10,000 campaigns, 50%: connection reset 2, timeout 5.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# Title\n\nprose\n\n" + beginMarker + "\nold table\n" + endMarker + "\n\nmore prose\n"
	got, err := replaceSection(doc, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nprose\n\n" + beginMarker + "\nnew table\n" + endMarker + "\n\nmore prose\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{"no markers", endMarker + beginMarker, beginMarker + " only"} {
		if _, err := replaceSection(bad, "x"); !errors.Is(err, errMarkers) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// -render regenerates the plot and the docs from result.json alone.
func TestRender(t *testing.T) {
	dir := t.TempDir()
	res := sampleResult()
	if err := writeResult(res, dir); err != nil {
		t.Fatal(err)
	}
	docs := filepath.Join(dir, "benchmarks.md")
	if err := os.WriteFile(docs, []byte("intro\n"+beginMarker+"\n"+endMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := mainErr([]string{"-render", filepath.Join(dir, "result.json"), "-docs", docs}, &out); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(docs)
	if !strings.Contains(string(md), "| bidder | 10,000 | 20,000 | 0.26 |") || !strings.HasPrefix(string(md), "intro\n"+beginMarker) {
		t.Errorf("docs:\n%s", md)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "plot.svg"))
	if err != nil || !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("polyline")) ||
		!bytes.Contains(svg, []byte("trivial 204, same rates")) || !bytes.HasSuffix(svg, []byte("</svg>\n")) {
		t.Errorf("plot: %v\n%.300s", err, svg)
	}
	if !strings.Contains(out.String(), "MISS   saturation, 10000 campaigns") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 42000.4: "42,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := thousands(v); got != want {
			t.Errorf("%v: %q, want %q", v, got, want)
		}
	}
}
