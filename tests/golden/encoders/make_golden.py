#!/usr/bin/python3
"""Golden values for tests/encoders, from independent references (run with /usr/bin/python3).

1. PIL resampling: Pillow's Image.resize on seeded 8-bit planes (bicubic, bilinear, lanczos;
   up- and down-scaling) -> pil_*.npy. radprobe's resize must match them exactly.
2. DINOv2 position-embedding interpolation at non-native input sizes. The shared fixtures only
   hold native-size outputs, so this script runs the fixture checkpoints through a plain-torch
   forward written from the HF modeling code's documented behaviour (transformers >= 4.45:
   bicubic, align_corners=False, explicit output size, float32; antialias=True for
   Dinov2WithRegisters; no transformers package is installed here) on seeded inputs whose size
   is neither the native one nor a multiple of the patch size. Checked against the fixtures at
   the native size first (the forward must reproduce them), then -> interp_*.npy.

Usage: /usr/bin/python3 tests/golden/encoders/make_golden.py [SHARED_DIR]
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "..", "shared")
FIX = os.path.join(SHARED, "fixtures", "encoders")


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32"
        b, t = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:t], dtype="<f4").copy().reshape(e["shape"]))
    return out


def forward(sd, cfg, pixels, antialias=None):
    """Returns (last_hidden_state, hidden_states[L+1]); antialias=None: as the model does."""
    p = cfg["patch_size"]
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    eps = cfg["layer_norm_eps"]
    regs = cfg.get("num_register_tokens", 0) if cfg["model_type"] == "dinov2_with_registers" else 0
    n, _, h, w = pixels.shape
    x = F.conv2d(pixels, sd["embeddings.patch_embeddings.projection.weight"],
                 sd["embeddings.patch_embeddings.projection.bias"], stride=p)
    gh, gw = x.shape[2], x.shape[3]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["embeddings.cls_token"].expand(n, -1, -1), x], 1)
    pos = sd["embeddings.position_embeddings"]
    g0 = int(round((pos.shape[1] - 1) ** 0.5))
    if (gh, gw) != (g0, g0):
        grid = pos[:, 1:].reshape(1, g0, g0, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False,
                             antialias=(cfg["model_type"] == "dinov2_with_registers"
                                        if antialias is None else antialias))
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, d)], 1)
    x = x + pos
    if regs:
        x = torch.cat([x[:, :1], sd["embeddings.register_tokens"].expand(n, -1, -1), x[:, 1:]], 1)
    states = [x]
    hd = d // heads
    for i in range(cfg["num_hidden_layers"]):
        k = "encoder.layer.%d." % i
        y = F.layer_norm(x, (d,), sd[k + "norm1.weight"], sd[k + "norm1.bias"], eps)

        def proj(name, t):
            return F.linear(t, sd[k + "attention.attention.%s.weight" % name],
                            sd[k + "attention.attention.%s.bias" % name])

        q, kk, v = (proj(nm, y).view(n, -1, heads, hd).transpose(1, 2) for nm in ("query", "key", "value"))
        a = torch.softmax(torch.matmul(q, kk.transpose(-1, -2)) * hd ** -0.5, dim=-1)
        ctx = torch.matmul(a, v).transpose(1, 2).reshape(n, -1, d)
        o = F.linear(ctx, sd[k + "attention.output.dense.weight"], sd[k + "attention.output.dense.bias"])
        x = x + o * sd[k + "layer_scale1.lambda1"]
        y = F.layer_norm(x, (d,), sd[k + "norm2.weight"], sd[k + "norm2.bias"], eps)
        if cfg.get("use_swiglu_ffn", False):
            y = F.linear(y, sd[k + "mlp.weights_in.weight"], sd[k + "mlp.weights_in.bias"])
            a1, a2 = y.chunk(2, dim=-1)
            y = F.linear(F.silu(a1) * a2, sd[k + "mlp.weights_out.weight"], sd[k + "mlp.weights_out.bias"])
        else:
            y = F.gelu(F.linear(y, sd[k + "mlp.fc1.weight"], sd[k + "mlp.fc1.bias"]))
            y = F.linear(y, sd[k + "mlp.fc2.weight"], sd[k + "mlp.fc2.bias"])
        x = x + y * sd[k + "layer_scale2.lambda1"]
        states.append(x)
    lhs = F.layer_norm(x, (d,), sd["layernorm.weight"], sd["layernorm.bias"], eps)
    return lhs, torch.stack(states)


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20240601)

    # 1. PIL resampling.
    src = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)
    src[10:20, 5:40] = 255  # hard edges so that clipping/rounding paths are exercised
    src[25:30, :] = 0
    np.save(os.path.join(HERE, "pil_src.npy"), src)
    cases = [("bicubic", Image.BICUBIC, 64, 73), ("bicubic", Image.BICUBIC, 11, 20),
             ("bicubic", Image.BICUBIC, 37, 9), ("bilinear", Image.BILINEAR, 19, 100),
             ("lanczos", Image.LANCZOS, 50, 17)]
    manifest = []
    for name, flt, oh, ow in cases:
        out = np.asarray(Image.fromarray(src, mode="L").resize((ow, oh), resample=flt))
        fn = "pil_%s_%dx%d.npy" % (name, oh, ow)
        np.save(os.path.join(HERE, fn), out)
        manifest.append({"file": fn, "filter": name, "rows": oh, "cols": ow})

    # 2. Interpolated position embeddings at non-native sizes.
    interp = []
    for model, sizes in (("dinov2", [(75, 47), (98, 98)]),
                         ("dinov2_with_registers", [(44, 90), (30, 31)]),
                         ("dinov2_swiglu", [(57, 29)])):
        cfg = json.load(open(os.path.join(FIX, model, "config.json")))
        sd = read_safetensors(os.path.join(FIX, model, "model.safetensors"))
        with torch.no_grad():
            px = torch.from_numpy(np.load(os.path.join(FIX, model, "pixel_values.npy")))
            lhs, hs = forward(sd, cfg, px)
            ref = np.load(os.path.join(FIX, model, "last_hidden_state.npy"))
            ref_hs = np.load(os.path.join(FIX, model, "hidden_states.npy"))
            err = max(np.abs(lhs.numpy() - ref).max(), np.abs(hs.numpy() - ref_hs).max())
            assert err < 2e-5, (model, err)
            for (h, w) in sizes:
                x = torch.from_numpy(rng.standard_normal((2, 3, h, w)).astype(np.float32))
                lhs, hs = forward(sd, cfg, x)
                tag = "interp_%s_%dx%d" % (model, h, w)
                np.save(os.path.join(HERE, tag + "_pixel_values.npy"), x.numpy())
                np.save(os.path.join(HERE, tag + "_last_hidden_state.npy"), lhs.numpy())
                # How much the resize mode matters here (shows the test can tell them apart).
                flipped = forward(sd, cfg, x, antialias=cfg["model_type"] != "dinov2_with_registers")[0]
                sensitivity = float((flipped - lhs).abs().max())
                interp.append({"model": model, "height": h, "width": w, "prefix": tag,
                               "native_check_max_abs": float(err),
                               "antialias_flipped_max_abs_change": sensitivity})
    json.dump({"pil": manifest, "interp": interp}, open(os.path.join(HERE, "index.json"), "w"), indent=1)
    print("wrote", len(manifest), "PIL cases and", len(interp), "interpolation cases")


if __name__ == "__main__":
    main()
