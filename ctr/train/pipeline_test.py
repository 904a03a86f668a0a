#!/usr/bin/python3
"""Tests of the training pipeline's data handling (rowlog.py's join,
retrain.py's checks, the held-out split, mlp_train.py's input checks), on
small files written here: run by bidder/retrain_test.go
(TestRetrainFitsPython), or by hand:

    cd ctr/train && /usr/bin/python3 -m unittest pipeline_test

Offline, deterministic, a few seconds. Needs python3-numpy (and
python3-onnx, python3-scipy for the retrain.py runs).
"""
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

import rowlog

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "testdata")
PY = "/usr/bin/python3"


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

    def test_long_event_ids_match_the_row_logs_cut(self):
        long = "c" * 300  # the row log keeps 255 bytes
        rows = self.write("rows.bin", header(1, "v") + record(10**9, 0.1, "a", "1", long[:255], "cr", "m", [1]))
        ev = self.write("events.jsonl", event("imp", "a", "1", long, "cr") + event("click", "a", "1", long, "cr"))
        shown, clicked, last = rowlog.read_events(ev)
        d = rowlog.join(rowlog.read_logs(rows), shown, clicked, last, 0)
        self.assertEqual(d["y"].tolist(), [1.0])


if __name__ == "__main__":
    unittest.main()
