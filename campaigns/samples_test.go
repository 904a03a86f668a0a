package campaigns

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ortb"
)

// TestMatchParsedRequests runs the example campaigns against every request
// fixture as the parser reads it (and the shared exchange samples when
// present): the index agrees with checking every campaign, and the example
// campaigns bid on the fixtures they are meant for.
func TestMatchParsedRequests(t *testing.T) {
	s, err := LoadDir("../configs/campaigns", WithSeat("openbidder"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../ortb/testdata/*.json")
	shared, _ := filepath.Glob("../../shared/ortb-samples/*.json")
	files = append(files, shared...)
	if len(files) == 0 {
		t.Skip("no request fixtures")
	}
	now := monday15
	var p ortb.Parser
	var req ortb.Request
	var sc, ref Scratch
	matched := map[string][]string{}
	parsed := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Parse(body, &req); err != nil {
			continue // bad requests are the parser's tests
		}
		parsed++
		for i := range req.Imps {
			imp := &req.Imps[i]
			got := s.Match(nil, &req, imp, now, &sc)
			want := exhaustive(nil, s, &req, imp, now, &ref)
			if !slices.Equal(candKeys(got), candKeys(want)) {
				t.Errorf("%s imp %d: index %v, exhaustive %v", f, i, candKeys(got), candKeys(want))
			}
			for _, c := range got {
				matched[filepath.Base(f)] = append(matched[filepath.Base(f)], c.Creative.ID)
			}
		}
	}
	if parsed == 0 {
		t.Fatal("no fixture parsed")
	}
	if ids := matched["site_banner.json"]; !slices.Contains(ids, "acme-leaderboard") {
		t.Errorf("site_banner.json (728x90, USA, secure): matched %v, want acme-leaderboard", ids)
	}
	t.Logf("%d requests parsed, %d with candidates", parsed, len(matched))
}

// TestExamplesBidOnVocabularyTraffic: every active example campaign finds
// requests among traffic drawn from the simulator's vocabulary (the deal-only,
// audio, DOOH and CTV-pod ones need a deal, an audio imp, a screen or a pod,
// checked separately).
func TestExamplesBidOnVocabularyTraffic(t *testing.T) {
	s, err := LoadDir("../configs/campaigns", WithSeat("openbidder"))
	if err != nil {
		t.Fatal(err)
	}
	now := monday15.Add(-time.Hour) // 09:00 in New York, inside the breakfast daypart
	r := rand.New(rand.NewPCG(3, 3))
	var sc Scratch
	hits := map[string]int{}
	for range 4000 {
		req, imp := randomRequest(r)
		for _, c := range s.Match(nil, req, imp, now, &sc) {
			hits[c.Campaign.ID]++
		}
	}
	for _, c := range s.Campaigns {
		switch c.ID {
		case "luxemotors-pmp", "podwave-audio", "metroscreens-dooh", "ctvplus-pods":
			continue
		}
		if c.Status == StatusPaused {
			if hits[c.ID] != 0 {
				t.Errorf("paused %s matched %d times", c.ID, hits[c.ID])
			}
			continue
		}
		if hits[c.ID] == 0 {
			t.Errorf("%s never matched vocabulary traffic", c.ID)
		}
	}
	t.Logf("matches per campaign over 4000 requests: %v", hits)

	req, imp := siteRequest(), bannerImp(970, 250)
	imp.Deals = []ortb.Deal{{ID: bs("deal-2"), WSeat: bss("openbidder")}}
	imp.PrivateAuction = true
	// Its deals are example-adx's: from any other sender (no exchange, or
	// another one), the deal id alone bids nothing (an outside audit: any
	// sender of deal-1 got its fixed 9.00 CPM).
	for _, ex := range []string{"", "example-ooh", "example-adx"} {
		sc.Exchange = []byte(ex)
		got := s.Match(nil, req, imp, now, &sc)
		switch {
		case ex != "example-adx" && len(got) != 0:
			t.Errorf("private deal-2 from %q: %v, want none", ex, candKeys(got))
		case ex == "example-adx" && (len(got) != 1 || got[0].Campaign.ID != "luxemotors-pmp" || got[0].Deal != &imp.Deals[0]):
			t.Errorf("private deal-2 from example-adx: %v", candKeys(got))
		}
	}
	sc.Exchange = nil
	req = appRequest()
	imp = &ortb.Imp{ID: bs("1"), HasAudio: true, Audio: ortb.Audio{MIMEs: bss("audio/mpeg")}}
	if got := s.Match(nil, req, imp, now, &sc); len(got) != 1 || got[0].Creative.ID != "podwave-spot-30" || got[0].Creative.MType() != 3 {
		t.Errorf("audio imp: %v", candKeys(got))
	}
	// A screen at JFK: the DOOH campaign's video (a 15 s standalone loop) and still.
	req = siteRequest()
	req.HasSite, req.Site = false, ortb.Site{}
	req.HasDOOH = true
	req.DOOH = ortb.DOOH{VenueType: bss("transit.airports"), Publisher: ortb.Publisher{ID: bs("ooh-3")}}
	req.Device.Geo.Metro, req.Device.Language = bs("501"), bs("en")
	imp = &ortb.Imp{ID: bs("1"), HasVideo: true, HasBanner: true, Banner: ortb.Banner{W: 1920, H: 1080},
		Video: ortb.Video{MIMEs: bss("video/mp4"), MaxDuration: 15, Plcmt: 4, Skip: ortb.False, Protocols: []int64{7}, W: 1920, H: 1080}}
	if got := candKeys(s.Match(nil, req, imp, now, &sc)); !slices.Equal(got, []string{"metroscreens-dooh/metroscreens-loop-15//1920x1080", "metroscreens-dooh/metroscreens-still//1920x1080"}) {
		t.Errorf("DOOH screen: %v", got)
	}
	// A CTV break over wifi: the first slot takes either spot, a later one only the 15 s.
	req = appRequest()
	req.Device.DeviceType, req.Device.ConnType = 3, 2
	pod := func(slot int64) *ortb.Imp {
		return &ortb.Imp{ID: bs("1"), HasVideo: true, Video: ortb.Video{MIMEs: bss("video/mp4"), W: 1920, H: 1080, Plcmt: 1,
			Skip: ortb.False, Protocols: []int64{7, 8}, Pod: ortb.Pod{PodID: bs("b1"), SlotInPod: slot, RqdDurs: []int64{15, 30}}}}
	}
	if got := candKeys(s.Match(nil, req, pod(1), now, &sc)); !slices.Equal(got, []string{"ctvplus-pods/ctvplus-any-15//1920x1080", "ctvplus-pods/ctvplus-first-30//1920x1080"}) {
		t.Errorf("first slot: %v", got)
	}
	if got := candKeys(s.Match(nil, req, pod(-1), now, &sc)); !slices.Equal(got, []string{"ctvplus-pods/ctvplus-any-15//1920x1080"}) {
		t.Errorf("last slot: %v", got)
	}
}
