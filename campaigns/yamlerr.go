package campaigns

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The YAML decoder names a problem by line only ("line 13: cannot unmarshal
// !!seq into campaigns.Amount", "line 10: field bid_stratgy not found in type
// campaigns.Config"). docs/campaigns.md promises FILE: FIELD.PATH: reason, so
// the line is turned back into the path of the field written on it, and the
// Go type names into what the file should hold.

// yamlField is a field written on a line: its path and, for a scalar, its
// value.
type yamlField struct {
	path, value string
	column      int // of the value
}

// yamlKeyLines maps each line of a campaign file to the mapping keys and
// sequence scalars written on it, in document order (creatives[0].id,
// creatives[0].sizes[1]). Aliases are not followed: the path of a value is
// where it is written. Nil when the file is not YAML.
func yamlKeyLines(data []byte, pause *loadPause) map[int][]yamlField {
	var root yaml.Node
	if yaml.NewDecoder(pause.input(data)).Decode(&root) != nil {
		return nil
	}
	out := map[int][]yamlField{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				v := n.Content[i+1]
				f := yamlField{path: p, column: v.Column}
				if v.Kind == yaml.ScalarNode {
					f.value = v.Value
				}
				out[k.Line] = append(out[k.Line], f)
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				if c.Kind == yaml.ScalarNode {
					out[c.Line] = append(out[c.Line], yamlField{path: p, value: c.Value, column: c.Column})
				}
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	return out
}

// yamlProblem turns one decoder message into a Problem: the path of the
// field on the message's line (for an unknown field, that key's own path;
// for a value the message quotes, the field holding it), the reason in the
// file's terms, and the line kept at the end.
func yamlProblem(file, msg string, keys map[int][]yamlField) *Problem {
	rest, ok := strings.CutPrefix(msg, "line ")
	num, reason, ok2 := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil {
		return &Problem{File: file, Reason: msg}
	}
	at := " (line " + num + ")"
	paths := keys[line]
	if f, ok := strings.CutPrefix(reason, "field "); ok {
		if name, _, ok := strings.Cut(f, " not found in type "); ok {
			for _, f := range paths {
				if f.path == name || strings.HasSuffix(f.path, "."+name) {
					return &Problem{File: file, Path: f.path, Reason: "unknown field" + at}
				}
			}
			return &Problem{File: file, Path: name, Reason: "unknown field" + at}
		}
	}
	if len(paths) == 0 {
		return &Problem{File: file, Reason: msg}
	}
	path := paths[0].path
	if c, r, ok := strings.Cut(reason, ": "); ok && strings.HasPrefix(c, "column ") {
		// Amount.UnmarshalYAML names the value's column.
		col, _ := strconv.Atoi(strings.TrimPrefix(c, "column "))
		reason = r
		for _, f := range paths {
			if f.column == col {
				path = f.path
				break
			}
		}
	} else if _, v, ok := strings.Cut(reason, " `"); ok {
		// The decoder quotes at most 7 bytes of a longer value, then "...".
		v, _, _ = strings.Cut(v, "`")
		short, cut := strings.CutSuffix(v, "...")
		for _, f := range paths {
			if f.value == v || cut && strings.HasPrefix(f.value, short) {
				path = f.path
				break
			}
		}
	}
	return &Problem{File: file, Path: path, Reason: yamlTypeReason(reason) + at}
}

// yamlTypeReason rewrites "cannot unmarshal !!str `yes` into int" as
// "got \"yes\", want an integer"; other reasons are kept.
func yamlTypeReason(r string) string {
	f, ok := strings.CutPrefix(r, "cannot unmarshal ")
	if !ok {
		return r
	}
	got, into, ok := strings.Cut(f, " into ")
	if !ok {
		return r
	}
	tag, val, hasVal := strings.Cut(got, " `")
	switch {
	case hasVal:
		got = strconv.Quote(strings.TrimSuffix(val, "`"))
	case tag == "!!seq":
		got = "a list"
	case tag == "!!map":
		got = "a map"
	}
	want := into
	switch {
	case strings.HasPrefix(into, "[]"):
		want = "a list"
	case into == "time.Duration":
		want = "a duration such as 2s or 100ms"
	case strings.HasPrefix(into, "map["), strings.HasPrefix(into, "campaigns."), strings.HasSuffix(into, "Config"):
		want = "a map"
	case into == "string":
		want = "a string"
	case into == "bool":
		want = "true or false"
	case into == "float64", into == "float32":
		want = "a number"
	case strings.HasPrefix(into, "int"), strings.HasPrefix(into, "uint"):
		want = "an integer"
	}
	return "got " + got + ", want " + want
}

// DecodeProblems turns the error of a strict yaml.v3 Decode of data (the
// file called name) into Problems that name the field, as LoadDir reports
// a campaign file's: FILE: FIELD.PATH: reason (line N). The bidder's own
// config file is read the same way.
func DecodeProblems(name string, data []byte, err error) []*Problem {
	var out []*Problem
	for _, e := range yamlProblems(name, data, err, nil) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
		}
	}
	return out
}
