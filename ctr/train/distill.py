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

Wide part (--wide, what make_distill.sh uses): the teacher is a wide & deep
model of input form wide_deep_ids whose wide part is a sum of per-id weights
(a 262,144-bucket user table, publishers, tag ids, 14 hashed crosses). A
tree needs a pair of splits per id to copy such a table, so 300 trees left
6% of bid change (docs/models.md). With --wide the fallback carries the
teacher's wide table itself (<prefix>.wide.f32.gz: float32 little-endian,
gzipped) and the manifest's "wide_part" section (the id arithmetic, the
bias, the file's sha256); ctr computes that sum in Go (a table lookup per
column, no ONNX Runtime) and adds the trees, which are trained on the
residual logit(p_onnx) - wide logit (XGBoost base_margin = wide logit,
base_score 0). When the teacher's deep part is dead (left out of the graph)
the residual is the teacher's float32 rounding and the trees learn ~0.

Split: the held-out rows are the last --test-fraction of the rows, the same
rows gbdt_train.py and servescore -heldout hold out; training uses the
first --train-rows of the rest.

Writes (names from --prefix, default gbdt_distilled):
  <out>/<prefix>.txt.gz         the model (LightGBM text, converted by gbdt_train.convert, gzipped)
  <out>/<prefix>.wide.f32.gz    (--wide) the teacher's wide table, float32 little-endian, gzipped
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
import onnx
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbdt_train as g  # noqa: E402
import wide_deep_ids as wdi  # noqa: E402

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


def wide_params(teacher_manifest):
    """The teacher's wide part: wide_deep_ids params (wide table, bias, id
    arithmetic) of the ONNX file its manifest names, checked against the
    manifest's sha256."""
    with open(teacher_manifest) as f:
        tm = json.load(f)
    if tm.get("input_form") != wdi.FORM:
        sys.exit("--wide: teacher %s has input form %r, not %s" % (teacher_manifest, tm.get("input_form"), wdi.FORM))
    path = os.path.join(os.path.dirname(teacher_manifest), tm["file"])
    with open(path, "rb") as f:
        b = f.read()
    if hashlib.sha256(b).hexdigest() != tm["sha256"]:
        sys.exit("--wide: %s does not match its manifest's sha256" % path)
    p = wdi.params_from_ids_graph(onnx.load_from_string(b), tm["wide_deep_ids"])
    return p, tm


def wide_logit(p, X, chunk=1 << 20):
    """bias + the sum of the wide weights of each row, in float64 (what ctr
    computes: float32 weights summed in float64)."""
    w = np.asarray(p["wide"], np.float32).astype(np.float64)
    out = np.empty(len(X))
    for i in range(0, len(X), chunk):
        ids, _, _ = wdi.convert({**p, "deep": [], "numeric": []}, X[i:i + chunk])
        out[i:i + chunk] = w[ids].sum(1)
    return out + float(np.float32(p["bias"]))


def wide_section(p):
    """The manifest's wide_part.wide_deep_ids: the wide columns and crosses
    only (the deep part, if any, is what the trees learn)."""
    s = wdi.manifest_section({**p, "deep": [], "numeric": []})
    s["deep_rows"] = 0
    return s


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
    ap.add_argument("--wide", action="store_true",
                    help="carry the teacher's wide table and train the trees on the residual logit (see above)")
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
    wide_p = base = None
    if args.wide:
        wide_p, _ = wide_params(args.teacher_manifest)
        base = wide_logit(wide_p, X)
        # The mean residual over the training rows joins the bias (0 up to
        # rounding when the teacher is its wide part alone; with a deep part,
        # its mean), so the trees start from a centred target.
        shift = float(np.mean(z[:n_train] - base[:n_train]))
        bias = float(np.float32(float(np.float32(wide_p["bias"])) + shift))
        base += bias - float(np.float32(wide_p["bias"]))
        wide_p = {**wide_p, "bias": bias}
        res = z - base
        print("wide part: residual logit(p_onnx) - wide logit: mean %.3g, std %.3g, max |.| %.3g"
              % (res.mean(), res.std(), np.abs(res).max()), file=sys.stderr)
    t0 = len(y) - n_test
    Xte, yte, qte, pte_true = X[t0:], y[t0:], q[t0:], ptrue[t0:]

    params = {"objective": "reg:squarederror", "max_depth": args.depth, "eta": args.eta, "tree_method": "hist",
              "max_bin": args.max_bin, "min_child_weight": args.min_child_weight, "lambda": args.lam,
              "seed": args.seed, "nthread": args.threads, "base_score": float(z[:n_train].mean())}
    if args.wide:
        # base_margin replaces base_score in XGBoost; 0 keeps it out of the
        # converted trees (gbdt_train.convert adds it to the first tree).
        params["base_score"] = 0.0
    start = time.time()
    dtr = xgb.DMatrix(np.ascontiguousarray(X[:n_train]), label=z[:n_train],
                      base_margin=None if base is None else base[:n_train])
    booster = xgb.train(params, dtr, num_boost_round=args.trees)
    del dtr
    train_s = time.time() - start
    chunk = 1 << 20
    # The trees' margin alone; the wide logit (float64, as ctr sums it) is
    # added outside XGBoost, whose base_margin is float32.
    margin = np.concatenate([booster.predict(xgb.DMatrix(np.ascontiguousarray(Xte[i:i + chunk])), output_margin=True)
                             .astype(np.float64) for i in range(0, len(yte), chunk)])
    if args.wide:
        margin = margin + base[t0:]
    pred = 1 / (1 + np.exp(-margin))

    text, evals, base_score = g.convert(booster, width, meta["columns"][:width], margin_base=True)
    nchk = min(len(yte), 1000000)
    mine = g.leaves_predict(evals, Xte[:nchk])
    if args.wide:
        mine = 1 / (1 + np.exp(-(np.log(mine / (1 - mine)) + base[t0:t0 + nchk])))
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
    wide_part = None
    if args.wide:
        wide_file = args.prefix + ".wide.f32.gz"
        wb = gzip.compress(np.asarray(wide_p["wide"], "<f4").tobytes(), compresslevel=9, mtime=0)
        with open(os.path.join(args.out, wide_file), "wb") as f:
            f.write(wb)
        wide_part = {"file": wide_file, "sha256": hashlib.sha256(wb).hexdigest(),
                     "bias": float(np.float32(wide_p["bias"])), "wide_deep_ids": wide_section(wide_p)}
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
        **({"residual_logit_std": round(float((z[t0:] - base[t0:]).std()), 9),
            "residual_logit_max_abs": round(float(np.abs(z[t0:] - base[t0:]).max()), 9)} if args.wide else {}),
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
        **({"wide_part": wide_part} if wide_part else {}),
        "extra": {"distilled_from": teacher,
                  "objective": ("reg:squarederror on logit(p_onnx) - wide logit (base_margin: the teacher's wide part, "
                                "carried in wide_part and summed by ctr; soft targets, not clicks)") if args.wide else
                  "reg:squarederror on logit(p_onnx) (soft targets: the ONNX model's predictions, not clicks)",
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
