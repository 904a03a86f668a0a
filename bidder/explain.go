package bidder

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// POST /admin/explain: a bid request in, for every campaign considered why
// it was dropped (targeting rule), gated (floor, frequency cap, pacing,
// budget, ...) or how it was priced (features, pCTR from each model, the top
// contributions, value, shading, price), plus the request-level decisions.
//
// It is a separate pass over the same building blocks as the bid path
// (parser, privacy policy, targeting, gates, feature extractor, scorers,
// pricing), on the admin listener: the bid path's code is not touched and
// checks nothing per request for it. It is a dry run: no hold is placed, no
// pacing draw taken, no demand signalled, no request, bid or no-bid counted
// (budget's Explain and campaigns' Explain are side-effect free; the
// frequency cap is only read). The models are called directly (not through
// the chain), so only their own row counters and latency estimates see the
// explained rows. What it cannot replay: the slack trim (fitSlack; explain
// has no deadline pressure) and the draws concurrent bids take.

// explainModel is one model the explanation scores with.
type explainModel struct {
	role     string // "primary" (the chain's first choice) or "fallback"
	scorer   ctr.Scorer
	manifest *ctr.Manifest // nil: no explanation of its terms
}

// explainers caches one ctr.Explainer per loaded manifest (a reload brings
// a new manifest; only the current ones are kept).
type explainers struct {
	mu sync.Mutex
	m  map[*ctr.Manifest]*ctr.Explainer
}

func (e *explainers) get(models []explainModel) map[*ctr.Manifest]*ctr.Explainer {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := map[*ctr.Manifest]*ctr.Explainer{}
	for _, mod := range models {
		if mod.manifest == nil {
			continue
		}
		x, ok := e.m[mod.manifest]
		if !ok {
			x, _ = ctr.NewExplainer(mod.manifest) // nil: the model is scored, not explained
		}
		next[mod.manifest] = x
	}
	e.m = next
	return next
}

// explainModels lists the chain's models as the App loaded them.
func (a *App) explainModels() []explainModel {
	var out []explainModel
	for _, m := range []struct {
		role string
		h    *ctr.Holder
	}{{"primary", a.onnx}, {"fallback", a.gbdt}} {
		if m.h == nil {
			continue
		}
		out = append(out, explainModel{role: m.role, scorer: m.h, manifest: ctr.ScorerManifest(m.h)})
	}
	return out
}

// explainAnswer is the body of POST /admin/explain.
type explainAnswer struct {
	ID          string          `json:"id"`
	At          time.Time       `json:"at"`
	Version     string          `json:"openrtb_version,omitempty"`
	Auction     int64           `json:"at_auction_type"`
	Deadline    explainDeadline `json:"deadline"`
	Currency    explainCurrency `json:"currency"`
	Privacy     explainPrivacy  `json:"privacy"`
	ChargeOn    string          `json:"charge_on"`
	Models      []explainModelA `json:"models"`
	Imps        []explainImp    `json:"imps"`
	Bid         bool            `json:"bid"`
	NoBidReason string          `json:"nobid_reason,omitempty"`
}

type explainDeadline struct {
	TMaxMS          int64   `json:"tmax_ms"`
	InternalBudget  float64 `json:"internal_budget_ms"`
	NetworkMargin   float64 `json:"network_margin_ms"`
	DeadlineMS      float64 `json:"deadline_ms"` // from arrival
	MinSlackMS      float64 `json:"min_slack_ms"`
	EnoughSlack     bool    `json:"enough_slack"`
	SlackTrimUnseen bool    `json:"slack_trim_not_replayed"`
}

type explainCurrency struct {
	Response string `json:"response"`
	OK       bool   `json:"ok"`
}

type explainPrivacy struct {
	Reason       string `json:"reason"`
	FreqCap      bool   `json:"frequency_cap_allowed"`
	Personalize  bool   `json:"personalize_allowed"`
	UserKnown    bool   `json:"frequency_key_known"`
	SegmentsSeen int    `json:"segments_seen_by_targeting"`
}

type explainModelA struct {
	Role      string `json:"role"`
	Name      string `json:"name"`
	Explained bool   `json:"explained"`
}

// handleExplain is POST /admin/explain. Query: exchange=NAME (as on
// /openrtb2/bid), at=RFC3339 (the time to explain at; default now),
// top=N (contributions per model, default 5), all=1 (list campaigns that
// share no targeting value with the request too; default a count by rule).
func (s *Server) handleExplain(w http.ResponseWriter, r *http.Request) {
	s.bodyDeadline(w)
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.Limits.MaxBodyBytes)+1))
	if err != nil {
		http.Error(w, "read: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > s.cfg.Limits.MaxBodyBytes {
		// Read what the client still sends (bounded, as the main listener's
		// lingering close does: edge.go) before answering: closing with
		// request bytes unread makes the kernel reset the connection, and
		// the client sees a broken pipe instead of the 413.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, r.Body, lingerBytes)
		w.Header().Set("Connection", "close")
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		if !strings.EqualFold(ce, "gzip") && !strings.EqualFold(ce, "x-gzip") {
			http.Error(w, "unsupported content-encoding", http.StatusBadRequest)
			return
		}
		var gz ortb.Gunzipper
		if body, err = gz.Gunzip(nil, body, s.cfg.Limits.MaxBodyBytes); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, ortb.ErrTooLarge) {
				code = http.StatusRequestEntityTooLarge
			}
			http.Error(w, err.Error(), code)
			return
		}
	}
	opt := explainOptions{now: time.Now(), top: 5, all: r.URL.Query().Get("all") == "1",
		ex: s.exchangeNamed([]byte(r.URL.Query().Get("exchange")))}
	if at := r.URL.Query().Get("at"); at != "" {
		if opt.now, err = time.Parse(time.RFC3339, at); err != nil {
			http.Error(w, "at: "+err.Error(), http.StatusBadRequest)
			return
		}
		// Flights, pacing and caps are in nanoseconds since 1970, which
		// end in 2262: an explanation past that would be wrong.
		if y := opt.now.Year(); y < 1970 || y > 2200 {
			http.Error(w, "at: want a time between 1970 and 2200", http.StatusBadRequest)
			return
		}
	}
	if top := r.URL.Query().Get("top"); top != "" {
		n, err := strconv.Atoi(top)
		if err != nil || n < 0 {
			http.Error(w, "top: want an integer >= 0", http.StatusBadRequest)
			return
		}
		opt.top = n
	}
	if len(body) > poolBodyMax && ortb.ValuesOver(body, maxJSONValues) { // as the bid path refuses it
		http.Error(w, errTooManyValues, http.StatusBadRequest)
		return
	}
	p := ortb.Parser{MaxImps: s.cfg.Limits.MaxImps}
	var req ortb.Request
	if err := p.Parse(body, &req); err != nil {
		http.Error(w, shortReason(err.Error()), http.StatusBadRequest)
		return
	}
	req.Version = []byte(r.Header.Get("x-openrtb-version"))
	ans, code := s.explain(&req, opt)
	// Encoded before the status is written: an answer that does not encode
	// (a value JSON cannot hold) was an empty 200.
	out, err := json.MarshalIndent(ans, "", "  ")
	if err != nil {
		http.Error(w, "explain: the answer does not encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(out, '\n'))
}

type explainOptions struct {
	now time.Time
	top int
	all bool
	ex  *exchange // ?exchange=NAME's rules
}

// explain runs the dry pass over a parsed request.
func (s *Server) explain(req *ortb.Request, opt explainOptions) (*explainAnswer, int) {
	if opt.ex == nil {
		opt.ex = s.exchangeNamed(nil)
	}
	ans := &explainAnswer{ID: string(req.ID), At: opt.now, Version: string(req.Version), Auction: req.AT,
		ChargeOn: "billing"}
	if opt.ex.chargeOnWin {
		ans.ChargeOn = "win"
	}
	l := &s.cfg.Limits
	deadline := s.deadline(req, opt.ex, opt.now)
	ans.Deadline = explainDeadline{TMaxMS: req.TMax, InternalBudget: ms(l.InternalBudget), NetworkMargin: ms(l.NetworkMargin),
		DeadlineMS: ms(deadline.Sub(opt.now)), MinSlackMS: ms(l.MinSlack), EnoughSlack: deadline.Sub(opt.now) >= l.MinSlack,
		SlackTrimUnseen: true}
	cat, sc := s.catalog.Load(), s.scorer.Load()
	if cat == nil || sc == nil {
		ans.NoBidReason = reasonNotReady.String()
		return ans, http.StatusServiceUnavailable
	}
	resp, ok := s.rates.responseCurrency(req, opt.ex.currency)
	ans.Currency = explainCurrency{Response: string(resp), OK: ok}
	opt.ex.floorCurrencies(req)
	// The privacy decision, as decidePrivacy takes it (without its counter).
	priv := s.privacy.Decide(req)
	if !priv.Allows(privacy.Personalize) {
		req.DropUserLevel()
	}
	var user uint64
	if priv.Allows(privacy.FreqCap) {
		user = req.UserKey()
	}
	ans.Privacy = explainPrivacy{Reason: priv.Why.String(), FreqCap: priv.Allows(privacy.FreqCap),
		Personalize: priv.Allows(privacy.Personalize), UserKnown: user != 0, SegmentsSeen: len(req.User.Segments)}
	var models []explainModel
	if s.models != nil {
		models = s.models()
	}
	xs := s.explainers.get(models)
	for _, m := range models {
		ans.Models = append(ans.Models, explainModelA{Role: m.role, Name: m.scorer.Name(), Explained: xs[m.manifest] != nil})
	}
	switch {
	case s.pausedAll(): // the kill switch: the bid path answers 204 paused before parsing
		ans.NoBidReason = reasonPaused.String()
		return ans, http.StatusOK
	case req.Test && opt.ex.test == testNoBid:
		ans.NoBidReason = reasonTestRequest.String()
		return ans, http.StatusOK
	case !ans.Deadline.EnoughSlack:
		ans.NoBidReason = reasonTMax.String()
		return ans, http.StatusOK
	case !ok:
		ans.NoBidReason = reasonCurrency.String()
		return ans, http.StatusOK
	case priv.NoBid: // as collect, after the currency
		ans.NoBidReason = reasonPrivacy.String()
		return ans, http.StatusOK
	}
	// The participation draw the next bid request will take (draw is the
	// request's number, Server.bid): explain takes none.
	x := &explainRun{s: s, cat: cat, req: req, resp: resp, user: user, priv: priv, opt: opt, models: models, xs: xs, draw: s.draws.Load() + 1}
	x.rk.reset(s.rates, cat, resp)
	ans.Imps = x.imps()
	x.score(sc)
	ans.Bid, ans.NoBidReason = x.price()
	return ans, http.StatusOK
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// moneyExplainer is the side-effect-free budget query of a catalog's money
// (budgetMoney); a money without it (test doubles) is asked allow.
type moneyExplainer interface {
	explain(ci int, maxCharge int64, now time.Time, draw uint64) budget.Explanation
}

func (b *budgetMoney) explain(ci int, maxCharge int64, now time.Time, draw uint64) budget.Explanation {
	return b.m.ExplainDraw(b.accts[ci], maxCharge, now, draw)
}
