#!/usr/bin/python3
"""Retrain the served wide & deep model on the bidder's own logs and promote
a candidate only if it beats the served model (`make retrain`).

    /usr/bin/python3 ctr/train/retrain.py --rows ROW_LOG --events EVENTS.jsonl \\
        --served configs/models/mlp.manifest.json [--holdout 0.2] [--settle 30] \\
        [--featurestats BIN] [--report OUT.json] [--dry-run]

1. Data: the row log (model.row_log, bidder/rowlog.go: the feature row each
   sampled bid was scored on) joined with the event log (events.jsonl: the
   bid's "imp" and "click" events) by rowlog.join(): a shown bid is a row, a
   click its label. Not the simulator's logs: what the bidder saw and what
   happened to its own bids.
2. Split by bid time: the most recent --holdout share is held out; the rest
   trains.
3. Candidates (CANDIDATES), each warm-started from the served model and
   fitted on the training rows by L-BFGS on the log loss (a deep part, if
   any, is kept as is): a rescale (one factor per wide table and the bias,
   L2 pull toward 1: rescale()), a refit of the wide weights and the bias
   (L2 pull toward the served weights: refit()), or a rescale then a
   refit.
4. Evaluation on the held-out slice: the served model (scored here with
   wide_deep_ids.predict, the numpy reference of the graph) and every
   candidate: AUC, log loss, calibration (mean pCTR / observed CTR).
5. Promotion: the candidate with the lowest log loss is promoted only if its
   log loss is below the served model's and its calibration is within 5%
   (|calibration - 1| <= 0.05). Promotion writes NAME.onnx, NAME.parity.json
   (the served parity rows with the candidate's outputs) and a manifest
   beside the served manifest (named after the served model, its "-rUNIXTIME"
   suffix from an earlier retrain replaced; its training block describes
   the retrain: rows, clicks, time span, candidate, with the served model's
   own block under training.retrained_from), then replaces the served manifest (the path
   model.onnx names, which the bidder watches) atomically by a rename. The
   bidder's hot reload loads it, checks the parity sample and the schema, and
   keeps the old model if anything is off.
   With --featurestats (features/cmd/featurestats) the new manifest's
   feature_stats are those of the training rows, so drift (PSI) is measured
   against what the new model was trained on; without it the served
   manifest's are kept.

The report carries the row log's torn files (row_log: torn_files,
torn_mid_file, bytes_lost, records_lost_at_least, each tear) and the join's
replays and conflicting keys (join), each also warned about on stderr. A
file torn anywhere but its tail (a corrupt record mid-file, every record
after it lost) is refused unless --accept-torn.

Only the float32 wide & deep model (model.onnx) is retrained: the int8 or
float16 variant (model.onnx_int8, made by ctr/train/compact.py from the
float32 model) is refused with a message saying so, and neither it nor the
GBDT fallback (model.gbdt) is refreshed by a promotion.

Exit status 0 whether or not a candidate was promoted (the report says);
non-zero on bad input. Needs python3-onnx, python3-numpy and python3-scipy.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rowlog  # noqa: E402
import wide_deep_ids as wdi  # noqa: E402
from evalmetrics import auc, calibration, logloss, nonfinite  # noqa: E402

# (name, L2 strength of the per-table scales toward 1 or None for no rescale,
# L2 strength of the per-weight refit toward the (rescaled) served weights or
# None for none; both in rows). The per-weight refits alone move each weight
# only as far as its own rows' clicks say; the rescale moves a whole table
# (every publisher's weight, say) at once, which is what a change of an
# effect's sign or strength needs and what a few hundred clicks can
# estimate (docs/models.md, "Closed loop").
CANDIDATES = [("warm-l2-100", None, 100.0), ("warm-l2-10", None, 10.0), ("scale", 1.0, None),
              ("scale+l2-100", 1.0, 100.0), ("scale+l2-10", 1.0, 10.0)]
MAX_ITER = 200
MAX_CALIBRATION_ERROR = 0.05


def base_logits(p, x):
    """The served model's logit for rows x and their wide_ids."""
    pr = np.clip(wdi.predict(p, x), 1e-12, 1 - 1e-12)
    wide, _, _ = wdi.convert(p, x)
    return np.log(pr / (1 - pr)), wide.astype(np.int64)


def _lbfgs(f, n):
    from scipy.optimize import minimize
    return minimize(f, np.zeros(n), jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITER})


def rescale(p, x, y, l2):
    """Refit one scale per wide table (a column or a cross) and the bias:
    the candidate's logit is the served logit plus sum_t (a_t - 1) s_t plus
    the change of the bias, s_t being the weight table t gives the row, by
    L-BFGS on the log loss (summed over rows) plus l2/2 |a - 1|^2. A
    handful of parameters, so a few hundred clicks fit them: a table whose effect
    changed sign or strength gets a_t < 0 or a_t != 1, a table that is only
    noise on this traffic (hashed crosses of ids the model never saw) a_t
    near 0. Returns the params with each table multiplied by its a_t."""
    z0, ids = base_logits(p, x)
    w = np.asarray(p["wide"], np.float64).reshape(-1)
    s = w[ids]  # [n, tables]: each column reads its own table
    k = s.shape[1]

    def f(v):
        da, db = v[:k], v[k]
        z = z0 + s @ da + db
        loss = np.sum(np.logaddexp(0, z) - y * z) + 0.5 * l2 * da @ da
        g = 1 / (1 + np.exp(-z)) - y
        return loss, np.concatenate([s.T @ g + l2 * da, [g.sum()]])

    res = _lbfgs(f, k + 1)
    q = dict(p)
    w2 = w.copy()
    for (off, size), da in zip(wdi.column_tables(p), res.x[:k]):
        w2[off:off + size] *= 1 + da
    q["wide"] = w2.astype(np.float32)
    q["bias"] = float(np.float32(p["bias"] + res.x[k]))
    names = [str(c["slot"]) for c in p["cols"]] + ["%d*%d" % (c["a"], c["b"]) for c in p["crosses"]]
    scales = {nm: round(1 + float(da), 3) for nm, da in zip(names, res.x[:k])}
    return q, {"scale_iterations": int(res.nit), "scales": scales}


def refit(p, x, y, l2):
    """Warm-started refit of the wide table and the bias: the candidate's
    logit is the served logit plus the change of the wide weights it reads
    plus the change of the bias, fitted by L-BFGS on the log loss (summed
    over rows) plus l2/2 |change|^2 (the served model is the prior). Only
    the weights the training rows read change."""
    z0, ids = base_logits(p, x)
    used, inv = np.unique(ids, return_inverse=True)
    inv = inv.reshape(ids.shape)
    k = len(used)

    def f(v):
        dw, db = v[:k], v[k]
        z = z0 + dw[inv].sum(1) + db
        loss = np.sum(np.logaddexp(0, z) - y * z) + 0.5 * l2 * dw @ dw
        g = 1 / (1 + np.exp(-z)) - y
        grad = np.empty(k + 1)
        grad[:k] = np.bincount(inv.ravel(), weights=np.repeat(g, ids.shape[1]), minlength=k) + l2 * dw
        grad[k] = g.sum()
        return loss, grad

    res = _lbfgs(f, k + 1)
    q = dict(p)
    w = np.asarray(p["wide"], np.float64).reshape(-1).copy()
    w[used] += res.x[:k]
    q["wide"] = w.astype(np.float32)
    q["bias"] = float(np.float32(p["bias"] + res.x[k]))
    return q, {"weights_changed": int(k), "iterations": int(res.nit)}


def metrics(y, pr):
    return {"auc": round(auc(y, pr), 6), "logloss": round(logloss(y, pr), 6),
            "calibration": round(calibration(y, pr), 4), "mean_pctr": round(float(np.mean(pr)), 6)}


def promote(served_path, man, q, name, train_x, train_y, featurestats, report, training):
    """Write the candidate beside the served manifest and rename its manifest
    over the served one. training: the new manifest's training block (what
    the retrain was fitted on); the served manifest's own block is kept
    inside it as retrained_from.training."""
    d = os.path.dirname(os.path.abspath(served_path))
    model = wdi.build(q, doc="%s: %s retrained on the bidder's row log by ctr/train/retrain.py" % (name, man["name"]))
    onnx_path = os.path.join(d, name + ".onnx")
    onnx.save(model, onnx_path)
    parity = json.load(open(os.path.join(d, man["parity"])))
    outs = wdi.predict(q, np.array(parity["inputs"], np.float32))
    with open(os.path.join(d, name + ".parity.json"), "w") as f:
        json.dump({"inputs": parity["inputs"], "outputs": [float(np.float32(v)) for v in outs]}, f,
                  separators=(",", ":"))
        f.write("\n")
    out = {k: v for k, v in man.items() if k != "metrics"}
    out.update({"name": name, "file": name + ".onnx", "parity": name + ".parity.json", "parity_tolerance": 1e-6,
                "sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()})
    out["training"] = dict(training, retrained_from={"name": man["name"], "sha256": man.get("sha256"),
                                                     "training": man.get("training")})
    extra = dict(out.get("extra") or {})
    extra["retrain"] = report
    out["extra"] = extra
    text = json.dumps(out, indent=2, allow_nan=False)  # never a manifest of bare NaN
    tmp = tempfile.NamedTemporaryFile("w", dir=d, prefix="." + name, suffix=".manifest.json", delete=False)
    with tmp as f:
        f.write(text + "\n")
    if featurestats:
        with tempfile.NamedTemporaryFile(suffix=".f32", delete=False) as rf:
            w = train_x.shape[1]
            rec = np.zeros((len(train_x), w + 2), "<f4")
            rec[:, :w], rec[:, w] = train_x, train_y
            rec.tofile(rf)
        try:
            subprocess.run([featurestats, "-rows", rf.name, "-stride", str(w + 2), tmp.name], check=True,
                           stdout=subprocess.DEVNULL)
        finally:
            os.unlink(rf.name)
    os.replace(tmp.name, served_path)  # the bidder's watcher sees one complete manifest
    return onnx_path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", required=True, help="row log path (rotated files PATH.1 ... are read too)")
    ap.add_argument("--events", required=True, help="the bidder's events.jsonl")
    ap.add_argument("--served", required=True, help="the served (watched) ONNX manifest; replaced on promotion")
    ap.add_argument("--holdout", type=float, default=0.2, help="most recent share of rows held out")
    ap.add_argument("--settle", type=float, default=30.0, help="seconds before the last event whose bids are left out")
    ap.add_argument("--since", type=float, default=0, help="only bids at or after this unix time (seconds)")
    ap.add_argument("--featurestats", default="", help="features/cmd/featurestats binary (new feature_stats)")
    ap.add_argument("--min-clicks", type=int, default=20, help="fewer held-out clicks: no decision")
    ap.add_argument("--report", default="", help="write the report JSON here")
    ap.add_argument("--dry-run", action="store_true", help="evaluate, never promote")
    ap.add_argument("--accept-torn", action="store_true",
                    help="go on when a row log file is torn before its tail (a corrupt record mid-file: every "
                         "record after it is lost); a torn tail (a crash mid-write) is always accepted")
    a = ap.parse_args()

    man = json.load(open(a.served))
    if man.get("kind") != "onnx" or man.get("input_form") != wdi.FORM:
        sys.exit("retrain: %s is not an onnx model of input form %s" % (a.served, wdi.FORM))
    d = os.path.dirname(os.path.abspath(a.served))
    compact = (man.get("extra") or {}).get("compact")
    if compact:
        sys.exit("retrain: %s is the %s variant of a model (made by ctr/train/compact.py from the float32 model; "
                 "model.onnx_int8): retrain the float32 model (model.onnx, e.g. configs/models/mlp.manifest.json) "
                 "and make the variant again from it with compact.py" % (a.served, compact.get("dtype", "compact")))
    try:
        p = wdi.params_from_ids_graph(onnx.load(os.path.join(d, man["file"])), man["wide_deep_ids"])
    except ValueError as e:
        sys.exit("retrain: %s: %s (retrain.py refits only the float32 wide_deep_ids graph mlp_train.py and "
                 "reexport.py write; an int8 or float16 variant is made by compact.py from it)" % (a.served, e))

    log = rowlog.read_logs(a.rows)
    if log.width != man["width"] or log.schema != man["schema_version"]:
        sys.exit("retrain: row log width %d schema %s, model %d %s" % (
            log.width, log.schema, man["width"], man["schema_version"]))
    torn = log.tear_summary()
    if torn["torn_files"]:
        for tr in torn["tears"]:
            print("retrain: warning: row log %s torn at byte %d (%s): %d bytes not read, at least %d intact records "
                  "after it lost" % (tr["file"], tr["offset"], "its tail" if tr["tail"] else "mid-file",
                                     tr["bytes_lost"], tr["records_lost_at_least"]), file=sys.stderr)
        if torn["torn_mid_file"] and not a.accept_torn:
            sys.exit("retrain: %d row log file(s) torn mid-file (at least %d records lost after the corrupt bytes); "
                     "refusing to train on what is left: --accept-torn to go on" % (
                         torn["torn_mid_file"], torn["records_lost_at_least"]))
    shown, clicked, last = rowlog.read_events(a.events)
    data = rowlog.join(log, shown, clicked, last, a.settle)
    if data["stats"]["conflicting_keys"]:
        print("retrain: warning: %(conflicting_keys)d bid keys (auction, imp, campaign, creative) were logged with "
              "different feature rows (%(conflicting_records)d records): left out, the events cannot say which "
              "was shown or clicked (two runs into one data dir?)" % data["stats"], file=sys.stderr)
    keep = data["time"] >= a.since * 1e9
    x, y, t = data["x"][keep], data["y"][keep], data["time"][keep]
    names = [sl.get("name", "slot %d" % sl.get("slot", j))
             for j, sl in enumerate((man.get("feature_stats") or {}).get("slots") or [])]
    bad = nonfinite(x, names)
    if bad:
        sys.exit("retrain: the joined rows are not all finite: %s; refusing to train" % bad)
    n = len(y)
    cut = n - int(n * a.holdout)
    report = {"served": {"name": man["name"], "manifest": a.served}, "records": len(log), "row_log": torn, "join": data["stats"],
              "rows": n,
              "clicks": int(y.sum()), "train_rows": cut, "heldout_rows": n - cut,
              "heldout_clicks": int(y[cut:].sum()), "heldout_from_unix": float(t[cut] / 1e9) if cut < n else None,
              "rule": "promote the lowest log loss candidate if below the served model's with |calibration - 1| <= %g"
                      % MAX_CALIBRATION_ERROR}
    if cut < 1 or report["heldout_clicks"] < a.min_clicks or y[:cut].sum() < 1:
        report["decision"] = "no decision: %d rows, %d held-out clicks (want %d)" % (
            n, report["heldout_clicks"], a.min_clicks)
        return finish(a, report)
    xt, yt, xh, yh = x[:cut], y[:cut], x[cut:], y[cut:]
    report["served"]["heldout"] = metrics(yh, wdi.predict(p, xh))
    cands = {}
    rescaled = {}  # scale_l2 -> (params, info): one rescale serves every candidate that starts from it
    for name, scale_l2, l2 in CANDIDATES:
        t0 = time.time()
        q, info = p, {}
        if scale_l2 is not None:
            if scale_l2 not in rescaled:
                rescaled[scale_l2] = rescale(p, xt, yt, scale_l2)
            q, info = rescaled[scale_l2]
            info = dict(info, scale_l2=scale_l2)
        if l2 is not None:
            q, more = refit(q, xt, yt, l2)
            info.update(more, l2=l2)
        m = metrics(yh, wdi.predict(q, xh))
        m.update(info, train_seconds=round(time.time() - t0, 1))
        cands[name] = (q, m)
        print("retrain: %s: %s" % (name, json.dumps(m)), file=sys.stderr)
    report["candidates"] = {k: m for k, (_, m) in cands.items()}
    best = min(cands, key=lambda k: cands[k][1]["logloss"])
    bm, sm = cands[best][1], report["served"]["heldout"]
    better = bm["logloss"] < sm["logloss"]
    calibrated = abs(bm["calibration"] - 1) <= MAX_CALIBRATION_ERROR
    report["best"] = best
    if not (better and calibrated):
        report["decision"] = "keep %s: best candidate %s log loss %.6f (served %.6f), calibration %.4f" % (
            man["name"], best, bm["logloss"], sm["logloss"], bm["calibration"])
    elif a.dry_run:
        report["decision"] = "would promote %s (dry run)" % best
    else:
        base = retrain_base(man["name"])
        name = "%s-r%d" % (base, int(time.time()))
        report["promoted"] = name
        report["decision"] = "promote %s as %s: log loss %.6f < %.6f, calibration %.4f" % (
            best, name, bm["logloss"], sm["logloss"], bm["calibration"])
        training = {"script": "ctr/train/retrain.py (candidate %s, warm-started from %s)" % (best, man["name"]),
                    "data": "row log %s joined with event log %s (the bidder's own shown bids), bids from unix %g on"
                            % (a.rows, a.events, a.since),
                    "rows": int(cut), "clicks": int(yt.sum()),
                    "from_unix": float(t[0] / 1e9), "to_unix": float(t[cut - 1] / 1e9),
                    "heldout_rows": n - cut, "heldout_clicks": report["heldout_clicks"],
                    "candidate": dict(bm)}
        promote(a.served, man, cands[best][0], name, xt, yt, a.featurestats, report, training)
    return finish(a, report)


def retrain_base(name):
    """The served model's name without the "-rUNIXTIME" an earlier retrain
    added (only that suffix: "ctr-ranker" stays whole)."""
    return re.sub(r"-r\d+$", "", name)


def finish(a, report):
    print("retrain: " + report["decision"], file=sys.stderr)
    if a.report:
        with open(a.report, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
