"""AUC, log loss and calibration as the training scripts compute them
(gbdt_train.py and mlp_train.py hold the same functions), without their
framework imports: for predcompare.py and retrain.py; and the checks the
training scripts share (nonfinite, heldout_start). Needs numpy only."""
import numpy as np

# The held-out share of a featurize rows file: its last int(n x 0.25) rows,
# for every training script (gbdt_train.py, mlp_train.py, distill.py) and
# servescore -heldout 0.25.
HELDOUT_FRACTION = 0.25


def heldout_start(n, fraction=HELDOUT_FRACTION):
    """The first held-out row of n: the last int(n x fraction) rows are held
    out (servescore -heldout's rule), the rows before it train."""
    return n - int(n * fraction)


def nonfinite(x, names=None, chunk=1 << 20):
    """None when every value of x ([n, w], or [n]) is finite; else a message
    naming each column holding NaN or +-Inf with its row count, and how many
    rows hold any. names: the columns' names (default "column j"). Read in
    chunks of rows, so a memory-mapped file is not copied whole."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    per_col, rows = np.zeros(x.shape[1], np.int64), 0
    for i in range(0, len(x), chunk):
        bad = ~np.isfinite(x[i:i + chunk])
        per_col += bad.sum(0)
        rows += int(bad.any(1).sum())
    if rows == 0:
        return None
    cols = [("%s (column %d)" % (names[j], j) if names and j < len(names) else "column %d" % j) +
            ": %d rows" % per_col[j] for j in np.nonzero(per_col)[0]]
    return "%d of %d rows hold NaN or Inf: %s" % (rows, len(x), ", ".join(cols))


def auc(y, p):
    """Area under the ROC curve; tied predictions share their mean rank."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    order = np.argsort(p, kind="mergesort")
    _, start, counts = np.unique(p[order], return_index=True, return_counts=True)
    ranks = np.empty(len(p))
    ranks[order] = np.repeat(start + (counts + 1) / 2.0, counts)
    pos = y.sum()
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def logloss(y, p):
    p = np.clip(np.asarray(p, np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(y, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration(y, p):
    """Mean prediction over observed rate (1 = calibrated on average)."""
    y = np.asarray(y, np.float64)
    return float(np.mean(p) / y.mean()) if y.sum() > 0 else float("inf")
