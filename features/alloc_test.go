//go:build !race

package features

import (
	"testing"

	"github.com/openbidder/openbidder/ortb"
)

func TestExtractZeroAllocs(t *testing.T) {
	site, app := siteBannerRequest(), appVideoRequest()
	ad := NewAd("camp-1", "cr-1", "adv.example", 1, 300, 250)
	var imp [Width]float32
	rows := make([]float32, 0, 4*Width)
	n := testing.AllocsPerRun(200, func() {
		for _, req := range [...]*ortb.Request{site, app} {
			ExtractImp(imp[:], req, &req.Imps[0], bidTime, req.Regs.COPPA != ortb.True)
			rows = AppendRow(rows[:0], imp[:], &ad)
			rows = AppendRow(rows, imp[:], &ad)
			SetAd(imp[:], &ad)
		}
	})
	if n != 0 {
		t.Fatalf("feature extraction allocates %v times per run", n)
	}
}
