package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Servers are both handlers of a Fixture listening on loopback ports.
type Servers struct {
	Fast, Baseline string // host:port
	base           *http.Server
	f              *Fixture
	done           chan error
}

// Serve starts the bidder (its own fasthttp.Server settings) and the
// baseline (a plain net/http.Server) on 127.0.0.1 random ports.
func Serve(f *Fixture) (*Servers, error) {
	lf, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lb, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		lf.Close()
		return nil, err
	}
	s := &Servers{Fast: lf.Addr().String(), Baseline: lb.Addr().String(), f: f, done: make(chan error, 2),
		base: &http.Server{Handler: f.Baseline, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second}}
	go func() { s.done <- f.Server.Serve(lf) }()
	go func() { s.done <- s.base.Serve(lb) }()
	return s, nil
}

// Close stops both servers.
func (s *Servers) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := errors.Join(s.f.Server.Shutdown(ctx), s.base.Shutdown(ctx))
	for range 2 {
		if e := <-s.done; e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
	}
	return err
}

// LoadConfig is a bounded closed-loop load: Conns keep-alive connections,
// each sending PerConn requests one after another (the next when the last
// is answered), stopping early at MaxTime.
type LoadConfig struct {
	Conns   int
	PerConn int
	MaxTime time.Duration
	Warmup  int // requests per connection before measuring
	Body    []byte
}

// LoadResult is what one server did under a LoadConfig.
type LoadResult struct {
	Requests         int
	Elapsed          time.Duration
	OK, NoBid, Other int
	P50, P99, Max    time.Duration
	NoBidReasons     map[string]int // x-nobid-reason of the 204s
}

// ReqPerSec is the throughput.
func (r LoadResult) ReqPerSec() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// Drive runs the load against addr (POST /openrtb2/bid) with one
// fasthttp.HostClient, the same client for either server.
func Drive(addr string, cfg LoadConfig) (LoadResult, error) {
	if cfg.Conns < 1 || cfg.PerConn < 1 || cfg.MaxTime <= 0 {
		return LoadResult{}, errors.New("bench: load needs connections, requests and a time bound")
	}
	c := &fasthttp.HostClient{Addr: addr, MaxConns: cfg.Conns, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	ws := make([]loadWorker, cfg.Conns)
	var warm, done sync.WaitGroup
	var start time.Time
	ready := make(chan struct{})
	warm.Add(cfg.Conns)
	done.Add(cfg.Conns)
	for i := range ws {
		w := &ws[i]
		go func() {
			defer done.Done()
			w.run(c, addr, &cfg, warm.Done, ready, &start)
		}()
	}
	warm.Wait()
	start = time.Now() // published to the workers by close(ready)
	close(ready)
	done.Wait()
	return collect(addr, ws, time.Since(start))
}

// loadWorker is one connection's closed loop.
type loadWorker struct {
	lat              []time.Duration
	ok, nobid, other int
	reasons          map[string]int
	err              error
}

func (w *loadWorker) run(c *fasthttp.HostClient, addr string, cfg *LoadConfig, warmed func(), ready <-chan struct{}, start *time.Time) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + "/openrtb2/bid")
	req.Header.SetMethod(http.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBody(cfg.Body)
	for range cfg.Warmup {
		if w.err = c.Do(req, resp); w.err != nil {
			break
		}
	}
	warmed()
	<-ready
	stop := start.Add(cfg.MaxTime)
	w.lat = make([]time.Duration, 0, cfg.PerConn)
	for i := 0; i < cfg.PerConn && w.err == nil; i++ {
		t0 := time.Now()
		if t0.After(stop) {
			break
		}
		if w.err = c.Do(req, resp); w.err != nil {
			break
		}
		w.lat = append(w.lat, time.Since(t0))
		w.count(resp)
	}
}

func (w *loadWorker) count(resp *fasthttp.Response) {
	switch resp.StatusCode() {
	case 200:
		w.ok++
	case 204:
		w.nobid++
		if w.reasons == nil {
			w.reasons = map[string]int{}
		}
		w.reasons[string(resp.Header.Peek("x-nobid-reason"))]++
	default:
		w.other++
	}
}

// collect sums the workers' counts and latencies.
func collect(addr string, ws []loadWorker, elapsed time.Duration) (LoadResult, error) {
	res := LoadResult{Elapsed: elapsed, NoBidReasons: map[string]int{}}
	var lat []time.Duration
	for i := range ws {
		w := &ws[i]
		if w.err != nil {
			return res, fmt.Errorf("bench: load on %s: %w", addr, w.err)
		}
		lat = append(lat, w.lat...)
		for k, v := range w.reasons {
			res.NoBidReasons[k] += v
		}
		res.OK, res.NoBid, res.Other = res.OK+w.ok, res.NoBid+w.nobid, res.Other+w.other
	}
	res.Requests = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99, res.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return res, nil
}
