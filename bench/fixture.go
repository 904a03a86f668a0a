package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/bidder"
	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// Seat is the buyer seat both handlers bid with.
const Seat = "openbidder"

// GenSeed is the campaigns.Generate seed of every benchmark campaign set.
const GenSeed = 1

// Rates is the currency table of both handlers (the generator uses USD, EUR
// and GBP campaigns).
var Rates = map[string]float64{"USD": 1, "EUR": 1.1, "GBP": 1.25}

// GenerateCampaigns is campaigns.Generate(n, GenSeed) with budgets no
// benchmark can exhaust and without pacing throttles (pacing asap), so that
// a long run measures bids, not budget no-bids. Targeting, creatives,
// strategies, frequency caps and dayparting are left as generated.
func GenerateCampaigns(n int) []campaigns.Config {
	cfgs := campaigns.Generate(n, GenSeed)
	for i := range cfgs {
		cfgs[i].Budget = campaigns.BudgetConfig{Daily: "100000000"} // 1e8 units a day
		cfgs[i].Pacing = campaigns.PacingConfig{Mode: "asap"}
	}
	return cfgs
}

// ConstScorer predicts the same pCTR for every row: the bid path with the
// model taken out ("nomodel").
type ConstScorer struct{ P float32 }

var _ ctr.Scorer = ConstScorer{}

// Score implements ctr.Scorer.
func (c ConstScorer) Score(deadline time.Time, rows, out []float32) error {
	if len(rows) != len(out)*features.Width {
		return ctr.ErrSchema
	}
	for i := range out {
		out[i] = c.P
	}
	return nil
}

// Width implements ctr.Scorer.
func (ConstScorer) Width() int { return features.Width }

// Name implements ctr.Scorer.
func (ConstScorer) Name() string { return "const" }

// CountingScorer counts the rows and calls it forwards to its Scorer, so a
// benchmark can report candidates scored per request.
type CountingScorer struct {
	ctr.Scorer
	rows, calls atomic.Uint64
}

var _ ctr.Scorer = (*CountingScorer)(nil)

// Score implements ctr.Scorer.
func (c *CountingScorer) Score(deadline time.Time, rows, out []float32) error {
	c.rows.Add(uint64(len(out)))
	c.calls.Add(1)
	return c.Scorer.Score(deadline, rows, out)
}

// Counts returns rows scored and calls made, and zeroes both.
func (c *CountingScorer) Counts() (rows, calls uint64) {
	return c.rows.Swap(0), c.calls.Swap(0)
}

// Options configures a Fixture.
type Options struct {
	Campaigns int        // generated campaigns (GenerateCampaigns)
	Scorer    ctr.Scorer // wrapped in a CountingScorer
	// MaxScoredPerImp is the bidder's pricing.max_scored_per_imp, used by
	// both handlers (0: the bidder's default, 8).
	MaxScoredPerImp int
	PublicURL       string // notice URL base (default http://127.0.0.1:8080)
	// InternalBudget is the bidder's limits.internal_budget (0: its default,
	// 8 ms). The baseline always gets at least 100 ms (see NewFixture).
	InternalBudget time.Duration
	// ExhaustiveScan is the bidder's pricing.exhaustive_scan: gate every
	// eligible candidate (the reference the ranked walk is checked against).
	ExhaustiveScan bool
	// RevealPCTR is the bidder's (and the baseline's) pricing.reveal_pctr:
	// bid.ext.pctr, which the agreement test compares.
	RevealPCTR bool
}

// Fixture is one campaign set served by both handlers: the fasthttp bidder
// (Handler) and the net/http baseline (Baseline), sharing the compiled
// campaigns, the scorer and the budget manager.
type Fixture struct {
	Snap     *campaigns.Snapshot
	Budget   *budget.Manager
	Scorer   *CountingScorer
	Server   *bidder.Server
	Handler  fasthttp.RequestHandler
	Baseline *Baseline
	cancel   context.CancelFunc
}

// NewFixture compiles the campaigns, starts an in-memory budget manager with
// leases large enough never to run out, and builds both handlers.
func NewFixture(o Options) (*Fixture, error) {
	if o.Scorer == nil {
		return nil, errors.New("bench: fixture needs a scorer")
	}
	if o.PublicURL == "" {
		o.PublicURL = "http://127.0.0.1:8080"
	}
	snap, err := campaigns.Compile(GenerateCampaigns(o.Campaigns), campaigns.WithSeat(Seat))
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := budget.New(budget.Config{
		InstanceID: "bench",
		Store:      budget.NewMemStore(),
		MinLease:   1 << 50, MaxLease: 1 << 50,
		// Holds are never settled here; they expire after HoldTTL (the
		// expiry runs every second). The open holds, at most ~3 s of bids
		// (under 500,000 at the fastest rate measured), fit the default
		// table of 1<<20 (36 MB per fixture).
		HoldTTL: 2 * time.Second,
		// The lease sync allocates per campaign per sync (about 7 objects
		// per campaign, 70,000 a second at 10,000 campaigns with the default
		// 1s period). Off the bid path, but a benchmark's allocs/op counts
		// every goroutine's, so sync rarely: the leases are huge anyway.
		SyncPeriod: 30 * time.Minute,
		LeaseTTL:   2 * time.Hour,
	}, log)
	if err != nil {
		return nil, err
	}
	f := &Fixture{Snap: snap, Budget: m, Scorer: &CountingScorer{Scorer: o.Scorer}}
	cfg := &bidder.Config{
		InstanceID: "bench",
		Seat:       Seat,
		PublicURL:  o.PublicURL,
		Model:      bidder.ModelConfig{GBDT: "configs/models/gbdt.manifest.json"},
		Pricing:    bidder.PricingConfig{MaxScoredPerImp: o.MaxScoredPerImp, ExhaustiveScan: o.ExhaustiveScan, RevealPCTR: o.RevealPCTR},
		Limits:     bidder.LimitsConfig{InternalBudget: o.InternalBudget},
		Currency:   bidder.CurrencyConfig{Base: "USD", Rates: Rates},
	}
	// NewServer hands the campaigns to the budget manager (SetCampaigns).
	f.Server, err = bidder.NewServer(bidder.Parts{Config: cfg, Campaigns: snap, Scorer: f.Scorer, Budget: m, NoticeKey: []byte("bench-key")})
	if err != nil {
		return nil, err
	}
	f.Handler = f.Server.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	if err := m.Start(ctx); err != nil {
		cancel()
		return nil, err
	}
	f.Baseline, err = NewBaseline(BaselineConfig{
		Campaigns: snap, Scorer: f.Scorer, Budget: m, NoticeKey: []byte("bench-key"),
		Seat: Seat, InstanceID: "bench", PublicURL: o.PublicURL, Base: "USD", Rates: Rates,
		MaxScoredPerImp: cfg.Pricing.MaxScoredPerImp, PrivacyVendorID: cfg.Privacy.VendorID, RevealPCTR: o.RevealPCTR,
		// The baseline takes milliseconds per request at 10,000 campaigns
		// on a loaded machine; let it finish its work rather than answer
		// 204 "deadline" (tmax 120 - 15 ms margin still bounds it).
		InternalBudget: max(100*time.Millisecond, o.InternalBudget),
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close stops the budget manager.
func (f *Fixture) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f.Budget.Close(ctx)
	f.cancel()
}

// BenchPub is the publisher (pub-N, site-N.example.com) of the benchmark
// request, chosen so that several generated campaigns are eligible at 1,000
// campaigns (see TestBenchRequestEligible).
const BenchPub = 5

// SiteBanner is a realistic single-imp site banner request of about 1.6 KB
// that generated campaigns match: publisher and site BenchPub, USA, iOS
// phone, 300x250 with 320x50 and 728x90 alternatives, segments, blocks.
// floor is imp.bidfloor in USD.
func SiteBanner(floor string) []byte {
	r := strings.NewReplacer("{N}", fmt.Sprint(BenchPub), "{FLOOR}", floor)
	return []byte(r.Replace(siteBannerTemplate))
}

const siteBannerTemplate = `{"id":"a3f9c2e1-7b4d-4e8a-9c1f-2d6b8e0a5f31","at":1,"tmax":120,"cur":["USD"],` +
	`"imp":[{"id":"1","tagid":"homepage-top-rectangle","bidfloor":{FLOOR},"bidfloorcur":"USD","secure":1,` +
	`"banner":{"w":300,"h":250,"format":[{"w":300,"h":250},{"w":320,"h":50},{"w":728,"h":90}],"pos":1,"battr":[1,3,8,9,10,14],"api":[3,5]},` +
	`"ext":{"gpid":"/1234/news/homepage#top","prebid":{"bidder":{"openbidder":{"placementId":"mr-1"}}}}}],` +
	`"site":{"id":"s-{N}","name":"The Daily Courier","domain":"site-{N}.example.com","cat":["IAB12","IAB12-2"],` +
	`"page":"https://site-{N}.example.com/politics/2026/11/council-votes-on-budget","ref":"https://www.google.com/",` +
	`"publisher":{"id":"pub-{N}","name":"Courier Media Group","domain":"couriermedia.example"},"mobile":1},` +
	`"device":{"ua":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",` +
	`"ip":"203.0.113.54","devicetype":4,"make":"Apple","model":"iPhone","os":"iOS","osv":"17.4","language":"en","js":1,"dnt":0,` +
	`"connectiontype":2,"w":390,"h":844,"ifa":"6d92078a-8246-4ba4-ae5b-76104861e7dc",` +
	`"geo":{"country":"USA","region":"NY","city":"New York","zip":"10001","type":2,"utcoffset":-300,"lat":40.7506,"lon":-73.9972}},` +
	`"user":{"id":"u-9f8e7d6c5b4a","buyeruid":"ob-7f3a9c2d1e","yob":1986,"gender":"F",` +
	`"data":[{"id":"dmp1","name":"courier-dmp","segment":[{"id":"seg-3"},{"id":"seg-17"},{"id":"seg-42"}]}]},` +
	`"bcat":["IAB25","IAB26","IAB7-39"],"badv":["competitor.example","spam.example"],` +
	`"source":{"fd":1,"tid":"4b2e9a61-0c3d-4f5e-8a7b-6c9d0e1f2a3b","schain":{"complete":1,"ver":"1.0",` +
	`"nodes":[{"asi":"couriermedia.example","sid":"5521","hp":1},{"asi":"exchange.example","sid":"88","hp":1}]}},` +
	`"regs":{"coppa":0,"ext":{"gdpr":0,"us_privacy":"1YNN"}}}`
