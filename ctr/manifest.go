package ctr

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Manifest describes a served model file. It sits beside the model as JSON
// (for example configs/models/gbdt.manifest.json) and names everything needed
// to refuse a wrong model at load: the feature schema it was trained on, the
// row width, and a parity sample the serving path must reproduce.
type Manifest struct {
	Name          string `json:"name"`
	Kind          string `json:"kind"`           // "gbdt" (LightGBM text, read by leaves) or "onnx"
	File          string `json:"file"`           // model file, relative to the manifest's directory
	SHA256        string `json:"sha256"`         // hex digest of File; checked at load when set
	SchemaVersion string `json:"schema_version"` // must equal the running feature extractor's
	Width         int    `json:"width"`          // feature row width
	// InputForm is what the model's graph takes: InputRows (the default:
	// the feature row as is) or InputWideDeepIDs (ids converted from the
	// row by ctr, as WideDeepIDs says). A form this build does not know is
	// refused at load with ErrInputForm.
	InputForm   string       `json:"input_form,omitempty"`
	WideDeepIDs *WideDeepIDs `json:"wide_deep_ids,omitempty"`
	Parity      string       `json:"parity"` // parity sample file, relative to the manifest
	// ParityTolerance is the largest absolute difference allowed between the
	// training framework's predictions and the Go serving path's.
	ParityTolerance float64        `json:"parity_tolerance"`
	Training        TrainingInfo   `json:"training"`
	Metrics         map[string]any `json:"metrics"` // auc, logloss, oracle_auc, oracle_logloss, ...
	// WidePart (kind gbdt only) is an exact linear part added to the trees'
	// margin: a distilled fallback that carries its teacher's wide table
	// (ctr/train/distill.py --wide). See WidePart.
	WidePart *WidePart `json:"wide_part,omitempty"`
	// FeatureStats is the training distribution per slot, for drift metrics.
	FeatureStats *FeatureStats   `json:"feature_stats,omitempty"`
	Extra        json.RawMessage `json:"extra,omitempty"`

	dir  string
	conv *wideDeepConv // InputWideDeepIDs: the compiled conversion
}

// TrainingInfo says how a model was made, so it can be made again.
type TrainingInfo struct {
	Script  string `json:"script"`
	Data    string `json:"data"`
	Seed    int64  `json:"seed"`
	Rows    int    `json:"rows"`
	Trees   int    `json:"trees,omitempty"`
	Created string `json:"created,omitempty"`
}

// LoadManifest reads and checks a manifest file.
func LoadManifest(path string) (*Manifest, error) { return LoadManifestFor(path, "", 0) }

// LoadManifestFor is LoadManifest for a model fed by an extractor of schema
// version and width (version "": any): a manifest of another schema or width
// is refused as that (ErrSchema, CheckSchema), before its input form is
// checked against its own width. A wide_deep_ids manifest of the wrong width
// was refused with its input form's message ("wide column 14: slot 40 of
// 40"), not as a model of another width (an outside audit).
func LoadManifestFor(path, version string, width int) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrBadModel, path, err)
	}
	switch {
	case m.Kind != "gbdt" && m.Kind != "onnx":
		return nil, fmt.Errorf("%w: manifest %s: kind %q is not gbdt or onnx", ErrBadModel, path, m.Kind)
	case m.File == "":
		return nil, fmt.Errorf("%w: manifest %s: file is empty", ErrBadModel, path)
	case m.SchemaVersion == "":
		return nil, fmt.Errorf("%w: manifest %s: schema_version is empty", ErrBadModel, path)
	case m.Width <= 0:
		return nil, fmt.Errorf("%w: manifest %s: width %d must be positive", ErrBadModel, path, m.Width)
	}
	if m.WidePart != nil && m.Kind != "gbdt" {
		return nil, fmt.Errorf("%w: manifest %s: wide_part on a %s model (only gbdt)", ErrBadModel, path, m.Kind)
	}
	if m.InputForm == "" {
		m.InputForm = InputRows
	}
	if version != "" {
		if err := m.CheckSchema(version, width); err != nil {
			return nil, err
		}
	}
	if m.conv, err = m.checkInputForm(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	m.dir = filepath.Dir(path)
	return &m, nil
}

// Path resolves a file named in the manifest relative to the manifest.
func (m *Manifest) Path(name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(m.dir, name)
}

// CheckSchema refuses a model trained on another feature schema or width.
func (m *Manifest) CheckSchema(version string, width int) error {
	if m.SchemaVersion != version || m.Width != width {
		return fmt.Errorf("%w: model %q has schema %s width %d, extractor has %s width %d",
			ErrSchema, m.Name, m.SchemaVersion, m.Width, version, width)
	}
	return nil
}
