//go:build !race

package campaigns

import (
	"math/rand/v2"
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

func TestMatchAllocatesNothing(t *testing.T) {
	cfgs := Generate(1000, 3)
	examples, err := LoadDir("../configs/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	s := mustCompile(t, cfgs, WithSeat("seat-1"))
	r := rand.New(rand.NewPCG(5, 5))
	type rq struct {
		req *ortb.Request
		imp *ortb.Imp
	}
	var reqs []rq
	for range 64 {
		req, imp := randomRequest(r)
		reqs = append(reqs, rq{req, imp})
	}
	// Hand-made ones too: deal, app, video, dayparted zones, blocks.
	req, imp := siteRequest(), bannerImp(300, 250)
	imp.Deals = []ortb.Deal{{ID: bs("deal-1"), WSeat: bss("seat-1")}}
	req.BAdv, req.BApp, req.WSeat = bss("advertiser-1.example"), bss("com.x"), bss("seat-1")
	reqs = append(reqs, rq{req, imp}, rq{appRequest(), bannerImp(320, 50)})
	dst := make([]Candidate, 0, 4096)
	var sc Scratch
	matched := 0
	for _, q := range reqs {
		matched += len(s.Match(dst[:0], q.req, q.imp, monday15, &sc)) // grows sc
	}
	if matched == 0 {
		t.Fatal("nothing matched: the guard would measure an empty path")
	}
	for i, q := range reqs {
		if n := testing.AllocsPerRun(20, func() { s.Match(dst[:0], q.req, q.imp, monday15, &sc) }); n != 0 {
			t.Errorf("request %d: %v allocations per Match", i, n)
		}
	}
	// The example campaigns (time zones, dayparting; creatives that declare
	// a language and a banner type) too, also under wlang, wlangb and btype.
	req, imp = siteRequest(), bannerImp(300, 250)
	if n := testing.AllocsPerRun(20, func() { examples.Match(dst[:0], req, imp, monday15, &sc) }); n != 0 {
		t.Errorf("examples: %v allocations per Match", n)
	}
	req.WLang, req.WLangB, imp.Banner.BType = bss("DE", "fr"), bss("en-GB"), []int64{1, 3}
	if n := testing.AllocsPerRun(20, func() { examples.Match(dst[:0], req, imp, monday15, &sc) }); n != 0 {
		t.Errorf("examples under wlang and btype: %v allocations per Match", n)
	}
	buf := make([]byte, 0, 4096)
	cr := examples.Creatives[0]
	click, impURL := []byte("https://b.example/c?x=1"), []byte("https://b.example/i")
	if n := testing.AllocsPerRun(20, func() { buf = AppendAdm(buf[:0], cr, click, impURL) }); n != 0 {
		t.Errorf("AppendAdm: %v allocations", n)
	}
	ncr := nativeCreative(t, nil)
	nat := randomNative(rand.New(rand.NewPCG(2, 2)))
	if n := testing.AllocsPerRun(20, func() { buf = AppendNative(buf[:0], ncr, &nat, click, impURL) }); n != 0 {
		t.Errorf("AppendNative: %v allocations", n)
	}
}

type usdRanker []*Campaign // the snapshot's, by Index

func (r usdRanker) Bound(i int) int64 { return r[i].UpperMicros() }

func TestRankedWalkAllocatesNothing(t *testing.T) {
	s := mustCompile(t, Generate(1000, 3), WithSeat("seat-1"))
	r := rand.New(rand.NewPCG(5, 6))
	dst := make([]Candidate, 0, 4096)
	var sc Scratch
	var rk Ranker = usdRanker(s.Campaigns)
	walk := func(req *ortb.Request, imp *ortb.Imp) int {
		n := 0
		s.Begin(req, imp, monday15, &sc, rk)
		for ok := true; ok; {
			dst, ok = s.Next(dst[:0], &sc)
			n += len(dst)
		}
		return n
	}
	matched := 0
	for i := range 64 {
		req, imp := randomRequest(r)
		matched += walk(req, imp) // grows sc
		if n := testing.AllocsPerRun(20, func() { walk(req, imp) }); n != 0 {
			t.Fatalf("request %d: %v allocations per ranked walk", i, n)
		}
	}
	if matched == 0 {
		t.Fatal("nothing matched: the guard would measure an empty path")
	}
}
