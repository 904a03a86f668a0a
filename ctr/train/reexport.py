#!/usr/bin/python3
"""Re-export a "rows" wide & deep model into the "wide_deep_ids" input form,
with the same weights (no retraining).

    /usr/bin/python3 ctr/train/reexport.py SRC.manifest.json OUT_DIR [--name NAME]

Reads the rows-form graph that mlp_train.py exported before the
wide_deep_ids form (input "features" [N, W] float32; see
ctr/train/wide_deep_ids.py), takes its weights (the sparse initializer of
the wide table included) and its id arithmetic (selection, +1 of the small-int
columns, clamps, table sizes and offsets, cross columns, multiplier and
buckets, deep sizes and offsets, numeric clamps), and writes into OUT_DIR:
NAME.onnx (the lean graph), NAME.manifest.json (the source's manifest with
input_form "wide_deep_ids", its wide_deep_ids section, the new sha256 and a
note of the source) and NAME.parity.json (the source's parity sample: rows
and the training framework's outputs, which the new graph must reproduce
through ctr's conversion; ctr checks it at load).

A deep part whose last layer is all 0 (training kept epoch 0, the wide model
alone: the bundled mlp.onnx) adds exactly 0 to every logit and is left out of
the graph, as mlp_train.py does; --keep-dead-deep keeps it (to measure what a
live deep part costs).

Before writing it checks, in numpy, that the new form computes the source
graph's function on the parity rows and on edge rows (ids out of range,
negative, fractional, huge): it fails if they differ by more than 1e-9.
Needs python3-onnx and python3-numpy only.

The bundled model was made with (the rows-form original is kept as
ctr/testdata/mlp_rows.*):
    /usr/bin/python3 ctr/train/reexport.py ctr/testdata/mlp_rows.manifest.json configs/models --name mlp
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wide_deep_ids as wdi  # noqa: E402


def edge_rows(x, seed=1):
    """Rows that exercise the conversion's clamps and modulos: the parity
    rows scaled, negated, shifted by fractions, and a few huge values."""
    rng = np.random.default_rng(seed)
    out = [x * 3, -x, x + 0.5, x * 1000, np.full_like(x[:4], 3e7), np.full_like(x[:4], -3e7)]
    noisy = x.copy()
    mask = rng.random(x.shape) < 0.2
    noisy[mask] = rng.integers(-5, 300000, mask.sum()).astype(np.float32)
    out.append(noisy)
    return np.concatenate(out, 0).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest", help="the rows-form model's manifest")
    ap.add_argument("out", help="output directory")
    ap.add_argument("--name", default="", help="output name (default: the source manifest's name)")
    ap.add_argument("--keep-dead-deep", action="store_true",
                    help="keep a deep part that adds exactly 0 (for measurements; by default it is left out)")
    a = ap.parse_args()
    src_dir = os.path.dirname(os.path.abspath(a.manifest))
    man = json.load(open(a.manifest))
    if man.get("input_form", "rows") != "rows" or man.get("kind") != "onnx":
        sys.exit("%s: kind %s input_form %s, want an onnx model of input form rows" % (
            a.manifest, man.get("kind"), man.get("input_form", "rows")))
    name = a.name or man["name"]
    src = os.path.join(src_dir, man["file"])
    src_bytes = open(src, "rb").read()
    old = onnx.load_from_string(src_bytes)
    p = wdi.params_from_rows_graph(old)
    dead = wdi.dead_deep(p)
    if dead and not a.keep_dead_deep:
        p = wdi.without_deep(p)
        print("reexport: the deep part's last layer is all 0 (it adds exactly 0): left out", file=sys.stderr)

    parity = json.load(open(os.path.join(src_dir, man["parity"])))
    x = np.array(parity["inputs"], np.float32)
    for what, rows in (("parity rows", x), ("edge rows", edge_rows(x))):
        d = np.abs(wdi.predict(p, rows) - wdi.predict_rows_graph(old, rows)).max()
        print("reexport: %s: %d rows, max |new - old| in float64 %.3g" % (what, len(rows), d), file=sys.stderr)
        if d > 1e-9:
            sys.exit("reexport: the new form does not compute the old function")
    d = np.abs(wdi.predict(p, x) - np.array(parity["outputs"], np.float64)).max()
    print("reexport: parity sample: max |new (numpy) - training framework| %.3g" % d, file=sys.stderr)

    os.makedirs(a.out, exist_ok=True)
    model = wdi.build(p, doc="re-exported from %s (sha256 %s) by ctr/train/reexport.py" % (
        man["file"], man.get("sha256", "")))
    path = os.path.join(a.out, name + ".onnx")
    onnx.save(model, path)
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()

    with open(os.path.join(a.out, name + ".parity.json"), "w") as f:
        json.dump(parity, f, separators=(",", ":"))
        f.write("\n")
    out = dict(man)
    out.update({"name": name, "file": name + ".onnx", "sha256": sha, "parity": name + ".parity.json",
                "input_form": wdi.FORM, "wide_deep_ids": wdi.manifest_section(p),
                "parity_tolerance": min(float(man.get("parity_tolerance") or 1e-5), 1e-6)})
    extra = dict(out.get("extra") or {})
    extra.update({"input": "wide_ids, deep_ids, numeric (input form wide_deep_ids)", "output": "pctr",
                  "opset": wdi.OPSET,
                  "deep_part": ("left out of the graph: its last layer is all 0, so it adds exactly 0 to every logit"
                                if dead and not a.keep_dead_deep else "in the graph"),
                  "reexported_from": {"file": man["file"], "sha256": man.get("sha256", ""),
                                                          "script": "ctr/train/reexport.py"}})
    out["extra"] = extra
    order = ["name", "kind", "file", "sha256", "schema_version", "width", "input_form", "parity",
             "parity_tolerance"]
    out = {k: out[k] for k in order if k in out} | {k: v for k, v in out.items() if k not in order}
    with open(os.path.join(a.out, name + ".manifest.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("reexport: wrote %s (%d bytes; source %d bytes)" % (path, os.path.getsize(path), len(src_bytes)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
