#!/usr/bin/python3
"""Golden pixel_values for CLIPImageProcessor and SiglipImageProcessor (tests/encoders).

No transformers package is installed here, so this is the processors' published behaviour
written with PIL and numpy (transformers image_processing_clip.py / image_processing_siglip.py
and image_transforms.py):
  - convert the image to RGB (a grey image is replicated into R, G, B);
  - CLIPImageProcessor: resize so the shortest edge is size["shortest_edge"] (or a bare int),
    the long edge int(size * long / short) (get_resize_output_image_size, default_to_square=
    False), with PIL's resize and the configured resample; centre crop crop_size with
    top = (H - crop_h) // 2, left = (W - crop_w) // 2;
  - SiglipImageProcessor: resize to exactly size["height"] x size["width"] with PIL, no crop;
  - rescale: uint8 -> float64 * rescale_factor -> float32;
  - normalise: (x - mean) / std in float32 (mean/std cast to float32), channels first.
Inputs: seeded 8-bit grey planes of non-square shapes (odd crop margins included).
Outputs under processors/: <case>.json (the preprocessor_config.json), input_<h>x<w>.npy
(uint8), <case>_<h>x<w>.npy (float32 1x3xHxW), index.json listing the cases.

Usage: /usr/bin/python3 tests/golden/encoders/make_processors.py
"""
import json
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "processors")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CASES = {
    "clip_shortest_edge": {
        "image_processor_type": "CLIPImageProcessor", "do_resize": True,
        "size": {"shortest_edge": 40}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": 40, "width": 40}, "do_rescale": True,
        "rescale_factor": 0.00392156862745098, "do_normalize": True,
        "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True},
    "clip_legacy_int_size": {  # older CLIP configs: bare ints for size and crop_size
        "feature_extractor_type": "CLIPFeatureExtractor", "image_processor_type": "CLIPImageProcessor",
        "do_resize": True, "size": 36, "resample": 3, "do_center_crop": True, "crop_size": 33,
        "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD},
    "siglip_bicubic": {
        "image_processor_type": "SiglipImageProcessor", "do_resize": True,
        "size": {"height": 48, "width": 48}, "resample": 3, "do_rescale": True,
        "rescale_factor": 0.00392156862745098, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    "siglip_bilinear_448": {  # MedSigLIP-style: bilinear
        "image_processor_type": "SiglipImageProcessor", "do_resize": True,
        "size": {"height": 44, "width": 44}, "resample": 2, "do_rescale": True,
        "rescale_factor": 0.00392156862745098, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
}
SHAPES = [(57, 83), (90, 31), (40, 40)]


def process(cfg, grey):
    img = Image.fromarray(grey, mode="L").convert("RGB")
    h, w = grey.shape
    size = cfg["size"]
    if cfg.get("do_resize", True):
        if isinstance(size, int) or "shortest_edge" in size:
            s = size if isinstance(size, int) else size["shortest_edge"]
            short, long = (h, w) if h <= w else (w, h)
            new_long = int(s * long / short)
            nh, nw = (s, new_long) if h <= w else (new_long, s)
        else:
            nh, nw = size["height"], size["width"]
        if (nh, nw) != (h, w):
            img = img.resize((nw, nh), resample=cfg.get("resample", 3))
    a = np.asarray(img)  # H x W x 3 uint8
    if cfg.get("do_center_crop", False):
        crop = cfg["crop_size"]
        ch, cw = (crop, crop) if isinstance(crop, int) else (crop["height"], crop["width"])
        top = (a.shape[0] - ch) // 2
        left = (a.shape[1] - cw) // 2
        assert top >= 0 and left >= 0
        a = a[top : top + ch, left : left + cw]
    x = a.astype(np.float64) * cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else a
    x = x.astype(np.float32)
    if cfg.get("do_normalize", True):
        x = (x - np.array(cfg["image_mean"], dtype=np.float32)) / np.array(cfg["image_std"], dtype=np.float32)
    return x.transpose(2, 0, 1)[None].astype("<f4")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261123)
    index = {"cases": [], "shapes": []}
    inputs = {}
    for h, w in SHAPES:
        yy, xx = np.mgrid[0:h, 0:w]
        smooth = 127 + 100 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
        grey = np.clip(smooth + rng.normal(0, 20, (h, w)), 0, 255).round().astype(np.uint8)
        inputs[(h, w)] = grey
        np.save(os.path.join(OUT, f"input_{h}x{w}.npy"), grey)
        index["shapes"].append([h, w])
    for name, cfg in CASES.items():
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        for (h, w), grey in inputs.items():
            np.save(os.path.join(OUT, f"{name}_{h}x{w}.npy"), process(cfg, grey))
        index["cases"].append(name)
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
