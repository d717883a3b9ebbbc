#!/usr/bin/python3
"""Golden values for the heads component (run with /usr/bin/python3; scikit-learn 1.2, numpy).

Writes, next to this script:
  data.csv              split,y,f0..f11: a small synthetic binary problem (values exact in float32,
                        one constant feature to exercise StandardScaler's scale = 1 rule)
  logistic.csv          per (C, class_weight) on the StandardScaler'd train rows: scikit-learn
                        LogisticRegression(solver='lbfgs') (source = sklearn) and the exact
                        optimum of the same objective by Newton's method polished from it
                        (source = newton): iterations, max|gradient|, intercept, coef_0..11,
                        val/test AUROC of the decision function
  probe.csv             the C-grid selection: val AUROC per C (grid ascending; the best val AUROC
                        wins, a tie goes to the smaller C), chosen C and the test AUROC
  knn.csv               DINO-style weighted kNN (cosine, exp(sim/T), T = 0.07) test scores for
                        k = 10 and 20, written by an independent numpy implementation
"""
import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
D = 12


def make_data():
    rng = np.random.default_rng(20240605)
    n = {"train": 300, "val": 150, "test": 200}
    w_true = rng.normal(size=D) * 0.8
    w_true[3] = 0.0
    rows = []
    mix = rng.normal(size=(D, D)) * 0.3 + np.eye(D)
    for split, m in n.items():
        z = rng.normal(size=(m, D)) @ mix + 0.5
        z[:, 3] = 2.5  # constant feature
        logits = z @ w_true - 0.3 + 0.8 * np.sin(z[:, 0] * 2.0)
        y = (rng.uniform(size=m) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
        z = z.astype(np.float32)
        for i in range(m):
            rows.append((split, y[i], z[i]))
    with open(os.path.join(HERE, "data.csv"), "w") as f:
        f.write("split,y," + ",".join(f"f{j}" for j in range(D)) + "\n")
        for split, y, z in rows:
            f.write(f"{split},{y}," + ",".join(f"{v:.9g}" for v in z) + "\n")


def load_data():
    raw = np.genfromtxt(os.path.join(HERE, "data.csv"), delimiter=",", dtype=str, skip_header=1)
    out = {}
    for split in ("train", "val", "test"):
        sel = raw[raw[:, 0] == split]
        out[split] = (sel[:, 2:].astype(np.float32).astype(np.float64), sel[:, 1].astype(float))
    return out


def gradient(x, y, s, c, theta):
    """Gradient of 0.5||w||^2 + C * sum s_i logloss_i (scikit-learn's lbfgs objective)."""
    x1 = np.hstack([x, np.ones((len(y), 1))])
    p = 1.0 / (1.0 + np.exp(-(x1 @ theta)))
    g = c * (x1.T @ (s * (p - y)))
    g[:-1] += theta[:-1]
    return g


def newton_polish(x, y, s, c, theta):
    """The exact optimum: Newton's method from scikit-learn's solution until the step is at
    rounding level. scikit-learn's L-BFGS-B stops on its relative-decrease rule (factr) long
    before gtol = 1e-14, so its coefficients are only good to ~1e-4 here; this is the reference
    our solver is held to tightly."""
    x1 = np.hstack([x, np.ones((len(y), 1))])
    reg = np.ones(x1.shape[1])
    reg[-1] = 0.0
    for it in range(100):
        p = 1.0 / (1.0 + np.exp(-(x1 @ theta)))
        g = gradient(x, y, s, c, theta)
        h = c * (x1.T * (s * p * (1 - p))) @ x1 + np.diag(reg)
        step = np.linalg.solve(h, g)
        theta = theta - step
        if np.abs(step).max() <= 1e-15 * max(1.0, np.abs(theta).max()):
            return theta, it + 1
    return theta, 100


def main():
    make_data()
    data = load_data()
    xtr, ytr = data["train"]
    scaler = StandardScaler().fit(xtr)
    xs = {k: scaler.transform(v[0]) for k, v in data.items()}

    cases = [(c, cw) for c in (1e-4, 1e-2, 1.0, 100.0) for cw in ("none", "balanced")]
    with open(os.path.join(HERE, "logistic.csv"), "w") as f:
        f.write("c,class_weight,source,n_iter,max_abs_grad,intercept," +
                ",".join(f"coef_{j}" for j in range(D)) + ",val_auroc,test_auroc\n")
        for c, cw in cases:
            m = LogisticRegression(C=c, solver="lbfgs", tol=1e-14, max_iter=1000000,
                                   class_weight=None if cw == "none" else "balanced")
            m.fit(xs["train"], ytr)
            s = np.ones_like(ytr) if cw == "none" else np.where(
                ytr == 1, len(ytr) / (2 * ytr.sum()), len(ytr) / (2 * (len(ytr) - ytr.sum())))
            sk = np.concatenate([m.coef_[0], m.intercept_])
            exact, n_newton = newton_polish(xs["train"], ytr, s, c, sk)
            for source, theta, n_iter in (("sklearn", sk, int(m.n_iter_[0])),
                                          ("newton", exact, n_newton)):
                g = gradient(xs["train"], ytr, s, c, theta)
                val_auc = roc_auc_score(data["val"][1], xs["val"] @ theta[:-1] + theta[-1])
                test_auc = roc_auc_score(data["test"][1], xs["test"] @ theta[:-1] + theta[-1])
                f.write(f"{c!r},{cw},{source},{n_iter},{float(np.abs(g).max())!r},"
                        f"{theta[-1]!r}," + ",".join(repr(v) for v in theta[:-1]) +
                        f",{val_auc!r},{test_auc!r}\n")

    grid = [10.0 ** p for p in np.linspace(-6, 5, 12)]
    best, chosen, chosen_model = -1.0, None, None
    with open(os.path.join(HERE, "probe.csv"), "w") as f:
        f.write("c,val_auroc,chosen,test_auroc\n")
        curve = []
        for c in grid:
            m = LogisticRegression(C=c, solver="lbfgs", tol=1e-14, max_iter=1000000)
            m.fit(xs["train"], ytr)
            auc = roc_auc_score(data["val"][1], m.decision_function(xs["val"]))
            curve.append((c, auc))
            if auc > best:
                best, chosen, chosen_model = auc, c, m
        test_auc = roc_auc_score(data["test"][1], chosen_model.decision_function(xs["test"]))
        for c, auc in curve:
            f.write(f"{c!r},{auc!r},{int(c == chosen)},{test_auc!r}\n")

    # kNN on the raw (unstandardised) features, as DINO's evaluation: L2-normalise, cosine.
    def normalise(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    tr, te = normalise(xtr), normalise(data["test"][0])
    sim = te @ tr.T
    with open(os.path.join(HERE, "knn.csv"), "w") as f:
        f.write("row,k,score\n")
        for k in (10, 20):
            for i in range(sim.shape[0]):
                idx = np.argsort(-sim[i], kind="stable")[:k]
                w = np.exp(sim[i, idx] / 0.07)
                f.write(f"{i},{k},{float(np.sum(w * ytr[idx]) / np.sum(w))!r}\n")


if __name__ == "__main__":
    main()
