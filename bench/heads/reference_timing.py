#!/usr/bin/python3
"""scikit-learn reference for bench_heads: the same C sweep on the same data.

usage: reference_timing.py DIR TOL MAX_ITER C1,C2,...
DIR holds x_train.npy, y_train.npy, x_val.npy, y_val.npy (float32 / float64) written by
bench_heads. Standardises with StandardScaler (train statistics), fits
LogisticRegression(solver='lbfgs', C, tol, max_iter) per C, and prints one JSON line:
{"seconds": .., "val_auroc": [...], "n_iter": [...]}. Only the fitting loop is timed.
"""
import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler


def main():
    d, tol, max_iter = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    grid = [float(c) for c in sys.argv[4].split(",")]
    xtr = np.load(f"{d}/x_train.npy").astype(np.float64)
    ytr = np.load(f"{d}/y_train.npy")
    xva = np.load(f"{d}/x_val.npy").astype(np.float64)
    yva = np.load(f"{d}/y_val.npy")
    warnings.simplefilter("ignore", ConvergenceWarning)
    start = time.perf_counter()
    scaler = StandardScaler().fit(xtr)
    xs, xv = scaler.transform(xtr), scaler.transform(xva)
    aucs, iters = [], []
    for c in grid:
        m = LogisticRegression(C=c, solver="lbfgs", tol=tol, max_iter=max_iter).fit(xs, ytr)
        aucs.append(roc_auc_score(yva, m.decision_function(xv)))
        iters.append(int(m.n_iter_[0]))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "val_auroc": aucs, "n_iter": iters}))


if __name__ == "__main__":
    main()
