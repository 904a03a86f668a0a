package bidder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// hostileMark is in every attacker-chosen value below: it must reach no
// operator surface (metrics, status, logs) except the event log's ids,
// which are JSON-escaped.
const hostileMark = "pwn3d"

// hostile is an attacker's value: markup, quotes, newlines, a fake log
// line and exposition line, and invalid UTF-8.
func hostile(i int) string {
	return hostileMark + string(rune('a'+i%26)) + `"</td><script>alert(1)</script><img src=x onerror=alert(1)>` +
		"\n{\"level\":\"ERROR\",\"msg\":\"forged\"}\r\nopenbidder_bids_total 1e9\n\x00\x1b[31m\xff\xfe"
}

// seriesOf is every series /metrics shows, as name{labels}, and fails on
// an exposition the Prometheus parser refuses.
func seriesOf(t *testing.T, app *App) map[string]bool {
	t.Helper()
	code, b := get(t, "http://"+app.AdminAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	if bytes.Contains(b, []byte(hostileMark)) {
		t.Errorf("/metrics shows an attacker's value:\n%s", grepLines(string(b), hostileMark))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	out := map[string]bool{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			ls := model.LabelSet{}
			for _, l := range m.GetLabel() {
				ls[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
			}
			out[name+ls.String()] = true
		}
	}
	return out
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// An exchange (bid bodies, headers, ?exchange=) and browsers (notice query
// strings, User-Agent, Referer, Origin) send values made to break an
// operator's tools: markup for the status page, quotes and newlines for
// /metrics and the logs, invalid UTF-8. None of them reaches /metrics (no
// new series either), the status JSON or the logs; the event log keeps one
// valid, bounded JSON object a line.
func TestHostileInputReachesNoOperatorSurface(t *testing.T) {
	logs := &syncBuffer{}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	app := startAppLog(t, func(c *Config) { c.Events.Path = events },
		slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	base := "http://" + app.Addr()
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, why := postBid(t, base+"/openrtb2/bid", body); code != 200 {
		t.Fatalf("benign bid: %d %s", code, why)
	}
	before := seriesOf(t, app)

	send := func(method, u string, body []byte, i int) (int, []byte, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		h := strings.Map(func(r rune) rune { // a header value holds no CR, LF or NUL
			if r < 0x20 || r == 0x7f || r == 0xfffd {
				return ' '
			}
			return r
		}, hostile(i))
		req.Header.Set("User-Agent", h)
		req.Header.Set("Referer", "https://x.example/?"+url.QueryEscape(hostile(i)))
		if i%2 == 1 || !strings.Contains(u, "/openrtb2/bid") {
			req.Header.Set("Origin", h) // a bid request with an Origin is refused (403) before it is read
		}
		req.Header.Set("X-Forwarded-For", h)
		req.Header.Set("x-openrtb-version", h)
		req.Header.Set("Content-Type", "application/json")
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, b, r.Header
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	var bids []openrtb2.Bid
	for i := range 30 {
		id := hostile(i)
		// The ids the answer echoes must be valid UTF-8 (else 400: getID);
		// everything else carries the invalid bytes too.
		req["id"] = strings.ToValidUTF8(id[:min(len(id), 200)], "")
		imp := req["imp"].([]any)[0].(map[string]any)
		imp["id"] = strings.ToValidUTF8(hostile(i + 1)[:100], "")
		imp["tagid"] = strings.Repeat(hostile(i), 20)
		site := req["site"].(map[string]any)
		site["domain"] = hostile(i)
		site["publisher"] = map[string]any{"id": hostile(i), "name": hostile(i)}
		req["user"] = map[string]any{"id": hostile(i), "consent": hostile(i)}
		b, _ := json.Marshal(req)
		ex := url.QueryEscape(hostile(i))
		code, resp, _ := send("POST", base+"/openrtb2/bid?exchange="+ex, b, i)
		if code == 200 {
			var br openrtb2.BidResponse
			if err := json.Unmarshal(resp, &br); err != nil {
				t.Fatal(err)
			}
			bids = append(bids, br.SeatBid[0].Bid[0])
		}
		// Malformed bodies and unknown paths carrying the same values.
		send("POST", base+"/openrtb2/bid?exchange="+ex, []byte(`{"id":"`+hostile(i)+`","imp":[{"id":`), i)
		send("GET", base+"/notice/"+url.PathEscape(hostile(i))+"?t="+ex, nil, i)
		send("GET", base+"/notice/bill?t="+ex+"&p="+ex, nil, i)
	}
	if len(bids) == 0 {
		t.Fatal("no hostile bid request got a bid: the notices below test nothing")
	}
	for i, b := range bids {
		q := "&x=" + url.QueryEscape(hostile(i)) + "&r=" + url.QueryEscape(hostile(i))
		for _, u := range []string{substitute(b.NURL, url.QueryEscape(hostile(i))), substitute(b.BURL, "1.0") + q, substitute(b.LURL, "1") + q} {
			send("GET", u, nil, i)
		}
		click := between(b.AdM, `<a href="`, `"`)
		imp := base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`)
		send("GET", imp+q, nil, i)
		send("GET", click+q, nil, i)
	}

	after := seriesOf(t, app)
	var added []string
	for s := range after {
		if !before[s] {
			added = append(added, s)
		}
	}
	sort.Strings(added)
	for _, s := range added {
		// Campaign and notice series that legitimately appear once the
		// first win, pixel and click of the run arrive carry no input.
		if strings.Contains(s, hostileMark) || strings.Contains(s, "exchange=") {
			t.Errorf("hostile traffic added series %s", s)
		}
	}
	if len(added) > 40 {
		t.Errorf("hostile traffic added %d series (bounded set expected):\n%s", len(added), strings.Join(added, "\n"))
	}

	// Requests fasthttp itself refuses (a bad request line, a header
	// without a colon, a bad chunk size): its error names the bytes it read.
	for _, raw := range []string{
		"G\x00T /" + hostileMark + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n" + hostileMark + "\r\n\r\n",
		"POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + hostileMark + "\r\n",
	} {
		c, err := net.Dial("tcp", app.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, raw)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
	}

	code, st := get(t, "http://"+app.AdminAddr()+"/admin/status")
	if code != 200 || !json.Valid(st) {
		t.Fatalf("/admin/status: %d %.300s", code, st)
	}
	if bytes.Contains(st, []byte(hostileMark)) {
		t.Errorf("/admin/status shows an attacker's value: %s", grepLines(string(st), hostileMark))
	}
	for _, path := range []string{"/readyz", "/healthz"} {
		if _, b, _ := send("GET", base+path, nil, 0); bytes.Contains(b, []byte(hostileMark)) {
			t.Errorf("%s echoes an attacker's value: %q", path, b)
		}
	}

	app.Close(t.Context())
	if l := logs.String(); strings.Contains(l, hostileMark) {
		t.Errorf("the log holds an attacker's value:\n%s", grepLines(l, hostileMark))
	}
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if !json.Valid(line) || len(line) > 4096 {
			t.Errorf("event line %d is not one bounded JSON object (%d bytes): %.300q", n, len(line), line)
		}
		for _, c := range line {
			if c < 0x20 {
				t.Errorf("event line %d holds a raw control byte %#x", n, c)
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("no events written: the event log was not exercised")
	}
	t.Logf("%d hostile bids, %d new series, %d event lines", len(bids), len(added), n)
}
