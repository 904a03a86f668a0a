package campaigns

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

func candKeys(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		deal := ""
		if c.Deal != nil {
			deal = string(c.Deal.ID)
		}
		out[i] = fmt.Sprintf("%s/%s/%s/%dx%d", c.Campaign.ID, c.Creative.ID, deal, c.W, c.H)
	}
	slices.Sort(out)
	return out
}

// mentions is an upper bound on what the index may examine, computed from the
// configs alone: active campaigns that name one of the request's values in a
// dimension they restrict, or that have a creative for the imp's formats.
func mentions(cfgs []Config, req *ortb.Request, imp *ortb.Imp) int {
	has := func(list []string, v string) bool {
		for _, s := range list {
			if strings.EqualFold(s, v) {
				return true
			}
		}
		return false
	}
	var sizes []string
	if imp.HasBanner {
		sizes = append(sizes, fmt.Sprintf("%dx%d", imp.Banner.W, imp.Banner.H))
		for _, f := range imp.Banner.Format {
			sizes = append(sizes, fmt.Sprintf("%dx%d", f.W, f.H))
		}
	}
	d := &req.Device
	lang := d.Language
	if len(lang) == 0 {
		lang, _, _ = bytes.Cut(d.LangB, []byte("-"))
	}
	kind := "none"
	switch {
	case req.HasSite:
		kind = "site"
	case req.HasApp:
		kind = "app"
	case req.HasDOOH:
		kind = "dooh"
	}
	country, osName, city, metro, carrier := string(d.Geo.Country), string(d.OS), string(d.Geo.City), string(d.Geo.Metro), string(d.Carrier)
	sitePub, appPub, doohPub := string(req.Site.Publisher.ID), string(req.App.Publisher.ID), string(req.DOOH.Publisher.ID)
	site, bundle, language := string(req.Site.Domain), string(req.App.Bundle), string(lang)
	var segs, deals, venues []string
	for _, s := range req.User.Segments {
		segs = append(segs, string(s))
	}
	for _, dl := range imp.Deals {
		deals = append(deals, string(dl.ID))
	}
	for _, v := range req.DOOH.VenueType {
		venues = append(venues, string(v))
	}
	n := 0
	for _, c := range cfgs {
		if c.Status == "paused" {
			continue
		}
		t := &c.Targeting
		m := has(t.Countries, country) || has(t.OS, osName) ||
			has(t.Publishers, sitePub) || has(t.Publishers, appPub) || has(t.Publishers, doohPub) ||
			has(t.SiteDomains.Allow, site) || has(t.AppBundles.Allow, bundle) ||
			slices.Contains(t.DeviceTypes, d.DeviceType) || has(t.Languages, language) || has(t.Cities, city) ||
			has(t.Metros, metro) || slices.Contains(t.ConnectionTypes, d.ConnType) || has(t.Carriers, carrier) ||
			has(t.Inventory, kind)
		for _, v := range venues {
			m = m || has(t.VenueTypes, v)
		}
		for _, s := range segs {
			m = m || has(t.Segments, s)
		}
		for _, dl := range deals {
			m = m || has(t.Deals, dl)
		}
		for _, cr := range c.Creatives {
			switch cr.Format {
			case "banner":
				for _, sz := range cr.Sizes {
					m = m || slices.Contains(sizes, sz)
				}
			case "video":
				m = m || imp.HasVideo
			case "native":
				m = m || imp.HasNative
			case "audio":
				m = m || imp.HasAudio
			}
		}
		if m {
			n++
		}
	}
	return n
}

// TestIndexAgreesWithExhaustiveScan: over random requests at 10,000
// generated campaigns, the index finds exactly what checking every campaign
// finds, while examining only campaigns that name the request's values.
func TestIndexAgreesWithExhaustiveScan(t *testing.T) {
	cfgs, s := large(t)
	r := rand.New(rand.NewPCG(42, 1))
	var sc, ref Scratch
	totalExamined, totalEligible := 0, 0
	covered := map[string]int{}
	const requests = 200
	for i := range requests {
		req, imp := randomRequest(r)
		got := s.Match(nil, req, imp, monday15, &sc)
		want := exhaustive(nil, s, req, imp, monday15, &ref)
		if g, w := candKeys(got), candKeys(want); !slices.Equal(g, w) {
			t.Fatalf("request %d: index %v\nexhaustive %v", i, g, w)
		}
		if bound := mentions(cfgs, req, imp); sc.Examined > bound {
			t.Fatalf("request %d: examined %d campaigns, more than the %d that name its values", i, sc.Examined, bound)
		}
		totalExamined += sc.Examined
		totalEligible += len(want)
		for _, c := range want {
			coverNewFields(covered, c, imp)
		}
	}
	if totalEligible == 0 {
		t.Fatal("no request matched anything: the test proves nothing")
	}
	for _, f := range newFields {
		if covered[f] == 0 {
			t.Errorf("no eligible candidate used %s: the agreement says nothing about it", f)
		}
	}
	t.Logf("eligible candidates per newer field: %v", covered)
	if avg := totalExamined / requests; avg > len(cfgs)/10 {
		t.Errorf("examined %d of %d campaigns per request on average", avg, len(cfgs))
	}
	t.Logf("per request: %.1f examined, %.1f eligible, of %d campaigns",
		float64(totalExamined)/requests, float64(totalEligible)/requests, len(cfgs))
}

// newFields are the targeting and creative fields the generator spreads
// over campaigns since OpenRTB 2.6 support (generate.go addTargeting26).
var newFields = []string{"languages", "cities", "metros", "connection_types", "carriers", "rewarded", "dooh", "venue_types",
	"plcmt", "skippable", "slot_in_pod", "pod_sequence", "protocols", "video duration constraint", "native assets", "audio"}

// coverNewFields counts an eligible candidate under each newer field it uses.
func coverNewFields(covered map[string]int, c Candidate, imp *ortb.Imp) {
	t, cr := &c.Campaign.Targeting, c.Creative
	for f, ok := range map[string]bool{
		"languages": len(t.Languages) > 0, "cities": len(t.Cities) > 0, "metros": len(t.Metros) > 0,
		"connection_types": len(t.ConnTypes) > 0, "carriers": len(t.Carriers) > 0, "rewarded": t.Rewarded != 0,
		"dooh": t.DOOH, "venue_types": len(t.VenueTypes) > 0, "plcmt": len(cr.Plcmt) > 0, "skippable": cr.Skippable != 0,
		"slot_in_pod":  len(cr.SlotInPod) > 0 && (len(imp.Video.PodID) > 0 || len(imp.Audio.PodID) > 0),
		"pod_sequence": len(cr.PodSeq) > 0, "protocols": len(imp.Video.Protocols) > 0 && cr.Format == FormatVideo,
		"video duration constraint": cr.Format == FormatVideo && (imp.Video.MaxDuration > 0 || len(imp.Video.RqdDurs) > 0),
		"native assets":             cr.Format == FormatNative && len(imp.Native.Assets) > 0, "audio": cr.Format == FormatAudio,
	} {
		if ok {
			covered[f]++
		}
	}
}

// TestIndexExaminesOnlySelectivePostings: 10,000 generated campaigns plus a
// few that target one publisher; a request from that publisher, on values no
// generated campaign names, examines the few and nothing else.
func TestIndexExaminesOnlySelectivePostings(t *testing.T) {
	cfgs, s := large(t)
	req := siteRequest()
	req.Site.Publisher.ID = bs("pub-needle")
	req.Site.Domain = bs("needle.example.org")
	req.Device.Geo.Country = bs("NZL")
	req.Device.OS = bs("Tizen")
	req.Device.DeviceType = 3
	req.User.Segments = nil
	imp := bannerImp(468, 60)
	var sc Scratch
	got := s.Match(nil, req, imp, monday15, &sc)
	if len(got) != needles {
		t.Fatalf("got %d candidates, want the %d needles: %v", len(got), needles, candKeys(got))
	}
	if sc.Examined != needles {
		t.Errorf("examined %d campaigns of %d, want %d", sc.Examined, len(cfgs), needles)
	}
	// The same request on a common size examines more (the broad campaigns
	// posted under 300x250) but still a small part of the set.
	imp = bannerImp(300, 250)
	s.Match(nil, req, imp, monday15, &sc)
	if bound := mentions(cfgs, req, imp); sc.Examined > bound || sc.Examined > len(cfgs)/20 {
		t.Errorf("300x250: examined %d, bound %d of %d", sc.Examined, bound, len(cfgs))
	}
}

const needles = 4

var largeSet struct {
	once sync.Once
	cfgs []Config
	snap *Snapshot
	err  error
}

// large is 10,000 generated campaigns plus a few "needles" that target one
// publisher and a size no generated campaign uses; compiled once per run.
func large(t *testing.T) ([]Config, *Snapshot) {
	t.Helper()
	l := &largeSet
	l.once.Do(func() {
		l.cfgs = Generate(10_000, 1)
		for i := range needles {
			c := baseConfig(fmt.Sprintf("needle-%d", i))
			c.Targeting.Publishers = []string{"pub-needle"}
			c.Creatives[0].Sizes = []string{"468x60"}
			l.cfgs = append(l.cfgs, c)
		}
		l.snap, l.err = Compile(l.cfgs, WithSeat("seat-1"))
	})
	if l.err != nil {
		t.Fatal(l.err)
	}
	return l.cfgs, l.snap
}

func TestGenerateDeterministicAndValid(t *testing.T) {
	a, b := Generate(300, 9), Generate(300, 9)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different configs")
	}
	if c := Generate(300, 10); reflect.DeepEqual(c, a) {
		t.Fatal("different seeds, same configs")
	}
	if _, err := Compile(a); err != nil {
		t.Fatalf("generated configs invalid: %v", err)
	}
	// YAML round trip: what the generator binary writes reads back the same.
	for _, c := range a[:50] {
		data, err := MarshalConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig("x.yaml", data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.ID, err, data)
		}
		back.File = ""
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed %s:\n%+v\n%+v", c.ID, c, back)
		}
	}
}
