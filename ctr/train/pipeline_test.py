#!/usr/bin/python3
"""Tests of the training pipeline's data handling (rowlog.py's join,
retrain.py's checks, the held-out split, mlp_train.py's input checks), on
small files written here: run by bidder/retrain_test.go
(TestRetrainFitsPython), or by hand:

    cd ctr/train && /usr/bin/python3 -m unittest pipeline_test

Offline, deterministic, a few seconds. Needs python3-numpy (and
python3-onnx, python3-scipy for the retrain.py runs; the tests that run
mlp_train.py or gbdt_train.py need python3-torch or python3-xgboost too,
and skip without them).
"""
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

import numpy as np

import evalmetrics
import rowlog

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "testdata")
PY = "/usr/bin/python3"


def have(*modules):
    """Whether /usr/bin/python3 (this interpreter) can import every module."""
    return all(importlib.util.find_spec(m) is not None for m in modules)


def record(t_ns, pctr, auction, imp, campaign, creative, model, row):
    """One row log record (bidder/rowlog.go's format)."""
    body = struct.pack("<qf", t_ns, pctr)
    for s in (auction, imp, campaign, creative, model):
        b = s.encode("utf-8", "surrogateescape")
        body += bytes([len(b)]) + b
    body += np.asarray(row, "<f4").tobytes()
    return struct.pack("<I", len(body)) + body + struct.pack("<I", zlib.crc32(body))


def header(width, schema):
    return b"OBRL" + struct.pack("<HH", 1, width) + bytes([len(schema)]) + schema.encode()


def load(path):
    with open(path) as f:
        return json.load(f)


def event(kind, auction, imp, campaign, creative, sec=1000.0):
    from datetime import datetime, timezone
    ts = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"time": ts, "kind": kind, "auction": auction, "imp": imp, "campaign": campaign,
                       "creative": creative}) + "\n"


def featurize_dir(d, n, nan=None):
    """A features/cmd/featurize rows directory of n random rows under d
    (nan: (column, rows) set to NaN or Inf); returns it and the slot names."""
    import mlp_train  # torch: a few seconds
    version, width, slots = mlp_train.read_schema(os.path.join(HERE, "..", "..", "features", "schema.go"))
    rng = np.random.default_rng(1)
    raw = np.zeros((n, width + 2), "<f4")
    raw[:, :width] = rng.integers(0, 5, (n, width))
    raw[:, width] = rng.random(n) < 0.2
    raw[:, width + 1] = 0.2
    if nan:
        raw[nan[1], nan[0]] = [(np.nan, np.inf)[i % 2] for i in range(len(nan[1]))]
    data = os.path.join(d, "rows")
    os.makedirs(data)
    raw.tofile(os.path.join(data, "rows.f32"))
    with open(os.path.join(data, "rows.json"), "w") as f:
        json.dump({"schema_version": version, "width": width, "rows": n, "seed": 1,
                   "columns": [sl[0] for sl in slots] + ["label", "true_ctr"]}, f)
    return data, [sl[0] for sl in slots]


class Tmp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pipeline_test")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, data):
        p = os.path.join(self.dir, name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return p


class Served(Tmp):
    """A served model (ctr/testdata's mlp_tiny, copied) and a row log of n
    shown bids with their events: a bid's click probability is ctr x 4 when
    its publisher slot (5) is even and x 0.25 when odd, a signal the served
    model lacks, so a retrain promotes."""

    def fixture(self, n=6000, ctr=0.05, name="mlp_tiny", corrupt_at=None, nan_rows=()):
        for f in ("mlp_tiny.manifest.json", "mlp_tiny.onnx", "mlp_tiny.parity.json"):
            shutil.copy(os.path.join(TESTDATA, f), self.dir)
        self.served = os.path.join(self.dir, "mlp_tiny.manifest.json")
        man = load(self.served)
        if name != man["name"]:
            man["name"] = name
            with open(self.served, "w") as f:
                json.dump(man, f)
        inputs = np.array(load(os.path.join(self.dir, "mlp_tiny.parity.json"))["inputs"], np.float32)
        rng = np.random.default_rng(7)
        recs, ev = [], []
        for i in range(n):
            row = inputs[i % len(inputs)].copy()
            pub = int(rng.integers(0, 40))
            row[5] = pub
            if i in nan_rows:
                row[7] = np.nan if i % 2 else np.inf
            recs.append(record(10**18 + i * 10**6, 0.05, "a-%05d" % i, "1", "c", "cr", name, row))
            ev.append(event("imp", "a-%05d" % i, "1", "c", "cr", sec=10**9 + 60 + n / 1000))
            if rng.random() < ctr * (4 if pub % 2 == 0 else 0.25):
                ev.append(event("click", "a-%05d" % i, "1", "c", "cr", sec=10**9 + 60 + n / 1000))
        body = bytearray(header(man["width"], man["schema_version"]) + b"".join(recs))
        if corrupt_at is not None:
            body[corrupt_at] ^= 0xFF
        self.rows = self.write("rows.bin", bytes(body))
        self.events = self.write("events.jsonl", "".join(ev))
        return len(recs[0])

    def retrain(self, *args):
        """retrain.py's exit status, stderr and report (None when none)."""
        report = os.path.join(self.dir, "report.json")
        if os.path.exists(report):
            os.unlink(report)
        r = subprocess.run([PY, os.path.join(HERE, "retrain.py"), "--rows", self.rows, "--events", self.events,
                            "--served", self.served, "--settle", "0", "--report", report] + list(args),
                           capture_output=True, text=True, timeout=120)
        return r.returncode, r.stderr, (load(report) if os.path.exists(report) else None)


class Torn(Served):
    def test_mid_file_tear_is_counted_and_refused(self):
        reclen = self.fixture(n=400)
        hdr = len(header(41, "v2"))
        self.fixture(n=400, corrupt_at=hdr + 100 * reclen + 30)  # record 100's body: 300 records lost
        log = rowlog.read_logs(self.rows)
        self.assertEqual(len(log), 100)
        (t,) = log.tears
        self.assertFalse(t["tail"], t)
        self.assertEqual(t["records_lost_at_least"], 299)  # the corrupt one itself cannot be counted
        rc, err, report = self.retrain("--dry-run")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("torn mid-file", err)
        rc, err, report = self.retrain("--dry-run", "--accept-torn")
        self.assertEqual(rc, 0, err)
        self.assertIn("warning: row log", err)
        self.assertEqual(report["row_log"]["torn_files"], 1)
        self.assertEqual(report["row_log"]["torn_mid_file"], 1)
        self.assertEqual(report["row_log"]["records_lost_at_least"], 299)
        self.assertEqual(report["records"], 100)

    def test_torn_tail_is_reported_not_refused(self):
        self.fixture(n=300)
        with open(self.rows, "r+b") as f:
            f.truncate(os.path.getsize(self.rows) - 7)  # a crash mid-write
        rc, err, report = self.retrain("--dry-run")
        self.assertEqual(rc, 0, err)
        self.assertEqual(report["row_log"]["torn_files"], 1)
        self.assertEqual(report["row_log"]["torn_mid_file"], 0)
        self.assertEqual(report["records"], 299)


class NonFinite(Served):
    def test_nonfinite_names_columns_and_rows(self):
        x = np.zeros((10, 3), np.float32)
        x[2, 1], x[5, 1], x[5, 2] = np.nan, np.inf, -np.inf
        msg = evalmetrics.nonfinite(x, ["a", "b", "c"], chunk=4)
        self.assertEqual(msg, "2 of 10 rows hold NaN or Inf: b (column 1): 2 rows, c (column 2): 1 rows")
        self.assertIsNone(evalmetrics.nonfinite(np.ones((4, 2))))

    @unittest.skipUnless(have("torch"), "needs python3-torch (mlp_train.py)")
    def test_mlp_train_refuses_nan_rows_and_writes_nothing(self):
        data, names = featurize_dir(self.dir, 400, nan=(4, [3, 50, 70]))
        out = os.path.join(self.dir, "out")
        r = subprocess.run([PY, os.path.join(HERE, "mlp_train.py"), "--data", data, "--out", out, "--epochs", "0",
                            "--wide-sweeps", "1"], capture_output=True, text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("3 of 400 rows hold NaN or Inf: %s (column 4): 3 rows" % names[4], r.stderr)
        self.assertFalse(os.path.exists(out), "mlp_train.py wrote %s" % out)

    def test_retrain_refuses_nan_rows(self):
        self.fixture(n=500, nan_rows=(10, 11, 400))
        rc, err, report = self.retrain("--dry-run")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("3 of 500 rows hold NaN or Inf: column 7: 3 rows", err)
        self.assertIsNone(report)


class Distill(Tmp):
    @unittest.skipUnless(shutil.which("go"), "needs go (make_distill.sh builds servescore)")
    def test_make_distill_writes_its_sample_under_out(self):
        # A stand-in python records distill.py's arguments and stops the
        # script there.
        data = os.path.join(self.dir, "rows")
        os.makedirs(data)
        self.write("rows/rows.json", '{"rows": 10}')
        teacher = self.write("teacher.f32", b"\0" * 40)
        args = os.path.join(self.dir, "args")
        stub = self.write("python", '#!/bin/sh\nprintf "%%s\\n" "$@" > %s\nexit 3\n' % args)
        os.chmod(stub, 0o755)
        out = os.path.join(self.dir, "out")
        env = dict(os.environ, DATA=data, TEACHER=teacher, OUT=out, PYTHON=stub, WORK=os.path.join(self.dir, "w"))
        r = subprocess.run(["sh", os.path.join(HERE, "make_distill.sh")], env=env, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 3, r.stderr)
        with open(args) as f:
            argv = f.read().split("\n")
        self.assertEqual(argv[argv.index("--sample") + 1], os.path.join(out, "distill_sample.json"))


class Promote(Served):
    def test_promoted_manifest_describes_the_retrain(self):
        self.fixture(n=15000, name="ctr-ranker")
        before = load(self.served)
        rc, err, report = self.retrain()
        self.assertEqual(rc, 0, err)
        self.assertIn("promoted", report, report.get("decision"))
        man = load(self.served)
        self.assertRegex(man["name"], r"^ctr-ranker-r\d+$")  # not "ctr-r..."
        tr = man["training"]
        self.assertIn("retrain.py", tr["script"])
        self.assertEqual((tr["rows"], tr["clicks"]), (report["train_rows"], report["clicks"] - report["heldout_clicks"]))
        self.assertEqual(tr["retrained_from"]["name"], "ctr-ranker")
        self.assertEqual(tr["retrained_from"]["training"], before["training"])

    def test_retrain_name_strips_only_its_own_suffix(self):
        import retrain
        for name, base in (("ctr-ranker", "ctr-ranker"), ("ctr-ranker-r1750000000", "ctr-ranker"),
                           ("mlp-r1750000000", "mlp"), ("mlp", "mlp"), ("a-rb-r12", "a-rb"), ("x-r", "x-r")):
            self.assertEqual(retrain.retrain_base(name), base, name)


class Int8(Served):
    def test_retrain_refuses_the_int8_variant_with_a_clear_error(self):
        self.fixture(n=100)
        for f in ("mlp_int8.manifest.json", "mlp_int8.onnx", "mlp_int8.parity.json"):
            shutil.copy(os.path.join(HERE, "..", "..", "configs", "models", f), self.dir)
        self.served = os.path.join(self.dir, "mlp_int8.manifest.json")
        rc, err, report = self.retrain("--dry-run")
        self.assertNotEqual(rc, 0)
        self.assertNotIn("Traceback", err)
        self.assertIn("made by ctr/train/compact.py from the float32 model", err)


class Split(Tmp):
    @unittest.skipUnless(have("torch", "xgboost"), "needs python3-torch and python3-xgboost (mlp_train.py, gbdt_train.py)")
    def test_training_scripts_hold_out_the_same_rows(self):
        # 401 rows: int(0.75 n) = 300 trains (101 held out), while
        # servescore -heldout 0.25 and gbdt_train.py hold out int(0.25 n) =
        # 100. Both scripts must report the same held-out rows.
        n = 401
        self.assertEqual(evalmetrics.heldout_start(n), n - int(n * 0.25))
        data, _ = featurize_dir(self.dir, n)
        got = {}
        for script, args in (("mlp_train.py", ["--epochs", "0", "--wide-sweeps", "1"]),
                             ("gbdt_train.py", ["--trees", "2", "--threads", "1"])):
            out = os.path.join(self.dir, script)
            r = subprocess.run([PY, os.path.join(HERE, script), "--data", data, "--out", out] + args,
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-3000:])
            (man,) = [f for f in os.listdir(out) if f.endswith(".manifest.json")]
            got[script] = load(os.path.join(out, man))["metrics"]["heldout_rows"]
        self.assertEqual(got, {"mlp_train.py": 100, "gbdt_train.py": 100})


class Join(Tmp):
    def test_join_keys_on_campaign_and_creative(self):
        # Two runs with the same seed: the same auction and imp ids, bids for
        # different campaigns (and, in the second pair, different creatives
        # of one campaign). Only campaign B's bid and creative cr-2's were
        # clicked.
        w = 3
        recs = [record(10**9, 0.1, "a-1", "1", "A", "cr-1", "m", [1, 0, 0]),
                record(2 * 10**9, 0.1, "a-1", "1", "B", "cr-9", "m", [2, 0, 0]),
                record(3 * 10**9, 0.1, "a-2", "1", "C", "cr-1", "m", [3, 0, 0]),
                record(4 * 10**9, 0.1, "a-2", "1", "C", "cr-2", "m", [4, 0, 0])]
        rows = self.write("rows.bin", header(w, "v") + b"".join(recs))
        ev = self.write("events.jsonl", "".join([
            event("imp", "a-1", "1", "A", "cr-1"), event("imp", "a-1", "1", "B", "cr-9"),
            event("click", "a-1", "1", "B", "cr-9"),
            event("imp", "a-2", "1", "C", "cr-1"), event("imp", "a-2", "1", "C", "cr-2"),
            event("click", "a-2", "1", "C", "cr-2")]))
        shown, clicked, last = rowlog.read_events(ev)
        d = rowlog.join(rowlog.read_logs(rows), shown, clicked, last, 0)
        got = {int(r[0]): y for r, y in zip(d["x"], d["y"])}  # row i's first value is i
        self.assertEqual(got, {1: 0.0, 2: 1.0, 3: 0.0, 4: 1.0})

    def test_conflicting_duplicates_are_counted_not_joined(self):
        # The same (auction, imp, campaign, creative) logged with two
        # different feature rows: the events cannot say which was clicked;
        # a replay (the same row again) keeps its first record.
        recs = [record(10**9, 0.1, "a-1", "1", "A", "cr", "m", [1, 0]),
                record(2 * 10**9, 0.1, "a-1", "1", "A", "cr", "m", [9, 9]),
                record(3 * 10**9, 0.1, "a-2", "1", "A", "cr", "m", [5, 0]),
                record(4 * 10**9, 0.1, "a-2", "1", "A", "cr", "m", [5, 0])]
        rows = self.write("rows.bin", header(2, "v") + b"".join(recs))
        ev = self.write("events.jsonl", "".join([
            event("imp", "a-1", "1", "A", "cr"), event("click", "a-1", "1", "A", "cr"),
            event("imp", "a-2", "1", "A", "cr")]))
        shown, clicked, last = rowlog.read_events(ev)
        d = rowlog.join(rowlog.read_logs(rows), shown, clicked, last, 0)
        self.assertEqual(d["stats"], {"replays": 1, "conflicting_keys": 1, "conflicting_records": 2})
        self.assertEqual([k for k in d["key"]], [("a-2", "1")])
        self.assertEqual(d["y"].tolist(), [0.0])

    def test_event_lines_lost_are_reported(self):
        # A line that is not JSON in the middle of the log is an event lost
        # (it was skipped silently); a torn last line is expected.
        import contextlib
        import io
        good = event("imp", "a", "1", "A", "cr")
        for body, want in [(good + "{not json\n" + event("click", "a", "1", "A", "cr") + '{"kind": "im', 1),
                           (good + '{"kind": "im', 0), (good + "   ", 0), (good + "{bad\n" + "  ", 1)]:
            ev = self.write("events.jsonl", body)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                shown, clicked, _ = rowlog.read_events(ev)
            self.assertIn(("a", "1", "A"), shown)
            if want:
                self.assertIn("%d event log lines are not JSON" % want, err.getvalue())
            else:
                self.assertEqual(err.getvalue(), "")

    def test_long_event_ids_match_the_row_logs_cut(self):
        long = "c" * 300  # the row log keeps 255 bytes
        rows = self.write("rows.bin", header(1, "v") + record(10**9, 0.1, "a", "1", long[:255], "cr", "m", [1]))
        ev = self.write("events.jsonl", event("imp", "a", "1", long, "cr") + event("click", "a", "1", long, "cr"))
        shown, clicked, last = rowlog.read_events(ev)
        d = rowlog.join(rowlog.read_logs(rows), shown, clicked, last, 0)
        self.assertEqual(d["y"].tolist(), [1.0])


if __name__ == "__main__":
    unittest.main()
