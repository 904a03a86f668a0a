package bidder

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openbidder/openbidder/privacy"
)

// ErrConfig wraps every configuration problem.
var ErrConfig = errors.New("bidder: invalid config")

// Config is configs/bidder.yaml. A zero field means the documented default
// (see Defaults); Validate rejects what cannot work.
type Config struct {
	// Listen is the exchange-facing address (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// AdminListen serves /metrics, /admin/* and /debug/pprof (default
	// 127.0.0.1:8081). It must be a loopback address unless AdminPublic is set.
	AdminListen string `yaml:"admin_listen"`
	AdminPublic bool   `yaml:"admin_public"`
	// PublicURL is the base of notice and tracker URLs put in bids
	// (default http://<Listen>).
	PublicURL string `yaml:"public_url"`
	// Seat is this bidder's seat id (seatbid.seat, matched against wseat/bseat).
	Seat string `yaml:"seat"`
	// InstanceID names this instance in bid ids, tokens and the ledger
	// (default: hostname-pid).
	InstanceID string `yaml:"instance_id"`

	CampaignsDir string        `yaml:"campaigns_dir"`
	WatchEvery   time.Duration `yaml:"watch_every"` // campaign/model file poll period (default 2s; negative disables)

	Limits   LimitsConfig   `yaml:"limits"`
	Pricing  PricingConfig  `yaml:"pricing"`
	Currency CurrencyConfig `yaml:"currency"`
	Model    ModelConfig    `yaml:"model"`
	Notices  NoticeConfig   `yaml:"notices"`
	// Exchanges holds per-exchange rules, keyed by the name an exchange puts
	// in its bid URL: POST /openrtb2/bid?exchange=NAME.
	Exchanges map[string]ExchangeConfig `yaml:"exchanges"`
	Budget    BudgetConfig              `yaml:"budget"`
	Privacy   PrivacyConfig             `yaml:"privacy"`
}

// PrivacyConfig configures how consent signals are honoured
// (docs/privacy.md).
type PrivacyConfig struct {
	// VendorID is this bidder's IAB Europe Global Vendor List id: a TC
	// string must give it consent (or legitimate interest) for user-level
	// data. 0 (the default): none registered, so no user-level data
	// wherever GDPR applies.
	VendorID int `yaml:"vendor_id"`
	// CacheEntries bounds the decoded consent strings kept (default
	// 100000; negative: none kept, every string decoded each time).
	CacheEntries int `yaml:"cache_entries"`
	// CacheTTL is how long a decoded string is kept (default 1h).
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

func (p PrivacyConfig) options() privacy.Options {
	return privacy.Options{VendorID: p.VendorID, CacheEntries: p.CacheEntries, CacheTTL: p.CacheTTL}
}

// LimitsConfig bounds a request's size and time.
type LimitsConfig struct {
	MaxBodyBytes   int           `yaml:"max_body_bytes"`  // after gunzip too (default 262144)
	InternalBudget time.Duration `yaml:"internal_budget"` // time from arrival the bidder allows itself (default 8ms)
	NetworkMargin  time.Duration `yaml:"network_margin"`  // subtracted from tmax for the way back (default 15ms)
	DefaultTMax    time.Duration `yaml:"default_tmax"`    // when the request has no tmax (default 100ms)
	MinSlack       time.Duration `yaml:"min_slack"`       // answer 204 at once below this (default 1ms)
	MaxImps        int           `yaml:"max_imps"`        // imps considered per request (default 16)
}

// PricingConfig steers bid prices.
type PricingConfig struct {
	// MaxScoredPerImp caps the candidates scored per imp, best possible bid
	// first (default 8; see docs/architecture.md for why).
	MaxScoredPerImp int `yaml:"max_scored_per_imp"`
	// FirstPriceShade multiplies the value in first-price auctions (at=1).
	// 1 (the default) bids the full value; shading comes later.
	FirstPriceShade float64 `yaml:"first_price_shade"`
	// ExhaustiveScan gates every eligible candidate of an imp instead of
	// stopping once nothing left can beat the kept ones: the same bids,
	// slower; per-campaign no-bid counters then count every eligible
	// candidate. For checking the ranked walk (bench agreement tests).
	ExhaustiveScan bool `yaml:"exhaustive_scan"`
}

// CurrencyConfig is the rate table: units of Base per one unit of each
// currency. A floor or bid in a currency not in the table means no bid.
type CurrencyConfig struct {
	Base  string             `yaml:"base"` // default USD
	Rates map[string]float64 `yaml:"rates"`
}

// ModelConfig names the served models.
type ModelConfig struct {
	GBDT        string        `yaml:"gbdt"`         // GBDT manifest, the fallback scorer (default configs/models/gbdt.manifest.json)
	ONNX        string        `yaml:"onnx"`         // ONNX manifest (default configs/models/mlp.manifest.json; provider: off scores with GBDT only)
	ONNXLibrary string        `yaml:"onnx_library"` // libonnxruntime.so path (default lib/onnxruntime/libonnxruntime.so.1)
	Provider    string        `yaml:"provider"`     // auto|cuda|cpu|off (default auto)
	MaxBatch    int           `yaml:"max_batch"`    // default 64
	MaxWait     time.Duration `yaml:"max_wait"`     // default 0: never wait for company (ctr.BatchOptions.MaxWait)
	// Shadow names a second model's manifest (gbdt or onnx) scored off the
	// bid path on sampled requests, for comparison in /metrics.
	Shadow string `yaml:"shadow"`
}

// NoticeConfig controls notice URLs and what they charge.
type NoticeConfig struct {
	// Key signs notice tokens; "env:NAME" reads it from the environment.
	// Empty means a random key per process (notices then do not survive a restart).
	Key string `yaml:"key"`
	// ChargeOn is "billing" (the default: a win notice charges
	// provisionally, the burl settles the charge, a loss before the burl
	// reverses it) or "win" (nurl charges).
	ChargeOn string        `yaml:"charge_on"`
	TokenTTL time.Duration `yaml:"token_ttl"` // how long a notice is accepted (default 24h)
	HoldTTL  time.Duration `yaml:"hold_ttl"`  // how long a bid's hold lives (default 2m)
	// AckWait bounds how long a charging notice waits for its ledger entry
	// to be durable; then it is answered 503 and the entry stays queued for
	// the exchange's retry (default 2s).
	AckWait time.Duration `yaml:"ack_wait"`
	// ForwardTimeout bounds the wait for the instance that placed the bid
	// to settle a notice forwarded to it; without an answer the notice is
	// settled here (default 1s; negative: never forward).
	ForwardTimeout time.Duration `yaml:"forward_timeout"`
	// DedupWindow is how long the de-duplication tier keeps an impression
	// after a notice of each kind (default win 15m, bill 2h, loss 15m; a
	// provisional charge is kept as long as a bill may come). The ledger
	// stream's duplicate window is the longest of them.
	DedupWindow DedupWindowConfig `yaml:"dedup_window"`
	// DedupMaxEntries bounds the impressions kept (default 4194304: at most
	// ~224 MB, 40 bytes each at a load of at most 3/4); the oldest go first.
	DedupMaxEntries int `yaml:"dedup_max_entries"`
}

// DedupWindowConfig is notices.dedup_window.
type DedupWindowConfig struct {
	Win  time.Duration `yaml:"win"`
	Bill time.Duration `yaml:"bill"`
	Loss time.Duration `yaml:"loss"`
}

// ExchangeConfig is one exchange's rules.
type ExchangeConfig struct {
	// ChargeOn is "billing" or "win" for this exchange; empty means
	// notices.charge_on.
	ChargeOn string `yaml:"charge_on"`
}

// BudgetConfig configures the budget store (NATS JetStream).
type BudgetConfig struct {
	// NATSURLs connects to an external cluster; empty runs NATS embedded.
	NATSURLs []string `yaml:"nats_urls"`
	// StoreDir is the embedded server's JetStream directory (default data/nats).
	StoreDir string `yaml:"store_dir"`
	// EmbeddedListen exposes the embedded server to other instances
	// (host:port); empty keeps it in-process only.
	EmbeddedListen string `yaml:"embedded_listen"`
	// EmbeddedCluster joins the embedded server to a NATS cluster of other
	// instances' embedded servers (route listener and seed routes).
	EmbeddedCluster ClusterConfig `yaml:"embedded_cluster"`
	// Replicas of the budget KV bucket and ledger stream (default 1; use 3
	// on a cluster of three or more nodes).
	Replicas int `yaml:"replicas"`
	// LeaseTTL is how long a lease record lives without renewal: a crashed
	// instance's lease returns to the pool after it (default 5m; must exceed
	// notices.hold_ttl plus two sync periods).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// StartTimeout bounds the wait for the budget store at start (a cluster
	// electing its leader, NATS restarting): default 60s.
	StartTimeout time.Duration `yaml:"start_timeout"`
	SyncPeriod   time.Duration `yaml:"sync_period"`
}

// Overrides are command-line flags; a non-empty one wins over the file.
type Overrides struct {
	Listen      string
	AdminListen string
}

// ClusterConfig is the embedded NATS server's cluster membership.
type ClusterConfig struct {
	Name   string   `yaml:"name"`
	Listen string   `yaml:"listen"` // host:port of the route listener
	Routes []string `yaml:"routes"` // nats-route://host:port of the other nodes
}

// LoadConfig reads a config file, applies flag overrides and defaults, and
// validates the result.
func LoadConfig(path string, o Overrides) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	defer f.Close()
	var c Config
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	if o.Listen != "" {
		if c.PublicURL == "" || c.PublicURL == "http://"+c.Listen {
			c.PublicURL = "" // follows the listen address unless set explicitly
		}
		c.Listen = o.Listen
	}
	if o.AdminListen != "" {
		c.AdminListen = o.AdminListen
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Defaults fills every zero field with its documented default.
func (c *Config) Defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Listen, "127.0.0.1:8080")
	def(&c.AdminListen, "127.0.0.1:8081")
	def(&c.PublicURL, "http://"+c.Listen)
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	def(&c.Seat, "openbidder")
	if c.InstanceID == "" {
		h, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	def(&c.CampaignsDir, "configs/campaigns")
	defDur(&c.WatchEvery, 2*time.Second)
	l := &c.Limits
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = 256 << 10
	}
	defDur(&l.InternalBudget, 8*time.Millisecond)
	defDur(&l.NetworkMargin, 15*time.Millisecond)
	defDur(&l.DefaultTMax, 100*time.Millisecond)
	defDur(&l.MinSlack, time.Millisecond)
	if l.MaxImps == 0 {
		l.MaxImps = 16
	}
	if c.Pricing.MaxScoredPerImp == 0 {
		c.Pricing.MaxScoredPerImp = 8
	}
	if c.Pricing.FirstPriceShade == 0 {
		c.Pricing.FirstPriceShade = 1
	}
	def(&c.Currency.Base, "USD")
	if c.Currency.Rates == nil {
		c.Currency.Rates = map[string]float64{}
	}
	if _, ok := c.Currency.Rates[c.Currency.Base]; !ok {
		c.Currency.Rates[c.Currency.Base] = 1
	}
	def(&c.Model.GBDT, "configs/models/gbdt.manifest.json")
	def(&c.Model.ONNX, "configs/models/mlp.manifest.json")
	def(&c.Model.ONNXLibrary, "lib/onnxruntime/libonnxruntime.so.1")
	def(&c.Model.Provider, "auto")
	if c.Model.MaxBatch == 0 {
		c.Model.MaxBatch = 64
	}
	def(&c.Notices.ChargeOn, "billing")
	defDur(&c.Notices.TokenTTL, 24*time.Hour)
	defDur(&c.Notices.HoldTTL, 2*time.Minute)
	defDur(&c.Notices.AckWait, 2*time.Second)
	defDur(&c.Notices.ForwardTimeout, time.Second)
	defDur(&c.Notices.DedupWindow.Win, 15*time.Minute)
	defDur(&c.Notices.DedupWindow.Bill, 2*time.Hour)
	defDur(&c.Notices.DedupWindow.Loss, 15*time.Minute)
	if c.Notices.DedupMaxEntries == 0 {
		c.Notices.DedupMaxEntries = 4 << 20
	}
	def(&c.Budget.StoreDir, "data/nats")
	defDur(&c.Budget.LeaseTTL, 5*time.Minute)
	defDur(&c.Budget.SyncPeriod, time.Second)
	defDur(&c.Budget.StartTimeout, time.Minute)
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if host, _, err := net.SplitHostPort(c.AdminListen); err != nil {
		bad("admin_listen", "%v", err)
	} else if !c.AdminPublic && !isLoopback(host) {
		bad("admin_listen", "%q is not a loopback address (set admin_public: true to expose it)", c.AdminListen)
	}
	if !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		bad("public_url", "%q must start with http:// or https://", c.PublicURL)
	}
	l := c.Limits
	if l.MaxBodyBytes < 1024 {
		bad("limits.max_body_bytes", "%d is below 1024", l.MaxBodyBytes)
	}
	if l.InternalBudget < 0 || l.NetworkMargin < 0 || l.MinSlack < 0 || l.DefaultTMax < 0 {
		bad("limits", "durations must not be negative")
	}
	if l.MaxImps < 1 {
		bad("limits.max_imps", "%d must be at least 1", l.MaxImps)
	}
	if c.Pricing.MaxScoredPerImp < 1 || c.Pricing.MaxScoredPerImp > 256 {
		bad("pricing.max_scored_per_imp", "%d must be in [1, 256]", c.Pricing.MaxScoredPerImp)
	}
	if s := c.Pricing.FirstPriceShade; s <= 0 || s > 1 || math.IsNaN(s) {
		bad("pricing.first_price_shade", "%v must be in (0, 1]", s)
	}
	for cur, r := range c.Currency.Rates {
		if len(cur) != 3 || strings.ToUpper(cur) != cur {
			bad("currency.rates", "%q is not an ISO 4217 code", cur)
		}
		if r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			bad("currency.rates."+cur, "rate %v must be positive", r)
		}
	}
	switch c.Model.Provider {
	case "auto", "cuda", "cpu", "off":
	default:
		bad("model.provider", "%q is not auto, cuda, cpu or off", c.Model.Provider)
	}
	if c.Model.MaxBatch < 1 || c.Model.MaxBatch > 4096 {
		bad("model.max_batch", "%d must be in [1, 4096]", c.Model.MaxBatch)
	}
	switch c.Notices.ChargeOn {
	case "billing", "win":
	default:
		bad("notices.charge_on", "%q is not billing or win", c.Notices.ChargeOn)
	}
	for name, x := range c.Exchanges {
		switch x.ChargeOn {
		case "", "billing", "win":
		default:
			bad("exchanges."+name+".charge_on", "%q is not billing or win", x.ChargeOn)
		}
	}
	if c.Notices.HoldTTL >= c.Notices.TokenTTL {
		bad("notices.hold_ttl", "%v must be shorter than token_ttl %v", c.Notices.HoldTTL, c.Notices.TokenTTL)
	}
	if w := c.Notices.DedupWindow; w.Win < 0 || w.Bill < 0 || w.Loss < 0 || c.Notices.AckWait < 0 {
		bad("notices", "dedup_window and ack_wait must not be negative")
	}
	if c.Notices.DedupMaxEntries < 1024 {
		bad("notices.dedup_max_entries", "%d is below 1024", c.Notices.DedupMaxEntries)
	}
	if c.Budget.LeaseTTL <= c.Notices.HoldTTL+2*c.Budget.SyncPeriod {
		bad("budget.lease_ttl", "%v must exceed notices.hold_ttl %v plus two sync periods", c.Budget.LeaseTTL, c.Notices.HoldTTL)
	}
	if err := c.Privacy.options().Validate(); err != nil {
		bad("privacy", "%v", err)
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
