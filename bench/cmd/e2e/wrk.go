package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Closed loop: wrk (https://github.com/wg/wrk, the Debian package) keeps
// Conns connections busy, each sending the next request when the last is
// answered, for a fixed time. The bidder's request is posted from a Lua
// script.

// wrkResult is what one wrk run printed.
type wrkResult struct {
	Requests    int64   `json:"requests"`
	Seconds     float64 `json:"seconds"`
	ReqPerSec   float64 `json:"req_per_s"`
	LatencyAvg  float64 `json:"latency_avg_us"`
	LatencyMax  float64 `json:"latency_max_us"`
	P50         float64 `json:"p50_us"`
	P75         float64 `json:"p75_us"`
	P90         float64 `json:"p90_us"`
	P99         float64 `json:"p99_us"`
	SocketErrs  int64   `json:"socket_errors"` // connect + read + write + timeout
	NonSuccess  int64   `json:"non_2xx_3xx"`   // answers other than 2xx/3xx
	Connections int     `json:"connections"`   // -c
	Threads     int     `json:"threads"`       // -t
	Raw         string  `json:"-"`             // the output, for the log
	Command     string  `json:"command"`       // as run
	Placement   string  `json:"placement"`     // taskset CPU list or "shared"
}

// wrkScript is a Lua script that POSTs body as the bidder's exchanges do.
func wrkScript(body []byte) string {
	// A Lua long bracket holds any bytes but its own closing bracket; pick
	// a level the body does not contain.
	eq := "="
	for bytes.Contains(body, []byte("]"+eq+"]")) {
		eq += "="
	}
	return "wrk.method = \"POST\"\n" +
		"wrk.headers[\"Content-Type\"] = \"application/json\"\n" +
		"wrk.headers[\"x-openrtb-version\"] = \"2.6\"\n" +
		"wrk.body = [" + eq + "[" + string(body) + "]" + eq + "]\n"
}

// wrkRun is one wrk invocation.
type wrkRun struct {
	URL      string
	Script   string // path of the Lua script
	Conns    int
	Threads  int
	Duration time.Duration
	CPU      string // taskset -c list for wrk; "" runs it unpinned
}

func (w wrkRun) args() []string {
	a := []string{"wrk", "-t" + strconv.Itoa(w.Threads), "-c" + strconv.Itoa(w.Conns),
		"-d" + strconv.Itoa(int(w.Duration.Round(time.Second)/time.Second)) + "s", "--latency", "-s", w.Script, w.URL}
	if w.CPU != "" {
		a = append([]string{"taskset", "-c", w.CPU}, a...)
	}
	return a
}

// run executes wrk and parses its output.
func (w wrkRun) run(ctx context.Context) (wrkResult, error) {
	args := w.args()
	ctx, cancel := context.WithTimeout(ctx, w.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	r, err := parseWrk(out.String())
	if err != nil {
		return r, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	r.Connections, r.Threads, r.Command = w.Conns, w.Threads, strings.Join(args, " ")
	r.Placement = "shared"
	if w.CPU != "" {
		r.Placement = "CPU " + w.CPU
	}
	return r, nil
}

// writeScript writes the Lua script for body under dir.
func writeScript(dir string, body []byte) (string, error) {
	p := filepath.Join(dir, "post.lua")
	return p, os.WriteFile(p, []byte(wrkScript(body)), 0o644)
}

var errWrkOutput = errors.New("wrk output not understood")

// parseWrk reads wrk 4's report (with --latency):
//
//	  2 threads and 32 connections
//	  Thread Stats   Avg      Stdev     Max   +/- Stdev
//	    Latency   625.00us  300.12us  12.34ms   90.00%
//	    Req/Sec    25.11k     1.20k   27.00k    70.00%
//	  Latency Distribution
//	     50%  580.00us
//	     ...
//	  502000 requests in 10.00s, 40.22MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 12
//	  Non-2xx or 3xx responses: 3
//	Requests/sec:  50180.23
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	r.Raw = out
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 4 && f[0] == "Latency" && f[1] != "Distribution":
			avg, err1 := parseWrkDuration(f[1])
			mx, err2 := parseWrkDuration(f[3])
			if err := errors.Join(err1, err2); err != nil {
				return r, err
			}
			r.LatencyAvg, r.LatencyMax = avg, mx
			seen |= 1
		case len(f) == 2 && strings.HasSuffix(f[0], "%"):
			v, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			switch f[0] {
			case "50%":
				r.P50 = v
			case "75%":
				r.P75 = v
			case "90%":
				r.P90 = v
			case "99%":
				r.P99 = v
				seen |= 2
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			n, err1 := strconv.ParseInt(f[0], 10, 64)
			secs, err2 := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err := errors.Join(err1, err2); err != nil {
				return r, err
			}
			r.Requests, r.Seconds = n, secs/1e6
			seen |= 4
		case len(f) >= 3 && f[0] == "Socket" && f[1] == "errors:":
			// connect 0, read 0, write 0, timeout 12
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("%w: %q", errWrkOutput, sc.Text())
				}
				r.SocketErrs += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("%w: %q", errWrkOutput, sc.Text())
			}
			r.NonSuccess = n
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("%w: %q", errWrkOutput, sc.Text())
			}
			r.ReqPerSec = v
			seen |= 8
		}
	}
	if seen != 15 {
		return r, fmt.Errorf("%w: missing the latency, distribution, request count or rate line", errWrkOutput)
	}
	return r, nil
}

// parseWrkDuration reads wrk's time format (us, ms, s, m, h suffixes) into
// microseconds.
func parseWrkDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("%w: duration %q", errWrkOutput, s)
			}
			return v * u.us, nil
		}
	}
	return 0, fmt.Errorf("%w: duration %q", errWrkOutput, s)
}
