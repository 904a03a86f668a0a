package bidder

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
)

// GET /admin/status: what the status page shows, as one JSON document built
// when it is asked for, from counters and snapshots that exist anyway (the
// bid path's striped counters, the budget manager's status and views, the
// model holders' and the chain's counters, the drift monitor, the recent
// errors). Nothing here runs on the bid path; its cost is O(campaigns) per
// request, bounded by ?limit.

const (
	statusDefaultLimit = 200  // campaigns in one document unless ?limit says otherwise
	statusMaxLimit     = 2000 // most campaigns in one document
	planPoints         = 49   // points of the pacing plan's curve (every half hour)
	worstDriftSlots    = 5    // feature slots listed, highest PSI first
)

// statusDoc is the document. Its campaign rows are encoded apart from the rest
// (writeStatus); statusHead and statusTail are the members before and after
// them, in the document's order.
type statusDoc struct {
	statusHead
	Campaigns campaignList `json:"campaigns"` // at most ?limit, most active first chosen, by id
	statusTail
}

type statusHead struct {
	Generated      time.Time      `json:"generated"`
	Instance       instanceStatus `json:"instance"`
	Control        controlState   `json:"control"`
	Traffic        trafficFigures `json:"traffic"`
	CampaignsTotal int            `json:"campaigns_total"` // in the running set (after ?q)
}

type statusTail struct {
	Peers       []peerStatus    `json:"peers"`
	Model       modelStatus     `json:"model"`
	Errors      []errorRecord   `json:"errors"` // newest first
	ErrorsTotal uint64          `json:"errors_total"`
	Budget      budget.Counters `json:"budget"`
}

type instanceStatus struct {
	ID            string    `json:"id"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Ready         bool      `json:"ready"`
	Reason        string    `json:"reason,omitempty"`
	Degraded      bool      `json:"degraded"`
	Listen        string    `json:"listen"`
	PublicURL     string    `json:"public_url"`
	Go            string    `json:"go"`
	Admission     float64   `json:"admission_limit"`
	Inflight      int64     `json:"inflight"`
	// CampaignReloadRefused is openbidder_campaign_reload_refused: the last
	// campaign reload was refused, so the files on disk are not the set
	// that runs (the page shows it beside readiness; the reason is in the
	// errors).
	CampaignReloadRefused bool `json:"campaign_reload_refused"`
}

// campaignJSON is one campaign: its money (budget's view), its counters on
// this instance, its pause, its plan and the spend samples taken so far.
type campaignJSON struct {
	budget.CampaignStatus
	Advertiser string     `json:"advertiser"`
	Status     string     `json:"status"` // from its file: active or paused
	Paused     *pauseJSON `json:"paused,omitempty"`
	campaignFigures
	PausedCandidates uint64       `json:"paused_candidates"`
	FrequencyCapped  uint64       `json:"frequency_capped"` // candidates refused: the user reached the cap
	Wins             uint64       `json:"wins"`
	WinRate          float64      `json:"win_rate"` // wins / bids on this instance
	Plan             *budget.Plan `json:"plan,omitempty"`
	SpendToday       [][2]int64   `json:"spend_today"` // [unix ms, micros spent today] samples taken at status requests
	Leases           []leaseJSON  `json:"leases"`
}

// campaignList encodes its rows a few at a time, pausing between them
// (budget.ScanYield): 200 rows with their plans are about 280 KB of JSON,
// and encoding them in one go was milliseconds of unbroken work on the bid
// path's core, every 3 s while an operator watches the status page.
type campaignList []campaignJSON

// campaignRowUnits is a row's work in ScanYield units (a row is 1-2 KB of
// JSON with its plan: tens of microseconds to build or encode).
const campaignRowUnits = 128

func (l campaignList) MarshalJSON() ([]byte, error) {
	y := budget.NewScanYield()
	b := append(make([]byte, 0, 2+1500*len(l)), '[')
	for i := range l {
		if i > 0 {
			b = append(b, ',')
		}
		row, err := json.Marshal(&l[i])
		if err != nil {
			return nil, err
		}
		b = append(b, row...)
		y.Step(campaignRowUnits)
	}
	return append(b, ']'), nil
}

type leaseJSON struct {
	Instance string `json:"instance"`
	Amount   int64  `json:"amount_micros"`
}

// peerStatus is an instance of the cluster and the leases it holds.
type peerStatus struct {
	budget.Peer
	LeasedCampaigns int              `json:"leased_campaigns"`
	LeasedMicros    map[string]int64 `json:"leased_micros"` // by currency
}

type modelStatus struct {
	Chain       string            `json:"chain"`
	Provider    string            `json:"provider"`
	Scored      map[string]uint64 `json:"scored"`    // score calls answered, by scorer
	Fallbacks   map[string]uint64 `json:"fallbacks"` // by reason
	Slots       []modelSlot       `json:"slots"`
	Predictions uint64            `json:"predictions"`
	MeanPCTR    float64           `json:"mean_pctr"`
	Drift       *driftStatus      `json:"drift,omitempty"`
}

type modelSlot struct {
	Slot     string    `json:"slot"`
	Model    string    `json:"model"`
	Manifest string    `json:"manifest"`
	Provider string    `json:"provider,omitempty"`
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	Reloads  uint64    `json:"reloads"`
	Refused  uint64    `json:"refused"`
}

type driftStatus struct {
	Rows   uint64        `json:"rows"`
	MaxPSI float64       `json:"max_psi"`
	Worst  []ctr.SlotPSI `json:"worst"`
}

// statusRoutes adds GET /admin/status.
func (a *App) statusRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, r *http.Request) {
		limit := statusDefaultLimit
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: not a count"})
				return
			}
			limit = min(n, statusMaxLimit)
		}
		writeStatus(w, a.status(r.URL.Query().Get("q"), limit))
	})
}

// writeStatus writes d as writeJSON would (the same bytes: HTML escaped, a
// newline after), but puts the campaign rows in as campaignList encoded them,
// a few at a time with pauses. Handed to encoding/json as a Marshaler's output
// they would be compacted and checked again byte by byte: at 10,000
// campaigns, 200 rows with their plans are about 280 KB, and that pass was
// 3-4 ms of unbroken work on the bid path's core, every 3 s while an operator
// watches the status page.
func writeStatus(w http.ResponseWriter, d *statusDoc) {
	rows, err1 := d.Campaigns.MarshalJSON()
	head, err2 := json.Marshal(&d.statusHead)
	tail, err3 := json.Marshal(&d.statusTail)
	if err := errors.Join(err1, err2, err3); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// {head members,"campaigns":rows,tail members}: both halves are
	// objects with members, so each brace is their first or last byte.
	for _, part := range [][]byte{head[:len(head)-1], []byte(`,"campaigns":`), rows, []byte(","), tail[1:], []byte("\n")} {
		if _, err := w.Write(part); err != nil {
			return // the client went away
		}
	}
}

// status builds the document.
func (a *App) status(q string, limit int) *statusDoc {
	s := a.Server
	now := time.Now()
	d := &statusDoc{statusHead: statusHead{Generated: now.UTC(), Control: controlJSON(a.budget.Control()), Traffic: s.m.traffic()},
		statusTail: statusTail{Budget: a.budget.Counters()}}
	d.Traffic.LatencyP50, d.Traffic.LatencyP99, d.Traffic.LatencyWindow = a.latency.figures(&s.m.latency, now)
	ready, why := s.Ready()
	d.Instance = instanceStatus{ID: a.cfg.InstanceID, Started: a.started.UTC(), UptimeSeconds: now.Sub(a.started).Seconds(),
		Ready: ready, Reason: why, Degraded: s.degraded != nil && s.degraded(), Listen: a.Addr(), PublicURL: string(s.publicURL),
		Go: runtime.Version(), Admission: s.adm.load(), Inflight: s.adm.inflight.Load(), CampaignReloadRefused: a.reloadRefused.Load()}
	leases := a.budget.Leases()
	d.Campaigns, d.CampaignsTotal = a.campaignRows(q, limit, leases, now)
	d.Peers = peerRows(a.budget.Peers(), leases)
	d.Model = a.modelStatus()
	d.Errors, d.ErrorsTotal = a.errs.ring.recent()
	return d
}

// campaignRows lists the running campaigns whose id or advertiser contains
// q: when more than limit, those the kill switch pauses first (else, at
// 10,000 campaigns, a paused one without spend today fell off the page, and
// with it its Resume button), then the most active (spend today, then bids).
func (a *App) campaignRows(q string, limit int, leases []budget.LeaseView, now time.Time) ([]campaignJSON, int) {
	s := a.Server
	cat := s.catalog.Load()
	if cat == nil {
		return []campaignJSON{}, 0
	}
	// The rank of every matching campaign first (spend today, bids, id),
	// the full row only for those kept: at 10,000 campaigns a row for each
	// (maps, copies) was tens of milliseconds of one goroutine's work,
	// and every bid request on the same core waited behind it. The loop
	// is paced like a budget scan (budget.ScanYield).
	y := budget.NewScanYield()
	stats := s.m.snapshotCampaigns()
	type ranked struct {
		c          *campaigns.Campaign
		paused     bool // by the kill switch
		spentToday int64
		bids       uint64
	}
	q = strings.ToLower(q)
	top := newFirstN(limit, func(x, y *ranked) bool {
		return cmp.Or(cmp.Compare(b2f(y.paused), b2f(x.paused)), cmp.Compare(y.spentToday, x.spentToday), cmp.Compare(y.bids, x.bids),
			cmp.Compare(x.c.ID, y.c.ID)) < 0
	})
	ctl := a.budget.Control()
	total := 0
	for _, c := range cat.snap.Campaigns {
		y.Step(1)
		if q != "" && !strings.Contains(strings.ToLower(c.ID), q) && !strings.Contains(strings.ToLower(c.Advertiser), q) {
			continue
		}
		r := ranked{c: c}
		if p, ok := ctl.Campaigns[c.ID]; ok && p.Paused {
			r.paused = true
		}
		if st, ok := a.budget.StatusOf(c.ID); ok {
			r.spentToday = st.SpentTodayMicros
		}
		if st := stats[c.ID]; st != nil {
			r.bids = st.bids()
		}
		top.offer(r)
		total++
	}
	keep := top.kept()
	slices.SortFunc(keep, func(x, y ranked) int { return cmp.Compare(x.c.ID, y.c.ID) })
	rows := make([]campaignJSON, 0, len(keep))
	for _, k := range keep {
		c := k.c
		st, ok := a.budget.StatusOf(c.ID)
		if !ok {
			st = budget.CampaignStatus{ID: c.ID, Currency: c.Currency}
		}
		row := campaignJSON{CampaignStatus: st, Advertiser: c.Advertiser, Status: c.Status.String(),
			campaignFigures: s.m.campaignFigures(c.ID), PausedCandidates: s.pausedCandidates(c.ID),
			Wins: s.wins.load(c.ID), Leases: []leaseJSON{}}
		if p, ok := ctl.Campaigns[c.ID]; ok && p.Paused {
			pj := pauseOf(p)
			row.Paused = &pj
		}
		if n := row.PausedCandidates; n > 0 {
			row.NoBids[reasonPaused.String()] = n
		}
		row.FrequencyCapped = row.NoBids[reasonFreqCap.String()]
		if row.Bids > 0 {
			row.WinRate = float64(row.Wins) / float64(row.Bids)
		}
		rows = append(rows, row)
		y.Step(campaignRowUnits)
	}
	at := make(map[string]int, len(rows)) // the leases of the rows kept only
	for i := range rows {
		at[rows[i].ID] = i
	}
	for _, l := range leases {
		if i, ok := at[l.Campaign]; ok {
			rows[i].Leases = append(rows[i].Leases, leaseJSON{Instance: l.Instance, Amount: l.Amount})
		}
		y.Step(1)
	}
	for i := range rows {
		r := &rows[i]
		slices.SortFunc(r.Leases, func(x, y leaseJSON) int { return cmp.Compare(x.Instance, y.Instance) })
		if p, ok := a.budget.PacingPlan(r.ID, planPoints); ok {
			r.Plan = &p
			r.SpendToday = a.spend.sample(r.ID, p.DayStart, now, r.SpentTodayMicros)
		}
		y.Step(campaignRowUnits)
	}
	a.spend.prune(now)
	return rows, total
}

// peerRows adds to each instance the leases it holds, summed by currency
// (paced: at 10,000 campaigns there are 10,000 leases per instance).
func peerRows(peers []budget.Peer, leases []budget.LeaseView) []peerStatus {
	out := make([]peerStatus, len(peers))
	at := map[string]int{}
	for i, p := range peers {
		out[i] = peerStatus{Peer: p, LeasedMicros: map[string]int64{}}
		at[p.Instance] = i
	}
	y := budget.NewScanYield()
	for _, l := range leases {
		y.Step(1)
		if i, ok := at[l.Instance]; ok {
			out[i].LeasedCampaigns++
			out[i].LeasedMicros[l.Currency] += l.Amount
		}
	}
	return out
}

func (a *App) modelStatus() modelStatus {
	cs := a.chain.Stats()
	m := modelStatus{Chain: a.chain.Name(), Provider: a.onnxProvider(),
		Scored: map[string]uint64{"primary": cs.Primary, "fallback": cs.Fallback, "none": cs.NoScore},
		Fallbacks: map[string]uint64{"slack": cs.FallSlack, "deadline": cs.FallDeadline, "queue_full": cs.FallQueueFull,
			"unavailable": cs.FallUnavailable, "error": cs.FallError, "bad_output": cs.FallBadOutput, "no_score": cs.NoScore},
		Slots: []modelSlot{}}
	for _, h := range []struct {
		slot string
		h    *ctr.Holder
	}{{"onnx", a.onnx}, {"gbdt", a.gbdt}} {
		if h.h == nil {
			continue
		}
		st := h.h.Stats()
		m.Slots = append(m.Slots, modelSlot{Slot: h.slot, Model: st.Model, Manifest: st.Manifest, Provider: st.Provider,
			LoadedAt: st.LoadedAt, Reloads: st.Reloads, Refused: st.Refused})
	}
	m.Predictions, m.MeanPCTR = a.Server.mon.predictions()
	if d := a.Server.mon.drift.Load(); d != nil {
		psi := d.PSI()
		slices.SortFunc(psi, func(x, y ctr.SlotPSI) int { return cmp.Compare(y.PSI, x.PSI) })
		ds := &driftStatus{Rows: d.Rows(), Worst: psi[:min(worstDriftSlots, len(psi))]}
		if len(psi) > 0 {
			ds.MaxPSI = psi[0].PSI
		}
		m.Drift = ds
	}
	return m
}

// winCounts counts accepted, first-time win notices per campaign id (the
// notice path; budgetSink.charge).
type winCounts struct {
	mu sync.RWMutex
	m  map[string]*atomic.Uint64
}

func (w *winCounts) add(campaign []byte) {
	w.mu.RLock()
	c := w.m[string(campaign)]
	w.mu.RUnlock()
	if c == nil {
		w.mu.Lock()
		if w.m == nil {
			w.m = map[string]*atomic.Uint64{}
		}
		if c = w.m[string(campaign)]; c == nil {
			c = new(atomic.Uint64)
			w.m[string(campaign)] = c
		}
		w.mu.Unlock()
	}
	c.Add(1)
}

func (w *winCounts) load(id string) uint64 {
	w.mu.RLock()
	c := w.m[id]
	w.mu.RUnlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

// spendHistory keeps, per campaign, samples of its spend today taken when
// the status is asked for (at most one per interval, which doubles each
// time the samples are thinned), so the page draws spend against the plan
// without any sampling while nobody looks.
type spendHistory struct {
	mu sync.Mutex
	m  map[string]*spendSeries
}

type spendSeries struct {
	day   time.Time
	every time.Duration
	last  time.Time
	pts   [][2]int64
}

const (
	spendEvery     = 10 * time.Second
	spendMaxPoints = 240
	spendMaxSeries = 1000             // campaigns followed at once
	spendIdle      = 15 * time.Minute // a series not sampled for this long goes first when over spendMaxSeries
)

// sample records the campaign's spend today (unless sampled too recently)
// and returns a copy of its samples for the day that starts at day.
func (h *spendHistory) sample(id string, day, now time.Time, spent int64) [][2]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]*spendSeries{}
	}
	s := h.m[id]
	if s == nil || !s.day.Equal(day) {
		s = &spendSeries{day: day, every: spendEvery}
		h.m[id] = s
	}
	if now.Sub(s.last) >= s.every {
		s.last = now
		s.pts = append(s.pts, [2]int64{now.UnixMilli(), spent})
		if len(s.pts) > spendMaxPoints {
			k := 0
			for i := 0; i < len(s.pts); i += 2 {
				s.pts[k] = s.pts[i]
				k++
			}
			s.pts, s.every = s.pts[:k], 2*s.every
		}
	}
	out := slices.Clone(s.pts)
	if len(out) > 0 && out[len(out)-1][0] != now.UnixMilli() {
		out = append(out, [2]int64{now.UnixMilli(), spent}) // the current figure, not kept
	}
	return out
}

// prune drops idle series while more than spendMaxSeries are kept.
func (h *spendHistory) prune(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.m) <= spendMaxSeries {
		return
	}
	for id, s := range h.m {
		if now.Sub(s.last) > spendIdle {
			delete(h.m, id)
		}
	}
}
