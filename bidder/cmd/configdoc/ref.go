package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// typeDoc is what the source says about one struct type: its doc comment
// and each field's (the comment above the field and the one after it).
type typeDoc struct {
	doc    string
	fields map[string]string
}

// parseDocs reads the doc comments of every struct type declared in the
// non-test Go files of dir.
func parseDocs(dir string) (map[string]*typeDoc, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	docs := map[string]*typeDoc{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		addDocs(docs, f)
	}
	return docs, nil
}

// parseDocsSource is parseDocs over one file's source (tests).
func parseDocsSource(src string) (map[string]*typeDoc, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "src.go", src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	docs := map[string]*typeDoc{}
	addDocs(docs, f)
	return docs, nil
}

func addDocs(docs map[string]*typeDoc, f *ast.File) {
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			td := &typeDoc{doc: ts.Doc.Text(), fields: map[string]string{}}
			if td.doc == "" && len(gd.Specs) == 1 {
				td.doc = gd.Doc.Text()
			}
			for _, fl := range st.Fields.List {
				text := strings.TrimSpace(fl.Doc.Text() + " " + fl.Comment.Text())
				for _, n := range fl.Names {
					td.fields[n.Name] = text
				}
			}
			docs[ts.Name.Name] = td
		}
	}
}

// row is one key of the reference; section one table.
type row struct{ key, typ, def, meaning string }

type section struct {
	key, intro string
	rows       []row
}

// refOptions steers reference: dynamic names keys whose default depends on
// the host (shown as the text given instead of this machine's value).
type refOptions struct {
	dynamic map[string]string
}

// reference walks the struct type of def (a config with its defaults
// applied) by yaml tag, and returns its sections: the top level, then each
// struct-valued key, depth first. A field without a doc comment (or, for a
// struct-valued one, without one on the field or its type) is an error:
// every key must say what it means.
func reference(def any, docs map[string]*typeDoc, o refOptions) ([]section, error) {
	v := reflect.ValueOf(def)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	var errs []string
	secs := walk(v.Type(), v, "", "", docs, o, &errs)
	if len(errs) > 0 {
		return nil, fmt.Errorf("undocumented config fields (add a doc comment in the struct):\n  %s", strings.Join(errs, "\n  "))
	}
	return secs, nil
}

func walk(t reflect.Type, v reflect.Value, prefix, intro string, docs map[string]*typeDoc, o refOptions, errs *[]string) []section {
	td := docs[t.Name()]
	if td == nil {
		td = &typeDoc{fields: map[string]string{}}
	}
	cur := section{key: strings.TrimSuffix(prefix, "."), intro: intro}
	var subs []section
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		key := prefix + name
		doc := goToYAML(td.fields[f.Name], f.Name, t, docs)
		fv := reflect.Value{}
		if v.IsValid() {
			fv = v.Field(i)
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct && ft != durationType:
			in := joinDoc(typeIntro(ft, docs), doc)
			if in == "" {
				*errs = append(*errs, fmt.Sprintf("%s (%s.%s)", key, t.Name(), f.Name))
			}
			subs = append(subs, walk(ft, fv, key+".", in, docs, o, errs)...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			if doc == "" {
				*errs = append(*errs, fmt.Sprintf("%s (%s.%s)", key, t.Name(), f.Name))
			}
			in := joinDoc(typeIntro(ft.Elem(), docs), doc)
			subs = append(subs, walk(ft.Elem(), reflect.Zero(ft.Elem()), key+".NAME.", in, docs, o, errs)...)
		default:
			if doc == "" {
				*errs = append(*errs, fmt.Sprintf("%s (%s.%s)", key, t.Name(), f.Name))
			}
			d, ok := o.dynamic[key]
			if !ok {
				d = "`" + formatValue(fv) + "`"
			}
			cur.rows = append(cur.rows, row{key: key, typ: typeName(ft), def: d, meaning: doc})
		}
	}
	if len(cur.rows) == 0 {
		return subs
	}
	return append([]section{cur}, subs...)
}

var durationType = reflect.TypeOf(time.Duration(0))

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name) // yaml.v3's default
	}
	return name
}

// leafKeys lists the key paths of every non-struct field of t, "NAME" for a
// map key.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct && ft != durationType:
			keys = append(keys, leafKeys(ft, prefix+name+".")...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, leafKeys(ft.Elem(), prefix+name+".NAME.")...)
		default:
			keys = append(keys, prefix+name)
		}
	}
	return keys
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "int"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Map:
		return "map of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	}
	return t.String()
}

func formatValue(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	switch {
	case v.Type() == durationType:
		return formatDuration(time.Duration(v.Int()))
	case v.Kind() == reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case v.Kind() == reflect.Float32 || v.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case v.Kind() == reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatValue(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case v.Kind() == reflect.Map:
		parts := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			parts = append(parts, formatValue(k)+": "+formatValue(v.MapIndex(k)))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration writes a duration the way the config file does: 5m, 24h,
// 60s rather than 1m0s.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// typeIntro is a struct type's doc comment without its leading type name
// ("LimitsConfig bounds ..." reads "Bounds ...").
func typeIntro(t reflect.Type, docs map[string]*typeDoc) string {
	td := docs[t.Name()]
	if td == nil {
		return ""
	}
	s := oneLine(td.doc)
	if rest, ok := strings.CutPrefix(s, t.Name()+" "); ok {
		for _, verb := range []string{"is ", "are "} {
			rest = strings.TrimPrefix(rest, verb)
		}
		s = upperFirst(rest)
	}
	return goToYAMLIn(s, t, docs)
}

// isCamel reports a Go name with two capitals and a small letter
// (AdminToken, NKeySeed, MaxWait): in a comment such a word is a field
// name, not an English word or an acronym (Listen, TLS, ONNX).
func isCamel(name string) bool {
	upper, lower := 0, 0
	for _, r := range name {
		switch {
		case unicode.IsUpper(r):
			upper++
		case unicode.IsLower(r):
			lower++
		}
	}
	return upper >= 2 && lower >= 1
}

// goToYAML turns a field's comment into the reference's words: one line,
// the field's own Go name at its start and sibling fields' CamelCase names
// written as their yaml keys.
func goToYAML(doc, goName string, t reflect.Type, docs map[string]*typeDoc) string {
	s := oneLine(doc)
	if f, ok := t.FieldByName(goName); ok {
		if rest, ok := strings.CutPrefix(s, goName); ok && (rest == "" || !isWordChar(rest[0])) {
			s = "`" + yamlName(f) + "`" + rest
		}
	}
	return upperFirst(goToYAMLIn(s, t, docs))
}

func goToYAMLIn(s string, t reflect.Type, _ map[string]*typeDoc) string {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" || !isCamel(f.Name) {
			continue
		}
		re := regexp.MustCompile(`(^|[^.\w` + "`" + `])` + f.Name + `\b`)
		s = re.ReplaceAllString(s, "${1}`"+name+"`")
	}
	return s
}

func isWordChar(b byte) bool {
	return b == '_' || unicode.IsLetter(rune(b)) || unicode.IsDigit(rune(b))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// joinDoc joins two sentences, ending each with a period.
func joinDoc(a, b string) string {
	var parts []string
	for _, s := range []string{a, b} {
		if s == "" {
			continue
		}
		if !strings.HasSuffix(s, ".") {
			s += "."
		}
		parts = append(parts, upperFirst(s))
	}
	return strings.Join(parts, " ")
}

// markdown writes the reference page.
func markdown(secs []section, header string) string {
	var b strings.Builder
	b.WriteString(header)
	for _, s := range secs {
		title := "Top level"
		if s.key != "" {
			title = "`" + s.key + "`"
		}
		fmt.Fprintf(&b, "\n## %s\n\n", title)
		if s.intro != "" {
			b.WriteString(s.intro + "\n\n")
		}
		b.WriteString("| Key | Type | Default | Meaning |\n|---|---|---|---|\n")
		for _, r := range s.rows {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.key, r.typ, cell(r.def), cell(r.meaning))
		}
	}
	return b.String()
}

// cell escapes what would end a table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
