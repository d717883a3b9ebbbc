#!/usr/bin/env python3
"""Golden ROC curve for radprobe::eval::roc_curve, from scikit-learn.

Writes data_roc.csv (label, score: 60 samples with tied scores) and roc_sklearn.csv (fpr, tpr,
threshold) from sklearn.metrics.roc_curve(drop_intermediate=False); the first point (threshold
+inf / max + 1 depending on the sklearn version) is written as threshold "inf".
Run: /usr/bin/python3 tests/golden/eval/make_roc_golden.py
"""
import os

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240611)
n = 60
label = (rng.random(n) < 0.4).astype(int)
# Scores rounded to 1 decimal: many ties, including ties across classes.
score = np.round(label * 0.8 + rng.normal(0.0, 0.6, n), 1)

with open(os.path.join(here, "data_roc.csv"), "w") as f:
    f.write("label,score\n")
    for y, s in zip(label, score):
        f.write(f"{y},{s:.1f}\n")

fpr, tpr, thr = roc_curve(label, score, drop_intermediate=False)
with open(os.path.join(here, "roc_sklearn.csv"), "w") as f:
    f.write("fpr,tpr,threshold\n")
    for i, (a, b, t) in enumerate(zip(fpr, tpr, thr)):
        f.write(f"{a!r},{b!r},{'inf' if i == 0 else repr(float(t))}\n")
print("auc", roc_auc_score(label, score), "points", len(fpr))
