package ctr

import (
	"fmt"
	"math"
	"sort"
)

// Explanations of a model's prediction for one feature row, for operators
// (POST /admin/explain): which features moved the logit, and by how much.
// Built from the model's manifest and files off the bid path (NewExplainer
// reads and parses the model again); the scorers are not touched.
//
//   - GBDT (explain_gbdt.go): Saabas path contributions. Each tree is walked
//     for the row, and every split on the path adds the change of the node's
//     expected value (child minus parent) to its split feature; the bias is
//     the sum of the roots' expected values. Bias plus contributions is the
//     raw margin, exactly.
//   - GBDT with a wide part (WidePart): the trees' contributions plus the
//     wide table's weight of each wide column and cross, a slot's two
//     terms added into one; the bias is both biases.
//   - ONNX wide & deep in the wide_deep_ids form (explain_wide.go): the wide
//     table's weight of each wide column's row (a feature slot) and of each
//     cross's row (a pair of slots); the bias; and what the deep part adds,
//     as one "deep" term (the model's logit minus the wide part).

// Contribution is one term of a model's logit for a row.
type Contribution struct {
	// Slot is the feature slot the term belongs to; Slot2 the second slot
	// of a wide cross, else -1. Both are -1 for the "deep" term.
	Slot, Slot2 int
	Value       float32 // the row's value of Slot
	Logit       float64 // what the term adds to the logit
}

// Contributions explain one row's prediction by one model.
type Contributions struct {
	Model string
	Bias  float64        // the logit before any feature
	Terms []Contribution // largest |Logit| first
	Logit float64        // Bias plus every term
}

// PCTR is the prediction the contributions add up to.
func (c *Contributions) PCTR() float64 { return gbdtSigmoid(c.Logit) }

// Top returns the n terms with the largest |Logit|.
func (c *Contributions) Top(n int) []Contribution {
	return c.Terms[:min(n, len(c.Terms))]
}

func (c *Contributions) finish() {
	c.Logit = c.Bias
	for _, t := range c.Terms {
		c.Logit += t.Logit
	}
	sort.SliceStable(c.Terms, func(i, j int) bool { return math.Abs(c.Terms[i].Logit) > math.Abs(c.Terms[j].Logit) })
}

// addWide adds the terms and bias of a GBDT's wide part (w) to the trees'
// contributions (c): a term of the same slot (or pair of slots) is added
// into it, any other is appended.
func (c *Contributions) addWide(w Contributions) {
	c.Bias += w.Bias
	for _, t := range w.Terms {
		found := false
		for i := range c.Terms {
			if c.Terms[i].Slot == t.Slot && c.Terms[i].Slot2 == t.Slot2 {
				c.Terms[i].Logit += t.Logit
				found = true
				break
			}
		}
		if !found {
			c.Terms = append(c.Terms, t)
		}
	}
	c.finish()
}

// Explainer explains the predictions of one loaded model. Safe for
// concurrent use.
type Explainer struct {
	name  string
	width int
	trees *treeExplainer // gbdt
	wide  *wideExplainer // onnx, wide_deep_ids; or a gbdt's wide part
}

// NewExplainer builds the explainer of the model m describes (a manifest a
// scorer was loaded from: Manifest() of GBDT or ONNX). A GBDT model is
// parsed again from its text; an ONNX model must be in the wide_deep_ids
// form, and its wide table is read from the graph's initializers.
func NewExplainer(m *Manifest) (*Explainer, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: no manifest to explain", ErrUnavailable)
	}
	e := &Explainer{name: m.Name, width: m.Width}
	var err error
	switch {
	case m.Kind == "gbdt":
		e.trees, err = newTreeExplainer(m)
		if err == nil && m.WidePart != nil {
			var w *gbdtWide
			if w, err = loadGBDTWide(m); err == nil {
				e.wide = &wideExplainer{conv: w.conv, wide: w.table, bias: w.bias}
			}
		}
	case m.Kind == "onnx" && m.InputForm == InputWideDeepIDs:
		e.wide, err = newWideExplainer(m)
	default:
		err = fmt.Errorf("%w: model %q: no explanation for kind %q, input form %q", ErrInputForm, m.Name, m.Kind, m.InputForm)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Name is the model's name.
func (e *Explainer) Name() string { return e.name }

// Explain explains the model's prediction for one row. For an ONNX model,
// pctr is the model's own prediction for the row (what its scorer
// returned): the deep part's term is what separates it from the wide part.
// A GBDT ignores pctr.
func (e *Explainer) Explain(row []float32, pctr float32) (Contributions, error) {
	if len(row) != e.width {
		return Contributions{}, fmt.Errorf("%w: explain: row of %d values, want %d", ErrSchema, len(row), e.width)
	}
	if e.trees != nil {
		c := e.trees.explain(e.name, row)
		if e.wide != nil {
			c.addWide(e.wide.explain(e.name, row, 0))
		}
		return c, nil
	}
	return e.wide.explain(e.name, row, pctr), nil
}

// ScorerManifest returns the manifest a scorer was loaded from, looking
// through a Holder (its current model) and the ONNX model behind a
// reloaded micro-batcher; nil when there is none.
func ScorerManifest(s Scorer) *Manifest {
	switch x := s.(type) {
	case *Holder:
		return ScorerManifest(x.Current())
	case *reloadBatched:
		return x.x.Manifest()
	case interface{ Manifest() *Manifest }:
		return x.Manifest()
	}
	return nil
}
