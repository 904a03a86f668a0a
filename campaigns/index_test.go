package campaigns

import (
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
	has := func(list []string, v []byte) bool {
		for _, s := range list {
			if strings.EqualFold(s, string(v)) {
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
	n := 0
	for _, c := range cfgs {
		if c.Status == "paused" {
			continue
		}
		t := &c.Targeting
		m := has(t.Countries, req.Device.Geo.Country) || has(t.OS, req.Device.OS) ||
			has(t.Publishers, req.Site.Publisher.ID) || has(t.Publishers, req.App.Publisher.ID) ||
			has(t.SiteDomains.Allow, req.Site.Domain) || has(t.AppBundles.Allow, req.App.Bundle) ||
			slices.Contains(t.DeviceTypes, req.Device.DeviceType)
		for _, s := range req.User.Segments {
			m = m || has(t.Segments, s)
		}
		for _, d := range imp.Deals {
			m = m || has(t.Deals, d.ID)
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
	const requests = 100
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
	}
	if totalEligible == 0 {
		t.Fatal("no request matched anything: the test proves nothing")
	}
	if avg := totalExamined / requests; avg > len(cfgs)/10 {
		t.Errorf("examined %d of %d campaigns per request on average", avg, len(cfgs))
	}
	t.Logf("per request: %.1f examined, %.1f eligible, of %d campaigns",
		float64(totalExamined)/requests, float64(totalEligible)/requests, len(cfgs))
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
