#!/usr/bin/python3
"""Golden values for tests/encoders and tests/preprocess, from the reference implementations.

1. PIL resampling: Pillow's Image.resize (Debian python3-pil) on seeded 8-bit planes (bicubic,
   bilinear, lanczos; up- and down-scaling) -> pil_*.npy. radprobe's resize must match exactly.
2. DINOv2 position-embedding interpolation at non-native input sizes, by Hugging Face
   transformers' own modeling code: the fixture checkpoints in tests/data/encoders are loaded with
   `from_pretrained` (eager attention; no missing, unexpected or mismatched keys) and run with
   `model(pixel_values=x, output_hidden_states=True)` in eval mode, float32, one thread, on seeded
   inputs whose size is neither the native one nor a multiple of the patch size:
     dinov2, dinov2_swiglu      Dinov2Model               transformers v4.47.1 (commit 241c04d36867259cdf11dbb4e9d9a60f9cb65ebc)
     dinov2_with_registers      Dinov2WithRegistersModel  transformers v4.48.3 (commit 298b3f19303294293f7af075609481d64cb13de3)
   (the releases the fixtures were made with, tests/data/encoders/README.md), with
   huggingface_hub v0.27.1 (commit 80edbb2b6ae3b0766d870278276393c015eb6979), on Debian's
   python3-torch 1.13. Each release runs in its own child process (one transformers per
   interpreter). Each model is first run at the native size on the fixture's pixel_values and must
   reproduce the fixture's last_hidden_state and hidden_states (native_check_max_abs). Outputs:
   interp_<model>_<H>x<W>_{pixel_values,last_hidden_state}.npy. antialias_flipped_max_abs_change
   is how far the same transformers forward moves when torch.nn.functional.interpolate is
   called with the opposite antialias flag (patched for that one extra run only): it shows that
   the test can tell the two resize modes apart.
   index.json lists both parts and records, per case, the library, release tag and commit used.

How to run (vendor trees and stubs: see publisher_env.py beside this file, which pins the tags
and commits above, puts VENDOR/transformers-v4.47.1/src (or -v4.48.3/src) and
VENDOR/huggingface_hub-v0.27.1/src first on sys.path, and writes the safetensors/tokenizers stubs
into a temporary folder at run time):

  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup transformers=<bare git dir> \
      huggingface_hub=<bare git dir>          # once; VENDOR defaults to <checkout>/../vendor
  /usr/bin/python3 tests/golden/encoders/make_golden.py [--fixtures tests/data/encoders]
      [--out tests/golden/encoders]
"""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep __pycache__ out of the golden folder

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env as pe  # noqa: E402

HUB = "huggingface_hub-v0.27.1"
# model -> (transformers tree, HF class, input sizes); order = index.json order.
INTERP = [
    ("dinov2", "transformers-v4.47.1", "Dinov2Model", [(75, 47), (98, 98)]),
    ("dinov2_with_registers", "transformers-v4.48.3", "Dinov2WithRegistersModel",
     [(44, 90), (30, 31)]),
    ("dinov2_swiglu", "transformers-v4.47.1", "Dinov2Model", [(57, 29)]),
]


def worker(job):
    """Child process: one transformers release, the models of `job` that use it."""
    refs = pe.activate([job["transformers"], HUB])
    import torch
    import transformers
    pe.check_imported([job["transformers"], HUB])

    torch.set_num_threads(1)
    results = []
    for case in job["models"]:
        fix = os.path.join(job["fixtures"], case["model"])
        cls = getattr(transformers, case["hf_class"])
        model, info = cls.from_pretrained(fix, attn_implementation="eager",
                                          output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        assert type(model).__name__ == case["hf_class"]
        model.eval()
        with torch.no_grad():
            px = torch.from_numpy(np.load(os.path.join(fix, "pixel_values.npy")))
            out = model(pixel_values=px, output_hidden_states=True)
            hs = torch.stack(out.hidden_states).numpy()
            native = max(np.abs(out.last_hidden_state.numpy()
                                - np.load(os.path.join(fix, "last_hidden_state.npy"))).max(),
                         np.abs(hs - np.load(os.path.join(fix, "hidden_states.npy"))).max())
            assert native < 1e-5, (case["model"], native)
            for prefix in case["prefixes"]:
                x = torch.from_numpy(np.load(os.path.join(job["out"], prefix + "_pixel_values.npy")))
                lhs = model(pixel_values=x).last_hidden_state
                np.save(os.path.join(job["out"], prefix + "_last_hidden_state.npy"),
                        lhs.numpy().astype("<f4"))
                # The same forward with the opposite antialias flag (sensitivity only).
                interpolate = torch.nn.functional.interpolate
                calls = []

                def flipped(*a, **k):
                    calls.append(bool(k.get("antialias", False)))
                    k["antialias"] = not k.get("antialias", False)
                    return interpolate(*a, **k)

                torch.nn.functional.interpolate = flipped
                try:
                    lhs_flipped = model(pixel_values=x).last_hidden_state
                finally:
                    torch.nn.functional.interpolate = interpolate
                assert len(calls) == 1, calls  # exactly the position-embedding resize
                results.append({"prefix": prefix, "native_check_max_abs": float(native),
                                "model_antialias": calls[0],
                                "antialias_flipped_max_abs_change":
                                    float((lhs_flipped - lhs).abs().max()),
                                "hf_class": case["hf_class"],
                                "reference": dict(refs[job["transformers"]],
                                                  huggingface_hub=refs[HUB]["version"],
                                                  **pe.torch_description())})
    with open(job["result"], "w") as f:
        json.dump(results, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=pe.FIXTURES, help="tests/data/encoders")
    ap.add_argument("--out", default=HERE, help="tests/golden/encoders")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    rng = np.random.default_rng(20240601)

    # 1. PIL resampling.
    src = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)
    src[10:20, 5:40] = 255  # hard edges so that clipping/rounding paths are exercised
    src[25:30, :] = 0
    np.save(os.path.join(args.out, "pil_src.npy"), src)
    cases = [("bicubic", Image.BICUBIC, 64, 73), ("bicubic", Image.BICUBIC, 11, 20),
             ("bicubic", Image.BICUBIC, 37, 9), ("bilinear", Image.BILINEAR, 19, 100),
             ("lanczos", Image.LANCZOS, 50, 17)]
    manifest = []
    for name, flt, oh, ow in cases:
        out = np.asarray(Image.fromarray(src, mode="L").resize((ow, oh), resample=flt))
        fn = "pil_%s_%dx%d.npy" % (name, oh, ow)
        np.save(os.path.join(args.out, fn), out)
        manifest.append({"file": fn, "filter": name, "rows": oh, "cols": ow,
                         "reference": "Pillow %s Image.resize" % Image.__version__})

    # 2. Inputs (same seeded stream as before), then one child per transformers release.
    tmp = tempfile.mkdtemp(prefix="radprobe_interp_")
    atexit.register(shutil.rmtree, tmp, True)
    jobs, order = {}, []
    for model, tree, hf_class, sizes in INTERP:
        prefixes = []
        for (h, w) in sizes:
            x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
            prefix = "interp_%s_%dx%d" % (model, h, w)
            np.save(os.path.join(args.out, prefix + "_pixel_values.npy"), x)
            prefixes.append(prefix)
            order.append((model, h, w, prefix))
        job = jobs.setdefault(tree, {"transformers": tree, "fixtures": os.path.abspath(args.fixtures),
                                     "out": os.path.abspath(args.out), "models": [],
                                     "result": os.path.join(tmp, tree + ".json")})
        job["models"].append({"model": model, "hf_class": hf_class, "prefixes": prefixes})
    found = {}
    for tree, job in jobs.items():
        subprocess.run([sys.executable, "-B", os.path.abspath(__file__), "--worker", json.dumps(job)],
                       check=True)
        with open(job["result"]) as f:
            for r in json.load(f):
                found[r["prefix"]] = r
    interp = []
    for model, h, w, prefix in order:
        r = found[prefix]
        interp.append({"model": model, "height": h, "width": w, "prefix": prefix,
                       "native_check_max_abs": r["native_check_max_abs"],
                       "antialias_flipped_max_abs_change": r["antialias_flipped_max_abs_change"],
                       "position_embedding_antialias": r["model_antialias"],
                       "hf_class": r["hf_class"], "reference": r["reference"]})
    pe.write_json(os.path.join(args.out, "index.json"), {
        "generator": "tests/golden/encoders/make_golden.py",
        "pil": manifest, "interp": interp})
    print("wrote", len(manifest), "PIL cases and", len(interp), "interpolation cases")


if __name__ == "__main__":
    main()
