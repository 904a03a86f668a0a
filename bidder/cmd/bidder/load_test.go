package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// An open-loop HTTP/1.1 load generator for the overload tests, shaped like
// wrk2: request i is due at start + i/rate whatever the answers, and goes on
// connection i mod conns; each connection sends its requests in order, each
// when it is due or, if the connection is still busy, as soon as it is free.
// A request's latency runs from when it was due, so time waiting behind a
// slow answer counts (no coordinated omission). Each connection keeps its
// own schedule, so the generator costs one timer wake-up per request at
// most and no hand-off between goroutines.

type loadOpts struct {
	addr  string
	conns int
	rate  float64 // requests per second
	total int
	max   time.Duration // schedule nothing due after this
	cut   bool          // and send nothing after it (closed-loop runs bounded in time)
	req   func(i int) (method, path string, body []byte)
	keep  bool // keep 200 bodies
}

type answer struct {
	status int
	reason string        // x-nobid-reason
	lat    time.Duration // from the due time to the whole answer read
	rtt    time.Duration // from the request written to the answer read
	body   []byte
	err    error
}

func runLoad(o loadOpts) []answer {
	out := make([]answer, o.total)
	gap := float64(time.Second) / o.rate
	start := time.Now()
	var wg sync.WaitGroup
	for k := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *client
			defer func() {
				if c != nil {
					c.conn.Close()
				}
			}()
			for i := k; i < o.total; i += o.conns {
				due := start.Add(time.Duration(float64(i) * gap))
				if due.Sub(start) > o.max || (o.cut && time.Since(start) > o.max) {
					for ; i < o.total; i += o.conns {
						out[i].status = -1 // not sent
					}
					return
				}
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				if c == nil {
					var err error
					if c, err = dial(o.addr); err != nil {
						out[i] = answer{err: err}
						continue
					}
				}
				method, path, body := o.req(i)
				sent := time.Now()
				a, closed := c.do(method, path, body, o.keep)
				a.lat, a.rtt = time.Since(due), time.Since(sent)
				out[i] = a
				if closed || a.err != nil {
					c.conn.Close()
					c = nil
				}
			}
		}()
	}
	wg.Wait()
	return out
}

type client struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func dial(addr string) (*client, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &client{conn: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// do sends one request and reads its answer; closed reports a
// Connection: close.
func (c *client) do(method, path string, body []byte, keep bool) (a answer, closed bool) {
	c.req = append(c.req[:0], method...)
	c.req = append(c.req, ' ')
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: bidder\r\nContent-Type: application/json\r\nx-openrtb-version: 2.6\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(c.req); err != nil {
		return answer{err: err}, true
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil || len(line) < 12 {
		return answer{err: fmt.Errorf("status line %q: %v", line, err)}, true
	}
	a.status, _ = strconv.Atoi(string(line[9:12]))
	n := 0
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return answer{err: err}, true
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, _ := bytes.Cut(h, []byte(":"))
		v = bytes.TrimSpace(v)
		switch string(bytes.ToLower(k)) {
		case "content-length":
			n, _ = strconv.Atoi(string(v))
		case "x-nobid-reason":
			a.reason = string(v)
		case "connection":
			closed = bytes.EqualFold(v, []byte("close"))
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		return answer{err: err}, true
	}
	if keep && a.status == 200 {
		a.body = b
	}
	return a, closed
}

// pct is the q-quantile (0..1) of d.
func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
