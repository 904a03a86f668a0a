package ortb

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// A lone surrogate escape reads as U+FFFD, as encoding/json reads it, and
// the escape after it is kept; pairs, escaped backslashes and other escapes
// are untouched (here in site.id). In the request's id, which the answer
// echoes, a lone one is refused (getID): the echo could not be the id the
// exchange sent.
func TestLoneSurrogates(t *testing.T) {
	for _, id := range []string{
		`\ud800`, `a\udc00b`, `x\ud800\u0041`, `\uD800\uDBFF\uDC00`, `\udbff`, `end\ud800`,
		`\ud83d\ude00`, `\\ud800`, `\u00e9\n\"`, `\ud800\n`, `\ud800\\`, `plain`,
	} {
		body := []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}],"site":{"id":"` + id + `"}}`)
		var want struct{ Site struct{ ID string } }
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		var p Parser
		var r Request
		orig := string(body)
		if err := p.Parse(body, &r); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if string(r.Site.ID) != want.Site.ID {
			t.Errorf("%s: read %q, encoding/json %q", id, r.Site.ID, want.Site.ID)
		}
		if string(body) != orig {
			t.Errorf("%s: Parse wrote to the caller's body", id)
		}
		err := p.Parse([]byte(`{"id":"`+id+`","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`), &r)
		if lone := strings.ContainsRune(want.Site.ID, utf8.RuneError); lone != (err != nil) {
			t.Errorf("%s as the request id: %v (a lone surrogate: %v)", id, err, lone)
		}
	}
	// Where the first lone one is (-1: none, the body is parsed as it is);
	// truncated or malformed escapes are left to the parser.
	for b, want := range map[string]int{
		`"\ud83d\ude00"`: -1, `"\\ud800"`: -1, `"\u12"`: -1, `"\`: -1, `"\ud800\u12"`: 1, `"a\\\udc00"`: 4, `"\ud83d\ude00\ud83d"`: 13,
	} {
		if i := loneSurrogate([]byte(b)); i != want {
			t.Errorf("%s: lone surrogate at %d, want %d", b, i, want)
		}
	}
}
