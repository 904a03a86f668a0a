package ctr

import (
	"fmt"
	"math"
	"strconv"
)

// treeExplainer holds a LightGBM text model's trees as explain walks them:
// the same decisions as leaves (numerical splits, x <= threshold, missing
// type None/Zero/NaN with default_left; gbdtCheckText refuses the rest) and
// every node's expected value.
//
// Expected values: a model written by LightGBM carries internal_value (the
// node's output were it a leaf), used as is. A model converted from XGBoost
// (the bundled one) carries no node values or counts, so they come from a
// background sample, the manifest's parity rows: a node's value is the mean
// leaf value of the sample rows that pass through it, and of a node none
// passes, the plain mean of its children's.
type treeExplainer struct {
	trees []expTree
}

type expTree struct {
	feature   []int
	threshold []float64
	dtype     []int
	left      []int // < 0: leaf ^left
	right     []int
	leaf      []float64
	value     []float64 // expected value per internal node
}

// Decision type bits of a LightGBM node.
const (
	lgDefaultLeft = 1 << 1
	lgMissingZero = 1
	lgMissingNaN  = 2
	lgZero        = 1e-35
)

func newTreeExplainer(m *Manifest) (*treeExplainer, error) {
	b, err := gbdtReadModel(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	if _, err := gbdtCheckText(b, m.Width); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, m.Path(m.File), err)
	}
	te := &treeExplainer{}
	for _, blk := range gbdtBlocks(b)[1:] {
		if _, ok := blk["Tree"]; !ok {
			continue
		}
		t, err := parseExpTree(blk, m.Width)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: tree %s: %v", ErrBadModel, m.Path(m.File), blk["Tree"], err)
		}
		te.trees = append(te.trees, t)
	}
	var sample [][]float64
	if m.Parity != "" {
		if p, err := gbdtLoadParity(m.Path(m.Parity), m.Width); err == nil {
			sample = p.Inputs
		}
	}
	for i := range te.trees {
		te.trees[i].expect(sample)
	}
	return te, nil
}

// parseExpTree reads one checked tree block.
func parseExpTree(blk map[string]string, width int) (expTree, error) {
	nl, _ := strconv.Atoi(blk["num_leaves"])
	var t expTree
	var err error
	if t.leaf, err = gbdtFloats(blk["leaf_value"], nl); err != nil || nl == 1 {
		return t, err
	}
	n := nl - 1
	if t.feature, err = gbdtInts(blk["split_feature"], n, 0, width-1); err != nil {
		return t, err
	}
	if t.threshold, err = gbdtFloats(blk["threshold"], n); err != nil {
		return t, err
	}
	if t.dtype, err = gbdtInts(blk["decision_type"], n, 0, 15); err != nil {
		return t, err
	}
	if t.left, err = gbdtInts(blk["left_child"], n, -nl, n-1); err != nil {
		return t, err
	}
	if t.right, err = gbdtInts(blk["right_child"], n, -nl, n-1); err != nil {
		return t, err
	}
	if iv, ok := blk["internal_value"]; ok {
		if t.value, err = gbdtFloats(iv, n); err != nil {
			return t, fmt.Errorf("internal_value: %w", err)
		}
	}
	return t, nil
}

// goLeft is leaves' numerical decision.
func (t *expTree) goLeft(node int, x float64) bool {
	missing := (t.dtype[node] >> 2) & 3
	if math.IsNaN(x) && missing != lgMissingNaN {
		x = 0
	}
	if (missing == lgMissingZero && x > -lgZero && x <= lgZero) || (missing == lgMissingNaN && math.IsNaN(x)) {
		return t.dtype[node]&lgDefaultLeft != 0
	}
	return x <= t.threshold[node]
}

// child returns the child of node the row goes to: an internal node (>= 0)
// or a leaf (^leaf < 0).
func (t *expTree) child(node int, row []float64) int {
	if t.goLeft(node, row[t.feature[node]]) {
		return t.left[node]
	}
	return t.right[node]
}

// expect fills the internal nodes' expected values when the file has none.
func (t *expTree) expect(sample [][]float64) {
	if len(t.feature) == 0 || t.value != nil {
		return
	}
	n := len(t.feature)
	sum, cnt := make([]float64, n), make([]float64, n)
	for _, row := range sample {
		node, path := 0, []int{0}
		for {
			c := t.child(node, row)
			if c < 0 {
				for _, p := range path {
					sum[p] += t.leaf[^c]
					cnt[p]++
				}
				break
			}
			node, path = c, append(path, c)
		}
	}
	t.value = make([]float64, n)
	var fill func(node int) float64
	fill = func(node int) float64 {
		if node < 0 {
			return t.leaf[^node]
		}
		l, r := fill(t.left[node]), fill(t.right[node])
		if cnt[node] > 0 {
			t.value[node] = sum[node] / cnt[node]
		} else {
			t.value[node] = (l + r) / 2
		}
		return t.value[node]
	}
	fill(0)
}

// walk adds the tree's path contributions for row to contrib (by feature)
// and returns the root's expected value and the leaf value reached.
func (t *expTree) walk(row []float64, contrib []float64) (root, leaf float64) {
	if len(t.feature) == 0 {
		return t.leaf[0], t.leaf[0]
	}
	node := 0
	for {
		c := t.child(node, row)
		next := t.leaf[max(^c, 0)]
		if c >= 0 {
			next = t.value[c]
		}
		contrib[t.feature[node]] += next - t.value[node]
		if c < 0 {
			return t.value[0], next
		}
		node = c
	}
}

func (te *treeExplainer) explain(name string, row []float32) Contributions {
	x := make([]float64, len(row))
	for i, v := range row {
		x[i] = float64(v)
	}
	contrib := make([]float64, len(row))
	c := Contributions{Model: name}
	for i := range te.trees {
		root, _ := te.trees[i].walk(x, contrib)
		c.Bias += root
	}
	for slot, v := range contrib {
		if v != 0 {
			c.Terms = append(c.Terms, Contribution{Slot: slot, Slot2: -1, Value: row[slot], Logit: v})
		}
	}
	c.finish()
	return c
}
