package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openbidder/openbidder/bidder"
)

const (
	bidderSrc  = "../.."
	configPage = "../../../docs/config.md"
	bundled    = "../../../configs/bidder.yaml"
)

// docs/config.md is what the config structs say today: a field added,
// renamed or re-documented without `make docs` fails here.
func TestConfigReferenceUpToDate(t *testing.T) {
	page, err := generate(bidderSrc)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(configPage)
	if err != nil {
		t.Fatalf("%v (run make docs)", err)
	}
	if string(have) == string(page) {
		return
	}
	hl, pl := strings.Split(string(have), "\n"), strings.Split(string(page), "\n")
	for i := range max(len(hl), len(pl)) {
		var h, p string
		if i < len(hl) {
			h = hl[i]
		}
		if i < len(pl) {
			p = pl[i]
		}
		if h != p {
			t.Fatalf("docs/config.md is stale (run make docs); first difference at line %d:\n have: %s\n want: %s", i+1, h, p)
		}
	}
}

// yamlKeys lists the key paths of a YAML document's mappings; a key whose
// parent is a map of named entries (exchanges) also appears as NAME.
func yamlKeys(n *yaml.Node, prefix string, named map[string]bool, out map[string]bool) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			yamlKeys(c, prefix, named, out)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if named[strings.TrimSuffix(prefix, ".")] {
			k = "NAME"
		}
		out[prefix+k] = true
		yamlKeys(n.Content[i+1], prefix+k+".", named, out)
	}
}

// configs/bidder.yaml lists every key of the config (README: "every field
// documented there").
func TestBundledConfigListsEveryKey(t *testing.T) {
	src, err := os.ReadFile(bundled)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	yamlKeys(&doc, "", map[string]bool{"exchanges": true}, have)
	for _, k := range leafKeys(reflect.TypeOf(bidder.Config{}), "") {
		if !have[k] {
			t.Errorf("configs/bidder.yaml lacks %s", k)
		}
	}
}

// configs/bidder.yaml says "a missing field takes the default shown here":
// every value in it is the default, except the examples named below.
func TestBundledConfigShowsDefaults(t *testing.T) {
	examples := map[string]bool{
		"currency.rates": true, // a sample rate table (the default has the base currency only)
		"exchanges":      true, // one sample exchange rule
	}
	file, err := bidder.LoadConfig(bundled, bidder.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	var def bidder.Config
	def.Defaults()
	var walk func(a, b reflect.Value, typ reflect.Type, prefix string)
	walk = func(a, b reflect.Value, typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := yamlName(f)
			if name == "" || examples[prefix+name] {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(a.Field(i), b.Field(i), f.Type, prefix+name+".")
				continue
			}
			fa, fb := a.Field(i), b.Field(i)
			if fa.Kind() == reflect.Slice && fa.Len() == 0 && fb.Len() == 0 {
				continue // [] and absent are the same
			}
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				t.Errorf("configs/bidder.yaml: %s%s is %s, the default is %s", prefix, name, formatValue(fa), formatValue(fb))
			}
		}
	}
	walk(reflect.ValueOf(*file), reflect.ValueOf(def), reflect.TypeOf(def), "")
}

type docTestConfig struct {
	A   string     `yaml:"a"`
	B   int        `yaml:"b"`
	Sub docTestSub `yaml:"sub"`
	M   map[string]docTestSub
	Off string `yaml:"-"`
}

type docTestSub struct {
	MaxWait float64 `yaml:"max_wait"`
}

// The generator refuses a field without a doc comment, and writes one row
// per key with its type, default and meaning.
func TestReferenceRows(t *testing.T) {
	docs, err := parseDocsSource(`package x
// docTestConfig is the test config.
type docTestConfig struct {
	// A names the thing; see MaxWait in sub.
	A string
	B int // the count
	Sub docTestSub
	M map[string]docTestSub // named subs
}
// docTestSub is a part. MaxWait is its wait.
type docTestSub struct {
	MaxWait float64 // how long, see MaxWait
}`)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := reference(&docTestConfig{A: "x", B: 3, Sub: docTestSub{MaxWait: 1.5}}, docs, refOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page := markdown(secs, "")
	for _, want := range []string{
		"| `a` | string | `x` | `a` names the thing; see MaxWait in sub. |",
		"| `b` | int | `3` | The count |",
		"## `sub`\n\nA part. `max_wait` is its wait.",
		"| `sub.max_wait` | number | `1.5` | How long, see `max_wait` |",
		"## `m.NAME`\n\nA part. `max_wait` is its wait. Named subs.",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "off") {
		t.Errorf("a yaml:\"-\" field is listed:\n%s", page)
	}

	delete(docs["docTestConfig"].fields, "B")
	docs["docTestSub"].fields["MaxWait"] = ""
	_, err = reference(&docTestConfig{}, docs, refOptions{})
	if err == nil || !strings.Contains(err.Error(), "b (docTestConfig.B)") || !strings.Contains(err.Error(), "sub.max_wait (docTestSub.MaxWait)") {
		t.Fatalf("undocumented fields: %v", err)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[string]string{"0s": "0s", "8ms": "8ms", "1s": "1s", "60s": "1m", "90s": "90s", "24h": "24h", "1.5s": "1.5s", "2h30m": "150m"} {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatDuration(dur); got != want {
			t.Errorf("%s: %s, want %s", d, got, want)
		}
	}
}
