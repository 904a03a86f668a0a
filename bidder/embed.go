package bidder

import (
	"errors"
	"io"
	"log/slog"

	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
)

// Parts are the collaborators of a Server built without Start: for
// benchmarks and for embedding the bid path in another process. The caller
// owns (starts and closes) the budget manager.
type Parts struct {
	Config    *Config // defaults applied and validated by NewServer
	Campaigns *campaigns.Snapshot
	Scorer    ctr.Scorer
	Budget    *budget.Manager
	NoticeKey []byte
	Logger    *slog.Logger // default: discard
}

// NewServer builds a Server from parts; Handler serves it.
func NewServer(p Parts) (*Server, error) {
	if p.Config == nil || p.Campaigns == nil || p.Scorer == nil || p.Budget == nil || len(p.NoticeKey) == 0 {
		return nil, errors.New("bidder: NewServer needs a config, campaigns, a scorer, a budget manager and a notice key")
	}
	p.Config.Defaults()
	if err := p.Config.Validate(); err != nil {
		return nil, err
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sink := &budgetSink{m: p.Budget}
	signer, err := newBudgetSigner(p.Config.InstanceID, p.NoticeKey)
	if err != nil {
		return nil, err
	}
	s := newServer(p.Config, log, bindBudget(p.Budget), sink, signer)
	s.ready, s.degraded = budgetHealth(p.Budget)
	sink.won = &s.wins
	s.followControl(p.Budget)
	if err := s.SetCampaigns(p.Campaigns); err != nil {
		return nil, err
	}
	s.SetScorer(p.Scorer)
	return s, nil
}

// Handler is the main listener's request handler (bids, notices, health).
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }
