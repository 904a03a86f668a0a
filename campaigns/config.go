package campaigns

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Config is one campaign file as written: the YAML schema, documented field by
// field in docs/campaigns.md. Zero fields mean the documented default.
// Compile turns a set of Configs into a *Snapshot or reports every problem.
type Config struct {
	ID           string           `yaml:"id"`
	Advertiser   string           `yaml:"advertiser"`
	ADomain      []string         `yaml:"adomain,flow,omitempty"`
	Status       string           `yaml:"status,omitempty"` // active (default) | paused
	Flight       FlightConfig     `yaml:"flight,omitempty"`
	Currency     string           `yaml:"currency,omitempty"`  // ISO 4217, default USD
	TimeZone     string           `yaml:"time_zone,omitempty"` // IANA, default UTC
	BidStrategy  StrategyConfig   `yaml:"bid_strategy"`
	MaxBidCPM    Amount           `yaml:"max_bid_cpm"`
	Budget       BudgetConfig     `yaml:"budget"`
	Pacing       PacingConfig     `yaml:"pacing,omitempty"`
	FrequencyCap FreqCapConfig    `yaml:"frequency_cap,omitempty"`
	Creatives    []CreativeConfig `yaml:"creatives"`
	Targeting    TargetingConfig  `yaml:"targeting,omitempty"`
	DSA          *DSAConfig       `yaml:"dsa,omitempty"`

	// File is where the config came from (set by LoadDir; used in error
	// messages). Not part of the YAML.
	File string `yaml:"-"`
}

// DSAConfig is the campaign's DSA transparency (EU Digital Services Act,
// the IAB's extension): on whose behalf its ads are shown and who paid for
// them, sent in bid.ext.dsa where the request's regs.ext.dsa asks for it.
type DSAConfig struct {
	Behalf string `yaml:"behalf"`
	Paid   string `yaml:"paid"`
}

// Amount is a money amount as decimal text ("4.50" or 4.5 in YAML). It is
// parsed into micro-units exactly by ParseMicros during Compile.
type Amount string

// UnmarshalYAML keeps the scalar's text as written, so 4.10 is never a float.
func (a *Amount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		// A TypeError is collected by the decoder, which goes on to report
		// the file's other problems too.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: amount must be a number or a decimal string", n.Line, n.Column)}}
	}
	*a = Amount(n.Value)
	return nil
}

// FlightConfig is the flight window: RFC 3339 timestamps or dates
// (2006-01-02, read in the campaign time zone; an end date includes that day).
type FlightConfig struct {
	Start string `yaml:"start,omitempty"`
	End   string `yaml:"end,omitempty"`
}

// StrategyConfig is bid_strategy.
type StrategyConfig struct {
	Kind           string  `yaml:"kind"` // fixed_cpm | target_cpc | target_cpa
	CPM            Amount  `yaml:"cpm,omitempty"`
	CPC            Amount  `yaml:"cpc,omitempty"`
	CPA            Amount  `yaml:"cpa,omitempty"`
	ConversionRate float64 `yaml:"conversion_rate,omitempty"` // conversions per click, target_cpa only
}

// BudgetConfig is budget: daily (in the campaign time zone) and total.
type BudgetConfig struct {
	Daily Amount `yaml:"daily"`
	Total Amount `yaml:"total,omitempty"` // empty: no lifetime cap
}

// PacingConfig is pacing.
type PacingConfig struct {
	Mode string `yaml:"mode,omitempty"` // even (default) | forecast | asap
}

// FreqCapConfig is frequency_cap: at most Count impressions per user per
// Window (a Go duration such as 24h). Count 0 means no cap.
type FreqCapConfig struct {
	Count  int    `yaml:"count,omitempty"`
	Window string `yaml:"window,omitempty"`
}

// CreativeConfig is one creatives[] entry.
type CreativeConfig struct {
	ID         string        `yaml:"id"`
	Format     string        `yaml:"format"` // banner | video | native | audio
	Sizes      []string      `yaml:"sizes,flow,omitempty"`
	Markup     string        `yaml:"markup,omitempty"` // banner HTML template
	VAST       string        `yaml:"vast,omitempty"`   // video/audio VAST template
	Native     *NativeConfig `yaml:"native,omitempty"`
	MIMEs      []string      `yaml:"mimes,flow,omitempty"`
	LandingURL string        `yaml:"landing_url"`
	Cat        []string      `yaml:"cat,flow,omitempty"`
	CatTax     int64         `yaml:"cattax,omitempty"` // taxonomy of cat (default 1: IAB Content 1.0)
	Attr       []int64       `yaml:"attr,flow,omitempty"`
	ADomain    []string      `yaml:"adomain,flow,omitempty"`
	Secure     bool          `yaml:"secure,omitempty"`
	Bundle     string        `yaml:"bundle,omitempty"`
	Language   string        `yaml:"language,omitempty"`   // ISO 639-1 (en), or xx: no linguistic content
	BType      []int64       `yaml:"btype,flow,omitempty"` // banner: the banner ad types it is (1 XHTML text, 2 XHTML banner, 3 JavaScript, 4 iframe)

	// Video and audio: what the ad is, matched against the imp's
	// constraints (docs/campaigns.md). Duration and Protocols default to
	// what the VAST template says (<Duration>, <VAST version>, Wrapper).
	Duration  int64   `yaml:"duration,omitempty"`          // seconds
	Protocols []int64 `yaml:"protocols,flow,omitempty"`    // OpenRTB protocols (2 VAST 2.0, 3 VAST 3.0, 7 VAST 4.0...)
	Plcmt     []int64 `yaml:"plcmt,flow,omitempty"`        // video placements it may run in (1 instream..4 standalone); empty any
	Skippable *bool   `yaml:"skippable,omitempty"`         // true: only where the player lets users skip; false: only where it does not
	PodSeq    []int64 `yaml:"pod_sequence,flow,omitempty"` // pods it may run in: 1 first, -1 last; empty any
	SlotInPod []int64 `yaml:"slot_in_pod,flow,omitempty"`  // slots it may take in a pod: 1 first, -1 last; empty any
}

// NativeConfig holds the assets of a native creative. A native bid answers
// the request's assets with the ones given here (docs/campaigns.md).
type NativeConfig struct {
	Title       string `yaml:"title"`
	Description string `yaml:"description,omitempty"`
	ImageURL    string `yaml:"image_url,omitempty"`
	ImageW      int64  `yaml:"image_w,omitempty"`
	ImageH      int64  `yaml:"image_h,omitempty"`
	IconURL     string `yaml:"icon_url,omitempty"`
	IconW       int64  `yaml:"icon_w,omitempty"`
	IconH       int64  `yaml:"icon_h,omitempty"`
	CTA         string `yaml:"cta,omitempty"`
	Sponsored   string `yaml:"sponsored,omitempty"`
}

// TargetingConfig is targeting. Empty lists mean "no restriction".
type TargetingConfig struct {
	Countries       []string         `yaml:"countries,flow,omitempty"`
	Regions         []string         `yaml:"regions,flow,omitempty"`
	Metros          []string         `yaml:"metros,flow,omitempty"`
	Cities          []string         `yaml:"cities,flow,omitempty"`
	DeviceTypes     []int64          `yaml:"device_types,flow,omitempty"`
	OS              []string         `yaml:"os,flow,omitempty"`
	Languages       []string         `yaml:"languages,flow,omitempty"`
	ConnectionTypes []int64          `yaml:"connection_types,flow,omitempty"`
	Carriers        []string         `yaml:"carriers,flow,omitempty"`
	Inventory       []string         `yaml:"inventory,flow,omitempty"` // site, app, dooh (default site and app)
	SiteDomains     ListConfig       `yaml:"site_domains,omitempty"`
	AppBundles      ListConfig       `yaml:"app_bundles,omitempty"`
	VenueTypes      []string         `yaml:"venue_types,flow,omitempty"` // dooh.venuetype
	Publishers      []string         `yaml:"publisher_ids,flow,omitempty"`
	Categories      CategoriesConfig `yaml:"categories,omitempty"`
	Deals           []string         `yaml:"deals,flow,omitempty"`
	Exchanges       []string         `yaml:"exchanges,flow,omitempty"` // the ?exchange= names it bids on; empty: any
	OpenAuction     *bool            `yaml:"open_auction,omitempty"`   // default true
	Rewarded        *bool            `yaml:"rewarded,omitempty"`       // true: rewarded imps only; false: never; default any
	Dayparting      *DaypartConf     `yaml:"dayparting,omitempty"`
	Segments        []string         `yaml:"segments,flow,omitempty"`
	AllowCOPPA      bool             `yaml:"allow_coppa,omitempty"`
}

// ListConfig is an allow list and a block list.
type ListConfig struct {
	Allow []string `yaml:"allow,flow,omitempty"`
	Block []string `yaml:"block,flow,omitempty"`
}

// CategoriesConfig is targeting.categories: allow and block lists of
// site/app categories in one taxonomy (OpenRTB cattax; default 1, IAB
// Content Category Taxonomy 1.0).
type CategoriesConfig struct {
	Allow    []string `yaml:"allow,flow,omitempty"`
	Block    []string `yaml:"block,flow,omitempty"`
	Taxonomy int64    `yaml:"taxonomy,omitempty"`
}

// DaypartConf is targeting.dayparting in the campaign time zone. Empty Days
// means every day; empty Hours means every hour.
type DaypartConf struct {
	Days  []string `yaml:"days,flow,omitempty"`  // mon..sun
	Hours []int    `yaml:"hours,flow,omitempty"` // 0..23
}

// ParseConfig decodes one campaign file strictly: unknown fields, a second
// document and non-scalar amounts are errors. name labels the errors.
func ParseConfig(name string, data []byte) (Config, error) {
	return parseConfig(name, data, nil)
}

// parseConfig is ParseConfig, its parses paced by pause (nil: not paced).
func parseConfig(name string, data []byte, pause *loadPause) (Config, error) {
	// An alias is written *name: a file without a '*' has none, and is not
	// parsed twice (a second parse made a reload of 10,000 files 65% slower).
	//
	// A mapping's keys are checked here too, in one pass, where the file
	// could hold a mapping of more than maxMappingKeys keys (keyMarks):
	// yaml.v3 compares every pair of a mapping's keys, and makes a message
	// for every equal pair (mappingKeys).
	var root yaml.Node
	aliases := bytes.IndexByte(data, '*') >= 0
	if (aliases || keyMarks(data) > maxMappingKeys) && yaml.NewDecoder(pause.input(data)).Decode(&root) == nil {
		seen := map[*yaml.Node]int{}
		if aliases && expandedSize(&root, seen) > MaxFileBytes {
			if seen[nil] == aliasCycle {
				return Config{}, fmt.Errorf("%s: an alias names a value that holds it (a recursive alias)", name)
			}
			return Config{}, fmt.Errorf("%s: its aliases expand it past %d bytes", name, MaxFileBytes)
		}
		if err := mappingKeys(&root, maxMappingKeys); err != nil {
			return Config{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := NotUTF8(data); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	var c Config
	dec := yaml.NewDecoder(pause.input(data))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	pause.step(len(data) / yamlBytesPerUs / 4) // the parsed document decoded into c
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := SecondDocument(dec); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := checkDecoded(data, pause); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c.File = name
	return c, nil
}

// SecondDocument is nil when dec, having decoded a file's first document,
// is at the end of the input, else the error that there is more: a second
// document, one that does not parse included. Only a second document that
// parsed used to be refused, so anything after a "---" or "..." that did
// not (a second campaign pasted in after "...", a half-written copy, a
// stray "[") was dropped without a word and the file accepted.
//
// An empty document after it (a trailing "---", with comments at most) is
// nothing: a file some tools end that way still loads (a review: refusing
// it stopped a bidder config that had started before).
func SecondDocument(dec *yaml.Decoder) error {
	for {
		var extra yaml.Node
		switch err := dec.Decode(&extra); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("more than one YAML document (the second does not parse: %v)", strings.TrimPrefix(err.Error(), "yaml: "))
		case !emptyDocument(&extra):
			return errors.New("more than one YAML document")
		}
	}
}

// emptyDocument reports whether n is a document with nothing in it (a
// "---" followed by comments at most), not even an explicit null.
func emptyDocument(n *yaml.Node) bool {
	if n.Kind != yaml.DocumentNode || len(n.Content) != 1 {
		return false
	}
	c := n.Content[0]
	return c.Kind == yaml.ScalarNode && c.Tag == "!!null" && c.Value == "" && c.Anchor == "" && len(c.Content) == 0
}

// maybeFloat finds what could be a plain (unquoted) YAML number with a
// fraction, an exponent or an infinity after an indicator: only a file
// holding one is parsed a second time (checkDecoded). Amounts are
// written as quoted strings, so most files are not.
var maybeFloat = regexp.MustCompile(`(?:^|[\s\[{,:-])[-+]?_*(?:\.[0-9]|[0-9][0-9_]*\.|[0-9][0-9_]*[eE]|\.(?:inf|Inf|INF|nan|NaN|NAN))`)

// checkDecoded walks the decoded file for what the strict decode let by.
//
// A number with a fraction (2.9), or an infinity, written where the
// campaign wants an integer (walkIntFloats): yaml.v3 cuts it down
// without a word (a frequency cap count of 2.9 was 2, a daypart hour of
// 16.99 was 16, a count of 0.5 was "required with a window"). An integral
// float (2.0, 1e3) is the integer it names, as before. The error has the
// decoder's form, so yamlProblems names the field.
//
// A null item in a list (countries: [null], a bare "-", an alias of a
// null; walkNullItems): yaml.v3 drops it when it decodes a list of
// strings, so a targeting list of one null item was no list at all and the
// campaign bid everywhere (an outside audit: countries: [null] bid on every
// country, exchanges: [null] freed a campaign from its exchange), where an
// empty string is refused: "targeting.countries[0]: empty value".
//
// Each is a second parse, made only for a file that may hold what it looks
// for (maybeFloat, maybeNullItem: most files hold neither), and made once
// for both.
func checkDecoded(data []byte, pause *loadPause) error {
	floats, nulls := maybeFloat.Match(data), maybeNullItem.Match(data)
	pause.step(len(data) / yamlBytesPerUs / 2)
	if !floats && !nulls {
		return nil
	}
	var root yaml.Node
	if yaml.NewDecoder(pause.input(data)).Decode(&root) != nil {
		return nil
	}
	var errs []string
	if floats {
		walkIntFloats(&root, reflect.TypeFor[Config](), &errs)
	}
	if nulls {
		walkNullItems(&root, 0, &errs)
	}
	if len(errs) == 0 {
		return nil
	}
	return &yaml.TypeError{Errors: errs}
}

// maybeNullItem finds what could be a null item in a list: null or ~, a
// dash with nothing after it (before a line feed, a CR LF, or a line break
// YAML 1.1 also reads: NEL, LS, PS), a tag (a bare "!" makes an empty item
// null), or an alias or anchor (which may name one). Only a file holding
// one is parsed a second time (checkDecoded); the walk decides. (A review
// got null items past the first version with CR LF line ends, a NEL, and
// "- !".)
var maybeNullItem = regexp.MustCompile(`null|Null|NULL|~|[*&!\x{85}\x{2028}\x{2029}]|(?m)(?:^|\s)-[ \t]*(?:#[^\n]*)?\r?$`)

// walkNullItems appends, in the decoder's form (so that yamlProblems names
// the field), each null item of a list under n (checkDecoded).
func walkNullItems(n *yaml.Node, depth int, errs *[]string) {
	if depth > 100 {
		return // the file decoded: its aliases are not recursive
	}
	for _, c := range n.Content {
		if n.Kind == yaml.SequenceNode {
			item := c
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind == yaml.ScalarNode && item.ShortTag() == "!!null" {
				*errs = append(*errs, fmt.Sprintf("line %d: column %d: empty value", c.Line, c.Column))
				continue
			}
		}
		if c.Kind != yaml.AliasNode {
			walkNullItems(c, depth+1, errs)
		}
	}
}

// NotUTF8 names the line and column of the first byte of data that is not
// UTF-8, or is nil. The YAML decoder said only "invalid trailing UTF-8
// octet", with no line (an outside audit: a Latin-1 é in a comment).
func NotUTF8(data []byte) error {
	if utf8.Valid(data) {
		return nil
	}
	i := 0
	for i < len(data) {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		i += n
	}
	line := 1 + bytes.Count(data[:i], []byte("\n"))
	col := 1 + utf8.RuneCount(data[bytes.LastIndexByte(data[:i], '\n')+1:i])
	return fmt.Errorf("line %d, column %d: byte 0x%02X is not UTF-8 (the file must be UTF-8 text)", line, col, data[i])
}

// NullItems is checkDecoded's null-item rule for another YAML file read
// strictly (the bidder's config: a bid_sources or an exchange's sources of
// [null] was no list): nil, or a *yaml.TypeError that DecodeProblems names
// the fields of.
func NullItems(data []byte) error {
	if !maybeNullItem.Match(data) {
		return nil
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	var errs []string
	walkNullItems(&root, 0, &errs)
	if len(errs) == 0 {
		return nil
	}
	return &yaml.TypeError{Errors: errs}
}

var yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// walkIntFloats walks n beside the Go type it decodes into. An alias is
// followed (its anchor's value is checked against the type of each place
// it is used: the file decoded, so none is recursive, and ParseConfig
// bounded what they expand to), and a merge key's values against the
// mapping they merge into.
func walkIntFloats(n *yaml.Node, t reflect.Type, errs *[]string) {
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil {
			walkIntFloats(n.Alias, t, errs)
		}
		return
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			walkIntFloats(c, t, errs)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(yamlUnmarshaler) {
		return // its own decoding (Amount) checks its values
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.ShortTag() == "!!merge" {
					if v.Kind == yaml.SequenceNode {
						for _, m := range v.Content {
							walkIntFloats(m, t, errs)
						}
					} else {
						walkIntFloats(v, t, errs)
					}
					continue
				}
				if ft, ok := yamlFieldType(t, k.Value); ok {
					walkIntFloats(v, ft, errs)
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				walkIntFloats(c, t.Elem(), errs)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				walkIntFloats(n.Content[i], t.Elem(), errs)
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			var f float64
			if n.Decode(&f) != nil || f != math.Trunc(f) || math.IsInf(f, 0) {
				*errs = append(*errs, fmt.Sprintf("line %d: column %d: cannot unmarshal !!float `%s` into int", n.Line, n.Column, n.Value))
			}
		}
	}
}

// yamlFieldType is the type of t's field that the mapping key name decodes
// into (its yaml tag's name, or its lower-cased Go name), inline fields
// included.
func yamlFieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			if f.Type.Kind() != reflect.Struct {
				continue // an inline map takes the keys no field names: no int field of ours
			}
			if ft, ok := yamlFieldType(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

// expandedSize is about how many bytes n would take written out with every
// alias replaced by what it names: each node counts its scalar's length
// plus one. Sizes are kept per node, so the walk is linear in the file, and
// stop growing past MaxFileBytes. A file without aliases is no larger than
// itself; one with them is held to the same bound, since every value is
// compiled (lower-cased, templated) once per place it appears: 80,000
// aliases of a 200 KB region made 16 GB.
//
// yaml.v3 decodes a recursive alias (countries: &x [*x]) into a node that
// holds itself: a node being sized is marked (aliasCycle) and meeting it
// again counts as past the bound, with seen[nil] set so the caller can say
// why. Before, the walk recursed for ever and a one-line file killed the
// process (fatal stack overflow: a reload by the watch took the bidder
// down, and it could not start again while the file stayed).
func expandedSize(n *yaml.Node, seen map[*yaml.Node]int) int {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if s, ok := seen[n]; ok {
		if s == aliasCycle {
			seen[nil] = aliasCycle
			return MaxFileBytes + 1
		}
		return s
	}
	seen[n] = aliasCycle
	s := len(n.Value) + 1
	for _, c := range n.Content {
		if s > MaxFileBytes {
			break
		}
		s += expandedSize(c, seen)
	}
	s = min(s, MaxFileBytes+1)
	seen[n] = s
	return s
}

// aliasCycle marks a node expandedSize is sizing (and, as seen[nil], that a
// cycle was met).
const aliasCycle = -1

// MarshalConfig renders c as YAML that ParseConfig reads back to the same
// Config (used by the generator).
func MarshalConfig(c Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RepeatedKeys is the decoder's error (a *yaml.TypeError) naming each key
// written again in its mapping, found in one pass (mappingKeys), or nil. A
// strict decode finds them too, but compares every pair of a mapping's keys
// and makes a message for every equal pair: call it first on a file that
// may be large (the bidder's config: 2,000 repeated lines, 16 KB, took 16 s
// and 1.6 GB). A file that is not YAML is left to the decoder.
func RepeatedKeys(data []byte) error {
	if keyMarks(data) <= maxMappingKeys {
		return nil // no mapping of it can hold enough keys to matter
	}
	var root yaml.Node
	if yaml.NewDecoder(bytes.NewReader(data)).Decode(&root) != nil {
		return nil
	}
	return mappingKeys(&root, 0)
}

// maxMappingKeys bounds the keys of one mapping in a campaign file: the
// schema's widest mapping has a few dozen fields, and no field is a map of
// the file's own keys.
const maxMappingKeys = 256

// keyMarks counts the bytes that can end or introduce a mapping key (':',
// '?', and ',' between the keys of a flow mapping written {a, b}): a
// mapping has at most one key more than the file has of them.
func keyMarks(data []byte) int {
	return bytes.Count(data, []byte{':'}) + bytes.Count(data, []byte{'?'}) + bytes.Count(data, []byte{','})
}

// mappingKeys finds, in one pass over the parsed file, each key written
// again in its mapping (as yaml.v3 compares them: kind and text) and each
// mapping of more than maxMappingKeys keys. yaml.v3's own check compares
// every pair of a mapping's keys and makes a message for every equal
// pair: 4,000 lines of "zz: 1" (24 KB) made 8 million messages, 2.8 GB and
// 82 s, and a reload of such a file ran the bidder out of memory (an
// outside audit); 80,000 distinct unknown keys took 102 s. The messages
// are the decoder's ("line N: ..."), so they are named by field as its are
// (yamlProblems); the file is not decoded after them. Aliases are not
// followed: each mapping is met where it is written. limit 0: no bound.
func mappingKeys(root *yaml.Node, limit int) error {
	type key struct {
		kind  yaml.Kind
		value string
	}
	var msgs []string
	var seen map[key]int
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Kind == yaml.MappingNode {
			if len(seen) > 64 || seen == nil {
				seen = map[key]int{} // clearing a large one costs its size each time
			} else {
				clear(seen)
			}
			over := 0 // the line of the first key past limit
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if first, ok := seen[key{k.Kind, k.Value}]; ok {
					msgs = append(msgs, fmt.Sprintf("line %d: mapping key %#v already defined at line %d", k.Line, k.Value, first))
					continue
				}
				seen[key{k.Kind, k.Value}] = k.Line
				if len(seen) == limit+1 && limit > 0 {
					over = k.Line
				}
			}
			if over > 0 {
				msgs = append(msgs, fmt.Sprintf("line %d: %d keys in one mapping, more than the %d a campaign's may have",
					over, len(seen), limit))
			}
		}
		if n.Kind != yaml.AliasNode {
			stack = append(stack, n.Content...)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return &yaml.TypeError{Errors: msgs}
}
