package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// plotSVG draws two panels by hand: closed-loop saturation as a ratio to the
// trivial server (bars, with the targets), and open-loop latency against
// offered load (client p50/p99/p99.9 lines; the bidder histogram's p99
// bucket bound as squares), on a log scale.
func plotSVG(res *result) string {
	const w, h = 960, 490
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	load := strings.Join(strings.Fields(res.Load.Before + " - - -")[:3], " ")
	title := fmt.Sprintf("make bench-e2e, %s, commit %.8s, load average before %s", res.Date, res.Commit, load)
	fmt.Fprintf(&b, `<text x="10" y="16" font-size="12">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="10" y="32" fill="#444">%s</text>`+"\n", html.EscapeString(res.Machine.Placement))
	barsPanel(&b, res, 50, 70, 380, 300)
	latencyPanel(&b, res, 540, 70, 380, 300)
	b.WriteString("</svg>\n")
	return b.String()
}

// panel is a plot area: origin at the bottom left (x0, y0+ph).
type panel struct{ x0, y0, pw, ph float64 }

func (p panel) axes(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="12" font-weight="bold">%s</text>`+"\n", p.x0, p.y0-12, html.EscapeString(title))
	fmt.Fprintf(b, `<path d="M%.1f %.1f V%.1f H%.1f" fill="none" stroke="black"/>`+"\n", p.x0, p.y0, p.y0+p.ph, p.x0+p.pw)
}

func barsPanel(b *strings.Builder, res *result, x0, y0, pw, ph float64) {
	p := panel{x0, y0, pw, ph}
	p.axes(b, "Closed loop (wrk): saturation / trivial fasthttp 204")
	top := 1.0
	for _, s := range res.Servers {
		top = max(top, s.Closed.Ratio, s.Closed.CPURatio)
	}
	top *= 1.1
	y := func(v float64) float64 { return y0 + ph - ph*v/top }
	for v := 0.0; v <= top+1e-9; v += tick(top) {
		fmt.Fprintf(b, `<path d="M%.1f %.1f h-4" stroke="black"/><text x="%.1f" y="%.1f" text-anchor="end">%.1fx</text>`+"\n", x0, y(v), x0-6, y(v)+4, v)
	}
	for _, t := range []struct {
		v     float64
		label string
	}{{minRatio1k, "target 1k"}, {minRatio10k, "target 10k"}} {
		fmt.Fprintf(b, `<path d="M%.1f %.1f H%.1f" stroke="#888" stroke-dasharray="5,4"/><text x="%.1f" y="%.1f" fill="#666" text-anchor="end">%s %.1fx</text>`+"\n",
			x0, y(t.v), x0+pw, x0+pw, y(t.v)-3, t.label, t.v)
	}
	n := len(res.Servers)
	if n == 0 {
		return
	}
	slot := pw / float64(n)
	for i, s := range res.Servers {
		bx := x0 + slot*float64(i) + slot*0.2
		bw := slot * 0.6
		color := "#1f77b4"
		if s.Name == "baseline" {
			color = "#ff7f0e"
		}
		r := s.Closed.Ratio
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", bx, y(r), bw, y0+ph-y(r), color)
		if cr := s.Closed.CPURatio; cr > 0 {
			fmt.Fprintf(b, `<path d="M%.1f %.1f h%.1f" stroke="black" stroke-width="2"/>`+"\n", bx-4, y(cr), bw+8)
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.2fx</text>`+"\n", bx+bw/2, min(y(r), y(s.Closed.CPURatio))-16, r)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%s/s</text>`+"\n", bx+bw/2, min(y(r), y(s.Closed.CPURatio))-4, thousands(s.Closed.Wrk.ReqPerSec))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", bx+bw/2, y0+ph+14, s.Name)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s camp.</text>`+"\n", bx+bw/2, y0+ph+27, thousands(float64(s.Campaigns)))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%.1f%% bid</text>`+"\n", bx+bw/2, y0+ph+40, 100*s.Closed.BidShare)
	}
	if len(res.Trivial) > 0 {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#444">bars: req/s over the trivial server's (%s and %s req/s, first and last run);</text>`+"\n", x0, y0+ph+58,
			thousands(res.Trivial[0].Wrk.ReqPerSec), thousands(res.Trivial[len(res.Trivial)-1].Wrk.ReqPerSec))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#444">black ticks: the same per second of CPU the server got (less disturbed by other load)</text>`+"\n", x0, y0+ph+72)
	}
}

// tick is a round step giving about five ticks up to top.
func tick(top float64) float64 {
	raw := top / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func latencyPanel(b *strings.Builder, res *result, x0, y0, pw, ph float64) {
	p := panel{x0, y0, pw, ph}
	p.axes(b, "Open loop: latency from the scheduled send")
	maxFrac, lo, hi := 0.0, math.Inf(1), 0.0
	for _, s := range res.Servers {
		for _, st := range s.Ladder {
			maxFrac = max(maxFrac, st.Fraction)
			for _, v := range []float64{st.Client.Latency.P50, st.Client.Latency.P999} {
				if v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
			if st.Server != nil && st.Server.P99.Hi > 0 {
				lo, hi = min(lo, st.Server.P99.Hi), max(hi, st.Server.P99.Hi)
			}
		}
	}
	for _, fs := range res.TrivialLadder {
		if v := fs.Client.Latency.P99; v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if maxFrac == 0 {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">no open-loop steps in this run</text>`+"\n", x0+20, y0+ph/2)
		return
	}
	// At least from 100 us, so the targets (1 and 3 ms) are on the plot.
	dlo, dhi := min(math.Floor(math.Log10(lo)), 2), math.Ceil(math.Log10(hi))
	if dhi <= dlo+1 {
		dhi = dlo + 2
	}
	top := math.Max(1, maxFrac)
	xs := func(f float64) float64 { return x0 + pw*f/top }
	ys := func(v float64) float64 { return y0 + ph - ph*(math.Log10(max(v, 1))-dlo)/(dhi-dlo) }
	for d := dlo; d <= dhi; d++ {
		v := math.Pow(10, d)
		fmt.Fprintf(b, `<path d="M%.1f %.1f H%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0, ys(v), x0+pw, x0-6, ys(v)+4, axisTime(v))
	}
	for f := 0.0; f <= top+1e-9; f += 0.25 {
		fmt.Fprintf(b, `<path d="M%.1f %.1f v4" stroke="black"/><text x="%.1f" y="%.1f" text-anchor="middle">%.0f%%</text>`+"\n", xs(f), y0+ph, xs(f), y0+ph+16, 100*f)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">offered load, share of that server's closed-loop saturation</text>`+"\n", x0+pw/2, y0+ph+32)
	for _, t := range []struct {
		v     float64
		label string
	}{{float64(maxP99.Microseconds()), "target p99"}, {float64(maxP999.Microseconds()), "target p99.9"}} {
		if t.v > math.Pow(10, dlo) && t.v < math.Pow(10, dhi) {
			fmt.Fprintf(b, `<path d="M%.1f %.1f H%.1f" stroke="#888" stroke-dasharray="5,4"/><text x="%.1f" y="%.1f" fill="#666">%s</text>`+"\n",
				x0, ys(t.v), x0+pw, x0+4, ys(t.v)-3, t.label)
		}
	}
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	dashes := []struct{ name, dash string }{{"p50", ""}, {"p99", "6,3"}, {"p99.9", "2,3"}}
	row := 0
	for _, s := range res.Servers {
		if len(s.Ladder) == 0 {
			continue
		}
		color := colors[row%len(colors)]
		for k, d := range dashes {
			var pts []string
			for _, st := range s.Ladder {
				v := [3]float64{st.Client.Latency.P50, st.Client.Latency.P99, st.Client.Latency.P999}[k]
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(st.Fraction), ys(v)))
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`+"\n", xs(st.Fraction), ys(v), color)
			}
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="%s"/>`+"\n", strings.Join(pts, " "), color, d.dash)
		}
		for _, st := range s.Ladder {
			if st.Server != nil && st.Server.P99.Hi > 0 {
				fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="7" height="7" fill="none" stroke="%s"/>`+"\n", xs(st.Fraction)-3.5, ys(st.Server.P99.Hi)-3.5, color)
			}
		}
		ly := y0 + ph + 52 + 14*float64(row)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="%s">%s, %s campaigns</text>`+"\n", x0, ly, color, s.Name, thousands(float64(s.Campaigns)))
		row++
	}
	// The trivial server at the rates of each bidder ladder: its client p99,
	// grey, one line per campaign count (the x of the bidder's step).
	floors := map[int][]string{}
	var order []int
	for _, fs := range res.TrivialLadder {
		if fs.Client.Latency.P99 <= 0 {
			continue
		}
		if _, ok := floors[fs.Campaigns]; !ok {
			order = append(order, fs.Campaigns)
		}
		x, y := xs(fs.Fraction), ys(fs.Client.Latency.P99)
		floors[fs.Campaigns] = append(floors[fs.Campaigns], fmt.Sprintf("%.1f,%.1f", x, y))
		fmt.Fprintf(b, `<path d="M%.1f %.1f l6 6 m0 -6 l-6 6" stroke="#999"/>`+"\n", x-3, y-3)
	}
	for _, n := range order {
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="#999" stroke-width="1" stroke-dasharray="6,3"/>`+"\n", strings.Join(floors[n], " "))
	}
	lx, ly := x0+175, y0+ph+52
	if len(order) > 0 {
		fmt.Fprintf(b, `<path d="M%.1f %.1f l6 6 m0 -6 l-6 6" stroke="#999"/><text x="%.1f" y="%.1f" fill="#777">trivial 204, same rates: p99</text>`+"\n",
			lx+8, ly+14*4-7.5, lx+30, ly+14*4)
	}
	for k, d := range dashes {
		fmt.Fprintf(b, `<path d="M%.1f %.1f h24" stroke="black" stroke-dasharray="%s"/><text x="%.1f" y="%.1f">client %s</text>`+"\n",
			lx, ly-4+14*float64(k), d.dash, lx+30, ly+14*float64(k), d.name)
	}
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="7" height="7" fill="none" stroke="black"/><text x="%.1f" y="%.1f">bidder p99 (histogram bucket bound)</text>`+"\n",
		lx+8, ly+14*3-7.5, lx+30, ly+14*3)
}

// axisTime labels a power of ten of microseconds.
func axisTime(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gs", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gms", v/1e3)
	}
	return fmt.Sprintf("%gus", v)
}
