#!/usr/bin/python3
"""Tests of retrain.py's fits on a synthetic wide model (no files): run by
bidder/retrain_test.go (TestRetrainFitsPython), or by hand:

    cd ctr/train && /usr/bin/python3 -m unittest retrain_test
"""
import unittest

import numpy as np

import retrain
from evalmetrics import logloss


def model(rng):
    """Two wide tables of 64 weights (slots 0 and 1), no deep part."""
    cols = [{"slot": s, "add": 0.0, "max": 255.0, "size": 64, "offset": 64 * s} for s in (0, 1)]
    return {"cols": cols, "crosses": [], "deep": [], "numeric": [], "layers": [],
            "wide": rng.normal(0, 0.6, 128).astype(np.float32), "bias": float(np.log(0.03 / 0.97))}


def drifted(p, rng, n):
    """Rows whose truth is the model with table 0's effect reversed."""
    x = rng.integers(0, 64, (n, 2)).astype(np.float32)
    w = np.asarray(p["wide"], np.float64)
    z = p["bias"] - w[x[:, 0].astype(int)] + w[64 + x[:, 1].astype(int)]
    return x, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)


class RetrainFits(unittest.TestCase):
    def test_rescale_reverses_a_flipped_table(self):
        rng = np.random.default_rng(3)
        p = model(rng)
        x, y = drifted(p, rng, 4000)  # about 130 clicks
        xh, yh = drifted(p, rng, 40000)
        q, info = retrain.rescale(p, x, y, 1.0)
        a0, a1 = info["scales"]["0"], info["scales"]["1"]
        self.assertLess(a0, -0.5, info)  # the reversed table's sign is turned back
        self.assertGreater(a1, 0.7, info)  # the unchanged table is kept
        served = logloss(yh, retrain.wdi.predict(p, xh))
        scaled = logloss(yh, retrain.wdi.predict(q, xh))
        per_weight = logloss(yh, retrain.wdi.predict(retrain.refit(p, x, y, 100.0)[0], xh))
        self.assertLess(scaled, per_weight)  # a table at once beats weight by weight on few clicks
        self.assertLess(per_weight, served)


if __name__ == "__main__":
    unittest.main()
