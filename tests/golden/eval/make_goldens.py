#!/usr/bin/python3
"""Golden values for radprobe's eval component, from independent references.

Run from anywhere:  /usr/bin/python3 tests/golden/eval/make_goldens.py
Needs: numpy, scikit-learn, scipy, scikit-image, PIL (Debian python3-*), and Rscript with pROC
(r-cran-proc), which make_goldens_proc.R uses.

Writes next to this script:
  data_<name>.csv        small data sets (label, score1, score2, prob), committed
  sklearn_goldens.csv    roc_auc_score, average_precision_score, brier_score_loss, f1, ...
  proc_goldens.csv       pROC auc, var(method="delong"), ci.auc(method="delong"),
                         roc.test(method="delong", paired=TRUE/FALSE), p.adjust (by the R script)
  seg_goldens.csv        Dice/IoU/precision/recall/HD95/ASSD/Hausdorff (scipy, skimage)
  masks/pred/*.png, masks/truth/*.png   the masks the segmentation goldens are computed on
All golden CSVs are rows "dataset,quantity,value".

The 10^5-row data set ("large") is not stored: it is a formula that the C++ test regenerates
(SplitMix64 of the row index, integer arithmetic only, so it is bit-identical in both).
"""
import csv
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.metrics import hausdorff_distance
from sklearn.metrics import (average_precision_score, balanced_accuracy_score, brier_score_loss,
                             f1_score, recall_score, roc_auc_score)

HERE = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1


def mix64(z):
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & M64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & M64
    return z ^ (z >> 31)


def h(i, k):
    return mix64(((4 * i + k) * 0x9E3779B97F4A7C15) & M64)


def large_dataset(n=100000):
    """The formula mirrored in tests/eval/test_eval.cpp (large_dataset)."""
    labels, s1, s2, prob = [], [], [], []
    for i in range(n):
        y = 1 if h(i, 0) % 1000 < 300 else 0
        a = h(i, 1) % 3000
        b = h(i, 2) % 6000
        labels.append(y)
        s1.append(float(a + 1000 * y))
        s2.append(float(b + 1200 * y + a // 2))
        prob.append(float(a + 1000 * y) / 4000.0)
    return np.array(labels), np.array(s1), np.array(s2), np.array(prob)


def small_datasets():
    rng = np.random.default_rng(20240601)
    sets = {}
    # Ties: scores rounded to one decimal.
    y = (rng.random(60) < 0.4).astype(int)
    s1 = np.round(rng.normal(0.8 * y, 1.0), 1)
    s2 = np.round(0.5 * s1 + rng.normal(0.3 * y, 0.8), 1)
    sets["ties"] = (y, s1, s2)
    # Tiny: 3 positives, 2 negatives (DeLong needs 2 of each).
    sets["tiny"] = (np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.3, 0.4, 0.4, 0.8]),
                    np.array([0.2, 0.1, 0.7, 0.6, 0.5]))
    # Heavy imbalance: 1% positives.
    y = np.zeros(5000, dtype=int)
    y[rng.choice(5000, 50, replace=False)] = 1
    s1 = rng.normal(1.2 * y, 1.0)
    s2 = 0.6 * s1 + rng.normal(0.5 * y, 0.9)
    sets["imbalance"] = (y, s1, s2)
    # Perfect separation for score1.
    y = np.array([0] * 25 + [1] * 15)
    s1 = np.concatenate([rng.uniform(0.0, 0.45, 25), rng.uniform(0.55, 1.0, 15)])
    s2 = rng.uniform(0.0, 1.0, 40) + 0.2 * y
    sets["perfect"] = (y, s1, s2)
    # Continuous, moderate n, no ties.
    y = (rng.random(300) < 0.5).astype(int)
    s1 = rng.normal(0.9 * y, 1.0)
    s2 = 0.7 * s1 + rng.normal(0.2 * y, 0.7)
    sets["continuous"] = (y, s1, s2)
    out = {}
    for name, (y, s1, s2) in sets.items():
        s1, s2 = np.round(s1, 6), np.round(s2, 6)  # keeps the committed CSVs small
        lo, hi = min(s1.min(), s2.min()), max(s1.max(), s2.max())
        prob = np.round((s1 - lo) / (hi - lo), 6)
        out[name] = (y, s1, s2, prob)
    return out


def write_dataset(path, y, s1, s2, prob):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "score1", "score2", "prob"])
        for row in zip(y, s1, s2, prob):
            w.writerow([int(row[0])] + [repr(float(v)) for v in row[1:]])


def sklearn_rows(name, y, s1, s2, prob):
    rows = []
    for tag, s in (("score1", s1), ("score2", s2)):
        rows.append((name, f"roc_auc_{tag}", roc_auc_score(y, s)))
        rows.append((name, f"average_precision_{tag}", average_precision_score(y, s)))
    rows.append((name, "brier_prob", brier_score_loss(y, prob)))
    t = float(np.median(s1))
    pred = (s1 >= t).astype(int)
    rows.append((name, "threshold", t))
    rows.append((name, "f1_at_threshold", f1_score(y, pred)))
    rows.append((name, "balanced_accuracy_at_threshold", balanced_accuracy_score(y, pred)))
    rows.append((name, "sensitivity_at_threshold", recall_score(y, pred)))
    rows.append((name, "specificity_at_threshold", recall_score(1 - y, 1 - pred)))
    return rows


def multilabel_rows():
    rng = np.random.default_rng(7)
    n, labels = 80, 3
    Y = (rng.random((n, labels)) < np.array([0.2, 0.5, 0.35])).astype(int)
    S = np.round(rng.normal(Y * np.array([1.0, 0.5, 1.5]), 1.0), 2)
    with open(os.path.join(HERE, "data_multilabel.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"y{l}" for l in range(labels)] + [f"s{l}" for l in range(labels)])
        for i in range(n):
            w.writerow([int(v) for v in Y[i]] + [repr(float(v)) for v in S[i]])
    rows = []
    for l in range(labels):
        rows.append(("multilabel", f"roc_auc_label{l}", roc_auc_score(Y[:, l], S[:, l])))
        rows.append(("multilabel", f"average_precision_label{l}",
                     average_precision_score(Y[:, l], S[:, l])))
    for avg in ("macro", "micro"):
        rows.append(("multilabel", f"roc_auc_{avg}", roc_auc_score(Y, S, average=avg)))
        rows.append(("multilabel", f"average_precision_{avg}",
                     average_precision_score(Y, S, average=avg)))
    return rows


# --- segmentation -------------------------------------------------------------------------------
# Definition (identical to src/eval/include/radprobe/eval/metrics.hpp):
#   surface(m) = m & ~binary_erosion(m, generate_binary_structure(2, 1), border_value=0)
#   d(A->B)    = for each surface pixel of A, distance_transform_edt(~surface(B), sampling)
#   HD95       = np.percentile(concat(d(P->T), d(T->P)), 95)   (linear interpolation)
#   ASSD       = (mean d(P->T) + mean d(T->P)) / 2;  Hausdorff = max of both.

def surface(m):
    return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(2, 1),
                                       border_value=0)


def seg_reference(pred, truth, spacing):
    tp = np.sum(pred & truth)
    fp = np.sum(pred & ~truth)
    fn = np.sum(~pred & truth)
    sp, st = surface(pred), surface(truth)
    d_pt = ndimage.distance_transform_edt(~st, sampling=spacing)[sp]
    d_tp = ndimage.distance_transform_edt(~sp, sampling=spacing)[st]
    both = np.concatenate([d_pt, d_tp])
    out = {
        "dice": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "hd95": np.percentile(both, 95),
        "assd": (d_pt.mean() + d_tp.mean()) / 2,
        "hausdorff": both.max(),
    }
    if spacing == (1.0, 1.0):
        # Independent check of the maximum with scikit-image on the surface point sets.
        sk = hausdorff_distance(sp, st)
        assert abs(sk - out["hausdorff"]) < 1e-12, (sk, out["hausdorff"])
    return out


def seg_cases():
    rng = np.random.default_rng(99)
    H, W = 32, 40
    rr, cc = np.mgrid[0:H, 0:W]
    cases = {}
    cases["disk_shift"] = ((rr - 15) ** 2 + (cc - 18) ** 2 <= 64,
                           (rr - 17) ** 2 + (cc - 21) ** 2 <= 81)
    rect_a = (rr >= 0) & (rr < 12) & (cc >= 30) & (cc < 40)  # touches the border
    rect_b = (rr >= 2) & (rr < 14) & (cc >= 27) & (cc < 38)
    cases["border_rects"] = (rect_a, rect_b)
    blob_t = ndimage.binary_opening(rng.random((H, W)) < 0.55, iterations=1)
    blob_p = blob_t.copy()
    blob_p[rng.random((H, W)) < 0.08] ^= True
    cases["noisy_blobs"] = (blob_p, blob_t)
    two_t = ((rr - 8) ** 2 + (cc - 8) ** 2 <= 20) | ((rr - 24) ** 2 + (cc - 30) ** 2 <= 30)
    two_p = (rr - 9) ** 2 + (cc - 9) ** 2 <= 25
    cases["missed_component"] = (two_p, two_t)
    single = np.zeros((H, W), bool)
    single[5, 5] = True
    far = np.zeros((H, W), bool)
    far[30, 38] = True
    cases["single_pixels"] = (single, far)
    return cases


def main():
    datasets = small_datasets()
    sk_rows = []
    for name, (y, s1, s2, prob) in datasets.items():
        write_dataset(os.path.join(HERE, f"data_{name}.csv"), y, s1, s2, prob)
        sk_rows += sklearn_rows(name, y, s1, s2, prob)
    y, s1, s2, prob = large_dataset()
    sk_rows += sklearn_rows("large", y, s1, s2, prob)
    sk_rows.append(("large", "n_pos", float(y.sum())))
    sk_rows.append(("large", "sum_score2", float(s2.sum())))
    sk_rows += multilabel_rows()
    write_rows(os.path.join(HERE, "sklearn_goldens.csv"), sk_rows)

    with tempfile.TemporaryDirectory() as tmp:
        large_path = os.path.join(tmp, "data_large.csv")
        write_dataset(large_path, y, s1, s2, prob)
        subprocess.run(["Rscript", os.path.join(HERE, "make_goldens_proc.R"), HERE, large_path],
                       check=True)

    seg_rows = []
    os.makedirs(os.path.join(HERE, "masks", "pred"), exist_ok=True)
    os.makedirs(os.path.join(HERE, "masks", "truth"), exist_ok=True)
    for name, (p, t) in seg_cases().items():
        Image.fromarray(p.astype(np.uint8) * 255).save(os.path.join(HERE, "masks", "pred",
                                                                    name + ".png"))
        Image.fromarray(t.astype(np.uint8) * 255).save(os.path.join(HERE, "masks", "truth",
                                                                     name + ".png"))
        for sp_name, spacing in (("1x1", (1.0, 1.0)), ("0.5x0.8", (0.5, 0.8)),
                                 ("2x0.7", (2.0, 0.7))):
            for metric, value in seg_reference(p, t, spacing).items():
                seg_rows.append((f"{name}@{sp_name}", metric, float(value)))
    write_rows(os.path.join(HERE, "seg_goldens.csv"), seg_rows)
    print("goldens written to", HERE, file=sys.stderr)


def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "quantity", "value"])
        for d, q, v in rows:
            w.writerow([d, q, repr(float(v))])


if __name__ == "__main__":
    main()
