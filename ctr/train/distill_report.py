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
                             **({"wide_file": m["wide_part"]["file"],
                                 "wide_file_bytes": os.path.getsize(os.path.join(os.path.dirname(manifest),
                                                                                 m["wide_part"]["file"])),
                                 "wide_rows": m["wide_part"]["wide_deep_ids"]["wide_rows"],
                                 "residual_logit_std": m["metrics"].get("residual_logit_std"),
                                 "residual_logit_max_abs": m["metrics"].get("residual_logit_max_abs")}
                                if m.get("wide_part") else {}),
                             "auc": round(g.auc(yte, p), 6), "logloss": round(g.logloss(yte, p), 6),
                             "mean_pctr": round(float(p.mean()), 6), "vs_onnx": distill.agreement(p, q)}
        onnx_name = m.get("extra", {}).get("distilled_from", {}).get("name", onnx_name)
    with open(os.path.join(args.out, "distill.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    lines = ["# Falling back from the ONNX model to a GBDT: bid change on held-out rows", "",
             "Written by `ctr/train/make_distill.sh` (`make distill`): %d held-out rows (%d clicks) of %s, every model "
             "scored through the Go serving path (`servescore`: ONNX Runtime CPU; leaves, plus a wide table summed by "
             "ctr where the GBDT's manifest has one). Bids are linear in pCTR, "
             "so the relative bid change on falling back is |p_gbdt - p_onnx| / p_onnx." % (
                 n_test, int(yte.sum()), args.data), "",
             "| model | mean rel. bid change | p50 | p90 | p99 | mean pCTR change | AUC | log loss | trees | files |",
             "|---|---|---|---|---|---|---|---|---|---|",
             "| ONNX (served) | - | - | - | - | - | %.4f | %.5f | - | - |" % (res["onnx"]["auc"], res["onnx"]["logloss"])]
    for name, r in res["gbdt"].items():
        a = r["vs_onnx"]
        label, trees, size = "%s GBDT (`%s`)" % (name, r["file"]), "%s" % r["trees"], "%.2f MB" % (r["file_bytes"] / 1e6)
        if "wide_file" in r:
            label = "%s GBDT + wide table (`%s`, `%s`)" % (name, r["file"], r["wide_file"])
            trees = "%s + %d weights" % (r["trees"], r["wide_rows"])
            size = "%.2f + %.2f MB" % (r["file_bytes"] / 1e6, r["wide_file_bytes"] / 1e6)
        lines.append("| %s | **%.4f%%** | %.4f%% | %.4f%% | %.4f%% | %+.4f%% | %.4f | %.5f | %s | %s |" % (
            label, 100 * a["mean_rel_diff"], 100 * a["p50_rel_diff"], 100 * a["p90_rel_diff"],
            100 * a["p99_rel_diff"], 100 * a["mean_change"], r["auc"], r["logloss"], trees, size))
    lines += ["", "Observed CTR %.5f; mean pCTR: ONNX %.5f, %s." % (
        res["observed_ctr"], res["onnx"]["mean_pctr"],
        ", ".join("%s %.5f" % (k, v["mean_pctr"]) for k, v in res["gbdt"].items())), ""]
    for name, r in res["gbdt"].items():
        if "wide_file" not in r:
            continue
        lines += ["The %s fallback's logit is the ONNX model's wide table (`%s`: %d float32 weights and the bias, "
                  "looked up and summed by ctr from the manifest's `wide_part`, no ONNX Runtime) plus %s trees "
                  "trained on the residual logit(p_onnx) - wide logit, which over the held-out rows has standard "
                  "deviation %.3g and largest |value| %.3g%s." % (
                      name, r["wide_file"], r["wide_rows"], r["trees"], r["residual_logit_std"],
                      r["residual_logit_max_abs"],
                      ": the ONNX model is its wide part, up to float32 rounding, and the trees learn ~0"
                      if r["residual_logit_std"] < 1e-4 else ""), ""]
    with open(os.path.join(args.out, "DISTILL.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
