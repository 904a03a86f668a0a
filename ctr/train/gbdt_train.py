#!/usr/bin/python3
"""Train the GBDT CTR model on feature rows and write it for leaves.

Reads rows.f32 / rows.json written by features/cmd/featurize from simulator
logs (ctr/train/make_models.sh, `make models`), trains an
XGBoost binary:logistic model (default 200 trees, depth 6), converts it to the
LightGBM text format github.com/dmitryikh/leaves reads, checks that a
leaves-compatible evaluator reproduces XGBoost's predictions, and writes:

  <out>/gbdt.txt            the model (LightGBM text, "tree" / version=v3)
  <out>/gbdt.parity.json    held-out inputs and XGBoost's probabilities
  <out>/gbdt.manifest.json  ctr.Manifest: schema, width, sha256, training, metrics

Conversion rules (see DESIGN.md "Measured facts"):
  * XGBoost goes left on x < t (x and t float32); leaves goes left on
    float64(x) <= threshold. Each threshold is written as the next float32
    below t, printed exactly, so both agree on every float32 input.
  * Missing values: XGBoost sends NaN the default direction; the converted
    node has missing type NaN and default_left set likewise (decision_type
    8 or 10). Feature rows never hold NaN (features/SCHEMA.md) anyway.
  * XGBoost's base_score enters as margin logit(base_score), added to the
    leaves of the first tree. leaves is loaded without its transformation and
    the Go scorer applies the sigmoid itself: the outputs are probabilities.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evalmetrics import HELDOUT_FRACTION, heldout_start  # noqa: E402

PARITY_ROWS = 256
PARITY_TOL = 1e-5


def load(data_dir):
    with open(os.path.join(data_dir, "rows.json")) as f:
        meta = json.load(f)
    width = meta["width"]
    raw = np.memmap(os.path.join(data_dir, "rows.f32"), dtype="<f4", mode="r")
    raw = raw.reshape(-1, width + 2)
    if raw.shape[0] != meta["rows"]:
        sys.exit("rows.f32 has %d rows, rows.json says %d" % (raw.shape[0], meta["rows"]))
    return meta, raw[:, :width], raw[:, width].astype(np.float64), raw[:, width + 1].astype(np.float64)


def auc(y, p):
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    # average ranks over ties
    i = 0
    n = len(p)
    r = np.arange(1, n + 1, dtype=np.float64)
    _, start, counts = np.unique(ps, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    npos = y.sum()
    nneg = n - npos
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def logloss(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration(y, p, bins=10):
    order = np.argsort(p, kind="mergesort")
    out = []
    for chunk in np.array_split(order, bins):
        out.append({"mean_predicted": round(float(p[chunk].mean()), 6),
                    "observed": round(float(y[chunk].mean()), 6), "rows": int(len(chunk))})
    return out


def f32down(t):
    """The next float32 below float32(t)."""
    t32 = np.float32(t)
    return np.nextafter(t32, np.float32(-np.inf), dtype=np.float32)


def exact(v):
    """Shortest text that parses back to the same float64."""
    return repr(float(v))


def convert(booster, width, names, margin_base=False):
    """XGBoost JSON model -> (LightGBM text, list of trees for the evaluator).

    base_score is a probability (binary:logistic) and enters as its logit;
    with margin_base (reg:squarederror on logits, distill.py) it is already a
    margin and enters as is."""
    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    base_score = float(learner["learner_model_param"]["base_score"])
    base_margin = base_score if margin_base else math.log(base_score / (1 - base_score))
    trees = learner["gradient_booster"]["model"]["trees"]
    blocks, evals = [], []
    for ti, t in enumerate(trees):
        left, right = t["left_children"], t["right_children"]
        feat, cond, dleft = t["split_indices"], t["split_conditions"], t["default_left"]
        n = len(left)
        internal = [i for i in range(n) if left[i] != -1]
        leaves = [i for i in range(n) if left[i] == -1]
        if internal and internal[0] != 0:
            sys.exit("tree %d: root is not node 0" % ti)
        iidx = {node: k for k, node in enumerate(internal)}
        lidx = {node: k for k, node in enumerate(leaves)}

        def child(c):
            return iidx[c] if c in iidx else ~lidx[c]

        leaf_vals = [float(np.float32(cond[i])) + (base_margin if ti == 0 else 0.0) for i in leaves]
        ev = {"feature": [], "thr": [], "left": [], "right": [], "dleft": [], "leaf": leaf_vals}
        lines = ["Tree=%d" % ti, "num_leaves=%d" % len(leaves), "num_cat=0"]
        if internal:
            thr = [f32down(cond[i]) for i in internal]
            for i, node in enumerate(internal):
                if not (0 <= feat[node] < width):
                    sys.exit("tree %d: split on feature %d outside width %d" % (ti, feat[node], width))
            lines += [
                "split_feature=" + " ".join(str(feat[i]) for i in internal),
                "threshold=" + " ".join(exact(x) for x in thr),
                "decision_type=" + " ".join(str(8 | (2 if dleft[i] else 0)) for i in internal),
                "left_child=" + " ".join(str(child(left[i])) for i in internal),
                "right_child=" + " ".join(str(child(right[i])) for i in internal),
            ]
            ev.update(feature=[feat[i] for i in internal], thr=[float(x) for x in thr],
                      left=[child(left[i]) for i in internal], right=[child(right[i]) for i in internal],
                      dleft=[bool(dleft[i]) for i in internal])
        lines.append("leaf_value=" + " ".join(exact(v) for v in leaf_vals))
        lines.append("shrinkage=1")
        blocks.append("\n".join(lines) + "\n\n\n")
        evals.append(ev)
    header = [
        "tree", "version=v3", "num_class=1", "num_tree_per_iteration=1", "label_index=0",
        "max_feature_idx=%d" % (width - 1), "objective=binary sigmoid:1",
        "feature_names=" + " ".join(names),
        "tree_sizes=" + " ".join(str(len(b.encode())) for b in blocks),
    ]
    text = "\n".join(header) + "\n\n" + "".join(blocks) + "end of trees\n"
    return text, evals, base_score


def leaves_predict(evals, X):
    """What leaves computes: float64 x <= threshold, NaN to the default side, float64 sum, sigmoid."""
    X = X.astype(np.float64)
    margin = np.zeros(X.shape[0])
    rows = np.arange(X.shape[0])
    for ev in evals:
        if not ev["feature"]:
            margin += ev["leaf"][0]
            continue
        feat, thr = np.array(ev["feature"]), np.array(ev["thr"])
        left, right, dleft = np.array(ev["left"]), np.array(ev["right"]), np.array(ev["dleft"])
        leaf = np.array(ev["leaf"])
        node = np.zeros(X.shape[0], dtype=np.int64)
        done = np.zeros(X.shape[0], dtype=bool)
        out = np.zeros(X.shape[0])
        while not done.all():
            idx = rows[~done]
            nd = node[idx]
            x = X[idx, feat[nd]]
            go_left = np.where(np.isnan(x), dleft[nd], x <= thr[nd])
            nxt = np.where(go_left, left[nd], right[nd])
            is_leaf = nxt < 0
            out[idx[is_leaf]] = leaf[~nxt[is_leaf]]
            done[idx[is_leaf]] = True
            node[idx[~is_leaf]] = nxt[~is_leaf]
        margin += out
    return 1 / (1 + np.exp(-margin))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="directory with rows.f32 and rows.json")
    ap.add_argument("--out", required=True, help="output directory (configs/models)")
    ap.add_argument("--data-desc", default="", help="how the data was made, for the manifest")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--script", default="ctr/train/make_models.sh", help="pipeline named in the manifest")
    ap.add_argument("--name", default="gbdt", help="model name in the manifest")
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--eta", type=float, default=0.1)
    ap.add_argument("--min-child-weight", type=float, default=5)
    ap.add_argument("--max-bin", type=int, default=256, help="histogram bins per feature (hashed ids need many)")
    ap.add_argument("--lambda", dest="lam", type=float, default=1.0, help="L2 on leaf weights")
    ap.add_argument("--test-fraction", type=float, default=HELDOUT_FRACTION)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check-rows", type=int, default=1000000,
                    help="held-out rows the conversion check covers (0 = all); metrics use every held-out row")
    ap.add_argument("--train-rows", type=int, default=0, help="train on the first N training rows only (0 = all); the held-out rows stay the same")
    args = ap.parse_args()

    meta, X, y, ptrue = load(args.data)
    width = meta["width"]
    n_train = heldout_start(len(y), args.test_fraction)
    n_test = len(y) - n_train
    if args.train_rows:
        n_train = min(n_train, args.train_rows)
    Xtr, ytr = X[:n_train], y[:n_train]
    Xte, yte, pte_true = X[len(y) - n_test:], y[len(y) - n_test:], ptrue[len(y) - n_test:]

    params = {
        "objective": "binary:logistic", "eval_metric": "logloss", "max_depth": args.depth, "eta": args.eta,
        "tree_method": "hist", "max_bin": args.max_bin, "min_child_weight": args.min_child_weight, "lambda": args.lam,
        "seed": args.seed,
        "nthread": args.threads, "base_score": float(ytr.mean()),
    }
    # Memory: the training matrix lives only while training, and the held-out
    # rows are predicted a chunk at a time (tens of millions of rows fit).
    dtr = xgb.DMatrix(np.ascontiguousarray(Xtr), label=ytr)
    booster = xgb.train(params, dtr, num_boost_round=args.trees)
    del dtr
    chunk = 1 << 20
    pred = np.concatenate([booster.predict(xgb.DMatrix(np.ascontiguousarray(Xte[i:i + chunk]))).astype(np.float64)
                           for i in range(0, len(yte), chunk)])

    text, evals, base_score = convert(booster, width, meta["columns"][:width])
    nchk = min(len(yte), args.check_rows) if args.check_rows else len(yte)
    mine = leaves_predict(evals, Xte[:nchk])
    worst = float(np.max(np.abs(mine - pred[:nchk])))
    print("converted %d trees; max |leaves-compatible - xgboost| over %d held-out rows = %.3g"
          % (len(evals), nchk, worst), file=sys.stderr)
    if worst > PARITY_TOL:
        sys.exit("conversion does not reproduce XGBoost within %g" % PARITY_TOL)

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "gbdt.txt")
    with open(model_path, "w") as f:
        f.write(text)
    sha = hashlib.sha256(text.encode()).hexdigest()

    par = {"schema_version": meta["schema_version"], "width": width, "output": "probability",
           "tolerance": PARITY_TOL,
           "inputs": [[float(v) for v in row] for row in Xte[:PARITY_ROWS]],
           "outputs": [float(v) for v in pred[:PARITY_ROWS]]}
    with open(os.path.join(args.out, "gbdt.parity.json"), "w") as f:
        json.dump(par, f, separators=(",", ":"))
        f.write("\n")

    metrics = {
        "auc": round(auc(yte, pred), 6), "logloss": round(logloss(yte, pred), 6),
        "oracle_auc": round(auc(yte, pte_true), 6), "oracle_logloss": round(logloss(yte, pte_true), 6),
        "mean_predicted_ctr": round(float(pred.mean()), 6), "observed_ctr": round(float(yte.mean()), 6),
        "mean_true_ctr": round(float(pte_true.mean()), 6),
        "heldout_rows": int(n_test), "heldout_clicks": int(yte.sum()),
        "parity_max_abs_diff": worst, "parity_checked_rows": int(nchk),
        "calibration_deciles": calibration(yte, pred),
    }
    manifest = {
        "name": args.name, "kind": "gbdt", "file": "gbdt.txt", "sha256": sha,
        "schema_version": meta["schema_version"], "width": width,
        "parity": "gbdt.parity.json", "parity_tolerance": PARITY_TOL,
        "training": {"script": "%s (ctr/train/gbdt_train.py, xgboost %s)" % (args.script, xgb.__version__),
                     "data": args.data_desc or ("%s seed %d" % (args.data, meta["seed"])),
                     "seed": args.seed, "rows": int(n_train), "trees": len(evals)},
        "metrics": metrics,
        "extra": {"objective": "binary:logistic", "max_depth": args.depth, "eta": args.eta,
                  "min_child_weight": args.min_child_weight, "max_bin": args.max_bin, "lambda": args.lam,
                  "base_score": base_score, "output": "sigmoid applied by the Go scorer; leaves loaded raw",
                  "threshold_rule": "xgboost x<t written as x<=nextafter32(t,-inf)",
                  "data_meta": {k: meta[k] for k in ("rows", "seed", "publishers", "campaigns", "creatives",
                                                      "mean_p_true", "click_rate", "generator", "skipped") if k in meta}},
    }
    with open(os.path.join(args.out, "gbdt.manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "calibration_deciles"}), file=sys.stderr)


if __name__ == "__main__":
    main()
