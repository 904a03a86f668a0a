package bidder

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bidder.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaultsAndOverrides(t *testing.T) {
	p := writeConfig(t, "model: {gbdt: m.json}\n")
	c, err := LoadConfig(p, Overrides{Listen: "127.0.0.1:9999", AdminListen: "127.0.0.1:9998"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" || c.AdminListen != "127.0.0.1:9998" || c.PublicURL != "http://127.0.0.1:9999" {
		t.Fatalf("overrides: listen %s admin %s public %s", c.Listen, c.AdminListen, c.PublicURL)
	}
	if _, err := LoadConfig(p, Overrides{Listen: "0.0.0.0:8080"}); err == nil || !strings.Contains(err.Error(), "limits.bid_sources") {
		t.Fatalf("listen on every interface with no bid_sources: %v, want a limits.bid_sources error", err)
	}
	p = writeConfig(t, "model: {gbdt: m.json}\nlimits: {bid_sources: [198.51.100.0/24]}\n")
	if c, err := LoadConfig(p, Overrides{Listen: "0.0.0.0:8080", PublicURL: "http://bidder-2:8080/"}); err != nil || c.PublicURL != "http://bidder-2:8080" {
		t.Fatalf("-public-url: %v %+v", err, c)
	}
	if c.Events.Path != filepath.Join("data", "events.jsonl") || c.Events.MaxSizeMB != 100 || c.Events.MaxBackups != 10 || c.Events.Queue != 65536 {
		t.Fatalf("events defaults: %+v", c.Events)
	}
	if c.Model.ONNX != "configs/models/mlp.manifest.json" || c.CampaignsDir != "configs/campaigns" {
		t.Fatalf("default paths: %+v", c.Model)
	}
	if c.Limits.MaxBodyBytes != 256<<10 || c.Pricing.MaxScoredPerImp != 8 || c.Currency.Rates["USD"] != 1 || c.Notices.ChargeOn != "billing" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if n := c.Notices; n.AckWait != 2*time.Second || n.ForwardTimeout != time.Second || n.DedupMaxEntries != 4<<20 ||
		n.DedupWindow != (DedupWindowConfig{Win: 15 * time.Minute, Bill: 2 * time.Hour, Loss: 15 * time.Minute}) {
		t.Fatalf("notice defaults: %+v", n)
	}
	if c.Budget.MaxHolds != 1<<22 {
		t.Fatalf("budget.max_holds defaults to %d, want 4194304", c.Budget.MaxHolds)
	}
	if c.Privacy.VendorID != 0 {
		t.Fatalf("privacy.vendor_id defaults to %d, want 0 (none)", c.Privacy.VendorID)
	}
	p = writeConfig(t, "model: {gbdt: m.json}\nprivacy: {vendor_id: 42, cache_entries: -1, cache_ttl: 5m}\n")
	if c, err = LoadConfig(p, Overrides{}); err != nil || c.Privacy != (PrivacyConfig{VendorID: 42, CacheEntries: -1, CacheTTL: 5 * time.Minute}) {
		t.Fatalf("privacy %+v, %v", c.Privacy, err)
	}
	// An explicit public_url is kept when -listen moves the port.
	p = writeConfig(t, "model: {gbdt: m.json}\npublic_url: https://bid.example.com/\n")
	if c, err = LoadConfig(p, Overrides{Listen: "127.0.0.1:9999"}); err != nil || c.PublicURL != "https://bid.example.com" {
		t.Fatalf("public_url %q, %v", c.PublicURL, err)
	}
}

// model.variant picks the ONNX manifest served: fp32 (the default) serves
// model.onnx, int8 serves model.onnx_int8; anything else is refused.
func TestConfigModelVariant(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"model: {gbdt: m.json}\n", "configs/models/mlp.manifest.json"},
		{"model: {gbdt: m.json, variant: fp32}\n", "configs/models/mlp.manifest.json"},
		{"model: {gbdt: m.json, variant: int8}\n", "configs/models/mlp_int8.manifest.json"},
		{"model: {gbdt: m.json, variant: int8, onnx_int8: q.json}\n", "q.json"},
		{"model: {gbdt: m.json, variant: fp32, onnx: f.json, onnx_int8: q.json}\n", "f.json"},
	} {
		cfg, err := LoadConfig(writeConfig(t, c.body), Overrides{})
		if err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		if got := cfg.Model.ONNXManifest(); got != c.want {
			t.Errorf("%q: serves %q, want %q", c.body, got, c.want)
		}
	}
}

func TestConfigRejects(t *testing.T) {
	f := func(body string, wantFields ...string) {
		t.Helper()
		_, err := LoadConfig(writeConfig(t, body), Overrides{})
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("%q: error %v, want ErrConfig", body, err)
		}
		for _, w := range wantFields {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%q: error %q does not name %q", body, err, w)
			}
		}
	}
	f("model: {gbdt: m.json}\nlisten: nonsense\n", "listen")
	f("model: {gbdt: m.json}\nadmin_listen: 0.0.0.0:8081\n", "admin_listen", "loopback")
	f("model: {gbdt: m.json}\nlisten: 0.0.0.0:8080\n", "limits.bid_sources", "not a loopback address")
	f("model: {gbdt: m.json}\nlisten: \":8080\"\n", "limits.bid_sources", "not a loopback address")
	// instance_id is written as is into every bid id and into notice tokens.
	f("model: {gbdt: m.json}\ninstance_id: 'a\"b'\n", "instance_id", "must be 1-128")
	f("model: {gbdt: m.json}\ninstance_id: 'bidder 1'\n", "instance_id")
	f("model: {gbdt: m.json}\ninstance_id: "+strings.Repeat("i", 129)+"\n", "instance_id")
	// public_url is written as is into nurl/burl/lurl and the trackers.
	for _, u := range []string{`'http://b.example/x"y'`, `'http://b.example/a b'`, `'http://b.example/?a=1'`,
		`'http://b.example/#f'`, `'http://b.example/a\\b'`, `"http://b.example/<x>"`, `"http:///path"`, `"http://b.example/\u00e9"`} {
		f("model: {gbdt: m.json}\npublic_url: "+u+"\n", "public_url", "must be an absolute URL")
	}
	f("model: {gbdt: m.json}\nunknown_field: 1\n", "unknown_field")
	// Durations added to a bid's time and written into tokens: bounded.
	f("model: {gbdt: m.json}\nnotices: {token_ttl: 1000000h}\n", "notices.token_ttl", "is over 720h0m0s")
	f("model: {gbdt: m.json}\nnotices: {token_ttl: 2000h, dedup_window: {bill: 800h}}\n", "notices.token_ttl", "notices.dedup_window.bill")
	f("model: {gbdt: m.json}\nbudget: {lease_ttl: 48h}\n", "budget.lease_ttl", "is over 24h0m0s")
	f("listen: 127.0.0.1:1\nlimits: {max_imps: -1}\n", "limits.max_imps")
	f("model: {gbdt: m.json, provider: tpu}\n", "model.provider")
	f("model: {gbdt: m.json, cuda_device: -1}\n", "model.cuda_device")
	f("model: {gbdt: m.json, variant: int4}\n", "model.variant")
	f("model: {gbdt: m.json, row_log: {path: r.bin, sample: 1.5}}\n", "model.row_log.sample")
	f("model: {gbdt: m.json, row_log: {path: r.bin, max_bytes: 10}}\n", "model.row_log")
	f("model: {gbdt: m.json}\ncurrency: {rates: {usd: 1, EUR: -2}}\n", "currency.rates")
	f("model: {gbdt: m.json}\nnotices: {charge_on: click}\n", "notices.charge_on")
	f("model: {gbdt: m.json}\nexchanges: {adx: {charge_on: imp}}\n", "exchanges.adx.charge_on")
	f("model: {gbdt: m.json}\nnotices: {dedup_max_entries: 10}\n", "notices.dedup_max_entries")
	f("model: {gbdt: m.json}\nnotices: {freq_max_entries: 10}\n", "notices.freq_max_entries")
	f("model: {gbdt: m.json}\nbudget: {max_holds: 10}\n", "budget.max_holds")
	f("model: {gbdt: m.json}\nbudget: {max_holds: 134217728}\n", "budget.max_holds")
	f("model: {gbdt: m.json}\npricing: {shading: {min_observations: 3000, memory: 2000}}\n", "min_observations 3000 is over memory 2000")
	f("model: {gbdt: m.json}\nnotices: {tracker_dedup_entries: -2}\n", "notices.tracker_dedup_entries")
	f("model: {gbdt: m.json}\nnotices: {dedup_window: {bill: -1s}}\n", "dedup_window")
	f("model: {gbdt: m.json}\npricing: {first_price_shade: 1.5}\n", "first_price_shade")
	f("model: {gbdt: m.json}\npricing: {shading: {enabled: true, memory: 5}}\n", "pricing.shading", "memory")
	f("model: {gbdt: m.json}\npricing: {shading: {min_observations: -1}}\n", "pricing.shading", "min_observations")
	f("model: {gbdt: m.json}\nbudget: {lease_ttl: 1s}\n", "budget.lease_ttl")
	f("model: {gbdt: m.json}\nprivacy: {vendor_id: 70000}\n", "privacy", "vendor_id")
	f("model: {gbdt: m.json}\nevents: {max_size_mb: -1}\n", "events", "max_size_mb")
	f("model: {gbdt: m.json}\nevents: {queue: -5}\n", "events", "queue")
	// What -check-config passed and the bidder could not run with (an
	// outside audit of the operator's side).
	f("model: {gbdt: m.json}\nlisten: 127.0.0.1:99999\n", "listen", "0-65535")
	f("model: {gbdt: m.json}\nlisten: 127.0.0.1:8080\nadmin_listen: 127.0.0.1:8080\n", "admin_listen", "different ports")
	f("model: {gbdt: m.json}\nlisten: 127.0.0.1:8080\nadmin_listen: 0.0.0.0:8080\nadmin_public: true\nadmin_token: t0123456789abcdef0123\n", "admin_listen", "different ports")
	f("model: {gbdt: m.json}\nwatch_every: 1ns\n", "watch_every", "under 10ms")
	f("model: {gbdt: m.json}\nbudget: {sync_period: 1ms}\n", "budget.sync_period", "under 100ms")
	f("model: {gbdt: m.json}\ncurrency: {base: USD, rates: {USD: 2, EUR: 1.1}}\n", "currency.rates.USD", "must be 1")
	// A rate no currency has against another (a wrong exponent): at 1e-300
	// a 2 USD CPM bid 4.6e12 EUR and every notice charged 0.
	f("model: {gbdt: m.json}\ncurrency: {base: USD, rates: {EUR: 1e-300}}\n", "currency.rates.EUR", "outside 1e-10..1e+10")
	f("model: {gbdt: m.json}\ncurrency: {base: USD, rates: {EUR: 1e300}}\n", "currency.rates.EUR", "outside")
	f("model: {gbdt: m.json}\ncurrency: {base: USD, rates: {AAA: 1e10, BBB: 1e-10}}\n", "currency.rates", "more than 1e+10 apart")
	f("model: {gbdt: m.json}\nlimits: {max_body_bytes: 99999999999999}\n", "limits.max_body_bytes", "over 64 MiB")
	f("model: {gbdt: m.json}\nlimits: {default_tmax: 100h}\n", "limits.default_tmax", "outside")
	f("model: {gbdt: m.json}\nlimits: {idle_timeout: 1000h}\n", "limits.idle_timeout")
	f("model: {gbdt: m.json}\nlimits: {read_timeout: 101s, write_timeout: 101s}\n", "limits.read_timeout", "limits.write_timeout")
	// The read and write timeouts derived from an out-of-range default_tmax
	// are not reported: they were never set (an outside audit).
	if _, err := LoadConfig(writeConfig(t, "model: {gbdt: m.json}\nlimits: {default_tmax: 11s}\n"), Overrides{}); err == nil ||
		!strings.Contains(err.Error(), "limits.default_tmax") || strings.Contains(err.Error(), "timeout") {
		t.Errorf("default_tmax 11s: error %v, want limits.default_tmax alone", err)
	}
	// A negative duration names its key (it said "limits: durations must
	// not be negative", leaving the operator to find which: an outside audit).
	f("model: {gbdt: m.json}\nlimits: {min_slack: -1ms}\n", "limits.min_slack: -1ms is negative")
	f("model: {gbdt: m.json}\nlimits: {network_margin: -1ms}\n", "limits.network_margin: -1ms is negative")
	f("model: {gbdt: m.json}\nlimits: {internal_budget: -1ms}\n", "limits.internal_budget: -1ms is negative")
	f("model: {gbdt: m.json}\nlimits: {default_tmax: -1ms}\n", "limits.default_tmax: -1ms is negative")
	f("model: {gbdt: m.json}\nlimits: {idle_timeout: -1s}\n", "limits.idle_timeout: -1s is outside")
	f("model: {gbdt: m.json}\nlifecycle: {drain_delay: 100000h}\n", "lifecycle.drain_delay")
	f("model: {gbdt: m.json}\nnotices: {hold_ttl: 1ns}\nbudget: {lease_ttl: 1m}\n", "notices.hold_ttl", "outside")
	f("model: {gbdt: m.json}\nnotices: {ack_wait: 1ns}\n", "notices.ack_wait")
	f("model: {gbdt: m.json}\nexchanges: {adx: {default_tmax: 1h}}\n", "exchanges.adx.default_tmax")
	// Every problem at once.
	f("model: {gbdt: m.json, provider: tpu}\nnotices: {charge_on: click}\n", "model.provider", "notices.charge_on")
	for _, ok := range []string{"listen: 127.0.0.1:8080\nadmin_listen: 127.0.0.1:8081\n", "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\n",
		"watch_every: -1s\n", "limits: {default_tmax: 10s}\n"} {
		if _, err := LoadConfig(writeConfig(t, "model: {gbdt: m.json}\n"+ok), Overrides{}); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "model: {gbdt: m.json}\nadmin_listen: 0.0.0.0:8081\nadmin_public: true\nadmin_token: env:ADMIN_TOKEN\n"), Overrides{}); err != nil {
		t.Fatalf("admin_public should allow a public admin address: %v", err)
	}
}

func TestCheckConfig(t *testing.T) {
	// Either bundled GBDT can be the fallback: the independent one or the
	// one distilled from the ONNX model.
	for _, gbdt := range []string{"../configs/models/gbdt.manifest.json", "../configs/models/gbdt_distilled.manifest.json"} {
		good := &Config{CampaignsDir: "testdata/campaigns", Model: ModelConfig{GBDT: gbdt, ONNX: "../configs/models/mlp.manifest.json",
			ONNXLibrary: "../lib/onnxruntime/libonnxruntime.so.1"},
			Currency: CurrencyConfig{Rates: map[string]float64{"EUR": 1.08}}} // initech.yaml is in EUR
		good.Defaults()
		if err := CheckConfig(good); !runtimeWarningOnly(err) {
			t.Fatalf("good config with model.gbdt %s: %v", gbdt, err)
		}
	}
	// Without the ONNX Runtime library (or with one of another version),
	// the model cannot be verified and the bidder would serve GBDT only:
	// a warning, not "config ok" (an outside audit).
	norun := &Config{CampaignsDir: "testdata/campaigns", Model: ModelConfig{GBDT: "../configs/models/gbdt.manifest.json",
		ONNX: "../configs/models/mlp.manifest.json", ONNXLibrary: filepath.Join(t.TempDir(), "libonnxruntime.so.1")},
		Currency: CurrencyConfig{Rates: map[string]float64{"EUR": 1.08}}}
	norun.Defaults()
	problems, warnings := SplitWarnings(CheckConfig(norun))
	if len(problems) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "warning: model.onnx: ") ||
		!strings.Contains(warnings[0].Error(), "the model is not verified and the bidder would score with GBDT only") {
		t.Fatalf("no ONNX Runtime: problems %v, warnings %v", problems, warnings)
	}
	norun.Model.Provider = "off"
	if err := CheckConfig(norun); err != nil {
		t.Fatalf("provider off: %v", err)
	}
	// A max_conns the descriptor limit cannot hold is capped by the
	// bidder: a warning (an outside audit's 3,000 under a limit of 1,024
	// passed, and the connections took every descriptor).
	if n := fdLimit(); n > 0 {
		norun.Limits.MaxConns = int(capFor(n)) + 100
		problems, warnings := SplitWarnings(CheckConfig(norun))
		if len(problems) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "warning: limits.max_conns: ") {
			t.Fatalf("max_conns over the descriptor limit: problems %v, warnings %v", problems, warnings)
		}
		norun.Limits.MaxConns = int(capFor(n))
		if err := CheckConfig(norun); err != nil {
			t.Fatalf("max_conns at the cap: %v", err)
		}
		norun.Limits.MaxConns = 0
	}
	// The int8 variant passes the same checks (schema, and its parity sample
	// at load where ONNX Runtime is present).
	q := Config{CampaignsDir: "testdata/campaigns", Model: ModelConfig{GBDT: "../configs/models/gbdt.manifest.json", ONNX: "../configs/models/mlp.manifest.json",
		ONNXLibrary: "../lib/onnxruntime/libonnxruntime.so.1"},
		Currency: CurrencyConfig{Rates: map[string]float64{"EUR": 1.08}}}
	q.Defaults()
	q.Model.ONNXInt8, q.Model.Variant = "../configs/models/mlp_int8.manifest.json", "int8"
	if err := CheckConfig(&q); !runtimeWarningOnly(err) {
		t.Fatalf("int8 variant: %v", err)
	}
	q.Model.ONNXInt8 = filepath.Join(t.TempDir(), "missing.json")
	if err := CheckConfig(&q); err == nil || !strings.Contains(err.Error(), "model.onnx") {
		t.Fatalf("int8 variant with a missing manifest: %v", err)
	}
	// A campaign in a currency the rate table lacks loads but can never bid.
	q.Model.ONNXInt8 = "../configs/models/mlp_int8.manifest.json"
	q.Currency.Rates = map[string]float64{"USD": 1}
	if err := CheckConfig(&q); err == nil || !strings.Contains(err.Error(), "testdata/campaigns/initech.yaml: currency: EUR is not in currency.rates") {
		t.Fatalf("EUR campaign, no EUR rate: %v", err)
	}
	// A campaign's targeting.exchanges names an exchange the config lacks:
	// it loads and never bids there (an outside audit: config ok, exit 0).
	xdir := t.TempDir()
	src, err := os.ReadFile("../configs/campaigns/luxemotors-pmp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(xdir, "lux.yaml"), bytes.Replace(src, []byte("exchanges: [example-adx]"), []byte("exchanges: [example-adx, nosuch]"), 1), 0o644)
	x := &Config{CampaignsDir: xdir, Model: q.Model, Exchanges: map[string]ExchangeConfig{"example-adx": {}}}
	x.Defaults()
	if err := CheckConfig(x); err == nil || !strings.Contains(err.Error(), `lux.yaml: targeting.exchanges: "nosuch" is not an exchange of the config`) ||
		strings.Contains(err.Error(), `"example-adx"`) {
		t.Fatalf("an unknown exchange: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("id: x\nbid_strategy: {kind: fixed_cpm, cpm: \"1\"}\nmax_bid_cpm: \"-3\"\nbudget: {daily: \"1\"}\ncreatives: []\n"), 0o644)
	bad := &Config{CampaignsDir: dir, Model: ModelConfig{GBDT: filepath.Join(dir, "missing.json")}}
	bad.Defaults()
	err = CheckConfig(bad)
	for _, want := range []string{"bad.yaml", "max_bid_cpm", "model.gbdt"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("bad config: error %v does not name %q", err, want)
		}
	}
}

// runtimeWarningOnly reports a CheckConfig result with no problem, and no
// warning but the ONNX Runtime's absence (make onnxruntime installs it;
// with it, the model is checked).
func runtimeWarningOnly(err error) bool {
	problems, warnings := SplitWarnings(err)
	return len(problems) == 0 && (len(warnings) == 0 || len(warnings) == 1 && errors.Is(warnings[0], ctr.ErrUnavailable))
}

// A running bidder says so when a published campaign's currency is not in
// currency.rates (it loads, and never bids).
func TestAppWarnsUnpricedCampaigns(t *testing.T) {
	logs := &syncBuffer{}
	startAppLog(t, func(c *Config) { c.Currency.Rates = map[string]float64{"USD": 1} }, slog.New(slog.NewTextHandler(logs, nil)))
	const want = `msg="campaigns in a currency not in currency.rates never bid" campaigns=1 first=initech-native currency=EUR`
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs.String())
	}
	if strings.Contains(logs.String(), "embedded_listen takes clients without auth") {
		t.Fatal("warned of embedded_listen with none set")
	}
}

// A running bidder warns when the set it publishes is empty (an emptied
// folder was an INFO line only), and not when it has campaigns.
func TestAppWarnsNoCampaigns(t *testing.T) {
	const want = `msg="no campaigns: every request gets a no-bid (no_campaign)"`
	logs := &syncBuffer{}
	startAppLog(t, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if strings.Contains(logs.String(), want) {
		t.Fatalf("warned with campaigns:\n%s", logs.String())
	}
	empty := &syncBuffer{}
	startAppLog(t, func(c *Config) { c.CampaignsDir = t.TempDir() }, slog.New(slog.NewTextHandler(empty, nil)))
	if !strings.Contains(empty.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, empty.String())
	}
}

// A running bidder warns of campaigns with deals and no targeting.exchanges
// (any sender can claim their deal ids) and of targeting.exchanges names the
// config has no exchange for (those campaigns never bid there); a campaign
// whose deals name a configured exchange draws neither.
func TestAppWarnsOpenDealsAndUnknownExchanges(t *testing.T) {
	src, err := os.ReadFile("../configs/campaigns/luxemotors-pmp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		exchanges string
		want      []string
		not       []string
	}{
		{"  exchanges: [example-adx]\n", nil, []string{"no targeting.exchanges", "names exchanges the config does not have"}},
		{"", []string{`msg="campaigns with deals and no targeting.exchanges bid on their deal ids from any sender" campaigns=1 first=luxemotors-pmp`}, nil},
		{"  exchanges: [nowhere]\n", []string{`msg="targeting.exchanges names exchanges the config does not have: those campaigns never bid there" names=[nowhere]`}, nil},
	} {
		dir := t.TempDir()
		body := strings.Replace(string(src), "  exchanges: [example-adx]\n", c.exchanges, 1)
		if err := os.WriteFile(filepath.Join(dir, "pmp.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		startAppLog(t, func(cfg *Config) {
			cfg.CampaignsDir = dir
			cfg.Exchanges = map[string]ExchangeConfig{"example-adx": {}}
		}, slog.New(slog.NewTextHandler(logs, nil)))
		for _, w := range c.want {
			if !strings.Contains(logs.String(), w) {
				t.Errorf("exchanges %q: log lacks %q:\n%s", c.exchanges, w, logs.String())
			}
		}
		for _, w := range c.not {
			if strings.Contains(logs.String(), w) {
				t.Errorf("exchanges %q: log has %q:\n%s", c.exchanges, w, logs.String())
			}
		}
	}
}

// Every field is optional (configs/bidder.yaml, docs/config.md): an empty
// file, or one of comments only, is the defaults, not an "EOF" error.
func TestConfigEmptyFileIsDefaults(t *testing.T) {
	for _, body := range []string{"", "# every field left at its default\n", "---\n"} {
		cfg, err := LoadConfig(writeConfig(t, body), Overrides{})
		if err != nil {
			t.Errorf("%q: %v", body, err)
			continue
		}
		if cfg.Listen != "127.0.0.1:8080" || cfg.Limits.MaxImps != 16 {
			t.Errorf("%q: listen %q max_imps %d, want the defaults", body, cfg.Listen, cfg.Limits.MaxImps)
		}
	}
}

// A key of the wrong type or an unknown key is named by its path, as a
// campaign file's is, and every one is reported.
func TestConfigDecodeProblemsNameTheField(t *testing.T) {
	body := "listen: 127.0.0.1:1\n" +
		"limits:\n" +
		"  max_imps: many\n" +
		"  admission: {disable: perhaps}\n" +
		"budget: {sync_period: soon}\n" +
		"exchanges:\n" +
		"  adx: {charge_on: win, colour: red}\n"
	_, err := LoadConfig(writeConfig(t, body), Overrides{})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("error %v, want ErrConfig", err)
	}
	for _, want := range []string{
		`limits.max_imps: got "many", want an integer (line 3)`,
		`limits.admission.disable: got "perhaps", want true or false (line 4)`,
		`budget.sync_period: got "soon", want a duration such as 2s or 100ms (line 5)`,
		`exchanges.adx.colour: unknown field (line 7)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// A null item in a list is refused, as in a campaign file: yaml.v3 dropped
// it, so an exchange's sources of [null] were no list and anyone could
// post as that exchange.
func TestConfigRefusesNullListItems(t *testing.T) {
	body := "listen: 127.0.0.1:1\n" +
		"limits:\n" +
		"  bid_sources: [10.0.0.0/8, null]\n" +
		"exchanges:\n" +
		"  adx:\n" +
		"    sources:\n" +
		"      -\n"
	_, err := LoadConfig(writeConfig(t, body), Overrides{})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("error %v, want ErrConfig", err)
	}
	for _, want := range []string{
		`limits.bid_sources[1]: empty value (line 3)`,
		`exchanges.adx.sources[0]: empty value (line 7)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// The pixel and click URLs in a bid's markup are built from public_url; on
// an imp with secure=1 an https page blocks or upgrades an http pixel, so
// impressions and frequency caps go uncounted. A running bidder whose
// public_url is http on a host other than loopback bids on no such imp
// (TestSecureImpNeedsHTTPSPublicURL), and says so.
func TestAppWarnsHTTPPublicURL(t *testing.T) {
	const want = `msg="public_url is http: imps with secure=1 get no bid`
	for _, c := range []struct {
		url  string
		warn bool
	}{
		{"http://bidder.example:8080", true},
		{"http://10.0.0.7/rtb", true},
		{"https://bidder.example", false},
		{"http://127.0.0.1:8080", false},
		{"http://[::1]:8080", false},
		{"http://localhost:8080", false},
	} {
		if got := insecurePublicURL(c.url); got != c.warn {
			t.Errorf("%s: insecure %v, want %v", c.url, got, c.warn)
		}
	}
	logs := &syncBuffer{}
	startAppLog(t, func(c *Config) { c.PublicURL = "http://bidder.example:8080" }, slog.New(slog.NewTextHandler(logs, nil)))
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs.String())
	}
	if strings.Contains(logs.String(), "embedded_listen takes clients without auth") {
		t.Fatal("warned of embedded_listen with none set")
	}
}

// test_requests: free makes a test=1 request's ads free; with no sources
// anyone who reaches the port can post such requests as that exchange. A
// running bidder says which exchanges are open that way.
func TestAppWarnsFreeTestsFromAnySource(t *testing.T) {
	free := ExchangeConfig{TestRequests: "free"}
	for _, c := range []struct {
		name string
		set  func(*Config)
		want []string
	}{
		{"default billable", func(c *Config) {}, nil},
		{"global free", func(c *Config) {
			c.Notices.TestRequests = "free"
			c.Exchanges = map[string]ExchangeConfig{"x": {}, "y": {TestRequests: "billable"}}
		}, []string{"", "x"}},
		{"exchange free", func(c *Config) {
			c.Exchanges = map[string]ExchangeConfig{"b": free, "a": free, "c": {TestRequests: "free", Sources: []string{"10.0.0.0/8"}}}
		}, []string{"a", "b"}},
		{"bid_sources set", func(c *Config) {
			c.Notices.TestRequests = "free"
			c.Limits.BidSources = []string{"127.0.0.1"}
			c.Exchanges = map[string]ExchangeConfig{"a": free}
		}, nil},
		// Any source named on purpose is as open as none named (the
		// review: the deploy configs' 0.0.0.0/0 silenced the warning).
		{"bid_sources any", func(c *Config) {
			c.Notices.TestRequests = "free"
			c.Limits.BidSources = []string{"0.0.0.0/0", "::/0"}
			c.Exchanges = map[string]ExchangeConfig{"a": free, "b": {TestRequests: "free", Sources: []string{"10.0.0.0/8"}}}
		}, []string{"", "a"}},
		{"exchange sources any", func(c *Config) {
			c.Limits.BidSources = []string{"127.0.0.1"}
			c.Exchanges = map[string]ExchangeConfig{"a": {TestRequests: "free", Sources: []string{"::/0"}}}
		}, []string{"a"}},
	} {
		cfg := &Config{}
		cfg.Notices.TestRequests = "billable"
		c.set(cfg)
		if got := freeTestsAnySource(cfg); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	logs := &syncBuffer{}
	startAppLog(t, func(c *Config) { c.Exchanges = map[string]ExchangeConfig{"demo": free} }, slog.New(slog.NewTextHandler(logs, nil)))
	if !strings.Contains(logs.String(), `msg="test=1 requests get free ads from any source`) || !strings.Contains(logs.String(), "exchange=demo") {
		t.Errorf("no warning for a free exchange open to any source in:\n%s", logs)
	}
}

// A listener on other than loopback needs bid sources named; 0.0.0.0/0 or
// ::/0 names any source on purpose, which the start warns about.
func TestAnySource(t *testing.T) {
	for _, c := range []struct {
		list []string
		any  bool
	}{
		{nil, false},
		{[]string{"198.51.100.0/24", "2001:db8::/32", "203.0.113.7"}, false},
		{[]string{"198.51.100.0/24", "0.0.0.0/0"}, true},
		{[]string{"::/0"}, true},
		{[]string{"10.0.0.0/1"}, false},
	} {
		if got := anySource(c.list); got != c.any {
			t.Errorf("%v: any %v, want %v", c.list, got, c.any)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "model: {gbdt: m.json}\nlisten: 0.0.0.0:8080\nlimits: {bid_sources: [0.0.0.0/0, \"::/0\"]}\n"), Overrides{}); err != nil {
		t.Fatalf("any source on purpose: %v", err)
	}
}

// The default instance id is the host name and the listen port: the same
// at every start, so a graceful restart's next process finds the snapshot
// (charge levels, open holds) its predecessor wrote. It was hostname-pid,
// new at every start: an outside audit's restart with the shipped configs
// over-counted 82,500 for 45,000 billed (levels lost, losses reversing
// nothing).
func TestDefaultInstanceIDStableAcrossStarts(t *testing.T) {
	var a, b Config
	a.Listen, b.Listen = "127.0.0.1:18555", "127.0.0.1:18555"
	a.Defaults()
	b.Defaults()
	if a.InstanceID != b.InstanceID || !strings.HasSuffix(a.InstanceID, "-18555") || !instanceRE.MatchString(a.InstanceID) {
		t.Fatalf("default ids %q and %q: want one hostname-18555", a.InstanceID, b.InstanceID)
	}
	c := Config{Listen: "0.0.0.0:9090"}
	c.Defaults()
	if !strings.HasSuffix(c.InstanceID, "-9090") || c.InstanceID == a.InstanceID {
		t.Fatalf("another port's default id %q", c.InstanceID)
	}
	// Two processes of one host never share a default id (an outside
	// review: one port on two addresses, and port 0 twice, did).
	for _, p := range [][2]string{{"127.0.0.1:8080", "10.1.2.3:8080"}, {"[::1]:8080", "127.0.0.1:8080"}, {":8080", "127.0.0.1:8080"}} {
		x, y := Config{Listen: p[0]}, Config{Listen: p[1]}
		x.Defaults()
		y.Defaults()
		if x.InstanceID == y.InstanceID || !instanceRE.MatchString(x.InstanceID) {
			t.Errorf("listen %s and %s: default ids %q and %q", p[0], p[1], x.InstanceID, y.InstanceID)
		}
	}
	z := Config{Listen: "127.0.0.1:0"} // a port the kernel picks: new at every start, so the pid
	z.Defaults()
	if !strings.HasSuffix(z.InstanceID, "-pid"+strconv.Itoa(os.Getpid())) {
		t.Errorf("port 0: default id %q, want hostname-pidN", z.InstanceID)
	}
	// Never a port's id: every interface at port N is hostname-N.
	w := Config{Listen: ":" + strconv.Itoa(os.Getpid())}
	w.Defaults()
	if w.InstanceID == z.InstanceID {
		t.Errorf("port %d and port 0 in process %d: both %q", os.Getpid(), os.Getpid(), w.InstanceID)
	}
}

// The bidder's config is read as a campaign file is (docs/campaigns.md):
// a second YAML document is an error. It was ignored without a word, so
// an admin_token appended after "---" left the admin listener open.
func TestConfigRefusesASecondDocument(t *testing.T) {
	for _, body := range []string{
		"listen: 127.0.0.1:1\n---\nadmin_token: second-document-token-0123\n",
		"listen: 127.0.0.1:1\n---\nlisten: [oops\n",
		"listen: 127.0.0.1:1\n...\nadmin_token: second-document-token-0123\n",
	} {
		_, err := LoadConfig(writeConfig(t, body), Overrides{})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "more than one YAML document") {
			t.Errorf("%q: %v, want more than one YAML document", body, err)
		}
	}
	for _, body := range []string{"---\nlisten: 127.0.0.1:1\n...\n", "listen: 127.0.0.1:1\n---\n", "listen: 127.0.0.1:1\n---\n# the end\n"} {
		if _, err := LoadConfig(writeConfig(t, body), Overrides{}); err != nil {
			t.Errorf("one document and an empty one (it loaded before): %q: %v", body, err)
		}
	}
}

// The campaign-set warnings are logged when they change, not at every
// reload of the same set (at 10,000 campaigns every reload repeated them: an
// outside ops audit); gone and back, a warning is logged again.
func TestCampaignSetWarningsOnlyWhenChanged(t *testing.T) {
	src, err := os.ReadFile("../configs/campaigns/luxemotors-pmp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	open := strings.Replace(string(src), "  exchanges: [example-adx]\n", "", 1)
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "pmp.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(open)
	logs := &syncBuffer{}
	app := startAppLog(t, func(cfg *Config) {
		cfg.CampaignsDir = dir
		cfg.Exchanges = map[string]ExchangeConfig{"example-adx": {}}
	}, slog.New(slog.NewTextHandler(logs, nil)))
	const warning = "bid on their deal ids from any sender"
	count := func() int { return strings.Count(logs.String(), warning) }
	for i := 0; i < 3; i++ { // the same set again
		if err := app.ReloadCampaigns(); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 1 {
		t.Fatalf("the same set published 4 times: warned %d times, want 1:\n%s", n, logs.String())
	}
	write(string(src)) // the deal's exchange named: the warning goes
	if err := app.ReloadCampaigns(); err != nil {
		t.Fatal(err)
	}
	write(open) // and comes back
	if err := app.ReloadCampaigns(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Errorf("gone and back: warned %d times, want 2:\n%s", n, logs.String())
	}
}

// A key written again and again is one problem per repeat, found in one
// pass: yaml.v3's strict decode compares every pair of a mapping's keys
// and makes a message for each equal pair (2,000 lines of "seat: x", 16 KB,
// took 16 s and 1.6 GB in -check-config, an outside audit).
func TestConfigRepeatedKeysStaySmall(t *testing.T) {
	const n = 1500
	body := "listen: 127.0.0.1:1\n" + strings.Repeat("seat: x\n", n)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := LoadConfig(writeConfig(t, body), Overrides{})
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `seat: mapping key "seat" already defined at line 2 (line 3)`) {
		t.Fatalf("error %.300v", err)
	}
	if got := strings.Count(err.Error(), "already defined"); got > n {
		t.Errorf("%d problems for %d repeats", got, n-1)
	}
	if a := m1.TotalAlloc - m0.TotalAlloc; a > 64<<20 {
		t.Errorf("loading allocated %d MB", a>>20)
	}
}

// A campaign folder with no campaign file is a warning of -check-config, as
// it is of a running bidder: a campaigns_dir pointed at the wrong (empty)
// folder, or files moved into a subfolder (not read), passed as "config ok"
// and the bidder answered every request with a no-bid (an outside audit).
func TestCheckConfigWarnsNoCampaigns(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "acme"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../configs/campaigns/acme-broad-reach.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "acme", "acme.yaml"), src, 0o644)
	c := &Config{CampaignsDir: dir, Model: ModelConfig{GBDT: "../configs/models/gbdt.manifest.json", Provider: "off"}}
	c.Defaults()
	problems, warnings := SplitWarnings(CheckConfig(c))
	if len(problems) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "warning: campaigns_dir: "+dir+" holds no campaign file") {
		t.Fatalf("problems %v, warnings %v", problems, warnings)
	}
	os.WriteFile(filepath.Join(dir, "acme.yaml"), src, 0o644)
	if err := CheckConfig(c); err != nil {
		t.Fatalf("one campaign: %v", err)
	}
}
