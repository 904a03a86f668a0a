#!/usr/bin/python3
"""Distil the served ONNX model into a GBDT fallback (issue 12).

The independent GBDT (gbdt_train.py) learns clicks; when the bidder falls
back to it, bids move by as much as the two models disagree. This script
trains a GBDT to agree with the ONNX model instead: its targets are the ONNX
model's own predictions, as the Go serving path computed them (servescore
over every row), not the click labels.

Objective: squared error on the logit of the ONNX prediction
(reg:squarederror, label logit(p_onnx)). Bids are linear in pCTR, so what
matters is the relative bid change |p_gbdt - p_onnx| / p_onnx; for the small
probabilities here (0.1% to 13%) that is close to |logit difference|, and
squared error on logits weighs every row alike. binary:logistic with soft
labels would weigh a row's logit error by p(1-p), i.e. care ~10x less about
a 0.3% row than a 3% row, which is not what a bid change cares about.

Split: the held-out rows are the last --test-fraction of the rows, the same
rows gbdt_train.py and servescore -heldout hold out; training uses the
first --train-rows of the rest.

Writes (names from --prefix, default gbdt_distilled):
  <out>/<prefix>.txt.gz         the model (LightGBM text, converted by gbdt_train.convert, gzipped)
  <out>/<prefix>.parity.json    held-out inputs and XGBoost's probabilities
  <out>/<prefix>.manifest.json  ctr.Manifest, kind gbdt, metrics incl. agreement with the teacher
  --sample FILE                 (optional) held-out rows with the ONNX predictions and
                                labels, for the Go agreement test (ctr/distill_test.go)
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import time

import numpy as np
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbdt_train as g  # noqa: E402

PARITY_ROWS = 256
SAMPLE_ROWS = 500


def agreement(p, q):
    """Relative change of p against the teacher q (bids are linear in pCTR)."""
    rel = np.abs(p - q) / q
    return {"mean_rel_diff": round(float(rel.mean()), 6),
            "p50_rel_diff": round(float(np.quantile(rel, 0.5)), 6),
            "p90_rel_diff": round(float(np.quantile(rel, 0.9)), 6),
            "p99_rel_diff": round(float(np.quantile(rel, 0.99)), 6),
            "max_rel_diff": round(float(rel.max()), 6),
            "mean_change": round(float(p.mean() / q.mean() - 1), 6)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="directory with rows.f32 and rows.json")
    ap.add_argument("--teacher", required=True,
                    help="the ONNX model's prediction per row (servescore -from 0 over the same rows.f32: onnx.pred.f32)")
    ap.add_argument("--teacher-manifest", default="configs/models/mlp.manifest.json",
                    help="the teacher's manifest (its name and sha256 go in the manifest)")
    ap.add_argument("--out", required=True, help="output directory (configs/models)")
    ap.add_argument("--prefix", default="gbdt_distilled")
    ap.add_argument("--name", default="gbdt-distilled")
    ap.add_argument("--data-desc", default="")
    ap.add_argument("--sample", default="", help="also write SAMPLE_ROWS held-out rows for the Go test here")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--eta", type=float, default=0.3)
    ap.add_argument("--min-child-weight", type=float, default=20)
    ap.add_argument("--max-bin", type=int, default=4096)
    ap.add_argument("--lambda", dest="lam", type=float, default=1.0)
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--train-rows", type=int, default=0, help="first N training rows only (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    meta, X, y, ptrue = g.load(args.data)
    width = meta["width"]
    q = np.fromfile(args.teacher, dtype="<f4").astype(np.float64)
    if len(q) != len(y):
        sys.exit("%s has %d predictions for %d rows" % (args.teacher, len(q), len(y)))
    if not np.all((q > 0) & (q < 1)):
        sys.exit("teacher predictions outside (0, 1)")
    z = np.log(q / (1 - q))
    n_test = int(len(y) * args.test_fraction)
    n_train = len(y) - n_test
    if args.train_rows:
        n_train = min(n_train, args.train_rows)
    t0 = len(y) - n_test
    Xte, yte, qte, pte_true = X[t0:], y[t0:], q[t0:], ptrue[t0:]

    params = {"objective": "reg:squarederror", "max_depth": args.depth, "eta": args.eta, "tree_method": "hist",
              "max_bin": args.max_bin, "min_child_weight": args.min_child_weight, "lambda": args.lam,
              "seed": args.seed, "nthread": args.threads, "base_score": float(z[:n_train].mean())}
    start = time.time()
    dtr = xgb.DMatrix(np.ascontiguousarray(X[:n_train]), label=z[:n_train])
    booster = xgb.train(params, dtr, num_boost_round=args.trees)
    del dtr
    train_s = time.time() - start
    chunk = 1 << 20
    margin = np.concatenate([booster.predict(xgb.DMatrix(np.ascontiguousarray(Xte[i:i + chunk])), output_margin=True)
                             .astype(np.float64) for i in range(0, len(yte), chunk)])
    pred = 1 / (1 + np.exp(-margin))

    text, evals, base_score = g.convert(booster, width, meta["columns"][:width], margin_base=True)
    nchk = min(len(yte), 1000000)
    mine = g.leaves_predict(evals, Xte[:nchk])
    worst = float(np.max(np.abs(mine - pred[:nchk])))
    print("converted %d trees in %.0f s training; max |leaves-compatible - xgboost| over %d held-out rows = %.3g"
          % (len(evals), train_s, nchk, worst), file=sys.stderr)
    if worst > g.PARITY_TOL:
        sys.exit("conversion does not reproduce XGBoost within %g" % g.PARITY_TOL)

    os.makedirs(args.out, exist_ok=True)
    # Gzipped (ctr gunzips a model file named *.gz; the manifest's sha256 is
    # of the compressed bytes): the text of 300 depth-8 trees is 3.5 MB.
    model_file = args.prefix + ".txt.gz"
    with open(os.path.join(args.out, model_file), "wb") as f:
        f.write(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    par = {"schema_version": meta["schema_version"], "width": width, "output": "probability",
           "tolerance": g.PARITY_TOL,
           "inputs": [[float(v) for v in row] for row in Xte[:PARITY_ROWS]],
           "outputs": [float(v) for v in pred[:PARITY_ROWS]]}
    with open(os.path.join(args.out, args.prefix + ".parity.json"), "w") as f:
        json.dump(par, f, separators=(",", ":"))
        f.write("\n")
    if args.sample:
        # Rows after the parity sample, so the Go test checks rows the
        # parity check does not.
        s = slice(PARITY_ROWS, PARITY_ROWS + SAMPLE_ROWS)
        smp = {"about": "held-out rows %d.. of %s (row %d on) with the served ONNX model's predictions "
                        "(servescore, ONNX Runtime CPU) and click labels; written by ctr/train/distill.py"
                        % (PARITY_ROWS, args.data, t0 + PARITY_ROWS),
               "teacher_sha256": "", "width": width,
               "inputs": [[float(v) for v in row] for row in Xte[s]],
               "onnx": [float(v) for v in qte[s]], "labels": [int(v) for v in yte[s]]}
        try:
            with open(args.teacher_manifest) as f:
                smp["teacher_sha256"] = json.load(f)["sha256"]
        except (OSError, KeyError, ValueError):
            pass
        with open(args.sample, "w") as f:
            json.dump(smp, f, separators=(",", ":"))
            f.write("\n")

    teacher = {"manifest": args.teacher_manifest, "predictions": args.teacher}
    try:
        with open(args.teacher_manifest) as f:
            tm = json.load(f)
        teacher.update(name=tm.get("name"), sha256=tm.get("sha256"))
    except (OSError, ValueError):
        pass
    metrics = {
        "auc": round(g.auc(yte, pred), 6), "logloss": round(g.logloss(yte, pred), 6),
        "teacher_auc": round(g.auc(yte, qte), 6), "teacher_logloss": round(g.logloss(yte, qte), 6),
        "oracle_auc": round(g.auc(yte, pte_true), 6), "oracle_logloss": round(g.logloss(yte, pte_true), 6),
        "mean_predicted_ctr": round(float(pred.mean()), 6), "observed_ctr": round(float(yte.mean()), 6),
        "teacher_mean_ctr": round(float(qte.mean()), 6),
        "vs_teacher": agreement(pred, qte),
        "heldout_rows": int(n_test), "heldout_clicks": int(yte.sum()),
        "parity_max_abs_diff": worst, "parity_checked_rows": int(nchk),
        "calibration_deciles": g.calibration(yte, pred),
    }
    with open(os.path.join(args.out, model_file), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    manifest = {
        "name": args.name, "kind": "gbdt", "file": model_file, "sha256": sha,
        "schema_version": meta["schema_version"], "width": width,
        "parity": args.prefix + ".parity.json", "parity_tolerance": g.PARITY_TOL,
        "training": {"script": "ctr/train/distill.py (xgboost %s)" % xgb.__version__,
                     "data": args.data_desc or ("%s seed %d" % (args.data, meta["seed"])),
                     "seed": args.seed, "rows": int(n_train), "trees": len(evals)},
        "metrics": metrics,
        "extra": {"distilled_from": teacher,
                  "objective": "reg:squarederror on logit(p_onnx) (soft targets: the ONNX model's predictions, not clicks)",
                  "max_depth": args.depth, "eta": args.eta, "min_child_weight": args.min_child_weight,
                  "max_bin": args.max_bin, "lambda": args.lam, "base_margin": base_score,
                  "train_seconds": round(train_s),
                  "output": "sigmoid applied by the Go scorer; leaves loaded raw",
                  "threshold_rule": "xgboost x<t written as x<=nextafter32(t,-inf)",
                  "data_meta": {k: meta[k] for k in ("rows", "seed", "publishers", "campaigns", "creatives",
                                                      "mean_p_true", "click_rate", "generator", "skipped") if k in meta}},
    }
    with open(os.path.join(args.out, args.prefix + ".manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "calibration_deciles"}), file=sys.stderr)


if __name__ == "__main__":
    main()
