#!/usr/bin/python3
"""Golden pixel_values for CLIPImageProcessor and SiglipImageProcessor (tests/preprocess).

Made by Hugging Face transformers' own image processors: transformers v4.47.1 (commit
241c04d36867259cdf11dbb4e9d9a60f9cb65ebc; huggingface_hub v0.27.1, commit
80edbb2b6ae3b0766d870278276393c015eb6979) on Debian's python3-torch 1.13, python3-numpy and
python3-pil. Each case's preprocessor_config.json is loaded with
`AutoImageProcessor.from_pretrained(<case>.json, use_fast=False)` (the class comes from
image_processor_type: CLIPImageProcessor or SiglipImageProcessor, the slow PIL/numpy processors)
and applied as `processor(images=image, return_tensors="np")["pixel_values"]`, where image is a
seeded 8-bit grey plane as a PIL image converted to RGB (`Image.fromarray(grey, "L")
.convert("RGB")`: R = G = B = grey, what a user does with a radiograph). The cases cover CLIP's
shortest-edge resize + centre crop (also the legacy bare-int size/crop_size form) and SigLIP's
fixed-size resize with bicubic and bilinear resampling; the inputs are non-square (odd crop
margins included).
Outputs under processors/: <case>.json (the preprocessor_config.json), input_<h>x<w>.npy
(uint8), <case>_<h>x<w>.npy (float32 1x3xHxW), index.json listing the cases, the shapes and the
library, release tag and commit used.

How to run (vendor trees and stubs: publisher_env.py beside this file, which pins the tags and
commits above and puts VENDOR/transformers-v4.47.1/src and VENDOR/huggingface_hub-v0.27.1/src
first on sys.path):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup transformers=<bare git dir> \
      huggingface_hub=<bare git dir>          # once; VENDOR defaults to <checkout>/../vendor
  /usr/bin/python3 tests/golden/encoders/make_processors.py [--out tests/golden/encoders/processors]
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the golden folder

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env as pe  # noqa: E402

TREES = ["transformers-v4.47.1", "huggingface_hub-v0.27.1"]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "processors"))
    out = ap.parse_args().out
    refs = pe.activate(TREES)
    import transformers
    from transformers import AutoImageProcessor
    pe.check_imported(TREES)

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261123)
    index = {"cases": [], "shapes": [], "classes": {},
             "reference": dict(refs["transformers-v4.47.1"],
                               huggingface_hub=refs["huggingface_hub-v0.27.1"]["version"],
                               pillow=Image.__version__, **pe.torch_description()),
             "call": 'AutoImageProcessor.from_pretrained(<case>.json, use_fast=False)'
                     '(images=Image.fromarray(input, "L").convert("RGB"), return_tensors="np")'
                     '["pixel_values"]'}
    inputs = {}
    for h, w in SHAPES:
        yy, xx = np.mgrid[0:h, 0:w]
        smooth = 127 + 100 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
        grey = np.clip(smooth + rng.normal(0, 20, (h, w)), 0, 255).round().astype(np.uint8)
        inputs[(h, w)] = grey
        np.save(os.path.join(out, f"input_{h}x{w}.npy"), grey)
        index["shapes"].append([h, w])
    for name, cfg in CASES.items():
        path = os.path.join(out, f"{name}.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        processor = AutoImageProcessor.from_pretrained(path, use_fast=False)
        assert type(processor).__name__ == cfg["image_processor_type"], type(processor)
        index["classes"][name] = type(processor).__module__ + "." + type(processor).__name__
        for (h, w), grey in inputs.items():
            image = Image.fromarray(grey, mode="L").convert("RGB")
            px = processor(images=image, return_tensors="np")["pixel_values"]
            assert px.dtype == np.float32 and px.ndim == 4 and px.shape[:2] == (1, 3), px.shape
            np.save(os.path.join(out, f"{name}_{h}x{w}.npy"), px.astype("<f4"))
        index["cases"].append(name)
    pe.write_json(os.path.join(out, "index.json"), index)
    print("wrote", out, "with", transformers.__version__)


if __name__ == "__main__":
    main()
