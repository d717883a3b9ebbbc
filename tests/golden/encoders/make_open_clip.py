#!/usr/bin/python3
"""Golden values for the open_clip/timm layout (BiomedCLIP) and CLIP's projection.

No open_clip, timm or transformers package is installed here, so the references are plain-torch
forwards written from the published semantics:

1. open_clip_vit/: a tiny random checkpoint in the open_clip layout BiomedCLIP ships
   (open_clip_config.json + a state dict whose vision keys are `visual.trunk.*` — a timm
   VisionTransformer — and `visual.head.proj.weight`; text-tower keys and `logit_scale` are
   present too and must be ignored by a vision-only loader). Semantics (timm VisionTransformer
   with class token, global_pool 'token' kept because open_clip's `timm_pool: ""` leaves the
   trunk's default pool; open_clip TimmModel head = Dropout + Linear(bias=timm_proj_bias,
   default False)):
     x = conv(patch_embed.proj) -> flatten -> [cls_token, patches] + pos_embed
     block: x += attn.proj(MHA(norm1(x))) with qkv = one Linear whose output splits as
            (3, heads, head_dim) -> q, k, v; scale head_dim^-0.5
            x += mlp.fc2(GELU(mlp.fc1(norm2(x))))         (exact GELU, LayerNorm eps 1e-6)
     last_hidden_state = norm(x); pooled = last_hidden_state[:, 0];
     projected = head.proj(pooled)
   Dimensions come from open_clip's vision_cfg: timm_model_name vit_base_patch16_224 with
   timm_model_kwargs overriding embed_dim/depth/num_heads/patch_size/mlp_ratio (as open_clip's
   own tiny-model tests do) and image_size.
   Outputs: pixel_values.npy, last_hidden_state.npy, hidden_states.npy ((L+1)xNxTxD: entry 0 =
   embeddings after pos_embed, i = output of block i), pooled.npy, projected.npy.
2. clip_projection_*.npy: HF CLIPVisionModelWithProjection's image_embeds =
   visual_projection(pooler_output) (Linear without bias) for the shared clip_vision fixture's
   pooler_output and a seeded projection weight.

Usage: /usr/bin/python3 tests/golden/encoders/make_open_clip.py [SHARED_DIR]
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "..", "shared")
FIX = os.path.join(SHARED, "fixtures", "encoders")
OUT = os.path.join(HERE, "open_clip_vit")

D, DEPTH, HEADS, PATCH, IMAGE, MLP_RATIO, EMBED = 32, 2, 2, 8, 32, 2.0, 16


def write_safetensors(path, tensors):
    """The safetensors format: u64 header length, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].numpy().astype("<f4"))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


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
        b, t = e["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[b:t], dtype=dt).copy().reshape(e["shape"]))
    return out


def make_state(g):
    hid = int(D * MLP_RATIO)
    grid = IMAGE // PATCH
    sd = {}

    def rnd(name, *shape, scale=0.2, offset=0.0):
        sd[name] = torch.randn(*shape, generator=g) * scale + offset

    t = "visual.trunk."
    rnd(t + "cls_token", 1, 1, D)
    rnd(t + "pos_embed", 1, 1 + grid * grid, D)
    rnd(t + "patch_embed.proj.weight", D, 3, PATCH, PATCH, scale=0.05)
    rnd(t + "patch_embed.proj.bias", D, scale=0.1)
    for i in range(DEPTH):
        b = t + f"blocks.{i}."
        rnd(b + "norm1.weight", D, scale=0.1, offset=1.0)
        rnd(b + "norm1.bias", D, scale=0.1)
        rnd(b + "attn.qkv.weight", 3 * D, D, scale=0.15)
        rnd(b + "attn.qkv.bias", 3 * D, scale=0.1)
        rnd(b + "attn.proj.weight", D, D, scale=0.15)
        rnd(b + "attn.proj.bias", D, scale=0.1)
        rnd(b + "norm2.weight", D, scale=0.1, offset=1.0)
        rnd(b + "norm2.bias", D, scale=0.1)
        rnd(b + "mlp.fc1.weight", hid, D, scale=0.15)
        rnd(b + "mlp.fc1.bias", hid, scale=0.1)
        rnd(b + "mlp.fc2.weight", D, hid, scale=0.15)
        rnd(b + "mlp.fc2.bias", D, scale=0.1)
    rnd(t + "norm.weight", D, scale=0.1, offset=1.0)
    rnd(t + "norm.bias", D, scale=0.1)
    rnd("visual.head.proj.weight", EMBED, D, scale=0.2)
    # Text tower and temperature: part of an open_clip checkpoint, not of the vision encoder.
    rnd("text.transformer.embeddings.word_embeddings.weight", 11, 8)
    rnd("text.proj.0.weight", 12, 8)
    sd["logit_scale"] = torch.tensor(4.6052)
    return sd


def forward(sd, px):
    t = "visual.trunk."
    n = px.shape[0]
    hd = D // HEADS
    x = F.conv2d(px, sd[t + "patch_embed.proj.weight"], sd[t + "patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[t + "cls_token"].expand(n, -1, -1), x], 1) + sd[t + "pos_embed"]
    states = [x]
    for i in range(DEPTH):
        b = t + f"blocks.{i}."
        h = F.layer_norm(x, (D,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], 1e-6)
        qkv = F.linear(h, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"])
        qkv = qkv.reshape(n, x.shape[1], 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q * hd ** -0.5) @ k.transpose(-2, -1), dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(n, x.shape[1], D)
        x = x + F.linear(o, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = F.layer_norm(x, (D,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], 1e-6)
        m = F.linear(F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                     sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        x = x + m
        states.append(x)
    last = F.layer_norm(x, (D,), sd[t + "norm.weight"], sd[t + "norm.bias"], 1e-6)
    pooled = last[:, 0]
    projected = F.linear(pooled, sd["visual.head.proj.weight"])
    return last, torch.stack(states), pooled, projected


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(20261123)
    os.makedirs(OUT, exist_ok=True)
    sd = make_state(g)
    config = {
        "model_cfg": {
            "embed_dim": EMBED,
            "vision_cfg": {
                "timm_model_name": "vit_base_patch16_224",
                "timm_model_pretrained": False,
                "timm_pool": "",
                "timm_proj": "linear",
                "image_size": IMAGE,
                "timm_model_kwargs": {"embed_dim": D, "depth": DEPTH, "num_heads": HEADS,
                                      "patch_size": PATCH, "mlp_ratio": MLP_RATIO},
            },
            "text_cfg": {
                "hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 256,
            },
        },
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }
    with open(os.path.join(OUT, "open_clip_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(OUT, "open_clip_model.safetensors"), sd)
    px = torch.randn(2, 3, IMAGE, IMAGE, generator=g)
    with torch.no_grad():
        last, states, pooled, projected = forward(sd, px)
    np.save(os.path.join(OUT, "pixel_values.npy"), px.numpy().astype("<f4"))
    np.save(os.path.join(OUT, "last_hidden_state.npy"), last.numpy().astype("<f4"))
    np.save(os.path.join(OUT, "hidden_states.npy"), states.numpy().astype("<f4"))
    np.save(os.path.join(OUT, "pooled.npy"), pooled.numpy().astype("<f4"))
    np.save(os.path.join(OUT, "projected.npy"), projected.numpy().astype("<f4"))

    # 2. CLIPVisionModelWithProjection: image_embeds = pooler_output @ W^T.
    pooled_hf = torch.from_numpy(np.load(os.path.join(FIX, "clip_vision", "pooler_output.npy")))
    hidden = pooled_hf.shape[1]
    w = torch.randn(12, hidden, generator=g) * 0.2
    np.save(os.path.join(HERE, "clip_projection_weight.npy"), w.numpy().astype("<f4"))
    embeds = (pooled_hf.double() @ w.double().T).float()
    np.save(os.path.join(HERE, "clip_projection_image_embeds.npy"), embeds.numpy().astype("<f4"))
    print("wrote", OUT, "and clip_projection_*.npy")


if __name__ == "__main__":
    main()
