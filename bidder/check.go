package bidder

import (
	"errors"
	"fmt"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// CheckConfig validates what the config names without starting anything:
// every campaign file and every model. It returns every problem found.
func CheckConfig(cfg *Config) error {
	var errs []error
	if _, err := campaigns.LoadDir(cfg.CampaignsDir, campaigns.WithSeat(cfg.Seat)); err != nil {
		errs = append(errs, err)
	}
	if _, err := ctr.LoadGBDT(cfg.Model.GBDT, features.SchemaVersion, features.Width); err != nil {
		errs = append(errs, fmt.Errorf("model.gbdt: %w", err))
	}
	if cfg.Model.ONNX != "" && cfg.Model.Provider != "off" {
		m, err := ctr.LoadManifest(cfg.Model.ONNX)
		if err == nil {
			err = m.CheckSchema(features.SchemaVersion, features.Width)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("model.onnx: %w", err))
		} else if ctr.ONNXAvailable(cfg.Model.ONNXLibrary) == nil {
			x, err := ctr.LoadONNX(cfg.Model.ONNX, ctr.ONNXOptions{LibraryPath: cfg.Model.ONNXLibrary, Provider: ctr.ProviderCPU,
				SchemaVersion: features.SchemaVersion, Width: features.Width})
			if err != nil {
				errs = append(errs, fmt.Errorf("model.onnx: %w", err))
			} else {
				x.Close()
			}
		}
	}
	if _, err := noticeKey(cfg.Notices.Key); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
