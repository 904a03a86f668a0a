package bidder

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// exchangeConn writes raw to a new connection to addr and reads the
// responses until the server closes it (or 5 s pass), with their bodies.
func exchangeConn(t *testing.T, addr, raw string) (codes []int, bodies []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(c, raw) // the server may answer and close before it has read all
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes, bodies, err == io.EOF || err == io.ErrUnexpectedEOF
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode == http.StatusContinue {
			continue
		}
		codes, bodies = append(codes, r.StatusCode), append(bodies, string(b))
	}
}

func rt9Post(body string, hdr string) string {
	return fmt.Sprintf("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", hdr, len(body), body)
}

// What held on the wire (redteam9): requests pipelined on one connection
// are answered in order, each echoing its own id; a body framed by both
// Content-Length and Transfer-Encoding is read chunked and the connection
// closed, so no bytes of it are taken for a second (smuggled) request; two
// Content-Lengths, a chunked body over max_body_bytes and an Expect:
// 100-continue announcing one get 400, 413 and 413.
func TestRedteam9WireFraming(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := ts.serve(t)
	req := func(id string) string {
		return `{"id":"` + id + `","imp":[{"id":"1",` + rt9Banner + `}],` + rt9Tail + `}`
	}
	codes, bodies, closed := exchangeConn(t, addr,
		rt9Post(req("p1"), "")+rt9Post(req("p2"), "")+rt9Post(req("p3"), "Connection: close\r\n"))
	if fmt.Sprint(codes) != "[200 200 200]" || !closed {
		t.Fatalf("pipelined: %v closed %v", codes, closed)
	}
	for i, b := range bodies {
		var r openrtb2.BidResponse
		if err := json.Unmarshal([]byte(b), &r); err != nil || r.ID != fmt.Sprintf("p%d", i+1) {
			t.Errorf("pipelined answer %d: id %q (%v), want p%d", i, r.ID, err, i+1)
		}
	}

	// Read by Content-Length, the body's first 4 bytes would end the request
	// and the rest parse as a second one (a 400 or a bid); read chunked,
	// it is one bid request.
	body := req("te")
	smuggle := fmt.Sprintf("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	codes, bodies, closed = exchangeConn(t, addr, smuggle)
	if fmt.Sprint(codes) != "[200]" || !closed || !strings.Contains(bodies[0], `"id":"te"`) {
		t.Fatalf("Content-Length and chunked: %v %q closed %v, want one 200 for id te, then close", codes, bodies, closed)
	}

	twoCL := fmt.Sprintf("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 4\r\n\r\n%s", len(body), body)
	if codes, _, closed = exchangeConn(t, addr, twoCL); fmt.Sprint(codes) != "[400]" || !closed {
		t.Fatalf("two Content-Lengths: %v closed %v, want one 400, then close", codes, closed)
	}

	var chunked strings.Builder
	chunked.WriteString("POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat(" ", 64<<10)
	for range 5 { // 320 KiB > 256 KiB
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	chunked.WriteString("0\r\n\r\n")
	if codes, _, _ = exchangeConn(t, addr, chunked.String()); fmt.Sprint(codes) != "[413]" {
		t.Fatalf("chunked body over the limit: %v, want 413", codes)
	}

	expect := "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10485760\r\n\r\n"
	if codes, _, _ = exchangeConn(t, addr, expect); fmt.Sprint(codes) != "[413]" {
		t.Fatalf("Expect: 100-continue for 10 MiB: %v, want 413", codes)
	}
}

// What held in the answer (redteam9): request and imp ids with URL and JSON
// metacharacters, U+2028 and NUL come back as an exchange decoding with
// encoding/json reads them; each bid's notice URLs parse with one t= and
// verify; win, billing and a replayed billing charge each impression once.
// A lone surrogate escape or invalid UTF-8 in an id is a 400 (it could not
// come back as sent: getID).
func TestRedteam9HostileIDsChargeOnce(t *testing.T) {
	app := startApp(t, nil)
	base := "http://" + app.Addr()
	for i, id := range []string{"x\xff\xfey", `\ud800z`} {
		body := fmt.Sprintf(`{"id":"%s-%d","imp":[{"id":"i",%s,"bidfloor":0.5}],%s}`, id, i, rt9Banner, rt9Tail)
		if code, _, why := post(t, base+"/openrtb2/bid", []byte(body)); code != 400 || !strings.Contains(string(why), "not valid UTF-8") {
			t.Errorf("id %q: %d %s, want 400", id, code, why)
		}
	}
	ids := []string{`a&b#c%d?e f\"g\\h\u00e9\u2028/=+;,'<>`, `\u0000nul`, `%41%00%2F`}
	for i, id := range ids {
		body := fmt.Sprintf(`{"id":"%s-%d","imp":[{"id":"%s",%s,"bidfloor":0.5}],%s}`, id, i, id, rt9Banner, rt9Tail)
		var want openrtb2.BidRequest
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		code, resp, why := postBid(t, base+"/openrtb2/bid", []byte(body))
		if code != 200 {
			t.Fatalf("id %q: %d %s", id, code, why)
		}
		var br openrtb2.BidResponse
		if err := json.Unmarshal(resp, &br); err != nil {
			t.Fatalf("id %q: answer does not decode: %v\n%s", id, err, resp)
		}
		b := onlyBid(t, &br)
		if br.ID != want.ID || b.ImpID != want.Imp[0].ID {
			t.Errorf("id %q: answer id %q impid %q, want %q and %q", id, br.ID, b.ImpID, want.ID, want.Imp[0].ID)
		}
		for _, u := range []string{b.NURL, b.BURL, b.BURL} {
			s := substitute(u, "1.25")
			pu, err := url.Parse(s)
			if err != nil || len(pu.Query()["t"]) != 1 || !strings.HasPrefix(s, base+"/notice/") {
				t.Fatalf("id %q: notice URL %q: %v", id, s, err)
			}
			if code, msg := get(t, s); code != 200 {
				t.Fatalf("id %q: notice %s: %d %s", id, s, code, msg)
			}
		}
	}
	// Each hold's rest (its bid less 1,250) stays reserved until it expires.
	if s, h := spent(t, app, "acme-banner"); s != int64(len(ids))*1250 || h != int64(len(ids))*750 {
		t.Fatalf("spent %d held %d, want %d and %d (each impression charged once, each hold's rest reserved)", s, h, len(ids)*1250, len(ids)*750)
	}
}
