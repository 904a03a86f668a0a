package bidder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openbidder/openbidder/budget"
)

// The kill switch on the bid path. The state lives in the budget store
// (budget.Control: every instance watches it); the budget manager tells the
// server when it changes, and the server turns it into what the bid path
// reads: one flag for all bidding, checked before the request is parsed
// (204 paused), and for the current catalog a table of the paused campaigns
// by index, checked first at each candidate's gate (the candidate is
// refused, reason paused). Both are one atomic load; nothing allocates.

// killSwitch is the server's copy of the kill-switch state.
type killSwitch struct {
	all atomic.Bool // all bidding paused

	// mu serialises applying a state and publishing a catalog (SetCampaigns),
	// so no catalog is published with a stale table.
	mu     sync.Mutex
	src    func() *budget.Control // the newest state; nil: nothing is ever paused
	counts map[string]*counter    // paused candidates per campaign id, kept across pauses and reloads
}

// pauseView is one catalog's paused campaigns by campaign index: non-nil
// while paused, counting the candidates refused for it.
type pauseView struct{ camp []*counter }

// paused tells whether campaign ci is paused, counting the candidate if so.
func (cat *catalog) paused(ci, stripe int) bool {
	if pv := cat.pause.Load(); pv != nil {
		if c := pv.camp[ci]; c != nil {
			c.add(stripe, 1)
			return true
		}
	}
	return false
}

// pausedAll tells whether all bidding is paused.
func (s *Server) pausedAll() bool { return s.ks.all.Load() }

// controlSource is where the kill-switch state comes from (the budget
// manager; a fake in tests).
type controlSource interface {
	Control() *budget.Control
	OnControl(fn func())
}

var _ controlSource = (*budget.Manager)(nil)

// followControl makes the server obey m's state, now and after every change
// m announces.
func (s *Server) followControl(m controlSource) {
	s.ks.mu.Lock()
	s.ks.src = m.Control
	s.ks.mu.Unlock()
	m.OnControl(s.applyControl)
	s.applyControl()
}

// applyControl installs the newest kill-switch state for the bid path.
func (s *Server) applyControl() {
	k := &s.ks
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.src == nil {
		return
	}
	k.all.Store(k.src().All.Paused)
	if cat := s.catalog.Load(); cat != nil {
		cat.pause.Store(k.view(cat))
	}
}

// publishCatalog publishes cat to the bid path with the current pause table.
func (s *Server) publishCatalog(cat *catalog) {
	k := &s.ks
	k.mu.Lock()
	defer k.mu.Unlock()
	cat.pause.Store(k.view(cat))
	s.catalog.Store(cat)
}

// view builds cat's pause table (nil when no campaign is paused); under mu.
func (k *killSwitch) view(cat *catalog) *pauseView {
	if k.src == nil {
		return nil
	}
	ctl := k.src()
	var pv *pauseView
	for _, c := range cat.snap.Campaigns {
		if !ctl.CampaignPaused(c.ID) {
			continue
		}
		if pv == nil {
			pv = &pauseView{camp: make([]*counter, len(cat.snap.Campaigns))}
		}
		pv.camp[c.Index] = k.counter(c.ID)
	}
	return pv
}

// counter returns campaign id's paused-candidate counter; under mu.
func (k *killSwitch) counter(id string) *counter {
	if k.counts == nil {
		k.counts = map[string]*counter{}
	}
	c := k.counts[id]
	if c == nil {
		c = new(counter)
		k.counts[id] = c
	}
	return c
}

// pausedCampaigns is the number of the current catalog's campaigns that
// the kill switch pauses.
func (s *Server) pausedCampaigns() int {
	cat := s.catalog.Load()
	if cat == nil {
		return 0
	}
	pv := cat.pause.Load()
	if pv == nil {
		return 0
	}
	n := 0
	for _, c := range pv.camp {
		if c != nil {
			n++
		}
	}
	return n
}

// pausedCandidates is the number of candidates of campaign id refused
// because it was paused.
func (s *Server) pausedCandidates(id string) uint64 {
	s.ks.mu.Lock()
	c := s.ks.counts[id]
	s.ks.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.load()
}

// controlRoutes adds the kill switch's admin API: POST /admin/pause and
// /admin/resume (campaign=ID or all=1, optional reason; a form, a query or a
// JSON object) and GET /admin/control (the state this instance obeys).
func (s *Server) controlRoutes(m *budget.Manager) func(*http.ServeMux) {
	return func(mux *http.ServeMux) {
		mux.HandleFunc("POST /admin/pause", func(w http.ResponseWriter, r *http.Request) { s.setControl(w, r, m, true) })
		mux.HandleFunc("POST /admin/resume", func(w http.ResponseWriter, r *http.Request) { s.setControl(w, r, m, false) })
		mux.HandleFunc("GET /admin/control", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, controlJSON(m.Control()))
		})
	}
}

// controlRequest is the body of POST /admin/pause and /admin/resume.
type controlRequest struct {
	Campaign string `json:"campaign"`
	All      bool   `json:"all"`
	Reason   string `json:"reason"`
}

const maxControlBody = 4 << 10

// Errors of the kill switch's admin API (400 or 403).
var (
	errControlTarget = errors.New("give campaign=ID or all=1 (not both)")
	errControlOrigin = errors.New("cross-origin request refused")
)

func (s *Server) setControl(w http.ResponseWriter, r *http.Request, m *budget.Manager, paused bool) {
	// A cross-origin browser request never gets here: the whole admin mux
	// refuses it (sameOriginOnly, server.go).
	s.bodyDeadline(w)
	req, err := readControlRequest(w, r)
	if err == nil && (req.All == (req.Campaign != "")) {
		err = errControlTarget
	}
	if err == nil && !req.All {
		pausedNow := m.Control().CampaignPaused(req.Campaign)
		// A pause outlives its campaign's file (it comes back paused), so
		// such a pause may be resumed; an unknown id is refused otherwise
		// (an operator's typo would pause nothing).
		if cat := s.catalog.Load(); (cat == nil || cat.snap.Campaign(req.Campaign) == nil) && (paused || !pausedNow) {
			err = errors.New("unknown campaign " + strconv.Quote(req.Campaign))
		}
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	who := adminWho(r)
	p, err := m.SetControl(r.Context(), budget.ControlChange{All: req.All, Campaign: req.Campaign, Paused: paused, Who: who, Reason: req.Reason})
	target := "all"
	if !req.All {
		target = req.Campaign
	}
	if err != nil {
		s.log.Error("kill switch change failed", "target", target, "paused", paused, "who", who, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	s.log.Info("kill switch change", "target", target, "paused", paused, "who", who, "when", p.When,
		"reason", p.Reason, "rev", p.Rev, "from", r.RemoteAddr)
	writeJSON(w, http.StatusOK, struct {
		Target string `json:"target"`
		pauseJSON
	}{target, pauseOf(p)})
}

// readControlRequest reads a JSON object (Content-Type application/json)
// or form fields from the query and the body. One target a request, given
// once: a JSON body with a member given twice, with anything after the
// object, or beside query parameters is refused (an outside audit's
// {"campaign":"b"} posted to ?all=1 resumed only b, and answered 200).
func readControlRequest(w http.ResponseWriter, r *http.Request) (controlRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	var req controlRequest
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		if r.URL.RawQuery != "" {
			return req, errors.New("a JSON body and query parameters: give the target in one of them (one target a request)")
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return req, errors.New("body: " + err.Error())
		}
		if err := oneJSONObject(body); err != nil {
			return req, errors.New("body: " + err.Error())
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, errors.New("body: " + err.Error())
		}
		return req, nil
	}
	if err := r.ParseForm(); err != nil {
		return req, errors.New("form: " + err.Error())
	}
	for _, k := range [...]string{"campaign", "all", "reason"} {
		// One target a request: Get would act on the first of several (the
		// body's before the query's) and drop the rest, while the operator
		// believes every one changed.
		if n := len(r.Form[k]); n > 1 {
			return req, errors.New(k + ": given " + strconv.Itoa(n) + " times (one target a request)")
		}
	}
	req.Campaign, req.Reason = r.Form.Get("campaign"), r.Form.Get("reason")
	switch v := strings.ToLower(r.Form.Get("all")); v {
	case "", "0", "false", "no":
	case "1", "true", "yes":
		req.All = true
	default:
		return req, errors.New("all: " + strconv.Quote(v) + " is not 1 or 0")
	}
	return req, nil
}

// jsonFold maps the two non-ASCII letters encoding/json folds onto ASCII
// ones (U+017F long s, U+212A Kelvin sign), after strings.ToLower.
var jsonFold = strings.NewReplacer("\u017f", "s", "\u212a", "k")

// oneJSONObject checks that body is one JSON object whose members are each
// given once, with nothing after it.
func oneJSONObject(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("want a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		k = jsonFold.Replace(strings.ToLower(k)) // encoding/json matches members in any case, s and k as ſ and K too
		if seen[k] {
			return errors.New(strconv.Quote(k) + " given twice (one target a request)")
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more after the JSON object")
	}
	return nil
}

// sameOrigin refuses a browser's request from any other origin
// (sameOriginOnly wraps every admin path in it): on a loopback admin listener
// without tokens, any web page the operator opens could otherwise post a form
// there. A GET without Origin (an <img>) says where it comes from in
// Sec-Fetch-Site; only same-origin and none (a URL typed in) pass, not
// same-site: a site ignores the port, so a page served by anything else on
// this host (a dashboard on :3000) is same-site with the admin. Clients that
// send neither header (curl, Prometheus) pass.
//
// With tokens (behindTokens), a request the browser itself marks
// same-origin passes whatever its Origin: behind a reverse proxy that sets
// Host to the bidder's address (nginx's default), the status page's own
// POSTs carry the proxy's origin, which no Host here names. No page can set
// Sec-Fetch-Site, and a page rebound in DNS to the proxy, same-origin with
// itself, has no token. Without tokens the Origin must name the Host.
func sameOrigin(r *http.Request, behindTokens bool) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	o := r.Header.Get("Origin")
	if o == "" {
		switch site {
		case "", "same-origin", "none":
			return true
		}
		return false
	}
	if behindTokens && site == "same-origin" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// pauseJSON is a budget.Pause as the admin API shows it.
type pauseJSON struct {
	Paused bool       `json:"paused"`
	Who    string     `json:"who,omitempty"`
	When   *time.Time `json:"when,omitempty"`
	Reason string     `json:"reason,omitempty"`
	Rev    uint64     `json:"rev,omitempty"`
}

func pauseOf(p budget.Pause) pauseJSON {
	j := pauseJSON{Paused: p.Paused, Who: p.Who, Reason: p.Reason, Rev: p.Rev}
	if !p.When.IsZero() {
		w := p.When
		j.When = &w
	}
	return j
}

// controlState is GET /admin/control.
type controlState struct {
	All       pauseJSON            `json:"all"`
	Campaigns map[string]pauseJSON `json:"campaigns"`
	Rev       uint64               `json:"rev"`
}

func controlJSON(c *budget.Control) controlState {
	out := controlState{All: pauseOf(c.All), Campaigns: make(map[string]pauseJSON, len(c.Campaigns)), Rev: c.Rev}
	for id, p := range c.Campaigns {
		out.Campaigns[id] = pauseOf(p)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

// bodyDeadline bounds the read of an admin request's body: the admin
// server has no ReadTimeout (it would cut a long CPU profile short), so a
// client trickling a byte every few seconds held a connection and its
// goroutine for as long as it went on (an outside audit: 27 s and counting).
// A handler that reads a body sets it first; the read then fails and the
// connection closes.
func (s *Server) bodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.adminBodyTimeout))
}
