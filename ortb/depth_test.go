package ortb

import (
	"errors"
	"strings"
	"testing"
)

// deepNativeBody is a request with imps native imps, each holding a native
// request document nested depth deep in its request string.
func deepNativeBody(imps, depth int) []byte {
	var b strings.Builder
	b.WriteString(`{"id":"r","imp":[`)
	for i := 0; i < imps; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":"i` + strings.Repeat("x", i) + `","native":{"request":"`)
		b.WriteString(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		b.WriteString(`"}}`)
	}
	b.WriteString(`],"site":{"domain":"x.example"}}`)
	return []byte(b.String())
}

// A native request document nested deeper than a native request nests is
// NativeBad without fastjson's error, which wraps its message once per
// level: at 301 levels 12 ms and 4.4 MB a document, 1.5 s for 150 of them
// in a 1.3 KB gzipped request (an outside audit).
func TestDeepNativeDocumentIsNotParsed(t *testing.T) {
	for _, depth := range []int{maxNativeDepth + 1, 299, 301, 1000} {
		body := deepNativeBody(4, depth)
		var p Parser
		var r Request
		if err := p.Parse(body, &r); err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		for i := range r.Imps {
			if r.Imps[i].Native.Status != NativeBad {
				t.Fatalf("depth %d: imp %d native status %v, want NativeBad", depth, i, r.Imps[i].Native.Status)
			}
		}
		if n := testing.AllocsPerRun(20, func() { _ = p.Parse(body, &r) }); n != 0 {
			t.Errorf("depth %d: %v allocations a parse, want 0", depth, n)
		}
	}
	// One that nests as a native request does is read.
	var p Parser
	var r Request
	body := []byte(`{"id":"r","imp":[{"id":"1","native":{"request":"{\"native\":{\"assets\":[{\"id\":1,\"required\":1,\"img\":{\"type\":3,\"w\":1,\"h\":1,\"mimes\":[\"image/png\"]}}]}}"}}]}`)
	if err := p.Parse(body, &r); err != nil || r.Imps[0].Native.Status != NativeOK || len(r.Imps[0].Native.Assets) != 1 {
		t.Fatalf("a native request 6 deep: %v, %+v", err, r.Imps[0].Native)
	}
}

// A body nested deeper than MaxDepth is ErrMalformed at once: fastjson's
// error on a body malformed 299 levels down (inside its own limit of 300)
// cost 5 ms and 4.4 MB to build.
func TestDeepBodyRefusedCheaply(t *testing.T) {
	const imp = `"imp":[{"id":"1"}]`
	for _, depth := range []int{MaxDepth + 1, 299, 301} {
		for _, bottom := range []string{"", "x"} {
			body := []byte(`{"id":"r",` + imp + `,"ext":` + strings.Repeat("[", depth-1) + bottom + strings.Repeat("]", depth-1) + `}`)
			var p Parser
			var r Request
			err := p.Parse(body, &r)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "depth") {
				t.Fatalf("depth %d %q: %v, want ErrMalformed naming the depth", depth, bottom, err)
			}
			if n := testing.AllocsPerRun(20, func() { _ = p.Parse(body, &r) }); n > 2 {
				t.Errorf("depth %d %q: %v allocations to refuse, want at most 2", depth, bottom, n)
			}
		}
	}
	// MaxDepth itself parses, brackets in strings do not count, and a
	// stray closing bracket does not hide the depth after it.
	var p Parser
	var r Request
	ok := `{"id":"r",` + imp + `,"ext":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `,"x":"` + strings.Repeat("[{", 400) + `\""}`
	if err := p.Parse([]byte(ok), &r); err != nil {
		t.Fatalf("MaxDepth levels: %v", err)
	}
	if !DepthOver([]byte(`]]]]`+strings.Repeat("[", 40)), 32) {
		t.Error("DepthOver: closing brackets before the nesting hid it")
	}
}
