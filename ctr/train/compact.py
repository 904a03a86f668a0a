#!/usr/bin/python3
"""A compact variant of a wide_deep_ids model: the same weights, the wide
table stored as int8 (one scale per table) or float16. No retraining.

    /usr/bin/python3 ctr/train/compact.py SRC.manifest.json OUT_DIR [--dtype int8] [--name NAME]

Reads a float32 "wide_deep_ids" model (configs/models/mlp.manifest.json),
quantizes its wide table (wide_deep_ids.compact(): int8 symmetric with
scale = max |w| / 127 per table, so 0 stays 0; or float16), keeps the deep
part, if any, in float32, and writes into OUT_DIR:
  NAME.onnx           Gather(int8 table) -> Cast -> Gemm(scales) -> Sigmoid:
                      one node more than the float32 graph, every op in ONNX
                      Runtime's CPU kernels (opset 17)
  NAME.parity.json    the source's parity rows, with the outputs of the
                      compact function (numpy, float64 sums): ctr checks them
                      at load within the manifest's tolerance (1e-6)
  NAME.manifest.json  the source's manifest (schema, input form, its
                      wide_deep_ids section, feature_stats for drift) with
                      the new file, sha256 and parity, extra.compact (dtype,
                      scales, the source file and sha256, the agreement with
                      the source on its parity and edge rows) and no
                      metrics (the held-out cost is measured by servescore:
                      docs/models.md, "Compact variant")

The bundled int8 model was made with
    /usr/bin/python3 ctr/train/compact.py configs/models/mlp.manifest.json configs/models --dtype int8
Needs python3-onnx and python3-numpy only.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reexport  # noqa: E402  (edge_rows)
import wide_deep_ids as wdi  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest", help="the float32 wide_deep_ids model's manifest")
    ap.add_argument("out", help="output directory")
    ap.add_argument("--dtype", choices=wdi.COMPACT_DTYPES, default="int8")
    ap.add_argument("--name", default="", help="output name (default: the source's name + _int8 or _fp16)")
    ap.add_argument("--bias-rows", default="",
                    help="rows.f32 (featurize's layout) whose first --bias-max records set the output bias so the "
                         "mean logit equals the source's there (rounding errors of popular weights do not average out)")
    ap.add_argument("--bias-max", type=int, default=500000)
    a = ap.parse_args()
    src_dir = os.path.dirname(os.path.abspath(a.manifest))
    man = json.load(open(a.manifest))
    if man.get("kind") != "onnx" or man.get("input_form") != wdi.FORM:
        sys.exit("%s: kind %s input_form %s, want an onnx model of input form %s" % (
            a.manifest, man.get("kind"), man.get("input_form"), wdi.FORM))
    name = a.name or man["name"] + {"int8": "_int8", "float16": "_fp16"}[a.dtype]
    src_bytes = open(os.path.join(src_dir, man["file"]), "rb").read()
    p = wdi.params_from_ids_graph(onnx.load_from_string(src_bytes), man["wide_deep_ids"])
    q = wdi.compact(p, a.dtype)
    bias_fit = None
    if a.bias_rows:
        w = int(man["width"])
        raw = np.memmap(a.bias_rows, dtype="<f4", mode="r").reshape(-1, w + 2)[:a.bias_max, :w]
        xs = np.array(raw, np.float32)
        lg = lambda v: np.log(v / (1 - v))
        shift = float(np.mean(lg(wdi.predict(p, xs)) - lg(wdi.predict(q, xs))))
        q["bias"] = float(np.float32(q["bias"] + shift)) if not q["deep"] else q["bias"]
        if q["deep"]:  # the output bias lives in the last layer's bias (params_from_ids_graph)
            wl, bl = q["layers"][-1]
            q["layers"] = q["layers"][:-1] + [(wl, (np.asarray(bl, np.float64) + shift).astype(np.float32))]
        bias_fit = {"rows": int(len(xs)), "file": os.path.basename(a.bias_rows), "logit_shift": shift}
        print("compact: output bias moved by %.3g (the mean logit difference over %d rows)" % (shift, len(xs)),
              file=sys.stderr)
    parity = json.load(open(os.path.join(src_dir, man["parity"])))
    x = np.array(parity["inputs"], np.float32)
    agree = {}
    for what, rows in (("parity_rows", x), ("edge_rows", reexport.edge_rows(x))):
        p32, pq = wdi.predict(p, rows), wdi.predict(q, rows)
        agree[what] = {"rows": int(len(rows)), "max_abs_diff": float(np.abs(pq - p32).max()),
                       "max_rel_diff": float((np.abs(pq - p32) / p32).max()),
                       "mean_rel_diff": float((np.abs(pq - p32) / p32).mean())}
        print("compact: %s: %d rows, |%s - float32| max %.3g, relative max %.3g mean %.3g" % (
            what, len(rows), a.dtype, agree[what]["max_abs_diff"], agree[what]["max_rel_diff"],
            agree[what]["mean_rel_diff"]), file=sys.stderr)

    d = np.abs(wdi.predict(p, x) - np.array(parity["outputs"], np.float64)).max()
    if d > 1e-6:
        sys.exit("compact: the source's params do not reproduce its parity sample (%.3g)" % d)

    os.makedirs(a.out, exist_ok=True)
    model = wdi.build(q, doc="%s of %s (sha256 %s) by ctr/train/compact.py" % (
        a.dtype, man["file"], man.get("sha256", "")))
    path = os.path.join(a.out, name + ".onnx")
    onnx.save(model, path)
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    outs = wdi.predict(q, x)
    with open(os.path.join(a.out, name + ".parity.json"), "w") as f:
        json.dump({"inputs": parity["inputs"], "outputs": [float(np.float32(v)) for v in outs]}, f,
                  separators=(",", ":"))
        f.write("\n")
    out = {k: v for k, v in man.items() if k != "metrics"}
    out.update({"name": name, "file": name + ".onnx", "sha256": sha, "parity": name + ".parity.json",
                "parity_tolerance": 1e-6})
    extra = dict(out.get("extra") or {})
    tables = extra.get("wide_slots", []) + extra.get("crosses", [])
    scales = [float(v) for v in q["wide_scale"]]
    extra["compact"] = {
        "dtype": a.dtype, "script": "ctr/train/compact.py",
        "scheme": ("symmetric per table: stored = round(w / scale) in [-127, 127], scale = max |w| / 127"
                   if a.dtype == "int8" else "float16 weights, scale 1"),
        "scales": dict(zip(tables, scales)) if len(tables) == len(scales) else scales,
        "source": {"file": man["file"], "sha256": man.get("sha256", ""), "name": man["name"]},
        "agreement_with_source": agree,
        "bias_fit": bias_fit,
        "note": "metrics left out: the held-out cost against the float32 source is in docs/models.md",
    }
    out["extra"] = extra
    with open(os.path.join(a.out, name + ".manifest.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("compact: wrote %s (%d bytes; source %d bytes)" % (path, os.path.getsize(path), len(src_bytes)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
