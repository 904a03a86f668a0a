package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// floorServers answer every request 204 after reading its body: what HTTP
// alone costs on each stack, for reading the bidders' numbers against.
type floorServers struct {
	fast, std string
	fs        *fasthttp.Server
	hs        *http.Server
}

func startFloors() (*floorServers, error) {
	lf, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ls, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		lf.Close()
		return nil, err
	}
	f := &floorServers{fast: lf.Addr().String(), std: ls.Addr().String(),
		fs: &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }},
		hs: &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		})}}
	go func() { _ = f.fs.Serve(lf) }()
	go func() { _ = f.hs.Serve(ls) }()
	return f, nil
}

func (f *floorServers) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f.fs.ShutdownWithContext(ctx)
	_ = f.hs.Shutdown(ctx)
}
