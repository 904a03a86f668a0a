#!/usr/bin/python3
"""How much falling back from the ONNX model to each GBDT moves bids.

Reads the held-out predictions servescore wrote through the Go serving path
(the last int(n x --test-fraction) rows of --data) and writes
<out>/DISTILL.md and <out>/distill.json: per GBDT, the relative bid change
|p_gbdt - p_onnx| / p_onnx (bids are linear in pCTR: mean, quantiles), the
change in mean pCTR, and AUC / log loss of each model against clicks.

  distill_report.py --data ROWS --onnx onnx.pred.f32 \\
      --gbdt NAME=MANIFEST=gbdt.pred.f32 [--gbdt ...] --out configs/models
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distill  # noqa: E402
import gbdt_train as g  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--onnx", required=True, help="servescore's held-out onnx.pred.f32")
    ap.add_argument("--gbdt", action="append", required=True, help="NAME=MANIFEST=PRED (servescore's gbdt.pred.f32)")
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    meta, _, y, _ = g.load(args.data)
    n_test = int(len(y) * args.test_fraction)
    yte = np.asarray(y[len(y) - n_test:])
    q = np.fromfile(args.onnx, dtype="<f4").astype(np.float64)
    if len(q) != n_test:
        sys.exit("%s: %d predictions for %d held-out rows" % (args.onnx, len(q), n_test))
    onnx_name = ""
    res = {"heldout_rows": n_test, "heldout_clicks": int(yte.sum()), "observed_ctr": round(float(yte.mean()), 6),
           "onnx": {"auc": round(g.auc(yte, q), 6), "logloss": round(g.logloss(yte, q), 6),
                    "mean_pctr": round(float(q.mean()), 6)},
           "gbdt": {}}
    for spec in args.gbdt:
        name, manifest, path = spec.split("=", 2)
        p = np.fromfile(path, dtype="<f4").astype(np.float64)
        if len(p) != n_test:
            sys.exit("%s: %d predictions for %d held-out rows" % (path, len(p), n_test))
        with open(manifest) as f:
            m = json.load(f)
        res["gbdt"][name] = {"manifest": manifest, "model": m["name"], "file": m["file"],
                             "file_bytes": os.path.getsize(os.path.join(os.path.dirname(manifest), m["file"])),
                             "trees": m["training"].get("trees"),
                             "auc": round(g.auc(yte, p), 6), "logloss": round(g.logloss(yte, p), 6),
                             "mean_pctr": round(float(p.mean()), 6), "vs_onnx": distill.agreement(p, q)}
        onnx_name = m.get("extra", {}).get("distilled_from", {}).get("name", onnx_name)
    with open(os.path.join(args.out, "distill.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    lines = ["# Falling back from the ONNX model to a GBDT: bid change on held-out rows", "",
             "Written by `ctr/train/make_distill.sh` (`make distill`): %d held-out rows (%d clicks) of %s, every model "
             "scored through the Go serving path (`servescore`: ONNX Runtime CPU, leaves). Bids are linear in pCTR, "
             "so the relative bid change on falling back is |p_gbdt - p_onnx| / p_onnx." % (
                 n_test, int(yte.sum()), args.data), "",
             "| model | mean rel. bid change | p50 | p90 | p99 | mean pCTR change | AUC | log loss | trees | file |",
             "|---|---|---|---|---|---|---|---|---|---|",
             "| ONNX (served) | - | - | - | - | - | %.4f | %.5f | - | - |" % (res["onnx"]["auc"], res["onnx"]["logloss"])]
    for name, r in res["gbdt"].items():
        a = r["vs_onnx"]
        lines.append("| %s GBDT (`%s`) | **%.2f%%** | %.2f%% | %.2f%% | %.2f%% | %+.2f%% | %.4f | %.5f | %s | %.1f MB |" % (
            name, r["file"], 100 * a["mean_rel_diff"], 100 * a["p50_rel_diff"], 100 * a["p90_rel_diff"],
            100 * a["p99_rel_diff"], 100 * a["mean_change"], r["auc"], r["logloss"], r["trees"], r["file_bytes"] / 1e6))
    lines += ["", "Observed CTR %.5f; mean pCTR: ONNX %.5f, %s." % (
        res["observed_ctr"], res["onnx"]["mean_pctr"],
        ", ".join("%s %.5f" % (k, v["mean_pctr"]) for k, v in res["gbdt"].items())), ""]
    with open(os.path.join(args.out, "DISTILL.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
