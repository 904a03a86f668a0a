package ortb

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"strings"
	"testing"
)

func gz(t testing.TB, parts ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range parts {
		w := stdgzip.NewWriter(&buf)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// bomb returns about 1 KiB per MiB of output: n gzip members of 1 MiB of
// zeros each (concatenated members are one gzip stream, so this is cheap to
// build and inflates like a single huge member).
func bomb(t testing.TB, mib int) []byte {
	t.Helper()
	member := gz(t, make([]byte, 1<<20))
	return bytes.Repeat(member, mib)
}

func TestGunzip(t *testing.T) {
	body := readFixture(t, "site_multi_imp.json")
	named := func() []byte {
		var buf bytes.Buffer
		w := stdgzip.NewWriter(&buf)
		w.Name = "request.json"
		w.Comment = "from the exchange"
		w.Extra = []byte("xx")
		w.Write(body)
		w.Close()
		return buf.Bytes()
	}()
	corrupt := gz(t, body)
	corrupt[len(corrupt)-6] ^= 0xff // CRC32 trailer

	f := func(name string, src []byte, limit int, want []byte, wantErr error) {
		t.Helper()
		var g Gunzipper
		prefix := []byte("prefix:")
		for round := range 3 { // the same Gunzipper, reused
			dst := append(make([]byte, 0, 16), prefix...)
			got, err := g.Gunzip(dst, src, limit)
			if !errors.Is(err, wantErr) {
				t.Fatalf("%s round %d: err %v, want %v", name, round, err, wantErr)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("%s: dst prefix lost: %.20q", name, got)
			}
			if err != nil {
				if len(got) != len(prefix) {
					t.Errorf("%s: on error dst length %d, want %d", name, len(got), len(prefix))
				}
				continue
			}
			if !bytes.Equal(got[len(prefix):], want) {
				t.Errorf("%s: got %d bytes, want %d", name, len(got)-len(prefix), len(want))
			}
		}
	}
	f("request", gz(t, body), 256<<10, body, nil)
	f("exactly at limit", gz(t, body), len(body), body, nil)
	f("one over limit", gz(t, body), len(body)-1, nil, ErrTooLarge)
	f("bomb", bomb(t, 4), 256<<10, nil, ErrTooLarge)
	f("empty content", gz(t, nil), 10, []byte{}, nil)
	f("two members", gz(t, body[:100], body[100:]), 1<<20, body, nil)
	f("header with name, comment, extra", named, 1<<20, body, nil)
	f("not gzip", body, 1<<20, nil, ErrMalformed)
	f("empty input", nil, 1<<20, nil, ErrMalformed)
	f("truncated", gz(t, body)[:40], 1<<20, nil, ErrMalformed)
	f("bad checksum", corrupt, 1<<20, nil, ErrMalformed)
	f("trailing garbage", append(gz(t, body), "garbage!!!"...), 1<<20, nil, ErrMalformed)

	var g Gunzipper
	_, err := g.Gunzip(nil, []byte("plain"), 100)
	if msg := err.Error(); !strings.HasPrefix(msg, "ortb: malformed request: gzip: ") || strings.Contains(msg, "\n") {
		t.Errorf("message %q", msg)
	}
}

// TestGunzipBombStopsEarly: the reader stops at limit+1 output bytes, so
// a 100 MiB bomb never inflates into memory past the limit.
func TestGunzipBombStopsEarly(t *testing.T) {
	src := bomb(t, 100)
	var g Gunzipper
	dst := make([]byte, 0, 1024)
	out, err := g.Gunzip(dst, src, 64<<10)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v", err)
	}
	if cap(out) > 256<<10 {
		t.Errorf("grew dst to %d bytes for a 64 KiB limit", cap(out))
	}
}
