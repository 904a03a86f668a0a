package campaigns

import (
	"fmt"
	"testing"
)

// A request's bapp is looked up against the creative's bundle with a
// search that needs a sorted list, and it was kept in request order: with
// more than 8 bundles the index knows (here, other campaigns target them),
// a blocked app's own install ad was bid whenever the search went the
// wrong way. Both orders are tried: the old code missed one of them.
func TestBAppManyKnownBundles(t *testing.T) {
	var cfgs []Config
	var others [][]byte
	for i := range 12 {
		c := baseConfig(fmt.Sprintf("t%d", i))
		b := fmt.Sprintf("com.other.app%02d", i)
		c.Targeting.AppBundles.Allow = []string{b}
		others = append(others, []byte(b))
		cfgs = append(cfgs, c)
	}
	adv := baseConfig("adv")
	adv.Creatives[0].Bundle = "com.advertised.app"
	cfgs = append(cfgs, adv)
	s := mustCompile(t, cfgs)
	for _, first := range []bool{true, false} {
		req := appRequest()
		req.BApp = append([][]byte(nil), others...)
		if first {
			req.BApp = append([][]byte{[]byte("com.advertised.app")}, req.BApp...)
		} else {
			req.BApp = append(req.BApp, []byte("com.advertised.app"))
		}
		for _, c := range s.Match(nil, req, bannerImp(300, 250), monday15, &Scratch{}) {
			if c.Campaign.ID == "adv" {
				t.Errorf("bapp lists the advertised app (first: %v) and its ad is a candidate", first)
			}
		}
	}
}
