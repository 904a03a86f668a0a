package simulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/valyala/fasthttp"
)

// SinkConfig configures Sink, a minimal loopback bidder: the load-test
// target for comparisons with other tools, and the fake bidder of the tests.
// It follows the bidder contract: POST /openrtb2/bid answers 204, or with
// BidProb a bid on every imp whose nurl/burl/lurl and adm trackers point back
// at the sink, and GET /notice/{win,bill,loss,imp,click} are counted.
type SinkConfig struct {
	Addr      string        // listen address, default 127.0.0.1:0 (random port)
	BidProb   float64       // probability of bidding; 0 = always 204
	Price     float64       // CPM in USD (default 1.0)
	PCTR      float64       // bid.ext.pctr (default 0.02)
	Campaigns int           // bids rotate over cid camp-1..N (default 1)
	Creatives int           // creatives per campaign, crid camp-K-cr-1..M (default 1)
	Delay     time.Duration // added before every bid answer
	Seed      uint64
}

func (cfg SinkConfig) withDefaults() SinkConfig {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Price == 0 {
		cfg.Price = 1
	}
	if cfg.PCTR == 0 {
		cfg.PCTR = 0.02
	}
	if cfg.Campaigns <= 0 {
		cfg.Campaigns = 1
	}
	if cfg.Creatives <= 0 {
		cfg.Creatives = 1
	}
	return cfg
}

// Sink is a running fake bidder.
type Sink struct {
	cfg    SinkConfig
	ln     net.Listener
	srv    *fasthttp.Server
	done   chan struct{}
	bidReq atomic.Int64
	mu     sync.Mutex
	hits   map[string]int64
	rng    *rand.Rand
	rngMu  sync.Mutex
	seq    atomic.Int64
}

// StartSink listens and serves until Close.
func StartSink(cfg SinkConfig) (*Sink, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("simulator: sink listen: %w", err)
	}
	s := &Sink{cfg: cfg, ln: ln, done: make(chan struct{}), hits: map[string]int64{},
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x51c))}
	s.srv = &fasthttp.Server{Handler: s.handle, Name: "sink", Concurrency: 1 << 16}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// URL is the bid endpoint.
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() + "/openrtb2/bid" }

// BidRequests is how many bid requests arrived.
func (s *Sink) BidRequests() int64 { return s.bidReq.Load() }

// Hits returns counts by notice kind (win, bill, loss, imp, click), loss
// notices by code as "loss:CODE", and notices with a minimum bid to win as
// "min_to_win:KIND" (substituted) and "min_to_win:none" (the macro as is).
func (s *Sink) Hits() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.hits))
	for k, v := range s.hits {
		out[k] = v
	}
	return out
}

// Close stops the server.
func (s *Sink) Close() error {
	err := s.srv.Shutdown()
	<-s.done
	return err
}

func (s *Sink) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if kind, ok := strings.CutPrefix(path, "/notice/"); ok {
		s.mu.Lock()
		s.hits[kind]++
		if kind == "loss" {
			s.hits["loss:"+string(ctx.QueryArgs().Peek("r"))]++
		}
		if m := ctx.QueryArgs().Peek("m"); len(m) > 0 {
			if _, err := strconv.ParseFloat(string(m), 64); err == nil {
				s.hits["min_to_win:"+kind]++
			} else {
				s.hits["min_to_win:none"]++ // the macro as sent
			}
		}
		s.mu.Unlock()
		if kind == "click" {
			ctx.Redirect("http://127.0.0.1/landing", fasthttp.StatusFound)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	if path != "/openrtb2/bid" || !ctx.IsPost() {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	s.bidReq.Add(1)
	if s.cfg.Delay > 0 {
		time.Sleep(s.cfg.Delay)
	}
	if s.cfg.BidProb <= 0 {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	body, err := ctx.Request.BodyUncompressed()
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	var req openrtb2.BidRequest
	if json.Unmarshal(body, &req) != nil {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	s.rngMu.Lock()
	bid := s.rng.Float64() < s.cfg.BidProb
	s.rngMu.Unlock()
	if !bid {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(s.response(&req, string(ctx.Host())))
}

func (s *Sink) response(req *openrtb2.BidRequest, host string) []byte {
	resp := openrtb2.BidResponse{ID: req.ID, Cur: "USD"}
	var bids []openrtb2.Bid
	for i := range req.Imp {
		bids = append(bids, sinkBid(s.cfg, s.seq.Add(1), &req.Imp[i], host))
	}
	resp.SeatBid = []openrtb2.SeatBid{{Seat: "sink", Bid: bids}}
	out, _ := json.Marshal(resp)
	return out
}

// sinkBid is the sink's bid number n on imp: campaign camp-(1+n mod
// Campaigns), creative camp-K-cr-(1+(n/Campaigns) mod Creatives), notice and
// tracker URLs on host. The training log generator (WriteTrainLog) bids the
// same way without HTTP.
func sinkBid(cfg SinkConfig, n int64, imp *openrtb2.Imp, host string) openrtb2.Bid {
	tok := strconv.FormatInt(n, 36)
	base := "http://" + host + "/notice/"
	q := "?t=" + tok + "&p=${AUCTION_PRICE}"
	imptr, click := base+"imp?t="+tok, base+"click?t="+tok
	b := openrtb2.Bid{ID: "b" + tok, ImpID: imp.ID, Price: cfg.Price, NURL: base + "win" + q + "&m=${AUCTION_MIN_TO_WIN}",
		BURL: base + "bill" + q, LURL: base + "loss" + q + "&m=${AUCTION_MIN_TO_WIN}&r=${AUCTION_LOSS}", CID: "camp-" + strconv.FormatInt(1+n%int64(cfg.Campaigns), 10),
		ADomain: []string{"advertiser.example.com"}, Ext: json.RawMessage(`{"pctr":` + FormatPrice(cfg.PCTR) + `}`)}
	b.CrID = b.CID + "-cr-" + strconv.FormatInt(1+(n/int64(cfg.Campaigns))%int64(cfg.Creatives), 10)
	switch {
	case imp.Video != nil:
		b.MType = openrtb2.MarkupVideo
		b.AdM = `<VAST version="4.0"><Ad><InLine><Impression><![CDATA[` + imptr + `]]></Impression><Creatives><Creative><Linear>` +
			`<VideoClicks><ClickThrough><![CDATA[` + click + `]]></ClickThrough></VideoClicks></Linear></Creative></Creatives></InLine></Ad></VAST>`
	case imp.Native != nil:
		b.MType = openrtb2.MarkupNative
		nat, _ := json.Marshal(map[string]any{"native": map[string]any{"ver": "1.2", "link": map[string]any{"url": click},
			"imptrackers": []string{imptr}, "assets": []any{map[string]any{"id": 1, "title": map[string]any{"text": "Hi"}}}}})
		b.AdM = string(nat)
	default:
		b.MType = openrtb2.MarkupBanner
		if imp.Banner != nil && len(imp.Banner.Format) > 0 {
			b.W, b.H = imp.Banner.Format[0].W, imp.Banner.Format[0].H
		}
		b.AdM = `<a href="` + strings.ReplaceAll(click, "&", "&amp;") + `"><img src="https://cdn.example.com/ad.png"></a>` +
			`<img src="` + imptr + `" width="1" height="1">`
	}
	return b
}
