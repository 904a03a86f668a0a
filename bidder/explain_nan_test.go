package bidder

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
)

// A model answering NaN (a hot-reloaded model file whose weights hold a
// NaN for ids its parity sample does not cover loads and does that): the
// explanation says so instead of failing. Before, json could not encode
// the NaN pCTR and POST /admin/explain answered an empty 200 (an outside
// audit), just when an operator needed it.
func TestExplainModelAnsweringNaN(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, p := range []float32{float32(math.NaN()), float32(math.Inf(1)), -0.5, 2} {
		ts.score.p = p
		w := httptest.NewRecorder()
		ts.handleExplain(w, httptest.NewRequest("POST", "/admin/explain?all=1", strings.NewReader(string(readReq(t, "site-banner.json")))))
		var a explainAnswer
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &a) != nil {
			t.Fatalf("pCTR %v: explain answered %d %q", p, w.Code, w.Body.String())
		}
		scored := 0
		for _, imp := range a.Imps {
			for _, e := range imp.Campaigns {
				if e.InvalidPCTR == nil {
					continue
				}
				scored++
				if e.ModelUsed != "" || e.Status != "gated" || e.Rule != "model_error" || e.PriceMicros != 0 {
					t.Errorf("pCTR %v: %s priced from it: %+v", p, e.ID, e)
				}
			}
		}
		if scored == 0 {
			t.Errorf("pCTR %v: no candidate lists it as invalid_pctr: %s", p, w.Body.String())
		}
	}
}
