package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ortb"
)

// BenchmarkHandlerNoMatch is the handler on a request no campaign targets
// at any time (an unknown publisher, country and sizes): the common request
// of a DSP, which pays the traffic forecast's second walk of the index
// (campaigns.Snapshot.Targeted) after the ranked walk found nothing.
func BenchmarkHandlerNoMatch(b *testing.B) {
	defer closeFixtures()
	body := []byte(strings.NewReplacer(fmt.Sprintf("-%d", BenchPub), "-987654", `"country":"USA"`, `"country":"ZWE"`,
		`"w":300,"h":250,"format":[{"w":300,"h":250},{"w":320,"h":50},{"w":728,"h":90}]`,
		`"w":301,"h":251,"format":[{"w":301,"h":251},{"w":321,"h":51},{"w":729,"h":91}]`).Replace(string(SiteBanner("0.5"))))
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			f := fixture(b, sz.n, "nomodel", 0)
			var p ortb.Parser
			var req ortb.Request
			if err := p.Parse(body, &req); err != nil {
				b.Fatal(err)
			}
			if f.Snap.Targeted(&req, &req.Imps[0], time.Now(), &campaigns.Scratch{}) {
				b.Fatal("the request is targeted: not the case this benchmark measures")
			}
			benchFast(b, f, body, false, false)
		})
	}
}
