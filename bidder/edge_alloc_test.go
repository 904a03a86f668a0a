//go:build !race

package bidder

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The connection wrapper's request cycle (a stamped first read, a plain
// read, the response write) and the handler's look-up of the stamp allocate
// nothing.
func TestEdgeConnAllocs(t *testing.T) {
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
		t.Log("no kernel timestamps here: measuring the fallback path")
	}
	var ctx fasthttp.RequestCtx
	ctx.Init2(ec, nil, false)
	req, resp := []byte("GET / HTTP/1.1\r\n\r\n"), []byte("HTTP/1.1 204 No Content\r\n\r\n")
	buf, back := make([]byte, 256), make([]byte, len(resp))
	var arrival time.Time
	run := func() {
		cl.Write(req)
		ec.Read(buf[:8])
		ec.Read(buf[:len(req)-8])
		arrival = requestArrival(&ctx)
		ec.Write(resp)
		io.ReadFull(cl, back)
	}
	run()
	if arrival.IsZero() || arrival.After(time.Now()) {
		t.Fatalf("arrival %v", arrival)
	}
	if n := allocs(run); n != 0 {
		t.Errorf("%v allocations per request cycle, want 0", n)
	}
}
