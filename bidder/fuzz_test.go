package bidder

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
)

// FuzzBidHandler: any body gets 200, 204, 400 or 413, never a panic or a
// 5xx, and a 200 decodes into the schema of record.
func FuzzBidHandler(f *testing.F) {
	files, _ := filepath.Glob("testdata/requests/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b[:len(b)/2], false)
		f.Add(gzipped(f, b), true)
	}
	f.Add([]byte(`{"id":"1","imp":[{"id":"1","banner":{"w":300,"h":250}}],"device":{"geo":{"country":"USA"}}}`), false)
	f.Add([]byte(`{"id":"1","imp":[{"id":"1","video":{"mimes":["video/mp4"],"w":640,"h":360}}],"device":{"ifa":"a","geo":{"country":"DEU"}},`+
		`"user":{"id":"u","consent":"`+tcAll+`"},"regs":{"gdpr":1,"us_privacy":"1YNN","gpp":"`+gppClean+`","gpp_sid":[2,7]}}`), false)
	ts := newTestServer(f, withVendor)
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		var hdr []string
		if gz {
			hdr = []string{"Content-Encoding", "gzip"}
		}
		r := ts.bid(body, hdr...)
		switch r.StatusCode() {
		case 200:
			var resp openrtb2.BidResponse
			if err := json.Unmarshal(r.Body(), &resp); err != nil {
				t.Fatalf("200 body is not a BidResponse: %v\n%s", err, r.Body())
			}
		case 204, 400, 413:
		default:
			t.Fatalf("status %d for %q", r.StatusCode(), body)
		}
		if ts.m.panics.load() != 0 {
			t.Fatalf("handler panicked on %q", body)
		}
	})
}

// budgetTestServer is the bid and notice path over a real budget manager
// (in-memory store instead of NATS) and the real token signer.
func budgetTestServer(t testing.TB, opts ...func(*Config)) (*Server, *budget.Manager) {
	t.Helper()
	return budgetTestServerWith(t, budget.Config{}, opts...)
}

// budgetTestServerWith is budgetTestServer with bc's fields (a zero field:
// the default) for the budget manager.
func budgetTestServerWith(t testing.TB, bc budget.Config, opts ...func(*Config)) (*Server, *budget.Manager) {
	t.Helper()
	bc.InstanceID, bc.Store, bc.SyncPeriod = "fuzz", budget.NewMemStore(), 50*time.Millisecond
	m, err := budget.New(bc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := campaigns.LoadDir("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetCampaigns(budgetCampaigns(snap)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{InstanceID: "fuzz", Model: ModelConfig{GBDT: "x"}, Limits: LimitsConfig{InternalBudget: 150 * time.Millisecond}}
	for _, o := range opts {
		o(cfg)
	}
	// A key of this process's own: a fuzz corpus cached by an earlier run
	// holds tokens of that run's bids, which would be charged here as the
	// other (late) bids they are, not as replays of this run's one bid.
	s, err := NewServer(Parts{Config: cfg, Campaigns: snap, Scorer: &fixedScorer{p: 0.02}, Budget: m, NoticeKey: []byte("fuzz-key-" + rand.Text())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()); cancel() })
	return s, m
}

// FuzzNotice: notice URLs of any shape get a 2xx/3xx/4xx answer, never a
// panic, and the money never moves by more than the bids placed.
func FuzzNotice(f *testing.F) {
	s, m := budgetTestServer(f)
	ts := &testServer{Server: s}
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		f.Fatal(err)
	}
	var resp openrtb2.BidResponse
	r := ts.bid(body)
	if err := json.Unmarshal(r.Body(), &resp); err != nil || len(resp.SeatBid) == 0 {
		f.Fatalf("seed bid: %d %v %s", r.StatusCode(), err, r.Body())
	}
	b := resp.SeatBid[0].Bid[0]
	const held = 2000 // one $2 CPM bid
	for _, u := range []string{b.NURL, b.BURL, b.LURL} {
		f.Add(substitute(u, "1.25"))
		f.Add(substitute(u, "999999"))
		f.Add(substitute(u, "-1"))
		f.Add(u)
	}
	f.Add("/notice/imp?t=")
	f.Add("/notice/click?t=AAAA")
	f.Add("/notice/../openrtb2/bid")
	f.Fuzz(func(t *testing.T, uri string) {
		resp := ts.do("GET", uri, nil)
		switch c := resp.StatusCode(); {
		case c >= 500 && c != 503:
			t.Fatalf("status %d for %q: %s", c, uri, resp.Body())
		}
		if ts.m.panics.load() != 0 {
			t.Fatalf("panic on %q", uri)
		}
		var spent int64
		for _, c := range m.Status() {
			spent += c.SpentMicros
		}
		if spent > held {
			t.Fatalf("charged %d micros from one bid held at %d after %q", spent, held, uri)
		}
	})
}
