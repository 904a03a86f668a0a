package bidder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serve runs ts on a loopback listener until the test ends.
func (ts *testServer) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.Serve(ln)
	t.Cleanup(func() { ts.srv.Shutdown() })
	return ln.Addr().String()
}

// A body over max_body_bytes: Go's client reads the 413 (no "connection
// reset": the server lingers, reading what the client still sends).
func TestBodyTooLargeGoClient(t *testing.T) {
	ts := newTestServer(t, nil)
	url := "http://" + ts.serve(t) + "/openrtb2/bid"
	big := bytes.Repeat([]byte("a"), 2<<20)
	for i := range 30 {
		resp, err := http.Post(url, "application/json", bytes.NewReader(big))
		if err != nil {
			t.Fatalf("post %d: %v (want a 413 response)", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(body), "too large") {
			t.Fatalf("post %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := ts.m.tooLarge.load(); n != 30 {
		t.Fatalf("openbidder_too_large_requests_total %d, want 30", n)
	}
}

// The same with Python's urllib and http.client, which send the whole body
// before reading.
func TestBodyTooLargePython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH: skipping the Python client check")
	}
	ts := newTestServer(t, nil)
	pythonSees413(t, py, ts.serve(t), "/openrtb2/bid", 2<<20)
}

// pythonSees413 posts a body of size bytes to path ten times with urllib
// and http.client, which send the whole body before reading, and wants a
// 413 every time (not a broken pipe or a reset).
func pythonSees413(t *testing.T, py, addr, path string, size int) {
	t.Helper()
	script := `
import sys, urllib.request, urllib.error, http.client
host, port = sys.argv[1].rsplit(":", 1)
path, size = sys.argv[2], int(sys.argv[3])
body = b"a" * size
out = []
for i in range(5):
    req = urllib.request.Request("http://%s%s" % (sys.argv[1], path), data=body, headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10)
        out.append("200")
    except urllib.error.HTTPError as e:
        out.append(str(e.code))
    except Exception as e:
        out.append("error:" + type(e).__name__)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        out.append(str(c.getresponse().status))
    except Exception as e:
        out.append("error:" + type(e).__name__)
    finally:
        c.close()
print(" ".join(out))
`
	out, err := exec.Command(py, "-c", script, addr, path, strconv.Itoa(size)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, code := range strings.Fields(string(out)) {
		if code != "413" {
			t.Fatalf("python clients saw %q, want only 413", out)
		}
	}
}

// A deeply nested body: the 400's reason (body and header) is at most 200
// bytes, not kilobytes of repeated parser text; the same over the wire for
// errors fasthttp answers itself.
func TestBadRequestReasonShort(t *testing.T) {
	ts := newTestServer(t, nil)
	nested := `{"id":"1","imp":` + strings.Repeat("[", 100000)
	r := ts.bidInTime([]byte(nested))
	body, hdr := r.Body(), r.Header.Peek("x-nobid-reason")
	if r.StatusCode() != 400 || len(body) > maxReason+1 || len(hdr) > maxReason || len(hdr) == 0 {
		t.Fatalf("nested body: %d, body %d bytes, header %d bytes: %.300s", r.StatusCode(), len(body), len(hdr), body)
	}
	if !strings.HasPrefix(string(body), "ortb: malformed request") {
		t.Fatalf("the reason lost its start: %q", body)
	}
	// It quotes the request: text/plain, never sniffed as anything else.
	if ct, nosniff := string(r.Header.ContentType()), string(r.Header.Peek("X-Content-Type-Options")); !strings.HasPrefix(ct, "text/plain") || nosniff != "nosniff" {
		t.Fatalf("400 content type %q, X-Content-Type-Options %q", ct, nosniff)
	}
	// Control bytes from the request cannot reach the header.
	r = ts.bidInTime([]byte("{\"id\":\"1\",\"imp\":[{\"id\":\"\x01\n\"}],\"x\":\x7f}"))
	for _, c := range r.Header.Peek("x-nobid-reason") {
		if c < 0x20 || c >= 0x7f {
			t.Fatalf("control byte in the header: %q", r.Header.Peek("x-nobid-reason"))
		}
	}
	// fasthttp's own 400 (a malformed header line).
	c, err := net.Dial("tcp", ts.serve(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 1" + strings.Repeat("9", 3000) + "\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, _ := io.ReadAll(c)
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 400")) {
		t.Fatalf("malformed header: %.200q", resp)
	}
	if i := bytes.Index(resp, []byte("\r\n\r\n")); i < 0 || len(resp)-i-4 > maxReason {
		t.Fatalf("fasthttp's 400 reason is %d bytes: %q", len(resp)-i-4, resp)
	}
}

// The server's timeouts come from the limits, not fixed 5 s: a body that
// stalls is cut off at read_timeout (408); a new connection may wait for its
// first request up to idle_timeout.
func TestServerTimeoutsFromLimits(t *testing.T) {
	ts := newTestServer(t, nil)
	l := ts.cfg.Limits
	if l.ReadTimeout != time.Second || l.WriteTimeout != time.Second || ts.srv.WriteTimeout != time.Second ||
		l.IdleTimeout != time.Minute || ts.srv.IdleTimeout != time.Minute || ts.srv.ReadTimeout != time.Minute {
		t.Fatalf("defaults: %+v; server read %v write %v idle %v", l, ts.srv.ReadTimeout, ts.srv.WriteTimeout, ts.srv.IdleTimeout)
	}
	if rc := ts.srv.HeaderReceived(nil); rc.ReadTimeout != time.Second {
		t.Fatalf("body read timeout %v, want read_timeout 1s", rc.ReadTimeout)
	}
	ts = newTestServer(t, func(c *Config) { c.Limits.DefaultTMax = 300 * time.Millisecond })
	if l := ts.cfg.Limits; l.ReadTimeout != 3*time.Second || l.WriteTimeout != 3*time.Second {
		t.Fatalf("from default_tmax 300ms: %+v", l)
	}
	ts = newTestServer(t, func(c *Config) { c.Limits.ReadTimeout = 100 * time.Millisecond })
	addr := ts.serve(t)
	// A connection opened ahead of traffic outlives read_timeout.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// A peer that sends headers and half a body, then stalls, gets 408.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := io.ReadAll(c)
	if err != nil || !bytes.HasPrefix(resp, []byte("HTTP/1.1 408")) {
		t.Fatalf("stalled body: %v %.100q", err, resp)
	}
	idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(idle).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("a connection idle longer than read_timeout before its first request: %q", line)
	}
}

// A peer that trickles its headers a byte at a time is cut off read_timeout
// after its first byte (408, then close), on a connection's first request
// and on a later one, while a connection idle between requests, or before
// its first, outlives read_timeout.
func TestTrickledHeadersCutAtReadTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.ReadTimeout = 200 * time.Millisecond })
	addr := ts.serve(t)
	const head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " // never ends
	// trickle sends head a byte every 50 ms, then more header bytes, for at
	// most 8 s (40 x read_timeout); it reports what the server answered and
	// how long the server kept the connection.
	trickle := func(c net.Conn, br *bufio.Reader) (string, time.Duration) {
		start := time.Now()
		done := make(chan string, 1)
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, _ := br.ReadString('\n')
			io.Copy(io.Discard, br) // until the server closes
			done <- line
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; time.Since(start) < 8*time.Second; i++ {
			b := byte('a')
			if i < len(head) {
				b = head[i]
			}
			select {
			case line := <-done:
				return line, time.Since(start)
			case <-tick.C:
				c.Write([]byte{b})
			}
		}
		return "", time.Since(start)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line, held := trickle(c, bufio.NewReader(c)); !strings.HasPrefix(line, "HTTP/1.1 408") || held >= 8*time.Second {
		t.Fatalf("first request trickled: answer %q, connection held %v", line, held)
	}
	// A later request on a kept-alive connection, after an idle wait longer
	// than read_timeout.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	br := bufio.NewReader(c2)
	time.Sleep(400 * time.Millisecond) // opened ahead of traffic
	for i := range 2 {
		c2.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		c2.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d on a connection idle 400 ms: %v %v", i, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(400 * time.Millisecond) // idle between requests
	}
	if line, held := trickle(c2, br); !strings.HasPrefix(line, "HTTP/1.1 408") || held >= 8*time.Second {
		t.Fatalf("third request trickled: answer %q, connection held %v", line, held)
	}
}

// The arrival stamp is when the data reached the host (kernel timestamp),
// not when it was read.
func TestArrivalIsKernelReceiveTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	el := newEdgeListener(ln, 0, 1<<16)
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sc, err := el.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	ec := sc.(*edgeConn)
	if ec.rc == nil {
		t.Skip("no kernel receive timestamps here (not Linux TCP, or under the race detector: see race_on.go)")
	}
	buf := make([]byte, 64)
	// Timestamping is switched on stack-wide lazily: the first packets may
	// come without one (then the read time is used). Wait for a stamped one.
	waitFor(t, 10*time.Second, func() bool {
		cl.Write([]byte("ping"))
		ec.Read(buf)
		ec.Write([]byte("pong"))
		io.ReadFull(cl, buf[:4])
		return ec.kernel
	})
	for i := range 3 {
		sent := time.Now()
		cl.Write([]byte("request"))
		time.Sleep(30 * time.Millisecond) // the request waits, unread
		read := time.Now()
		if n, err := ec.Read(buf); err != nil || n != 7 {
			t.Fatalf("read: %d %v", n, err)
		}
		// The kernel's stamp is wall-clock time: a correction of this
		// machine's clock between the stamp and the read (CI saw one of
		// half a millisecond) moves the arrival by as much, so it may come
		// up to clockStep before the write. A stale stamp or the read time
		// is still told apart: 30 ms either way.
		const clockStep = 2 * time.Millisecond
		if !ec.kernel || ec.arrival.Before(sent.Add(-clockStep)) || read.Sub(ec.arrival) < 25*time.Millisecond {
			t.Fatalf("request %d: arrival %v after the write, read %v after it: want the receive time", i, ec.arrival.Sub(sent), read.Sub(ec.arrival))
		}
		first := ec.arrival
		cl.Write([]byte("more body"))
		ec.Read(buf)
		if ec.arrival != first {
			t.Fatal("a read within the same request moved its arrival")
		}
		ec.Write([]byte("response")) // re-arms for the next request
		io.ReadFull(cl, buf[:8])
	}
	// The peer closing: EOF.
	cl.Close()
	if _, err := ec.Read(buf); err != io.EOF {
		t.Fatalf("after the peer closed: %v, want EOF", err)
	}
}

// A request that waited in the queue past its deadline is answered 204 at
// once (today's clock would start at handler entry and bid).
func TestQueuedRequestMissesDeadline(t *testing.T) {
	ts := newTestServer(t, nil)
	ec := &edgeConn{Conn: nopConn{}, arrival: time.Now().Add(-time.Second)}
	var ctx fasthttp.RequestCtx
	ctx.Init2(ec, nil, false)
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/openrtb2/bid")
	ctx.Request.SetBody(readReq(t, "site-banner.json"))
	ts.handle(&ctx)
	if got, why := ctx.Response.StatusCode(), string(ctx.Response.Header.Peek("x-nobid-reason")); got != 204 || why != "tmax" {
		t.Fatalf("a request queued for 1s: %d %q, want 204 tmax", got, why)
	}
	if len(ts.money.holds) != 0 {
		t.Fatalf("holds placed for a request past its deadline: %v", ts.money.holds)
	}
}

// nopConn is a net.Conn for RequestCtx.Init2 in handler tests.
type nopConn struct{ net.Conn }

func (nopConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (nopConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// exhaustedListener fails its first n accepts as a process out of file
// descriptors does (accept4: EMFILE), then accepts as ln does.
type exhaustedListener struct {
	net.Listener
	n atomic.Int32
}

func (l *exhaustedListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Running out of file descriptors is not the listener's end: fasthttp's
// Serve returned on the accept error, and the bidder exited (an outside
// audit held idle connections up to the fd limit). Accept now waits and
// tries again, counted; an error of any other kind still ends Serve.
func TestAcceptOutOfDescriptorsRetries(t *testing.T) {
	ts := newTestServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &exhaustedListener{Listener: ln}
	el.n.Store(4)
	served := make(chan error, 1)
	go func() { served <- ts.Serve(el) }()
	t.Cleanup(func() { ts.srv.Shutdown() })
	client := &http.Client{Timeout: 10 * time.Second} // without the retry, nothing accepts it
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("after EMFILE: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after EMFILE: %d", resp.StatusCode)
	}
	if n := ts.acceptRetries(); n != 4 {
		t.Errorf("accept_retries_total %d, want 4", n)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
	ln.Close()
	select {
	case err := <-served:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve after the listener closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return once the listener closed")
	}
}

// An outside audit held idle connections up to the file descriptor limit:
// the embedded NATS store then failed to open a file, kept that write error
// for good, and no notice was charged again until a restart. The bid
// listener holds at most limits.max_conns: one over it is closed as soon as
// it is accepted, and past half of it a connection's wait for its first
// request is read_timeout, not idle_timeout. A request on a connection
// already open is still answered, and a closed one's place is given back.
func TestConnCapRefusesAndCutsIdleWaits(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxConns = 4; c.Limits.ReadTimeout = 300 * time.Millisecond })
	addr := ts.serve(t)
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin tells whether the server closed c (EOF or reset, after
	// a 408 maybe) before d.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	el := func() *edgeListener {
		for range 100 {
			if el := ts.edgeLn.Load(); el != nil {
				return el
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no listener")
		return nil
	}()
	waitOpen := func(n int64) {
		t.Helper()
		for range 500 {
			if el.open.Load() == n {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("open connections %d, want %d", el.open.Load(), n)
	}
	a, b := dial(), dial()
	waitOpen(2)
	if closedWithin(a, time.Second) || closedWithin(b, 100*time.Millisecond) {
		t.Fatal("an idle connection under half of the cap was closed before idle_timeout")
	}
	c := dial() // the third: over half of the cap
	waitOpen(3)
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("an idle connection over half of the cap was kept past read_timeout")
	}
	waitOpen(2)
	// Four held, each mid-request (headers begun) for less than the read age
	// the cap waits for (set long here): over the cap, nothing may be
	// closed, so a new connection is refused. On a server whose read_timeout
	// outlasts any stall of a loaded machine: at 300 ms a request begun on
	// one of the four could time out (408, closed) before the fifth came,
	// and the fifth took its place (refused 0, evicted 0).
	el, dial = capRig(t, 4)
	el.readAge.Store(int64(time.Hour))
	a, b = dial(), dial()
	d, e := dial(), dial()
	waitOpen(4)
	for _, c := range []net.Conn{a, b, d, e} {
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, el, 0)
	f := dial() // over the cap
	if !closedWithin(f, 5*time.Second) {
		t.Fatal("a connection over the cap was kept while every one held was mid-request")
	}
	if n, ev := el.refused.Load(), el.evicted.Load(); n != 1 || ev != 0 {
		t.Fatalf("refused %d, evicted %d; want 1 and 0", n, ev)
	}
	// A request on a connection held under the cap is answered.
	if _, err := a.Write([]byte("Host: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(a), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on a held connection: %v %v", resp, err)
	}
	resp.Body.Close()
	b.Close()
	waitOpen(3)
	g := dial() // a place was given back
	waitOpen(4)
	if closedWithin(g, 100*time.Millisecond) {
		t.Fatal("a connection under the cap was closed at once")
	}
}

// listLen counts the connections on el's lists ks.
func listLen(el *edgeListener, ks ...uint8) int {
	el.lists.mu.Lock()
	defer el.lists.mu.Unlock()
	n := 0
	for _, k := range ks {
		for c := el.lists.head[k]; c != nil; c = c.next {
			n++
		}
	}
	return n
}

// waitList waits until el's lists ks hold n connections.
func waitList(t *testing.T, el *edgeListener, n int, ks ...uint8) {
	t.Helper()
	for range 500 {
		if listLen(el, ks...) == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("lists %v hold %d connections, want %d", ks, listLen(el, ks...), n)
}

// waitIdle waits until n of el's connections wait for a request.
func waitIdle(t *testing.T, el *edgeListener, n int) {
	t.Helper()
	waitList(t, el, n, listWaiting, listBidder)
}

// At the cap a new connection closes the one that has waited longest for a
// request (never sent one, or idle since its last answer) and is served; one
// mid-request goes only when none waits. Before, a flood of connections that
// send nothing held every place and an exchange's new connection was refused
// (an outside audit): the port was shut.
func TestConnCapEvictsTheLongestWaiting(t *testing.T) {
	el, dialConn := capRig(t, 4)
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c := dialConn()
		return c, bufio.NewReader(c)
	}
	ask := func(c net.Conn, r *bufio.Reader) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	open := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	w, wr := dial() // answered once: waits again since its answer
	waitIdle(t, el, 1)
	i1, _ := dial()
	waitIdle(t, el, 2)
	i2, _ := dial()
	waitIdle(t, el, 3)
	ask(w, wr) // the idle order is now i1, i2, w
	p, _ := dial()
	waitIdle(t, el, 4)
	if _, err := p.Write([]byte("GET /healthz HTTP/1.1\r\n")); err != nil { // mid-request
		t.Fatal(err)
	}
	waitIdle(t, el, 3)
	for _, want := range []net.Conn{i1, i2, w} {
		n, nr := dial() // over the cap: the longest waiting goes
		ask(n, nr)
		if open(want) {
			t.Fatal("the connection that waited longest for a request was kept")
		}
	}
	if !open(p) {
		t.Fatal("a connection mid-request was closed for a new one")
	}
	if ev, ref := el.evicted.Load(), el.refused.Load(); ev != 3 || ref != 0 {
		t.Fatalf("evicted %d, refused %d; want 3 and 0", ev, ref)
	}
}

// The default cap leaves a quarter of the descriptor limit, at least 1,024
// or half of it, to everything else the process opens.
func TestConnCapDefault(t *testing.T) {
	for _, c := range []struct{ n, want int64 }{{1024, 512}, {4096, 3072}, {20000, 15000}, {262144, 196608}, {1, 1}} {
		if got := capFor(c.n); got != c.want {
			t.Errorf("capFor(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	if connCap(7) != 7 {
		t.Error("a configured max_conns is not used")
	}
	if n := fdLimit(); n > 0 {
		if got := connCap(int(capFor(n)) + 100); got != capFor(n) {
			t.Errorf("max_conns %d over what the descriptor limit %d allows: cap %d, want %d", capFor(n)+100, n, got, capFor(n))
		}
	}
}

// Every answer of the bid endpoint names its OpenRTB version, the ones
// fasthttp writes too: a body over max_body_bytes (413), another method
// (405), a body that stops coming (408). An outside audit found them without.
func TestErrorAnswersNameTheVersion(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.ReadTimeout = 300 * time.Millisecond })
	addr := ts.serve(t)
	raw := func(req string) *http.Response {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	head := "Host: x\r\nx-openrtb-version: 2.5\r\nContent-Type: application/json\r\n"
	for _, c := range []struct {
		name, req string
		code      int
	}{
		{"too large", "POST /openrtb2/bid HTTP/1.1\r\n" + head + "Content-Length: 10000000\r\n\r\n{", 413},
		{"method", "PUT /openrtb2/bid HTTP/1.1\r\n" + head + "Content-Length: 2\r\n\r\n{}", 405},
		{"body stops", "POST /openrtb2/bid HTTP/1.1\r\n" + head + "Content-Length: 100\r\n\r\n{\"id\":", 408},
	} {
		resp := raw(c.req)
		want := "2.5"
		if c.code == 408 {
			want = "2.6" // fasthttp resets a request whose body it could not read: its header is gone
		}
		if resp.StatusCode != c.code || resp.Header.Get("x-openrtb-version") != want {
			t.Errorf("%s: %d, x-openrtb-version %q; want %d and %s", c.name, resp.StatusCode, resp.Header.Get("x-openrtb-version"), c.code, want)
		}
	}
}

// Every answer over HTTP has a Date header (RFC 9110 section 6.6.1: an
// origin server with a clock must send one): a bid, a no-bid, a 400, a 405,
// a forged notice's 403 and /healthz. There was none.
func TestAnswersHaveADate(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := ts.serve(t)
	bid, _ := os.ReadFile("testdata/requests/site-banner.json")
	noBid := bytes.Replace(bid, []byte(`"bidfloor":0.5`), []byte(`"bidfloor":5000`), 1)
	for _, c := range []struct {
		name, method, path string
		body               []byte
		code               int
	}{
		{"bid", "POST", "/openrtb2/bid", bid, 200},
		{"no-bid", "POST", "/openrtb2/bid", noBid, 204},
		{"malformed", "POST", "/openrtb2/bid", []byte(`{"id":"x"}`), 400},
		{"method", "PUT", "/openrtb2/bid", bid, 405},
		{"notice", "GET", "/notice/win?t=x", nil, 403},
		{"health", "GET", "/healthz", nil, 200},
	} {
		before := time.Now().Add(-5 * time.Second) // formatted once a second, by a goroutine a loaded machine may delay
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, bytes.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if resp.StatusCode != c.code || err != nil || d.Before(before) || d.After(time.Now().Add(5*time.Second)) {
			t.Errorf("%s: %d, Date %q (%v); want %d and the time of the answer", c.name, resp.StatusCode, resp.Header.Get("Date"), err, c.code)
		}
	}
}

// Expect: 100-continue with a Content-Length over max_body_bytes is
// answered 413 before any body is sent, not invited with 100 Continue (an
// outside audit); one within it is invited and answered.
func TestExpectContinueTooLarge(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := ts.serve(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nx-openrtb-version: 2.5\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 10000000\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 413 || resp.Header.Get("x-openrtb-version") != "2.5" {
		t.Fatalf("Expect: 100-continue over max_body_bytes: %v %v, want 413 at once, naming version 2.5", resp, err)
	}
	body, _ := os.ReadFile("testdata/requests/site-banner.json")
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"))
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c2)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "100") {
		t.Fatalf("within max_body_bytes: %q %v, want 100 Continue", line, err)
	}
	br.ReadString('\n') // the blank line after the interim answer
	c2.Write(body)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the bid after 100 Continue: %v %v", resp, err)
	}
}

// A request in flight is never evicted for a new connection at the cap, also
// when fasthttp wrote to its connection before reading it whole: a body
// invited by 100 Continue, and a pipelined request whose first bytes came
// with the one before (its answer flushed while it waits for the rest).
// Before, the cap's list took a connection back at every write, and both
// were closed for the newcomer (a review). The one closed is the connection
// that has read a request longest, past the read age.
func TestConnCapNeverEvictsARequestInFlight(t *testing.T) {
	for _, c := range []struct {
		name        string
		first, rest string
		interim     bool // 100 Continue answered before the rest
	}{
		{"body invited by 100 Continue",
			"POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", "{}", true},
		{"pipelined request mid-headers",
			"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n", "Host: x\r\n\r\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			el, dial := capRig(t, 2)
			el.readAge.Store(int64(200 * time.Millisecond))
			held := dial()
			waitIdle(t, el, 1)
			if _, err := held.Write([]byte("GET /healthz HTTP/1.1\r\n")); err != nil { // a slow reader
				t.Fatal(err)
			}
			waitIdle(t, el, 0)
			time.Sleep(250 * time.Millisecond) // past the read age
			b := dial()
			waitIdle(t, el, 1)
			if _, err := b.Write([]byte(c.first)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(b)
			if c.interim {
				if line, err := br.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
					t.Fatalf("interim answer %q %v", line, err)
				}
				br.ReadString('\n')
			} else {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			dial() // over the cap: the slow reader goes, not b
			if !closedBy(held, 5*time.Second) {
				t.Fatal("the connection reading a request longest, past the read age, was kept")
			}
			if _, err := b.Write([]byte(c.rest)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the request in flight was cut: %v (evicted %d, refused %d)", err, el.evicted.Load(), el.refused.Load())
			}
			resp.Body.Close()
			if ev, ref := el.evicted.Load(), el.refused.Load(); ev != 1 || ref != 0 {
				t.Fatalf("evicted %d, refused %d; want 1 and 0", ev, ref)
			}
		})
	}
}

// capRig is a test server with limits.max_conns n (read_timeout 20 s), its
// edge listener and a dialer of connections closed at the test's end.
func capRig(t *testing.T, n int) (*edgeListener, func() net.Conn) {
	t.Helper()
	ts := newTestServer(t, func(cfg *Config) { cfg.Limits.MaxConns = n; cfg.Limits.ReadTimeout = 20 * time.Second })
	addr := ts.serve(t)
	var el *edgeListener
	for range 100 {
		if el = ts.edgeLn.Load(); el != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return el, func() net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn
	}
}

// closedBy tells whether the server closed c (EOF or reset) before d.
func closedBy(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// At the cap, connections that each sent a byte of a request and no more
// (a slowloris) are closed for new ones once they have read past the read
// age, oldest first; and an exchange's connection (it served a bid request)
// waiting for its next request goes after every other: the ones that never
// served a bid request and the slow readers. Before, a slowloris at a
// connection a second per place shut the port (an outside audit: 11% of a
// client's requests answered), and an idle flood closed exchanges' keep-alive
// connections (half their requests lost).
func TestConnCapClosesSlowReadersAndKeepsExchanges(t *testing.T) {
	el, dial := capRig(t, 3)
	el.readAge.Store(int64(100 * time.Millisecond))
	ex := dial() // an exchange: one bid request, then waiting for the next
	body := readReq(t, "site-banner.json")
	req := fmt.Sprintf("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	exr := bufio.NewReader(ex)
	ask := func() {
		t.Helper()
		if _, err := ex.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(exr, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("the exchange's bid request: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	ask()
	slow1, slow2 := dial(), dial()
	for i, s := range []net.Conn{slow1, slow2} {
		if _, err := s.Write([]byte("P")); err != nil {
			t.Fatal(err)
		}
		waitList(t, el, i+1, listReading) // in this order
	}
	time.Sleep(150 * time.Millisecond) // past the read age
	idle := dial()                     // over the cap: the oldest slow reader goes
	if c1, c2 := closedBy(slow1, 5*time.Second), closedBy(slow2, 50*time.Millisecond); !c1 || c2 {
		t.Fatalf("slow readers closed: oldest %v, other %v (evicted %d, refused %d); want the oldest only", c1, c2, el.evicted.Load(), el.refused.Load())
	}
	waitIdle(t, el, 2) // the exchange's and the new one
	dial()             // over the cap: the waiting one that never bid goes, not the exchange's
	if !closedBy(idle, 5*time.Second) {
		t.Fatal("a connection that never served a bid request was kept over an exchange's")
	}
	ask() // the exchange's connection still serves
	if ev := el.evicted.Load(); ev != 2 {
		t.Fatalf("evicted %d, want 2", ev)
	}
}

// victim passes over a waiting connection whose next request has arrived
// unread (closing it would reset the request), and still closes a slow
// reader past the read age that has a byte unread: the unread-bytes check
// is for waiting connections only (a review found it applied to readers,
// which then left every list and held their place to read_timeout).
func TestCapVictimAndUnreadBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (cli net.Conn, c *edgeConn) {
		t.Helper()
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close(); srv.Close() })
		return cli, &edgeConn{Conn: srv}
	}
	unread := func(c *edgeConn) {
		t.Helper()
		for range 200 {
			if c.pending() {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("the byte sent never showed as unread")
	}
	var l capLists
	now := time.Now().Add(time.Second)
	wcli, waiting := pair()
	l.put(waiting, listWaiting)
	wcli.Write([]byte("GET /healthz HTTP/1.1\r\n\r\n"))
	unread(waiting)
	if v := l.victim(now, evictReadAge); v != nil || waiting.evicted.Load() {
		t.Fatal("a waiting connection with its request unread was chosen")
	}
	rcli, reader := pair()
	l.put(reader, listReading)
	rcli.Write([]byte("P"))
	unread(reader)
	if v := l.victim(now, evictReadAge); v != reader || !reader.evicted.Load() {
		t.Fatalf("the slow reader past the read age was not chosen (list %d)", reader.list)
	}
}

// fasthttp wrote its own error answers (400, 408, 413) with the write
// deadline of the connection's previous answer: on a kept-alive connection
// more than write_timeout after it, the answer was lost and the client saw
// only the connection close (an outside audit).
func TestErrorAnswersOnAKeptAliveConnection(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Limits.ReadTimeout, c.Limits.WriteTimeout = 200*time.Millisecond, 100*time.Millisecond
	})
	addr := ts.serve(t)
	for _, c := range []struct {
		name, req string
		code      string
	}{
		{"two Content-Length", "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "400"},
		{"body over max_body_bytes", "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n{", "413"},
		{"body stops", "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", "408"},
		{"body cut by a half-close", "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{" + halfClose, "400"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: first request: %v %v", c.name, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(300 * time.Millisecond) // three write timeouts after the first answer
		req, cut := strings.CutSuffix(c.req, halfClose)
		conn.Write([]byte(req))
		if cut {
			conn.(*net.TCPConn).CloseWrite()
		}
		line, _ := br.ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 "+c.code) {
			t.Errorf("%s, 300 ms after the previous answer: got %q, want %s", c.name, line, c.code)
		}
		conn.Close()
	}
	if n := ts.m.timedOut.load(); n != 1 {
		t.Errorf("request_timeouts_total %d, want 1", n)
	}
}

// halfClose marks a request the client half-closes after writing.
const halfClose = "\x00half-close"

// A connection that never sent a byte is closed at idle_timeout without an
// answer, as an idle kept-alive one is: its 408, which nobody asked for,
// was read by an exchange as the answer to the bid request it sent at that
// moment (an outside audit). A request its client abandons half-way is
// counted as cut, not as a 400 nobody received.
func TestIdleNewConnectionClosesWithoutAnAnswer(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Limits.ReadTimeout, c.Limits.IdleTimeout = 100*time.Millisecond, 300*time.Millisecond
	})
	addr := ts.serve(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	got, err := io.ReadAll(conn)
	if len(got) != 0 || err != nil {
		t.Errorf("a connection idle from its start: read %q (%v), want a close without an answer", got, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before idle_timeout 300ms", d)
	}
	if n := ts.m.timedOut.load(); n != 0 {
		t.Errorf("request_timeouts_total %d, want 0: no request came", n)
	}
	bad := ts.m.badRequest.load()
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\":"))
		time.Sleep(20 * time.Millisecond)
		c.Close()
	}
	// A client that half-closes after part of a request (CloseWrite) can
	// still read: it gets a 400, not fasthttp's default 200 (a notice's
	// sender read success for a notice never read whole: a review), and
	// after the answer of a whole request before it in the same write (a
	// close lost that 200 while its bid stood: a recheck).
	whole := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, c := range []struct {
		send string
		want []string // the answers' status lines, in order
	}{
		{"POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Le", []string{"HTTP/1.1 400"}},
		{"POST /notice/win?t=x HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{", []string{"HTTP/1.1 400"}},
		{whole + "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{", []string{"HTTP/1.1 200", "HTTP/1.1 400"}},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(c.send))
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := answers(conn)
		conn.Close()
		if !slices.Equal(got, c.want) {
			t.Errorf("%.30q then a half-close: answered %v, want %v", c.send, got, c.want)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return ts.m.cutShort.load() >= 6 })
	if n := ts.m.cutShort.load(); n != 6 {
		t.Errorf("requests_cut_total %d, want 6", n)
	}
	if n := ts.m.badRequest.load(); n != bad {
		t.Errorf("bad_requests_total went from %d to %d for requests their clients abandoned", bad, n)
	}
}

// A stalled request gets its 408 after a connection's earlier answer (a
// whole request and the start of the next in one write) and after a 100
// Continue: both have written on the connection, so the stall is a
// request's, not a connection that never sent one (a recheck: both were
// closed silently).
func TestStallAfterAnAnswerGets408(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.ReadTimeout = 200 * time.Millisecond })
	addr := ts.serve(t)
	for _, c := range []struct {
		send string
		want []string
	}{
		{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /openrtb2/bid HTTP/1.1\r\nHo", []string{"HTTP/1.1 200", "HTTP/1.1 408"}},
		{"POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n", []string{"HTTP/1.1 100", "HTTP/1.1 408"}},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(c.send))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := answers(conn)
		conn.Close()
		if !slices.Equal(got, c.want) {
			t.Errorf("%.40q then a stall: answered %v, want %v", c.send, got, c.want)
		}
	}
}

// answers reads every answer on conn until it closes or its read deadline
// passes, and returns their status lines.
func answers(conn net.Conn) []string {
	br := bufio.NewReader(conn)
	var got []string
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return got
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got = append(got, "HTTP/1.1 "+strconv.Itoa(resp.StatusCode))
	}
}
