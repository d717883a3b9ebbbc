#!/usr/bin/python3
"""Writes pca_golden.json: a synthetic 40x7 matrix and its first two principal components by
numpy's SVD (sign: the entry of largest magnitude positive), for test_report's PCA test.
Reference: numpy 1.24.2 (Debian bookworm's python3-numpy 1:1.24.2-1+deb12u1, LAPACK via OpenBLAS), its
numpy.linalg.svd; the version is recorded in the JSON ("reference").
Run: /usr/bin/python3 tests/report/data/make_pca_golden.py"""
import json
import os

import numpy as np

rng = np.random.default_rng(21)
n, d = 40, 7
x = rng.normal(size=(n, d)) @ np.diag([5.0, 3.0, 1.5, 1.0, 0.5, 0.3, 0.1]) + rng.normal(size=d)
x = x.astype(np.float32)
xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
_, s, vt = np.linalg.svd(xc, full_matrices=False)
comps = []
for c in range(2):
    v = vt[c]
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    comps.append(v.tolist())
var = s ** 2 / (n - 1)
out = {
    "reference": "numpy %s numpy.linalg.svd" % np.__version__,
    "n": n, "d": d, "values": x.ravel().tolist(), "components": comps,
    "variance": var[:2].tolist(), "explained": (var[:2] / var.sum()).tolist(),
    "scores": (xc @ np.array(comps).T).ravel().tolist(),
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pca_golden.json"), "w") as f:
    json.dump(out, f)
