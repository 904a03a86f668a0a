package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// series is one line of a chart.
type series struct {
	name   string
	x, y   []float64
	dashed bool
}

type chart struct {
	w, h, legend          float64 // size and legend width; 0 = 800 x 450, 180
	title, xlabel, ylabel string
	logX                  bool
	series                []series
	bars                  bool // draw the first series as bars
	diagonal              bool // y = x reference line
	points                bool // markers instead of lines
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// svg renders the chart as a standalone SVG document (no dependencies).
func (c chart) svg() []byte {
	W, H, R := c.w, c.h, c.legend
	if W == 0 {
		W, H, R = 800, 450, 180
	}
	const L, T, B = 80.0, 40.0, 50.0
	pw, ph := W-L-R, H-T-B
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), 0.0, math.Inf(-1)
	for _, s := range c.series {
		for i := range s.x {
			x := s.x[i]
			if c.logX {
				x = math.Log10(math.Max(x, 1e-9))
			}
			xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
			ymax = math.Max(ymax, s.y[i])
		}
	}
	if c.diagonal {
		ymax = math.Max(ymax, xmax)
		xmax = math.Max(xmax, ymax)
		xmin = math.Min(xmin, 0)
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax, ymax = 0, 1, 1
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	ymax *= 1.05
	px := func(x float64) float64 {
		if c.logX {
			x = math.Log10(math.Max(x, 1e-9))
		}
		return L + (x-xmin)/(xmax-xmin)*pw
	}
	py := func(y float64) float64 { return T + ph - (y-ymin)/(ymax-ymin)*ph }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%g" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", L, esc(c.title))
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#444"/>`+"\n", L, T, pw, ph)
	for i := 0; i <= 5; i++ {
		yv := ymin + (ymax-ymin)*float64(i)/5
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end">%s</text>`+"\n",
			L, L+pw, py(yv), py(yv), L-6, py(yv)+4, num(yv))
		xv := xmin + (xmax-xmin)*float64(i)/5
		lbl := xv
		if c.logX {
			lbl = math.Pow(10, xv)
		}
		xp := L + (xv-xmin)/(xmax-xmin)*pw
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#ddd"/><text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n",
			xp, xp, T, T+ph, xp, T+ph+16, num(lbl))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", L+pw/2, H-10, esc(c.xlabel))
	fmt.Fprintf(&b, `<text transform="translate(16,%g) rotate(-90)" text-anchor="middle">%s</text>`+"\n", T+ph/2, esc(c.ylabel))
	if c.diagonal {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="4 4"/>`+"\n",
			px(xmin), py(xmin), px(xmax), py(math.Min(xmax, ymax)))
	}
	for si, s := range c.series {
		col := palette[si%len(palette)]
		switch {
		case c.bars && si == 0:
			bw := pw / float64(max(len(s.x), 1)) * 0.9
			for i := range s.x {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
					px(s.x[i])-bw/2, py(s.y[i]), bw, py(ymin)-py(s.y[i]), col)
			}
		case c.points:
			for i := range s.x {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", px(s.x[i]), py(s.y[i]), col)
			}
		default:
			var pts []string
			for i := range s.x {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[i]), py(s.y[i])))
			}
			dash := ""
			if s.dashed {
				dash = ` stroke-dasharray="6 3"`
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`+"\n", col, dash, strings.Join(pts, " "))
		}
		fmt.Fprintf(&b, `<rect x="%g" y="%d" width="12" height="12" fill="%s"/><text x="%g" y="%d">%s</text>`+"\n",
			L+pw+10, int(T)+si*18, col, L+pw+28, int(T)+si*18+10, esc(s.name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a >= 1:
		return fmt.Sprintf("%.3g", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// charts builds the report's plots.
func (rep *Report) charts() map[string]chart {
	out := map[string]chart{}
	// Latency histogram: log-spaced buckets from the HDR histogram.
	if h := rep.histogram; h != nil && h.TotalCount() > 0 {
		lo := math.Max(1, float64(h.Min()))
		hi := float64(h.Max()) + 1
		const steps = 40
		f := math.Pow(hi/lo, 1.0/steps)
		if f <= 1 {
			f = 1.0001
		}
		xs, ys := make([]float64, steps), make([]float64, steps)
		for i := range xs {
			xs[i] = lo * math.Pow(f, float64(i)+0.5)
		}
		for _, bar := range h.Distribution() {
			if bar.Count == 0 {
				continue
			}
			i := int(math.Log(math.Max(float64(bar.From), lo)/lo) / math.Log(f))
			ys[min(max(i, 0), steps-1)] += float64(bar.Count)
		}
		out["latency_histogram.svg"] = chart{title: "Response latency (from scheduled send)", xlabel: "latency (us, log)",
			ylabel: "responses", logX: true, bars: true, series: []series{{name: "responses", x: xs, y: ys}}}
	}
	var t, sent, ans, to, p50, p90, p99 []float64
	for _, s := range rep.Timeline {
		t = append(t, float64(s.T))
		sent, ans, to = append(sent, float64(s.Sent)), append(ans, float64(s.Answered)), append(to, float64(s.Timeouts))
		p50, p90, p99 = append(p50, float64(s.P50us)/1000), append(p90, float64(s.P90us)/1000), append(p99, float64(s.P99us)/1000)
	}
	out["qps.svg"] = chart{title: "Requests per second", xlabel: "second", ylabel: "requests/s",
		series: []series{{name: "sent", x: t, y: sent}, {name: "answered", x: t, y: ans}, {name: "timeouts", x: t, y: to}}}
	out["latency_over_time.svg"] = chart{title: "Latency percentiles per second", xlabel: "second", ylabel: "ms",
		series: []series{{name: "p50", x: t, y: p50}, {name: "p90", x: t, y: p90}, {name: "p99", x: t, y: p99}}}
	var cx, cy, ct []float64
	for _, b := range rep.Calibration {
		cx, cy, ct = append(cx, b.MeanPCTR), append(cy, b.ObservedCTR), append(ct, b.MeanTrueCTR)
	}
	out["calibration.svg"] = chart{title: "Calibration: predicted vs observed CTR (deciles)", xlabel: "mean predicted CTR (bid.ext.pctr)",
		ylabel: "CTR", points: true, diagonal: true,
		series: []series{{name: "observed clicks", x: cx, y: cy}, {name: "ground truth", x: cx, y: ct}}}
	return out
}

// spendPanels draws one panel per campaign (up to 24), in the campaign's
// budget currency: what the exchange billed in the run, the bidder's own
// spent_today from the admin endpoint less what it said before the first
// request (so that the two compare: both count from the run's start), and
// its pacing target (dashed) from the first per-second sample on (read for
// its slope). Without an admin endpoint a panel shows the billed spend alone.
func (rep *Report) spendPanels() []chart {
	cids := map[string]bool{}
	for _, m := range rep.spendSeries {
		for id := range m {
			cids[id] = true
		}
	}
	var panels []chart
	for _, id := range sortedKeys(cids) {
		if len(panels) == 24 {
			break
		}
		cur := rep.budgetCur[id]
		if cur == "" {
			cur = rep.campCur[id]
		}
		// Everything is shown since the run started, so a short run against a
		// daily plan is readable: spend added and plan added, side by side.
		var x, billed, own, plan []float64
		start, ownAtStart := rep.todayAtStart[id]
		plan0, own0, first := 0.0, float64(start)/1e6, true
		for i, m := range rep.spendSeries {
			if m == nil {
				continue
			}
			v := FromUSD(ToUSD(float64(m[id]), rep.campCur[id]), cur)
			x, billed = append(x, float64(i+1)), append(billed, v/1e6)
			if i < len(rep.planSeries) && rep.planSeries[i] != nil {
				p, o := float64(rep.planSeries[i][id])/1e6, float64(rep.adminSpentSeries[i][id])/1e6
				if first {
					plan0, first = p, false
					if !ownAtStart {
						own0 = o
					}
				}
				plan = append(plan, p-plan0)
				own = append(own, o-own0)
			}
		}
		c := chart{w: 520, h: 300, legend: 130, title: id, xlabel: "second", ylabel: cur,
			series: []series{{name: "billed", x: x, y: billed}}}
		if len(plan) == len(x) {
			c.series = append(c.series, series{name: "bidder spent", x: x, y: own}, series{name: "plan", x: x, y: plan, dashed: true})
		}
		panels = append(panels, c)
	}
	return panels
}

// grid lays charts out in columns as one SVG.
func grid(title string, panels []chart, cols int) []byte {
	if len(panels) == 0 {
		return chart{title: title}.svg()
	}
	pw, ph := panels[0].w, panels[0].h
	rows := (len(panels) + cols - 1) / cols
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n",
		pw*float64(cols), ph*float64(rows)+30)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="16" font-weight="bold">%s</text>`+"\n", esc(title))
	for i, p := range panels {
		inner := string(p.svg())
		inner = strings.Replace(inner, `<svg xmlns="http://www.w3.org/2000/svg"`,
			fmt.Sprintf(`<svg x="%g" y="%g"`, pw*float64(i%cols), 30+ph*float64(i/cols)), 1)
		b.WriteString(inner)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// WriteFiles writes report.json and the SVG plots into dir.
func (rep *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("simulator: out dir: %w", err)
	}
	rep.Plots = nil
	files := map[string][]byte{"spend.svg": grid("Spend vs pacing plan per campaign since the run started (budget currency)", rep.spendPanels(), 3)}
	for name, c := range rep.charts() {
		files[name] = c.svg()
	}
	for _, name := range sortedKeys(files) {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return fmt.Errorf("simulator: write plot: %w", err)
		}
		rep.Plots = append(rep.Plots, name)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("simulator: encode report: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644)
}
