#!/usr/bin/python3
"""Golden run-length strings for radprobe's mask RLE (tests/dataset/test_masks.cpp).

Independent reference for both conventions radprobe implements:
  - siim: the SIIM-ACR challenge's original mask_functions.py (mask2rle / rle2mask), relative
    starts, re-implemented here loop for loop as published (pixels visited column by column:
    `for x in range(width): for y in range(height)` over the transposed image).
  - absolute: the "standard" Kaggle RLE (numpy: pixels = mask.T.flatten(), 1-based absolute
    starts), as used for SIIM-ACR stage 2.
Writes mask_<name>.png (8-bit 0/255 with PIL; one 16-bit variant) and rle_golden.csv.
Run: /usr/bin/python3 tests/golden/dataset/make_rle_golden.py
"""
import csv
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def siim_mask2rle(img, width, height):
    # As in SIIM-ACR mask_functions.py: img indexed [x][y] (the transposed mask), values 0/255.
    # Note: that function never closes a run that reaches the last pixel; the masks below avoid it.
    rle = []
    last_color = 0
    current_pixel = 0
    run_start = -1
    run_length = 0
    for x in range(width):
        for y in range(height):
            current_color = img[x][y]
            if current_color != last_color:
                if current_color == 255:
                    run_start = current_pixel
                    run_length = 1
                else:
                    rle.append(str(run_start))
                    rle.append(str(run_length))
                    run_start = -1
                    run_length = 0
                    current_pixel = 0
            elif run_start > -1:
                run_length += 1
            last_color = current_color
            current_pixel += 1
    return " ".join(rle)


def siim_rle2mask(rle, width, height):
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    starts = array[0::2]
    lengths = array[1::2]
    current_position = 0
    for index, start in enumerate(starts):
        current_position += start
        mask[current_position:current_position + lengths[index]] = 255
        current_position += lengths[index]
    return mask.reshape(width, height).T


def absolute_mask2rle(mask01):
    pixels = mask01.T.flatten()
    pixels = np.concatenate([[0], pixels, [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def masks():
    out = {}
    # Non-square sizes so a row/column mix-up cannot pass.
    rr, cc = np.mgrid[0:7, 0:11]
    out["ellipse_7x11"] = (((rr - 3) / 2.6) ** 2 + ((cc - 5) / 4.2) ** 2 <= 1.0)
    rr, cc = np.mgrid[0:20, 0:13]
    m = ((rr - 5) ** 2 + (cc - 3) ** 2 <= 9) | ((rr >= 12) & (rr <= 16) & (cc >= 7) & (cc <= 11))
    m[19, 0] = True  # a run crossing from the bottom of column 0 to the top of column 1
    m[0, 1] = True
    out["blobs_20x13"] = m
    rng = np.random.default_rng(12345)
    m = rng.random((16, 9)) < 0.3
    m[-1, -1] = False  # see the note in siim_mask2rle
    out["random_16x9"] = m
    out["empty_5x4"] = np.zeros((5, 4), dtype=bool)
    return out


def main():
    rows = []
    for name, m in masks().items():
        m = m.astype(np.uint8)
        h, w = m.shape
        img255 = m * 255
        siim = siim_mask2rle(img255.T, w, h)
        # The published decoder must give the mask back.
        back = siim_rle2mask(siim, w, h) if siim else np.zeros((h, w))
        assert np.array_equal(back, img255), name
        absolute = absolute_mask2rle(m)
        png = f"mask_{name}.png"
        Image.fromarray(img255.astype(np.uint8), mode="L").save(os.path.join(HERE, png))
        rows.append([name, h, w, siim if siim else "-1", absolute if absolute else "-1", png])
    # 16-bit variant of one mask, foreground 1000.
    m = masks()["blobs_20x13"].astype(np.uint16) * 1000
    Image.fromarray(m.astype(np.uint16)).save(os.path.join(HERE, "mask_blobs_20x13_16bit.png"))
    with open(os.path.join(HERE, "rle_golden.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "rows", "cols", "siim", "absolute", "png"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
