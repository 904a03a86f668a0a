#!/usr/bin/python3
"""Compare served-path predictions (ctr/train/servescore) on held-out rows.

    /usr/bin/python3 ctr/train/predcompare.py --data ROWS_DIR [--heldout 0.25 | --from N]
        --ref NAME=PRED.f32 [--pred NAME=PRED.f32 ...] [--json OUT.json]

ROWS_DIR holds rows.f32 / rows.json (features/cmd/featurize). Each PRED file
is servescore's output (little-endian float32, one per scored record); a
file with one prediction per record of ROWS_DIR is cut to the held-out part,
one with exactly the held-out count is taken as is. For every model: AUC,
log loss and calibration (mean pCTR / observed CTR) against the click
labels; for every model but the reference, its agreement with the
reference: mean and percentiles of |p - p_ref| / p_ref, mean |p - p_ref|,
and the change of the mean prediction. The ground truth's AUC and log loss
(the oracle) are printed beside them.

"Bids change by": for CPC and CPA campaigns the bid is proportional to pCTR
(campaigns.Campaign.ValueMicros), so |p - p_ref| / p_ref is the relative
change of the bid (before the floor and the budget cut any), and the mean
over held-out rows is the average change of a bid.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evalmetrics import auc, logloss  # noqa: E402


def load(data_dir, heldout, start):
    meta = json.load(open(os.path.join(data_dir, "rows.json")))
    w = meta["width"]
    raw = np.memmap(os.path.join(data_dir, "rows.f32"), dtype="<f4", mode="r").reshape(-1, w + 2)
    n = raw.shape[0]
    if heldout:
        start = n - int(n * heldout)
    return n, start, np.array(raw[start:, w], np.float64), np.array(raw[start:, w + 1], np.float64)


def read_pred(path, n, start):
    p = np.fromfile(path, "<f4").astype(np.float64)
    if len(p) == n:
        return p[start:]
    if len(p) == n - start:
        return p
    sys.exit("%s: %d predictions for %d records (%d held out)" % (path, len(p), n, n - start))


def quality(y, p):
    return {"auc": round(auc(y, p), 6), "logloss": round(logloss(y, p), 6),
            "mean_pctr": round(float(p.mean()), 6), "calibration": round(float(p.mean() / y.mean()), 4)}


def agreement(p, ref):
    rel = np.abs(p - ref) / ref
    return {"mean_rel_diff": round(float(rel.mean()), 6), "p50_rel_diff": round(float(np.quantile(rel, 0.5)), 6),
            "p90_rel_diff": round(float(np.quantile(rel, 0.9)), 6), "p99_rel_diff": round(float(np.quantile(rel, 0.99)), 6),
            "max_rel_diff": round(float(rel.max()), 6), "mean_abs_diff": float(np.abs(p - ref).mean()),
            "max_abs_diff": float(np.abs(p - ref).max()),
            "mean_change": round(float(p.mean() / ref.mean() - 1), 6),
            "identical_rows": round(float(np.mean(p == ref)), 6)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--heldout", type=float, default=0.25)
    ap.add_argument("--from", dest="start", type=int, default=0)
    ap.add_argument("--ref", required=True, help="NAME=FILE: the model the others are compared with")
    ap.add_argument("--pred", action="append", default=[], help="NAME=FILE")
    ap.add_argument("--json", default="", help="write the figures here too")
    a = ap.parse_args()
    n, start, y, ptrue = load(a.data, a.heldout if not a.start else 0, a.start)
    out = {"rows": int(len(y)), "clicks": int(y.sum()), "observed_ctr": round(float(y.mean()), 6),
           "oracle": quality(y, ptrue), "models": {}}
    rname, rpath = a.ref.split("=", 1)
    ref = read_pred(rpath, n, start)
    out["models"][rname] = quality(y, ref)
    for spec in a.pred:
        name, path = spec.split("=", 1)
        p = read_pred(path, n, start)
        out["models"][name] = quality(y, p) | {"vs_" + rname: agreement(p, ref)}
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
