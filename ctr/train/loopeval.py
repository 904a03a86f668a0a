#!/usr/bin/python3
"""The served model's quality by phase of a closed-loop run, from the
bidder's own logs (row log + event log): what `make retrain` is judged by.

    /usr/bin/python3 ctr/train/loopeval.py --rows ROW_LOG --events EVENTS.jsonl \\
        --phase NAME=FROM:TO ... [--old MANIFEST] [--settle 0]

Each --phase takes the shown bids logged in [FROM, TO) (unix seconds) and
reports AUC, log loss and calibration of the pCTR the bidder served (logged
in the row log) and the models that served it. With --old (the model served
before a promotion), the same rows are also scored by that model (numpy
reference of the graph), so a phase served by a new model can be compared
with the old one on the very same traffic. With --truth (the simulator's
impressions.jsonl, `simulator run -log DIR`), the same rows are scored by the
ground truth's click probability (eval.true_ctr, joined by request and imp
id): the best any model could do on that phase's traffic.
Needs python3-numpy (and python3-onnx for --old).
"""
import argparse
import json
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rowlog  # noqa: E402
from evalmetrics import auc, calibration, logloss  # noqa: E402


def m(y, p):
    return {"auc": round(auc(y, p), 4), "logloss": round(logloss(y, p), 5), "calibration": round(calibration(y, p), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--phase", action="append", default=[], help="NAME=FROM:TO (unix seconds)")
    ap.add_argument("--old", default="", help="manifest of the model served before a promotion")
    ap.add_argument("--truth", default="", help="the simulator's impressions.jsonl (eval.true_ctr)")
    ap.add_argument("--settle", type=float, default=0)
    a = ap.parse_args()
    log = rowlog.read_logs(a.rows)
    shown, clicked, last = rowlog.read_events(a.events)
    d = rowlog.join(log, shown, clicked, last, a.settle)
    old = None
    if a.old:
        import onnx
        import wide_deep_ids as wdi
        man = json.load(open(a.old))
        old = wdi.params_from_ids_graph(onnx.load(os.path.join(os.path.dirname(os.path.abspath(a.old)), man["file"])),
                                        man["wide_deep_ids"])
    truth = None
    if a.truth:
        tc = {}
        with open(a.truth) as f:
            for line in f:
                r = json.loads(line)
                tc[(r["request_id"], r["imp_id"])] = r["eval"]["true_ctr"]
        truth = np.array([tc.get(k, np.nan) for k in d["key"]])
    out = {}
    for ph in a.phase:
        name, _, span = ph.partition("=")
        lo, _, hi = span.partition(":")
        sel = (d["time"] >= float(lo) * 1e9) & (d["time"] < float(hi) * 1e9)
        y = d["y"][sel]
        r = {"rows": int(sel.sum()), "clicks": int(y.sum()),
             "models": dict(Counter(np.asarray(d["model"], object)[sel].tolist())),
             "served": m(y, d["pctr"][sel]) if y.sum() else None}
        if old is not None and y.sum():
            r["old_model"] = m(y, wdi.predict(old, d["x"][sel]))
        if truth is not None and y.sum():
            tt = truth[sel]
            ok = ~np.isnan(tt)
            r["truth"] = dict(m(y[ok], tt[ok]), rows=int(ok.sum()))
        out[name] = r
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
