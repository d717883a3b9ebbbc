#!/usr/bin/env python3
"""Writes a manifest of COPIES x the images of a phantom manifest, each copy a symbolic link to
the original image and masks under a new name and a new patient id (same split), and its
boxes.csv (the boxes of each copy under its new name), so that a memory benchmark can read
2,500 distinct files of 2048 px from 250 phantoms' disk space.

Usage: replicate_manifest.py SRC_MANIFEST COPIES OUT_DIR
"""
import csv
import os
import sys


def main():
    src, copies, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    src_dir = os.path.dirname(os.path.abspath(src))
    os.makedirs(os.path.join(out, "links"), exist_ok=True)
    with open(src, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = list(reader)
    path_cols = ["image"] + [c for c in fields if c.startswith("mask_")]
    tmp = os.path.join(out, "manifest.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for k in range(copies):
            for row in rows:
                new = dict(row)
                new["patient_id"] = "%s_c%d" % (row["patient_id"], k)
                for c in path_cols:
                    if not row[c]:
                        continue
                    base, ext = os.path.splitext(os.path.basename(row[c]))
                    link = os.path.join("links", "%s_c%d%s" % (base, k, ext))
                    target = os.path.join(src_dir, row[c])
                    if not os.path.lexists(os.path.join(out, link)):
                        os.symlink(target, os.path.join(out, link))
                    new[c] = link
                writer.writerow(new)
    os.replace(tmp, os.path.join(out, "manifest.csv"))
    boxes = os.path.join(src_dir, "boxes.csv")
    if os.path.exists(boxes):
        with open(boxes, newline="") as f:
            reader = csv.DictReader(f)
            box_fields = reader.fieldnames
            box_rows = list(reader)
        tmp = os.path.join(out, "boxes.csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=box_fields)
            writer.writeheader()
            for k in range(copies):
                for row in box_rows:
                    base, ext = os.path.splitext(os.path.basename(row["image"]))
                    writer.writerow(dict(row, image="links/%s_c%d%s" % (base, k, ext)))
        os.replace(tmp, os.path.join(out, "boxes.csv"))


if __name__ == "__main__":
    main()
