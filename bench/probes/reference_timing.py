#!/usr/bin/python3
"""scikit-learn reference for bench_heads: the same C sweep on the same data.

usage: reference_timing.py DIR TOL MAX_ITER C1,C2,...
DIR holds x_train.npy, y_train.npy, x_val.npy, y_val.npy (float32 / float64) written by
bench_heads. Standardises with StandardScaler (train statistics), fits
LogisticRegression(solver='lbfgs', C, tol, max_iter) per C, and prints one JSON line:
{"seconds": .., "val_auroc": [...], "n_iter": [...], "max_grad_scaled": [...]}. Only the fitting
loop is timed. scikit-learn 1.2's lbfgs minimises Σ log-loss + ||w||²/(2C) (no 1/n: that
rescaling is newton-cholesky's only) and stops at max|projected gradient| <= tol or on L-BFGS-B's
relative-decrease rule (factr 1e7, i.e. 2.2e-9), whichever comes first. max_grad_scaled is
max|∇F| at its solution for radprobe's scaled objective F = (that objective) / n = mean log-loss
+ ||w||²/(2Cn), on which radprobe stops at 1e-10; computed after the timed loop.
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
    aucs, iters, models = [], [], []
    for c in grid:
        m = LogisticRegression(C=c, solver="lbfgs", tol=tol, max_iter=max_iter).fit(xs, ytr)
        aucs.append(roc_auc_score(yva, m.decision_function(xv)))
        iters.append(int(m.n_iter_[0]))
        models.append((c, m.coef_[0].copy(), float(m.intercept_[0])))
    seconds = time.perf_counter() - start
    grads = []
    n = len(ytr)
    for c, w, b in models:
        r = 1.0 / (1.0 + np.exp(-(xs @ w + b))) - ytr
        g = np.concatenate([xs.T @ r / n + w / (c * n), [r.sum() / n]])
        grads.append(float(np.abs(g).max()))
    print(json.dumps({"seconds": seconds, "val_auroc": aucs, "n_iter": iters,
                      "max_grad_scaled": grads}))


if __name__ == "__main__":
    main()
