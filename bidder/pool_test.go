package bidder

import (
	"strings"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

// A request context that parsed a large body is not pooled: fastjson's
// value cache and the Request's slices keep the size of the largest
// request parsed, so one burst of 253 KB bodies of 23,000 tiny imps left
// each pooled context holding ~46 MB, and a running bidder's live heap went
// from 39 MB to 1.49 GB after 32 such requests at once (found by the
// red-team pass; the heap stayed there while later requests reused them).
func TestLargeRequestContextNotPooled(t *testing.T) {
	ts := newTestServer(t, nil)
	// 1,201 imps: over poolBodyMax, under maxJSONValues.
	big := []byte(`{"id":"r","imp":[` + strings.Repeat(`{"id":"1","tagid":"placement-1"},`, 1200) + `{"id":"1"}],"site":{"id":"s"}}`)
	for range 8 {
		if r := ts.bidInTime(big); r.StatusCode() != 204 {
			t.Fatalf("big request: %d %s", r.StatusCode(), r.Body())
		}
		bc := ts.getBidCtx()
		n := cap(bc.req.Imps)
		ts.putBidCtx(bc)
		if n > 1000 {
			t.Fatalf("a pooled context keeps room for %d imps after a %d-byte request", n, len(big))
		}
	}
}

// A large body with more JSON values than a request has is refused before
// fastjson builds them (53 MB for 256 KB of "1,1,..."); a large body of a
// few long strings is read.
func TestManyJSONValuesRefused(t *testing.T) {
	ts := newTestServer(t, nil)
	f := func(name, body string, want int) {
		t.Helper()
		r := ts.bidInTime([]byte(body)) // a 204 tmax of a stalled machine is no answer here
		if r.StatusCode() != want {
			t.Errorf("%s (%d bytes): status %d %q, want %d", name, len(body), r.StatusCode(), r.Header.Peek("x-nobid-reason"), want)
		}
	}
	site := string(readReq(t, "site-banner.json"))
	numbers := strings.Replace(site, `"site":{`, `"ext":{"j":[`+strings.Repeat("1,", 20000)+`1]},"site":{`, 1)
	objects := strings.Replace(site, `"site":{`, `"ext":{"j":[`+strings.Repeat("{},", 20000)+`{}]},"site":{`, 1)
	nested := strings.Replace(site, `"site":{`, `"ext":{"j":`+strings.Repeat(`[`, 250)+strings.Repeat(`]`, 250)+`},"site":{`, 1)
	nested = strings.Replace(nested, `"site":{`, strings.Repeat(`"x":`+strings.Repeat(`[`, 100)+strings.Repeat(`]`, 100)+`,`, 200)+`"site":{`, 1)
	long := strings.Replace(site, `"site":{`, `"ext":{"j":"`+strings.Repeat("a", 100000)+`"},"site":{`, 1)
	padded := func(n int) string { // over poolBodyMax, n numbers
		return strings.Replace(site, `"site":{`, `"ext":{"pad":"`+strings.Repeat("a", 20000)+`","j":[`+strings.Repeat("1,", n-1)+`1]},"site":{`, 1)
	}
	f("4,101 numbers", padded(4101), 400)
	f("3,900 numbers", padded(3900), 200)
	f("20,001 numbers", numbers, 400)
	f("20,001 objects", objects, 400)
	f("20,000 nested arrays", nested, 400)
	f("one long string", long, 200)
	f("ordinary", site, 200)
	// Commas and brackets inside strings are no values (keywords are
	// comma-separated: an outside audit's 29 KB request of 57 values got a
	// 400); an escaped quote does not end the string, an escaped backslash
	// before a quote does.
	keywords := strings.Replace(site, `"site":{`, `"site":{"keywords":"`+strings.Repeat("kw,", 8000)+`kw",`, 1)
	f("8,000 keywords in one string", keywords, 200)
	escaped := strings.Replace(site, `"site":{`, `"ext":{"j":"\"x`+strings.Repeat(",{[", 6000)+`\\"},"site":{`, 1)
	f("18,000 brackets in a string with an escaped quote", escaped, 200)
	closed := strings.Replace(site, `"site":{`, `"ext":{"s":"a\\","j":[`+strings.Repeat("1,", 8000)+`1]},"site":{`, 1)
	f("8,001 numbers after a string ending in an escaped backslash", closed, 400)
}

// ortb.ValuesOver counts values outside strings, exactly where it walks.
func TestJSONValuesOverSkipsStrings(t *testing.T) {
	for _, c := range []struct {
		body string
		n    int
		over bool
	}{
		{`[1,2,3]`, 4, false}, {`[1,2,3]`, 3, true}, // the array and its three
		{`["a,b,c,d,e"]`, 2, false}, {`["a\",b,c,d,e"]`, 2, false}, // an escaped quote ends nothing
		{`["a\\",1,2,3]`, 5, false}, {`["a\\",1,2,3]`, 4, true}, // an escaped backslash, then the quote
		{`["a\\\",1,2,3"]`, 2, false}, {`"unterminated,,,,`, 2, false},
		{`[1,2,"x",3,"y,z",4]`, 7, false}, {`[1,2,"x",3,"y,z",4]`, 6, true},
	} {
		if got := ortb.ValuesOver([]byte(c.body), c.n); got != c.over {
			t.Errorf("%s over %d: %v, want %v", c.body, c.n, got, c.over)
		}
	}
}
