#!/usr/bin/python3
"""Read the bidder's row log (model.row_log, bidder/rowlog.go) and join it
with the bidder's event log (events.jsonl) into labelled training rows.

    /usr/bin/python3 ctr/train/rowlog.py --dump FILE          records as JSON lines
    /usr/bin/python3 ctr/train/rowlog.py --rows PATH --events events.jsonl   a summary of the join

The event log's rotated files (events-TIMESTAMP.jsonl[.gz] beside it, the
bidder's events: section) are read too.

Row log file (little-endian): a header "OBRL" | u16 version 1 | u16 width |
u8 n | schema version (n bytes), then records: u32 body length L | body |
u32 CRC-32 of the body, the body being i64 bid time (unix ns) | f32 pCTR |
u8 n + auction id | u8 n + imp id | u8 n + campaign | u8 n + creative |
u8 n + model name | width x f32 feature row. A short or corrupt record (a
crash mid-write) ends the file. PATH is the current file; its rotated
predecessors are PATH.1 (the newest) to PATH.N.

Torn files are counted (RowLog.torn) and described (RowLog.tears: file,
offset, bytes not read, whether the tear is the file's tail, and how many
intact records were found after it and not read). A tail tear is what a
crash mid-write leaves: fewer bytes after the last good record than one
record can hold. Anything else (a corrupt byte mid-file) loses every record
after it: retrain.py refuses such logs unless told to accept them.

Ids are raw bytes in the row log, and need not be UTF-8 (an exchange's
auction id): each byte that is not part of valid UTF-8 reads as the lone
surrogate U+DC00+byte ("surrogateescape"), which is what the event log's
\\udcXX escape for that byte (bidder/events.go, eventID) reads as, so both
logs key such a bid alike and two such ids stay apart.

Labels (join()): a logged bid whose (auction, imp, campaign) has an "imp"
event was shown; it is a click when the same key has a "click" event. Both
logs carry the creative too: where both the record and the event name one,
they must be the same creative. (Auction ids alone are not unique: two
simulator runs with the same seed into one data dir reuse them, and an
exchange's ids may repeat; joined by (auction, imp) alone, a click on one
campaign's ad labelled another campaign's bid.) Ids are compared as the row
log keeps them, cut to 255 bytes. Bids never shown (lost, not rendered) are
not training rows. Bids newer than the last event minus `settle` seconds are
left out: their impression or click may not have arrived yet. A bid logged
twice with the same feature row (a replayed request) keeps its first record
(counted: "replays"); records of one key whose feature rows differ are not a
replay but two bids the events cannot tell apart: every record of that key
is left out and counted ("conflicting_keys", "conflicting_records"), never
silently joined.

Needs python3-numpy only.
"""
import argparse
import glob
import json
import os
import struct
import sys
import zlib

import numpy as np

MAGIC = b"OBRL"
VERSION = 1


class RowLog:
    """Records of one or more row log files, oldest first, as arrays."""

    def __init__(self, width, schema):
        self.width, self.schema = width, schema
        self.time, self.pctr, self.rows = [], [], []
        self.auction, self.imp, self.campaign, self.creative, self.model = [], [], [], [], []
        self.torn = 0  # files that ended in a torn or corrupt record
        self.tears = []  # one dict per torn file (tear())

    def __len__(self):
        return len(self.time)

    def tear(self, path, b, off, width):
        """Count and describe the tear at offset off of file path (bytes b)."""
        self.torn += 1
        lost = len(b) - off
        after = _intact_after(b, off + 1, record_max(width) - 8)
        self.tears.append({"file": path, "offset": off, "bytes_lost": lost,
                           "tail": lost < record_max(width) and after == 0, "records_lost_at_least": after})

    def tear_summary(self):
        """The tears in a few numbers (for a report)."""
        mid = [t for t in self.tears if not t["tail"]]
        return {"torn_files": self.torn, "torn_mid_file": len(mid),
                "bytes_lost": sum(t["bytes_lost"] for t in self.tears),
                "records_lost_at_least": sum(t["records_lost_at_least"] for t in self.tears),
                "tears": self.tears}

    def arrays(self):
        """(time ns int64 [n], pctr float64 [n], rows float32 [n, width])."""
        rows = np.frombuffer(b"".join(self.rows), "<f4").reshape(-1, self.width) if self.rows else \
            np.zeros((0, self.width), np.float32)
        return np.array(self.time, np.int64), np.array(self.pctr, np.float64), rows


def record_max(width):
    """The largest record of a row of width values (bidder/rowlog.go,
    rowLogRecordMax)."""
    return 4 + 17 + 5 * 255 + 4 * width + 4


def _intact_after(b, start, max_body):
    """How many intact records (length and CRC right) follow the first one
    found from start on, that one included: the records a tear made the
    reader skip. 0 when none is found (a tail tear)."""
    for pos in range(start, len(b) - 8):
        (length,) = struct.unpack_from("<I", b, pos)
        end = pos + 4 + length
        if not 17 <= length <= max_body or end + 4 > len(b) or \
                zlib.crc32(b[pos + 4:end]) != struct.unpack_from("<I", b, end)[0]:
            continue
        n = 0
        while pos + 4 <= len(b):
            (length,) = struct.unpack_from("<I", b, pos)
            end = pos + 4 + length
            if end + 4 > len(b) or zlib.crc32(b[pos + 4:end]) != struct.unpack_from("<I", b, end)[0]:
                break
            n, pos = n + 1, end + 4
        return n
    return 0


def read_file(path, into=None):
    """Append the records of one file to into (a RowLog; new when None)."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 9 or b[:4] != MAGIC:
        raise ValueError("%s: not a row log (magic %r)" % (path, b[:4]))
    version, width = struct.unpack_from("<HH", b, 4)
    if version != VERSION:
        raise ValueError("%s: row log version %d, this reader knows %d" % (path, version, VERSION))
    n = b[8]
    schema = b[9:9 + n].decode()
    if into is None:
        into = RowLog(width, schema)
    elif (into.width, into.schema) != (width, schema):
        raise ValueError("%s: width %d schema %s, earlier files %d %s" % (path, width, schema, into.width, into.schema))
    off, rowbytes = 9 + n, 4 * width
    while off < len(b):
        if off + 4 > len(b):
            into.tear(path, b, off, width)
            break
        (length,) = struct.unpack_from("<I", b, off)
        end = off + 4 + length
        if end + 4 > len(b) or zlib.crc32(b[off + 4:end]) != struct.unpack_from("<I", b, end)[0]:
            into.tear(path, b, off, width)
            break
        t, p = struct.unpack_from("<qf", b, off + 4)
        pos = off + 16
        fields = []
        for _ in range(5):
            k = b[pos]
            fields.append(b[pos + 1:pos + 1 + k].decode("utf-8", "surrogateescape"))
            pos += 1 + k
        if end - pos != rowbytes:
            raise ValueError("%s: record at %d holds %d row bytes, want %d" % (path, off, end - pos, rowbytes))
        into.time.append(t)
        into.pctr.append(p)
        into.auction.append(fields[0])
        into.imp.append(fields[1])
        into.campaign.append(fields[2])
        into.creative.append(fields[3])
        into.model.append(fields[4])
        into.rows.append(b[pos:end])
        off = end + 4
    return into


def log_files(path):
    """PATH's rotated files, oldest first, then PATH."""
    rotated = []
    for p in glob.glob(glob.escape(path) + ".*"):
        suffix = p[len(path) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if os.path.exists(path) else [])


def read_logs(path):
    """Every record of PATH and its rotated files, oldest file first."""
    files = log_files(path)
    if not files:
        raise FileNotFoundError("no row log at %s" % path)
    log = None
    for p in files:
        log = read_file(p, log)
    return log


def event_files(path):
    """The event log PATH and its rotated backups (lumberjack's
    NAME-TIMESTAMP.EXT, gzipped or not), oldest first."""
    stem, ext = os.path.splitext(path)
    backups = sorted(glob.glob(glob.escape(stem) + "-*" + ext) + glob.glob(glob.escape(stem) + "-*" + ext + ".gz"))
    return backups + ([path] if os.path.exists(path) else [])


def _lines(files):
    import gzip
    for p in files:
        with (gzip.open(p, "rt") if p.endswith(".gz") else open(p)) as f:
            yield from f


MAX_ID = 255  # bytes of an id the row log keeps (bidder/rowlog.go, rowLogMaxID)


def _id(s):
    """An event log id as the row log keeps it: at most MAX_ID bytes."""
    s = s or ""
    b = s.encode("utf-8", "surrogateescape")
    return s if len(b) <= MAX_ID else b[:MAX_ID].decode("utf-8", "surrogateescape")


def read_events(path):
    """Bids with an impression, bids with a click, and the time of the last
    event (unix seconds), from PATH and its rotated files. The first two are
    dicts from (auction, imp, campaign) to the set of creatives the events
    name ("" where an event names none)."""
    from datetime import datetime
    shown, clicked, last = {}, {}, 0.0
    files = event_files(path)
    if not files:
        raise FileNotFoundError("no event log at %s" % path)
    bad, torn = 0, False
    for line in _lines(files):
        torn = False
        try:
            e = json.loads(line)
        except ValueError:
            bad += line.strip() != ""
            torn = line.strip() != "" and not line.endswith("\n")  # only a file's last line lacks its newline
            continue
        kind = e.get("kind")
        if kind not in ("imp", "click"):
            continue
        key = (_id(e.get("auction")), _id(e.get("imp")), _id(e.get("campaign")))
        (shown if kind == "imp" else clicked).setdefault(key, set()).add(_id(e.get("creative")))
        ts = e.get("time", "")
        if ts:
            # RFC 3339 with nanoseconds: Python takes microseconds.
            head, _, frac = ts.rstrip("Z").partition(".")
            sec = datetime.fromisoformat(head + "+00:00").timestamp() + (float("0." + frac) if frac else 0.0)
            last = max(last, sec)
    # The newest file's last line may be torn (being written, or cut by a
    # crash); any other line that is not JSON is an event lost: say so, its
    # impression or click is missing from the labels.
    bad -= torn
    if bad:
        print("rowlog: warning: %d event log lines are not JSON and were left out (their impressions and clicks "
              "are not in the labels)" % bad, file=sys.stderr)
    return shown, clicked, last


def _has(events, key):
    """Whether events (read_events) hold the bid key (auction, imp,
    campaign, creative): the same auction, imp and campaign, and the same
    creative where both name one."""
    creatives = events.get(key[:3])
    if not creatives:
        return False
    return key[3] == "" or key[3] in creatives or "" in creatives


def join(log, shown, clicked, last_event, settle=30.0):
    """Labelled rows of the shown bids, in time order:
    dict of time (ns), pctr (as served), x [n, width], y, model, campaign,
    creative, key ((auction, imp)), and stats: replays (records left out as
    a replay of an earlier one: same key, same feature row), conflicting_keys
    and conflicting_records (keys logged with different feature rows, and
    their records, all left out)."""
    t, p, x = log.arrays()
    keys = list(zip(log.auction, log.imp, log.campaign, log.creative))
    cut = (last_event - settle) * 1e9
    keep = np.array([_has(shown, k) for k in keys], bool) & (t <= cut)
    # A bid logged twice (a replayed request, the same row) keeps its first
    # record; a key logged with different rows cannot be labelled.
    first, rows = {}, {}
    replays = 0
    conflict = set()
    for i in np.nonzero(keep)[0]:
        k = keys[i]
        if k not in first:
            first[k] = i
            rows[k] = log.rows[i]
        elif log.rows[i] == rows[k]:
            replays += 1
        else:
            conflict.add(k)
    conflicting_records = int(sum(1 for i in np.nonzero(keep)[0] if keys[i] in conflict))
    idx = np.array(sorted(i for k, i in first.items() if k not in conflict), np.int64)
    idx = idx[np.argsort(t[idx], kind="stable")]
    y = np.array([_has(clicked, keys[i]) for i in idx], np.float64)
    return {"time": t[idx], "pctr": p[idx], "x": np.ascontiguousarray(x[idx]), "y": y,
            "model": [log.model[i] for i in idx], "campaign": [log.campaign[i] for i in idx],
            "creative": [log.creative[i] for i in idx], "key": [keys[i][:2] for i in idx],
            "stats": {"replays": replays, "conflicting_keys": len(conflict),
                      "conflicting_records": conflicting_records}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", help="print one file's records as JSON lines")
    ap.add_argument("--rows", help="row log path (with its rotated files)")
    ap.add_argument("--events", help="the bidder's events.jsonl")
    ap.add_argument("--settle", type=float, default=30.0)
    a = ap.parse_args()
    if a.dump:
        log = read_file(a.dump)
        _, _, rows = log.arrays()
        for i in range(len(log)):
            print(json.dumps({"Time": log.time[i], "PCTR": float(np.float32(log.pctr[i])), "Auction": log.auction[i],
                              "Imp": log.imp[i], "Campaign": log.campaign[i], "Creative": log.creative[i],
                              "Model": log.model[i], "Row": [float(v) for v in rows[i]]}))
        return
    if not (a.rows and a.events):
        ap.error("--dump FILE, or --rows and --events")
    log = read_logs(a.rows)
    shown, clicked, last = read_events(a.events)
    d = join(log, shown, clicked, last, a.settle)
    print(json.dumps(dict({"records": len(log), "torn_files": log.torn, "torn_mid_file": log.tear_summary()["torn_mid_file"],
                           "shown": len(d["y"]),
                           "clicks": int(d["y"].sum()), "models": sorted(set(d["model"]))}, **d["stats"])))


if __name__ == "__main__":
    sys.exit(main())
