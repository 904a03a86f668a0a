package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

const gbdtManifest = "../configs/models/gbdt.manifest.json"

var (
	fixMu    sync.Mutex
	fixtures = map[string]*Fixture{}
	gbdtOnce sync.Once
	gbdt     *ctr.GBDT
	gbdtErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeFixtures()
	os.Exit(code)
}

// closeFixtures stops every fixture's budget manager, whose background
// loops would otherwise allocate during later benchmarks.
func closeFixtures() {
	fixMu.Lock()
	defer fixMu.Unlock()
	for k, f := range fixtures {
		f.Close()
		delete(fixtures, k)
	}
}

// loadGBDT is the bundled 200-tree depth-6 model, loaded once.
func loadGBDT(tb testing.TB) *ctr.GBDT {
	tb.Helper()
	gbdtOnce.Do(func() { gbdt, gbdtErr = ctr.LoadGBDT(gbdtManifest, features.SchemaVersion, features.Width) })
	if gbdtErr != nil {
		tb.Fatal(gbdtErr)
	}
	return gbdt
}

// fixture returns the shared fixture for n campaigns and a model ("gbdt200"
// or "nomodel"); maxScored 0 is the bidder's default.
func fixture(tb testing.TB, n int, model string, maxScored int) *Fixture {
	tb.Helper()
	key := fmt.Sprintf("%d/%s/%d", n, model, maxScored)
	fixMu.Lock()
	defer fixMu.Unlock()
	if f := fixtures[key]; f != nil {
		return f
	}
	f := newFixture(tb, n, model, maxScored)
	fixtures[key] = f
	return f
}

// newFixture builds a fixture of its own (fixture shares one per key):
// budget state (holds, frequency counts) that no other test touched.
func newFixture(tb testing.TB, n int, model string, maxScored int) *Fixture {
	tb.Helper()
	var sc ctr.Scorer = ConstScorer{P: 0.02}
	switch model {
	case "gbdt200":
		sc = loadGBDT(tb)
	case "gbdt200-nodeadline":
		sc = noDeadline{loadGBDT(tb)}
	}
	o := Options{Campaigns: n, Scorer: sc, MaxScoredPerImp: maxScored}
	if model == "gbdt200-nodeadline" {
		// Tests compare outcomes: a stall (-race, a loaded machine) must not
		// turn the bidder's answer into a 204 "tmax" the baseline never gives.
		o.InternalBudget = 100 * time.Millisecond
		o.RevealPCTR = true // the agreement tests compare bid.ext.pctr
	}
	f, err := NewFixture(o)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// noDeadline scores without a deadline, so that the GBDT's run-time
// estimate on a loaded machine cannot turn a test's bid into a no-bid.
type noDeadline struct{ ctr.Scorer }

func (n noDeadline) Score(_ time.Time, rows, out []float32) error {
	return n.Scorer.Score(time.Time{}, rows, out)
}

// fastCtx is a reusable RequestCtx for POST /openrtb2/bid.
func fastCtx() *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/openrtb2/bid")
	ctx.Request.Header.SetContentType("application/json")
	return &ctx
}

// serveFast runs one request through the fasthttp handler on ctx.
func serveFast(h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx, body []byte) int {
	ctx.Response.Reset()
	ctx.Request.SetBody(body)
	h(ctx)
	return ctx.Response.StatusCode()
}

// serveBaseline runs one request through the baseline with a recorder.
func serveBaseline(h http.Handler, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/openrtb2/bid", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
