#!/usr/bin/python3
"""Train the neural CTR model and export it to ONNX for ctr.LoadONNX.

    /usr/bin/python3 ctr/train/mlp_train.py [--out configs/models] [--name mlp]
        [--data ROWS.csv] [--tiny] [--seed 1]

Model: one embedding table per categorical slot of the feature schema (bucket
id mod a capped table size), numeric slots standardised with constants baked
into the graph, then an MLP to a sigmoid. ONNX graph: input "features"
[N, W] float32, output "pctr" [N, 1] float32 probabilities, dynamic N,
opset 17 (ONNX Runtime 1.24 accepts it).

The slot layout (width, schema version, categorical bucket counts) is read
from features/schema.go so the model always matches the running extractor.

Data: --data DIR reads rows.f32 / rows.json written by features/cmd/synthdata
(features, click label and ground-truth probability per row; the oracle
metrics come from the latter), trains on the first 75% of rows and evaluates
on the rest, the same split as ctr/train/gbdt_train.py. Without --data (the
--tiny test model) the script draws rows from the schema with its own hidden
logistic model and a fixed seed; the manifest says which in training.data.
ctr/train/mlp_make.sh runs the whole pipeline.

Writes NAME.onnx, NAME.manifest.json and NAME.parity.json into --out.
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
import torch
import torch.nn as nn

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


class CTRNet(nn.Module):
    """Embeddings for categorical slots plus a linear path for numeric ones,
    summed into the first hidden layer, then an MLP.

    The graph is shaped for ONNX Runtime's CPU kernels: categorical ids are
    picked out of the row with one MatMul against a 0/1 selection matrix
    (a Gather on axis 1 costs several times more), and the numeric slots'
    standardisation is folded into the first layer's weights at export."""

    def __init__(self, slots, mean, std, cap, dim, hidden):
        super().__init__()
        cat = [j for j, (_, b) in enumerate(slots) if b]
        sizes = [min(slots[j][1], cap) for j in cat]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        sel = np.zeros((len(slots), len(cat)), np.float32)
        for k, j in enumerate(cat):
            sel[j, k] = 1
        is_num = np.array([b == 0 for _, b in slots])
        scale = np.where(is_num, 1.0 / std, 0.0).astype(np.float32)  # categorical columns: weight 0
        self.register_buffer("sel", torch.tensor(sel))
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.long))
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long))
        self.register_buffer("scale", torch.tensor(scale))
        self.register_buffer("shift", torch.tensor(-mean * scale, dtype=torch.float32))
        self.folded = False
        self.emb = nn.Embedding(int(sum(sizes)), dim)
        nn.init.normal_(self.emb.weight, 0, 0.05)
        self.first_emb = nn.Linear(len(cat) * dim, hidden[0])
        self.first_num = nn.Linear(len(slots), hidden[0], bias=False)
        layers, width = [nn.ReLU()], hidden[0]
        for h in hidden[1:]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def fold(self):
        """Fold (x*scale + shift) into first_num, for export."""
        with torch.no_grad():
            w = self.first_num.weight
            self.first_emb.bias += w @ self.shift
            w *= self.scale
        self.folded = True

    def forward(self, features):
        ids = torch.remainder(torch.matmul(features, self.sel).long(), self.sizes) + self.offsets
        e = self.emb(ids).flatten(1)
        num = features if self.folded else features * self.scale + self.shift
        return torch.sigmoid(self.mlp(self.first_emb(e) + self.first_num(num)))


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


def load_synthdata(data_dir, version, width):
    with open(os.path.join(data_dir, "rows.json")) as f:
        meta = json.load(f)
    if meta["schema_version"] != version or meta["width"] != width:
        sys.exit("%s: schema %s width %d, features/schema.go has %s width %d" % (
            data_dir, meta["schema_version"], meta["width"], version, width))
    raw = np.fromfile(os.path.join(data_dir, "rows.f32"), dtype="<f4").reshape(-1, width + 2)
    if raw.shape[0] != meta["rows"]:
        sys.exit("rows.f32 has %d rows, rows.json says %d" % (raw.shape[0], meta["rows"]))
    return raw[:, :width].copy(), raw[:, width].copy(), raw[:, width + 1].astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "configs", "models"))
    ap.add_argument("--name", default="mlp")
    ap.add_argument("--data", default="", help="directory with rows.f32 and rows.json (features/cmd/synthdata)")
    ap.add_argument("--data-desc", default="", help="how the data was made, for the manifest")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--tiny", action="store_true", help="small test model for ctr/testdata")
    ap.add_argument("--cap", type=int, default=1024, help="embedding rows per categorical slot (ids mod cap)")
    ap.add_argument("--dim", type=int, default=4, help="embedding width")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=8192)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(a.seed)
    version, width, slots = read_schema(os.path.join(ROOT, "features", "schema.go"))
    cap, dim, hidden, epochs = a.cap, a.dim, [64, 32], a.epochs
    if a.tiny:
        cap, dim, hidden, epochs, a.rows, a.batch = 16, 2, [8, 4], 3, 4000, 256

    if a.data:
        x, y, p_true = load_synthdata(a.data, version, width)
        data_desc = a.data_desc or a.data
        cut = int(len(y) * 0.75)
    else:
        x, y, p_true = synth(rng, slots, a.rows)
        data_desc = "synthetic: rows drawn from features/schema.go slots, labels from a hidden logistic model (seeded)"
        cut = int(len(y) * 0.8)
    xtr, ytr, xte, yte = x[:cut], y[:cut], x[cut:], y[cut:]
    mean, std = xtr.mean(0), xtr.std(0) + 1e-3

    net = CTRNet(slots, mean, std, cap, dim, hidden)
    base = float(np.clip(ytr.mean(), 1e-4, 1 - 1e-4))
    with torch.no_grad():
        net.mlp[-1].bias.fill_(math.log(base / (1 - base)))  # start at the base rate
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    lossf = nn.BCELoss()
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr).unsqueeze(1)
    g = torch.Generator().manual_seed(a.seed)
    for ep in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            loss = lossf(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    net.eval()
    net.fold()
    with torch.no_grad():
        pte = net(torch.from_numpy(xte)).squeeze(1).numpy().astype(np.float64)
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

    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, a.name + ".onnx")
    torch.onnx.export(net, torch.from_numpy(xte[:4]), onnx_path, input_names=["features"],
                      output_names=["pctr"], dynamic_axes={"features": {0: "batch"}, "pctr": {0: "batch"}},
                      opset_version=17, do_constant_folding=True)
    import onnx  # check the exported graph
    onnx.checker.check_model(onnx.load(onnx_path))

    # Parity sample: held-out rows plus a few edge rows (all zero, negative ids).
    px = np.concatenate([xte[:61], np.zeros((1, width), np.float32), -np.ones((1, width), np.float32),
                         xte[61:62] * 3], 0)
    with torch.no_grad():
        pp = net(torch.from_numpy(px)).squeeze(1).numpy()
    parity = {"inputs": [[float(v) for v in r] for r in px], "outputs": [float(v) for v in pp]}
    with open(os.path.join(a.out, a.name + ".parity.json"), "w") as f:
        json.dump(parity, f, separators=(",", ":"))
        f.write("\n")

    sha = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    manifest = {
        "name": a.name, "kind": "onnx", "file": a.name + ".onnx", "sha256": sha,
        "schema_version": version, "width": width, "parity": a.name + ".parity.json",
        "parity_tolerance": 1e-5,
        "training": {"script": ("ctr/train/mlp_train.py --tiny" if a.tiny else
                                "ctr/train/mlp_make.sh (ctr/train/mlp_train.py, torch %s)" % torch.__version__),
                     "data": data_desc, "seed": a.seed, "rows": int(cut)},
        "metrics": metrics,
        "extra": {"input": "features", "output": "pctr", "opset": 17, "embedding_cap": cap,
                  "embedding_dim": dim, "hidden": hidden, "epochs": epochs, "lr": a.lr, "batch": a.batch, "torch": torch.__version__},
    }
    with open(os.path.join(a.out, a.name + ".manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(onnx_path)


if __name__ == "__main__":
    main()
