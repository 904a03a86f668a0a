#!/usr/bin/python3
"""Train the neural CTR model and export it to ONNX for ctr.LoadONNX.

    /usr/bin/python3 ctr/train/mlp_train.py [--out configs/models] [--name mlp]
        [--data ROWS.csv] [--tiny] [--seed 1]

Model: wide & deep (CTRNet below). ONNX graph, opset 17 (ONNX Runtime 1.24
accepts it), output "pctr" [N, 1] float32 probabilities, dynamic N, in one of
two input forms (the manifest's input_form):
  wide_deep_ids (default): the graph only looks up and adds; the serving code
    (ctr, Go) converts each feature row to int32 table rows and clamped
    numbers as the manifest's wide_deep_ids section says
    (ctr/train/wide_deep_ids.py). A deep part whose last layer is all 0 (the
    kept epoch was 0) adds exactly 0 and is left out of the graph.
  rows (--input-form rows): input "features" [N, W] float32, the id
    arithmetic in the graph (torch.onnx.export of CTRNet); the form of the
    models before wide_deep_ids. ctr/train/reexport.py turns one into the
    other with the same weights.

The slot layout (width, schema version, categorical bucket counts) is read
from features/schema.go so the model always matches the running extractor.

Data: --data DIR reads rows.f32 / rows.json written by features/cmd/featurize
from simulator logs (features, click label and ground-truth probability per
row; the oracle metrics come from the latter), holds out the last
int(0.25 n) rows and trains on the rest: the same split as
ctr/train/gbdt_train.py and servescore -heldout 0.25 (evalmetrics.heldout_start).
(Before that helper this script cut at int(0.75 n), which held out one row
more when 0.25 n is not a whole number.)
Without --data (the --tiny test model) the script draws rows from the schema
with its own hidden logistic model and a fixed seed; the manifest says which
in training.data. ctr/train/make_models.sh (make models) runs the whole
pipeline; the tiny test models are rebuilt with
    /usr/bin/python3 ctr/train/mlp_train.py --tiny --input-form rows --out ctr/testdata --name mlp_tiny_rows --seed 1
    /usr/bin/python3 ctr/train/reexport.py ctr/testdata/mlp_tiny_rows.manifest.json ctr/testdata --name mlp_tiny

Writes NAME.onnx, NAME.manifest.json and NAME.parity.json into --out. Rows
holding NaN or Inf (a feature, the label, the true CTR) are refused before
training, naming the columns and row counts, and nothing is written; a
manifest is never written with a NaN in it (not JSON).
Needs Debian's python3-torch, python3-onnx and python3-numpy.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wide_deep_ids as wdi  # noqa: E402
from evalmetrics import heldout_start, nonfinite  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read_schema(path):
    src = open(path).read()
    version = re.search(r'const SchemaVersion = "([^"]+)"', src).group(1)
    imp = int(re.search(r"ImpWidth\s*=\s*(\d+)", src).group(1))
    ad = int(re.search(r"AdWidth\s*=\s*(\d+)", src).group(1))
    body = src[src.index("var Slots = [Width]Slot{"):]
    slots = []
    for m in re.finditer(r'\{Name: "([^"]+)"(?:, Buckets: (\d+))?(?:, User: true)?\}', body):
        slots.append((m.group(1), int(m.group(2) or 0)))
        if len(slots) == imp + ad:
            break
    if len(slots) != imp + ad:
        sys.exit("schema.go: found %d slots, want %d" % (len(slots), imp + ad))
    return version, imp + ad, slots


NUMERIC = {  # plausible synthetic values per numeric slot name
    "device_type": [0, 1, 2, 4, 5], "conn_type": [0, 2, 3, 6], "hour_local": list(range(-1, 24)),
    "day_of_week_local": list(range(-1, 7)), "tmax_ms": [0, 100, 120, 150, 300], "secure": [-1, 0, 1],
    "instl": [0, 1], "is_app": [0, 1], "imp_formats": [1, 2, 3, 8], "imp_w": [0, 300, 320, 728, 160],
    "imp_h": [0, 250, 50, 90, 600], "format_count": [0, 1, 2, 3], "pos": [0, 1, 3, 7],
    "video_maxdur": [0, 15, 30, 60], "video_plcmt": [0, 1, 2, 3], "deals": [0, 1, 1.5, 2],
    "limit_ad_tracking": [-1, 0, 1], "has_user_id": [0, 1], "segments": [0, 1, 2, 5, 10],
    "user_age": [0, 18, 25, 35, 50, 65], "gender": [0, 1, 2, 3], "ad_format": [1, 2, 4],
    "ad_w": [0, 300, 320, 728], "ad_h": [0, 250, 50, 90], "ad_fit": [0, 1],
}


def synth(rng, slots, n):
    """Rows drawn from the schema and labels from a hidden logistic model."""
    w = len(slots)
    x = np.zeros((n, w), dtype=np.float32)
    logit = np.full(n, -4.0)
    for j, (name, buckets) in enumerate(slots):
        if buckets:
            vocab = min(buckets - 1, 2000)
            ids = np.minimum(rng.zipf(1.3, n), vocab)  # Zipf over the first ids
            ids = np.where(rng.random(n) < 0.05, 0, ids)
            x[:, j] = ids
            effect = rng.normal(0, 0.35, vocab + 1)  # hidden per-bucket effect
            logit += effect[ids] * (1.0 if j % 3 else 0.5)
        else:
            vals = np.array(NUMERIC.get(name, [0, 1, 2]), dtype=np.float32)
            if name == "log_floor":
                x[:, j] = np.log1p(rng.exponential(1.0, n)).astype(np.float32)
                logit -= 0.3 * x[:, j]
            else:
                x[:, j] = vals[rng.integers(0, len(vals), n)]
                logit += rng.normal(0, 0.15) * (x[:, j] - vals.mean()) / (vals.std() + 1e-6)
    names = [s[0] for s in slots]
    if "ad_fit" in names:
        logit += 0.6 * x[:, names.index("ad_fit")]
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.float32)
    return x, y, p


# Crosses of the wide part: every ad-side id with every one of these request
# slots (the cross-product transformations of wide & deep: which ad works
# where). Each cross is hashed into CROSS_BUCKETS rows of one weight.
CROSS_AD = ["campaign", "creative"]
CROSS_CTX = ["country", "region", "os", "device_type", "publisher", "imp_size", "hour_local"]
CROSS_BUCKETS = 1 << 16
CROSS_MUL = 1000003  # id_a * CROSS_MUL + id_b, mod CROSS_BUCKETS (int64: no overflow for ids < 2^24)
SMALL_INT_SIZE = 256  # numeric slots holding small integers get a table of values -1..254


class CTRNet(nn.Module):
    """Wide & deep CTR model over one feature row.

    Wide: one weight per (slot, id) for every categorical slot (full bucket
    tables, no cap), for every numeric slot whose training values are small
    integers (device type, hour, ...: value + 1, clamped to [0, 255]), and for
    the hashed crosses of the ad slots with the request slots in CROSS_CTX;
    their sum is a logit, as a logistic regression over one-hot ids.
    Deep: an embedding (dim, ids mod cap) per categorical slot and the
    standardised numeric slots (clamped to their training range), into an MLP
    whose output adds to the logit.

    The graph is shaped for ONNX Runtime's CPU kernels: the id columns are
    picked out of the row with one MatMul against a 0/1 selection matrix
    (a Gather on axis 1 costs several times more), every table lives in one
    Embedding with offsets, and the numeric slots' standardisation is folded
    into the first layer's weights at export."""

    def __init__(self, slots, mean, std, small_int, cap, dim, hidden, wide_cap=0, cross_buckets=CROSS_BUCKETS,
                 num_lo=None, num_hi=None):
        super().__init__()
        names = [n for n, _ in slots]
        cat = [j for j, (_, b) in enumerate(slots) if b]
        small = [j for j in small_int if not slots[j][1]]
        cols = cat + small
        sel = np.zeros((len(slots), len(cols)), np.float32)
        for k, j in enumerate(cols):
            sel[j, k] = 1
        shift_ids = np.array([0] * len(cat) + [1] * len(small), np.float32)  # small ints: value + 1
        wide_sizes = [slots[j][1] for j in cat] + [SMALL_INT_SIZE] * len(small)
        if wide_cap:
            wide_sizes = [min(s, wide_cap) for s in wide_sizes]
        crosses = [(cols.index(names.index(a)), cols.index(names.index(c)))
                   for a in CROSS_AD if a in names for c in CROSS_CTX if c in names and names.index(c) in cols]
        wide_offsets = np.concatenate([[0], np.cumsum(wide_sizes)])
        deep_sizes = [min(slots[j][1], cap) for j in cat]
        deep_offsets = np.concatenate([[0], np.cumsum(deep_sizes)[:-1]])
        is_num = np.array([b == 0 for _, b in slots])
        scale = np.where(is_num, 1.0 / std, 0.0).astype(np.float32)  # categorical columns: weight 0
        self.register_buffer("sel", torch.tensor(sel))
        self.register_buffer("shift_ids", torch.tensor(shift_ids))
        self.register_buffer("lo", torch.zeros(len(cols)))
        self.register_buffer("hi", torch.tensor([float(2 ** 24)] * len(cat) + [float(SMALL_INT_SIZE - 1)] * len(small)))
        self.register_buffer("wide_sizes", torch.tensor(wide_sizes, dtype=torch.long))
        self.register_buffer("wide_offsets", torch.tensor(wide_offsets[:-1], dtype=torch.long))
        self.register_buffer("cross_a", torch.tensor([a for a, _ in crosses], dtype=torch.long))
        self.register_buffer("cross_b", torch.tensor([b for _, b in crosses], dtype=torch.long))
        self.register_buffer("cross_offsets", torch.tensor(
            [int(wide_offsets[-1]) + k * cross_buckets for k in range(len(crosses))], dtype=torch.long))
        self.cross_buckets = cross_buckets
        self.ncat = len(cat)
        self.register_buffer("deep_sizes", torch.tensor(deep_sizes, dtype=torch.long))
        self.register_buffer("deep_offsets", torch.tensor(deep_offsets, dtype=torch.long))
        self.register_buffer("scale", torch.tensor(scale))
        # The deep part sees each numeric slot clamped to its training range:
        # a value never seen in training (a slot constant in the training
        # data, a new creative size) cannot push the MLP where it never was.
        w = len(slots)
        self.register_buffer("num_lo", torch.tensor(num_lo if num_lo is not None else np.full(w, -3e38), dtype=torch.float32))
        self.register_buffer("num_hi", torch.tensor(num_hi if num_hi is not None else np.full(w, 3e38), dtype=torch.float32))
        self.register_buffer("shift", torch.tensor(-mean * scale, dtype=torch.float32))
        self.folded = False
        self.wide = nn.Embedding(int(wide_offsets[-1]) + len(crosses) * cross_buckets, 1)
        nn.init.zeros_(self.wide.weight)
        self.emb = nn.Embedding(int(sum(deep_sizes)), dim)
        nn.init.normal_(self.emb.weight, 0, 0.05)
        self.first_emb = nn.Linear(len(cat) * dim, hidden[0])
        self.first_num = nn.Linear(len(slots), hidden[0], bias=False)
        layers, width = [nn.ReLU()], hidden[0]
        for h in hidden[1:]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.bias = nn.Parameter(torch.zeros(1))
        self.crosses = ["%s*%s" % (names[cols[a]], names[cols[b]]) for a, b in crosses]
        self.wide_slots = [names[j] for j in cols]

    def fold(self):
        """Fold (x*scale + shift) into first_num, for export."""
        with torch.no_grad():
            w = self.first_num.weight
            self.first_emb.bias += w @ self.shift
            w *= self.scale
        self.folded = True

    def wide_index(self, features):
        """Row index into self.wide of every wide table (slots, then crosses): [N, T] int64."""
        raw = torch.matmul(features, self.sel) + self.shift_ids
        ids = torch.minimum(torch.maximum(raw, self.lo), self.hi).long()
        wide_ids = torch.remainder(ids, self.wide_sizes) + self.wide_offsets
        a, b = ids[:, self.cross_a], ids[:, self.cross_b]
        cross_ids = torch.remainder(a * CROSS_MUL + b, self.cross_buckets) + self.cross_offsets
        return torch.cat([wide_ids, cross_ids], 1)

    def logit(self, features):
        raw = torch.matmul(features, self.sel) + self.shift_ids
        ids = torch.minimum(torch.maximum(raw, self.lo), self.hi).long()  # small ints clamped to their table
        wide_ids = torch.remainder(ids, self.wide_sizes) + self.wide_offsets
        a, b = ids[:, self.cross_a], ids[:, self.cross_b]
        cross_ids = torch.remainder(a * CROSS_MUL + b, self.cross_buckets) + self.cross_offsets
        wide = self.wide(torch.cat([wide_ids, cross_ids], 1)).sum(1)
        deep_ids = torch.remainder(ids[:, :self.ncat], self.deep_sizes) + self.deep_offsets
        e = self.emb(deep_ids).flatten(1)
        clamped = torch.minimum(torch.maximum(features, self.num_lo), self.num_hi)
        num = clamped if self.folded else clamped * self.scale + self.shift
        return self.mlp(self.first_emb(e) + self.first_num(num)) + wide + self.bias

    def forward(self, features):
        return torch.sigmoid(self.logit(features))


def fit_wide(net, x, y, l2_main, l2_cross, sweeps, log=None):
    """Fit the wide part alone as what it is, an L2-penalised logistic
    regression over one-hot ids (a random-effects model: each table's ids
    draw their effects from a normal prior): block Gauss-Seidel over the
    tables, one Newton step per id and table per sweep (gradient and Hessian
    of the total log loss plus lambda_t x w^2, summed per id with bincount),
    the intercept in net.bias. Exact where Adam on sparse rows is not: a rare
    id gets the shrinkage its prior asks for, a frequent one its full effect.

    Each table's prior is estimated from the data (empirical Bayes, an EM
    step per sweep after the first): sigma_t^2 = mean over the ids seen of
    w^2 + 1/h (the effect and its posterior variance), lambda_t =
    1/(2 sigma_t^2). A cross that carries nothing gets a tight prior, one
    that matters a loose one; l2_main and l2_cross are the starting values.
    Returns the lambda of every table."""
    n, chunk = len(x), 1 << 20
    idx = np.empty((n, len(net.wide_slots) + len(net.crosses)), np.int32)
    with torch.no_grad():
        for i in range(0, n, chunk):
            idx[i:i + chunk] = net.wide_index(torch.from_numpy(x[i:i + chunk])).numpy()
    nmain = len(net.wide_slots)
    lam = np.array([l2_main] * nmain + [l2_cross] * (idx.shape[1] - nmain), np.float64)
    w = np.zeros(net.wide.weight.shape[0])
    bias = math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6))
    z = np.full(n, bias)
    y = y.astype(np.float64)
    for sweep in range(sweeps):
        for t in range(idx.shape[1]):
            ids = idx[:, t]
            p = 1 / (1 + np.exp(-z))
            lo, hi = int(ids.min()), int(ids.max()) + 1
            cnt = np.bincount(ids - lo, minlength=hi - lo)
            g = np.bincount(ids - lo, weights=y - p, minlength=hi - lo) - 2 * lam[t] * w[lo:hi]
            h = np.bincount(ids - lo, weights=p * (1 - p), minlength=hi - lo) + 2 * lam[t]
            step = g / h
            w[lo:hi] += step
            z += step[ids - lo]
            if sweep > 0:
                seen = cnt > 0
                var = float(np.mean(w[lo:hi][seen] ** 2 + 1 / h[seen])) if seen.any() else 1.0
                lam[t] = min(max(1 / (2 * var), 0.5), 1e4)
        p = 1 / (1 + np.exp(-z))
        step = (y - p).sum() / (p * (1 - p)).sum()  # intercept, unpenalised
        bias += step
        z += step
        if log is not None:
            p = np.clip(1 / (1 + np.exp(-z)), 1e-15, 1 - 1e-15)
            log("wide sweep %d: train log loss %.6f" % (sweep + 1, float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))))
    with torch.no_grad():
        net.wide.weight[:, 0] = torch.from_numpy(w.astype(np.float32))
        net.bias.fill_(bias)
    return lam


def sparsify_wide(path, name="wide.weight"):
    """Store the wide table as a sparse initializer: most of its rows (ids and
    cross cells never seen in training) are exactly 0 (the bundled model: 160k of 1.38 million), so the
    file shrinks from 5.6 to 2.0 MB; kept dense when that would not be
    smaller. ONNX Runtime densifies it at load; the function, and so
    the parity sample, is unchanged. Checks the graph."""
    import onnx
    import onnx.numpy_helper as nh
    m = onnx.load(path)
    g = m.graph
    for k, init in enumerate(g.initializer):
        if init.name != name:
            continue
        a = nh.to_array(init)
        flat = a.reshape(-1)
        nz = np.nonzero(flat)[0].astype(np.int64)
        if 3 * len(nz) >= len(flat):
            break  # 12 bytes per stored weight against 4: dense is smaller
        g.sparse_initializer.append(onnx.helper.make_sparse_tensor(
            nh.from_array(flat[nz].astype(np.float32), name), nh.from_array(nz, ""), list(a.shape)))
        del g.initializer[k]
        break
    onnx.checker.check_model(m)
    onnx.save(m, path)


def wide_deep_params(net):
    """The trained (and folded) network as wide_deep_ids params: the same
    function, the id arithmetic as data for the serving code."""
    assert net.folded
    t = lambda v: v.detach().cpu().numpy()
    sel, shift, hi = t(net.sel), t(net.shift_ids), t(net.hi)
    slots = sel.argmax(0)
    cols = [{"slot": int(slots[k]), "add": float(shift[k]), "max": float(hi[k]), "size": int(net.wide_sizes[k]),
             "offset": int(net.wide_offsets[k])} for k in range(sel.shape[1])]
    crosses = [{"a": int(a), "b": int(b), "mul": CROSS_MUL, "buckets": int(net.cross_buckets), "offset": int(o)}
               for a, b, o in zip(net.cross_a, net.cross_b, net.cross_offsets)]
    deep = [{"column": k, "size": int(s), "offset": int(o)}
            for k, (s, o) in enumerate(zip(net.deep_sizes, net.deep_offsets))]
    first_num = t(net.first_num.weight)  # [H0, W], the standardisation folded in; 0 for categorical slots
    keep = [j for j in range(first_num.shape[1]) if np.any(first_num[:, j] != 0)]
    lo, hi_num = t(net.num_lo), t(net.num_hi)
    numeric = [{"slot": j, "lo": float(lo[j]), "hi": float(hi_num[j])} for j in keep]
    layers = [(np.concatenate([t(net.first_emb.weight), first_num[:, keep]], 1), t(net.first_emb.bias))]
    layers += [(t(m.weight), t(m.bias)) for m in net.mlp if isinstance(m, nn.Linear)]
    return {"cols": cols, "crosses": crosses, "deep": deep, "numeric": numeric, "wide": t(net.wide.weight)[:, 0],
            "bias": float(net.bias.item()), "emb": t(net.emb.weight), "layers": layers}


def small_int_slots(slots, x):
    """Numeric slots whose training values are all integers in [-1, 254]."""
    out = []
    for j, (_, b) in enumerate(slots):
        if b:
            continue
        col = x[:, j]
        if col.min() >= -1 and col.max() <= SMALL_INT_SIZE - 2 and np.all(col == np.round(col)):
            out.append(j)
    return out


def auc(y, p):
    order = np.argsort(p, kind="mergesort")
    _, start, counts = np.unique(p[order], return_index=True, return_counts=True)
    ranks = np.empty(len(p))
    ranks[order] = np.repeat(start + (counts + 1) / 2.0, counts)  # ties share their mean rank
    pos = y.sum()
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def logloss(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration(y, p, bins=10):
    order = np.argsort(p, kind="mergesort")
    return [{"mean_predicted": round(float(p[c].mean()), 6), "observed": round(float(y[c].mean()), 6),
             "rows": int(len(c))} for c in np.array_split(order, bins)]


def load_rows(data_dir, version, width):
    with open(os.path.join(data_dir, "rows.json")) as f:
        meta = json.load(f)
    if meta["schema_version"] != version or meta["width"] != width:
        sys.exit("%s: schema %s width %d, features/schema.go has %s width %d" % (
            data_dir, meta["schema_version"], meta["width"], version, width))
    raw = np.memmap(os.path.join(data_dir, "rows.f32"), dtype="<f4", mode="r").reshape(-1, width + 2)
    if raw.shape[0] != meta["rows"]:
        sys.exit("rows.f32 has %d rows, rows.json says %d" % (raw.shape[0], meta["rows"]))
    return raw[:, :width], np.array(raw[:, width]), raw[:, width + 1].astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "configs", "models"))
    ap.add_argument("--name", default="mlp")
    ap.add_argument("--data", default="", help="directory with rows.f32 and rows.json (features/cmd/featurize)")
    ap.add_argument("--data-desc", default="", help="how the data was made, for the manifest")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--tiny", action="store_true", help="small test model for ctr/testdata")
    ap.add_argument("--cap", type=int, default=512, help="deep embedding rows per categorical slot (ids mod cap)")
    ap.add_argument("--dim", type=int, default=2, help="deep embedding width")
    ap.add_argument("--epochs", type=int, default=1, help="deep-part epochs at most; the epoch with the best validation log loss is kept (0: the wide part alone)")
    ap.add_argument("--wide-sweeps", type=int, default=6, help="Newton sweeps over the wide tables (fit_wide)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the deep part")
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--l2-wide", type=float, default=10.0,
                    help="starting L2 on the wide weights, per weight over the whole training set (1/(2 sigma^2) of a prior on an id's effect); fit_wide re-estimates it per table")
    ap.add_argument("--l2-cross", type=float, default=100.0,
                    help="L2 on the wide weights of the crosses, likewise (a tighter start: most crosses carry nothing)")
    ap.add_argument("--l2-deep", type=float, default=30.0, help="L2 on the deep embeddings, likewise")
    ap.add_argument("--val-fraction", type=float, default=0.05,
                    help="share of the training rows held back to pick the epoch and fit the output bias")
    ap.add_argument("--input-form", choices=[wdi.FORM, "rows"], default=wdi.FORM,
                    help="the exported graph's input: wide_deep_ids (ids converted by ctr) or rows (the feature row)")
    ap.add_argument("--train-rows", type=int, default=0,
                    help="train on the first N training rows only (0 = all); validation and held-out rows stay the same")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(a.seed)
    version, width, slots = read_schema(os.path.join(ROOT, "features", "schema.go"))
    cap, dim, hidden, epochs, wide_cap, cross_buckets = a.cap, a.dim, [64, 32], a.epochs, 0, CROSS_BUCKETS
    if a.tiny:
        cap, dim, hidden, epochs, a.rows, a.batch, wide_cap, cross_buckets = 16, 2, [8, 4], 3, 4000, 256, 64, 64

    if a.data:
        x, y, p_true = load_rows(a.data, version, width)
        data_desc = a.data_desc or a.data
        cut = heldout_start(len(y))  # the last int(0.25 n) rows held out, as gbdt_train.py and servescore
    else:
        x, y, p_true = synth(rng, slots, a.rows)
        data_desc = "synthetic: rows drawn from features/schema.go slots, labels from a hidden logistic model (seeded)"
        cut = int(len(y) * 0.8)
    # NaN or Inf in a row trains a model of NaN weights (and a manifest of
    # bare NaN, which is not JSON) with exit status 0: refused before
    # anything is trained or written.
    bad = nonfinite(x, [s[0] for s in slots]) or nonfinite(y, ["label"]) or \
        (nonfinite(p_true, ["true_ctr"]) if p_true is not None else None)
    if bad:
        sys.exit("mlp_train: %s: %s; refusing to train (nothing written to %s)" % (data_desc, bad, a.out))
    vcut = int(cut * (1 - a.val_fraction))
    ntr = min(vcut, a.train_rows) if a.train_rows else vcut
    xtr, ytr, xva, yva = np.ascontiguousarray(x[:ntr]), y[:ntr], np.ascontiguousarray(x[vcut:cut]), y[vcut:cut]
    xte, yte = np.ascontiguousarray(x[cut:]), y[cut:]
    mean, std = xtr.mean(0, dtype=np.float64).astype(np.float32), xtr.std(0, dtype=np.float64).astype(np.float32) + 1e-3
    small = small_int_slots(slots, xtr)

    net = CTRNet(slots, mean, std, small, cap, dim, hidden, wide_cap, cross_buckets, xtr.min(0), xtr.max(0))
    log = lambda m: print(m, file=sys.stderr)
    # 1. The wide part, exactly (fit_wide). 2. The deep part on top of it with
    # the wide weights frozen: Adam on the MLP and its embeddings; its last
    # layer starts at zero, so "epoch 0" is the wide model alone, and the
    # epoch with the best validation log loss is kept (0 included).
    lams = fit_wide(net, xtr, ytr, a.l2_wide, a.l2_cross, a.wide_sweeps, log)
    tables = net.wide_slots + net.crosses
    log("wide priors (lambda per table): " + ", ".join("%s %.3g" % (t, l) for t, l in zip(tables, lams)))
    net.wide.weight.requires_grad_(False)
    net.bias.requires_grad_(False)
    with torch.no_grad():
        net.mlp[-1].weight.zero_()
        net.mlp[-1].bias.zero_()
    deep = [p for name, p in net.named_parameters() if p.requires_grad]
    opt = torch.optim.Adam(deep, lr=a.lr)
    lossf = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr).unsqueeze(1)
    xv = torch.from_numpy(xva)
    yva64 = yva.astype(np.float64)
    n = float(len(xt))
    g = torch.Generator().manual_seed(a.seed)
    best, best_state, history = None, None, []

    def val_logits():
        with torch.no_grad():
            return torch.cat([net.logit(xv[i:i + 65536]) for i in range(0, len(xv), 65536)]).squeeze(1).numpy()

    def val_epoch(ep):
        nonlocal best, best_state
        net.eval()
        pv = 1 / (1 + np.exp(-val_logits().astype(np.float64)))
        ll = logloss(yva64, pv)
        history.append({"epoch": ep, "val_logloss": round(ll, 6), "val_auc": round(auc(yva64, pv), 6)})
        log("deep epoch %d: %s" % (ep, json.dumps(history[-1])))
        if best is None or ll < best:
            best, best_state = ll, {k: v.clone() for k, v in net.state_dict().items()}

    val_epoch(0)
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            loss = lossf(net.logit(xt[idx]), yt[idx]) + a.l2_deep * net.emb.weight.square().sum() / n
            loss.backward()
            opt.step()
        val_epoch(ep + 1)
    net.load_state_dict(best_state)
    net.eval()
    # One scalar after training: shift the output bias so the mean prediction
    # on the validation rows equals their click rate (Newton on the mean).
    zv = val_logits().astype(np.float64)
    shift = 0.0
    for _ in range(50):
        pv = 1 / (1 + np.exp(-(zv + shift)))
        step = (pv.mean() - yva64.mean()) / max((pv * (1 - pv)).mean(), 1e-12)
        shift -= step
        if abs(step) < 1e-9:
            break
    with torch.no_grad():
        net.bias += shift
    net.eval()
    net.fold()
    with torch.no_grad():
        xtt = torch.from_numpy(xte)
        pte = torch.cat([net(xtt[i:i + 65536]) for i in range(0, len(xtt), 65536)]).squeeze(1).numpy().astype(np.float64)
    yte64 = yte.astype(np.float64)
    metrics = {"auc": round(auc(yte64, pte), 6), "logloss": round(logloss(yte64, pte), 6)}
    if p_true is not None:
        metrics["oracle_auc"] = round(auc(yte64, p_true[cut:]), 6)
        metrics["oracle_logloss"] = round(logloss(yte64, p_true[cut:]), 6)
        metrics["mean_true_ctr"] = round(float(p_true[cut:].mean()), 6)
    metrics.update({"mean_predicted_ctr": round(float(pte.mean()), 6), "observed_ctr": round(float(yte.mean()), 6),
                    "heldout_rows": int(len(yte)), "heldout_clicks": int(yte.sum()),
                    "calibration_deciles": calibration(yte64, pte)})
    print(json.dumps({k: v for k, v in metrics.items() if k != "calibration_deciles"}), file=sys.stderr)

    try:  # a NaN metric (no held-out click: AUC) is not JSON; found before any file is written
        json.dumps({"metrics": metrics, "epochs": history, "shift": shift}, allow_nan=False)
    except ValueError:
        sys.exit("mlp_train: a metric is NaN or Inf (%s); nothing written to %s" % (
            json.dumps({k: v for k, v in metrics.items() if k != "calibration_deciles"}), a.out))
    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, a.name + ".onnx")
    # Parity sample: held-out rows plus a few edge rows (all zero, negative ids).
    px = np.concatenate([xte[:61], np.zeros((1, width), np.float32), -np.ones((1, width), np.float32),
                         xte[61:62] * 3], 0)
    with torch.no_grad():
        pp = net(torch.from_numpy(px)).squeeze(1).numpy()
    form, section, deep_part = a.input_form, None, "in the graph"
    if form == "rows":
        torch.onnx.export(net, torch.from_numpy(xte[:4]), onnx_path, input_names=["features"],
                          output_names=["pctr"], dynamic_axes={"features": {0: "batch"}, "pctr": {0: "batch"}},
                          opset_version=17, do_constant_folding=True)
        sparsify_wide(onnx_path)
    else:
        params = wide_deep_params(net)
        d = float(np.abs(wdi.predict(params, px) - pp).max())
        if d > 1e-6:
            sys.exit("mlp_train: the wide_deep_ids params differ from the network by %.3g on the parity rows" % d)
        if wdi.dead_deep(params):
            params, deep_part = wdi.without_deep(params), (
                "left out of the graph: its last layer is all 0 (epoch 0 kept), so it adds exactly 0 to every logit")
        onnx.save(wdi.build(params, doc="ctr/train/mlp_train.py"), onnx_path)
        section = wdi.manifest_section(params)
    parity = {"inputs": [[float(v) for v in r] for r in px], "outputs": [float(v) for v in pp]}
    with open(os.path.join(a.out, a.name + ".parity.json"), "w") as f:
        json.dump(parity, f, separators=(",", ":"))
        f.write("\n")

    sha = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    manifest = {
        "name": a.name, "kind": "onnx", "file": a.name + ".onnx", "sha256": sha,
        "schema_version": version, "width": width, "input_form": form, "parity": a.name + ".parity.json",
        "parity_tolerance": 1e-5 if form == "rows" else 1e-6,
        "training": {"script": ("ctr/train/mlp_train.py --tiny" if a.tiny else
                                "ctr/train/make_models.sh (ctr/train/mlp_train.py, torch %s)" % torch.__version__),
                     "data": data_desc, "seed": a.seed, "rows": int(ntr), "validation_rows": int(cut - vcut),
                     "epochs": history, "output_bias_shift": round(shift, 6)},
        "metrics": metrics,
        "extra": {"input": "features" if form == "rows" else "wide_ids, deep_ids, numeric (input form wide_deep_ids)",
                  "output": "pctr", "opset": 17, "model": "wide & deep", "deep_part": deep_part,
                  "wide_slots": net.wide_slots, "wide_cap": wide_cap, "crosses": net.crosses,
                  "cross_buckets": cross_buckets, "embedding_cap": cap, "embedding_dim": dim, "hidden": hidden,
                  "epochs": epochs, "lr": a.lr, "batch": a.batch, "wide_sweeps": a.wide_sweeps, "wide_fit": "Newton backfitting with empirical-Bayes priors (fit_wide)",
                  "wide_lambda": {t: round(float(l), 4) for t, l in zip(net.wide_slots + net.crosses, lams)}, "l2_wide": a.l2_wide, "l2_cross": a.l2_cross, "l2_deep": a.l2_deep,
                  "torch": torch.__version__},
    }
    if section is not None:
        manifest["wide_deep_ids"] = section
    text = json.dumps(manifest, indent=2, allow_nan=False)  # never a manifest of bare NaN
    with open(os.path.join(a.out, a.name + ".manifest.json"), "w") as f:
        f.write(text + "\n")
    print(onnx_path)


if __name__ == "__main__":
    main()
