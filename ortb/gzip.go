package ortb

import (
	"bytes"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Gunzipper decompresses gzip request bodies, reusing its reader state.
// It is not safe for concurrent use: keep one per pooled request context.
// The zero value is ready to use.
type Gunzipper struct {
	src bytes.Reader
	zr  gzip.Reader
}

// Gunzip appends the decompression of src to dst and returns the extended
// slice. It returns ErrTooLarge as soon as the output would exceed limit
// bytes, having decompressed at most limit+1 of them (a gzip bomb costs no
// more than the limit), and an error wrapping ErrMalformed for input that is
// not gzip, is truncated or fails its checksum. On error dst is returned with
// its original length. Concatenated gzip members are decompressed in turn.
// Once dst has the capacity, Gunzip does not allocate (a gzip header carrying
// a file name or extra field costs one small allocation).
func (g *Gunzipper) Gunzip(dst, src []byte, limit int) ([]byte, error) {
	start := len(dst)
	g.src.Reset(src)
	if err := g.zr.Reset(&g.src); err != nil {
		return dst, gzipError(err)
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		room := cap(dst) - len(dst)
		if left := start + limit + 1 - len(dst); room > left {
			room = left
		}
		n, err := g.zr.Read(dst[len(dst) : len(dst)+room])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			g.src.Reset(nil)
			return dst[:start], ErrTooLarge
		}
		switch err {
		case nil:
		case io.EOF:
			g.src.Reset(nil)
			return dst, nil
		default:
			g.src.Reset(nil)
			return dst[:start], gzipError(err)
		}
	}
}

func gzipError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "gzip: ") { // compress/gzip's own errors name it (ErrHeader, ErrChecksum)
		msg = "gzip: " + msg
	}
	return &malformedError{msg: msg}
}
