"""AUC, log loss and calibration as the training scripts compute them
(gbdt_train.py and mlp_train.py hold the same functions), without their
framework imports: for predcompare.py and retrain.py. Needs numpy only."""
import numpy as np


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
