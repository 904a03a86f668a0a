package ctr

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// Limits on what LoadGBDT hands to leaves. leaves trusts its input: an
// XGBoost binary file or a huge num_leaves makes it allocate until the
// process dies, and inconsistent child indexes make it panic at predict
// time. gbdtCheckText parses the LightGBM text structure first and refuses
// anything outside these bounds.
const (
	gbdtMaxModelBytes = 64 << 20
	gbdtMaxTrees      = 100_000
	gbdtMaxLeaves     = 1 << 16
	// gbdtMaxLeafValue bounds a leaf's margin so that no sum over the trees
	// overflows into Inf-Inf = NaN.
	gbdtMaxLeafValue = 1e6
)

// gbdtCheckText validates that b is a LightGBM text model leaves can load
// safely for rows of width features: the "tree" magic, a key=value header
// with version v2 or v3, a single output, and for every tree consistent
// array lengths, child indexes inside the tree and split features below
// width. It returns the number of trees.
func gbdtCheckText(b []byte, width int) (int, error) {
	if len(b) > gbdtMaxModelBytes {
		return 0, fmt.Errorf("model is %d bytes, over the %d byte limit", len(b), gbdtMaxModelBytes)
	}
	if !bytes.HasPrefix(b, []byte("tree\n")) && !bytes.HasPrefix(b, []byte("tree\r\n")) {
		return 0, fmt.Errorf("not a LightGBM text model (no \"tree\" first line; XGBoost binary or JSON models are not accepted)")
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return 0, fmt.Errorf("not a text file (NUL byte at offset %d)", i)
	}
	blocks := gbdtBlocks(b)
	hdr := blocks[0]
	if v := hdr["version"]; v != "v2" && v != "v3" {
		return 0, fmt.Errorf("header version %q is not v2 or v3", v)
	}
	if hdr["num_class"] != "1" || hdr["num_tree_per_iteration"] != "1" {
		return 0, fmt.Errorf("num_class %q, num_tree_per_iteration %q: want a single-output model",
			hdr["num_class"], hdr["num_tree_per_iteration"])
	}
	if mfi, err := strconv.Atoi(hdr["max_feature_idx"]); err != nil || mfi < 0 || mfi >= width {
		return 0, fmt.Errorf("max_feature_idx %q outside row width %d", hdr["max_feature_idx"], width)
	}
	sizes := bytes.Fields([]byte(hdr["tree_sizes"]))
	trees := 0
	for _, blk := range blocks[1:] {
		if _, ok := blk["Tree"]; !ok {
			continue
		}
		if err := gbdtCheckTree(blk, width); err != nil {
			return 0, fmt.Errorf("tree %s: %w", blk["Tree"], err)
		}
		trees++
	}
	switch {
	case trees == 0:
		return 0, fmt.Errorf("no trees")
	case trees > gbdtMaxTrees:
		return 0, fmt.Errorf("%d trees, over the limit of %d", trees, gbdtMaxTrees)
	case len(sizes) != trees:
		return 0, fmt.Errorf("tree_sizes names %d trees, the file has %d", len(sizes), trees)
	}
	return trees, nil
}

// gbdtBlocks splits the text into blank-line separated blocks of key=value
// lines, the way leaves reads them.
func gbdtBlocks(b []byte) []map[string]string {
	blocks := []map[string]string{{}}
	cur := blocks[0]
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			if len(cur) > 0 {
				cur = map[string]string{}
				blocks = append(blocks, cur)
			}
			continue
		}
		k, v, _ := bytes.Cut(line, []byte("="))
		cur[string(k)] = string(v)
	}
	return blocks
}

func gbdtCheckTree(blk map[string]string, width int) error {
	nl, err := strconv.Atoi(blk["num_leaves"])
	if err != nil || nl < 1 || nl > gbdtMaxLeaves {
		return fmt.Errorf("num_leaves %q outside [1,%d]", blk["num_leaves"], gbdtMaxLeaves)
	}
	if nc := blk["num_cat"]; nc != "0" {
		return fmt.Errorf("num_cat %q: categorical splits are not accepted", nc)
	}
	leafVals, err := gbdtFloats(blk["leaf_value"], nl)
	if err != nil {
		return fmt.Errorf("leaf_value: %w", err)
	}
	for _, v := range leafVals {
		if !(math.Abs(v) <= gbdtMaxLeafValue) {
			return fmt.Errorf("leaf_value %v is not a finite margin within +-%g", v, gbdtMaxLeafValue)
		}
	}
	if nl == 1 {
		return nil
	}
	n := nl - 1
	if _, err := gbdtInts(blk["split_feature"], n, 0, width-1); err != nil {
		return fmt.Errorf("split_feature: %w", err)
	}
	thr, err := gbdtFloats(blk["threshold"], n)
	if err != nil {
		return fmt.Errorf("threshold: %w", err)
	}
	for _, v := range thr {
		if math.IsNaN(v) {
			return fmt.Errorf("threshold is NaN")
		}
	}
	dt, err := gbdtInts(blk["decision_type"], n, 0, 15)
	if err != nil {
		return fmt.Errorf("decision_type: %w", err)
	}
	for _, d := range dt {
		if d&1 != 0 || (d>>2)&3 == 3 {
			return fmt.Errorf("decision_type %d: only numerical splits with missing type None, Zero or NaN", d)
		}
	}
	return gbdtCheckChildren(blk, n, nl)
}

// gbdtCheckChildren requires a proper tree: the root (node 0) is nobody's
// child, every other internal node and every leaf (~j) is a child exactly once.
func gbdtCheckChildren(blk map[string]string, n, nl int) error {
	refs := make([]int, n+nl) // internal nodes, then leaves
	for _, key := range [...]string{"left_child", "right_child"} {
		cs, err := gbdtInts(blk[key], n, -nl, n-1)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		for _, c := range cs {
			if c < 0 {
				c = n + ^c
			}
			refs[c]++
		}
	}
	for i, r := range refs {
		if (i == 0 && r != 0) || (i > 0 && r != 1) {
			return fmt.Errorf("not a tree: node %d is a child %d times", i, r)
		}
	}
	return nil
}

func gbdtInts(s string, n, lo, hi int) ([]int, error) {
	f := bytes.Fields([]byte(s))
	if len(f) != n {
		return nil, fmt.Errorf("%d values, want %d", len(f), n)
	}
	out := make([]int, n)
	for i, x := range f {
		v, err := strconv.Atoi(string(x))
		if err != nil || v < lo || v > hi {
			return nil, fmt.Errorf("value %q outside [%d,%d]", x, lo, hi)
		}
		out[i] = v
	}
	return out, nil
}

func gbdtFloats(s string, n int) ([]float64, error) {
	f := bytes.Fields([]byte(s))
	if len(f) != n {
		return nil, fmt.Errorf("%d values, want %d", len(f), n)
	}
	out := make([]float64, n)
	for i, x := range f {
		v, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("value %q is not a number", x)
		}
		out[i] = v
	}
	return out, nil
}
