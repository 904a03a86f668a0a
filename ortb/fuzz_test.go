package ortb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prebid/openrtb/v20/openrtb2"
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
		`{"id":"r","imp":[{"id":"1","native":{"request":"{\"native\":{\"assets\":[{\"id\":1,\"title\":{\"len\":9}},null]}}"}}]}`,
		`{"id":"r","imp":[{"id":"1","native":{"request":{"assets":[{"id":2,"img":{"w":1,"h":2},"data":{}}]}}}]}`,
		`{"id":"r","imp":[{"id":"1","native":{"request":"\"{\\\"assets\\\":[]}\""}}]}`,
		`{"id":"r","imp":[{"id":"1","qty":{"multiplier":1e300},"video":{"podid":"p","rqddurs":[15,null]}}],"dooh":{"venuetype":[null]}}`,
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

// FuzzParseAgreesWithSchema is the agreement test on generated input:
// whenever encoding/json decodes a body into openrtb2.BidRequest, Parse must
// give the same view (or reject it by the required-member rules). A body
// with a repeated key or a key that is not lowercase ASCII may instead be
// refused (ErrInvalid: visit refuses a member it reads given twice or
// spelled otherwise); if it is parsed, the views must agree. Left out, by
// design: invalid UTF-8 (encoding/json rewrites it, Parse keeps the bytes).
func FuzzParseAgreesWithSchema(f *testing.F) {
	for _, name := range fixtureFiles(f) {
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Add([]byte(`{"id":"0","imp":[{"id":"0"}],"user":{"data":[{"segment":[{"id":"a"}],"segment":[]}]}}`))
	f.Add([]byte(`null`))
	// Lone surrogate escapes: U+FFFD in both, the escape after one kept.
	f.Add([]byte(`{"id":"x\ud800\u0041","imp":[{"id":"\udc00","tagid":"\ud83d\ude00\\ud800"}],"site":{"domain":"a\uD800"},"bcat":["\ud800\ud800\udc00"]}`))
	f.Add([]byte(`{"id":"0","imp":[{"id":"0"}],"imp":[{"id":"1","pmp":{"deals":[{"id":"d"}],"deals":null}}]}`))
	// Refused before the repeat is reached (CI, fc9e6f6): a first imp
	// without id, a first id that cannot be echoed; refused in the
	// repeat's own value.
	f.Add([]byte(`{"id":"1","imp":[{}] , "imp":[{"id":"x"}]}`))
	f.Add([]byte(`{"imp":[{"id":"\ud800","id":""}]}`))
	f.Add([]byte(`{"imp":[],"imp":[{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return
		}
		checkAgainstSchema(t, body)
	})
}

// checkAgainstSchema is FuzzParseAgreesWithSchema's check of one valid UTF-8
// body.
func checkAgainstSchema(t *testing.T, body []byte) {
	t.Helper()
	var br openrtb2.BidRequest
	if json.Unmarshal(body, &br) != nil {
		return
	}
	var loose any
	if json.Unmarshal(body, &loose) != nil {
		return
	}
	var p Parser
	var r Request
	err := p.Parse(body, &r)
	if err != nil && (hasFoldableKey(loose) || hasRepeatedKey(body)) &&
		(strings.HasSuffix(err.Error(), ": given more than once") || strings.HasSuffix(err.Error(), ": member names are case-sensitive")) {
		return // visit's rules; any other error is checked below
	}
	if err != nil && hasRepeatedKey(body) {
		// Parse reads members in document order and stops at the first
		// error: one in what comes before the first repeat, which
		// encoding/json may overwrite with a later value
		// ({"imp":[{}],"imp":[{"id":"1"}]}), or one in the repeated
		// member's value, read before the repeat is noticed
		// ({"imp":[],"imp":[{}]}). In the first case the body with each
		// later repeat renamed to a member nobody reads is refused alike,
		// and must agree with the schema on its own.
		// (The renamed body is tried first: a repeated member's path is
		// also its first occurrence's, so an error there is accepted only
		// when the renamed body, which keeps the first, is not refused
		// alike: a review.)
		first, repeated := renameRepeats(body)
		var r2 Request
		err2 := p.Parse(first, &r2)
		if err2 != nil && err2.Error() == err.Error() {
			checkAgainstSchema(t, first)
			return
		}
		var fe *FieldError
		if !errors.As(err, &fe) || !inAny(fe.Path, repeated) {
			t.Fatalf("refused with %v, but with its repeats renamed (%s) %v", err, first, err2)
		}
		return
	}
	if err != nil && strings.Contains(err.Error(), "not valid UTF-8, or U+FFFD") && echoedIDLost(&br) {
		return // getID's rule: encoding/json reads an invalid byte or a lone surrogate as U+FFFD
	}
	want, rule := fromSchema(&br, body)
	if rule != "" {
		// A body of null decodes as an empty request; Parse says it is
		// not an object.
		if _, isObject := loose.(map[string]any); !isObject {
			rule = "want object, got null"
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), rule) {
			t.Fatalf("want ErrInvalid %q, got %v", rule, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("encoding/json decodes it, Parse says %v", err)
	}
	reconcileNative(&r, want)
	var diffs []string
	diffValues("", reflect.ValueOf(r), reflect.ValueOf(*want), &diffs)
	if len(diffs) > 0 {
		t.Fatalf("differs from the schema: %v", diffs)
	}
}

// renameRepeats returns body with every member name an object already holds
// replaced by "zzrepeatN" (N counting from 0, so no new repeat is made): what
// is left is the first of each, as a parser that stops at a repeat read it.
// It also returns the repeated members' paths, as a FieldError spells them
// ("imp", "imp[0].banner.format[1].w").
func renameRepeats(body []byte) (renamed []byte, paths []string) {
	type frame struct {
		keys      map[string]bool
		object    bool
		expectKey bool
		path      string // the container's own
		key       string // an object's member being read
		index     int    // an array's element being read
	}
	var (
		stack []frame
		out   []byte
		last  int // body[:last] is in out
		n     int
	)
	// child is the path of the value about to be read.
	child := func() string {
		k := len(stack)
		switch {
		case k == 0:
			return ""
		case !stack[k-1].object:
			return fmt.Sprintf("%s[%d]", stack[k-1].path, stack[k-1].index)
		case stack[k-1].path == "":
			return stack[k-1].key
		}
		return stack[k-1].path + "." + stack[k-1].key
	}
	valueDone := func() {
		if k := len(stack); k > 0 {
			if stack[k-1].object {
				stack[k-1].expectKey = true
			} else {
				stack[k-1].index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return append(out, body[last:]...), paths
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]bool{}, object: true, expectKey: true, path: child()})
			continue
		case json.Delim('['):
			stack = append(stack, frame{path: child()})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if k := len(stack); k > 0 && stack[k-1].object && stack[k-1].expectKey {
			key := tok.(string)
			stack[k-1].expectKey = false
			stack[k-1].key = key
			if !stack[k-1].keys[key] {
				stack[k-1].keys[key] = true
				continue
			}
			paths = append(paths, child())
			// Between the last token and this key: white space and a
			// comma, then the key's quoted text up to the offset now.
			start := before + bytes.IndexByte(body[before:], '"')
			out = append(out, body[last:start]...)
			out = append(out, fmt.Sprintf(`"zzrepeat%d"`, n)...)
			n++
			last = int(dec.InputOffset())
			continue
		}
		valueDone()
	}
}

// inAny reports whether path is one of paths or inside one.
func inAny(path string, paths []string) bool {
	for _, p := range paths {
		if path == p || strings.HasPrefix(path, p) && (path[len(p)] == '.' || path[len(p)] == '[') {
			return true
		}
	}
	return false
}

// echoedIDLost reports a request or imp id with U+FFFD in it, as
// encoding/json reads one that held an invalid byte or a lone surrogate.
func echoedIDLost(br *openrtb2.BidRequest) bool {
	lost := strings.ContainsRune(br.ID, utf8.RuneError)
	for _, imp := range br.Imp {
		lost = lost || strings.ContainsRune(imp.ID, utf8.RuneError)
	}
	return lost
}

// hasFoldableKey reports an object key with an upper-case or non-ASCII letter.
func hasFoldableKey(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			for _, c := range k {
				if c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
					return true
				}
			}
			if hasFoldableKey(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasFoldableKey(e) {
				return true
			}
		}
	}
	return false
}

// hasRepeatedKey reports an object in body with a key given twice.
func hasRepeatedKey(body []byte) bool {
	type frame struct {
		keys      map[string]bool
		object    bool
		expectKey bool
	}
	var stack []frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]bool{}, object: true, expectKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			k := tok.(string)
			if stack[n-1].keys[k] {
				return true
			}
			stack[n-1].keys[k] = true
			stack[n-1].expectKey = false
			continue
		}
		valueDone()
	}
}
