package ortb

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// TestMutatedSamplesAgreeOrRefuse rewrites every fixture and shared sample
// with one key at a time repeated or respelled, and requires Parse either to
// refuse the result (ErrInvalid) or to read what encoding/json reads into
// openrtb2.BidRequest. An outside audit's harness of this shape found
// "bidfloor":5,"bidfloor":null read as no floor, a repeated durfloors or
// user.data read differently, and "BCAT" read as nothing, all of which the
// schema reads otherwise; this test failed on each before visit refused
// them. The mutations, for each key in mutatedKeys where the request has it:
//
//   - null: a scalar member followed by the same key with null;
//   - empty: an object member followed by the key with {}, an array member by
//     the key with as many nulls (or {} for objects) as it has elements;
//   - upper: the key's first letter upper-cased.
func TestMutatedSamplesAgreeOrRefuse(t *testing.T) {
	files := fixtureFiles(t)
	samples, _ := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	files = append(files, samples...)
	var p Parser
	var r Request
	refused := map[string]int{}
	runs := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(body) {
			continue // encoding/json rewrites invalid UTF-8; the agreement test covers it
		}
		tree, err := readTree(body)
		if err != nil {
			continue
		}
		present := map[string]bool{}
		tree.keys(present)
		for _, key := range mutatedKeys {
			if !present[key] {
				continue
			}
			for _, m := range []string{"null", "empty", "upper"} {
				var b bytes.Buffer
				tree.emit(&b, key, m)
				mb := b.Bytes()
				if bytes.Equal(mb, body) {
					continue
				}
				runs++
				name := filepath.Base(f) + " " + m + " " + key
				if err := p.Parse(mb, &r); err != nil {
					if !errors.Is(err, ErrInvalid) {
						t.Errorf("%s: want ErrInvalid, got %v", name, err)
					}
					refused[m]++
					continue
				}
				var br openrtb2.BidRequest
				if json.Unmarshal(mb, &br) != nil {
					continue // encoding/json refuses it; Parse may read it (the agreement test's rule)
				}
				want, rule := fromSchema(&br, mb)
				if rule != "" {
					t.Errorf("%s: parsed, but the required-member rules refuse it: %s", name, rule)
					continue
				}
				reconcileNative(&r, want)
				var diffs []string
				diffValues("", reflect.ValueOf(r), reflect.ValueOf(*want), &diffs)
				for _, d := range diffs {
					t.Errorf("%s: %s", name, d)
				}
			}
		}
	}
	t.Logf("%d mutated requests from %d files; refused: %v", runs, len(files), refused)
	if refused["null"] == 0 || refused["empty"] == 0 || refused["upper"] == 0 {
		t.Fatalf("some mutation was never refused (%v): the test no longer exercises visit's rules", refused)
	}
}

// mutatedKeys are members the view reads, at every level, where a repeat
// or a respelling changed what it read.
var mutatedKeys = []string{
	"imp", "bidfloor", "bidfloorcur", "qty", "multiplier", "tmax", "at", "test", "cur", "bcat", "badv",
	"regs", "coppa", "gdpr", "us_privacy", "gpp", "ext", "user", "consent", "data", "segment",
	"site", "app", "domain", "bundle", "publisher", "device", "ifa", "lmt", "geo", "country",
	"banner", "format", "w", "h", "battr", "video", "durfloors", "pmp", "deals", "wadomain",
}

// tree is a JSON value with its object members in document order.
type tree struct {
	kind  byte // o(bject) a(rray) s(tring) n(umber) b(ool) z (null)
	names []string
	vals  []*tree
	raw   string // a number's text, a string's value, true or false
}

func readTree(b []byte) (*tree, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return readTreeValue(d)
}

func readTreeValue(d *json.Decoder) (*tree, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case json.Delim:
		v := &tree{kind: 'a'}
		if x == '{' {
			v.kind = 'o'
		}
		for d.More() {
			if v.kind == 'o' {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v.names = append(v.names, k.(string))
			}
			c, err := readTreeValue(d)
			if err != nil {
				return nil, err
			}
			v.vals = append(v.vals, c)
		}
		_, err := d.Token()
		return v, err
	case string:
		return &tree{kind: 's', raw: x}, nil
	case json.Number:
		return &tree{kind: 'n', raw: string(x)}, nil
	case bool:
		return &tree{kind: 'b', raw: strconv.FormatBool(x)}, nil
	}
	return &tree{kind: 'z'}, nil
}

// keys records every object key in v.
func (v *tree) keys(into map[string]bool) {
	for _, k := range v.names {
		into[k] = true
	}
	for _, c := range v.vals {
		c.keys(into)
	}
}

// emit writes v as JSON with mutation m applied to every member named key.
func (v *tree) emit(b *bytes.Buffer, key, m string) {
	switch v.kind {
	case 'o', 'a':
		open, end := byte('['), byte(']')
		if v.kind == 'o' {
			open, end = '{', '}'
		}
		b.WriteByte(open)
		for i, c := range v.vals {
			if i > 0 {
				b.WriteByte(',')
			}
			if v.kind == 'a' {
				c.emit(b, key, m)
				continue
			}
			k := v.names[i]
			name := k
			if k == key && m == "upper" {
				name = strings.ToUpper(k[:1]) + k[1:]
			}
			writeJSON(b, name)
			b.WriteByte(':')
			c.emit(b, key, m)
			if k != key {
				continue
			}
			switch {
			case m == "null" && (c.kind == 'n' || c.kind == 's' || c.kind == 'b'):
				b.WriteByte(',')
				writeJSON(b, k)
				b.WriteString(":null")
			case m == "empty" && c.kind == 'o':
				b.WriteByte(',')
				writeJSON(b, k)
				b.WriteString(":{}")
			case m == "empty" && c.kind == 'a':
				b.WriteByte(',')
				writeJSON(b, k)
				b.WriteString(":[")
				for j, e := range c.vals {
					if j > 0 {
						b.WriteByte(',')
					}
					if e.kind == 'o' {
						b.WriteString("{}")
					} else {
						b.WriteString("null")
					}
				}
				b.WriteByte(']')
			}
		}
		b.WriteByte(end)
	case 's':
		writeJSON(b, v.raw)
	case 'n', 'b':
		b.WriteString(v.raw)
	default:
		b.WriteString("null")
	}
}

func writeJSON(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}
