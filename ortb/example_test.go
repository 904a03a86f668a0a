package ortb_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"sync"

	"github.com/openbidder/openbidder/ortb"
)

// requestCtx is the kind of pooled per-request state the bidder keeps.
type requestCtx struct {
	gz   ortb.Gunzipper
	p    ortb.Parser
	req  ortb.Request
	body []byte
}

var ctxPool = sync.Pool{New: func() any { return new(requestCtx) }}

func Example() {
	c := ctxPool.Get().(*requestCtx)
	defer ctxPool.Put(c)

	// What arrives with Content-Encoding: gzip.
	var wire bytes.Buffer
	zw := gzip.NewWriter(&wire)
	zw.Write([]byte(`{"id":"r1","imp":[{"id":"1","bidfloor":0.5,"banner":{"w":300,"h":250}}],` +
		`"regs":{"ext":{"gdpr":1}},"user":{"ext":{"consent":"CPX"}}}`))
	zw.Close()

	var err error
	c.body, err = c.gz.Gunzip(c.body[:0], wire.Bytes(), 256<<10) // ErrTooLarge: 413
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.p.Parse(c.body, &c.req); err != nil {
		fmt.Println(err)
		return
	}
	imp := &c.req.Imps[0]
	fmt.Printf("%s imp %s %dx%d floor %.2f gdpr %d consent %s\n", c.req.ID, imp.ID,
		imp.Banner.W, imp.Banner.H, imp.BidFloor, c.req.Regs.GDPR, c.req.User.Consent)

	out := ortb.AppendJSONString([]byte(`{"id":`), c.req.ID)
	fmt.Println(string(out))

	err = c.p.Parse([]byte(`{"id":"r2","imp":[{"id":"1","bidfloor":"0.5"}]}`), &c.req)
	fmt.Println(errors.Is(err, ortb.ErrInvalid), err)
	// Output:
	// r1 imp 1 300x250 floor 0.50 gdpr 1 consent CPX
	// {"id":"r1"
	// true ortb: invalid request: imp[0].bidfloor: want number, got string
}
