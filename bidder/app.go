package bidder

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/net/netutil"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// App is a running bidder: the HTTP server, its campaigns, models and
// budget store. Run builds one from a Config; Close shuts it down in order.
type App struct {
	cfg    *Config
	log    *slog.Logger
	Server *Server

	store *campaigns.Store
	gbdt  *ctr.Holder
	onnx  *ctr.Holder // nil: GBDT only
	// noRuntime: an ONNX model is configured (provider not off) and the
	// ONNX Runtime library did not load (missing, another version): GBDT
	// alone serves until a restart, and model_info says provider
	// "unavailable", not "none" (GBDT only on purpose).
	noRuntime bool
	chain     *ctr.Chain
	nats      *server.Server // embedded; nil with an external cluster
	budget    *budget.Manager
	events    *eventLog
	cancel    context.CancelFunc
	ln        net.Listener
	adminLn   net.Listener
	served    chan error

	errs    *recentErrors // the logger's handler: keeps recent warnings and errors (errlog.go)
	started time.Time
	spend   spendHistory  // spend samples for the status page (status.go)
	latency latencyWindow // the status page's latency over the last minute (figures.go)

	// Campaign reloads (SIGHUP or the directory watch): published, refused
	// (a bad file, or a set the budget store refuses), and whether the last
	// one was refused: the files on disk are then not what is running.
	reloadsOK, reloadsRefused atomic.Uint64
	reloadRefused             atomic.Bool
	refusedSnap               atomic.Pointer[campaigns.Snapshot] // a loaded set the budget store refused

	// natsClientErrs counts the embedded server's client connection
	// warnings and errors (bad protocol lines, TLS garbage, failed logins),
	// logged as one summary line a minute (budget.ClientErrorsMsg).
	natsClientErrs atomic.Uint64
	// natsRouteErrs counts those of route connections (budget.RouteErrorsMsg).
	natsRouteErrs atomic.Uint64

	// publishMu serialises publishCampaigns: the watch and SIGHUP publish
	// from two goroutines, and a set is bound to the budget and then
	// published to the bid path, two steps that must not interleave with
	// another set's.
	publishMu sync.Mutex
	// warned holds the campaign-set warnings last logged, by message, with
	// their arguments (warnChanged).
	warnMu sync.Mutex
	warned map[string]string

	drainWait func(ctx context.Context, d time.Duration) // tests replace the drain delay's wait
	closeOnce sync.Once
	closeErr  error
}

// Start builds every part, binds both listeners and starts serving. It
// returns once the bidder is ready to answer.
func Start(ctx context.Context, cfg *Config, log *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, served: make(chan error, 2), started: time.Now()}
	a.errs = newRecentErrors(log.Handler(), recentErrorsKept)
	a.log = slog.New(a.errs)
	ctx, a.cancel = context.WithCancel(ctx)
	err := a.start(ctx)
	if err != nil {
		a.Close(context.Background())
		return nil, err
	}
	return a, nil
}

func (a *App) start(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	var err error
	if a.store, err = campaigns.NewStore(cfg.CampaignsDir, campaigns.WithSeat(cfg.Seat)); err != nil {
		return err
	}
	log.Info("campaigns loaded", "dir", cfg.CampaignsDir, "campaigns", len(a.store.Current().Campaigns))
	a.warnEmpty(a.store.Current())
	if err = a.startModels(); err != nil {
		return err
	}
	sec, err := resolveSecrets(cfg, true)
	if err != nil {
		return err
	}
	if sec.keyGenerated {
		log.Info("notice key generated", "file", cfg.Notices.KeyFile)
	} else if cfg.Notices.Key == "" && len(cfg.Notices.Keys) == 0 {
		log.Info("notice key read", "file", cfg.Notices.KeyFile)
	}
	if err = a.startBudget(ctx, sec); err != nil {
		return err
	}
	ev, err := openEventFile(cfg.Events)
	if err != nil {
		return err
	}
	a.events = newEventLog(ctx, ev, cfg.Events.Queue, log)
	sink := &budgetSink{m: a.budget, events: a.events}
	signer, err := newBudgetSigner(cfg.InstanceID, sec.noticeKeys...)
	if err != nil {
		return err
	}
	s := newServer(cfg, log, bindBudget(a.budget), sink, signer)
	s.ready, s.degraded = budgetHealth(a.budget)
	s.adminTokens = sec.adminTokens
	s.campaignMoney = a.budget.EachStatus
	s.models = a.explainModels
	s.reg.MustRegister(appCollector{a})
	sink.won = &s.wins
	s.followControl(a.budget) // the kill switch, read before the listeners open
	// Pixels and clicks are counted by the instance that placed their bid
	// (each instance's replay cache is its own).
	s.trackerForward = a.budget.ForwardTracker
	if err := a.budget.ServeTrackers(s.serveTracker); err != nil {
		return fmt.Errorf("budget: subscribe: %w", err)
	}
	s.mon.setDrift(a.modelManifest(), features.Width, log)
	if rl := cfg.Model.RowLog; rl.Path != "" {
		if s.mon.rows, err = newRowLog(ctx, rl, features.Width, features.SchemaVersion, a.scoringModel, log); err != nil {
			return fmt.Errorf("model.row_log: %w", err)
		}
		log.Info("row log on", "path", rl.Path, "sample", rl.Sample, "max_bytes", rl.MaxBytes, "backups", rl.Backups)
	}
	if cfg.Model.Shadow != "" {
		sh, err := loadShadow(cfg.Model, log)
		if err != nil {
			return fmt.Errorf("model.shadow: %w", err)
		}
		s.mon.shadow.Store(sh)
		go sh.run(ctx.Done())
		log.Info("shadow model loaded", "manifest", cfg.Model.Shadow)
	}
	a.Server = s
	if err := s.SetCampaigns(a.store.Current()); err != nil {
		return err
	}
	a.warnUnpriced(a.store.Current())
	a.warnExchanges(a.store.Current())
	if a.onnx != nil {
		s.SetScorer(a.chain, a.onnx, a.gbdt)
	} else {
		s.SetScorer(a.chain, a.gbdt)
	}
	if a.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return err
	}
	if anySource(cfg.Limits.BidSources) {
		a.log.Warn("bid requests accepted from any source (limits.bid_sources names every address): whoever reaches the listener gets bids, holds budget and gets valid notice URLs",
			"listen", cfg.Listen, "hint", "the exchanges' egress ranges in limits.bid_sources, or a network ACL")
	}
	for _, name := range freeTestsAnySource(cfg) {
		a.log.Warn("test=1 requests get free ads from any source: their bids hold nothing and their notices charge nothing, and nothing stops another party from posting as this exchange",
			"exchange", name, "hint", "sources for the exchange (or limits.bid_sources), or test_requests billable")
	}
	switch {
	case insecurePublicURL(cfg.PublicURL) && cfg.SecureImpsOverHTTP:
		a.log.Warn("public_url is http and secure_imps_over_http is set: bids on imps with secure=1 carry http pixel, click and notice URLs, which https pages block or upgrade (impressions then go uncounted) and exchanges that check secure=1 reject",
			"public_url", cfg.PublicURL, "hint", "an https public_url (a TLS proxy in front of the listener)")
	case insecurePublicURL(cfg.PublicURL):
		a.log.Warn("public_url is http: imps with secure=1 get no bid (their markup's pixel and click URLs and their notice URLs would be http, which https pages block or upgrade, and exchanges reject)",
			"public_url", cfg.PublicURL, "hint", "an https public_url (a TLS proxy in front of the listener), or secure_imps_over_http for a demo")
	}
	if a.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		return err
	}
	// No ReadTimeout: net/http cancels a request's context when it passes,
	// which would cut a long CPU profile short. Refused requests bound
	// their own (refuse, server.go).
	s.admin = &http.Server{Handler: s.adminHandler(a.writeBudget, s.controlRoutes(a.budget), a.statusRoutes),
		ReadHeaderTimeout: 5 * time.Second, IdleTimeout: cfg.Limits.IdleTimeout}
	go func() { a.served <- s.Serve(a.ln) }()
	go func() {
		// At most maxAdminConns at once (the rest wait in the backlog):
		// the admin listener is outside the bid listener's cap, and 1,100
		// idle admin connections under a descriptor limit of 1,024 stalled
		// the bid listener's accept and failed the event log (an outside
		// audit).
		if err := s.admin.Serve(netutil.LimitListener(a.adminLn, maxAdminConns)); !errors.Is(err, http.ErrServerClosed) {
			a.served <- err
		}
	}()
	if cfg.WatchEvery > 0 {
		go a.watch(ctx)
	}
	log.Info("bidder listening", "addr", a.ln.Addr().String(), "admin", a.adminLn.Addr().String(), "instance", cfg.InstanceID)
	return nil
}

// maxAdminConns bounds the admin listener's open connections: scrapers,
// dashboards and operators need a few; the descriptor reserve the bid
// listener's cap leaves (capFor) holds this many and the store's files.
const maxAdminConns = 128

// Addr and AdminAddr are the bound listener addresses.
func (a *App) Addr() string      { return a.ln.Addr().String() }
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// startModels loads the GBDT (required) and the ONNX model (optional,
// micro-batched) and chains them: ONNX when its predicted latency fits the
// slack, else GBDT, else no-bid.
func (a *App) startModels() error {
	cfg := a.cfg.Model
	a.gbdt = ctr.NewHolder(func(p string) (ctr.Scorer, error) {
		return ctr.LoadGBDT(p, features.SchemaVersion, features.Width)
	}, a.log)
	if err := a.gbdt.Reload(cfg.GBDT); err != nil {
		return fmt.Errorf("model.gbdt: %w", err)
	}
	a.log.Info("gbdt model loaded", "manifest", cfg.GBDT)
	var primary ctr.PredictingScorer
	switch {
	case cfg.ONNXManifest() == "" || cfg.Provider == "off":
		a.log.Info("scoring with GBDT only", "reason", "no onnx model configured")
	case ctr.ONNXAvailable(cfg.ONNXLibrary) != nil:
		a.noRuntime = true
		a.log.Warn("scoring with GBDT only until a restart: the ONNX Runtime library did not load", "reason", ctr.ONNXAvailable(cfg.ONNXLibrary).Error(), "hint", "make onnxruntime")
	default:
		a.onnx = ctr.NewHolder(ctr.ONNXLoader(ctr.ONNXOptions{
			LibraryPath: cfg.ONNXLibrary, Provider: cfg.Provider, CUDADevice: cfg.CUDADevice,
			SchemaVersion: features.SchemaVersion, Width: features.Width,
			MaxBatch: max(cfg.MaxBatch, 256), Log: a.log,
		}, ctr.BatchOptions{MaxBatch: cfg.MaxBatch, MaxWait: cfg.MaxWait}), a.log)
		// A refused model stays in its holder's watch: fixed files load
		// with no restart (before, a model refused at start was never
		// tried again and the instance scored with GBDT until restarted,
		// with no refusal counted: an outside audit). Until then every
		// score call falls to GBDT, counted as unavailable.
		primary = a.onnx
		if err := a.onnx.Reload(cfg.ONNXManifest()); err != nil {
			a.log.Warn("onnx model refused; scoring with GBDT only until its files change and it loads", "err", err)
		} else {
			a.log.Info("onnx model loaded", "manifest", cfg.ONNXManifest(), "variant", cfg.Variant, "provider", a.onnxProvider())
		}
	}
	var err error
	a.chain, err = ctr.NewChain(primary, a.gbdt)
	return err
}

// onnxProvider is model_info's provider: the ONNX model's execution
// provider; "unknown": configured, none loaded; "unavailable": configured,
// the runtime library did not load; "none": no ONNX model configured.
func (a *App) onnxProvider() string {
	if a.onnx == nil {
		if a.noRuntime {
			return "unavailable"
		}
		return "none"
	}
	if p, ok := a.onnx.Current().(interface{ Provider() string }); ok {
		return p.Provider()
	}
	return "unknown"
}

// scoringModel names the model that scored a row (the row log's model
// field): the fallback's when it did, else the one in front of the chain
// (it changes on a hot reload).
func (a *App) scoringModel(by ctr.Scored) string {
	if by != ctr.ScoredFallback && a.onnx != nil && a.onnx.Current() != nil {
		return a.onnx.Name()
	}
	return a.gbdt.Name()
}

// modelManifest is the manifest of the model in front of the chain.
func (a *App) modelManifest() *ctr.Manifest {
	for _, h := range []*ctr.Holder{a.onnx, a.gbdt} {
		if h == nil {
			continue
		}
		if m, ok := h.Current().(interface{ Manifest() *ctr.Manifest }); ok && m.Manifest() != nil {
			return m.Manifest()
		}
	}
	return nil
}

// loadShadow loads the shadow model named by the config.
func loadShadow(mc ModelConfig, log *slog.Logger) (*shadow, error) {
	m, err := ctr.LoadManifest(mc.Shadow)
	if err != nil {
		return nil, err
	}
	var sc ctr.Scorer
	if m.Kind == "onnx" {
		sc, err = ctr.LoadONNX(mc.Shadow, ctr.ONNXOptions{LibraryPath: mc.ONNXLibrary, Provider: ctr.ProviderCPU,
			SchemaVersion: features.SchemaVersion, Width: features.Width, MaxBatch: shadowMaxRows, Log: log})
	} else {
		sc, err = ctr.LoadGBDT(mc.Shadow, features.SchemaVersion, features.Width)
	}
	if err != nil {
		return nil, err
	}
	return newShadow(sc, m.Name), nil
}

func (a *App) startBudget(ctx context.Context, sec *secrets) error {
	b := a.cfg.Budget
	bc := budget.Config{
		InstanceID: a.cfg.InstanceID,
		LeaseTTL:   b.LeaseTTL,
		HoldTTL:    a.cfg.Notices.HoldTTL,
		NoticeTTL:  a.cfg.Notices.TokenTTL,
		SyncPeriod: b.SyncPeriod,
		MaxHolds:   b.MaxHolds,
		Replicas:   b.Replicas,
		Auth:       sec.natsAuth,
		// Settlement: notices.* (docs/budget.md, Notices).
		AckWait:         a.cfg.Notices.AckWait,
		ForwardTimeout:  a.cfg.Notices.ForwardTimeout,
		DedupWindow:     a.cfg.Notices.DedupWindow.windows(),
		DedupMaxEntries: a.cfg.Notices.DedupMaxEntries,
		FreqPendingTTL:  a.cfg.Notices.FreqPendingTTL,
		FreqMaxUsers:    a.cfg.Notices.FreqMaxEntries,
	}
	if len(b.NATSURLs) > 0 {
		bc.URLs = b.NATSURLs
		bc.TLS = tlsFiles(b.TLS)
	} else {
		opts := budget.EmbeddedOptions{StoreDir: b.StoreDir, ServerName: a.cfg.InstanceID,
			Auth: sec.natsAuth, TLS: tlsFiles(b.TLS), ClusterUser: sec.routeUser, ClusterPassword: sec.routePass,
			ClusterTLS: tlsFiles(b.EmbeddedCluster.TLS), Log: a.log, ClientErrors: &a.natsClientErrs,
			RouteErrors: &a.natsRouteErrs}
		if b.EmbeddedListen != "" {
			host, port, err := net.SplitHostPort(b.EmbeddedListen)
			if err != nil {
				return fmt.Errorf("%w: budget.embedded_listen: %v", ErrConfig, err)
			}
			opts.Host = host
			if opts.Port, err = strconv.Atoi(port); err != nil {
				return fmt.Errorf("%w: budget.embedded_listen: %v", ErrConfig, err)
			}
		}
		if cl := b.EmbeddedCluster; cl.Listen != "" {
			host, port, err := net.SplitHostPort(cl.Listen)
			if err != nil {
				return fmt.Errorf("%w: budget.embedded_cluster.listen: %v", ErrConfig, err)
			}
			opts.ClusterName, opts.ClusterHost, opts.Routes = cl.Name, host, cl.Routes
			if opts.ClusterPort, err = strconv.Atoi(port); err != nil {
				return fmt.Errorf("%w: budget.embedded_cluster.listen: %v", ErrConfig, err)
			}
		}
		var err error
		if a.nats, err = budget.StartEmbedded(opts); err != nil {
			return err
		}
		bc.Server = a.nats
		a.log.Info("embedded NATS started", "store", b.StoreDir, "listen", b.EmbeddedListen,
			"auth", !sec.natsAuth.IsZero(), "tls", b.TLS != (TLSConfig{}), "route_auth", sec.routeUser != "")
		if b.EmbeddedListen != "" && sec.natsAuth.IsZero() {
			// Allowed on loopback (a one-host demo), but every local user
			// then has the budget: forwarded notices and the KV records
			// (an outside audit's doubt).
			a.log.Warn("budget.embedded_listen takes clients without auth: any process on this host can settle notices and write budget records through it; set budget.auth",
				"listen", b.EmbeddedListen)
		}
	}
	var err error
	if a.budget, err = budget.New(bc, a.log); err != nil {
		return err
	}
	if err := a.budget.SetCampaigns(budgetCampaigns(a.store.Current())); err != nil {
		return err
	}
	// A cluster may still be electing its JetStream leader (instances started
	// together): retry until budget.start_timeout.
	give := time.Now().Add(b.StartTimeout)
	for {
		err := a.budget.Start(ctx)
		if err == nil {
			return a.refuseCurrencyConflicts()
		}
		inUse := errors.Is(err, budget.ErrInstanceInUse)
		if time.Now().After(give) {
			if inUse {
				return fmt.Errorf("instance_id still in use by another running process after %v: %w", b.StartTimeout, err)
			}
			return fmt.Errorf("budget store not ready after %v: %w", b.StartTimeout, err)
		}
		if inUse {
			a.log.Warn("instance_id in use by another running process; waiting for it to close", "err", err)
		} else {
			a.log.Warn("budget store not ready; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// refuseCurrencyConflicts fails the start when a campaign file names
// another currency than its budget record: as a hot reload that would make
// one is refused, so is a start (the campaign would take no lease and never
// bid, and its record's spend would read as the file's currency).
func (a *App) refuseCurrencyConflicts() error {
	cs := a.budget.CurrencyConflicts()
	if len(cs) == 0 {
		return nil
	}
	files := map[string]string{}
	for _, c := range a.store.Current().Campaigns {
		files[c.ID] = c.File
	}
	msgs := make([]string, len(cs))
	for i, c := range cs {
		msgs[i] = c.String()
		if f := files[c.Campaign]; f != "" {
			msgs[i] = f + ": " + msgs[i]
		}
	}
	return fmt.Errorf("campaign set refused by the budget store: %s", strings.Join(msgs, "; "))
}

// watch reloads campaigns and models when their files change.
func (a *App) watch(ctx context.Context) {
	go a.gbdt.Watch(ctx, a.cfg.WatchEvery)
	if a.onnx != nil {
		go a.onnx.Watch(ctx, a.cfg.WatchEvery)
	}
	go a.store.Watch(ctx, a.cfg.WatchEvery, func(err error) {
		a.reloadRefusedNow()
		a.log.Error("campaign reload refused; the running set stays", "err", err)
	})
	// The store swaps its own snapshot; publish each new one to the bid path.
	t := time.NewTicker(a.cfg.WatchEvery)
	defer t.Stop()
	manifest := a.modelManifest()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m := a.modelManifest(); m != manifest { // a model reload: drift against its training data
			manifest = m
			a.Server.mon.setDrift(m, features.Width, a.log)
		}
		if snap := a.store.Current(); snap != a.refusedSnap.Load() {
			if err := a.publishCampaigns(); err != nil {
				a.log.Error("campaign reload refused; the running set stays", "err", err)
			}
		}
	}
}

// ReloadCampaigns re-reads the campaign directory (SIGHUP) and publishes it;
// a bad file leaves the running set untouched.
func (a *App) ReloadCampaigns() error {
	if err := a.store.Reload(); err != nil {
		a.reloadRefusedNow()
		return err
	}
	return a.publishCampaigns()
}

// reloadRefusedNow counts a refused campaign reload.
func (a *App) reloadRefusedNow() {
	a.reloadsRefused.Add(1)
	a.reloadRefused.Store(true)
}

// publishCampaigns hands the store's snapshot to the bid path unless it is
// there already. A set the budget store refuses is counted once (the watch
// does not try it again); SIGHUP tries it again. One at a time, each taking
// the store's newest snapshot: unserialised, the watch and a SIGHUP could
// bind their sets to the budget in one order and publish them to the bid
// path in the other, leaving the budget on the older set's budgets
// (TestConcurrentReloadsAgree).
func (a *App) publishCampaigns() error {
	a.publishMu.Lock()
	defer a.publishMu.Unlock()
	snap := a.store.Current()
	if cat := a.Server.catalog.Load(); cat != nil && cat.snap == snap {
		return nil
	}
	if err := a.Server.SetCampaigns(snap); err != nil {
		a.refusedSnap.Store(snap)
		a.reloadRefusedNow()
		// Named as the start names it (refuseCurrencyConflicts): with the
		// campaign's file, whether a SIGHUP or the watch reloaded.
		var ce *budget.CampaignError
		if errors.As(err, &ce) {
			if c := snap.Campaign(ce.Campaign); c != nil {
				return fmt.Errorf("campaign set refused by the budget store: %s: %w", c.File, err)
			}
		}
		return fmt.Errorf("campaign set refused by the budget store: %w", err)
	}
	a.reloadsOK.Add(1)
	a.reloadRefused.Store(false)
	a.log.Info("campaigns published", "campaigns", len(snap.Campaigns), "unchanged", snap.Reused)
	a.warnEmpty(snap)
	a.warnUnpriced(snap)
	a.warnExchanges(snap)
	return nil
}

// freeTestsAnySource names the exchanges whose test=1 requests are free
// (test_requests: free) while any source may post as them (no sources, no
// limits.bid_sources): "" stands for requests that name no exchange
// (notices.test_requests). Sorted.
func freeTestsAnySource(cfg *Config) []string {
	var names []string
	open := len(cfg.Limits.BidSources) == 0 || anySource(cfg.Limits.BidSources) // 0.0.0.0/0 is open too
	if open && cfg.Notices.TestRequests == "free" {
		names = append(names, "")
	}
	for name, x := range cfg.Exchanges {
		tm := x.TestRequests
		if tm == "" {
			tm = cfg.Notices.TestRequests
		}
		if tm == "free" && (len(x.Sources) == 0 && open || anySource(x.Sources)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// insecurePublicURL tells whether public_url puts http notice and tracker
// URLs into bids served to other hosts (an http base on loopback is a
// local test setup).
func insecurePublicURL(u string) bool {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		return false
	}
	host, _, _ := strings.Cut(rest, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return !isLoopback(strings.Trim(host, "[]"))
}

// warnEmpty warns of a set without campaigns, at start and on a reload: it
// is published, as asked (the kill switch stops bidding and keeps the set),
// but not silently: an emptied folder was an INFO line only (an outside
// audit).
func (a *App) warnEmpty(snap *campaigns.Snapshot) {
	if len(snap.Campaigns) == 0 {
		a.log.Warn("no campaigns: every request gets a no-bid (no_campaign)", "dir", a.cfg.CampaignsDir)
	}
}

// warnChanged logs a warning about the published campaign set unless the
// last set logged the same one (msg and args alike): at 10,000 campaigns
// every reload repeated the same lines (an outside ops audit). A set
// without it (clear) forgets it, so it is logged again if it comes back.
func (a *App) warnChanged(clear bool, msg string, args ...any) {
	a.warnMu.Lock()
	defer a.warnMu.Unlock()
	if a.warned == nil {
		a.warned = map[string]string{}
	}
	if clear {
		delete(a.warned, msg)
		return
	}
	sig := fmt.Sprint(args...)
	if a.warned[msg] == sig {
		return
	}
	a.warned[msg] = sig
	a.log.Warn(msg, args...)
}

// warnUnpriced logs, when they change, the campaigns that can never bid
// because currency.rates lacks their currency (check.go's unpriced).
func (a *App) warnUnpriced(snap *campaigns.Snapshot) {
	const msg = "campaigns in a currency not in currency.rates never bid"
	un := unpriced(a.cfg, snap)
	if len(un) == 0 {
		a.warnChanged(true, msg)
		return
	}
	a.warnChanged(false, msg, "campaigns", len(un), "first", un[0].ID, "currency", un[0].Currency)
}

// warnExchanges warns of campaigns whose deals any sender can claim (deals
// without targeting.exchanges: a deal id means something only on the
// exchange that set it up) and of targeting.exchanges names no exchange in
// the config has (those never match).
func (a *App) warnExchanges(snap *campaigns.Snapshot) {
	var open []string
	for _, c := range snap.Campaigns {
		if len(c.Targeting.Deals) > 0 && len(c.Targeting.Exchanges) == 0 {
			open = append(open, c.ID)
		}
	}
	const openMsg = "campaigns with deals and no targeting.exchanges bid on their deal ids from any sender"
	if len(open) > 0 {
		a.warnChanged(false, openMsg, "campaigns", len(open), "first", open[0])
	} else {
		a.warnChanged(true, openMsg)
	}
	const unknownMsg = "targeting.exchanges names exchanges the config does not have: those campaigns never bid there"
	if un := unknownExchanges(a.cfg, snap); len(un) > 0 {
		names := map[string]bool{}
		for _, u := range un {
			names[u.name] = true
		}
		a.warnChanged(false, unknownMsg,
			"names", slices.Sorted(maps.Keys(names)), "campaigns", len(un), "first", un[0].c.ID, "file", un[0].c.File)
	} else {
		a.warnChanged(true, unknownMsg)
	}
}

// writeBudget serves GET /admin/budget.
// The rows are encoded one at a time inside the budget's paced walk
// (EachStatus): at 10,000 campaigns the whole list (2.5 MB) built and then
// encoded in one go kept a one-core bidder from its requests, and a loop of
// these requests cut its bids by more than half (an outside audit).
func (a *App) writeBudget(w http.ResponseWriter) {
	bw := bufio.NewWriterSize(w, 32<<10)
	inst, _ := json.Marshal(a.cfg.InstanceID)
	bw.WriteString(`{"instance":`)
	bw.Write(inst)
	bw.WriteString(`,"campaigns":[`)
	enc := json.NewEncoder(bw)
	first := true
	a.budget.EachStatus(func(st *budget.CampaignStatus) {
		if !first {
			bw.WriteByte(',')
		}
		first = false
		enc.Encode(st) // its newline is JSON whitespace
	})
	bw.WriteString("]}\n")
	bw.Flush()
}

// Shutdown is the graceful stop (SIGTERM): readiness turns 503 at once,
// lifecycle.drain_delay passes while requests are still answered (load
// balancers see the 503 and stop sending), then Close, bounded by
// lifecycle.shutdown_timeout. A done drainCtx (a second signal) cuts the
// delay short.
func (a *App) Shutdown(drainCtx context.Context) error {
	if a.Server != nil {
		a.Server.Drain()
	}
	if d := a.cfg.Lifecycle.DrainDelay; d > 0 {
		a.log.Info("draining: readiness is 503, still serving", "drain_delay", d)
		wait := a.drainWait
		if wait == nil {
			wait = sleepCtx
		}
		wait(drainCtx, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Lifecycle.ShutdownTimeout)
	defer cancel()
	return a.Close(ctx)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Close shuts down in the order that loses no spend: stop accepting and let
// in-flight requests finish, then close the budget manager (flush the
// ledger, return unspent lease), then NATS, then the admin listener. Only
// the first call does it; later ones return its result.
func (a *App) Close(ctx context.Context) error {
	a.closeOnce.Do(func() { a.closeErr = a.close(ctx) })
	return a.closeErr
}

func (a *App) close(ctx context.Context) error {
	var errs []error
	if a.Server != nil {
		errs = append(errs, a.Server.Shutdown(ctx))
	}
	if a.budget != nil {
		errs = append(errs, a.budget.Close(ctx))
	}
	if a.cancel != nil {
		a.cancel()
	}
	if a.events != nil {
		a.events.wait()
	}
	if a.Server != nil {
		a.Server.mon.rows.wait()
	}
	if a.onnx != nil {
		a.onnx.Close()
	}
	if a.gbdt != nil {
		a.gbdt.Close()
	}
	if a.nats != nil {
		a.nats.Shutdown()
		a.nats.WaitForShutdown()
	}
	if a.Server != nil {
		errs = append(errs, a.Server.CloseAdmin(ctx))
	}
	return errors.Join(errs...)
}

// runReloadHook, when a test sets it, runs each SIGHUP reload (reload).
var runReloadHook func(reload func())

// Run starts the bidder and serves until SIGINT or SIGTERM; SIGHUP reloads
// campaigns.
func Run(cfg *Config, log *slog.Logger) error {
	// Caught before Start, which serves before it returns and may wait out
	// budget.start_timeout for the budget store: a SIGTERM sent during
	// that wait was not acted on (TestSignalDuringStart: still running 30 s
	// later). SIGINT or SIGTERM during Start cancels it and shuts down what
	// started; SIGHUP reloads once Start is done (TestSighupDuringStart).
	//
	// SIGHUP has a channel of its own: the runtime drops a signal whose
	// channel is full, and with one shared channel two SIGHUPs queued
	// behind a running reload made a SIGTERM in a storm of them vanish
	// (TestSigtermDuringSighupStorm). One pending SIGHUP is enough: the
	// reload it starts reads the files as they are then.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	hupc := make(chan os.Signal, 1)
	signal.Notify(hupc, syscall.SIGHUP)
	defer signal.Stop(hupc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // after the app is shut down: its own context derives from ctx
	type started struct {
		app *App
		err error
	}
	done := make(chan started, 1)
	go func() {
		app, err := Start(ctx, cfg, log)
		done <- started{app, err}
	}()
	var app *App
	hup := false
	for app == nil {
		select {
		case r := <-done:
			if r.err != nil {
				return r.err
			}
			app = r.app
		case <-hupc:
			hup = true
		case s := <-sig:
			log.Info("shutting down during start", "signal", s.String())
			cancel()
			r := <-done
			if r.app != nil {
				return r.app.Close(context.Background())
			}
			return nil
		}
	}
	// A SIGHUP's reload runs beside this loop, so a SIGTERM is acted on
	// (readiness 503) at once, not after the reload: at 5,000 campaigns one
	// takes about a second, and one stuck in a read would have held the
	// shutdown for ever. A SIGHUP during a reload starts one more after it
	// (it reads the files as they are then); shutdown does not wait for a
	// reload, as it never waited for the directory watch's.
	reloaded := make(chan struct{}, 1)
	reloading, again := false, false
	reload := func() {
		if reloading {
			again = true
			return
		}
		reloading = true
		do := func() {
			if err := app.ReloadCampaigns(); err != nil {
				// The app's logger: its errors feed the status page's list.
				app.log.Error("campaign reload refused; the running set stays", "err", err)
			}
		}
		go func() {
			if h := runReloadHook; h != nil {
				h(do)
			} else {
				do()
			}
			reloaded <- struct{}{}
		}()
	}
	if hup {
		reload()
	}
	for {
		select {
		case <-hupc:
			reload()
		case <-reloaded:
			reloading = false
			if again {
				again = false
				reload()
			}
		case s := <-sig:
			log.Info("shutting down", "signal", s.String())
			// A second SIGINT/SIGTERM cuts the drain delay short; SIGHUPs
			// are no longer read (the runtime drops them).
			drain, stop := context.WithCancel(context.Background())
			go func() {
				for s := range sig {
					log.Info("second signal: the drain delay is cut short", "signal", s.String())
					stop()
				}
			}()
			err := app.Shutdown(drain)
			stop()
			signal.Stop(sig)
			close(sig) // ends the goroutine above
			return err
		case err := <-app.served:
			app.Close(context.Background())
			return err
		}
	}
}

// budgetHealth is readiness and the degraded gauge from the budget
// manager's Readiness: a NATS blip inside valid leases stays ready.
func budgetHealth(m *budget.Manager) (ready func() (bool, string), degraded func() bool) {
	ready = func() (bool, string) {
		ok, _, why := m.Readiness()
		return ok, why
	}
	degraded = func() bool { _, d, _ := m.Readiness(); return d }
	return ready, degraded
}
