// Package bidder wires the bid path: the fasthttp server and its handlers
// for bid requests, notices and health, and the admin listener. Nothing else
// imports it.
package bidder

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/privacy"
	"github.com/openbidder/openbidder/shading"
)

// scorerBox holds the current scorer behind one atomic pointer.
type scorerBox struct {
	s    ctr.Scorer
	name string
	lat  []ctr.LatencyPredictor // the chain's scorers, to trim candidates to the slack
}

// fits reports whether some scorer that can score predicts rows fit in
// slack. A Holder with no model (an ONNX model refused at start) predicts 0
// and would always fit: it is passed over (a review: the slack trim was off
// while GBDT scored everything).
func (b *scorerBox) fits(rows int, slack time.Duration) bool {
	for _, p := range b.lat {
		if h, ok := p.(*ctr.Holder); ok && !h.Loaded() {
			continue
		}
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

	seq         atomic.Uint64 // numbers responses from the start's unix microsecond; with the instance id it makes bid ids unique, across restarts too
	draws       atomic.Uint64 // numbers the requests that reach the gate: each campaign's participation draw (bidCtx.draw)
	idPrefix    []byte
	reasonBytes [numReasons][]byte
	publicURL   []byte
	signer      tokenSigner

	// maxExp is the longest imp.exp bid, in seconds: notices.token_ttl and
	// the longest notices.dedup_window, past which a billing notice is
	// refused uncharged, and notices.hold_ttl, past which the bid's money
	// is no longer held (pastChargeWindow).
	maxExp int64
	// adminBodyTimeout bounds the read of an admin request's body
	// (bodyDeadline).
	adminBodyTimeout time.Duration
	// insecureURL: public_url is http on a host other than loopback, so
	// a bid's pixel, click and notice URLs would be http (insecureImp).
	insecureURL bool

	exchanges map[string]*exchange // by name; "" the defaults (exchange.go)
	// sourceRules: some exchange (or the defaults) limits bid sources.
	sourceRules bool
	// noticeSources is notices.sources (nil: any source).
	noticeSources []netip.Prefix
	retired       retiredLandings      // removed creatives' landing pages (catalog.go)
	reg           *prometheus.Registry // /metrics (exposition.go)
	// campaignMoney walks the budget's per-campaign status
	// (budget.Manager.EachStatus), for the per-campaign series and their
	// top-N choice; nil without a budget.
	campaignMoney func(each func(*budget.CampaignStatus))
	ready         func() (bool, string)
	degraded      func() bool // the budget store is cut off but bids go on inside held leases
	draining      atomic.Bool
	adm           *admission

	adminTokens []namedToken // bearer tokens of the admin listener; none: open (loopback only)
	ks          killSwitch   // pause state the bid path obeys (control.go)
	wins        winCounts    // win notices per campaign (status.go)
	trackers    *trackerSeen // impression pixels and clicks already counted (trackers.go)
	// trackerForward asks another instance to count a pixel or click of a
	// bid it placed (serveTracker there); nil on an instance alone.
	trackerForward func(instance string, payload []byte) byte

	privacy  *privacy.Policy // decodes consent strings (privacy.go)
	privStat privacyStats

	shade      *shading.Model // first-price win curves; nil: pricing.shading off (shade.go)
	shadeStats shadeStats

	models     func() []explainModel // the models POST /admin/explain scores with (explain.go); nil: the chain
	explainers explainers

	srv *fasthttp.Server
	// edgeLn is the listener Serve wraps (its accept retries are a metric).
	edgeLn atomic.Pointer[edgeListener]
	admin  *http.Server
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
		publicURL: []byte(cfg.PublicURL),
		privacy:   newPrivacyPolicy(cfg.Privacy),
		adm:       newAdmission(cfg.Limits.Admission),
		trackers:  newTrackerSeen(int64(cfg.Notices.TrackerDedupEntries), cfg.Notices.TokenTTL),
	}
	// From the start's microsecond, not 0: a restarted process under the
	// same instance id gave the same bid ids again (an outside audit: the
	// first bid before and after a restart both vm-127.0.0.1-25800-1), and
	// exchange reports matched by bid id mixed them up. A process answers
	// fewer responses than it lives microseconds, so the next one's numbers
	// start past its last.
	s.seq.Store(uint64(time.Now().UnixMicro()))
	s.insecureURL = insecurePublicURL(cfg.PublicURL) && !cfg.SecureImpsOverHTTP
	s.adminBodyTimeout = 5 * time.Second
	s.maxExp = int64(min(cfg.Notices.TokenTTL, cfg.Notices.DedupWindow.windows().Longest(), cfg.Notices.HoldTTL) / time.Second)
	s.exchanges = newExchanges(cfg)
	s.noticeSources, _ = parseSources(cfg.Notices.Sources) // Validate checks the same
	for _, ex := range s.exchanges {
		s.sourceRules = s.sourceRules || ex.sources != nil
	}
	for r := range s.reasonBytes {
		s.reasonBytes[r] = []byte(reason(r).String())
	}
	if cfg.Pricing.Shading.Enabled {
		m, err := shading.New(cfg.Pricing.Shading.options())
		if err != nil {
			panic("bidder: pricing.shading passed Validate yet: " + err.Error()) // Validate checks the same
		}
		s.shade = m
	}
	s.reg = newRegistry(s)
	s.reg.MustRegister(shadeCollector{s})
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		Name:               "openbidder",
		MaxRequestBodySize: cfg.Limits.MaxBodyBytes,
		ReadBufferSize:     maxHeaderBytes,
		// fasthttp's ReadTimeout also bounds a new connection's wait for its
		// first request: idle_timeout there, so exchanges may open connections
		// ahead of traffic; read_timeout bounds a request from its first byte
		// (edge.go cuts fasthttp's deadlines to it).
		ReadTimeout:  cfg.Limits.IdleTimeout,
		WriteTimeout: cfg.Limits.WriteTimeout,
		IdleTimeout:  cfg.Limits.IdleTimeout,
		ConnState:    connState, // the connection cap's idle list (edge.go)
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: cfg.Limits.ReadTimeout}
		},
		// Expect: 100-continue with a body over max_body_bytes gets its 413
		// at once: it was invited (100 Continue), then refused (an outside
		// audit).
		ExpectHandler: func(ctx *fasthttp.RequestCtx) int {
			if n := ctx.Request.Header.ContentLength(); n > cfg.Limits.MaxBodyBytes {
				s.m.tooLarge.add(0, 1)
				if string(ctx.Path()) == string(pathBid) {
					answerVersion(ctx) // fasthttp writes this answer with the headers set here
				}
				return fasthttp.StatusRequestEntityTooLarge
			}
			return fasthttp.StatusContinue
		},
		// Every answer has a Date (RFC 9110: an origin server with a clock
		// MUST send one; fasthttp formats it once a second).
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		Logger:                quietLogger{}, // per-connection errors are counted, not logged
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			ec, _ := ctx.Conn().(*edgeConn)
			timeout := false
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				timeout = true
				if ec != nil && ec.neverRequested() {
					// Nothing of a request came: a connection opened
					// ahead of traffic, at idle_timeout (or past half the
					// cap, read_timeout). It closes as an idle keep-alive
					// one does, without an answer: a 408 nobody asked for
					// was read by an exchange as the answer to the bid
					// request it sent at that moment (an outside audit).
					ec.Close()
					return
				}
			}
			// fasthttp writes this answer with the deadline of the
			// connection's previous answer, long past on a kept-alive
			// connection: the 400, 408 or 413 was lost and the client saw
			// the connection close (an outside audit; the cause of
			// TestTrickledHeadersCutAtReadTimeout's rare failure).
			if wt := cfg.Limits.WriteTimeout; wt > 0 {
				ctx.Conn().SetWriteDeadline(time.Now().Add(wt))
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				// The client went away in the middle of its request
				// (it was counted as a 400), or reset a connection that
				// never sent one. A client that only half-closed can still
				// read: it gets a 400 that says so, after the answers of
				// the requests before it on the connection, which
				// fasthttp may still hold unwritten (pipelining: closing
				// here lost a whole request's 200 while its bid stood: a
				// recheck). Returning without an answer made fasthttp
				// write its default 200, and a notice's sender read
				// success for a notice never read whole (a review).
				if ec == nil || !ec.neverRequested() {
					s.m.cutShort.add(0, 1)
				}
				ctx.Error("request cut: the client closed its side before the request was whole", fasthttp.StatusBadRequest)
				return
			}
			// fasthttp closes the connection after this answer, maybe with
			// request bytes unread: linger so the client can read it (edge.go).
			lingerOnClose(ctx)
			if p := ctx.Path(); string(p) == string(pathBid) || string(p) == "/" {
				// Every answer of the bid endpoint names its version, these
				// too (set once the answer is written: ctx.Error resets the
				// headers). A request whose body could not be read comes
				// here reset ("/", its headers gone): it gets 2.6.
				defer answerVersion(ctx)
			}
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				s.m.tooLarge.add(0, 1)
				ctx.Error("request body too large", fasthttp.StatusRequestEntityTooLarge)
				return
			}
			if timeout {
				s.m.timedOut.add(0, 1)
				ctx.Error("request timeout", fasthttp.StatusRequestTimeout)
				return
			}
			s.m.badRequest.add(0, 1)
			ctx.Error(shortReason("bad request: "+err.Error()), fasthttp.StatusBadRequest)
		},
	}
	return s
}

// maxHeaderBytes is fasthttp's per-connection read buffer, which also bounds a
// request's line and headers (its default, 4 KiB, is less than a browser's
// pixel or click often sends: a Referer of up to 4 KB, the notice domain's
// cookies, client hints). 8 KiB, as nginx's default; each connection holds
// it, idle ones included.
const maxHeaderBytes = 8 << 10

// quietLogger drops fasthttp's per-connection error lines (STYLE 13).
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// maxReason bounds a 400's reason (body and x-nobid-reason header): parser
// errors on deeply nested input repeat themselves for kilobytes.
const maxReason = 200

// shortReason cuts msg to maxReason bytes and makes it safe as a header
// value (control and non-ASCII bytes become '?').
func shortReason(msg string) string {
	if len(msg) > maxReason {
		msg = msg[:maxReason-3] + "..."
	}
	b := []byte(msg)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// SetCampaigns publishes a new campaign snapshot to the bid path; on error
// the running one stays.
func (s *Server) SetCampaigns(snap *campaigns.Snapshot) error {
	mon, err := s.bind(snap)
	if err != nil {
		return err
	}
	cat := newCatalog(snap, s.m, mon)
	s.retired.retire(s.catalog.Load(), cat, time.Now(), s.cfg.Notices.TokenTTL)
	s.publishCatalog(cat) // with the pause state (control.go)
	s.m.sweepCampaigns(func(id string) bool { return snap.Campaign(id) != nil }, time.Now())
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
	inHandler(ctx) // read whole: the connection cap no longer closes it (edge.go)
	if s.draining.Load() {
		// Every answer while draining closes its connection: a client
		// kept writing requests on its keep-alive connections until the
		// listener shut them, and lost those in flight (an outside audit
		// saw read errors under wrk at every SIGTERM). Told to close, it
		// opens a new connection per request, to another instance once
		// its balancer has seen the 503. Set once the answer is written:
		// ctx.Error resets the response, the flag with it.
		defer ctx.SetConnectionClose()
	}
	path := ctx.Path()
	switch {
	case string(path) == string(pathBid):
		if !ctx.IsPost() {
			methodNotAllowed(ctx, "POST")
			answerVersion(ctx) // every answer of the bid endpoint names its version
			return
		}
		s.handleBid(ctx)
	case len(path) > len(noticePrefix) && string(path[:len(noticePrefix)]) == noticePrefix:
		if !ctx.IsGet() && !ctx.IsPost() {
			// HEAD and OPTIONS are safe methods (a link checker, a CORS
			// preflight): they must not charge, count an impression or a
			// click. Exchanges and browsers fire notices with GET (or POST).
			methodNotAllowed(ctx, "GET, POST")
			return
		}
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
// A budget store cut off while leases are still valid is ready (degraded).
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

// Serve answers on ln until Shutdown. Its connections are wrapped for
// arrival stamps, the request deadline and lingering close (edge.go).
func (s *Server) Serve(ln net.Listener) error {
	if over, limit, capped := maxConnsOverLimit(s.cfg.Limits.MaxConns); over {
		s.log.Warn("limits.max_conns is more than the file descriptor limit allows: capped", "max_conns", s.cfg.Limits.MaxConns,
			"nofile", limit, "cap", capped, "hint", "raise the descriptor limit (LimitNOFILE, ulimit -n) or lower max_conns")
	}
	el := newEdgeListener(ln, s.cfg.Limits.ReadTimeout, connCap(s.cfg.Limits.MaxConns))
	s.edgeLn.Store(el)
	return s.srv.Serve(el)
}

// Drain turns readiness 503 (load balancers stop sending) while requests
// are still served.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown marks the instance not ready, stops accepting and waits for
// in-flight requests. The admin listener stays up (CloseAdmin).
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	err := s.srv.ShutdownWithContext(ctx)
	s.privacy.Close()
	s.trackers.close()
	return err
}

// CloseAdmin stops the admin listener.
func (s *Server) CloseAdmin(ctx context.Context) error {
	if s.admin == nil {
		return nil
	}
	return s.admin.Shutdown(ctx)
}

// adminHandler serves /metrics, /admin/* and /debug/pprof, behind the
// bearer tokens when some are set, and the status page's static HTML (GET
// /, no data in it) to anyone. more adds routes behind the tokens.
func (s *Server) adminHandler(budgetJSON func(w http.ResponseWriter), more ...func(*http.ServeMux)) http.Handler {
	mux := http.NewServeMux()
	for _, f := range more {
		f(mux)
	}
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("GET /admin/budget", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		budgetJSON(w)
	})
	mux.HandleFunc("POST /admin/explain", s.handleExplain) // explain.go
	mux.Handle("/debug/pprof/", pprofSeconds(pprof.Index))
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.Handle("/debug/pprof/profile", pprofSeconds(pprof.Profile))
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/debug/pprof/trace", pprofSeconds(pprof.Trace))
	outer := http.NewServeMux()
	outer.HandleFunc("GET /{$}", serveStatusPage) // status_page.go
	outer.Handle("/", requireBearer(s.adminTokens, sameOriginOnly(len(s.adminTokens) > 0, mux)))
	return noSniff(outer)
}

// noSniff marks every admin answer's Content-Type as final, so no browser
// reads a JSON or text answer that echoes input as a page or a script.
func noSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// pprofMaxSeconds bounds the seconds of a CPU profile, a trace or a delta
// profile: one request (a forgotten curl, or an <img> in a browser that
// sends no fetch metadata) must not keep the profiler or the tracer running
// for an hour.
const pprofMaxSeconds = 60

func pprofSeconds(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.FormValue("seconds"); v != "" { // what pprof reads: a POST body's value wins over the query
			if n, err := strconv.ParseFloat(v, 64); err != nil || !(n <= pprofMaxSeconds) {
				http.Error(w, fmt.Sprintf("seconds: %q is not a number of seconds up to %d", v, pprofMaxSeconds), http.StatusBadRequest)
				return
			}
		}
		h(w, r)
	})
}

// sameOriginOnly refuses a browser's cross-site request on every admin path
// (sameOrigin, control.go), reads included: a page the operator opens could
// otherwise start CPU profiles and traces (an <img> of /debug/pprof/profile)
// or explanations on a tokenless loopback admin. curl, Prometheus and other
// clients that send neither Origin nor Sec-Fetch-Site pass. behindTokens:
// requireBearer checks a token first (sameOrigin trusts the browser's
// same-origin mark then).
func sameOriginOnly(behindTokens bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r, behindTokens) {
			refuse(w, errControlOrigin.Error(), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// refuse answers a refused admin request and closes its connection after
// reading what is left of its body for at most lingerTime: net/http reads
// up to 256 KiB of an unread body after the handler, whatever the answer,
// and the admin server has no read timeout (net/http cancels a request's
// context when one passes, which would cut a long CPU profile short), so a
// client without the token trickling a body held the connection for good.
func refuse(w http.ResponseWriter, msg string, code int) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(lingerTime))
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}

// errAdminHost answers a tokenless admin request addressed to another host.
var errAdminHost = errors.New("admin: without an admin token only requests to 127.0.0.1, [::1] or localhost are served")

// loopbackHost tells whether a request's Host names this machine's
// loopback: an IP literal or localhost (a port allowed), or absent (an
// HTTP/1.0 client; browsers always send one). Without admin tokens this is
// what stops DNS rebinding: a web page the operator opens whose name then
// resolves to 127.0.0.1 is same-origin with itself, so its requests pass
// the Origin check, but they carry its own name as Host.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	return strings.EqualFold(host, "localhost") || isLoopback(host)
}

// adminTokenName is admin_token's name (who, in the kill switch's log).
const adminTokenName = "admin"

// anonymous is who acts on an admin listener without tokens (loopback only).
const anonymous = "anonymous"

// namedToken is one admin bearer token and the name it acts under.
type namedToken struct{ name, token string }

type whoKey struct{}

// adminWho is the name of the admin token behind r (anonymous without tokens).
func adminWho(r *http.Request) string {
	if n, ok := r.Context().Value(whoKey{}).(string); ok {
		return n
	}
	return anonymous
}

// requireBearer lets through requests carrying "Authorization: Bearer
// token" for one of tokens (compared in constant time with every one, over
// hashes so the length does not leak either), with the token's name in the
// request's context (adminWho); others get 401. No tokens (a loopback
// listener: Config.Validate) lets through the requests addressed to a
// loopback host (loopbackHost); others get 403.
func requireBearer(tokens []namedToken, h http.Handler) http.Handler {
	if len(tokens) == 0 {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !loopbackHost(r.Host) {
				refuse(w, errAdminHost.Error(), http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	want := make([][32]byte, len(tokens))
	for i, t := range tokens {
		want[i] = sha256.Sum256([]byte(t.token))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		const scheme = "bearer "
		got := [32]byte{}
		ok := len(auth) > len(scheme) && strings.EqualFold(auth[:len(scheme)], scheme)
		if ok {
			got = sha256.Sum256([]byte(auth[len(scheme):]))
		}
		match := -1
		for i := range want {
			if subtle.ConstantTimeCompare(got[:], want[i][:]) == 1 {
				match = i
			}
		}
		if !ok || match < 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="openbidder admin"`)
			refuse(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, tokens[match].name)))
	})
}

// methodNotAllowed answers 405 with the Allow header RFC 9110 requires
// (ctx.Error resets the headers, so it goes on after).
func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
	ctx.Response.Header.Set("Allow", allow)
}
