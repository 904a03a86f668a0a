package campaigns

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // time zones resolve on machines without a zoneinfo database
	"unicode"
	"unicode/utf8"

	"github.com/openbidder/openbidder/internal/localday"
)

// Option configures Compile, LoadDir and NewStore.
type Option func(*options)

type options struct {
	seat  string
	paced bool      // pause now and then on a single P (loadPause): a reload
	prev  *Snapshot // a reload: campaigns of files unchanged since are taken from it
}

// reuse is the Option of a reload: a file whose bytes are those prev's
// campaign was compiled from is not parsed and compiled again, its campaign
// is copied from prev (see LoadDir).
func reuse(prev *Snapshot) Option { return func(o *options) { o.prev = prev } }

// paced is the Option of a reload (Store.Reload after the first load).
func paced(o *options) { o.paced = true }

// WithSeat sets the buyer seat id the bidder bids with; Match checks it
// against request wseat/bseat and deal wseat. Without a seat, a request or
// deal that lists allowed seats excludes us.
func WithSeat(seat string) Option { return func(o *options) { o.seat = seat } }

// Snapshot is an immutable compiled campaign set: the campaigns, their
// creatives and the targeting index. Publish it, never modify it.
type Snapshot struct {
	Campaigns []*Campaign // by Index
	Creatives []*Creative // by Index
	Seat      string      // our buyer seat id (WithSeat)
	Dir       string      // directory it was loaded from, if any
	Loaded    time.Time
	// Reused counts the campaigns a reload copied from the snapshot before
	// (their files unchanged) instead of parsing them again.
	Reused int

	byID   map[string]*Campaign
	byFile map[string]*Campaign // by Campaign.File, for a reload's reuse
	idx    index
}

// Campaign returns the campaign with the id, or nil.
func (s *Snapshot) Campaign(id string) *Campaign { return s.byID[id] }

// Len is the number of campaigns.
func (s *Snapshot) Len() int { return len(s.Campaigns) }

// LoadDir reads every *.yaml / *.yml file (any case) in dir (not recursively), one
// campaign per file, and compiles them. Every problem in every file is
// reported, joined, wrapping ErrInvalid.
//
// A reload (Store.Reload) passes the running snapshot: a file whose bytes
// have the SHA-256 its campaign there was compiled from is neither parsed
// nor compiled again, its campaign (and creatives) are copied from it, with
// this snapshot's indexes. Compiling is a function of the file's bytes, so
// the copy is what compiling them again gives; parsing was 80-90% of a
// reload of 10,000 files (about 4 of 5 s of CPU on a loaded 2-core machine),
// all of it on the bid path's core with one P.
func LoadDir(dir string, opts ...Option) (*Snapshot, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	pause := newLoadPause(o.paced)
	names, err := campaignFiles(dir, &pause)
	if err != nil {
		return nil, err
	}
	var list []error
	items := make([]item, 0, len(names))
	for _, name := range names {
		data, err := readFile(name)
		if err != nil {
			pause.step(20)
			list = append(list, &Problem{File: name, Reason: err.Error()})
			continue
		}
		sum := sha256.Sum256(data)
		if c := o.prev.unchanged(name, sum); c != nil {
			pause.step(40) // read and hash a file: 30-40 us (open, stat, read, close)
			items = append(items, item{sum: sum, prev: c})
			continue
		}
		pause.step(250) // read and parse a file: about 250 us
		c, err := parseConfig(name, data, &pause)
		if err != nil {
			list = append(list, yamlProblems(name, data, err, &pause)...)
			continue
		}
		items = append(items, item{cfg: c, sum: sum})
	}
	s, err := compileItems(items, list, opts)
	if s != nil {
		s.Dir = dir
	}
	return s, err
}

// MaxCreatives bounds a campaign's creatives: every one is checked against
// each imp the campaign matches, so their number is bid-path time (an
// outside audit's 7 campaigns of 6,500 creatives took p50 from 0.40 to
// 1.80 ms). Campaigns have tens.
const MaxCreatives = 1000

// MaxFileBytes is the largest campaign file LoadDir reads: a campaign with
// its templates is a few kilobytes, and a file past this (a log copied in
// by mistake) is a problem, not a read that takes the memory.
const MaxFileBytes = 1 << 20

// readFile reads one campaign file: a regular file (a symlink to one is
// followed) of at most MaxFileBytes. Anything else (a FIFO, whose read
// waits for a writer, or a device such as /dev/zero, which never ends) is
// refused. The file is opened without blocking and the open file is
// checked: a check of the name before the open left a window in which a
// FIFO renamed over the file made the open wait for a writer for ever
// (an outside audit swapped one in under SIGHUPs, and the reload, and then
// shutdown, never finished).
func readFile(name string) ([]byte, error) {
	// The name is checked first too, so a device or a FIFO in the folder is
	// never opened at all (an open can have effects); the open file is
	// checked again, for what a rename put there in between.
	if fi, err := os.Stat(name); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%d bytes, more than the %d a campaign file may have", fi.Size(), MaxFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1)) // it may grow after the Stat
	if err == nil && len(data) > MaxFileBytes {
		err = fmt.Errorf("more than the %d bytes a campaign file may have", MaxFileBytes)
	}
	return data, err
}

// campaignFiles lists dir's campaign files, sorted by name. The directory is
// read 256 entries at a time and the names sorted in runs, both paced: at
// 10,000 files os.ReadDir (which sorts) and the sort were 4-12 ms of
// unbroken work on the bid path's core at every reload.
func campaignFiles(dir string, pause *loadPause) ([]string, error) {
	var names []string
	if err := eachCampaignFile(dir, pause, func(n string, _ bool) { names = append(names, filepath.Join(dir, n)) }); err != nil {
		return nil, err
	}
	pacedSort(names, pause)
	return names, nil
}

// eachCampaignFile calls fn with the name (not the path) of each campaign
// file in dir, in the order the directory lists them. The directory is read
// 256 entries at a time, with pause's pauses (about a microsecond an entry):
// reading all 10,000 names at once (os.ReadDir, which also sorts them) was
// milliseconds of unbroken work on the bid path's core.
func eachCampaignFile(dir string, pause *loadPause, fn func(name string, link bool)) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("campaigns: read dir: %w", err)
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(256)
		for _, e := range ents {
			if isCampaignFile(e) {
				fn(e.Name(), e.Type()&fs.ModeSymlink != 0)
			}
		}
		pause.step(len(ents))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("campaigns: read dir: %w", err)
		}
	}
}

// sortRun is the length of the runs pacedSort sorts before merging them:
// about 80 microseconds of sorting each.
const sortRun = 512

// pacedSort sorts names as slices.Sort does, in steps a pause can come
// between: runs of sortRun names sorted one by one, then merged pairwise
// (bottom up) through a buffer, a pause counted every sortRun names.
func pacedSort(names []string, pause *loadPause) {
	n := len(names)
	for lo := 0; lo < n; lo += sortRun {
		slices.Sort(names[lo:min(lo+sortRun, n)])
		pause.step(80)
	}
	if n <= sortRun {
		return
	}
	src, dst := names, make([]string, n)
	for w := sortRun; w < n; w *= 2 {
		for lo := 0; lo < n; lo += 2 * w {
			mid, hi := min(lo+w, n), min(lo+2*w, n)
			i, j := lo, mid
			for k := lo; k < hi; k++ {
				if j >= hi || (i < mid && src[i] <= src[j]) {
					dst[k] = src[i]
					i++
				} else {
					dst[k] = src[j]
					j++
				}
				if (k-lo)%sortRun == sortRun-1 {
					pause.step(10)
				}
			}
		}
		src, dst = dst, src
	}
	if &src[0] != &names[0] {
		copy(names, src)
	}
}

// isCampaignFile says whether a directory entry is a campaign file: a
// .yaml or .yml file, in any letter case (ACME.YAML was skipped without a
// word, so its campaign never ran), whose name does not start with a dot.
func isCampaignFile(e os.DirEntry) bool {
	n := e.Name()
	if e.IsDir() || strings.HasPrefix(n, ".") {
		return false
	}
	ext := filepath.Ext(n)
	return strings.EqualFold(ext, ".yaml") || strings.EqualFold(ext, ".yml")
}

// yamlProblems splits a decoder error ("yaml: unmarshal errors:\n  line 3: ...")
// into one Problem per line, each with the field path of the line it names
// when the file's YAML can be read (yamlProblem).
func yamlProblems(name string, data []byte, err error, pause *loadPause) []error {
	msg := strings.TrimPrefix(err.Error(), name+": ")
	if msg == "EOF" {
		return []error{&Problem{File: name, Reason: "empty file"}}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	head, rest, multi := strings.Cut(msg, "unmarshal errors:\n")
	if !multi || strings.TrimSpace(head) != "" {
		return []error{&Problem{File: name, Reason: msg}}
	}
	keys := yamlKeyLines(data, pause)
	var out []error
	for _, l := range strings.Split(rest, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, yamlProblem(name, l, keys))
		}
	}
	return out
}

// Compile validates and compiles in-memory configs (the generator, tests,
// benchmarks). Config.File labels the problems; when empty, "campaign[i]".
func Compile(cfgs []Config, opts ...Option) (*Snapshot, error) {
	items := make([]item, len(cfgs))
	for i := range cfgs {
		items[i].cfg = cfgs[i]
	}
	return compileItems(items, nil, opts)
}

// item is one campaign file to compile: its config, or (a reload, the file
// unchanged) the running snapshot's campaign compiled from it; sum is the
// file's SHA-256 (zero for a config given without a file).
type item struct {
	cfg  Config
	sum  [32]byte
	prev *Campaign
}

// unchanged is s's campaign of file name when it was compiled from bytes of
// SHA-256 sum, else nil (s nil: none).
func (s *Snapshot) unchanged(name string, sum [32]byte) *Campaign {
	if s == nil {
		return nil
	}
	if c := s.byFile[name]; c != nil && c.sum == sum && sum != ([32]byte{}) {
		return c
	}
	return nil
}

// copyCampaign is a copy of a published campaign and its creatives for
// another snapshot (whose compile sets their indexes); what they point to
// is immutable and shared.
func copyCampaign(c *Campaign) *Campaign {
	nc := *c
	nc.Creatives = make([]*Creative, len(c.Creatives))
	for i, cr := range c.Creatives {
		ncr := *cr
		ncr.Campaign = &nc
		nc.Creatives[i] = &ncr
	}
	return &nc
}

func compileItems(items []item, list []error, opts []Option) (*Snapshot, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	s := &Snapshot{Seat: o.seat, Loaded: time.Now(), byID: make(map[string]*Campaign, len(items)),
		byFile: make(map[string]*Campaign, len(items)), Campaigns: make([]*Campaign, 0, len(items))}
	ncr := 0
	for i := range items {
		if items[i].prev != nil {
			ncr += len(items[i].prev.Creatives)
		} else {
			ncr += len(items[i].cfg.Creatives)
		}
	}
	s.Creatives = make([]*Creative, 0, ncr)
	files := make(map[string]string, len(items))
	crFiles := make(map[string]string)
	pause := newLoadPause(o.paced)
	var crIDs []string
	for i := range items {
		it := &items[i]
		id, file := it.cfg.ID, it.cfg.File
		crIDs = crIDs[:0]
		if it.prev != nil {
			pause.step(10) // copy a campaign: about 10 us
			id, file = it.prev.ID, it.prev.File
			for _, cr := range it.prev.Creatives {
				crIDs = append(crIDs, cr.ID)
			}
		} else {
			pause.step(25) // build a campaign: tens of microseconds
			for _, cc := range it.cfg.Creatives {
				crIDs = append(crIDs, cc.ID)
			}
		}
		if file == "" {
			file = "campaign[" + strconv.Itoa(i) + "]"
		}
		p := problems{file: file, list: &list}
		dup := false
		if prev, ok := files[id]; ok && id != "" {
			p.add("id", "%q already defined in %s", id, prev)
			dup = true
		} else if id != "" {
			files[id] = file
		}
		for j, crID := range crIDs {
			if crID == "" {
				continue
			}
			if prev, ok := crFiles[crID]; ok {
				p.add(fmt.Sprintf("creatives[%d].id", j), "%q already used in %s", crID, prev)
				dup = true
			} else {
				crFiles[crID] = fmt.Sprintf("%s creatives[%d]", file, j)
			}
		}
		var c *Campaign
		if it.prev != nil {
			c = copyCampaign(it.prev)
			s.Reused++
		} else if c = buildCampaign(&it.cfg, p); c != nil {
			c.sum = it.sum
		}
		if c == nil || dup {
			continue
		}
		c.Index = len(s.Campaigns)
		s.Campaigns = append(s.Campaigns, c)
		s.byID[c.ID] = c
		if c.File != "" {
			s.byFile[c.File] = c
		}
		for _, cr := range c.Creatives {
			cr.Index = len(s.Creatives)
			s.Creatives = append(s.Creatives, cr)
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return problemFile(list[i]) < problemFile(list[j]) })
	if err := joinProblems(list); err != nil {
		return nil, err
	}
	s.idx = buildIndex(s.Campaigns)
	s.idx.seat = []byte(s.Seat)
	return s, nil
}

func problemFile(e error) string {
	if p, ok := e.(*Problem); ok {
		return p.File
	}
	return ""
}

var (
	idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// A DNS name: labels of 1-63 letters, digits and inner hyphens (a 70
	// character label was accepted and sent in adomain: an outside audit);
	// domains checks the whole name's 253.
	domainRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
	categoryRE = regexp.MustCompile(`^IAB([1-9]|1[0-9]|2[0-6])(-[1-9][0-9]?)?$`)
	countryRE  = regexp.MustCompile(`^[A-Z]{3}$`)
	languageRE = regexp.MustCompile(`^[a-z]{2,3}$`)
	// categoryIDRE is a category id in a taxonomy other than IAB 1.0.
	categoryIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)
	sizeRE       = regexp.MustCompile(`^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$`)
	adLanguageRE = regexp.MustCompile(`^[a-z]{2}$`) // a creative's language: ISO 639-1, as bid.language
)

// currencies is the ISO 4217 codes accepted for campaigns.
var currencies = map[string]bool{
	"USD": true, "EUR": true, "GBP": true, "JPY": true, "CAD": true, "AUD": true, "NZD": true, "CHF": true,
	"SEK": true, "NOK": true, "DKK": true, "PLN": true, "CZK": true, "HUF": true, "RON": true, "TRY": true,
	"BRL": true, "MXN": true, "ARS": true, "CLP": true, "COP": true, "INR": true, "CNY": true, "HKD": true,
	"SGD": true, "KRW": true, "TWD": true, "THB": true, "IDR": true, "MYR": true, "PHP": true, "VND": true,
	"ZAR": true, "ILS": true, "AED": true, "SAR": true, "RUB": true, "UAH": true, "EGP": true, "NGN": true,
}

func buildCampaign(cfg *Config, p problems) *Campaign {
	n := len(*p.list)
	c := &Campaign{ID: cfg.ID, File: p.file, Advertiser: strings.TrimSpace(cfg.Advertiser)}
	if !idRE.MatchString(cfg.ID) {
		p.add("id", "%q must be 1-64 letters, digits, '.', '_' or '-'", cfg.ID)
	}
	if c.Advertiser == "" {
		p.add("advertiser", "required")
	}
	c.ADomain = domains(p, "adomain", cfg.ADomain)
	if len(cfg.ADomain) == 0 {
		p.add("adomain", "at least one advertiser domain is required")
	}
	switch cfg.Status {
	case "", "active":
	case "paused":
		c.Status = StatusPaused
	default:
		p.add("status", "%q is not active or paused", cfg.Status)
	}
	c.Currency = "USD"
	if cfg.Currency != "" {
		c.Currency = cfg.Currency
		if !currencies[cfg.Currency] {
			p.add("currency", "%q is not a known ISO 4217 currency code", cfg.Currency)
		}
	}
	c.TimeZone = time.UTC
	if cfg.TimeZone != "" {
		loc, err := loadLocation(cfg.TimeZone)
		if err != nil || cfg.TimeZone == "Local" {
			p.add("time_zone", "%q is not an IANA time zone", cfg.TimeZone)
		} else {
			c.TimeZone = loc
		}
	}
	c.Start = flightTime(p, "flight.start", cfg.Flight.Start, c.TimeZone, false)
	c.End = flightTime(p, "flight.end", cfg.Flight.End, c.TimeZone, true)
	if !c.Start.IsZero() && !c.End.IsZero() && !c.End.After(c.Start) {
		p.add("flight.end", "%s is not after flight.start %s", cfg.Flight.End, cfg.Flight.Start)
	}
	buildStrategy(cfg, c, p)
	buildBudget(cfg, c, p)
	buildFreqCap(cfg, c, p)
	c.Targeting, c.AllowCOPPA = buildTargeting(&cfg.Targeting, p)
	c.DSA = buildDSA(cfg.DSA, p)
	if len(cfg.Creatives) == 0 {
		p.add("creatives", "at least one creative is required")
	}
	if len(cfg.Creatives) > MaxCreatives {
		p.add("creatives", "%d creatives, more than the %d a campaign may have (split it into campaigns)", len(cfg.Creatives), MaxCreatives)
	}
	for i := range cfg.Creatives {
		if cr := buildCreative(&cfg.Creatives[i], c, p, fmt.Sprintf("creatives[%d]", i)); cr != nil {
			c.Creatives = append(c.Creatives, cr)
		}
	}
	if len(*p.list) > n {
		return nil
	}
	return c
}

// dsaMaxLen is the most characters the IAB's DSA extension allows in behalf
// and paid.
const dsaMaxLen = 100

// buildDSA checks dsa: behalf and paid both given, at most dsaMaxLen
// characters of printable text each.
func buildDSA(cfg *DSAConfig, p problems) *DSA {
	if cfg == nil {
		return nil
	}
	d := &DSA{Behalf: strings.TrimSpace(cfg.Behalf), Paid: strings.TrimSpace(cfg.Paid)}
	ok := true
	for _, f := range []struct{ path, v string }{{"dsa.behalf", d.Behalf}, {"dsa.paid", d.Paid}} {
		switch {
		case f.v == "":
			p.add(f.path, "required (the advertiser, or whoever the ads are shown on behalf of / paid by)")
			ok = false
		case utf8.RuneCountInString(f.v) > dsaMaxLen:
			p.add(f.path, "%d characters, more than the %d the DSA transparency extension allows", utf8.RuneCountInString(f.v), dsaMaxLen)
			ok = false
		case !utf8.ValidString(f.v) || strings.IndexFunc(f.v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
			p.add(f.path, "%q holds a character that is not printable text", f.v)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	b, _ := json.Marshal(struct {
		Behalf   string `json:"behalf"`
		Paid     string `json:"paid"`
		AdRender int    `json:"adrender"`
	}{d.Behalf, d.Paid, 0})
	d.JSON = append([]byte(`"dsa":`), b...)
	return d
}

// flightMin and flightMax bound flight times: the targeting index and the
// budget compare them as int64 Unix nanoseconds, which end in 2262 (a start
// in 2300 wrapped negative, so the campaign bid at once).
var flightMin, flightMax = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

func flightTime(p problems, path, s string, loc *time.Location, end bool) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
		if err != nil {
			p.add(path, "%q is neither an RFC 3339 time nor a date (2006-01-02)", s)
			return time.Time{}
		}
		d := t.Day()
		if end {
			d++ // an end date includes the whole day
		}
		// The day's first instant: 01:00 where the clocks jump at midnight
		// (time.Date put it at 23:00 the day before, an hour early).
		t = localday.Start(t.Year(), t.Month(), d, loc)
	}
	if t.Before(flightMin) || t.After(flightMax) {
		p.add(path, "%q is outside the years 1678 to 2262, the times the bidder can count (leave it out for an open flight)", s)
		return time.Time{}
	}
	return t
}

func money(p problems, path string, a Amount, required bool) int64 {
	if a == "" {
		if required {
			p.add(path, "required")
		}
		return 0
	}
	m, err := ParseMicros(string(a))
	if err != nil {
		p.add(path, "%q: %v", string(a), err)
		return 0
	}
	if required && m == 0 {
		p.add(path, "must be greater than 0")
	}
	return m
}

func buildStrategy(cfg *Config, c *Campaign, p problems) {
	bs := &cfg.BidStrategy
	st := &c.Strategy
	need := map[string]bool{}
	switch bs.Kind {
	case "fixed_cpm":
		st.Kind = FixedCPM
		need["cpm"] = true
	case "target_cpc":
		st.Kind = TargetCPC
		need["cpc"] = true
	case "target_cpa":
		st.Kind = TargetCPA
		need["cpa"] = true
		st.ConversionRate = bs.ConversionRate
		if !(bs.ConversionRate > 0 && bs.ConversionRate <= 1) {
			p.add("bid_strategy.conversion_rate", "%v must be in (0, 1] for target_cpa", bs.ConversionRate)
		}
	case "":
		p.add("bid_strategy.kind", "required (fixed_cpm, target_cpc or target_cpa)")
	default:
		p.add("bid_strategy.kind", "%q is not fixed_cpm, target_cpc or target_cpa", bs.Kind)
	}
	if bs.Kind != "target_cpa" && bs.ConversionRate != 0 {
		p.add("bid_strategy.conversion_rate", "only used by target_cpa")
	}
	for _, f := range []struct {
		name string
		a    Amount
		dst  *int64
	}{{"cpm", bs.CPM, &st.CPMMicros}, {"cpc", bs.CPC, &st.CPCMicros}, {"cpa", bs.CPA, &st.CPAMicros}} {
		if bs.Kind != "" && !need[f.name] && f.a != "" {
			p.add("bid_strategy."+f.name, "not used by %s", bs.Kind)
			continue
		}
		*f.dst = money(p, "bid_strategy."+f.name, f.a, need[f.name])
	}
	c.MaxBidMicros = money(p, "max_bid_cpm", cfg.MaxBidCPM, true)
	if st.Kind == FixedCPM && c.MaxBidMicros > 0 && st.CPMMicros > c.MaxBidMicros {
		p.add("bid_strategy.cpm", "%s exceeds max_bid_cpm %s", bs.CPM, cfg.MaxBidCPM)
	}
}

func buildBudget(cfg *Config, c *Campaign, p problems) {
	c.Budget.DailyMicros = money(p, "budget.daily", cfg.Budget.Daily, true)
	c.Budget.TotalMicros = money(p, "budget.total", cfg.Budget.Total, false)
	if _, err := ParseMicros(string(cfg.Budget.Total)); cfg.Budget.Total != "" && c.Budget.TotalMicros == 0 && err == nil {
		p.add("budget.total", "must be greater than 0 (leave it out for no lifetime cap)")
	}
	if c.Budget.TotalMicros > 0 && c.Budget.DailyMicros > c.Budget.TotalMicros {
		p.add("budget.daily", "%s exceeds budget.total %s", cfg.Budget.Daily, cfg.Budget.Total)
	}
	switch cfg.Pacing.Mode {
	case "", "even":
	case "forecast":
		c.Pacing.Mode = PacingForecast
	case "asap":
		c.Pacing.Mode = PacingASAP
	default:
		p.add("pacing.mode", "%q is not even, forecast or asap", cfg.Pacing.Mode)
	}
}

func buildFreqCap(cfg *Config, c *Campaign, p problems) {
	fc := cfg.FrequencyCap
	if fc.Count < 0 {
		p.add("frequency_cap.count", "%d is negative", fc.Count)
	}
	if fc.Window == "" {
		if fc.Count > 0 {
			p.add("frequency_cap.window", "required with a count (a Go duration such as 24h)")
		}
		return
	}
	w, err := time.ParseDuration(fc.Window)
	switch {
	case err != nil:
		p.add("frequency_cap.window", "%q is not a Go duration (24h, 30m)", fc.Window)
	case w < time.Minute:
		p.add("frequency_cap.window", "%s is shorter than a minute", fc.Window)
	case fc.Count == 0:
		p.add("frequency_cap.count", "required with a window")
	}
	c.FreqCap = FreqCap{Count: fc.Count, Window: w}
}

// domains lower-cases and checks a list of domain names.
func domains(p problems, path string, in []string) []string {
	out := make([]string, 0, len(in))
	for i, d := range in {
		l := strings.ToLower(strings.TrimSpace(d))
		if a := string(idnASCII([]byte(l))); a != l {
			l = a // münchen.example is written xn--mnchen-3ya.example
		}
		if len(l) > maxDomainBytes || !domainRE.MatchString(l) {
			p.add(fmt.Sprintf("%s[%d]", path, i), "%q is not a domain name", d)
			continue
		}
		out = append(out, l)
	}
	return uniq(out)
}

func uniq(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	sort.Strings(in)
	out := in[:1]
	for _, s := range in[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

func checkURL(p problems, path, s string, required, secure bool) {
	if s == "" {
		if required {
			p.add(path, "required")
		}
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(path, "%q is not an absolute http(s) URL", s)
		return
	}
	if secure && u.Scheme != "https" {
		p.add(path, "%q is not https but the creative is secure", s)
	}
}

// zones keeps each time zone loaded, by name: time.LoadLocation reads and
// parses the zone's file on every call, so 10,000 campaigns in one zone were
// 10,000 reads at each load and 10,000 copies of the same table in memory,
// and the budget's per-zone day cache (keyed by *time.Location) could not be
// shared between them. A zone name names the same rules for the life of the
// process, and the set is bounded by the zone database.
var zones sync.Map // string -> *time.Location

func loadLocation(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	actual, _ := zones.LoadOrStore(name, l)
	return actual.(*time.Location), nil
}
