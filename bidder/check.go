package bidder

import (
	"errors"
	"fmt"

	"github.com/openbidder/openbidder/budget"
	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// Warning is a CheckConfig finding the bidder starts with, degraded (an ONNX
// model it cannot load the runtime for: GBDT alone serves): -check-config
// prints it and still exits 0, so a unit that runs it before each start
// starts a bidder that can bid.
type Warning struct{ Err error }

func (w *Warning) Error() string { return "warning: " + w.Err.Error() }
func (w *Warning) Unwrap() error { return w.Err }

// SplitWarnings flattens what CheckConfig or CheckConfigFile returned
// (errors.Join'ed) into its problems and its warnings.
func SplitWarnings(err error) (problems, warnings []error) {
	var walk func(error)
	walk = func(e error) {
		var w *Warning
		switch j, ok := e.(interface{ Unwrap() []error }); {
		case ok:
			for _, e := range j.Unwrap() {
				walk(e)
			}
		case errors.As(e, &w):
			warnings = append(warnings, e)
		case e != nil:
			problems = append(problems, e)
		}
	}
	walk(err)
	return problems, warnings
}

// CheckConfig validates what the config names without starting anything:
// every campaign file, every model, every secret source and TLS file, and
// the notice key file when one exists. It returns every problem found. (A
// multi-instance setup without a shared notice key is refused earlier, by
// Validate.) A finding the bidder would start with, degraded, is a
// *Warning among them (SplitWarnings).
func CheckConfig(cfg *Config) error {
	var errs []error
	if snap, err := campaigns.LoadDir(cfg.CampaignsDir, campaigns.WithSeat(cfg.Seat)); err != nil {
		errs = append(errs, err)
	} else {
		if len(snap.Campaigns) == 0 {
			// The running bidder warns of it too (warnEmpty): a folder
			// pointed at by mistake, or files moved into a subfolder,
			// passed as "config ok" (an outside audit).
			errs = append(errs, &Warning{fmt.Errorf("campaigns_dir: %s holds no campaign file (*.yaml or *.yml; subfolders are not read): every request would get a no-bid", cfg.CampaignsDir)})
		}
		for _, c := range unpriced(cfg, snap) {
			errs = append(errs, fmt.Errorf("%s: currency: %s is not in currency.rates: the campaign can never bid", c.File, c.Currency))
		}
		for _, u := range unknownExchanges(cfg, snap) {
			errs = append(errs, fmt.Errorf("%s: targeting.exchanges: %q is not an exchange of the config (exchanges): the campaign never bids there", u.c.File, u.name))
		}
	}
	if _, err := ctr.LoadGBDT(cfg.Model.GBDT, features.SchemaVersion, features.Width); err != nil {
		errs = append(errs, fmt.Errorf("model.gbdt: %w", err))
	}
	if onnx := cfg.Model.ONNXManifest(); onnx != "" && cfg.Model.Provider != "off" {
		_, err := ctr.LoadManifestFor(onnx, features.SchemaVersion, features.Width)
		rt := ctr.ONNXAvailable(cfg.Model.ONNXLibrary)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("model.onnx: %w", err))
		case rt != nil:
			// The model cannot be verified, and the bidder would score
			// with GBDT alone (an outside audit: "config ok" with no
			// library, or one of another version).
			errs = append(errs, &Warning{fmt.Errorf("model.onnx: %w: the model is not verified and the bidder would score with GBDT only (model.provider: off runs GBDT only on purpose)", rt)})
		default:
			x, err := ctr.LoadONNX(onnx, ctr.ONNXOptions{LibraryPath: cfg.Model.ONNXLibrary, Provider: ctr.ProviderCPU,
				SchemaVersion: features.SchemaVersion, Width: features.Width})
			if err != nil {
				errs = append(errs, fmt.Errorf("model.onnx: %w", err))
			} else {
				x.Close()
			}
		}
	}
	if over, limit, capped := maxConnsOverLimit(cfg.Limits.MaxConns); over {
		errs = append(errs, &Warning{fmt.Errorf("limits.max_conns: %d is more than the file descriptor limit here (%d) allows: the bidder caps it at %d (the rest is kept for the budget store, the admin listener and files)",
			cfg.Limits.MaxConns, limit, capped)})
	}
	if _, err := resolveSecrets(cfg, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkTLS(cfg); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkTLS loads every configured certificate and key.
func checkTLS(cfg *Config) error {
	var errs []error
	b := &cfg.Budget
	if t := tlsFiles(b.TLS); !t.IsZero() {
		var err error
		if len(b.NATSURLs) > 0 {
			_, err = t.ClientConfig()
		} else {
			_, err = t.ServerConfig()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("budget.tls: %w", err))
		}
	}
	if t := tlsFiles(b.EmbeddedCluster.TLS); !t.IsZero() {
		if _, err := t.RouteConfig(); err != nil {
			errs = append(errs, fmt.Errorf("budget.embedded_cluster.tls: %w", err))
		}
	}
	return errors.Join(errs...)
}

func tlsFiles(t TLSConfig) budget.TLSFiles {
	return budget.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
}

// unpriced lists the campaigns of snap whose currency the rate table does
// not know: they are loaded, but no response currency can be picked for
// them, so they never bid (no-bid reason currency on every request).
func unpriced(cfg *Config, snap *campaigns.Snapshot) []*campaigns.Campaign {
	var out []*campaigns.Campaign
	for _, c := range snap.Campaigns {
		if _, ok := cfg.Currency.Rates[c.Currency]; !ok {
			out = append(out, c)
		}
	}
	return out
}

// unknownExchange is a campaign's targeting.exchanges name that no exchange
// in the config has: a request never comes through it, so the campaign
// never bids there (a typo, or an exchange not configured yet).
type unknownExchange struct {
	c    *campaigns.Campaign
	name string
}

// unknownExchanges lists them, campaign by campaign.
func unknownExchanges(cfg *Config, snap *campaigns.Snapshot) []unknownExchange {
	var out []unknownExchange
	for _, c := range snap.Campaigns {
		for _, x := range c.Targeting.Exchanges {
			if _, ok := cfg.Exchanges[x]; !ok {
				out = append(out, unknownExchange{c, x})
			}
		}
	}
	return out
}
