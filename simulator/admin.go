package simulator

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// AdminCampaign is one campaign of GET /admin/budget.
type AdminCampaign struct {
	ID                 string  `json:"id"`
	Currency           string  `json:"currency"`
	TotalBudgetMicros  int64   `json:"total_budget_micros"`
	DailyBudgetMicros  int64   `json:"daily_budget_micros"`
	SpentMicros        int64   `json:"spent_micros"`
	SpentTodayMicros   int64   `json:"spent_today_micros"`
	HeldMicros         int64   `json:"held_micros"`
	LeasedMicros       int64   `json:"leased_micros"`
	PacingMode         string  `json:"pacing_mode"`
	PacingTargetMicros int64   `json:"pacing_target_micros"`
	PacingError        float64 `json:"pacing_error"`
	Throttle           float64 `json:"throttle"`
}

// AdminBudget is the body of GET /admin/budget.
type AdminBudget struct {
	Instance  string          `json:"instance"`
	Campaigns []AdminCampaign `json:"campaigns"`
}

type adminPoller struct {
	urls   []string
	token  string // bearer token of the admin listener ("" none)
	client *fasthttp.Client
}

func newAdminPoller(urls []string, token string) *adminPoller {
	return &adminPoller{urls: urls, token: token, client: &fasthttp.Client{ReadTimeout: time.Second, WriteTimeout: time.Second}}
}

// fetch reads every admin URL; errs names each one that did not answer 200
// with a budget view (unreachable, 401 without the right -admin-token).
func (a *adminPoller) fetch() (out []AdminBudget, errs []string) {
	for _, u := range a.urls {
		if !strings.HasSuffix(u, "/admin/budget") {
			u = strings.TrimRight(u, "/") + "/admin/budget"
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(u)
		if a.token != "" {
			req.Header.Set("Authorization", "Bearer "+a.token)
		}
		err := a.client.DoTimeout(req, resp, 500*time.Millisecond)
		var b AdminBudget
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %v", u, err))
		case resp.StatusCode() != fasthttp.StatusOK:
			errs = append(errs, fmt.Sprintf("%s: %d %s", u, resp.StatusCode(), strings.TrimSpace(string(resp.Body()))))
		case json.Unmarshal(resp.Body(), &b) != nil:
			errs = append(errs, fmt.Sprintf("%s: not a budget view", u))
		default:
			out = append(out, b)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	return out, errs
}

// mergeAdmin keeps, per campaign, the view with the largest global spend (the
// budget state is global; instances may lag).
func mergeAdmin(bs []AdminBudget) map[string]AdminCampaign {
	m := map[string]AdminCampaign{}
	for _, b := range bs {
		for _, c := range b.Campaigns {
			if old, ok := m[c.ID]; !ok || c.SpentMicros > old.SpentMicros {
				m[c.ID] = c
			}
		}
	}
	return m
}

// planOf returns pacing_target_micros and spent_today_micros per campaign.
func planOf(bs []AdminBudget) (plan, spent map[string]int64) {
	if len(bs) == 0 {
		return nil, nil
	}
	plan, spent = map[string]int64{}, map[string]int64{}
	for id, c := range mergeAdmin(bs) {
		plan[id], spent[id] = c.PacingTargetMicros, c.SpentTodayMicros
	}
	return plan, spent
}
