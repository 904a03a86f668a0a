// Package bidder wires the bid path: the fasthttp server and its handlers
// for bid requests, notices and health, and the admin listener. Nothing else
// imports it.
package bidder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// scorerBox holds the current scorer behind one atomic pointer.
type scorerBox struct {
	s    ctr.Scorer
	name string
	lat  []ctr.LatencyPredictor // the chain's scorers, to trim candidates to the slack
}

// fits reports whether some scorer predicts rows fit in slack.
func (b *scorerBox) fits(rows int, slack time.Duration) bool {
	for _, p := range b.lat {
		if p.PredictLatency(rows) <= slack {
			return true
		}
	}
	return len(b.lat) == 0
}

// Server is one bidder instance's HTTP side.
type Server struct {
	cfg   *Config
	log   *slog.Logger
	m     *metrics
	mon   monitor
	rates *rates

	catalog atomic.Pointer[catalog]
	scorer  atomic.Pointer[scorerBox]
	pool    bidPool

	// bind turns a campaign snapshot into the budget view of it.
	bind    func(*campaigns.Snapshot) (money, error)
	notices noticeSink

	seq         atomic.Uint64 // numbers responses; with the instance id it makes bid ids unique
	idPrefix    []byte
	seatJSON    []byte
	reasonBytes [numReasons][]byte
	publicURL   []byte
	signer      tokenSigner

	winCharge map[string]bool // exchange name -> charges on the win notice
	extra     func() []gauge  // more metrics (model, budget)
	ready     func() (bool, string)
	draining  atomic.Bool

	privacy  *privacy.Policy // decodes consent strings (privacy.go)
	privStat privacyStats

	srv   *fasthttp.Server
	admin *http.Server
}

// newServer builds a server around its collaborators; Run (app.go) calls it.
func newServer(cfg *Config, log *slog.Logger, bind func(*campaigns.Snapshot) (money, error), ns noticeSink, signer tokenSigner) *Server {
	s := &Server{
		cfg:       cfg,
		log:       log,
		m:         newMetrics(),
		rates:     newRates(cfg.Currency),
		bind:      bind,
		notices:   ns,
		signer:    signer,
		idPrefix:  []byte(cfg.InstanceID + "-"),
		seatJSON:  ortb.AppendJSONStr(nil, cfg.Seat),
		publicURL: []byte(cfg.PublicURL),
		privacy:   newPrivacyPolicy(cfg.Privacy),
	}
	s.winCharge = map[string]bool{"": cfg.Notices.ChargeOn == "win"}
	for name, x := range cfg.Exchanges {
		on := x.ChargeOn
		if on == "" {
			on = cfg.Notices.ChargeOn
		}
		s.winCharge[name] = on == "win"
	}
	for r := range s.reasonBytes {
		s.reasonBytes[r] = []byte(reason(r).String())
	}
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		Name:                  "openbidder",
		MaxRequestBodySize:    cfg.Limits.MaxBodyBytes,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
		IdleTimeout:           90 * time.Second,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		CloseOnShutdown:       true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				s.m.tooLarge.add(0, 1)
				ctx.Error("request body too large", fasthttp.StatusRequestEntityTooLarge)
				return
			}
			ctx.Error("bad request: "+err.Error(), fasthttp.StatusBadRequest)
		},
	}
	return s
}

// chargeOnWin says whether the named exchange charges on its win notice;
// an unknown or absent name follows notices.charge_on.
func (s *Server) chargeOnWin(exchange []byte) bool {
	if v, ok := s.winCharge[string(exchange)]; ok {
		return v
	}
	return s.winCharge[""]
}

// SetCampaigns publishes a new campaign snapshot to the bid path; on error
// the running one stays.
func (s *Server) SetCampaigns(snap *campaigns.Snapshot) error {
	mon, err := s.bind(snap)
	if err != nil {
		return err
	}
	s.catalog.Store(newCatalog(snap, s.m, mon))
	return nil
}

// SetScorer publishes a new scorer to the bid path. lat are the latency
// predictions of the scorers it may use (primary, fallback): when none of
// them fits the slack, the weakest candidates are not scored.
func (s *Server) SetScorer(sc ctr.Scorer, lat ...ctr.LatencyPredictor) {
	s.scorer.Store(&scorerBox{s: sc, name: sc.Name(), lat: lat})
}

var (
	pathBid     = []byte("/openrtb2/bid")
	pathHealthz = []byte("/healthz")
	pathReadyz  = []byte("/readyz")
)

// handle routes the main listener. A panic is a bug; it is recovered,
// counted and answered 500 so one bad request cannot take the process down.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.m.panics.add(0, 1)
			s.log.Error("handler panic", "path", string(ctx.Path()), "panic", fmt.Sprint(p))
			ctx.ResetBody()
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		}
	}()
	path := ctx.Path()
	switch {
	case string(path) == string(pathBid):
		if !ctx.IsPost() {
			ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
			return
		}
		s.handleBid(ctx)
	case len(path) > len(noticePrefix) && string(path[:len(noticePrefix)]) == noticePrefix:
		s.handleNotice(ctx, path[len(noticePrefix):])
	case string(path) == string(pathHealthz):
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString("ok\n")
	case string(path) == string(pathReadyz):
		if ok, why := s.Ready(); !ok {
			ctx.Error("not ready: "+why+"\n", fasthttp.StatusServiceUnavailable)
			return
		}
		ctx.SetBodyString("ready\n")
	default:
		ctx.Error("not found", fasthttp.StatusNotFound)
	}
}

// Ready reports whether campaigns, a model and the budget store are usable.
func (s *Server) Ready() (bool, string) {
	switch {
	case s.draining.Load():
		return false, "shutting down"
	case s.catalog.Load() == nil:
		return false, "campaigns not loaded"
	case s.scorer.Load() == nil:
		return false, "model not loaded"
	}
	if s.ready != nil {
		return s.ready()
	}
	return true, ""
}

// Serve answers on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting, marks the instance not ready, and waits for
// in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	err := s.srv.ShutdownWithContext(ctx)
	if s.admin != nil {
		err = errors.Join(err, s.admin.Shutdown(ctx))
	}
	s.privacy.Close()
	return err
}

// adminHandler serves /metrics, /admin/* and /debug/pprof.
func (s *Server) adminHandler(budgetJSON func(w http.ResponseWriter)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		var extra []gauge
		if s.extra != nil {
			extra = s.extra()
		}
		extra = append(extra, s.privacyGauge())
		s.m.writePrometheus(w, extra)
	})
	mux.HandleFunc("GET /admin/budget", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		budgetJSON(w)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
