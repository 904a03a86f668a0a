package simulator

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prebid/openrtb/v20/openrtb2"
)

func TestTrafficDeterministicAndShaped(t *testing.T) {
	gen := func(seed uint64, n int) []*Outgoing {
		w := NewWorld(TrafficConfig{Publishers: 200, Users: 5000}, seed)
		r := rand.New(rand.NewPCG(seed, 2))
		out := make([]*Outgoing, n)
		for i := range out {
			out[i] = w.Request(r, uint64(i+1), 1_790_000_000, 0.1)
		}
		return out
	}
	a, b := gen(5, 4000), gen(5, 4000)
	for i := range a {
		if !bytes.Equal(a[i].Body, b[i].Body) || a[i].Gzip != b[i].Gzip {
			t.Fatalf("request %d differs between runs with the same seed", i)
		}
	}
	var v26, gz, eu, euWithGDPR, video, native, banner, app int
	for _, og := range a {
		var req openrtb2.BidRequest
		if err := json.Unmarshal(og.Body, &req); err != nil {
			t.Fatalf("request %d: %v", og.Seq, err)
		}
		if og.Version == "2.6" {
			v26++
		}
		if og.Gzip {
			gz++
		}
		if req.App != nil {
			app++
		}
		for _, imp := range req.Imp {
			switch {
			case imp.Video != nil:
				video++
			case imp.Native != nil:
				native++
			case imp.Banner != nil:
				banner++
			}
		}
		for _, c := range Countries {
			if c.Code == req.Device.Geo.Country && c.EU {
				eu++
				gdpr26 := req.Regs != nil && req.Regs.GDPR != nil && *req.Regs.GDPR == 1 && req.User.Consent != ""
				gdpr25 := req.Regs != nil && string(req.Regs.Ext) == `{"gdpr":1}` && len(req.User.Ext) > 0
				if (og.Version == "2.6" && gdpr26) || (og.Version == "2.5" && gdpr25) {
					euWithGDPR++
				}
			}
		}
	}
	n := float64(len(a))
	if g := float64(gz) / n; math.Abs(g-0.1) > 0.02 {
		t.Errorf("gzip share %.3f, want 0.1", g)
	}
	if eu == 0 || euWithGDPR != eu {
		t.Errorf("EU requests %d, with the version's gdpr/consent shape %d", eu, euWithGDPR)
	}
	if banner == 0 || video == 0 || native == 0 || app == 0 || v26 == 0 || v26 == len(a) {
		t.Errorf("mix: banner %d video %d native %d app %d v2.6 %d of %d", banner, video, native, app, v26, len(a))
	}
}

func TestGroundTruthCTR(t *testing.T) {
	g := GroundTruth{Base: 0.02, Seed: 7}
	c := ImpContext{Publisher: "pub-1", Country: "USA", OS: "iOS", DevType: 4, LocalHour: 20, Format: "banner",
		W: 300, H: 250, User: "u-1", CID: "camp-1", CrID: "camp-1-cr-1"}
	p := g.CTR(c)
	if p <= 0 || p >= 1 || p != g.CTR(c) {
		t.Fatalf("CTR %v not a deterministic probability", p)
	}
	c2 := c
	c2.CrID = "camp-1-cr-2"
	c3 := c
	c3.Format = "video"
	if g.CTR(c2) == p || g.CTR(c3) <= p {
		t.Errorf("the creative and format must move the CTR: %v %v %v", p, g.CTR(c2), g.CTR(c3))
	}
	if (GroundTruth{Base: 0.02, Seed: 8}).CTR(c) == p {
		t.Error("the seed must change the hidden weights")
	}
	flat := GroundTruth{Base: 0.02, Seed: 7, Scale: 1e-9}
	if got := flat.CTR(c); math.Abs(got-0.02) > 1e-6 {
		t.Errorf("scale ~0 gives the base CTR, got %v", got)
	}
}
