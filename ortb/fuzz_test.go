package ortb

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: no input panics; a successful parse has an id and imps that all
// have ids; an error wraps a sentinel and is one line; a reused Parser and
// Request give the same view as fresh ones. Seeds: the fixtures, their
// truncations and splits (partial reads), and the error-table shapes.
func FuzzParse(f *testing.F) {
	files, _ := os.ReadDir("testdata")
	for _, e := range files {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		body, err := os.ReadFile("testdata/" + e.Name())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
		for _, cut := range []int{1, len(body) / 3, len(body) / 2, len(body) - 2} {
			if cut > 0 && cut < len(body) {
				f.Add(body[:cut])
				f.Add(body[cut:])
			}
		}
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"id":"r","imp":[null]}`, `{"id":"r","imp":[{"id":"1","bidfloor":NaN}]}`,
		`{"id":"r","imp":[{"id":"1","banner":{"format":[{"w":1e400}]}}]}`,
		`{"id":"r","imp":[{"id":"1"}],"regs":{"ext":{"gdpr":"1"}},"user":{"ext":{"consent":"c"},"geo":{}}}`,
		`{"id":"\ud800","imp":[{"id":"\u0000"}]}`,
	} {
		f.Add([]byte(s))
	}
	var warm Parser
	var warmReq Request
	warmBody, err := os.ReadFile("testdata/site_multi_imp.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p Parser
		var r Request
		err := p.Parse(body, &r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
		} else {
			if len(r.ID) == 0 || len(r.Imps) == 0 {
				t.Fatalf("parsed without id or imps: %q", body)
			}
			for i := range r.Imps {
				if len(r.Imps[i].ID) == 0 {
					t.Fatalf("imp %d without id", i)
				}
			}
		}
		// The same input through a parser that has seen another request.
		if werr := warm.Parse(warmBody, &warmReq); werr != nil {
			t.Fatal(werr)
		}
		err2 := warm.Parse(body, &warmReq)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("fresh parser: %v; reused parser: %v", err, err2)
		}
		if err == nil {
			var diffs []string
			diffValues("", reflect.ValueOf(warmReq), reflect.ValueOf(r), &diffs)
			if len(diffs) > 0 {
				t.Fatalf("reused parser differs: %v", diffs)
			}
		}
	})
}
