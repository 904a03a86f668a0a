"""The "wide_deep_ids" input form of the wide & deep model: graph and manifest.

The first export of the wide & deep model (input form "rows") took the float
feature row [N, W] and did everything in the graph: pick the id columns, add
1 to the small-int columns, clamp, cast to int64, take each table's modulo,
hash the ad x context crosses, add each table's offset, then the gathers and
the MLP. None of that arithmetic is learned, and in ONNX Runtime each of those
nodes costs a kernel launch per run. In this form the serving code (ctr,
Go, no allocation) does that arithmetic, driven by the manifest's
"wide_deep_ids" section, and the graph only looks up and adds:

    wide_ids  int32   [N, C + X]  row of the concatenated wide table, per wide column then per cross
    deep_ids  int32   [N, D]      row of the concatenated embedding table, per categorical column
    numeric   float32 [N, K]      the numeric slots the deep part reads, clamped to their training range
    pctr      float32 [N, 1]      sigmoid(sum(wide[wide_ids]) + mlp([emb[deep_ids], numeric]) + bias)

Graph (build()): a Gather and a Gemm for the wide sum, a Gather, Flatten,
Concat and Gemm/Relu layers for the deep part, a Sigmoid. deep_ids and numeric
are left out when the model has no deep part, and the deep part is left out
when it adds exactly 0 (dead_deep(): its last layer is all 0, as when
training kept epoch 0, the wide model alone).

The conversion, as the Go code does it (ctr/input.go) and convert() below:
    id(c)      = trunc(clamp(row[c.slot] + c.add, 0, c.max))          (float32 arithmetic)
    wide_ids   = id(c) mod c.size + c.offset                          for each wide column c
               = (id(a) * x.mul + id(b)) mod x.buckets + x.offset     for each cross x of columns a, b
    deep_ids   = id(col) mod d.size + d.offset                        for each deep column d
    numeric    = clamp(row[n.slot], n.lo, n.hi)                       for each numeric slot n

params is a dict: cols [{slot, add, max, size, offset}], crosses [{a, b, mul,
buckets, offset}], deep [{column, size, offset}], numeric [{slot, lo, hi}],
wide (float32 [R]), bias (float), and for the deep part emb (float32 [E,
dim]) and layers [(W [out, in], b [out]), ...] (ReLU between, the last to one
output; the first's inputs are the flattened embeddings then numeric).
mlp_train.py builds it from the trained network, reexport.py from a "rows"
graph, compact.py from a float32 wide_deep_ids graph (params_from_ids_graph)
with its wide table stored as int8 or float16 (compact(): wide_dtype,
wide_stored, wide_scale).
"""
import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as nh

FORM = "wide_deep_ids"
OPSET = 17


def manifest_section(p):
    """The manifest's "wide_deep_ids" object: what ctr needs to convert rows."""
    f32 = lambda v: float(np.float32(v))  # float32 values, printed so they parse back exactly
    return {
        "wide_columns": [{"slot": int(c["slot"]), "add": f32(c["add"]), "max": f32(c["max"]),
                          "size": int(c["size"]), "offset": int(c["offset"])} for c in p["cols"]],
        "crosses": [{"a": int(x["a"]), "b": int(x["b"]), "mul": int(x["mul"]), "buckets": int(x["buckets"]),
                     "offset": int(x["offset"])} for x in p["crosses"]],
        "deep_columns": [{"column": int(d["column"]), "size": int(d["size"]), "offset": int(d["offset"])}
                         for d in p["deep"]],
        "numeric": [{"slot": int(n["slot"]), "lo": f32(n["lo"]), "hi": f32(n["hi"])} for n in p["numeric"]],
        "wide_rows": int(len(p["wide"])),
        "deep_rows": int(len(p["emb"])) if p["deep"] else 0,
    }


def _sparse_or_dense(name, a):
    """A 1-D weight vector as a sparse initializer when most of it is 0 (12
    bytes per stored weight against 4: sparse only when under a third is not
    0), else dense. ONNX Runtime densifies it at load."""
    nz = np.nonzero(a)[0].astype(np.int64)
    if 3 * len(nz) >= len(a):
        return nh.from_array(a.astype(np.float32), name), None
    return None, oh.make_sparse_tensor(nh.from_array(a[nz].astype(np.float32), name), nh.from_array(nz, ""),
                                       [len(a)])


def dead_deep(p):
    """Whether the deep part adds exactly 0 to every logit: its last layer's
    weights and bias are all 0 (training kept epoch 0, the wide model alone:
    mlp_train.py starts the last layer at 0). Its inputs are finite (clamped
    numbers, finite embeddings), so each product is 0 and so is their sum."""
    if not p["deep"]:
        return False
    w, b = p["layers"][-1]
    return not np.any(np.asarray(w)) and not np.any(np.asarray(b))


def without_deep(p):
    """params p without its deep part: the same function when dead_deep(p)."""
    q = dict(p)
    q["deep"], q["numeric"], q["emb"], q["layers"] = [], [], np.zeros((0, 1), np.float32), []
    return q


def build(p, doc=""):
    """The ONNX graph of params p (opset 17), checked.

    wide_terms = Gather(wide, wide_ids)                         [N, C+X]
    no deep part: logit = Gemm(wide_terms, ones, bias)           (the sum and the bias in one node)
    deep part:    wide_logit = Gemm(wide_terms, ones, b_last + bias)
                  h = Concat(Flatten(Gather(emb, deep_ids)), numeric), then Gemm + Relu per hidden layer
                  logit = Gemm(h, w_last, wide_logit)           (the last layer adds the wide logit)
    pctr = Sigmoid(logit)
    ONNX Runtime fuses each Gemm + Relu. A compact table (compact(): int8
    or float16) is gathered from "wide_stored", Cast to float32, and the
    Gemm's column of ones becomes the per-table scales ("wide_scale")."""
    nw = len(p["cols"]) + len(p["crosses"])
    inputs = [oh.make_tensor_value_info("wide_ids", onnx.TensorProto.INT32, ["batch", nw])]
    inits, sparse, nodes = [], [], []
    if p.get("wide_dtype", "float32") == "float32":
        dense, sp = _sparse_or_dense("wide", np.asarray(p["wide"], np.float32).reshape(-1))
        inits += [dense] if dense is not None else []
        sparse += [sp] if sp is not None else []
        inits.append(nh.from_array(np.ones((nw, 1), np.float32), "ones"))
        nodes.append(oh.make_node("Gather", ["wide", "wide_ids"], ["wide_terms"], axis=0))
        summer = "ones"
    else:
        # A compact table (compact()): Gather the int8 (or float16) values,
        # Cast them to float32, and let the Gemm that sums them multiply each
        # column by its table's scale (1 for float16): no extra node.
        inits.append(nh.from_array(np.asarray(p["wide_stored"]).reshape(-1), "wide_stored"))
        inits.append(nh.from_array(np.asarray(p["wide_scale"], np.float32).reshape(nw, 1), "wide_scale"))
        nodes += [oh.make_node("Gather", ["wide_stored", "wide_ids"], ["wide_stored_terms"], axis=0),
                  oh.make_node("Cast", ["wide_stored_terms"], ["wide_terms"], to=onnx.TensorProto.FLOAT)]
        summer = "wide_scale"
    bias = np.float32(p["bias"])
    if not p["deep"]:
        inits.append(nh.from_array(np.array([bias], np.float32), "bias"))
        nodes.append(oh.make_node("Gemm", ["wide_terms", summer, "bias"], ["logit"]))
    else:
        nd, k = len(p["deep"]), len(p["numeric"])
        inputs.append(oh.make_tensor_value_info("deep_ids", onnx.TensorProto.INT32, ["batch", nd]))
        emb = np.asarray(p["emb"], np.float32)
        inits.append(nh.from_array(emb, "emb"))
        nodes += [oh.make_node("Gather", ["emb", "deep_ids"], ["deep_vecs"], axis=0),
                  oh.make_node("Flatten", ["deep_vecs"], ["deep_flat"], axis=1)]
        x = "deep_flat"
        if k:
            inputs.append(oh.make_tensor_value_info("numeric", onnx.TensorProto.FLOAT, ["batch", k]))
            nodes.append(oh.make_node("Concat", ["deep_flat", "numeric"], ["deep_in"], axis=1))
            x = "deep_in"
        layers = p["layers"]
        want = nd * emb.shape[1] + k
        if layers[0][0].shape[1] != want:
            raise ValueError("first layer takes %d inputs, want %d" % (layers[0][0].shape[1], want))
        for i, (w, b) in enumerate(layers[:-1]):
            inits += [nh.from_array(np.asarray(w, np.float32), "w%d" % i),
                      nh.from_array(np.asarray(b, np.float32).reshape(-1), "b%d" % i)]
            nodes += [oh.make_node("Gemm", [x, "w%d" % i, "b%d" % i], ["h%d_pre" % i], transB=1),
                      oh.make_node("Relu", ["h%d_pre" % i], ["h%d" % i])]
            x = "h%d" % i
        w, b = layers[-1]
        w, b = np.asarray(w, np.float32), np.asarray(b, np.float32).reshape(-1)
        if w.shape[0] != 1 or b.shape != (1,):
            raise ValueError("last layer has %d outputs, want 1" % w.shape[0])
        inits += [nh.from_array(w, "w_last"), nh.from_array(b + bias, "b_wide")]
        nodes += [oh.make_node("Gemm", ["wide_terms", summer, "b_wide"], ["wide_logit"]),
                  oh.make_node("Gemm", [x, "w_last", "wide_logit"], ["logit"], transB=1)]
    nodes.append(oh.make_node("Sigmoid", ["logit"], ["pctr"]))
    outputs = [oh.make_tensor_value_info("pctr", onnx.TensorProto.FLOAT, ["batch", 1])]
    g = oh.make_graph(nodes, "wide_deep_ids", inputs, outputs, initializer=inits, sparse_initializer=sparse)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", OPSET)], producer_name="openbidder ctr/train",
                      doc_string=doc)
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _ids(c, x):
    v = x[:, c["slot"]].astype(np.float32) + np.float32(c["add"])
    v = np.minimum(np.maximum(v, np.float32(0)), np.float32(c["max"]))
    return np.trunc(v).astype(np.int64)


def convert(p, x):
    """The model's inputs for feature rows x [N, W] (what ctr does in Go)."""
    x = np.asarray(x, np.float32)
    ids = [_ids(c, x) for c in p["cols"]]
    wide = [i % c["size"] + c["offset"] for i, c in zip(ids, p["cols"])]
    wide += [(ids[q["a"]] * q["mul"] + ids[q["b"]]) % q["buckets"] + q["offset"] for q in p["crosses"]]
    deep = [ids[d["column"]] % d["size"] + d["offset"] for d in p["deep"]]
    num = [np.minimum(np.maximum(x[:, n["slot"]], np.float32(n["lo"])), np.float32(n["hi"])) for n in p["numeric"]]
    n = len(x)
    stack = lambda cols, t: np.stack(cols, 1).astype(t) if cols else np.zeros((n, 0), t)
    return stack(wide, np.int32), stack(deep, np.int32), stack(num, np.float32)


def predict(p, x):
    """The model's output for feature rows x, in numpy (float64 sums: a
    reference within float32 rounding of ONNX Runtime's)."""
    wide, deep, num = convert(p, x)
    if p.get("wide_dtype", "float32") == "float32":
        terms = np.asarray(p["wide"], np.float64)[wide]
    else:  # the stored values as float32 (exact), times the column's scale as float32
        scale = np.asarray(p["wide_scale"], np.float32).astype(np.float64)
        terms = np.asarray(p["wide_stored"]).astype(np.float32).astype(np.float64)[wide] * scale
    logit = terms.sum(1) + float(np.float32(p["bias"]))
    if p["deep"] and p["layers"]:
        h = np.concatenate([np.asarray(p["emb"], np.float64)[deep].reshape(len(x), -1), num.astype(np.float64)], 1)
        for i, (w, b) in enumerate(p["layers"]):
            h = h @ np.asarray(w, np.float64).T + np.asarray(b, np.float64).reshape(-1)
            if i < len(p["layers"]) - 1:
                h = np.maximum(h, 0)
        logit += h[:, 0]
    return 1 / (1 + np.exp(-logit))


def column_tables(p):
    """(offset, size) of the wide table each wide_ids column reads: the wide
    columns, then the crosses."""
    return [(int(c["offset"]), int(c["size"])) for c in p["cols"]] + \
        [(int(x["offset"]), int(x["buckets"])) for x in p["crosses"]]


COMPACT_DTYPES = ("int8", "float16")


def compact(p, dtype):
    """params p with the wide table stored in dtype, the rest unchanged.

    int8: symmetric, one scale per table (per wide_ids column): scale =
    max |w| over the table / 127, stored q = round(w / scale) in [-127, 127].
    0 stays exactly 0 (an id never seen in training still scores as the
    average), each table's largest weight is kept to float32 rounding, and
    the error of any weight is at most scale / 2. float16: the weights
    rounded to half precision (relative error 2^-11), scale 1.
    Refuses tables that overlap (a row read by two columns with two scales)."""
    w = np.asarray(p["wide"], np.float32).reshape(-1)
    tables = column_tables(p)
    owner = np.full(len(w), -1, np.int64)
    for k, (o, n) in enumerate(tables):
        if np.any(owner[o:o + n] >= 0):
            raise ValueError("wide column %d shares table rows with column %d" % (k, owner[o:o + n].max()))
        owner[o:o + n] = k
    q = dict(p)
    if dtype == "float16":
        q["wide_stored"] = w.astype(np.float16)
        q["wide_scale"] = np.ones(len(tables), np.float32)
    elif dtype == "int8":
        stored = np.zeros(len(w), np.int8)
        scale = np.ones(len(tables), np.float32)
        for k, (o, n) in enumerate(tables):
            t = w[o:o + n]
            m = float(np.abs(t).max()) if n else 0.0
            if m == 0:
                continue
            scale[k] = np.float32(m / 127)
            stored[o:o + n] = np.clip(np.rint(t / scale[k]), -127, 127).astype(np.int8)
        q["wide_stored"], q["wide_scale"] = stored, scale
    else:
        raise ValueError("dtype %s is not one of %s" % (dtype, COMPACT_DTYPES))
    q["wide_dtype"] = dtype
    return q


IDS_OPS_WIDE = ["Gather", "Gemm", "Sigmoid"]


def params_from_ids_graph(model, section):
    """params of a float32 "wide_deep_ids" graph as build() writes it, with
    the id arithmetic from its manifest section. Refuses any other graph
    (a compact one included) rather than guess."""
    g = model.graph
    v = _graph_values(g)
    ops = [n.op_type for n in g.node]
    nw = len(section["wide_columns"]) + len(section["crosses"])
    if "wide" not in v or "ones" not in v or not np.all(v["ones"] == 1) or v["ones"].shape != (nw, 1):
        raise ValueError("not a float32 wide_deep_ids graph of build(): initializers %s" % sorted(v))
    p = {"cols": [dict(c) for c in section["wide_columns"]], "crosses": [dict(x) for x in section["crosses"]],
         "deep": [dict(d) for d in section["deep_columns"]], "numeric": [dict(n) for n in section["numeric"]],
         "wide": v["wide"].reshape(-1)}
    if not p["deep"]:
        if ops != IDS_OPS_WIDE:
            raise ValueError("ops %s, want %s" % (ops, IDS_OPS_WIDE))
        p.update(bias=float(v["bias"].reshape(-1)[0]), emb=np.zeros((0, 1), np.float32), layers=[])
        return p
    layers, i = [], 0
    while "w%d" % i in v:
        layers.append((v["w%d" % i], v["b%d" % i]))
        i += 1
    # b_wide is the last layer's bias plus the output bias: keep it whole in
    # the last layer and set the output bias to 0 (the same sum).
    layers.append((v["w_last"], v["b_wide"].reshape(-1)))
    p.update(bias=0.0, emb=v["emb"], layers=layers)
    return p


def _graph_values(g):
    """Initializers (sparse ones densified) and Constant node values by name."""
    vals = {i.name: nh.to_array(i) for i in g.initializer}
    for s in g.sparse_initializer:
        dense = np.zeros(int(np.prod(s.dims)), np.float32)
        idx = nh.to_array(s.indices).reshape(-1)
        dense[idx] = nh.to_array(s.values)
        vals[s.values.name] = dense.reshape(tuple(s.dims))
    for n in g.node:
        if n.op_type == "Constant":
            vals[n.output[0]] = nh.to_array(n.attribute[0].t)
    return vals


ROWS_OPS = ["MatMul", "Add", "Max", "Min", "Cast", "Mod", "Add", "Gather", "Gather", "Constant", "Mul", "Add",
            "Constant", "Mod", "Add", "Concat", "Gather", "Constant", "ReduceSum", "Constant", "Constant", "Constant",
            "Constant", "Slice", "Mod", "Add", "Gather", "Flatten", "Max", "Min", "Gemm", "MatMul", "Add", "Relu",
            "Gemm", "Relu", "Gemm", "Add", "Add", "Sigmoid"]


def params_from_rows_graph(model):
    """params of a "rows" wide & deep graph as mlp_train.py exported it
    before this form (torch.onnx.export of CTRNet after fold(), opset 17).
    Refuses any other graph rather than guess."""
    g = model.graph
    ops = [n.op_type for n in g.node]
    if ops != ROWS_OPS:
        raise ValueError("not the rows-form wide & deep graph of mlp_train.py: ops %s" % ops)
    v = _graph_values(g)
    by_out = {o: n for n in g.node for o in n.output}
    node = lambda op, k: [n for n in g.node if n.op_type == op][k]
    sel, shift, lo, hi = v["sel"], v["shift_ids"], v["lo"], v["hi"]
    if not (np.all(lo == 0) and np.all(sel.sum(0) == 1) and np.all((sel == 0) | (sel == 1))):
        raise ValueError("selection matrix or lower clamp not as exported by mlp_train.py")
    slots = sel.argmax(0)
    sizes, offs = v["wide_sizes"], v["wide_offsets"]
    cols = [{"slot": int(slots[k]), "add": float(shift[k]), "max": float(hi[k]), "size": int(sizes[k]),
             "offset": int(offs[k])} for k in range(sel.shape[1])]
    mul = int(v[node("Mul", 0).input[1]])
    buckets = int(v[node("Mod", 1).input[1]])
    crosses = [{"a": int(a), "b": int(b), "mul": mul, "buckets": buckets, "offset": int(o)}
               for a, b, o in zip(v["cross_a"], v["cross_b"], v["cross_offsets"])]
    sl = node("Slice", 0)
    start, end = int(v[sl.input[1]][0]), int(v[sl.input[2]][0])
    if start != 0 or int(v[sl.input[3]][0]) != 1:
        raise ValueError("deep id slice is not [:, :ncat]")
    deep = [{"column": k, "size": int(s), "offset": int(o)}
            for k, s, o in zip(range(end), v["deep_sizes"], v["deep_offsets"])]
    first_num = v[node("MatMul", 1).input[1]]  # [W, H0], the numeric slots' standardisation folded in
    keep = [j for j in range(first_num.shape[0]) if np.any(first_num[j] != 0)]
    numeric = [{"slot": j, "lo": float(v["num_lo"][j]), "hi": float(v["num_hi"][j])} for j in keep]
    gemms = [n for n in g.node if n.op_type == "Gemm"]
    w0, b0 = v[gemms[0].input[1]], v[gemms[0].input[2]]
    layers = [(np.concatenate([w0, first_num[keep].T], 1), b0)]
    layers += [(v[n.input[1]], v[n.input[2]]) for n in gemms[1:]]
    wide_init = by_out["/wide/Gather_output_0"].input[0]
    emb_init = by_out["/emb/Gather_output_0"].input[0]
    return {"cols": cols, "crosses": crosses, "deep": deep, "numeric": numeric,
            "wide": v[wide_init].reshape(-1), "bias": float(v["bias"].reshape(-1)[0]),
            "emb": v[emb_init], "layers": layers}


def predict_rows_graph(model, x):
    """The "rows" graph's function in numpy, node by node as exported
    (float64 sums): the reference reexport.py checks params against."""
    g = model.graph
    v = _graph_values(g)
    x = np.asarray(x, np.float32)
    ids = np.minimum(np.maximum(x @ v["sel"] + v["shift_ids"], v["lo"]), v["hi"]).astype(np.int64)
    wide_ids = ids % v["wide_sizes"] + v["wide_offsets"]
    node = lambda op, k: [n for n in g.node if n.op_type == op][k]
    mul, buckets = int(v[node("Mul", 0).input[1]]), int(v[node("Mod", 1).input[1]])
    cross = (ids[:, v["cross_a"]] * mul + ids[:, v["cross_b"]]) % buckets + v["cross_offsets"]
    by_out = {o: n for n in g.node for o in n.output}
    wide = v[by_out["/wide/Gather_output_0"].input[0]].reshape(-1).astype(np.float64)
    logit = wide[np.concatenate([wide_ids, cross], 1)].sum(1)
    ncat = len(v["deep_sizes"])
    deep_ids = ids[:, :ncat] % v["deep_sizes"] + v["deep_offsets"]
    emb = v[by_out["/emb/Gather_output_0"].input[0]].astype(np.float64)
    gemms = [n for n in g.node if n.op_type == "Gemm"]
    num = np.minimum(np.maximum(x, v["num_lo"]), v["num_hi"]).astype(np.float64)
    h = emb[deep_ids].reshape(len(x), -1) @ v[gemms[0].input[1]].T.astype(np.float64) + v[gemms[0].input[2]]
    h += num @ v[node("MatMul", 1).input[1]].astype(np.float64)
    for n in gemms[1:]:
        h = np.maximum(h, 0) @ v[n.input[1]].T.astype(np.float64) + v[n.input[2]]
    logit += h[:, 0] + float(v["bias"].reshape(-1)[0])
    return 1 / (1 + np.exp(-logit))
