#!/usr/bin/python3
"""Times a scikit-learn stratified bootstrap loop of roc_auc_score on the benchmark data.

/usr/bin/python3 reference_timing.py BOOT_CSV BOOT_REPS   ->  "name seconds replicates"
"""
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

data = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
reps = int(sys.argv[2])
y, s = data[:, 0], data[:, 1]
pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
rng = np.random.default_rng(1)
t0 = time.perf_counter()
aucs = []
for _ in range(reps):
    idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
    aucs.append(roc_auc_score(y[idx], s[idx]))
np.percentile(aucs, [2.5, 97.5])
print(f"sklearn_bootstrap_1e5 {time.perf_counter() - t0:.6f} {reps}")
