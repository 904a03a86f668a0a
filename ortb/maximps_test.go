package ortb

import (
	"strconv"
	"strings"
	"testing"
)

func impsBody(n int, extra string) []byte {
	var b strings.Builder
	b.WriteString(`{"id":"r","imp":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":"` + strconv.Itoa(i) + `","banner":{"w":300,"h":250}}`)
	}
	b.WriteString(extra + `],"site":{"domain":"x.example"}}`)
	return []byte(b.String())
}

// Past MaxImps an imp is read for its errors and its id only: a request of
// 2,000 imps kept 2,000 whole imps (1,008 bytes each) in every pooled
// request, and collecting them cost about 10 ms of CPU a request.
func TestParserMaxImps(t *testing.T) {
	p := Parser{MaxImps: 16}
	var r Request
	body := impsBody(2000, "")
	if err := p.Parse(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Imps) != 16 || cap(r.Imps) > 32 || len(r.LaterImpIDs) != 1984 {
		t.Fatalf("imps %d (cap %d), later ids %d; want 16 whole, 1,984 ids", len(r.Imps), cap(r.Imps), len(r.LaterImpIDs))
	}
	if string(r.Imps[15].ID) != "15" || r.Imps[15].Banner.W != 300 || string(r.LaterImpIDs[0]) != "16" || string(r.LaterImpIDs[1983]) != "1999" {
		t.Fatalf("imp 15 %q w %d, later ids %q..%q", r.Imps[15].ID, r.Imps[15].Banner.W, r.LaterImpIDs[0], r.LaterImpIDs[1983])
	}
	if n := testing.AllocsPerRun(10, func() { _ = p.Parse(body, &r) }); n != 0 {
		t.Errorf("%v allocations a parse", n)
	}
	// A later imp is checked as any imp is.
	for _, bad := range []string{`,{"banner":{"w":1}}`, `,{"id":"x","bidfloor":"1"}`, `,7`} {
		if err := p.Parse(impsBody(20, bad), &r); err == nil {
			t.Errorf("later imp %s: no error", bad)
		}
	}
	// Without MaxImps every imp is whole.
	var all Parser
	if err := all.Parse(impsBody(40, ""), &r); err != nil || len(r.Imps) != 40 || len(r.LaterImpIDs) != 0 {
		t.Fatalf("no MaxImps: %v, %d imps, %d later", err, len(r.Imps), len(r.LaterImpIDs))
	}
}

// compress/gzip's errors name gzip already: "gzip: gzip: invalid header".
func TestGzipErrorNamesGzipOnce(t *testing.T) {
	var g Gunzipper
	for _, body := range [][]byte{[]byte("not gzip at all"), {0x1f, 0x8b}} {
		_, err := g.Gunzip(nil, body, 1<<20)
		if err == nil || !strings.Contains(err.Error(), "gzip: ") || strings.Contains(err.Error(), "gzip: gzip:") {
			t.Errorf("%q: %v", body, err)
		}
	}
}
