#!/usr/bin/python3
"""Independent check of a `radprobe synth` dataset with numpy + PIL (+ pydicom for .dcm).

Usage: check_phantoms.py DIR
Prints one JSON object: {"n": ..., "failures": [...], "max_ctr_error_over_bound": ...}.

Checks, per manifest row:
  - the image decodes (PNG via PIL, DICOM via pydicom) to size x size;
  - every mask is 0/255, heart / lungs disjoint, patient-right lung on the image left;
  - CTR measured from the masks (heart horizontal extent / horizontal extent of both lung
    fields) is within (1 + ctr) / thorax_px of the manifest's ctr (see the C++ test for the
    derivation of the bound);
  - cardiomegaly == (ctr > 0.5);
  - the pneumothorax mask is empty exactly when pneumothorax == 0 and lies inside the lungs;
  - a nodule image has >= 1 box and a non-nodule image none; boxes are inside the image;
  - no patient appears in two splits.
"""
import csv
import json
import os
import sys

import numpy as np
from PIL import Image


def load_mask(path):
    return np.array(Image.open(path))


def extent(mask):
    cols = np.nonzero(mask.any(axis=0))[0]
    return 0 if cols.size == 0 else int(cols[-1] - cols[0] + 1)


def main(root):
    failures = []
    worst = 0.0
    with open(os.path.join(root, "manifest.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(root, "boxes.csv"), newline="") as f:
        boxes = list(csv.DictReader(f))
    box_count = {}
    for b in boxes:
        box_count[b["image"]] = box_count.get(b["image"], 0) + 1
    splits = {}
    for row in rows:
        name = row["image"]
        path = os.path.join(root, name)
        if name.endswith(".dcm"):
            import pydicom
            image = pydicom.dcmread(path).pixel_array
        else:
            image = np.array(Image.open(path))
        size = image.shape[0]
        masks = {k: load_mask(os.path.join(root, row["mask_" + k]))
                 for k in ("heart", "lung_left", "lung_right", "pneumothorax")}
        for k, m in masks.items():
            if m.shape != image.shape or not np.isin(m, (0, 255)).all():
                failures.append(f"{name}: mask {k} not binary {image.shape}")
        heart = masks["heart"] > 0
        left = masks["lung_left"] > 0
        right = masks["lung_right"] > 0
        ptx = masks["pneumothorax"] > 0
        if (heart & (left | right)).any():
            failures.append(f"{name}: heart overlaps a lung")
        if np.nonzero(right.any(axis=0))[0].max() >= np.nonzero(left.any(axis=0))[0].min():
            failures.append(f"{name}: patient-right lung not on the image left")
        ctr = float(row["ctr"])
        thorax = extent(left | right)
        measured = extent(heart) / thorax
        bound = (1.0 + ctr) / thorax
        worst = max(worst, abs(measured - ctr) / bound)
        if abs(measured - ctr) > bound:
            failures.append(f"{name}: measured ctr {measured:.4f} vs {ctr}")
        if (row["cardiomegaly"] == "1") != (ctr > 0.5):
            failures.append(f"{name}: cardiomegaly label vs ctr {ctr}")
        if (row["pneumothorax"] == "1") != bool(ptx.any()):
            failures.append(f"{name}: pneumothorax label vs mask")
        if (ptx & ~(left | right)).any():
            failures.append(f"{name}: pneumothorax outside the lungs")
        if (row["nodule"] == "1") != (box_count.get(name, 0) > 0):
            failures.append(f"{name}: nodule label vs boxes")
        splits.setdefault(row["patient_id"], set()).add(row["split"])
    for b in boxes:
        x0, y0, x1, y1 = (int(b[k]) for k in ("x0", "y0", "x1", "y1"))
        if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
            failures.append(f"{b['image']}: box out of the image {x0},{y0},{x1},{y1}")
    for pid, s in splits.items():
        if len(s) != 1:
            failures.append(f"patient {pid} in splits {sorted(s)}")
    print(json.dumps({"n": len(rows), "failures": failures,
                      "max_ctr_error_over_bound": worst}))


if __name__ == "__main__":
    main(sys.argv[1])
