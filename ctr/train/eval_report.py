#!/usr/bin/python3
"""Evaluation report of the bundled CTR models against the simulator's ground truth.

    /usr/bin/python3 ctr/train/eval_report.py --data ROWS_DIR --models configs/models
        [--pred PRED_DIR] [--sim-report report.json] [--test-fraction 0.25]

Reads the featurized rows (rows.f32 / rows.json from features/cmd/featurize:
features, click label, ground-truth probability), takes the held-out part the
training scripts used (the last int(n x 0.25) rows), and compares on it:
  * the ground truth itself (the oracle: eval.true_ctr, the best possible),
  * each model as the Go serving path scores it (PRED_DIR/gbdt.pred.f32 and
    onnx.pred.f32 from ctr/train/servescore), else the training framework's
    metrics from the model manifests.
Writes MODELS/EVAL.md (AUC, log loss, mean predicted vs observed CTR, the
issue's targets, calibration by decile) and MODELS/calibration.svg (deciles of
predicted CTR against observed clicks and the mean true CTR, hand-written SVG).
Needs numpy only.
"""
import argparse
import json
import os
import sys

import numpy as np

TARGETS = {"gbdt": 0.02, "onnx": 0.01}  # largest AUC gap to the ground truth (issue 5)
MEAN_TOL = 0.05  # mean predicted CTR within 5% of observed
MODELS = [("gbdt", "gbdt.manifest.json", "GBDT (leaves, Go)"), ("onnx", "mlp.manifest.json", "ONNX wide & deep (ORT CPU, Go)")]
COLORS = {"gbdt": "#1f77b4", "onnx": "#d62728", "oracle": "#2ca02c"}


def auc(y, p):
    order = np.argsort(p, kind="mergesort")
    _, start, counts = np.unique(p[order], return_index=True, return_counts=True)
    ranks = np.empty(len(p))
    ranks[order] = np.repeat(start + (counts + 1) / 2.0, counts)  # ties share their mean rank
    pos = y.sum()
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * (len(y) - pos)))


def logloss(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def deciles(y, p, truth):
    order = np.argsort(p, kind="mergesort")
    return [{"rows": int(len(c)), "mean_predicted": float(p[c].mean()), "observed": float(y[c].mean()),
             "mean_true": float(truth[c].mean())} for c in np.array_split(order, 10)]


def evaluate(y, p, truth):
    return {"auc": auc(y, p), "logloss": logloss(y, p), "mean_predicted_ctr": float(p.mean()),
            "observed_ctr": float(y.mean()), "deciles": deciles(y, p, truth)}


def fnv_user(seed, uid):
    """The simulator's h("user", uid) in [-1, 1] (simulator/truth.go GroundTruth.h)."""
    h = 0xcbf29ce484222325
    for c in seed.to_bytes(8, "little") + b"user\0" + uid.encode():
        h = ((h ^ c) * 0x100000001b3) & 0xffffffffffffffff
    return (h >> 11) / float(1 << 53) * 2 - 1


def visible_ceiling(data_dir, truth, seed, weight):
    """The best a model can do without knowing who the user is (schema v1 had
    no slot for user.id; under v2 a model that has seen a user rarely, or a
    request without user-level consent, is in the same place).

    The ground truth adds weight x h(user.id) to the logit; a user-blind
    prediction averages it out:
    E_u[sigmoid(logit(p) - w h(row's user) + w h(u))] over the users of the
    held-out traffic (a 1000-row sample, traffic-weighted). Evaluation only."""
    path = os.path.join(data_dir, "rows.keys")
    if not os.path.exists(path):
        return None, None
    users = [l.rstrip("\n").split("\t")[2] for l in open(path)][-len(truth):]
    if "" in users:
        # featurize leaves the id out where a request allows no user-level
        # data; the ceilings need every row's (featurize -keys-all-users).
        print("eval_report: rows.keys lacks user ids (featurize without -keys-all-users): no user ceilings", file=sys.stderr)
        return None, None
    cache = {}
    hu = np.array([cache.setdefault(u, fnv_user(seed, u)) for u in users])
    z = np.log(truth / (1 - truth)) - weight * hu
    corr = float(np.corrcoef(hu, np.log(truth / (1 - truth)))[0, 1])
    sample = weight * hu[np.random.default_rng(1).integers(0, len(hu), 1000)]
    out = np.empty(len(z))
    for i in range(0, len(z), 2048):
        out[i:i + 2048] = (1 / (1 + np.exp(-(z[i:i + 2048, None] + sample[None, :])))).mean(1)
    return out, corr


def data_limited_ceiling(data_dir, frac, val_fraction, seed, weight, grid=41):
    """The best a model trained on these rows could do about the user term.

    Everything in the ground truth but weight x h(user) is taken as known
    exactly; h(user) of each held-out row's user is replaced by its posterior
    mean given that user's training impressions (the rows before the
    validation and held-out parts, with their labels), under the truth's own
    prior (h uniform on [-1, 1], a grid of `grid` points). A user never seen in
    training keeps the prior: the user-blind average. No model of these rows
    can know more about the users than this, so its AUC bounds what the user
    slot can give at this data size. Evaluation only."""
    path = os.path.join(data_dir, "rows.keys")
    if not os.path.exists(path):
        return None
    meta = json.load(open(os.path.join(data_dir, "rows.json")))
    w = meta["width"]
    raw = np.memmap(os.path.join(data_dir, "rows.f32"), dtype="<f4", mode="r").reshape(-1, w + 2)
    n = len(raw)
    n_test = int(n * frac)
    n_train = int((n - n_test) * (1 - val_fraction))
    y = np.array(raw[:, w], dtype=np.float64)
    truth = np.array(raw[:, w + 1], dtype=np.float64)
    users = np.array([l.rstrip("\n").split("\t")[2] for l in open(path)], dtype=object)
    if (users == "").any():
        return None  # no ids for some rows: see visible_ceiling
    uniq, uid = np.unique(users, return_inverse=True)
    hu = np.array([fnv_user(seed, u) for u in uniq])[uid]
    z = np.log(truth / (1 - truth)) - weight * hu  # the logit without the user term
    hs = np.linspace(-1, 1, grid)
    loglik = np.zeros((len(uniq), grid))
    for i in range(0, n_train, 1 << 20):
        j = min(i + (1 << 20), n_train)
        pz = 1 / (1 + np.exp(-(z[i:j, None] + weight * hs[None, :])))
        ll = np.where(y[i:j, None] > 0, np.log(pz), np.log1p(-pz))
        for g in range(grid):
            loglik[:, g] += np.bincount(uid[i:j], weights=ll[:, g], minlength=len(uniq))
    post = np.exp(loglik - loglik.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    te = slice(n - n_test, n)
    pt = post[uid[te]]  # posterior over the grid of each held-out row's user
    pred = (pt * (1 / (1 + np.exp(-(z[te, None] + weight * hs[None, :]))))).sum(1)
    seen = np.bincount(uid[:n_train], minlength=len(uniq))[uid[te]]
    return pred, {"train_rows": int(n_train), "heldout_rows_user_seen": float((seen > 0).mean()),
                  "heldout_rows_user_seen_100": float((seen >= 100).mean()),
                  "heldout_rows_user_seen_1000": float((seen >= 1000).mean())}


def load_rows(data_dir, frac):
    meta = json.load(open(os.path.join(data_dir, "rows.json")))
    w = meta["width"]
    raw = np.fromfile(os.path.join(data_dir, "rows.f32"), dtype="<f4").reshape(-1, w + 2)
    n_test = int(len(raw) * frac)
    te = raw[len(raw) - n_test:]
    return meta, te[:, w].astype(np.float64), te[:, w + 1].astype(np.float64)


def svg_plot(series, path):
    """series: list of (label, color, deciles); x mean predicted, y observed (dots) and mean true (crosses)."""
    W, H, L, R, T, B = 640, 480, 70, 20, 40, 60
    top = max(max(d["mean_predicted"], d["observed"], d["mean_true"]) for _, _, ds in series for d in ds) * 1.05
    sx = lambda v: L + v / top * (W - L - R)
    sy = lambda v: H - B - v / top * (H - T - B)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15">Calibration on held-out simulator impressions (deciles of predicted CTR)</text>' % L,
           '<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="4,4"/>' % (sx(0), sy(0), sx(top), sy(top))]
    for i in range(6):
        v = top * i / 5
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>' % (sx(0), sy(v), sx(top), sy(v)))
        out.append('<text x="%.1f" y="%.1f" text-anchor="end">%.4f</text>' % (L - 6, sy(v) + 4, v))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%.4f</text>' % (sx(v), H - B + 18, v))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, H - B, W - R, H - B))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, T, L, H - B))
    out.append('<text x="%.1f" y="%d" text-anchor="middle">mean predicted CTR in the decile</text>' % ((L + W - R) / 2, H - 18))
    out.append('<text transform="translate(18,%.1f) rotate(-90)" text-anchor="middle">observed CTR (dots, line) / mean true CTR (x)</text>' % ((T + H - B) / 2))
    for k, (label, color, ds) in enumerate(series):
        pts = " ".join("%.1f,%.1f" % (sx(d["mean_predicted"]), sy(d["observed"])) for d in ds)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>' % (pts, color))
        for d in ds:
            x, yo, yt = sx(d["mean_predicted"]), sy(d["observed"]), sy(d["mean_true"])
            out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (x, yo, color))
            out.append('<path d="M%.1f %.1fl6 6m0 -6l-6 6" stroke="%s" stroke-width="1.2"/>' % (x - 3, yt - 3, color))
        ly = T + 14 + 18 * k
        out.append('<circle cx="%d" cy="%d" r="4" fill="%s"/><text x="%d" y="%d">%s</text>' % (L + 16, ly - 4, color, L + 26, ly, label))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def fmt_deciles(ds):
    rows = ["| decile | rows | mean predicted | observed | mean true |", "|---|---|---|---|---|"]
    rows += ["| %d | %d | %.5f | %.5f | %.5f |" % (i + 1, d["rows"], d["mean_predicted"], d["observed"], d["mean_true"])
             for i, d in enumerate(ds)]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--pred", default="", help="servescore output directory (default DATA/../pred)")
    ap.add_argument("--sim-report", default="")
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--ctr-seed", type=int, default=0, help="the simulator's -ctr-seed (for the visible ceiling)")
    ap.add_argument("--user-weight", type=float, default=0.40, help="ground truth's user term x -ctr-scale")
    ap.add_argument("--val-fraction", type=float, default=0.05, help="mlp_train.py's --val-fraction (training rows the ceiling may use)")
    a = ap.parse_args()
    pred_dir = a.pred or os.path.join(os.path.dirname(os.path.abspath(a.data)), "pred")
    meta, y, truth = load_rows(a.data, a.test_fraction)
    oracle = evaluate(y, truth, truth)
    lines = ["# CTR model evaluation (generated by ctr/train/eval_report.py; do not edit)", "",
             "Held-out data: the last %d of %d featurized simulator impressions (%d clicks, observed CTR %.5f, "
             "mean true CTR %.5f); %d publishers, %d campaigns, %d creatives; simulator seed %s."
             % (len(y), meta["rows"], int(y.sum()), y.mean(), truth.mean(), meta.get("publishers", 0),
                meta.get("campaigns", 0), meta.get("creatives", 0), meta.get("seed", "?")), ""]
    if a.sim_report and os.path.exists(a.sim_report):
        r = json.load(open(a.sim_report))
        lines += ["Simulator run: %d requests (%.0f/s), %d timeouts, %d impressions, %d clicks." % (
            r["requests"], r["send_rate"], r["timeouts"], r["impressions"], r["clicks"]), ""]
    ceil, corr = visible_ceiling(a.data, truth, a.ctr_seed, a.user_weight)
    if ceil is not None:
        cm = evaluate(y, ceil, truth)
        summary_ceiling = {k: v for k, v in cm.items() if k != "deciles"}
        summary_ceiling["corr_h_user_logit"] = corr
        lines += ["User-blind ceiling: the ground truth adds %.2f x h(user.id) to the logit. Averaging that term out "
                  "of the ground truth (evaluation only; correlation of the recomputed h(user) with logit(true CTR): "
                  "%.2f) gives AUC %.4f and log loss %.5f: the best a model can reach without knowing the user, as "
                  "under schema v1, which had no user slot. Schema v2 has one (a hashed user id), so a model can "
                  "go past this line only by learning the users it has seen often enough." % (
                      a.user_weight, corr, cm["auc"], cm["logloss"]), ""]
    dl = data_limited_ceiling(a.data, a.test_fraction, a.val_fraction, a.ctr_seed, a.user_weight)
    if dl is not None:
        dlp, dls = dl
        dm = evaluate(y, dlp, truth)
        summary_dl = {k: v for k, v in dm.items() if k != "deciles"}
        summary_dl.update(dls)
        lines += ["Data-limited ceiling: the ground truth with h(user.id) replaced by its posterior mean given "
                  "that user's impressions and clicks among the %d training rows (every other term taken as known; evaluation only). "
                  "%.1f%% of the held-out impressions come from users seen in training, %.1f%% from users seen at "
                  "least 100 times, %.1f%% at least 1000 times. AUC %.4f, log loss %.5f: what the user slot can give "
                  "at this data size: about the most a model trained on these rows can reach." % (
                      dls["train_rows"], 100 * dls["heldout_rows_user_seen"], 100 * dls["heldout_rows_user_seen_100"],
                      100 * dls["heldout_rows_user_seen_1000"], dm["auc"], dm["logloss"]), ""]
    lines += ["| model | scored by | AUC | oracle AUC | AUC gap (target) | log loss | oracle log loss | mean pCTR | observed CTR | mean vs observed (target 5%) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    series, details, summary = [], [], {"oracle": {k: v for k, v in oracle.items() if k != "deciles"}}
    if ceil is not None:
        summary["user_blind_ceiling"] = summary_ceiling
    if dl is not None:
        summary["data_limited_ceiling"] = summary_dl
    for kind, mf, label in MODELS:
        mpath = os.path.join(a.models, mf)
        if not os.path.exists(mpath):
            continue
        man = json.load(open(mpath))
        ppath = os.path.join(pred_dir, kind + ".pred.f32")
        if os.path.exists(ppath):
            p = np.fromfile(ppath, dtype="<f4").astype(np.float64)
            if len(p) != len(y):
                sys.exit("%s has %d predictions for %d held-out rows" % (ppath, len(p), len(y)))
            m, by = evaluate(y, p, truth), "Go serving path"
        else:
            mm = man["metrics"]
            m = {k: mm[k] for k in ("auc", "logloss", "mean_predicted_ctr", "observed_ctr")}
            m["deciles"] = [dict(d, mean_true=float("nan")) for d in mm.get("calibration_deciles", [])]
            by = "training framework (manifest)"
        gap, rel = oracle["auc"] - m["auc"], m["mean_predicted_ctr"] / m["observed_ctr"] - 1
        ok_auc, ok_mean = gap <= TARGETS[kind], abs(rel) <= MEAN_TOL
        lines.append("| %s | %s | %.4f | %.4f | %.4f (%.2f) %s | %.5f | %.5f | %.5f | %.5f | %+.1f%% %s |" % (
            man["name"], by, m["auc"], oracle["auc"], gap, TARGETS[kind], "met" if ok_auc else "**missed**",
            m["logloss"], oracle["logloss"], m["mean_predicted_ctr"], m["observed_ctr"], 100 * rel,
            "met" if ok_mean else "**missed**"))
        summary[kind] = {k: v for k, v in m.items() if k != "deciles"}
        if ceil is not None:
            summary[kind]["auc_over_user_blind_ceiling"] = m["auc"] - cm["auc"]
        summary[kind].update(auc_gap=gap, auc_target_met=ok_auc, mean_rel_error=rel, mean_target_met=ok_mean,
                             framework_auc=man["metrics"].get("auc"), framework_logloss=man["metrics"].get("logloss"))
        series.append((label, COLORS[kind], m["deciles"]))
        details += ["", "### %s (%s): calibration by decile of predicted CTR" % (man["name"], label), ""]
        details += fmt_deciles(m["deciles"])
        details += ["", "Training framework on its held-out rows (manifest): AUC %.4f, log loss %.5f." % (
            man["metrics"]["auc"], man["metrics"]["logloss"])]
    series.append(("ground truth (oracle)", COLORS["oracle"], oracle["deciles"]))
    lines += ["| ground truth | eval.true_ctr | %.4f | | | %.5f | | %.5f | %.5f | |" % (
        oracle["auc"], oracle["logloss"], oracle["mean_predicted_ctr"], oracle["observed_ctr"])]
    if ceil is not None:
        lines.append("| user-blind ceiling | ground truth without h(user.id) | %.4f | | %.4f below the oracle | %.5f | | %.5f | %.5f | |" % (
            cm["auc"], oracle["auc"] - cm["auc"], cm["logloss"], cm["mean_predicted_ctr"], cm["observed_ctr"]))
    if dl is not None:
        lines.append("| data-limited ceiling | ground truth, h(user.id) from the training rows | %.4f | | %.4f below the oracle | %.5f | | %.5f | %.5f | |" % (
            dm["auc"], oracle["auc"] - dm["auc"], dm["logloss"], dm["mean_predicted_ctr"], dm["observed_ctr"]))
    lines.append("")
    lines += ["![calibration](calibration.svg)", "", "## Calibration"] + details
    lines += ["", "### Ground truth: calibration by decile of the true CTR", ""] + fmt_deciles(oracle["deciles"])
    svg_plot(series, os.path.join(a.models, "calibration.svg"))
    with open(os.path.join(a.models, "EVAL.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(a.models, "eval.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(summary, sort_keys=True), file=sys.stderr)


if __name__ == "__main__":
    main()
