#!/usr/bin/python3
"""Parity fixtures for Apple's AIMv2 vision encoder (Aimv2VisionModel, model_type
"aimv2_vision_model"), made by transformers' own code:

  transformers v4.57.6     huggingface/transformers     commit 753d61104116eefc8ffc977327b441ee0c8d599f
  huggingface_hub v0.36.2  huggingface/huggingface_hub  commit 664c484e261175deeb80c2aa3b525457a1f6fa5c
on Debian's python3-torch 1.13 (CPU, float32, one thread, eager attention). AIMv2 first appears in
transformers v4.57.0 (added by "Add Aimv2 model (#36625)", commit
fbdaa7b099e4253be4175e0201cd477e9de05363); v4.57.6 is the release the DINOv3 fixtures were made
with.

Cases, each written to tests/data/encoders/<case>/ (config.json + model.safetensors from
save_pretrained, pixel_values.npy, last_hidden_state.npy, hidden_states.npy, pooler_output.npy
where the model has a head, image_embeds.npy for aimv2_lit, index.json):

  aimv2         Aimv2VisionModel shaped like apple/aimv2-large-patch14-224 as transformers' own
                converter publishes it (use_head=False, is_native=False: learned position
                embeddings for the config's fixed (image_size/patch)^2 grid), input 2x3x42x42
  aimv2_head    the same trunk (bit-identical weights: every tensor is drawn from its own
                generator seeded by (SEED, crc32(name))) with use_head=True, as the vision tower
                of apple/aimv2-large-patch14-224-lit (the only variant the converter gives the
                attention-pooling head); same input as aimv2; pooler_output = head output
  aimv2_native  is_native=True as apple/aimv2-large-patch14-native (no learned position
                embedding: 2-D sin-cos computed for the input's own grid), input 2x3x56x42
                (H=56, W=42: a 4x3 grid, not the config's 3x3 and not square)
  aimv2_lit     Aimv2Model (model_type "aimv2", Aimv2Config), the composite that
                apple/aimv2-large-patch14-224-lit is converted to: vision_model.* (Aimv2VisionModel
                with the head, vision_config == aimv2_head's config), text_model.* (Aimv2TextModel:
                hidden 32, 2 heads, 1 layer, intermediate 64, vocab 64, eos 63, 8 positions),
                visual_projection.weight [24, 48] and text_projection.weight [24, 32] (no bias),
                logit_scale (0-d); projection_dim 24. aimv2_head's input; references from
                model.vision_model(pixel_values, output_hidden_states=True) (last_hidden_state,
                hidden_states, pooler_output: byte-identical to aimv2_head's, asserted) and
                image_embeds.npy = model.get_image_features(pixel_values) =
                visual_projection(pooler_output), NOT L2-normalised (Aimv2Model.forward normalises;
                asserted). Vision tensors are seeded by their name inside the vision tower
                (seed_name drops "vision_model."), so each vision_model.<k> is byte-identical to
                aimv2_head's <k> (asserted on the raw safetensors bytes). index.json records the
                config.json written (nested vision_config/text_config: every Aimv2*Config field is
                written, even at its default; only generic PretrainedConfig attributes at their
                defaults are left out), the key prefixes and the projection shapes. Made after
                aimv2_head in the same run (it compares against aimv2_head's files).

CONFIG / CONFIG_SOURCE below: the tiny config keeps the published model's settings (patch 14,
RMSNorm eps 1e-5, SiLU SwiGLU MLP, no q/k/v/out-projection bias, no MLP bias, 3 channels) and
scales down hidden 1024 -> 48, heads 8 -> 3 (head_dim 16), layers 24 -> 2, intermediate 2816 -> 128,
image 224 -> 42.

Weights: every state_dict tensor from torch.Generator().manual_seed(SEED * 2**32 +
crc32(seed_name(name))), seed_name = the name with a leading "vision_model." dropped (aimv2_lit
only; the other cases' names have no prefix): conv/linear weights N(0,1)/sqrt(fan_in); biases
0.1*N(0,1); RMSNorm weights 1+0.2*N(0,1); position embeddings, token embedding and the head's
cls_token 0.5*N(0,1); logit_scale log(1/0.07)+0.1*N(0,1) (the conventions of the float32
fixtures' index.json "init" fields). Inputs: torch.randn(N, 3, H, W, generator=manual_seed(INPUT_SEED))
plus a horizontal ramp linspace(-0.5, 0.5, W).

Each case: cls(config) randomized, save_pretrained(safe_serialization=True), reloaded with
from_pretrained(attn_implementation="eager") (no missing/unexpected/mismatched keys, every tensor
equal to the saved one), run as model(pixel_values=x, output_hidden_states=True, return_dict=True)
under torch.no_grad in eval mode. hidden_states.npy = torch.stack(outputs.hidden_states),
(L+1) x N x T x D: entry 0 = the embeddings output (RMSNorm(patch conv) + position embedding),
entry i = the output of encoder layer i; entry L is BEFORE the final RMSNorm
(check_model_inputs(tie_last_hidden_states=False)); last_hidden_state = final RMSNorm(entry L).
Checked besides: outputs against an independent float64 NumPy forward written from index.json's
description (this file's `independent_forward`; no transformers code), the HF model itself run in
float64, a repeat run and the in-memory model (bit-exact), and for aimv2 the behaviour at other
input sizes (no interpolation: a different patch count raises; the same patch count in another
shape runs silently with the row-major embedding rows).

Shims (transformers >= 4.56 refuses torch < 2.1), exactly those of make_published_dinov3.py, whose
import_transformers() this script calls:
  - ../shared/reference/torch2_import_shims.py install_default() (placeholders for torch-2-only
    names read at import time);
  - transformers.utils.import_utils._torch_available set to True after that module's own check,
    _torchvision_available set to False (Debian's torchvision 0.14 lacks NEAREST_EXACT);
  - publisher_env's tokenizers stub given a dist-info (0.22.1);
and one more, in the forward path of the use_head cases (aimv2_head, aimv2_lit) only:
  - torch.nn.functional.scaled_dot_product_attention (torch >= 2.0; Aimv2AttentionPoolingHead calls
    it as F.scaled_dot_product_attention(query, key, value)) set to torch 1.13's own precursor op,
    torch.nn.functional._scaled_dot_product_attention(query, key, value)[0] (no mask, no dropout,
    not causal: softmax(q k^T / sqrt(E)) v, math path); any other argument raises. index.json
    records its difference from the explicit formula. The trunk never calls it.
All are listed in index.json (torch2_import_shims). Nothing else in the forward pass is patched.

How to run (vendor trees and stubs: publisher_env.py beside this file):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup transformers=<bare git dir> \\
      huggingface_hub=<bare git dir>          # once; VENDOR defaults to <checkout>/../vendor
  /usr/bin/python3 tests/golden/encoders/make_aimv2.py [--out tests/data/encoders]
Deterministic: a second run rewrites identical bytes.
"""
import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import zlib

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_published_dinov3 as mpd  # noqa: E402  (import_transformers: the v4.57.6 shims)
import publisher_env as pe  # noqa: E402

GENERATOR = "tests/golden/encoders/make_aimv2.py"
SEED = 1015  # the float32 fixtures use 1001..1014
CONFIG = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=128,
              image_size=42, patch_size=14, num_channels=3, rms_norm_eps=1e-5, qkv_bias=False,
              mlp_bias=False, hidden_act="silu", use_head=False, is_native=False)
# case -> (config changes, input seed, (H, W), what it exercises)
CASES = [
    ("aimv2", {}, 2015, (42, 42)),
    ("aimv2_head", {"use_head": True}, 2015, (42, 42)),
    ("aimv2_native", {"is_native": True}, 2017, (56, 42)),
]
# aimv2_lit: Aimv2Model (model_type "aimv2") as apple/aimv2-large-patch14-224-lit is converted.
LIT_CASE, LIT_HEAD_CASE = "aimv2_lit", "aimv2_head"
VISION_PREFIX = "vision_model."
LIT_VISION = dict(CONFIG, use_head=True)  # == aimv2_head's config
LIT_TEXT = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=8, eos_token_id=63,
                rms_norm_eps=1e-5, qkv_bias=False, mlp_bias=False, hidden_act="silu")
LIT_PROJECTION_DIM = 24
LIT_INPUT_SEED, LIT_HW = 2015, (42, 42)  # aimv2_head's input
LIT_TEXT_IDS_SEED = 2018
CONVERTER_COMMIT = "fbdaa7b099e4253be4175e0201cd477e9de05363"
CONFIG_SOURCE = (
    "transformers' converter src/transformers/models/aimv2/convert_aimv2_original_pytorch_to_hf.py "
    "(huggingface/transformers commit %s, 'Add Aimv2 model (#36625)', an ancestor of v4.57.6; "
    "release commits drop convert_*.py): write_model() loads Aimv2VisionConfig.from_pretrained of "
    "Apple's original repository and sets use_head=False for every checkpoint except "
    "apple/aimv2-large-patch14-224-lit (Aimv2Model: the vision tower keeps the attention-pooling "
    "head) and is_native=True for apple/aimv2-large-patch14-native. Aimv2VisionConfig's defaults "
    "are documented as apple/aimv2-large-patch14-224's: hidden 1024, intermediate 2816, 24 layers, "
    "8 heads, patch 14, image 224, rms_norm_eps 1e-5, qkv_bias False, mlp_bias False, hidden_act "
    "silu; transformers' integration test checks apple/aimv2-large-patch14-224's "
    "last_hidden_state as [1, 256, 1024] (16x16 patches, no CLS). Kept: patch 14, eps, SiLU "
    "SwiGLU, no bias in attention and MLP, 3 channels, use_head/is_native per variant; scaled "
    "down: hidden 48 (3 heads of 16), 2 layers, intermediate 128, image 42 (3x3 patches)"
    % CONVERTER_COMMIT)

SDPA_SHIM = ("torch.nn.functional.scaled_dot_product_attention (torch >= 2.0) = torch 1.13's "
             "torch.nn.functional._scaled_dot_product_attention(query, key, value)[0] (no mask, "
             "no dropout, not causal; any other argument raises): called only by "
             "Aimv2AttentionPoolingHead (use_head=True), in the forward pass")


def install_sdpa_shim(torch):
    F = torch.nn.functional
    assert not hasattr(F, "scaled_dot_product_attention"), "torch already has SDPA: drop the shim"
    calls = []

    def scaled_dot_product_attention(query, key, value, *args, **kwargs):
        if args or kwargs:
            raise RuntimeError("SDPA shim: only (query, key, value) is supported")
        calls.append(tuple(query.shape))
        return F._scaled_dot_product_attention(query, key, value)[0]

    F.scaled_dot_product_attention = scaled_dot_product_attention
    return calls


def init_rule(name, shape):
    """The init of one state_dict tensor (the float32 fixtures' conventions)."""
    if name.endswith(("rms_norm.weight", "rms_norm1.weight", "rms_norm2.weight")):
        return "1+0.2*N(0,1)"
    if name.endswith(".bias"):
        return "0.1*N(0,1)"
    if name.endswith(("position_embedding.weight", "head.cls_token", "token_embedding.weight")):
        return "0.5*N(0,1)"
    if name == "logit_scale":
        return "log(1/0.07)+0.1*N(0,1)"
    assert name.endswith(".weight") and len(shape) in (2, 4), name
    return "N(0,1)/sqrt(fan_in)"


def seed_name(name):
    """The name a tensor's generator is seeded by: its state_dict name, except that in Aimv2Model
    (aimv2_lit) the vision tower's tensors are seeded by their name inside the vision tower
    (the 'vision_model.' prefix dropped), i.e. by their key in aimv2_head's checkpoint."""
    return name[len(VISION_PREFIX):] if name.startswith(VISION_PREFIX) else name


# The init rules drawn from r ~ N(0,1) (shared with make_sam2.py); any other rule is
# "N(0,1)/sqrt(fan_in)".
NORMAL_RULES = {
    "1+0.2*N(0,1)": lambda r: 1.0 + 0.2 * r,
    "0.1*N(0,1)": lambda r: 0.1 * r,
    "0.5*N(0,1)": lambda r: 0.5 * r,
    "N(0,1)": lambda r: r,
    "log(1/0.07)+0.1*N(0,1)": lambda r: math.log(1 / 0.07) + 0.1 * r,
}


def drawn(rule, r):
    """A tensor's value under `rule` from its standard normal draw r."""
    if rule in NORMAL_RULES:
        return NORMAL_RULES[rule](r)
    return r / math.sqrt(int(np.prod(r.shape[1:])))


def randomize(model, torch):
    """Every state_dict tensor from its own generator, seeded by (SEED, crc32(seed_name(name))):
    tensors of the same (seed) name and shape are identical across the cases."""
    sd = model.state_dict()
    params = dict(model.named_parameters())
    assert sorted(sd) == sorted(params), (sorted(sd), sorted(params))  # no persistent buffers
    rules = {}
    with torch.no_grad():
        for name in sorted(sd):
            p = params[name]
            g = torch.Generator().manual_seed(SEED * 2 ** 32 + zlib.crc32(seed_name(name).encode()))
            rule = init_rule(name, tuple(p.shape))
            p.copy_(drawn(rule, torch.randn(p.shape, generator=g)))
            rules[name] = rule
    return rules


def pixel_values(torch, seed, h, w, n=2):
    """The fixtures' inputs (also make_sam2.py's and make_vmamba.py's): N(0,1) plus a ramp."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h, w, generator=g)
    return x + torch.linspace(-0.5, 0.5, w).view(1, 1, 1, w)


# ----- independent float64 forward (NumPy only), written from the description in index.json -----

def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def softmax(a):
    a = a - a.max(-1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(-1, keepdims=True)


def sincos_2d(gh, gw, dim, temperature=10000.0):
    """[T, dim], T = gh*gw row-major: [sin(col*w), cos(col*w), sin(row*w), cos(row*w)],
    w_k = temperature^(-k/(dim/4)), k = 0..dim/4-1 (the COLUMN index comes first)."""
    q = dim // 4
    omega = 1.0 / temperature ** (np.arange(q, dtype=np.float64) / q)
    row, col = np.divmod(np.arange(gh * gw, dtype=np.float64), gw)
    a, b = col[:, None] * omega[None], row[:, None] * omega[None]
    return np.concatenate([np.sin(a), np.cos(a), np.sin(b), np.cos(b)], axis=1)


def independent_forward(sd, cfg, x):
    """sd: name -> float64 array; x: N x C x H x W float64. Returns (last, hidden_states, pooled)."""
    D, nh, p, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["patch_size"], cfg["rms_norm_eps"]
    hd = D // nh
    n, c, h, w = x.shape
    gh, gw = h // p, w // p
    patches = x[:, :, :gh * p, :gw * p].reshape(n, c, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(n, gh * gw, c * p * p)
    t = patches @ sd["embeddings.patch_embed.weight"].reshape(D, -1).T + sd["embeddings.patch_embed.bias"]
    t = _rms(t, sd["embeddings.rms_norm.weight"], eps)
    if cfg["is_native"]:
        t = t + sincos_2d(gh, gw, D)[None]
    else:
        pos = sd["embeddings.position_embedding.weight"]
        assert pos.shape[0] == gh * gw
        t = t + pos[None]
    T = t.shape[1]

    def heads(a):
        return a.reshape(n, -1, nh, hd).transpose(0, 2, 1, 3)

    hs = [t]
    for i in range(cfg["num_hidden_layers"]):
        pre = "encoder.layers.%d." % i
        y = _rms(t, sd[pre + "rms_norm1.weight"], eps)
        q, k, v = (heads(y @ sd[pre + "attention.%s_proj.weight" % s].T) for s in "qkv")
        a = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)) @ v
        t = t + a.transpose(0, 2, 1, 3).reshape(n, T, D) @ sd[pre + "attention.out_proj.weight"].T
        y = _rms(t, sd[pre + "rms_norm2.weight"], eps)
        gate = y @ sd[pre + "ffn.gate_proj.weight"].T
        up = y @ sd[pre + "ffn.up_proj.weight"].T
        t = t + (gate / (1.0 + np.exp(-gate)) * up) @ sd[pre + "ffn.down_proj.weight"].T
        hs.append(t)
    last = _rms(t, sd["rms_norm.weight"], eps)
    pooled = None
    if cfg["use_head"]:
        k = heads(last @ sd["head.k_proj.weight"].T)
        v = heads(last @ sd["head.v_proj.weight"].T)
        q = np.broadcast_to(sd["head.cls_token"].reshape(1, nh, 1, hd), (n, nh, 1, hd))
        a = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)) @ v  # n, nh, 1, hd
        pooled = a.reshape(n, D) @ sd["head.output_proj.weight"].T + sd["head.output_proj.bias"]
    return last, np.stack(hs), pooled


# ----- fixture files -----

def conv2d(x, w, b, stride, pad, depthwise=False):
    """Float64 NumPy Conv2d (N x C x H x W, weight O x C x kh x kw; depthwise: O x 1 x kh x kw),
    zero padding `pad`, for the independent forwards of make_sam2.py and make_vmamba.py."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            if depthwise:
                out += patch * w[None, :, 0, i, j, None, None]
            else:
                out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out if b is None else out + b[None, :, None, None]


def npy(out_dir, name, t):
    """Writes t as little-endian float32 in C order (NumPy format 1.0); returns the array."""
    a = (t.detach().numpy() if hasattr(t, "detach") else t).astype("<f4")
    a = np.ascontiguousarray(a)
    np.save(os.path.join(out_dir, name + ".npy"), a)
    return a


def ceil1(v):
    """v rounded up to one significant digit."""
    e = math.floor(math.log10(v))
    m = math.ceil(round(v / 10 ** e, 9))
    return float("%de%d" % (m, e))


def tolerance(diff, max_abs):
    return {"atol": max(ceil1(50 * diff) if diff > 0 else 0.0, ceil1(1e-5 * max(1.0, max_abs))),
            "rtol": 1e-4}


def safetensors_info(path, rules):
    st = pe.st_io()
    hlen, header = st.read_safetensors_header(path)
    meta = header.pop("__metadata__", None)
    with open(path, "rb") as f:
        data = f.read()
    dtypes = sorted({v["dtype"] for v in header.values()})
    assert dtypes == ["F32"], dtypes
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "header_bytes": hlen,
            "num_tensors": len(header), "dtype": "F32", "metadata": meta,
            "tensors": {k: {"shape": header[k]["shape"], "init": rules[k]} for k in sorted(header)},
            "meaning": "weights, written by save_pretrained(safe_serialization=True) through "
                       "publisher_env's safetensors stub (st_io.py: 8-byte LE header length, JSON "
                       "header, names sorted, space-padded to 8-byte alignment, contiguous "
                       "little-endian F32). Keys == HF model.state_dict() keys exactly; loads "
                       "through HF from_pretrained with no missing/unexpected/mismatched keys."}


def debian_torch():
    try:
        v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "python3-torch"], check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode()
        return v.split("-")[0]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def make_case(torch, transformers, out_root, case, changes, input_seed, hw, sdpa_calls, shared):
    t = transformers
    cfg_dict = dict(CONFIG, **changes)
    out_dir = os.path.join(out_root, case)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    model = t.Aimv2VisionModel(t.Aimv2VisionConfig(attn_implementation="eager", **cfg_dict))
    rules = randomize(model, torch)
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    assert sorted(os.listdir(out_dir)) == ["config.json", "model.safetensors"], os.listdir(out_dir)
    with open(os.path.join(out_dir, "config.json")) as f:
        config_json = json.load(f)
    assert config_json["model_type"] == "aimv2_vision_model"
    for k, v in cfg_dict.items():
        assert config_json[k] == v, (k, config_json[k], v)

    m, info = t.Aimv2VisionModel.from_pretrained(out_dir, attn_implementation="eager",
                                                 output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert type(m).__name__ == "Aimv2VisionModel" and m.config._attn_implementation == "eager"
    saved, got = model.state_dict(), m.state_dict()
    assert sorted(saved) == sorted(got)
    for k, v in saved.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), k
    m.eval()
    for k, v in saved.items():  # the same name -> the same tensor in every case
        if k in shared:
            assert torch.equal(shared[k], v), k
        shared[k] = v.clone()

    h, w = hw
    x = pixel_values(torch, input_seed, h, w)
    L, D = CONFIG["num_hidden_layers"], CONFIG["hidden_size"]
    T = (h // CONFIG["patch_size"]) * (w // CONFIG["patch_size"])
    n_sdpa = len(sdpa_calls)
    o = m(pixel_values=x, output_hidden_states=True, return_dict=True)
    head_sdpa_calls = len(sdpa_calls) - n_sdpa
    assert head_sdpa_calls == (1 if cfg_dict["use_head"] else 0), head_sdpa_calls
    hs = torch.stack(o.hidden_states)
    assert tuple(hs.shape) == (L + 1, 2, T, D), hs.shape
    assert tuple(o.last_hidden_state.shape) == (2, T, D)
    checks = {"safetensors_keys_equal_state_dict_keys": True,
              "hf_from_pretrained_missing_unexpected_mismatched": [[], [], []],
              "reloaded_tensors_equal_saved": True}
    checks["hidden_states_first_is_embeddings_output"] = bool(torch.equal(hs[0], m.embeddings(x)))
    # On the tensor transformers holds (bit-exact). It is laid out B x D x T in memory (strides of
    # the conv output's flatten(2).transpose(1, 2), kept by every residual add): RMSNorm on a
    # contiguous copy reduces in another order and differs in the last bits.
    checks["last_hidden_state_is_final_rms_norm_of_hidden_states_last"] = bool(
        torch.equal(m.rms_norm(o.hidden_states[-1]), o.last_hidden_state))
    checks["hidden_states_memory_strides"] = [list(h_.stride()) for h_ in o.hidden_states]
    checks["final_rms_norm_of_contiguous_copy_max_abs_change"] = float(
        (m.rms_norm(hs[-1].contiguous()) - o.last_hidden_state).abs().max())
    if cfg_dict["use_head"]:
        assert tuple(o.pooler_output.shape) == (2, D)
        checks["pooler_output_is_head_of_last_hidden_state"] = bool(
            torch.equal(m.head(o.last_hidden_state), o.pooler_output))
    else:
        assert o.pooler_output is None
        checks["pooler_output_is_none"] = True
    o2 = m(pixel_values=x, output_hidden_states=True, return_dict=True)
    checks["repeat_run_bitexact"] = bool(torch.equal(o2.last_hidden_state, o.last_hidden_state)
                                         and torch.equal(torch.stack(o2.hidden_states), hs))
    oi = model(pixel_values=x, output_hidden_states=True, return_dict=True)
    checks["reloaded_vs_in_memory_outputs_bitexact"] = bool(
        torch.equal(oi.last_hidden_state, o.last_hidden_state)
        and torch.equal(torch.stack(oi.hidden_states), hs)
        and (o.pooler_output is None or torch.equal(oi.pooler_output, o.pooler_output)))
    for k, v in checks.items():
        assert v is True or k in ("hf_from_pretrained_missing_unexpected_mismatched",
                                  "hidden_states_memory_strides",
                                  "final_rms_norm_of_contiguous_copy_max_abs_change"), (k, v)

    # Independent float64 NumPy forward from the described architecture.
    sd64 = {k: v.double().numpy() for k, v in got.items()}
    r_last, r_hs, r_pool = independent_forward(sd64, cfg_dict, x.double().numpy())
    diff = {"last_hidden_state": float(np.abs(r_last - o.last_hidden_state.double().numpy()).max()),
            "hidden_states": float(np.abs(r_hs - hs.double().numpy()).max())}
    if r_pool is not None:
        diff["pooler_output"] = float(np.abs(r_pool - o.pooler_output.double().numpy()).max())
    assert all(v < 1e-4 for v in diff.values()), diff
    per_layer_fp64 = [float(np.abs(r_hs[i] - hs[i].double().numpy()).max()) for i in range(L + 1)]
    # transformers' own model in float64 (its RMSNorm and eager softmax still compute in float32).
    md = copy.deepcopy(m).double()
    od = md(pixel_values=x.double(), output_hidden_states=True, return_dict=True)
    hf64 = {"last_hidden_state": float((od.last_hidden_state - o.last_hidden_state.double()).abs().max()),
            "hidden_states": float((torch.stack(od.hidden_states) - hs.double()).abs().max())}
    if od.pooler_output is not None:
        hf64["pooler_output"] = float((od.pooler_output - o.pooler_output.double()).abs().max())
    checks["independent_reimplementation"] = {
        "what": "%s independent_forward: NumPy float64, written from this index's description "
                "(no transformers code), on the reloaded weights and pixel_values" % GENERATOR,
        "max_abs_diff_vs_float32_reference": diff,
        "hidden_states_per_layer_max_abs_diff": per_layer_fp64}
    checks["hf_float64_run"] = {
        "what": "copy.deepcopy(model).double() run by transformers on pixel_values.double() "
                "(Aimv2RMSNorm upcasts to float32 and eager softmax runs in float32 even then)",
        "max_abs_diff_vs_float32_reference": hf64}

    if cfg_dict["use_head"]:
        F = torch.nn.functional
        last = o.last_hidden_state
        nh, hd = CONFIG["num_attention_heads"], D // CONFIG["num_attention_heads"]
        k_ = m.head.k_proj(last).reshape(2, T, nh, hd).permute(0, 2, 1, 3)
        v_ = m.head.v_proj(last).reshape(2, T, nh, hd).permute(0, 2, 1, 3)
        q_ = m.head.cls_token.expand(2, -1, -1).reshape(2, 1, nh, hd).permute(0, 2, 1, 3)
        shim = F.scaled_dot_product_attention(q_, k_, v_)
        explicit = torch.softmax(q_ @ k_.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v_
        checks["sdpa_shim_vs_explicit_softmax_formula_max_abs"] = float((shim - explicit).abs().max())
        assert checks["sdpa_shim_vs_explicit_softmax_formula_max_abs"] < 1e-5

    extra = {}
    if case == "aimv2":
        # No position-embedding interpolation: other sizes.
        probes = {}
        try:
            m(pixel_values=pixel_values(torch, input_seed, 56, 42))
            probes["56x42 (4x3 = 12 patches)"] = "ran"
        except RuntimeError as e:
            probes["56x42 (4x3 = 12 patches)"] = "RuntimeError: " + str(e).splitlines()[0]
        assert probes["56x42 (4x3 = 12 patches)"].startswith("RuntimeError"), probes
        x19 = pixel_values(torch, input_seed, 14, 126)
        y19 = m(pixel_values=x19).last_hidden_state
        r19, _, _ = independent_forward(sd64, cfg_dict, x19.double().numpy())
        d19 = float(np.abs(r19 - y19.double().numpy()).max())
        assert d19 < 1e-4, d19
        probes["14x126 (1x9 = 9 patches, the config's count in another shape)"] = (
            "runs without error: embedding row j is added to patch token j (row-major over the "
            "1x9 grid), no resize; independent forward agrees to %.2e" % d19)
        checks["other_input_sizes"] = probes
    if cfg_dict["is_native"]:
        # Input not a multiple of the patch: the conv drops the last rows/cols; the grid is floor.
        xc = pixel_values(torch, input_seed + 100, h + 4, w + 5)
        full = m(pixel_values=xc).last_hidden_state
        crop = m(pixel_values=xc[:, :, :h, :w].contiguous()).last_hidden_state
        checks["non_multiple_input_%dx%d_equals_its_top_left_%dx%d_crop" % (h + 4, w + 5, h, w)] = \
            bool(torch.equal(full, crop))
        emb_pos = (m.embeddings(x) - m.embeddings.rms_norm(
            m.embeddings.patch_embed(x).flatten(2).transpose(1, 2)))[0].double().numpy()
        extra["sincos_max_abs_diff_vs_independent"] = float(
            np.abs(emb_pos - sincos_2d(h // 14, w // 14, D)).max())
        assert extra["sincos_max_abs_diff_vs_independent"] < 1e-5, extra
        checks["sincos_position_embedding_vs_independent_max_abs"] = \
            extra["sincos_max_abs_diff_vs_independent"]

    # Files.
    files = {"config.json": {"meaning": "HF config written by Aimv2VisionConfig's save_pretrained",
                             "model_type": "aimv2_vision_model"},
             "model.safetensors": safetensors_info(os.path.join(out_dir, "model.safetensors"), rules)}
    px = npy(out_dir, "pixel_values", x)
    files["pixel_values.npy"] = {
        "shape": list(px.shape), "dtype": "float32", "max_abs": float(np.abs(px).max()),
        "meaning": "model input (already-normalised NCHW float32): torch.randn(2, 3, %d, %d, "
                   "generator=torch.Generator().manual_seed(%d)) + linspace(-0.5, 0.5, %d) along W"
                   % (h, w, input_seed, w)}
    lhs = npy(out_dir, "last_hidden_state", o.last_hidden_state)
    files["last_hidden_state.npy"] = {
        "shape": list(lhs.shape), "dtype": "float32", "max_abs": float(np.abs(lhs).max()),
        "meaning": "final RMSNorm ('rms_norm', eps 1e-5) of the last encoder layer's output; "
                   "[B, T, D], T = (H//14)*(W//14) patch tokens, no CLS",
        "fp32_vs_fp64_max_abs_diff": diff["last_hidden_state"],
        "tolerance": tolerance(diff["last_hidden_state"], float(np.abs(lhs).max()))}
    if cfg_dict["use_head"]:
        po = npy(out_dir, "pooler_output", o.pooler_output)
        files["pooler_output.npy"] = {
            "shape": list(po.shape), "dtype": "float32", "max_abs": float(np.abs(po).max()),
            "meaning": "Aimv2AttentionPoolingHead(last_hidden_state): query = head.cls_token (no "
                       "query projection), k = head.k_proj(x), v = head.v_proj(x) (no bias), "
                       "3 heads, softmax(q k^T / sqrt(16)) v, heads concatenated, "
                       "head.output_proj (with bias); [B, D]",
            "fp32_vs_fp64_max_abs_diff": diff["pooler_output"],
            "tolerance": tolerance(diff["pooler_output"], float(np.abs(po).max()))}
    hsa = npy(out_dir, "hidden_states", hs)
    files["hidden_states.npy"] = {
        "shape": list(hsa.shape), "dtype": "float32", "max_abs": float(np.abs(hsa).max()),
        "meaning": "torch.stack(outputs.hidden_states): [L+1, B, T, D]; [0] = embeddings output "
                   "(RMSNorm(patch conv) + %s), [i] = output of encoder layer i; [L] is BEFORE "
                   "the final RMSNorm (last_hidden_state = rms_norm(hidden_states[L]))"
                   % ("2-D sin-cos position embedding of the input's grid" if cfg_dict["is_native"]
                      else "learned position embedding"),
        "fp32_vs_fp64_max_abs_diff": diff["hidden_states"],
        "tolerance": tolerance(diff["hidden_states"], float(np.abs(hsa).max())),
        "per_layer_max_abs": [float(np.abs(hsa[i]).max()) for i in range(L + 1)]}
    return out_dir, cfg_dict, checks, files, x


SEQUENCE_LAYOUT = {
    False: "T = (H//p)*(W//p) patch tokens, row-major, no CLS/register tokens. Learned absolute "
           "position embedding embeddings.position_embedding.weight [(image_size//p)^2, D], row j "
           "added to patch token j; NO interpolation: an input with another patch count raises "
           "(the add cannot broadcast), one with the same count in another shape runs silently.",
    True: "T = (H//p)*(W//p) patch tokens, row-major, no CLS/register tokens. No learned position "
          "embedding (is_native): 2-D sin-cos computed for the input's own (H//p) x (W//p) grid in "
          "the activations' dtype: for token t = r*(W//p) + c and q = D/4, w_k = 10000^(-k/q), "
          "k = 0..q-1: [sin(c*w), cos(c*w), sin(r*w), cos(r*w)] (the COLUMN index c first: "
          "build_2d_sincos_position_embedding names its meshgrid outputs grid_h, grid_w but gets "
          "(column, row) from torch.meshgrid(grid_w, grid_h, indexing='xy')). Inputs that are not "
          "multiples of p lose their last H%p rows / W%p columns in the stride-p conv.",
}

ARCHITECTURE_NOTES = [
    "embeddings: patch_embed = Conv2d(C, D, kernel p, stride p, bias) -> flatten to [B, T, D] -> "
    "embeddings.rms_norm (RMSNorm, weight only, eps rms_norm_eps) -> + position embedding",
    "RMSNorm (Aimv2RMSNorm): x / sqrt(mean(x^2 over D) + eps) * weight (computed in float32; no "
    "bias, no mean subtraction); eps = config.rms_norm_eps = 1e-5 everywhere (the class default "
    "1e-6 is never used: every instance is given config.rms_norm_eps)",
    "encoder layer (pre-norm): x = x + attention(rms_norm1(x)); x = x + ffn(rms_norm2(x)); no "
    "layer scale, no drop path",
    "attention: q_proj, k_proj, v_proj, out_proj = Linear(D, D, bias=qkv_bias=False); heads = "
    "contiguous head_dim slices of D; scale head_dim^-0.5; softmax in float32; eager",
    "ffn (SwiGLU): down_proj(silu(gate_proj(x)) * up_proj(x)); gate_proj/up_proj Linear(D, I), "
    "down_proj Linear(I, D), bias=mlp_bias=False; silu(x) = x*sigmoid(x)",
    "final norm: rms_norm (RMSNorm, eps 1e-5) on the last layer's output = last_hidden_state",
    "use_head=True: head = Aimv2AttentionPoolingHead; pooler_output [B, D] (see "
    "pooler_output.npy); use_head=False: pooler_output is None and no head.* keys",
]


# ----- aimv2_lit: the full Aimv2Model (vision tower with head, text tower, projections) -----

def raw_tensors(path):
    """name -> (dtype, shape, raw little-endian bytes) of one safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    hlen = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + hlen].decode())
    header.pop("__metadata__", None)
    base = 8 + hlen
    return {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
            for k, v in header.items()}


def nested_config_report(config_json, sub, cls, base_cls, full, given):
    """What save_pretrained wrote for one nested config: which keys, which were left out."""
    written = config_json[sub]
    defaults = cls().to_dict()
    base_defaults = base_cls().to_dict()
    base = set(base_defaults)
    own = sorted(k for k in defaults if k not in base)  # the class's own fields (+ model_type)
    for k, v in given.items():  # every value we set is recoverable (written, or the class default)
        assert written.get(k, defaults.get(k)) == v, (sub, k, written.get(k), v)
    assert not set(written) - set(full), (sub, sorted(set(written) - set(full)))
    assert all(written[k] == full[k] for k in written), sub
    omitted = sorted(set(full) - set(written))
    assert all(k in defaults and defaults[k] == full[k] for k in omitted), sub
    return {
        "own_fields_all_written": all(k in written for k in own),
        "own_fields_written_although_equal_to_the_class_default": sorted(
            k for k in own if k in written and k != "model_type" and written[k] == defaults[k]),
        "own_fields_class_defaults": {k: defaults[k] for k in own},
        "keys_written": sorted(written),
        "keys_omitted": omitted,
        "keys_omitted_are": "generic %s attributes, each equal to %s's default (and to "
                            "the base default)" % (base_cls.__name__, cls.__name__)
                            if all(k in base and base_defaults[k] == full[k] for k in omitted)
                            else "see keys_omitted",
    }


def make_lit_case(torch, transformers, out_root, sdpa_calls, shimmed, refs, torch_version):
    t = transformers
    case = LIT_CASE
    out_dir = os.path.join(out_root, case)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    cfg = t.Aimv2Config(vision_config=dict(LIT_VISION), text_config=dict(LIT_TEXT),
                        projection_dim=LIT_PROJECTION_DIM)
    # Aimv2Config.__init__ builds its sub-configs after PretrainedConfig.__init__ has consumed
    # attn_implementation=, so set it afterwards (the setter recurses into the sub-configs).
    cfg._attn_implementation = "eager"
    model = t.Aimv2Model(cfg)
    assert model.config._attn_implementation == "eager"
    assert model.vision_model.config._attn_implementation == "eager"
    assert model.text_model.config._attn_implementation == "eager"
    assert model.config.vision_config._attn_implementation == "eager"
    assert model.config.text_config._attn_implementation == "eager"
    rules = randomize(model, torch)
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    assert sorted(os.listdir(out_dir)) == ["config.json", "model.safetensors"], os.listdir(out_dir)
    with open(os.path.join(out_dir, "config.json")) as f:
        config_text = f.read()
    config_json = json.loads(config_text)
    assert config_json["model_type"] == "aimv2", config_json["model_type"]
    assert config_json["architectures"] == ["Aimv2Model"], config_json["architectures"]
    assert config_json["projection_dim"] == LIT_PROJECTION_DIM
    nested = {
        "vision_config": nested_config_report(
            config_json, "vision_config", t.Aimv2VisionConfig, t.PretrainedConfig,
            model.config.vision_config.to_dict(), LIT_VISION),
        "text_config": nested_config_report(
            config_json, "text_config", t.Aimv2TextConfig, t.PretrainedConfig,
            model.config.text_config.to_dict(), LIT_TEXT)}
    assert nested["vision_config"]["own_fields_all_written"]
    assert nested["text_config"]["own_fields_all_written"]

    m, info = t.Aimv2Model.from_pretrained(out_dir, attn_implementation="eager",
                                           output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert type(m).__name__ == "Aimv2Model"
    assert type(m.vision_model).__name__ == "Aimv2VisionModel" and m.vision_model.use_head
    assert m.config.vision_config._attn_implementation == "eager"
    assert m.config.text_config._attn_implementation == "eager"
    for k, v in LIT_VISION.items():
        assert getattr(m.config.vision_config, k) == v, k
    for k, v in LIT_TEXT.items():
        assert getattr(m.config.text_config, k) == v, k
    assert m.config.projection_dim == LIT_PROJECTION_DIM
    saved, got = model.state_dict(), m.state_dict()
    assert sorted(saved) == sorted(got)
    for k, v in saved.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), k
    m.eval()

    # The vision tower's tensors, byte for byte, are aimv2_head's checkpoint under vision_model.
    lit_raw = raw_tensors(os.path.join(out_dir, "model.safetensors"))
    head_raw = raw_tensors(os.path.join(out_root, LIT_HEAD_CASE, "model.safetensors"))
    assert sorted(lit_raw) == sorted(saved)
    vis = {k[len(VISION_PREFIX):]: v for k, v in lit_raw.items() if k.startswith(VISION_PREFIX)}
    assert sorted(vis) == sorted(head_raw), (sorted(vis), sorted(head_raw))
    for k in vis:
        assert vis[k] == head_raw[k], k
    prefixes = {}
    for k in sorted(lit_raw):
        prefixes[k.split(".")[0]] = prefixes.get(k.split(".")[0], 0) + 1

    h, w = LIT_HW
    x = pixel_values(torch, LIT_INPUT_SEED, h, w)
    L, D = LIT_VISION["num_hidden_layers"], LIT_VISION["hidden_size"]
    P = LIT_PROJECTION_DIM
    T = (h // LIT_VISION["patch_size"]) * (w // LIT_VISION["patch_size"])
    n_sdpa = len(sdpa_calls)
    o = m.vision_model(pixel_values=x, output_hidden_states=True, return_dict=True)
    assert len(sdpa_calls) - n_sdpa == 1, len(sdpa_calls) - n_sdpa
    hs = torch.stack(o.hidden_states)
    assert tuple(hs.shape) == (L + 1, 2, T, D), hs.shape
    assert tuple(o.last_hidden_state.shape) == (2, T, D)
    assert tuple(o.pooler_output.shape) == (2, D)
    n_sdpa = len(sdpa_calls)
    emb = m.get_image_features(pixel_values=x)
    assert len(sdpa_calls) - n_sdpa == 1
    assert tuple(emb.shape) == (2, P), emb.shape
    W = m.visual_projection.weight
    assert m.visual_projection.bias is None and tuple(W.shape) == (P, D)

    checks = {"safetensors_keys_equal_state_dict_keys": True,
              "hf_from_pretrained_missing_unexpected_mismatched": [[], [], []],
              "reloaded_tensors_equal_saved": True,
              "vision_model_tensors_bytes_equal_%s_checkpoint" % LIT_HEAD_CASE: True,
              "vision_model_key_set_equals_%s_key_set" % LIT_HEAD_CASE: True}
    checks["hidden_states_first_is_embeddings_output"] = bool(
        torch.equal(hs[0], m.vision_model.embeddings(x)))
    checks["last_hidden_state_is_final_rms_norm_of_hidden_states_last"] = bool(
        torch.equal(m.vision_model.rms_norm(o.hidden_states[-1]), o.last_hidden_state))
    checks["pooler_output_is_head_of_last_hidden_state"] = bool(
        torch.equal(m.vision_model.head(o.last_hidden_state), o.pooler_output))
    checks["get_image_features_is_visual_projection_of_pooler_output"] = bool(
        torch.equal(m.visual_projection(o.pooler_output), emb))
    checks["get_image_features_vs_pooler_output_matmul_weight_T_max_abs"] = float(
        (o.pooler_output @ W.t() - emb).abs().max())
    norms = emb.norm(dim=-1)
    checks["get_image_features_l2_norms"] = [float(v) for v in norms]
    assert all(abs(float(v) - 1.0) > 1e-3 for v in norms), norms  # not normalised
    # Aimv2Model.forward (unlike get_image_features) L2-normalises image_embeds.
    g = torch.Generator().manual_seed(LIT_TEXT_IDS_SEED)
    ids = torch.randint(0, LIT_TEXT["vocab_size"] - 1, (2, LIT_TEXT["max_position_embeddings"]),
                        generator=g)
    ids[0, 5] = LIT_TEXT["eos_token_id"]
    ids[1, 7] = LIT_TEXT["eos_token_id"]
    full = m(input_ids=ids, pixel_values=x)
    nrm = torch.pow(torch.sum(torch.pow(emb, 2), dim=-1, keepdim=True), 0.5)
    checks["forward_image_embeds_is_get_image_features_divided_by_l2_norm"] = bool(
        torch.equal(full.image_embeds, emb / nrm))
    checks["forward_vision_model_output_pooler_output_equals_vision_model_pooler_output"] = bool(
        torch.equal(full.vision_model_output.pooler_output, o.pooler_output))
    checks["forward_with_text_input_ids_runs"] = {
        "input_ids": ids.tolist(), "logits_per_image_shape": list(full.logits_per_image.shape),
        "text_embeds_shape": list(full.text_embeds.shape)}
    o2 = m.vision_model(pixel_values=x, output_hidden_states=True, return_dict=True)
    checks["repeat_run_bitexact"] = bool(
        torch.equal(o2.last_hidden_state, o.last_hidden_state)
        and torch.equal(torch.stack(o2.hidden_states), hs)
        and torch.equal(o2.pooler_output, o.pooler_output)
        and torch.equal(m.get_image_features(pixel_values=x), emb))
    oi = model.vision_model(pixel_values=x, output_hidden_states=True, return_dict=True)
    checks["reloaded_vs_in_memory_outputs_bitexact"] = bool(
        torch.equal(oi.last_hidden_state, o.last_hidden_state)
        and torch.equal(torch.stack(oi.hidden_states), hs)
        and torch.equal(oi.pooler_output, o.pooler_output)
        and torch.equal(model.get_image_features(pixel_values=x), emb))
    for k, v in checks.items():
        assert v is True or k in ("hf_from_pretrained_missing_unexpected_mismatched",
                                  "get_image_features_vs_pooler_output_matmul_weight_T_max_abs",
                                  "get_image_features_l2_norms",
                                  "forward_with_text_input_ids_runs"), (k, v)

    # Independent float64 NumPy forward of the vision tower + projection.
    sd64 = {k[len(VISION_PREFIX):]: v.double().numpy() for k, v in got.items()
            if k.startswith(VISION_PREFIX)}
    r_last, r_hs, r_pool = independent_forward(sd64, LIT_VISION, x.double().numpy())
    r_emb = r_pool @ got["visual_projection.weight"].double().numpy().T
    diff = {"last_hidden_state": float(np.abs(r_last - o.last_hidden_state.double().numpy()).max()),
            "hidden_states": float(np.abs(r_hs - hs.double().numpy()).max()),
            "pooler_output": float(np.abs(r_pool - o.pooler_output.double().numpy()).max()),
            "image_embeds": float(np.abs(r_emb - emb.double().numpy()).max())}
    assert all(v < 1e-4 for v in diff.values()), diff
    md = copy.deepcopy(m).double()
    od = md.vision_model(pixel_values=x.double(), output_hidden_states=True, return_dict=True)
    ode = md.get_image_features(pixel_values=x.double())
    hf64 = {"last_hidden_state": float((od.last_hidden_state - o.last_hidden_state.double()).abs().max()),
            "hidden_states": float((torch.stack(od.hidden_states) - hs.double()).abs().max()),
            "pooler_output": float((od.pooler_output - o.pooler_output.double()).abs().max()),
            "image_embeds": float((ode - emb.double()).abs().max())}
    checks["independent_reimplementation"] = {
        "what": "%s independent_forward (NumPy float64, no transformers code) on the reloaded "
                "vision_model.* weights (prefix dropped) and pixel_values; image_embeds = "
                "pooler @ visual_projection.weight^T" % GENERATOR,
        "max_abs_diff_vs_float32_reference": diff,
        "hidden_states_per_layer_max_abs_diff": [
            float(np.abs(r_hs[i] - hs[i].double().numpy()).max()) for i in range(L + 1)]}
    checks["hf_float64_run"] = {
        "what": "copy.deepcopy(model).double(): .vision_model(...) and .get_image_features(...) on "
                "pixel_values.double() (Aimv2RMSNorm upcasts to float32 and eager softmax runs in "
                "float32 even then)",
        "max_abs_diff_vs_float32_reference": hf64}

    # Files.
    files = {"config.json": {
        "meaning": "HF config written by Aimv2Model.save_pretrained (Aimv2Config.to_json_file, "
                   "use_diff=True: PretrainedConfig.to_diff_dict)",
        "model_type": "aimv2", "architectures": ["Aimv2Model"],
        "content": config_json,
        "nested_configs": nested,
        "how_nested_configs_are_written": NESTED_CONFIG_NOTE,
    }}
    st = safetensors_info(os.path.join(out_dir, "model.safetensors"), rules)
    st["key_prefixes"] = prefixes
    st["visual_projection"] = {
        "keys": {"visual_projection.weight": [P, D]}, "bias": None,
        "meaning": "nn.Linear(vision hidden_size %d, projection_dim %d, bias=False): "
                   "image_embeds = pooler_output @ visual_projection.weight^T; no "
                   "visual_projection.bias key" % (D, P)}
    st["text_projection"] = {"keys": {"text_projection.weight": list(got["text_projection.weight"].shape)},
                             "bias": None}
    st["logit_scale"] = {"shape": list(got["logit_scale"].shape),
                         "value": float(got["logit_scale"]),
                         "meaning": "0-d F32 tensor (safetensors shape []); used only by "
                                    "Aimv2Model.forward: exp(clamp(logit_scale, 0, log(100)))"}
    files["model.safetensors"] = st
    same = "byte-identical to %s/%%s (asserted)" % LIT_HEAD_CASE
    px = npy(out_dir, "pixel_values", x)
    files["pixel_values.npy"] = {
        "shape": list(px.shape), "dtype": "float32", "max_abs": float(np.abs(px).max()),
        "meaning": "model input (already-normalised NCHW float32): torch.randn(2, 3, %d, %d, "
                   "generator=torch.Generator().manual_seed(%d)) + linspace(-0.5, 0.5, %d) along W; "
                   % (h, w, LIT_INPUT_SEED, w) + same % "pixel_values.npy"}
    lhs = npy(out_dir, "last_hidden_state", o.last_hidden_state)
    files["last_hidden_state.npy"] = {
        "shape": list(lhs.shape), "dtype": "float32", "max_abs": float(np.abs(lhs).max()),
        "meaning": "model.vision_model(...).last_hidden_state: final RMSNorm ('vision_model."
                   "rms_norm', eps 1e-5) of the last encoder layer's output; [B, T, D], T = "
                   "(H//14)*(W//14) patch tokens, no CLS; " + same % "last_hidden_state.npy",
        "fp32_vs_fp64_max_abs_diff": diff["last_hidden_state"],
        "tolerance": tolerance(diff["last_hidden_state"], float(np.abs(lhs).max()))}
    hsa = npy(out_dir, "hidden_states", hs)
    files["hidden_states.npy"] = {
        "shape": list(hsa.shape), "dtype": "float32", "max_abs": float(np.abs(hsa).max()),
        "meaning": "torch.stack(model.vision_model(...).hidden_states): [L+1, B, T, D]; [0] = "
                   "embeddings output (RMSNorm(patch conv) + learned position embedding), [i] = "
                   "output of encoder layer i; [L] is BEFORE the final RMSNorm; "
                   + same % "hidden_states.npy",
        "fp32_vs_fp64_max_abs_diff": diff["hidden_states"],
        "tolerance": tolerance(diff["hidden_states"], float(np.abs(hsa).max())),
        "per_layer_max_abs": [float(np.abs(hsa[i]).max()) for i in range(L + 1)]}
    po = npy(out_dir, "pooler_output", o.pooler_output)
    files["pooler_output.npy"] = {
        "shape": list(po.shape), "dtype": "float32", "max_abs": float(np.abs(po).max()),
        "meaning": "model.vision_model(...).pooler_output = Aimv2AttentionPoolingHead"
                   "(last_hidden_state) (vision_model.head.*: query = head.cls_token, k/v = "
                   "head.k_proj/head.v_proj (no bias), 3 heads, softmax(q k^T / sqrt(16)) v, "
                   "head.output_proj with bias); [B, D]; " + same % "pooler_output.npy",
        "fp32_vs_fp64_max_abs_diff": diff["pooler_output"],
        "tolerance": tolerance(diff["pooler_output"], float(np.abs(po).max()))}
    ie = npy(out_dir, "image_embeds", emb)
    files["image_embeds.npy"] = {
        "shape": list(ie.shape), "dtype": "float32", "max_abs": float(np.abs(ie).max()),
        "meaning": GET_IMAGE_FEATURES_NOTE,
        "l2_norms": checks["get_image_features_l2_norms"],
        "fp32_vs_fp64_max_abs_diff": diff["image_embeds"],
        "tolerance": tolerance(diff["image_embeds"], float(np.abs(ie).max()))}
    for f in ("pixel_values.npy", "last_hidden_state.npy", "hidden_states.npy", "pooler_output.npy"):
        a = open(os.path.join(out_dir, f), "rb").read()
        assert a == open(os.path.join(out_root, LIT_HEAD_CASE, f), "rb").read(), f

    notes = list(ARCHITECTURE_NOTES) + [
        "Aimv2Model = vision_model (Aimv2VisionModel, use_head=True: exactly aimv2_head's model "
        "and weights under the 'vision_model.' prefix) + text_model (Aimv2TextModel) + "
        "visual_projection + text_projection (Linear, bias=False) + logit_scale; a vision encoder "
        "reads vision_model.* (and visual_projection.weight for image_embeds) and ignores "
        "text_model.*, text_projection.weight and logit_scale",
        "text tower (not referenced here beyond the forward_with_text_input_ids_runs check): "
        "token + learned position embedding, the same pre-RMSNorm SwiGLU layers, final "
        "text_model.rms_norm, pooled at the first eos_token_id position",
    ]
    index = {
        "model_name": case,
        "variant": "public",
        "generator": GENERATOR,
        "hf_model_class": "Aimv2Model",
        "hf_config_class": "Aimv2Config",
        "model_type": "aimv2",
        "vision_model_type": "aimv2_vision_model",
        "transformers": refs["transformers-v4.57.6"],
        "huggingface_hub": refs["huggingface_hub-v0.36.2"],
        "torch_version": torch_version,
        "numpy_version": np.__version__,
        "torch2_import_shims": shimmed + [SDPA_SHIM],
        "attn_implementation": "eager",
        "seed": SEED,
        "weights": "every state_dict tensor from torch.Generator().manual_seed(%d * 2**32 + "
                   "zlib.crc32(seed_name)) (see files/model.safetensors/tensors/*/init), seed_name "
                   "= the key with a leading 'vision_model.' dropped: the vision tower's tensors "
                   "are seeded by their key in %s's checkpoint, so vision_model.<k> is "
                   "byte-identical to %s's <k> (asserted); text_model.*, visual_projection.weight, "
                   "text_projection.weight and logit_scale are seeded by their own key"
                   % (SEED, LIT_HEAD_CASE, LIT_HEAD_CASE),
        "config_overrides": {"vision_config": dict(LIT_VISION), "text_config": dict(LIT_TEXT),
                             "projection_dim": LIT_PROJECTION_DIM},
        "config_source": CONFIG_SOURCE + ". aimv2_lit: Aimv2Model as the converter writes "
                         "apple/aimv2-large-patch14-224-lit (Aimv2Config: vision_config with "
                         "use_head=True, text_config, projection_dim; published projection_dim "
                         "768); here the vision_config is aimv2_head's and the text tower is as "
                         "small as Aimv2TextConfig allows in practice (hidden 32 = 2 heads of 16, "
                         "1 layer, intermediate 64, vocab 64 with eos_token_id 63, 8 positions), "
                         "projection_dim 24",
        "input": {"batch": 2, "channels": 3, "height": h, "width": w, "seed": LIT_INPUT_SEED,
                  "same_as": LIT_HEAD_CASE},
        "forward_call": "out = model.vision_model(pixel_values=pixel_values, "
                        "output_hidden_states=True, return_dict=True); image_embeds = "
                        "model.get_image_features(pixel_values=pixel_values)  [torch.no_grad, "
                        "eval, float32, eager, 1 thread; model = Aimv2Model.from_pretrained("
                        "folder, attn_implementation='eager')]",
        "get_image_features": GET_IMAGE_FEATURES_NOTE,
        "sequence_layout": SEQUENCE_LAYOUT[False],
        "notes": notes,
        "checks": checks,
        "files": files,
        "tolerance_note": "atol suggestions are 50x the float32-vs-float64 discrepancy "
                          "(independent NumPy float64 forward vs transformers' float32 "
                          "output; ceil to one significant digit, floored at "
                          "1e-5*max(1,max_abs)); compare with |a-b| <= atol + rtol*|b|.",
    }
    pe.write_json(os.path.join(out_dir, "index.json"), index)
    return out_dir


GET_IMAGE_FEATURES_NOTE = (
    "Aimv2Model.get_image_features(pixel_values) (transformers v4.57.6) = "
    "visual_projection(vision_model(pixel_values).pooler_output): the attention-pooling head's "
    "output times visual_projection.weight^T ([projection_dim, vision hidden] = [24, 48], NO "
    "bias), [B, projection_dim]; NOT L2-normalised (get_image_features returns the raw "
    "projection; only Aimv2Model.forward divides image_embeds by their L2 norm before the "
    "logits; both asserted bit-exact)")

NESTED_CONFIG_NOTE = (
    "Nested configs are NOT a diff against Aimv2VisionConfig/Aimv2TextConfig's defaults for "
    "their own fields: v4.57.6's PretrainedConfig.to_diff_dict runs each nested config through "
    "recursive_diff_dict(value, PretrainedConfig().to_dict(), config_obj), which keeps every key "
    "that is not a base PretrainedConfig attribute (so every Aimv2*Config field: hidden_size, "
    "use_head, is_native, patch_size, rms_norm_eps, ... is written even when equal to the class "
    "default, e.g. use_head true, patch_size 14) and drops base PretrainedConfig attributes "
    "(return_dict, id2label, bos/pad token ids, ...) whose value equals the nested class's default; "
    "model_type is always written. The top level likewise writes projection_dim, "
    "logit_scale_init_value and max_logit_scale (not base attributes). Older releases differ "
    "(published/clip_model, v4.47.1, wrote nested configs as a diff), so a reader must still "
    "fill a missing field from the class default: Aimv2VisionConfig's use_head default is TRUE, "
    "is_native False, image_size 224, patch_size 14, hidden 1024, 24 layers, 8 heads, "
    "intermediate 2816, rms_norm_eps 1e-5, qkv_bias/mlp_bias False, hidden_act silu "
    "(own_fields_class_defaults below)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=pe.FIXTURES, help="tests/data/encoders")
    args = ap.parse_args()
    torch, transformers, refs, shimmed = mpd.import_transformers()
    sdpa_calls = install_sdpa_shim(torch)
    torch.set_num_threads(1)
    torch_version = "%s (Debian python3-torch %s, CPU, float32, 1 thread)" % (
        torch.__version__, debian_torch())
    shared = {}
    for case, changes, input_seed, (h, w) in CASES:
        with torch.no_grad():
            out_dir, cfg_dict, checks, files, x = make_case(
                torch, transformers, args.out, case, changes, input_seed, (h, w), sdpa_calls, shared)
        overrides = dict(cfg_dict)  # every value passed to Aimv2VisionConfig
        notes = list(ARCHITECTURE_NOTES)
        if case == "aimv2_head":
            notes.append("same trunk weights (bit-identical tensors of the same names) and same "
                         "pixel_values as aimv2: last_hidden_state.npy and hidden_states.npy equal "
                         "aimv2's; in apple/aimv2-large-patch14-224-lit this head lives in "
                         "Aimv2Model under vision_model.head.* (its pooler_output feeds "
                         "visual_projection)")
        if case == "aimv2_native":
            notes.append("no embeddings.position_embedding key; image_size only sizes the unused "
                         "non-persistent position_ids buffer; same trunk tensors as aimv2")
        shims = shimmed + ([SDPA_SHIM] if cfg_dict["use_head"] else [])
        pe.write_json(os.path.join(out_dir, "index.json"), {
            "model_name": case,
            "variant": "public",
            "generator": GENERATOR,
            "hf_model_class": "Aimv2VisionModel",
            "hf_config_class": "Aimv2VisionConfig",
            "model_type": "aimv2_vision_model",
            "transformers": refs["transformers-v4.57.6"],
            "huggingface_hub": refs["huggingface_hub-v0.36.2"],
            "torch_version": torch_version,
            "numpy_version": np.__version__,
            "torch2_import_shims": shims,
            "attn_implementation": "eager",
            "seed": SEED,
            "weights": "every state_dict tensor from torch.Generator().manual_seed(%d * 2**32 + "
                       "zlib.crc32(name)) (see files/model.safetensors/tensors/*/init); tensors "
                       "of the same name are identical in aimv2, aimv2_head and aimv2_native" % SEED,
            "config_overrides": overrides,
            "config_source": CONFIG_SOURCE,
            "input": {"batch": 2, "channels": 3, "height": h, "width": w, "seed": input_seed},
            "forward_call": "model(pixel_values=pixel_values, output_hidden_states=True, "
                            "return_dict=True)  [torch.no_grad, eval, float32, eager, 1 thread; "
                            "model = Aimv2VisionModel.from_pretrained(folder, "
                            "attn_implementation='eager')]",
            "sequence_layout": SEQUENCE_LAYOUT[cfg_dict["is_native"]],
            "notes": notes,
            "checks": checks,
            "files": files,
            "tolerance_note": "atol suggestions are 50x the float32-vs-float64 discrepancy "
                              "(independent NumPy float64 forward vs transformers' float32 "
                              "output; ceil to one significant digit, floored at "
                              "1e-5*max(1,max_abs)); compare with |a-b| <= atol + rtol*|b|.",
        })
        print("wrote", out_dir, sorted(os.listdir(out_dir)))
    a = os.path.join(args.out, "aimv2")
    b = os.path.join(args.out, "aimv2_head")
    for f in ("pixel_values.npy", "last_hidden_state.npy", "hidden_states.npy"):
        assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f
    with torch.no_grad():  # after aimv2_head: its files are compared byte for byte
        out_dir = make_lit_case(torch, transformers, args.out, sdpa_calls, shimmed, refs,
                                torch_version)
    print("wrote", out_dir, sorted(os.listdir(out_dir)))


if __name__ == "__main__":
    main()
