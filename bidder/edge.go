package bidder

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// The main listener's connections are wrapped (edgeConn) for two things
// fasthttp does not do:
//
// Arrival time. A request's deadline starts when it reached this host, not
// when its handler runs: time spent queued (in the socket buffer while the
// process is busy, in the run queue) counts against tmax. The first read
// after a response asks the kernel for the receive time of the data it
// returns (SO_TIMESTAMPNS on Linux TCP: the software timestamp of the last
// segment that read consumed); where the kernel gives none, the time that
// read returned is used. Caveats: with pipelining, a request read together
// with the one before it (or already buffered) takes that earlier arrival,
// which only makes its deadline earlier; an Expect: 100-continue body read
// after the interim response restamps the request at the body's arrival.
//
// Request deadline. From a request's first byte (its arrival), the whole
// request, headers and body, must be in within read_timeout. fasthttp's own
// ReadTimeout cannot say this: it also bounds a new connection's wait for
// its first request, which must stay idle_timeout (exchanges open
// connections ahead of traffic), so a peer trickling its headers a byte at a
// time would hold a connection for idle_timeout (60 s). The deadline is set
// at the first read of a connection's first request; on later requests
// fasthttp sets one itself at the first byte, and every deadline fasthttp
// sets while a request is being read is cut to the request's (SetReadDeadline
// below), which costs no extra call on the hot path. The answer is fasthttp's
// 408, then close.
//
// Lingering close. When the server closes a connection with request bytes
// still unread (a body over max_body_bytes, a malformed request), closing
// outright makes the kernel answer the unread bytes with a reset, which
// destroys the error response in the client's receive buffer: clients see
// "connection reset" instead of the 413. As nginx does, the connection is
// instead half-closed after the response (FIN), what the client still sends
// is read and discarded for at most lingerTime / lingerBytes, then closed.
//
// Connection cap (limits.max_conns). At the cap a new connection closes one
// that serves nothing, and takes its place; it is refused (closed at once)
// only when there is none. Refusing every new one at the cap kept the
// process whole under a flood of idle connections but shut the port: an
// exchange's new connection found no place (an outside audit). Which one
// goes, from fasthttp's connection states (connState) and the handler's
// entry (inHandler), oldest first in each of three lists (capLists):
//
//  1. waiting for a request that has never served a bid request: new, or
//     idle after pixels, notices or health checks;
//  2. reading a request for longer than evictReadAge without reaching the
//     handler (a slowloris, a byte at a time; a request from an exchange is
//     in whole within that);
//  3. waiting for a request after serving a bid request (an exchange's
//     keep-alive connection).
//
// A request in flight (in the handler, or read for less than evictReadAge:
// a body invited by 100 Continue, a pipelined request) is never closed, nor
// is a waiting connection whose next request has arrived unread (FIONREAD):
// closing it would reset the request. So a flood of idle connections churns
// among itself, and so does one of connections that each send a byte,
// while exchanges' connections and requests are served. Past half the cap
// a wait for a request is cut to read_timeout, and an error answer closes
// without lingering.

const (
	lingerTime  = 2 * time.Second // whole lingering period
	lingerIdle  = 500 * time.Millisecond
	lingerBytes = 16 << 20 // discarded at most per connection
	maxLinger   = 256      // connections lingering at once; beyond, plain close
	maxStampLag = 10 * time.Second
)

// edgeListener wraps accepted connections in edgeConn.
type edgeListener struct {
	net.Listener
	readTimeout time.Duration // a request's whole read from its first byte; 0: none
	lingering   atomic.Int32
	retries     atomic.Uint64 // accepts retried for want of descriptors or memory
	bufs        sync.Pool     // *[]byte discard buffers
	// Connection cap (limits.max_conns): open counts the accepted
	// connections not closed yet (lingering ones included: they hold a
	// descriptor); over maxConns a new one is closed at once (refused);
	// over pressure, waits for a request are cut to the read timeout.
	maxConns, pressure int64
	open               atomic.Int64
	refused            atomic.Uint64
	evicted            atomic.Uint64
	lists              capLists
	readAge            atomic.Int64 // evictReadAge (tests change it)
}

// evictReadAge is how long a connection may read a request before the cap
// may close it for a new one.
const evictReadAge = 50 * time.Millisecond

// Which of the cap's lists a connection is on (edgeConn.list).
const (
	listNone    uint8 = iota
	listWaiting       // waiting for a request, never served a bid request
	listReading       // reading a request, not yet in the handler
	listBidder        // waiting for a request after serving a bid request
	numLists
)

// capLists are the connections the cap may close, one intrusive list each
// (oldest first), under one lock: a request's moves (to reading at its first
// byte, out at the handler, back to waiting at its answer) allocate nothing.
type capLists struct {
	mu         sync.Mutex
	head, tail [numLists]*edgeConn
}

// put moves c to the back of list k (out of any list for listNone), unless
// it is closing or evicted (checked under the lock: Close marks it, then
// takes it out; evict marks it under the lock).
func (l *capLists) put(c *edgeConn, k uint8) {
	l.mu.Lock()
	if c.list != listNone {
		l.unlinkLocked(c)
	}
	if k != listNone && !c.closing.Load() && !c.evicted.Load() {
		c.prev, c.list = l.tail[k], k
		if l.tail[k] != nil {
			l.tail[k].next = c
		} else {
			l.head[k] = c
		}
		l.tail[k] = c
		if k == listReading {
			c.readSince = time.Now()
		}
	}
	l.mu.Unlock()
}

// victim takes out the connection the cap closes next, marked evicted: the
// oldest waiting one that has never served a bid request, else the oldest
// reading one if it has read for evictReadAge, else the oldest one of an
// exchange's. A waiting connection whose next request has arrived unread is
// passed over (taken out: it is about to be active), at most 8 a call. nil
// when there is none.
func (l *capLists) victim(now time.Time, readAge time.Duration) *edgeConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	for tries := 0; tries < 8; tries++ {
		var c *edgeConn
		switch {
		case l.head[listWaiting] != nil:
			c = l.head[listWaiting]
		case l.head[listReading] != nil && now.Sub(l.head[listReading].readSince) >= readAge:
			c = l.head[listReading]
		case l.head[listBidder] != nil:
			c = l.head[listBidder]
		default:
			return nil
		}
		k := c.list
		l.unlinkLocked(c)
		if k != listReading && c.pending() {
			continue
		}
		c.evicted.Store(true)
		return c
	}
	return nil
}

func (l *capLists) unlinkLocked(c *edgeConn) {
	k := c.list
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head[k] = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail[k] = c.prev
	}
	c.prev, c.next, c.list = nil, nil, listNone
}

// pending tells whether bytes wait unread in c's socket (FIONREAD): a
// request that arrived while c waited. False when it cannot tell.
func (c *edgeConn) pending() bool {
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}

// connCap is limits.max_conns, or by default the descriptor limit less a
// reserve for everything else the process opens (the embedded NATS store
// above all: it fails its writes for good when it cannot open a file).
func connCap(configured int) int64 {
	// Never past what the descriptor limit allows: a max_conns of 3,000
	// under a limit of 1,024 was taken as is, and 1,500 idle connections
	// took every descriptor (the store, the event log, /readyz and the kill
	// switch failed; an outside audit).
	if over, _, capped := maxConnsOverLimit(configured); over {
		return capped
	}
	if configured > 0 {
		return int64(configured)
	}
	if n := fdLimit(); n > 0 {
		return capFor(n)
	}
	return 1 << 16
}

// fdLimit is the process's limit of open files (RLIMIT_NOFILE, soft), 0
// when unknown or practically unlimited.
func fdLimit() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return 0
	}
	return int64(rl.Cur)
}

// maxConnsOverLimit tells whether limits.max_conns is more than the
// descriptor limit allows (capFor), with the limit and the cap it gets.
func maxConnsOverLimit(configured int) (over bool, limit, capped int64) {
	limit = fdLimit()
	if configured <= 0 || limit == 0 {
		return false, limit, int64(configured)
	}
	capped = capFor(limit)
	return int64(configured) > capped, limit, capped
}

// capFor is the default connection cap under a descriptor limit of n.
func capFor(n int64) int64 { return max(n-max(n/4, min(1024, n/2)), 1) }

func newEdgeListener(ln net.Listener, readTimeout time.Duration, maxConns int64) *edgeListener {
	l := &edgeListener{Listener: ln, readTimeout: readTimeout, maxConns: maxConns, pressure: maxConns / 2}
	l.readAge.Store(int64(evictReadAge))
	l.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	// On the listener too: the kernel turns receive timestamping on for
	// the whole stack lazily, after the first socket asks; asking now means
	// it is on before the first request, and accepted sockets inherit it.
	if tl, ok := ln.(*net.TCPListener); ok {
		if rc, err := tl.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { enableStamps(fd) })
		}
	}
	return l
}

func enableStamps(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
}

// Accept waits for the next connection. Running out of file descriptors or
// kernel memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is a passing condition,
// not the listener's end: fasthttp's Serve returns on any error Accept
// returns, and the bidder stopped with it (an outside audit held idle
// connections up to the fd limit and the process exited). Accept waits
// instead, 5 ms doubling to 1 s as net/http does, while the connections
// already open are served and close, and counts each wait
// (openbidder_accept_retries_total). Any other error ends Serve.
func (l *edgeListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if open := l.open.Load(); open >= l.maxConns && (open >= l.maxConns+max(l.maxConns/8, 64) || !l.evict()) {
				l.refused.Add(1)
				c.Close()
				continue
			}
			l.open.Add(1)
			return newEdgeConn(c, l), nil // on the idle list at StateNew (connState)
		}
		if !resourceExhausted(err) {
			return nil, err
		}
		l.retries.Add(1)
		wait = min(max(2*wait, 5*time.Millisecond), time.Second)
		time.Sleep(wait)
	}
}

// evict closes the connection the cap closes next (capLists.victim), false
// when there is none. Its place is given back when its serving goroutine
// sees the close and closes it (edgeConn.Close), so open may run over the
// cap by the evictions not yet seen: Accept refuses past an eighth over it
// (64 over a smaller cap).
func (l *edgeListener) evict() bool {
	c := l.lists.victim(time.Now(), time.Duration(l.readAge.Load()))
	if c == nil {
		return false
	}
	l.evicted.Add(1)
	_ = c.Conn.Close() // its blocked read returns; fasthttp then closes c
	return true
}

// connState keeps the cap's lists from fasthttp's connection states
// (fasthttp.Server.ConnState): new or idle, a connection waits for a request
// (on the bidder list once it served a bid request); active (a request's
// first byte, buffered or not) it reads one until inHandler; closed or
// hijacked it is on none.
func connState(c net.Conn, st fasthttp.ConnState) {
	ec, ok := c.(*edgeConn)
	if !ok || ec.l == nil {
		return
	}
	switch st {
	case fasthttp.StateNew, fasthttp.StateIdle:
		k := listWaiting
		if ec.bidder {
			k = listBidder
		}
		ec.l.lists.put(ec, k)
	case fasthttp.StateActive:
		ec.l.lists.put(ec, listReading)
	default:
		ec.l.lists.put(ec, listNone)
	}
}

// inHandler takes the request's connection off the cap's lists: its request
// is read whole and served.
func inHandler(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*edgeConn); ok && c.l != nil {
		c.l.lists.put(c, listNone)
	}
}

// markBidder notes that the request's connection served a bid request its
// source rules let through: an exchange's, closed last at the cap.
func markBidder(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*edgeConn); ok {
		c.bidder = true
	}
}

// acceptRetries is the bid listener's count of accept waits (0 before Serve).
func (s *Server) acceptRetries() uint64 {
	if el := s.edgeLn.Load(); el != nil {
		return el.retries.Load()
	}
	return 0
}

// connsRefused is the bid listener's count of connections refused over
// its cap (0 before Serve).
func (s *Server) connsRefused() uint64 {
	if el := s.edgeLn.Load(); el != nil {
		return el.refused.Load()
	}
	return 0
}

// connsEvicted is the bid listener's count of waiting connections closed
// for new ones at its cap (0 before Serve).
func (s *Server) connsEvicted() uint64 {
	if el := s.edgeLn.Load(); el != nil {
		return el.evicted.Load()
	}
	return 0
}

// resourceExhausted tells whether an accept failed for want of descriptors
// or memory, which connections closing give back.
func resourceExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// edgeConn is one accepted connection. Reads and writes come from the one
// goroutine serving it; Close may come from another (Shutdown).
type edgeConn struct {
	net.Conn
	l *edgeListener

	armed   bool      // the next read that returns data starts a request
	arrival time.Time // arrival of the current request
	kernel  bool      // arrival is the kernel's receive time (else the read's)
	served  bool      // a response was written: not the connection's first request
	// reqDeadline is arrival + the listener's readTimeout while a request
	// is being read and served; zero between requests (see the top of file).
	reqDeadline time.Time

	// Kernel receive timestamps: rc is nil where unavailable. recvFn, p, n,
	// oobn and rerr carry one recvmsg call (a method value made once, so a
	// read allocates nothing).
	rc     syscall.RawConn
	recvFn func(fd uintptr) bool
	p      []byte
	n      int
	oobn   int
	rerr   error
	oob    [64]byte

	linger  atomic.Bool // half-close and drain instead of closing outright
	closing atomic.Bool
	evicted atomic.Bool // closed by the cap for a new connection (edgeListener.evict)

	// The cap's lists (capLists; guarded by its mutex).
	prev, next *edgeConn
	list       uint8
	readSince  time.Time // when it went on the reading list
	bidder     bool      // it served a bid request (set by its serving goroutine)
}

func newEdgeConn(c net.Conn, l *edgeListener) *edgeConn {
	ec := &edgeConn{Conn: c, l: l, armed: true}
	if tc, ok := c.(*net.TCPConn); ok && !raceEnabled {
		if rc, err := tc.SyscallConn(); err == nil {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = enableStamps(fd) }); err == nil && serr == nil {
				ec.rc = rc
				ec.recvFn = ec.recv
			}
		}
	}
	return ec
}

func (c *edgeConn) Read(p []byte) (int, error) {
	if !c.armed {
		return c.Conn.Read(p)
	}
	if c.rc == nil || len(p) == 0 {
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.armed, c.arrival, c.kernel = false, time.Now(), false
			c.startRequest()
		}
		return n, c.readErr(err)
	}
	c.p = p
	err := c.rc.Read(c.recvFn)
	c.p = nil
	if err == nil && c.rerr != nil {
		err = os.NewSyscallError("recvmsg", c.rerr)
	}
	if err != nil {
		return 0, c.readErr(err)
	}
	if c.n == 0 {
		return 0, io.EOF
	}
	now := time.Now()
	c.armed, c.arrival, c.kernel = false, now, false
	if ts, ok := stampNS(c.oob[:c.oobn]); ok {
		if lag := time.Duration(now.UnixNano() - ts); lag >= 0 && lag < maxStampLag {
			c.arrival, c.kernel = now.Add(-lag), true // keeps now's monotonic reading
		}
	}
	c.startRequest()
	return c.n, nil
}

// readErr is a read's error, io.EOF for a connection the cap evicted (it
// was waiting for a request: nothing is lost, and fasthttp closes it
// quietly, as when a client does).
func (c *edgeConn) readErr(err error) error {
	if err != nil && c.evicted.Load() {
		return io.EOF
	}
	return err
}

// startRequest starts the request deadline at its first byte: set here on
// a connection's first request only (fasthttp sets none after that byte);
// on later ones fasthttp's own call right after it is cut to it.
func (c *edgeConn) startRequest() {
	if c.l == nil || c.l.readTimeout <= 0 {
		return
	}
	c.reqDeadline = c.arrival.Add(c.l.readTimeout)
	if !c.served {
		_ = c.Conn.SetReadDeadline(c.reqDeadline) // an error resurfaces at the next read
	}
}

// SetReadDeadline cuts a deadline set while a request is read or served to
// the request's own (see the top of file), and one set for the wait for a
// request to the read timeout while the listener holds over half of its
// connection cap (limits.max_conns).
func (c *edgeConn) SetReadDeadline(t time.Time) error {
	if !c.armed && !c.reqDeadline.IsZero() && (t.IsZero() || t.After(c.reqDeadline)) {
		t = c.reqDeadline
	}
	if c.armed && c.l != nil && c.l.open.Load() > c.l.pressure {
		wait := c.l.readTimeout
		if wait <= 0 {
			wait = time.Second
		}
		if dl := time.Now().Add(wait); t.IsZero() || t.After(dl) {
			t = dl
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// recv is one recvmsg(2) into c.p; false asks the poller to wait.
func (c *edgeConn) recv(fd uintptr) bool {
	c.n, c.oobn, _, _, c.rerr = syscall.Recvmsg(int(fd), c.p, c.oob[:], 0)
	if c.n < 0 {
		c.n = 0
	}
	return c.rerr != syscall.EAGAIN
}

// stampNS finds an SCM_TIMESTAMPNS message (struct timespec) in oob.
func stampNS(oob []byte) (int64, bool) {
	const hdr = syscall.SizeofCmsghdr
	for len(oob) >= hdr {
		l := int(binary.NativeEndian.Uint64(oob[0:8]))
		lvl := int32(binary.NativeEndian.Uint32(oob[8:12]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:16]))
		if l < hdr || l > len(oob) {
			return 0, false
		}
		if lvl == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && l >= hdr+16 {
			sec := int64(binary.NativeEndian.Uint64(oob[hdr:]))
			nsec := int64(binary.NativeEndian.Uint64(oob[hdr+8:]))
			return sec*1e9 + nsec, true
		}
		oob = oob[(l+7)&^7:]
	}
	return 0, false
}

// Write re-arms the arrival stamp: the next read that returns data is the
// next request.
func (c *edgeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.armed, c.served, c.reqDeadline = true, true, time.Time{}
	return n, err
}

// neverRequested tells that nothing of a request has arrived on the
// connection and nothing was written on it: a connection opened ahead of
// traffic (the server's error handler closes it without an answer).
func (c *edgeConn) neverRequested() bool { return c.armed && !c.served }

// Close closes the connection, lingering when marked (see the top of file).
func (c *edgeConn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return nil
	}
	if c.l != nil {
		c.l.lists.put(c, listNone)
	}
	if c.linger.Load() && (c.l == nil || c.l.open.Load() <= c.l.pressure) {
		// Past half the cap no connection lingers: a lingering one holds
		// its place for up to lingerTime, out of the cap's reach (an
		// outside audit's slowloris held each place ~3 s so).
		if c.l.lingering.Add(1) <= maxLinger {
			go c.lingerClose()
			return nil
		}
		c.l.lingering.Add(-1)
	}
	defer c.closed()
	return c.Conn.Close()
}

// closed gives the connection's place under the cap back.
func (c *edgeConn) closed() {
	if c.l != nil {
		c.l.open.Add(-1)
	}
}

func (c *edgeConn) lingerClose() {
	defer c.l.lingering.Add(-1)
	defer c.closed()
	defer c.Conn.Close()
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); !ok || hc.CloseWrite() != nil {
		return
	}
	bp := c.l.bufs.Get().(*[]byte)
	defer c.l.bufs.Put(bp)
	end := time.Now().Add(lingerTime)
	for total := 0; total < lingerBytes; {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		dl := now.Add(lingerIdle)
		if dl.After(end) {
			dl = end
		}
		if c.Conn.SetReadDeadline(dl) != nil {
			return
		}
		n, err := c.Conn.Read(*bp)
		total += n
		if err != nil {
			return
		}
	}
}

// requestArrival is when the request being served reached this host (see
// the top of file); handler entry when the connection is not an edgeConn.
func requestArrival(ctx *fasthttp.RequestCtx) time.Time {
	if c, ok := ctx.Conn().(*edgeConn); ok && !c.arrival.IsZero() {
		return c.arrival
	}
	return time.Now()
}

// lingerOnClose marks the request's connection to linger when it closes
// (fasthttp closes it after an error response).
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*edgeConn); ok {
		c.linger.Store(true)
	}
}
