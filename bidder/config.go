package bidder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/privacy"
	"github.com/openbidder/openbidder/shading"
)

// ErrConfig wraps every configuration problem.
var ErrConfig = errors.New("bidder: invalid config")

//go:generate go run ./cmd/configdoc -out ../docs/config.md

// Config is configs/bidder.yaml. A zero field means the documented default
// (see Defaults); Validate rejects what cannot work. Every field needs a doc
// comment: docs/config.md is generated from them (make docs), and a test
// fails when the page, the struct and configs/bidder.yaml disagree.
type Config struct {
	// Listen is the exchange-facing address (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// AdminListen serves /metrics, /admin/* and /debug/pprof (default
	// 127.0.0.1:8081). A non-loopback address needs AdminPublic (the explicit
	// opt-in) and AdminToken.
	AdminListen string `yaml:"admin_listen"`
	// AdminPublic is the explicit opt-in to serve the admin listener on a
	// non-loopback address (an AdminToken is required as well).
	AdminPublic bool `yaml:"admin_public"`
	// AdminToken, when set, is the bearer token every admin request must
	// carry (Authorization: Bearer TOKEN). A secret source: a literal,
	// env:NAME or file:PATH (see secret()).
	AdminToken string `yaml:"admin_token"`
	// AdminTokens are more bearer tokens, each with a name: the admin API
	// records the name of the token behind each kill-switch change (who).
	// admin_token's name is "admin". Tokens are secret sources.
	AdminTokens []AdminTokenConfig `yaml:"admin_tokens"`
	// PublicURL is the base of notice and tracker URLs put in bids
	// (default http://<Listen>): http(s), no query or fragment, no quotes.
	// Serve it over https beyond a test setup: the pixel and click URLs in
	// the markup of a bid on an imp with secure=1 are built from it, and an
	// https page blocks or upgrades an http pixel, so impressions (and the
	// frequency caps they feed) go uncounted. With an http public_url on a
	// host other than loopback, imps with secure=1 get no bid (metric
	// imps_insecure_total), and the start logs a warning.
	PublicURL string `yaml:"public_url"`
	// SecureImpsOverHTTP bids on imps with secure=1 even when public_url
	// is http on a host other than loopback, their pixel, click and notice
	// URLs then http: for a demo without a TLS proxy (deploy/compose), or an
	// exchange known not to enforce secure=1. Off (the default), such an
	// imp gets no bid (x-nobid-reason insecure when no other imp bids).
	SecureImpsOverHTTP bool `yaml:"secure_imps_over_http"`
	// Seat is this bidder's seat id (seatbid.seat, matched against wseat/bseat).
	Seat string `yaml:"seat"`
	// InstanceID names this instance in bid ids, tokens and the ledger
	// (default: hostname-address-port from listen, the address left out for
	// every interface, hostname-pidN for port 0: the same across restarts,
	// so a graceful restart hands its charge levels and open holds to the
	// next process; set it where two hosts may share a hostname): 1-128
	// letters, digits, '.', '_' or '-'. Two
	// running processes must not share one: a process whose id another
	// still writes heartbeats under does not start (it retries for
	// budget.start_timeout, then exits), and a restart after a crash waits
	// three sync periods to see the old heartbeat stopped; two that still
	// meet each stop bidding (fail closed, /readyz 503) until the other
	// closes, or budget.lease_ttl after its last heartbeat.
	InstanceID string `yaml:"instance_id"`

	// CampaignsDir holds one YAML file per campaign (default
	// configs/campaigns; docs/campaigns.md).
	CampaignsDir string        `yaml:"campaigns_dir"`
	WatchEvery   time.Duration `yaml:"watch_every"` // campaign/model file poll period (default 2s, at least 10ms; negative disables; SIGHUP reloads campaigns too)

	Limits   LimitsConfig   `yaml:"limits"`
	Pricing  PricingConfig  `yaml:"pricing"`
	Currency CurrencyConfig `yaml:"currency"`
	Model    ModelConfig    `yaml:"model"`
	Notices  NoticeConfig   `yaml:"notices"`
	// Exchanges holds per-exchange rules, keyed by the name an exchange puts
	// in its bid URL: POST /openrtb2/bid?exchange=NAME. A request without a
	// name, or with one not listed, follows the defaults of each field.
	Exchanges map[string]ExchangeConfig `yaml:"exchanges"`
	Budget    BudgetConfig              `yaml:"budget"` // design and failure modes: docs/budget.md
	Privacy   PrivacyConfig             `yaml:"privacy"`
	Lifecycle LifecycleConfig           `yaml:"lifecycle"`
	Metrics   MetricsConfig             `yaml:"metrics"`
	Events    EventsConfig              `yaml:"events"`
	Runtime   RuntimeConfig             `yaml:"runtime"`
}

// RuntimeConfig tunes the Go runtime's memory use; the bidder applies it at
// start (ApplyRuntime). The GOGC and GOMEMLIMIT environment variables, when
// set, win over it.
type RuntimeConfig struct {
	// GCPercent is the collector's GOGC: how far, in percent of the live
	// heap, the heap may grow before the next collection (default 35; Go's
	// own default is 100). The bid path allocates almost nothing, so
	// collections stay rare (about one every 30 s at 10,000 requests/s); at
	// 10,000 campaigns (a live heap of about 95 MB) 35 kept the resident
	// size at most 251 MiB over 10 minutes of load, where 50 reached 260 MiB
	// and 100 reached 291 MiB (docs/benchmarks.md); the price is a slightly
	// longer tail (requests over 10 ms: 0.85% against 0.71% at 100). -1
	// turns the collector off.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimitMiB is a soft limit on the memory of the Go runtime
	// (GOMEMLIMIT), in MiB: near it the collector runs more often. 0 (the
	// default): none. Memory ONNX Runtime allocates is outside it.
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
}

// MetricsConfig shapes /metrics (docs/metrics.md).
type MetricsConfig struct {
	// CampaignSeries is how many campaigns get per-campaign series of their
	// own: those with the most spend, ties by id; the rest are summed under
	// campaign="other" (default 50; negative: none, every campaign in
	// "other").
	CampaignSeries int `yaml:"campaign_series"`
}

// AdminTokenConfig is one named admin bearer token.
type AdminTokenConfig struct {
	Name  string `yaml:"name"`  // letters, digits and . _ @ - (at most 64)
	Token string `yaml:"token"` // a secret source, at least 16 bytes
}

// EventsConfig is the event log: one JSON line per notice and tracker hit
// (win, bill, loss, impression, click; a replay is not logged again) for CTR
// feedback and audits. A bounded queue sits in front of the writer: when it
// is full, events are dropped and counted (openbidder_events_dropped_total),
// never waited for. The file is rotated by size; rotated files are named
// with their rotation time.
type EventsConfig struct {
	// Path is the file (default events.jsonl beside budget.store_dir, e.g.
	// data/events.jsonl); "off" writes nothing (events are still counted).
	Path string `yaml:"path"`
	// MaxSizeMB rotates the file when it would grow past this many
	// megabytes (default 100).
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxBackups is how many rotated files are kept (default 10; negative:
	// all of them).
	MaxBackups int `yaml:"max_backups"`
	// MaxAgeDays removes rotated files older than this many days (default
	// 0: no age limit).
	MaxAgeDays int `yaml:"max_age_days"`
	// Compress gzips rotated files.
	Compress bool `yaml:"compress"`
	// Queue is how many events wait for the writer before new ones are
	// dropped (default 65536).
	Queue int `yaml:"queue"`
}

// LifecycleConfig orders a graceful stop (SIGTERM): readiness turns 503,
// DrainDelay passes so load balancers stop sending, then the listener closes,
// in-flight requests finish, the budget flushes its ledger and returns its
// leases, all within ShutdownTimeout.
type LifecycleConfig struct {
	DrainDelay      time.Duration `yaml:"drain_delay"`      // readiness is 503 and requests are still answered this long (default 5s, at most 24h; negative: none)
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // bounds what follows the drain delay (default 30s, at most 1h)
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
	// CacheTTL is how long a decoded string is kept (default 1h;
	// negative: until the cache evicts it for another).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// RequirePurpose2: where GDPR applies, no bid at all (x-nobid-reason:
	// privacy) unless the TC string gives vendor_id a legal basis for TCF
	// purpose 2 (use limited data to select advertising: consent, or
	// legitimate interest), as TCF's policy asks of a registered vendor:
	// the request's IP, device and location are personal data there. Off
	// (the default), such a request still gets a contextual bid, with no
	// user-level data.
	RequirePurpose2 bool `yaml:"require_purpose2"`
	// AllowMissingDisclosedVendors: a TC string created or last updated
	// on or after 2026-02-28 without the Disclosed Vendors segment, mandatory
	// since TCF v2.3, is read by its core segment alone, as before v2.3.
	// Off (the default), such a string is malformed (gdpr_malformed): no
	// user-level data. A Disclosed Vendors segment that is there is always
	// honoured: where it does not list vendor_id, no user-level data.
	AllowMissingDisclosedVendors bool `yaml:"allow_missing_disclosed_vendors"`
}

func (p PrivacyConfig) options() privacy.Options {
	return privacy.Options{
		VendorID: p.VendorID, CacheEntries: p.CacheEntries, CacheTTL: p.CacheTTL, RequirePurpose2: p.RequirePurpose2,
		AllowMissingDisclosedVendors: p.AllowMissingDisclosedVendors,
	}
}

// LimitsConfig bounds a request's size and time.
type LimitsConfig struct {
	MaxBodyBytes   int           `yaml:"max_body_bytes"`  // largest body accepted, checked after gunzip too (default 262144, 256 KiB; at most 64 MiB)
	InternalBudget time.Duration `yaml:"internal_budget"` // time from arrival the bidder allows itself (default 8ms)
	NetworkMargin  time.Duration `yaml:"network_margin"`  // subtracted from tmax for the way back (default 15ms)
	DefaultTMax    time.Duration `yaml:"default_tmax"`    // when the request has no tmax (default 100ms, at most 10s)
	MinSlack       time.Duration `yaml:"min_slack"`       // answer 204 at once below this (default 1ms)
	MaxImps        int           `yaml:"max_imps"`        // imps considered per request (default 16); later imps are checked for errors and only their ids kept (an id repeated there refuses the earlier imp)
	// MinQty is the smallest imp.qty.multiplier bid on (DOOH: the people one
	// play reaches, which multiplies the charge; default 0.01, at most 1).
	// An imp whose multiplier is outside [min_qty, max_qty], negative or not
	// finite gets no bid, so an absurd or forged value can neither inflate
	// a hold nor shrink the charge of a play; an imp without qty, or with
	// multiplier 0, is one impression.
	MinQty float64 `yaml:"min_qty"`
	// MaxQty is the largest imp.qty.multiplier bid on (default 1000, at
	// least 1, at most 1e6).
	MaxQty float64 `yaml:"max_qty"`
	// ReadTimeout bounds reading a whole request, headers and body, from its
	// first byte (default 10 x default_tmax, 1s; at most 100s); past it the answer is 408
	// and the connection closes. A bid request is worthless after its tmax:
	// this leaves room for slow pixels and notices while a stalled or
	// trickling peer cannot hold a connection for long.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing an answer (default 10 x default_tmax, 1s; at most 100s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout is the wait for the next request on a connection, a new
	// one included (default 60s, at most 1h: exchanges keep warm connections, and may
	// open them ahead of traffic). A connection closed at it gets no answer,
	// a new one that never sent a request too. The admin listener closes a
	// connection idle this long after an answer too.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConns is the most connections the bid listener holds open at once
	// (default 0: the process's file descriptor limit less a reserve of a
	// quarter of it, at least 1,024 or half: the embedded NATS store, the
	// admin listener and files need theirs). At it, a new connection closes
	// one that serves nothing (openbidder_connections_evicted_total): idle
	// and never a bid request's first, then one reading a request for over
	// 50 ms, an exchange's idle connection last; never a request in flight.
	// With none, the new one is closed as soon as it is accepted
	// (openbidder_connections_refused_total). Past
	// half of it, a connection's wait for its next request (a new one's
	// first included) is read_timeout, not idle_timeout. Idle connections
	// held up to the descriptor limit made the embedded store fail its file
	// writes for good: no notice was charged again until a restart. A
	// max_conns above that default is capped to it, with a warning at start
	// and from -check-config.
	MaxConns int `yaml:"max_conns"`
	// Admission is the adaptive concurrency limit (admission.go).
	Admission AdmissionConfig `yaml:"admission"`
	// BidSources lists the addresses (IPs or CIDR prefixes, e.g. the
	// exchanges' egress ranges) allowed to POST bid requests; a request from
	// any other gets 403 before its body is parsed, counted in
	// openbidder_bid_source_refused_total. Empty (the default) allows every
	// source, and is refused unless listen is a loopback address: whoever
	// reaches the listener gets bids, holds budget with them and gets
	// valid win and billing URLs. 0.0.0.0/0 and ::/0 say "any source" on
	// purpose (behind a network ACL; a warning at start). The source is the
	// TCP peer: behind an HTTP proxy, filter there.
	// Notices, pixels and clicks are not filtered (browsers send them).
	BidSources []string `yaml:"bid_sources"`
}

// AdmissionConfig bounds the adaptive concurrency limit that sheds bid
// requests (204, reason overload) when the bidder falls behind.
type AdmissionConfig struct {
	Disable  bool          `yaml:"disable"`   // true: no limit, every request is worked on
	MinLimit int           `yaml:"min_limit"` // the limit never goes below this (default 8)
	MaxLimit int           `yaml:"max_limit"` // nor above this, where it starts (default 1024)
	Target   time.Duration `yaml:"target"`    // latency target, arrival to answer (default internal_budget / 2)
}

// PricingConfig steers bid prices.
type PricingConfig struct {
	// MaxScoredPerImp caps the candidates scored per imp, best possible bid
	// first (default 8; see docs/architecture.md for why).
	MaxScoredPerImp int `yaml:"max_scored_per_imp"`
	// FirstPriceShade multiplies the value in first-price auctions (at=1)
	// where no learned curve applies: shading off, or a cold segment.
	// 1 (the default) bids the full value.
	FirstPriceShade float64 `yaml:"first_price_shade"`
	// Shading learns first-price win curves from notices and bids the
	// price that maximises expected surplus (docs/shading.md).
	Shading ShadingConfig `yaml:"shading"`
	// ExhaustiveScan gates every eligible candidate of an imp instead of
	// stopping once nothing left can beat the kept ones: the same bids,
	// slower; per-campaign no-bid counters then count every eligible
	// candidate. For checking the ranked walk (bench agreement tests).
	ExhaustiveScan bool `yaml:"exhaustive_scan"`
	// RevealPCTR writes the model's predicted click-through rate into each
	// bid as bid.ext.pctr (default false; exchanges.NAME.pctr per
	// exchange). Beside the price it gives an exchange a CPC campaign's
	// bid per click (price / pCTR / 1000 in a second-price auction) and
	// the model's view of each user: enough to value any later request of
	// the campaign and floor it just under that value, taking what shading
	// saves (an outside audit floored first-price requests at 99% of value;
	// a second-price answer gives the value of that one request anyway).
	// For a simulator or a sandbox exchange: the simulator's calibration
	// report reads it.
	RevealPCTR bool `yaml:"reveal_pctr"`
}

// ShadingConfig is pricing.shading: first-price bid shading learned per
// inventory segment from win and loss notices (shading package). Off in
// second-price auctions whatever it says.
type ShadingConfig struct {
	// Enabled turns shading on: at=1 bids the price maximising (value -
	// price) x P(win | price) on segments with a warm curve (default false:
	// value x first_price_shade).
	Enabled bool `yaml:"enabled"`
	// Segments bounds the curves kept, placement and publisher keys
	// together (default 65536, about 3 MB).
	Segments int `yaml:"segments"`
	// MinObservations is how many notices a curve needs before it prices
	// bids (default 50); a segment with no such curve bids unshaded.
	MinObservations int `yaml:"min_observations"`
	// Memory is how many recent notices a curve averages over (default
	// 2000).
	Memory int `yaml:"memory"`
	// Idle is how long a curve without notices keeps its slot against a new
	// segment when the table is full (default 1h).
	Idle time.Duration `yaml:"idle"`
	// PriorSigma is a new curve's spread in ln price (default 1).
	PriorSigma float64 `yaml:"prior_sigma"`
}

func (c ShadingConfig) options() shading.Config {
	return shading.Config{Segments: c.Segments, MinObservations: c.MinObservations, Memory: c.Memory,
		Idle: c.Idle, PriorSigma: c.PriorSigma}
}

// minRate and maxRate bound a currency's rate against the base, and
// maxRate the ratio of any two rates of the table: the currencies farthest
// apart today (an ounce of gold and the Iranian rial) differ by a few 1e9.
const minRate, maxRate = 1e-10, 1e10

// rateSpan is the least and the greatest of the positive, finite rates,
// the base's 1 among them.
func rateSpan(rates map[string]float64) (lo, hi float64) {
	lo, hi = 1, 1
	for _, r := range rates {
		if r > 0 && !math.IsInf(r, 0) {
			lo, hi = min(lo, r), max(hi, r)
		}
	}
	return lo, hi
}

// CurrencyConfig is the rate table: units of Base per one unit of each
// currency. Each campaign budgets and bids in its own currency; a bid is
// answered in a currency of the request's cur list. A floor or bid in a
// currency not in the table means no bid. A floor without bidfloorcur is in
// USD (OpenRTB's default), whatever Base is: without a USD rate such a floor
// means no bid. The table is read at start: a reload (SIGHUP) does not
// change it, a restart does (a notice settles at the rate of its bid, which
// its signed token carries).
type CurrencyConfig struct {
	Base  string             `yaml:"base"`  // the currency the rates are quoted in (default USD); it is not the campaigns' currency
	Rates map[string]float64 `yaml:"rates"` // ISO 4217 code: units of base per unit (base itself is always 1), between 1e-10 and 1e10, no two more than 1e10 apart
}

// ModelConfig names the served models.
type ModelConfig struct {
	// GBDT is the GBDT manifest: the fallback scorer, used when the ONNX
	// model is off, not loaded or cannot answer in time. Two are bundled:
	// configs/models/gbdt.manifest.json (the default: trained on clicks on
	// its own) and configs/models/gbdt_distilled.manifest.json (the ONNX
	// model's wide table, summed in Go without ONNX Runtime, plus trees
	// trained on the ONNX model's predictions, so falling back moves bids
	// far less; its measured bid change is in configs/models/DISTILL.md).
	GBDT     string `yaml:"gbdt"`
	ONNX     string `yaml:"onnx"`      // ONNX manifest (default configs/models/mlp.manifest.json; provider: off scores with GBDT only)
	ONNXInt8 string `yaml:"onnx_int8"` // the int8 variant's manifest (default configs/models/mlp_int8.manifest.json)
	// Variant picks the ONNX manifest served: "fp32" (the default: onnx) or
	// "int8" (onnx_int8: the same weights with the wide table stored as int8,
	// ctr/train/compact.py; docs/models.md, "Compact variant").
	Variant     string        `yaml:"variant"`
	ONNXLibrary string        `yaml:"onnx_library"` // path of libonnxruntime.so.1 (default lib/onnxruntime/libonnxruntime.so.1)
	Provider    string        `yaml:"provider"`     // ONNX execution provider: auto, cuda, cpu, or off for GBDT only (default auto)
	CUDADevice  int           `yaml:"cuda_device"`  // GPU ordinal the CUDA provider runs on (default 0; docs/gpu.md)
	MaxBatch    int           `yaml:"max_batch"`    // most rows in one ONNX run; requests queued during a run form the next (default 64)
	MaxWait     time.Duration `yaml:"max_wait"`     // hold a lone request this long for company; default 0: never wait (> 0 is for a GPU)
	// Shadow names a second model's manifest (gbdt or onnx) scored off the
	// bid path on sampled requests, for comparison in /metrics.
	Shadow string `yaml:"shadow"`
	// RowLog logs the feature rows of a sample of bids for retraining
	// (rowlog.go; off without a path).
	RowLog RowLogConfig `yaml:"row_log"`
}

// ONNXManifest is the ONNX manifest Variant selects.
func (m *ModelConfig) ONNXManifest() string {
	if m.Variant == "int8" {
		return m.ONNXInt8
	}
	return m.ONNX
}

// RowLogConfig is model.row_log: the bidder writes the feature row it scored
// for a sample of its bids (binary records, rotated files), joined later
// with the impression and click events to retrain (ctr/train/retrain.py).
type RowLogConfig struct {
	Path     string  `yaml:"path"`      // file to write ("" = off); rotated files get .1, .2, ...
	Sample   float64 `yaml:"sample"`    // share of bids logged, in (0, 1] (default 1)
	MaxBytes int64   `yaml:"max_bytes"` // rotate when the file would pass this (default 64 MiB)
	Backups  int     `yaml:"backups"`   // rotated files kept (default 8)
	Queue    int     `yaml:"queue"`     // records waiting for the writer; more are dropped and counted (default 4096)
}

// NoticeConfig controls notice URLs and what they charge.
type NoticeConfig struct {
	// Key signs and verifies notice tokens (at least 16 bytes; a secret
	// source: a literal, env:NAME or file:PATH). Set this or keys, not both;
	// with neither, the key in KeyFile is used, generated at first start.
	// Instances sharing a budget store need the same key.
	Key string `yaml:"key"`
	// Keys is the rotation form of Key: the first signs, every one verifies
	// (the current key, then previous ones); each a secret source. Several
	// instances rotate in two rolling steps: [old, new] on every one, then
	// [new, old]; an instance that does not know a key yet refuses (403,
	// uncharged) the notices of bids another signed with it.
	Keys []string `yaml:"keys"`
	// KeyFile keeps the generated key (default: notice.key beside
	// budget.store_dir, e.g. data/notice.key; mode 0600).
	KeyFile string `yaml:"key_file"`
	// ChargeOn is "billing" (the default: a win notice charges
	// provisionally, the burl settles the charge, a loss before the burl
	// reverses it) or "win" (nurl charges; a burl after it changes nothing).
	ChargeOn string `yaml:"charge_on"`
	// TestRequests is what a test-mode request (OpenRTB test=1) gets:
	// "billable" (the default: bid like a live one, its bid holds and its
	// notices charge, so no ad an exchange shows goes untracked whatever
	// the request says), "free" (bid, but nothing held and its notices
	// answered without charge, for an exchange's integration: the notice
	// token records it) or "nobid" (204, no-bid reason test_request).
	TestRequests string        `yaml:"test_requests"`
	TokenTTL     time.Duration `yaml:"token_ttl"` // how long a notice is accepted (default 24h, at most 720h)
	HoldTTL      time.Duration `yaml:"hold_ttl"`  // how long a bid's hold lives (default 2m, at least 1s); an imp whose exp is longer gets no bid, so DOOH exchanges that send hours need a longer one (and budget.max_holds over their bid rate times it)
	// AckWait bounds how long a charging notice waits for its ledger entry
	// to be durable; then it is answered 503 and the entry stays queued for
	// the exchange's retry (default 2s, 10ms to 1m).
	AckWait time.Duration `yaml:"ack_wait"`
	// ForwardTimeout bounds the wait for the instance that placed the bid
	// to settle a notice forwarded to it; without an answer the notice is
	// settled here (default 1s; negative: never forward).
	ForwardTimeout time.Duration `yaml:"forward_timeout"`
	// DedupWindow is how long the de-duplication tier keeps an impression
	// after a notice of each kind (default win 15m, bill 2h, loss 15m; a
	// win is kept as long as a bill may come). The ledger
	// stream's duplicate window is the longest of them (an instance that
	// starts never shrinks it: the longest any instance asked for), and a
	// win or billing notice later after its bid than that longest window is
	// refused (403) and not charged: a replay of it could no longer be
	// recognised. An imp whose exp (the seconds its impression may come
	// after the auction) is longer than this longest window, or than
	// token_ttl, gets no bid: its billing notice could not charge.
	DedupWindow DedupWindowConfig `yaml:"dedup_window"`
	// DedupMaxEntries bounds the impressions kept (default 4194304: at most
	// ~224 MB, 40 bytes each at a load of at most 3/4); the oldest go first.
	DedupMaxEntries int `yaml:"dedup_max_entries"`
	// TrackerDedupEntries bounds the impression pixels and clicks
	// remembered so that a replayed tracker URL is answered but not counted
	// again against a frequency cap or in the impression and click series
	// (default 65536: 21 MB of heap when full, measured; 74 MB for 262144;
	// a bounded cache, so a replay of a tracker it no longer holds counts
	// again, while one replayed in a loop stays held; plus 512 KiB for the
	// last 65,536 keys, which catch replays racing one another; -1: none
	// remembered).
	TrackerDedupEntries int `yaml:"tracker_dedup_entries"`
	// FreqPendingTTL is how long a bid counts against its campaign's
	// frequency cap for the user before its impression pixel or loss notice
	// ends the count (default 30s; negative: only impressions count, and a
	// user's concurrent requests can each bid up to the cap). The count is
	// kept by the instance that placed the bid: a pixel or loss notice that
	// reaches another instance does not end it, so it lasts the whole TTL.
	FreqPendingTTL time.Duration `yaml:"freq_pending_ttl"`
	// FreqMaxEntries bounds the (user, campaign) pairs of frequency-capped
	// campaigns kept, each for its cap's window (default 4194304: 403 MB of
	// heap when full, about 96 bytes each, measured; every instance keeps
	// the whole fleet's impressions). When it is full a new entry takes the
	// place of the one whose counting ends first (of a sample of 16): that
	// user's count for the campaign starts over, so they may see it up to
	// its cap again (counted in openbidder_budget_freq_table_evictions_total
	// when the dropped entry was still counting). Size it for the users the
	// longest cap window brings times the capped campaigns they see.
	FreqMaxEntries int `yaml:"freq_max_entries"`
	// Sources lists the addresses (IPs or CIDR prefixes: the exchanges'
	// notice senders) allowed to fire win, billing and loss notices; one from
	// any other gets 403 and changes nothing, counted in
	// openbidder_notice_source_refused_total. Empty (the default) allows
	// every source: the notice price is not signed, so whoever holds a
	// notice URL before the exchange fires it (a billing URL fired from the
	// device, say) may fire it first at any price from the floor to the bid
	// and fix the charge there: at the floor the impression is
	// under-counted, at the bid the campaign pays its whole bid for an
	// impression that cleared lower (docs/budget.md, "The level rule"). Set it where
	// every exchange fires its nurl, burl and lurl from its servers. One
	// list for every exchange (a notice token does not name its exchange).
	// Impression pixels and clicks are never filtered (browsers send them).
	// The source is the TCP peer: behind an HTTP proxy, filter there.
	Sources []string `yaml:"sources"`
}

// DedupWindowConfig is notices.dedup_window; each window is at most 720h.
type DedupWindowConfig struct {
	// Win keeps an impression's state after a win notice (default 15m), and
	// at least as long as its bill may come: max(win, bill). A later bill
	// of a provisional win may still raise its charge, and a replayed win
	// or (on a charge_on: win exchange) its bill after it must change nothing: only
	// its kept level stops that from charging the whole price again.
	Win time.Duration `yaml:"win"`
	// Bill keeps it after a billing notice (default 2h; billing can come
	// long after the win, video completions for one).
	Bill time.Duration `yaml:"bill"`
	// Loss keeps it after a loss notice (default 15m).
	Loss time.Duration `yaml:"loss"`
}

// ExchangeConfig is one exchange's rules.
type ExchangeConfig struct {
	// Sources is limits.bid_sources for requests naming this exchange
	// (default limits.bid_sources): with it set, no other source can claim
	// this exchange's name and rules.
	Sources []string `yaml:"sources"`
	// ChargeOn is "billing" or "win" for this exchange; empty means
	// notices.charge_on.
	ChargeOn string `yaml:"charge_on"`
	// TestRequests is notices.test_requests for this exchange's requests
	// ("billable", "free" or "nobid"); empty means notices.test_requests.
	// Set free only for an exchange that never sends live auctions as
	// test=1 (their ads would run without charging any budget), and with
	// its sources set: anyone who can post as it gets free ads (the bidder
	// warns at start about a free exchange that any source may post as).
	TestRequests string `yaml:"test_requests"`
	// Seat is the buyer seat id this exchange knows the bidder by:
	// seatbid.seat, and the seat wseat, bseat and deal wseat are checked
	// against (default: seat).
	Seat string `yaml:"seat"`
	// Currency is the response currency this exchange prefers: bids are in
	// it when the request allows any currency or lists it, else in the first
	// currency the request lists that currency.rates knows. Without it a
	// request that lists no currency is answered in USD, OpenRTB's default,
	// whatever currency.base is: set it for an exchange that takes another
	// currency without saying so. It must be in currency.rates.
	Currency string `yaml:"currency"`
	// FloorCurrency is the currency of this exchange's floors that name
	// none: imp.bidfloor, a deal's bidfloor and their duration floors
	// without bidfloorcur (default: USD, as OpenRTB says). Set it for an
	// exchange that sends floors in its own currency without saying so: a
	// JPY floor of 100 read as USD 100 leaves every imp unbid, and a EUR
	// floor read as USD bids under it. It must be in currency.rates.
	FloorCurrency string `yaml:"floor_currency"`
	// DefaultTMax replaces limits.default_tmax for this exchange's requests
	// that carry no tmax (default: limits.default_tmax; at most 10s).
	DefaultTMax time.Duration `yaml:"default_tmax"`
	// NBR answers a no-bid with 200 and {"id":"<request id>","nbr":N}, an
	// OpenRTB 2.6 no-bid reason code (README.md has the mapping),
	// instead of 204 (default false). Requests answered before parsing
	// (overload, or all bidding paused) still get 204; 400 and 413 stay as
	// they are.
	NBR bool `yaml:"nbr"`
	// PCTR is pricing.reveal_pctr for this exchange's bids (unset: that
	// setting): bid.ext.pctr, the model's predicted click-through rate.
	PCTR *bool `yaml:"pctr"`
	// Macros are the auction macros this exchange substitutes in notice
	// URLs.
	Macros MacrosConfig `yaml:"macros"`
}

// MacrosConfig names the macros an exchange substitutes in nurl, burl and
// lurl. The clearing price must arrive as a decimal CPM (encrypted prices
// are not supported).
type MacrosConfig struct {
	// Price is put in each notice URL as p= (default ${AUCTION_PRICE}).
	Price string `yaml:"price"`
	// Loss is put in lurl as r= (default ${AUCTION_LOSS}); "none": the
	// exchange substitutes no loss reason and lurl carries no r=.
	Loss string `yaml:"loss"`
	// MinToWin is put in the shading notices of first-price bids as m=
	// (default ${AUCTION_MIN_TO_WIN}); "none": not asked, so the curves
	// learn from outcomes (a win, a loss to a higher bid; an m= added to
	// such a bid's notice is not read: its g= says it asked none). For an
	// exchange whose minimum-to-win reports track the bid (its own clearing
	// price reported as the minimum to win in a first-price auction): each
	// such report raises the learned price a step, an outside audit's 20,000
	// of them from 5.1 to 9.2 CPM against a value of 10 (docs/shading.md).
	MinToWin string `yaml:"min_to_win"`
}

// BudgetConfig configures the budget store (NATS JetStream).
type BudgetConfig struct {
	// NATSURLs connects to an external cluster; empty runs NATS embedded.
	NATSURLs []string `yaml:"nats_urls"`
	// StoreDir is the embedded server's JetStream directory (default data/nats).
	// One process at a time: a second one on the same directory (a restart
	// that did not wait for the old process) fails to start after 2 s.
	StoreDir string `yaml:"store_dir"`
	// EmbeddedListen exposes the embedded server to other instances
	// (host:port); empty keeps it in-process only. Without auth (allowed on
	// loopback) every process on the host can settle notices and write
	// budget records through it: a warning at start.
	EmbeddedListen string `yaml:"embedded_listen"`
	// EmbeddedCluster joins the embedded server to a NATS cluster of other
	// instances' embedded servers (route listener and seed routes).
	EmbeddedCluster ClusterConfig `yaml:"embedded_cluster"`
	// Replicas of the budget KV buckets, ledger stream and levels object
	// store (default 1; use 3 on a cluster of three or more nodes).
	Replicas int `yaml:"replicas"`
	// LeaseTTL is how long a lease record lives without renewal: a crashed
	// instance's lease returns to the pool after it (default 5m; must exceed
	// notices.hold_ttl plus two sync periods; at most 24h).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// StartTimeout bounds the wait for the budget store at start (a cluster
	// electing its leader, NATS restarting): default 60s.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// SyncPeriod is how often spend, holds and leases are synchronised with
	// the store and pacing is updated (default 1s, at least 100ms). Another
	// instance reclaims a crashed one's lease max(2 x sync_period, 2s) after
	// it lapsed: the clock skew between instances must stay under that.
	SyncPeriod time.Duration `yaml:"sync_period"`
	// MaxHolds bounds the bids whose holds are open at once (default 4194304,
	// 1024 to 67108864). A bid's hold stays open until its loss notice, or
	// notices.hold_ttl (a won and billed bid's too, for its later notices):
	// without loss notices the table sustains at most max_holds / hold_ttl
	// bids a second (about 35,000 at the 2m default, 1,165 at 1h); past it
	// bids are refused as no-bid reason budget, counted in
	// openbidder_budget_hold_table_full_total. Memory follows the holds open
	// at once (32 bytes each, in chunks), not this bound. A next process
	// with another value reopens the last one's open holds under new ids:
	// their notices are charged as late.
	MaxHolds int `yaml:"max_holds"`
	// Auth is this instance's NATS identity: with nats_urls, what it presents
	// to the cluster; embedded, also the one identity the embedded server
	// accepts (required when embedded_listen is not loopback).
	Auth NATSAuthConfig `yaml:"auth"`
	// TLS: with nats_urls, the client side (ca_file verifies the servers,
	// cert_file/key_file a client certificate); embedded, the client
	// listener's certificate (ca_file makes client certificates mandatory).
	TLS TLSConfig `yaml:"tls"`
}

// NATSAuthConfig is one NATS identity: user/password, an nkey seed, or (an
// external cluster in operator mode) a credentials file. Password and
// NKeySeed are secret sources.
type NATSAuthConfig struct {
	User        string `yaml:"user"`        // user name (with password)
	Password    string `yaml:"password"`    // a secret source: literal, env:NAME or file:PATH
	NKeySeed    string `yaml:"nkey_seed"`   // an nkey user seed (SU...), a secret source
	Credentials string `yaml:"credentials"` // path of a .creds file (an external cluster in operator mode)
}

// TLSConfig names PEM files.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`   // CA certificates (PEM) the peer's certificate is checked against
	CertFile string `yaml:"cert_file"` // this side's certificate (PEM)
	KeyFile  string `yaml:"key_file"`  // its private key (PEM)
}

// Overrides are command-line flags; a non-empty one wins over the file.
type Overrides struct {
	Listen      string
	AdminListen string
	PublicURL   string
}

// ClusterConfig is the embedded NATS server's cluster membership.
type ClusterConfig struct {
	Name   string   `yaml:"name"`   // cluster name, the same on every node
	Listen string   `yaml:"listen"` // host:port of the route listener
	Routes []string `yaml:"routes"` // routes to every node, nats-route://host:port each
	// Auth authenticates routes (user and password, the same on every node;
	// required when listen is not loopback).
	Auth NATSAuthConfig `yaml:"auth"`
	// TLS of the routes is mutual: each node presents cert_file and
	// verifies the others against ca_file.
	TLS TLSConfig `yaml:"tls"`
}

// LoadConfig reads a config file, applies flag overrides and defaults, and
// validates the result.
func LoadConfig(path string, o Overrides) (*Config, error) {
	c, err := parseConfig(path, o)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// CheckConfigFile is -check-config: the config file's problems and, once it
// decodes, what CheckConfig finds in the campaigns, models, secrets and TLS
// files it names, all together. A file that does not decode (YAML, a wrong
// type, an unknown key) gets its decoding problems only, as campaign files
// do; a config that decodes but does not validate is still checked, so one
// run lists every problem.
func CheckConfigFile(path string, o Overrides) error {
	c, err := parseConfig(path, o)
	if err != nil {
		return err
	}
	var errs []error
	if err := c.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	if err := CheckConfig(c); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseConfig decodes the file strictly, applies the overrides and the
// defaults; it does not validate.
func parseConfig(path string, o Overrides) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := campaigns.NotUTF8(data); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file, or one of comments only, is a config of defaults
	// (every field is optional); the decoder reports it as io.EOF. Keys
	// written twice are looked for first, in one pass: the decoder's own
	// check makes a message for every equal pair of a mapping's keys.
	err = campaigns.RepeatedKeys(data)
	if err == nil {
		err = dec.Decode(&c)
	}
	if err == nil {
		// A second document was ignored without a word: an admin_token
		// appended after "---" left the admin listener open.
		if err2 := campaigns.SecondDocument(dec); err2 != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err2)
		}
		err = campaigns.NullItems(data) // yaml.v3 drops a null list item
	}
	if err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
		}
		// A wrong type or an unknown key: each named by its field path, as
		// campaign files' problems are.
		var errs []error
		for _, p := range campaigns.DecodeProblems(path, data, err) {
			errs = append(errs, fmt.Errorf("%w: %s", ErrConfig, p))
		}
		return nil, errors.Join(errs...)
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
	if o.PublicURL != "" {
		c.PublicURL = o.PublicURL
	}
	c.Defaults()
	return &c, nil
}

// idChars maps s into instanceRE's alphabet ('-' for anything else).
func idChars(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '.' || r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '-'
	}, s)
}

// maxDefaultTMax is the longest limits.default_tmax accepted.
const maxDefaultTMax = 10 * time.Second

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
		h = idChars(h)
		// The listen address, not the pid: one new at every start meant
		// no restart found its predecessor's snapshot (charge levels, open
		// holds), and an outside audit's graceful restart over-counted
		// 82,500 for 45,000 billed with the shipped configs. No two
		// processes of a host listen on one address at once; the host part
		// stays in unless it is every interface (127.0.0.1:8080 and
		// 10.1.2.3:8080 are two processes). A port chosen by the kernel
		// (0) is new at every start anyway: the pid then.
		host, port, err := net.SplitHostPort(c.Listen)
		switch {
		case err != nil || port == "" || port == "0":
			c.InstanceID = fmt.Sprintf("%s-pid%d", h, os.Getpid()) // "pid": never a port's id (an outside review)
		case host == "" || host == "0.0.0.0" || host == "::":
			c.InstanceID = h + "-" + port
		default:
			c.InstanceID = h + "-" + idChars(host) + "-" + port
		}
	}
	def(&c.CampaignsDir, "configs/campaigns")
	if c.Runtime.GCPercent == 0 {
		c.Runtime.GCPercent = 35
	}
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
	if l.MinQty == 0 {
		l.MinQty = 0.01
	}
	if l.MaxQty == 0 {
		l.MaxQty = 1000
	}
	if l.DefaultTMax <= maxDefaultTMax {
		// Derived from an out-of-range default_tmax, they would be
		// reported out of range too, though never set (an outside audit).
		defDur(&l.ReadTimeout, 10*l.DefaultTMax)
		defDur(&l.WriteTimeout, 10*l.DefaultTMax)
	}
	defDur(&l.IdleTimeout, time.Minute)
	if l.Admission.MinLimit == 0 {
		l.Admission.MinLimit = 8
	}
	if l.Admission.MaxLimit == 0 {
		l.Admission.MaxLimit = 1024
	}
	defDur(&l.Admission.Target, l.InternalBudget/2)
	if c.Pricing.MaxScoredPerImp == 0 {
		c.Pricing.MaxScoredPerImp = 8
	}
	if c.Pricing.FirstPriceShade == 0 {
		c.Pricing.FirstPriceShade = 1
	}
	sh, sd := &c.Pricing.Shading, shading.Defaults
	if sh.Segments == 0 {
		sh.Segments = sd.Segments
	}
	if sh.MinObservations == 0 {
		sh.MinObservations = sd.MinObservations
	}
	if sh.Memory == 0 {
		sh.Memory = sd.Memory
	}
	defDur(&sh.Idle, sd.Idle)
	if sh.PriorSigma == 0 {
		sh.PriorSigma = sd.PriorSigma
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
	def(&c.Model.ONNXInt8, "configs/models/mlp_int8.manifest.json")
	def(&c.Model.Variant, "fp32")
	// The row log's defaults (used only with a path; the config reference
	// shows them either way).
	if r := &c.Model.RowLog; r.Sample == 0 {
		r.Sample = 1
	}
	if r := &c.Model.RowLog; r.MaxBytes == 0 {
		r.MaxBytes = 64 << 20
	}
	if r := &c.Model.RowLog; r.Backups == 0 {
		r.Backups = 8
	}
	if r := &c.Model.RowLog; r.Queue == 0 {
		r.Queue = 4096
	}
	def(&c.Model.ONNXLibrary, "lib/onnxruntime/libonnxruntime.so.1")
	def(&c.Model.Provider, "auto")
	if c.Model.MaxBatch == 0 {
		c.Model.MaxBatch = 64
	}
	def(&c.Notices.ChargeOn, "billing")
	def(&c.Notices.TestRequests, "billable")
	defDur(&c.Notices.TokenTTL, 24*time.Hour)
	defDur(&c.Notices.HoldTTL, 2*time.Minute)
	defDur(&c.Notices.AckWait, 2*time.Second)
	defDur(&c.Notices.ForwardTimeout, time.Second)
	defDur(&c.Notices.FreqPendingTTL, 30*time.Second)
	defDur(&c.Notices.DedupWindow.Win, 15*time.Minute)
	defDur(&c.Notices.DedupWindow.Bill, 2*time.Hour)
	defDur(&c.Notices.DedupWindow.Loss, 15*time.Minute)
	if c.Notices.TrackerDedupEntries == 0 {
		c.Notices.TrackerDedupEntries = 1 << 16
	}
	if c.Notices.FreqMaxEntries == 0 {
		c.Notices.FreqMaxEntries = 4 << 20
	}
	if c.Notices.DedupMaxEntries == 0 {
		c.Notices.DedupMaxEntries = 4 << 20
	}
	def(&c.Budget.StoreDir, "data/nats")
	defDur(&c.Budget.LeaseTTL, 5*time.Minute)
	defDur(&c.Budget.SyncPeriod, time.Second)
	if c.Budget.MaxHolds == 0 {
		c.Budget.MaxHolds = 1 << 22
	}
	defDur(&c.Budget.StartTimeout, time.Minute)
	if c.Budget.Replicas == 0 {
		c.Budget.Replicas = 1
	}
	if c.Privacy.CacheEntries == 0 {
		c.Privacy.CacheEntries = privacy.DefaultCacheEntries
	}
	defDur(&c.Privacy.CacheTTL, privacy.DefaultCacheTTL)
	if c.Notices.KeyFile == "" {
		c.Notices.KeyFile = filepath.Join(filepath.Dir(c.Budget.StoreDir), "notice.key")
	}
	if c.Metrics.CampaignSeries == 0 {
		c.Metrics.CampaignSeries = 50
	}
	defDur(&c.Lifecycle.DrainDelay, 5*time.Second)
	defDur(&c.Lifecycle.ShutdownTimeout, 30*time.Second)
	def(&c.Events.Path, filepath.Join(filepath.Dir(c.Budget.StoreDir), "events.jsonl"))
	if c.Events.MaxSizeMB == 0 {
		c.Events.MaxSizeMB = 100
	}
	if c.Events.MaxBackups == 0 {
		c.Events.MaxBackups = 10
	}
	if c.Events.Queue == 0 {
		c.Events.Queue = 65536
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...)))
	}
	if host, _, err := splitListen(c.Listen); err != nil {
		bad("listen", "%v", err)
	} else if !isLoopback(host) && len(c.Limits.BidSources) == 0 {
		// An outside audit posted bids from anywhere to the open default:
		// 10 s of them held every campaign's daily budget for hold_ttl,
		// and their win and billing URLs charge it.
		bad("limits.bid_sources", "listen %q is not a loopback address: name the exchanges' addresses or egress ranges (or 0.0.0.0/0 and ::/0 to take bid requests from any source, behind a network ACL); unset, whoever reaches the port gets bids, holds budget with them and gets valid win and billing URLs", c.Listen)
	}
	if host, port, err := splitListen(c.AdminListen); err != nil {
		bad("admin_listen", "%v", err)
	} else if !isLoopback(host) && (!c.AdminPublic || c.AdminToken == "" && len(c.AdminTokens) == 0) {
		bad("admin_listen", "%q is not a loopback address: exposing it needs admin_public: true and an admin_token (or admin_tokens)", c.AdminListen)
	} else if lh, lp, err := splitListen(c.Listen); err == nil && port != 0 && port == lp && (host == lh || anyHost(host) || anyHost(lh)) {
		bad("admin_listen", "%q is listen's address (%q): the two listeners need different ports", c.AdminListen, c.Listen)
	}
	if c.WatchEvery > 0 && c.WatchEvery < 10*time.Millisecond {
		// An outside audit: 1ns kept an idle bidder on 1.86 of 2 cores.
		bad("watch_every", "%v is under 10ms (negative disables the watch)", c.WatchEvery)
	}
	if c.Budget.MaxHolds < 1024 || c.Budget.MaxHolds > 1<<26 {
		bad("budget.max_holds", "%d is outside 1024..67108864", c.Budget.MaxHolds)
	}
	if c.Budget.SyncPeriod < 100*time.Millisecond {
		bad("budget.sync_period", "%v is under 100ms", c.Budget.SyncPeriod)
	}
	if !instanceRE.MatchString(c.InstanceID) {
		// It is written as is into every bid id (a quote broke every
		// response's JSON) and must fit a notice token's id (255 bytes).
		bad("instance_id", "%q must be 1-128 letters, digits, '.', '_' or '-'", c.InstanceID)
	}
	errs = append(errs, c.validateAdminTokens()...)
	if !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		bad("public_url", "%q must start with http:// or https://", c.PublicURL)
	} else if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		!urlTextRE.MatchString(c.PublicURL) {
		// It is written as is into nurl/burl/lurl (JSON) and the markup's
		// trackers, with the notice path and its ?t= after it.
		bad("public_url", "%q must be an absolute URL without a query or fragment, in printable ASCII without quotes, '\\', '<', '>' or spaces", c.PublicURL)
	}
	if c.Runtime.GCPercent < -1 {
		bad("runtime.gc_percent", "%d: want a percentage, or -1 for no collection", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimitMiB < 0 {
		bad("runtime.memory_limit_mib", "%d is negative", c.Runtime.MemoryLimitMiB)
	}
	l := c.Limits
	if l.MaxBodyBytes < 1024 {
		bad("limits.max_body_bytes", "%d is below 1024", l.MaxBodyBytes)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"limits.internal_budget", l.InternalBudget}, {"limits.network_margin", l.NetworkMargin},
		{"limits.min_slack", l.MinSlack}, {"limits.default_tmax", l.DefaultTMax}} {
		if d.v < 0 {
			bad(d.key, "%v is negative", d.v)
		}
	}
	if l.MaxImps < 1 {
		bad("limits.max_imps", "%d must be at least 1", l.MaxImps)
	}
	if !(l.MinQty > 0 && l.MinQty <= 1 && l.MaxQty >= 1 && l.MaxQty <= 1e6) {
		bad("limits", "min_qty %v and max_qty %v must satisfy 0 < min_qty <= 1 <= max_qty <= 1e6", l.MinQty, l.MaxQty)
	}
	if l.MaxConns < 0 {
		bad("limits.max_conns", "%d is negative", l.MaxConns)
	}
	if a := l.Admission; a.MinLimit < 1 || a.MaxLimit < a.MinLimit || a.Target <= 0 {
		bad("limits.admission", "min_limit %d, max_limit %d, target %v: need 1 <= min_limit <= max_limit and a positive target", a.MinLimit, a.MaxLimit, a.Target)
	}
	if c.Pricing.MaxScoredPerImp < 1 || c.Pricing.MaxScoredPerImp > 256 {
		bad("pricing.max_scored_per_imp", "%d must be in [1, 256]", c.Pricing.MaxScoredPerImp)
	}
	if s := c.Pricing.FirstPriceShade; s <= 0 || s > 1 || math.IsNaN(s) {
		bad("pricing.first_price_shade", "%v must be in (0, 1]", s)
	}
	if err := c.Pricing.Shading.options().Validate(); err != nil {
		bad("pricing.shading", "%v", err)
	}
	for cur, r := range c.Currency.Rates {
		if len(cur) != 3 || strings.ToUpper(cur) != cur {
			bad("currency.rates", "%q is not an ISO 4217 code", cur)
		}
		if r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			bad("currency.rates."+cur, "rate %v must be positive", r)
		} else if r < minRate || r > maxRate {
			// No two currencies are that far apart: such a rate is a typo
			// (a wrong exponent), and at 1e-300 a 2 USD CPM bid 4.6e12 EUR,
			// every notice of it charged 0 (an outside audit).
			bad("currency.rates."+cur, "rate %v is outside %g..%g units of %s per unit", r, minRate, maxRate, c.Currency.Base)
		} else if cur == c.Currency.Base && r != 1 {
			bad("currency.rates."+cur, "rate %v of the base currency must be 1 (rates are units of %s per unit)", r, c.Currency.Base)
		}
	}
	if lo, hi := rateSpan(c.Currency.Rates); hi/lo > maxRate {
		// Each rate within its bounds, two of them could still be 1e20
		// apart: a bid converted from one to the other was clamped (4.6e12
		// CPM), as a single rate of 1e-300 was (an outside review).
		bad("currency.rates", "rates %g and %g are more than %g apart: no two currencies are", lo, hi, maxRate)
	}
	switch c.Model.Provider {
	case "auto", "cuda", "cpu", "off":
	default:
		bad("model.provider", "%q is not auto, cuda, cpu or off", c.Model.Provider)
	}
	if c.Model.CUDADevice < 0 {
		bad("model.cuda_device", "%d must not be negative", c.Model.CUDADevice)
	}
	if c.Model.MaxBatch < 1 || c.Model.MaxBatch > 4096 {
		bad("model.max_batch", "%d must be in [1, 4096]", c.Model.MaxBatch)
	}
	if v := c.Model.Variant; v != "fp32" && v != "int8" {
		bad("model.variant", "%q is not fp32 or int8", v)
	}
	if r := c.Model.RowLog; r.Path != "" {
		if !(r.Sample > 0 && r.Sample <= 1) {
			bad("model.row_log.sample", "%v must be in (0, 1]", r.Sample)
		}
		if r.MaxBytes < 1<<16 || r.Backups < 1 || r.Queue < 1 {
			bad("model.row_log", "max_bytes %d must be at least 65536, backups %d and queue %d at least 1", r.MaxBytes, r.Backups, r.Queue)
		}
	}
	switch c.Notices.ChargeOn {
	case "billing", "win":
	default:
		bad("notices.charge_on", "%q is not billing or win", c.Notices.ChargeOn)
	}
	if _, ok := testModes[c.Notices.TestRequests]; !ok {
		bad("notices.test_requests", "%q is not billable, free or nobid", c.Notices.TestRequests)
	}
	for name, x := range c.Exchanges {
		c.validateExchange(name, x, bad)
	}
	if _, err := parseSources(c.Limits.BidSources); err != nil {
		bad("limits.bid_sources", "%v", err)
	}
	if _, err := parseSources(c.Notices.Sources); err != nil {
		bad("notices.sources", "%v", err)
	}
	// Bounds on what is added to a bid's time and written into tokens and
	// the ledger: far past any real notice, far short of an overflow (a
	// token_ttl of centuries wrapped a token's expiry).
	for _, d := range []struct {
		field  string
		v, max time.Duration
	}{
		{"notices.token_ttl", c.Notices.TokenTTL, maxNoticeTTL},
		{"notices.dedup_window.win", c.Notices.DedupWindow.Win, maxNoticeTTL},
		{"notices.dedup_window.bill", c.Notices.DedupWindow.Bill, maxNoticeTTL},
		{"notices.dedup_window.loss", c.Notices.DedupWindow.Loss, maxNoticeTTL},
		{"budget.lease_ttl", c.Budget.LeaseTTL, maxLeaseTTL},
	} {
		if d.v > d.max {
			bad(d.field, "%v is over %v", d.v, d.max)
		}
	}
	// Sane ranges for values an operator may mistype (an outside audit:
	// max_body_bytes 99999999999999, default_tmax 100h, so read and write
	// timeouts of 1000h, hold_ttl 1ns, so every charge beyond the lease,
	// passed the check).
	for _, d := range []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{
		{"limits.default_tmax", c.Limits.DefaultTMax, 0, maxDefaultTMax},
		{"limits.read_timeout", c.Limits.ReadTimeout, 0, 10 * maxDefaultTMax}, // 10 x the longest default_tmax
		{"limits.write_timeout", c.Limits.WriteTimeout, 0, 10 * maxDefaultTMax},
		{"limits.idle_timeout", c.Limits.IdleTimeout, 0, time.Hour},
		{"lifecycle.drain_delay", c.Lifecycle.DrainDelay, -1 << 62, 24 * time.Hour},
		{"lifecycle.shutdown_timeout", c.Lifecycle.ShutdownTimeout, 0, time.Hour},
		{"notices.hold_ttl", c.Notices.HoldTTL, time.Second, maxNoticeTTL},
		{"notices.ack_wait", c.Notices.AckWait, 10 * time.Millisecond, time.Minute},
	} {
		if d.v < d.min || d.v > d.max {
			bad(d.field, "%v is outside [%v, %v]", d.v, max(d.min, 0), d.max)
		}
	}
	for name, x := range c.Exchanges {
		if x.DefaultTMax > 10*time.Second {
			bad("exchanges."+name+".default_tmax", "%v is over 10s", x.DefaultTMax)
		}
	}
	if l.MaxBodyBytes > 64<<20 {
		bad("limits.max_body_bytes", "%d is over 64 MiB", l.MaxBodyBytes)
	}
	if c.Notices.HoldTTL >= c.Notices.TokenTTL {
		bad("notices.hold_ttl", "%v must be shorter than token_ttl %v", c.Notices.HoldTTL, c.Notices.TokenTTL)
	}
	if w := c.Notices.DedupWindow; w.Win < 0 || w.Bill < 0 || w.Loss < 0 || c.Notices.AckWait < 0 {
		bad("notices", "dedup_window and ack_wait must not be negative")
	}
	if c.Notices.FreqMaxEntries < 1024 {
		bad("notices.freq_max_entries", "%d is below 1024", c.Notices.FreqMaxEntries)
	}
	if c.Notices.DedupMaxEntries < 1024 {
		bad("notices.dedup_max_entries", "%d is below 1024", c.Notices.DedupMaxEntries)
	}
	if c.Notices.TrackerDedupEntries < -1 {
		bad("notices.tracker_dedup_entries", "%d: want a count of entries, or -1 for none", c.Notices.TrackerDedupEntries)
	}
	if c.Budget.LeaseTTL <= c.Notices.HoldTTL+2*c.Budget.SyncPeriod {
		bad("budget.lease_ttl", "%v must exceed notices.hold_ttl %v plus two sync periods", c.Budget.LeaseTTL, c.Notices.HoldTTL)
	}
	if err := c.Privacy.options().Validate(); err != nil {
		bad("privacy", "%v", err)
	}
	if c.Notices.Key != "" && len(c.Notices.Keys) > 0 {
		bad("notices.keys", "set notices.key or notices.keys, not both")
	}
	if why := c.multiInstance(); why != "" && c.Notices.Key == "" && len(c.Notices.Keys) == 0 {
		bad("notices.key", "%s makes this one of several instances: set a notice key shared by all of them (e.g. key: env:BIDDER_NOTICE_KEY); a generated key is per host and the others would refuse its notices", why)
	}
	if e := c.Events; e.MaxSizeMB < 1 || e.MaxAgeDays < 0 || e.Queue < 1 {
		bad("events", "max_size_mb %d, max_age_days %d, queue %d: need max_size_mb >= 1, max_age_days >= 0, queue >= 1", e.MaxSizeMB, e.MaxAgeDays, e.Queue)
	}
	errs = append(errs, c.validateNATS()...)
	return errors.Join(errs...)
}

func (c *Config) validateExchange(name string, x ExchangeConfig, bad func(field, format string, args ...any)) {
	f := "exchanges." + name + "."
	switch x.ChargeOn {
	case "", "billing", "win":
	default:
		bad(f+"charge_on", "%q is not billing or win", x.ChargeOn)
	}
	if _, ok := testModes[x.TestRequests]; !ok && x.TestRequests != "" {
		bad(f+"test_requests", "%q is not billable, free or nobid", x.TestRequests)
	}
	if x.Currency != "" {
		if _, ok := c.Currency.Rates[x.Currency]; !ok {
			bad(f+"currency", "%q is not in currency.rates", x.Currency)
		}
	}
	if x.FloorCurrency != "" {
		if _, ok := c.Currency.Rates[x.FloorCurrency]; !ok {
			bad(f+"floor_currency", "%q is not in currency.rates", x.FloorCurrency)
		}
	}
	if x.DefaultTMax < 0 {
		bad(f+"default_tmax", "%v must not be negative", x.DefaultTMax)
	}
	if _, err := parseSources(x.Sources); err != nil {
		bad(f+"sources", "%v", err)
	}
	if strings.ContainsAny(x.Seat, "\"\\") || len(x.Seat) > 64 {
		bad(f+"seat", "%q is not a seat id (at most 64 bytes, no quotes or backslashes)", x.Seat)
	}
	for _, m := range []struct{ field, v string }{{"macros.price", x.Macros.Price}, {"macros.loss", x.Macros.Loss}, {"macros.min_to_win", x.Macros.MinToWin}} {
		if !macroRE.MatchString(m.v) {
			bad(f+m.field, "%q is not a URL macro (printable ASCII without spaces, quotes, backslash, & or #)", m.v)
		}
	}
	if x.Macros.Price == macroNone {
		bad(f+"macros.price", "an exchange must send the clearing price")
	}
}

// urlTextRE is the text public_url may have: what a URL needs, nothing a
// JSON string or HTML attribute would need to escape.
var urlTextRE = regexp.MustCompile(`^[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$`)

// instanceRE is what instance_id may be: it is put verbatim in bid ids.
var instanceRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// The longest token_ttl and dedup windows (30 days: a billing notice later
// than that is not a notice) and lease_ttl (a day: a crashed instance's
// lease is stuck that long) Validate accepts.
const (
	maxNoticeTTL = 30 * 24 * time.Hour
	maxLeaseTTL  = 24 * time.Hour
)

// macroRE is what an auction macro may be: it is put verbatim in a URL.
var macroRE = regexp.MustCompile(`^[!$%'()*+,./0-9:;<=>?@A-Z\[\]^_a-z{|}~-]{0,64}$`)

// validateAdminTokens checks the names of admin_tokens: each set, unique,
// and not "admin" (admin_token's) when admin_token is set too.
func (c *Config) validateAdminTokens() []error {
	var errs []error
	seen := map[string]bool{}
	if c.AdminToken != "" {
		seen[adminTokenName] = true
	}
	for i, t := range c.AdminTokens {
		field := fmt.Sprintf("admin_tokens[%d]", i)
		switch {
		case !validTokenName(t.Name):
			errs = append(errs, fmt.Errorf("%w: %s.name: %q must be 1 to 64 letters, digits or . _ @ -", ErrConfig, field, t.Name))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("%w: %s.name: %q is taken (admin_token's name is %q)", ErrConfig, field, t.Name, adminTokenName))
		}
		seen[t.Name] = true
		if t.Token == "" {
			errs = append(errs, fmt.Errorf("%w: %s.token: missing", ErrConfig, field))
		}
	}
	return errs
}

func validTokenName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@-", c) >= 0) {
			return false
		}
	}
	return true
}

// multiInstance names the setting that lets other instances share this
// one's budget store, or "".
func (c *Config) multiInstance() string {
	b := &c.Budget
	switch {
	case len(b.NATSURLs) > 0:
		return "budget.nats_urls"
	case b.EmbeddedListen != "":
		return "budget.embedded_listen"
	case b.EmbeddedCluster.Listen != "" || len(b.EmbeddedCluster.Routes) > 0:
		return "budget.embedded_cluster"
	}
	return ""
}

// validateNATS refuses NATS listeners reachable from other machines without
// authentication: whoever reaches them can rewrite the budget store.
func (c *Config) validateNATS() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...)))
	}
	b := &c.Budget
	embedded := len(b.NATSURLs) == 0
	if host, _, err := net.SplitHostPort(b.EmbeddedListen); b.EmbeddedListen != "" {
		switch {
		case err != nil:
			bad("budget.embedded_listen", "%v", err)
		case !isLoopback(host) && b.Auth == (NATSAuthConfig{}):
			bad("budget.embedded_listen", "%q is not a loopback address: set budget.auth (user/password or nkey_seed)", b.EmbeddedListen)
		}
	}
	if cl := b.EmbeddedCluster; cl.Listen != "" {
		host, _, err := net.SplitHostPort(cl.Listen)
		switch {
		case err != nil:
			bad("budget.embedded_cluster.listen", "%v", err)
		case !isLoopback(host) && cl.Auth.User == "":
			bad("budget.embedded_cluster.listen", "%q is not a loopback address: set budget.embedded_cluster.auth (user and password)", cl.Listen)
		}
		if cl.Auth.NKeySeed != "" || cl.Auth.Credentials != "" {
			bad("budget.embedded_cluster.auth", "routes take user and password only")
		}
	}
	a := b.Auth
	n := 0
	for _, set := range []bool{a.User != "" || a.Password != "", a.NKeySeed != "", a.Credentials != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		bad("budget.auth", "give one of user/password, nkey_seed or credentials")
	}
	if embedded && a.Credentials != "" {
		bad("budget.auth.credentials", "a credentials file is for an external cluster (budget.nats_urls); the embedded server takes user/password or nkey_seed")
	}
	if embedded && b.TLS != (TLSConfig{}) && (b.TLS.CertFile == "" || b.EmbeddedListen == "") {
		bad("budget.tls", "the embedded server's TLS needs cert_file and key_file, and embedded_listen")
	}
	return errs
}

// anyHost tells whether a listen host is every address (one port on it
// conflicts with the same port on any address).
func anyHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" || h == "[::]" }

// splitListen splits a listen address and checks its port (0: any free one).
func splitListen(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = net.LookupPort("tcp", p) // a number in 0-65535, or a service name
	if err != nil {
		return "", 0, fmt.Errorf("address %s: port %q is not a number in 0-65535 or a service name", addr, p)
	}
	return host, port, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
