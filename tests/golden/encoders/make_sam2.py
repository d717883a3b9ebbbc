#!/usr/bin/python3
"""Parity fixtures for SAM2's image encoder (Sam2VisionModel, model_type "sam2_vision_model": the
Hiera trunk "sam2_hiera_det_model" + the FPN neck), made by transformers' own code:

  transformers v4.57.6     huggingface/transformers     commit 753d61104116eefc8ffc977327b441ee0c8d599f
  huggingface_hub v0.36.2  huggingface/huggingface_hub  commit 664c484e261175deeb80c2aa3b525457a1f6fa5c
on Debian's python3-torch 1.13 (CPU, float32, one thread, eager attention). SAM2 first appears in
transformers v4.56.0 ("Add Segment Anything 2 (SAM2) (#32317)", commit
68a13cd4a65d0624a5b87827c6e0709a882613f0); v4.57.6 is the release the DINOv3 and AIMv2 fixtures
were made with.

Cases, each written to tests/data/encoders/<case>/ (config.json + model.safetensors from
save_pretrained, the .npy references, index.json describing every file):

  sam2_vision      Sam2VisionModel from a tiny config shaped like facebook/sam2-hiera-tiny's image
                   encoder as transformers' converter builds it (see CONFIG_SOURCE), input
                   2x3x128x128. Files: pixel_values, last_hidden_state (NHWC), hidden_states_{j}
                   (transformers' outputs.hidden_states: j = 0 the embeddings output, j = b+1 the
                   output of trunk block b; NHWC), intermediate_hidden_states_{i} (the output of
                   trunk stage i, NHWC: what the neck reads), fpn_hidden_states_{l} and
                   fpn_position_encoding_{l} (NCHW, level 0 = highest resolution). Subfolder
                   input_96x128/: the same model on a 1x3x96x128 input (the position embedding is
                   resized to the input's grid; no folder of its own: it reads ../model.safetensors).
  sam2_full        Sam2Model (model_type "sam2", Sam2Config: vision_encoder.* + prompt_encoder.* +
                   mask_decoder.* + shared_image_embedding + no_memory_embedding), what
                   transformers' convert_sam2_to_hf.py writes; vision_config == sam2_vision's and
                   every vision_encoder.<k> byte-identical to sam2_vision's <k> (asserted); same
                   input; references from model.vision_encoder(...) (byte-identical to
                   sam2_vision's files, asserted) plus image_embeddings_{l} =
                   model.get_image_embeddings(pixel_values) (the mask decoder's conv_s0/conv_s1 on
                   FPN levels 0/1, + no_memory_embedding on level 2; NCHW).
  sam2_video_full  Sam2VideoModel (model_type "sam2_video", Sam2VideoConfig): the layout the Hub's
                   transformers checkpoints facebook/sam2-hiera-* and facebook/sam2.1-hiera-* carry
                   (written by convert_sam2_video_to_hf.py: the sam2_full keys plus memory_attention.*,
                   memory_encoder.*, memory_temporal_positional_encoding, no_memory_positional_encoding,
                   no_object_pointer, mask_downsample.*, object_pointer_proj.*,
                   temporal_positional_encoding_projection_layer.*,
                   occlusion_spatial_embedding_parameter). Same vision tensors and references as
                   sam2_full; the folder is also loaded with Sam2Model.from_pretrained (which is
                   what AutoModelForMaskGeneration does for model_type sam2_video) and the keys it
                   ignores are recorded (108, silently: _keys_to_ignore_on_load_unexpected). The
                   memory modules are never run; they are shrunk (VIDEO below), which makes this
                   checkpoint 589 KB (sam2_vision 341 KB, sam2_full 408 KB).
File names: hidden_states_{j} follow transformers' outputs.hidden_states (one per block, not per
stage); the stage outputs are intermediate_hidden_states_{i} (Sam2HieraDetModel's name).

CONFIG_SOURCE below: the tiny trunk keeps the published settings (patch conv 7x7 stride 4 pad 3,
query stride 2x2 at the first block of stages 2-4 (num_query_pool_stages 3), dims and heads
doubling per stage, head_dim constant, mlp_ratio 4, exact GELU, LayerNorm eps 1e-6, window of stage
1 = 8 (the size of pos_embed_window), windows that need padding in stages 3 and 4 (the published
14 at 64x64 and 7 at 32x32; here 6 at 8x8 and 3 at 4x4), one global-attention block inside stage
3, background position embedding 7x7 resized bicubically, FPN: 1x1 lateral convs, top-down
levels [2, 3], 3 output levels) and scales down hidden 96 -> 6, stages [1,2,7,2] -> [1,2,3,2],
image 1024 -> 128, fpn_hidden_size 256 -> 16.

Weights: every state_dict tensor from torch.Generator().manual_seed(SEED * 2**32 +
crc32(seed_name(name))), seed_name = the name with a leading "vision_encoder." dropped (so the
full models' vision tensors are sam2_vision's): conv/linear weights N(0,1)/sqrt(fan_in) (fan_in =
prod(shape[1:])); biases 0.1*N(0,1); LayerNorm weights 1+0.2*N(0,1); pos_embed, pos_embed_window,
embeddings/tokens and the full models' other free parameters 0.5*N(0,1); the prompt encoder's
random-Fourier matrix shared_image_embedding.positional_embedding N(0,1) (transformers' own init:
scale * randn, scale 1); a tensor that shares storage with one already set (the tied
prompt_encoder.shared_embedding.positional_embedding) is left to follow it.
Inputs: torch.randn(N, 3, H, W, generator=manual_seed(seed)) plus a horizontal ramp
linspace(-0.5, 0.5, W).

Each case: cls(config) randomized, save_pretrained(safe_serialization=True), reloaded with
from_pretrained(attn_implementation="eager") (no missing/unexpected/mismatched keys, every tensor
equal to the saved one), run under torch.no_grad in eval mode as
model(pixel_values=x, output_hidden_states=True, return_dict=True) (the full models:
model.vision_encoder(...)). Checked besides: every output against an independent float64 NumPy
forward written from index.json's description (this file's `independent_forward`; no
transformers code), the HF model itself run in float64, a repeat run and the in-memory model
(bit-exact), the stage outputs against Sam2HieraDetModel's intermediate_hidden_states, and which
other input sizes run (multiples of 32) or raise. The size probes run on a deep copy: transformers'
check_model_inputs restores the blocks' patched forward methods only when the forward returns (or
raises TypeError), so a failing probe would leave capture wrappers on the model.

Shims (transformers >= 4.56 refuses torch < 2.1), exactly those of make_published_dinov3.py, whose
import_transformers() this script calls (as make_aimv2.py does):
  - ../shared/reference/torch2_import_shims.py install_default() (placeholders for torch-2-only
    names read at import time; torch.compiler.is_compiling() -> False is what
    compile_compatible_method_lru_cache on the neck's sine position encoding asks);
  - transformers.utils.import_utils._torch_available set to True after that module's own check,
    _torchvision_available set to False (Debian's torchvision 0.14 lacks NEAREST_EXACT);
  - publisher_env's tokenizers stub given a dist-info (0.22.1).
No SDPA shim: with attn_implementation="eager" no SAM2 module calls
torch.nn.functional.scaled_dot_product_attention (asserted: the name stays undefined on torch 1.13
and the forward passes run). All are listed in index.json (torch2_import_shims). Nothing else in
the forward pass is patched.

How to run (vendor trees and stubs: publisher_env.py beside this file):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup transformers=<bare git dir> \\
      huggingface_hub=<bare git dir>          # once; VENDOR defaults to <checkout>/../vendor
  /usr/bin/python3 tests/golden/encoders/make_sam2.py [--out tests/data/encoders]
Deterministic: a second run rewrites identical bytes.
"""
import argparse
import copy
import json
import math
import os
import shutil
import sys
import zlib

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_aimv2 as ma  # noqa: E402  (npy, tolerance, safetensors_info, raw_tensors, debian_torch,
#                                        drawn, pixel_values, softmax, conv2d)
import make_published_dinov3 as mpd  # noqa: E402  (import_transformers: the v4.57.6 shims)
import publisher_env as pe  # noqa: E402

GENERATOR = "tests/golden/encoders/make_sam2.py"
SEED = 1016  # the float32 fixtures use 1001..1014, make_aimv2.py 1015
INPUT_SEED = 2019
INTERP_SEED, INTERP_HW, INTERP_N = 2020, (96, 128), 1
PROMPT_SEED = 2021
VISION_CASE, FULL_CASE, VIDEO_CASE = "sam2_vision", "sam2_full", "sam2_video_full"
INTERP_DIR = "input_%dx%d" % INTERP_HW
VISION_PREFIX = "vision_encoder."
IMAGE = 128
N = 2

BACKBONE = dict(hidden_size=6, num_attention_heads=1, num_channels=3, image_size=[IMAGE, IMAGE],
                patch_kernel_size=[7, 7], patch_stride=[4, 4], patch_padding=[3, 3],
                query_stride=[2, 2], window_positional_embedding_background_size=[7, 7],
                num_query_pool_stages=3, blocks_per_stage=[1, 2, 3, 2],
                embed_dim_per_stage=[6, 12, 24, 48], num_attention_heads_per_stage=[1, 2, 4, 8],
                window_size_per_stage=[8, 4, 6, 3], global_attention_blocks=[4], mlp_ratio=4.0,
                hidden_act="gelu", layer_norm_eps=1e-6)
NECK = dict(backbone_channel_list=[48, 24, 12, 6],
            backbone_feature_sizes=[[IMAGE // 4, IMAGE // 4], [IMAGE // 8, IMAGE // 8],
                                    [IMAGE // 16, IMAGE // 16]],
            fpn_hidden_size=16, fpn_kernel_size=1, fpn_stride=1, fpn_padding=0,
            fpn_top_down_levels=[2, 3], num_feature_levels=3, hidden_act="gelu",
            layer_norm_eps=1e-6)
PROMPT = dict(hidden_size=16, image_size=IMAGE, patch_size=16, mask_input_channels=16,
              num_point_embeddings=4, hidden_act="gelu", layer_norm_eps=1e-6, scale=1)
DECODER = dict(hidden_size=16, hidden_act="gelu", mlp_dim=32, num_hidden_layers=2,
               num_attention_heads=2, attention_downsample_rate=2, num_multimask_outputs=3,
               iou_head_depth=3, iou_head_hidden_dim=16)
# SAM 2.1 (the converters set both True for sam2.1_*, False for sam2_*).
SAM21 = dict(enable_temporal_pos_encoding_for_object_pointers=True,
             enable_occlusion_spatial_embedding=True)
# Memory modules (never run here: only their keys matter to an image-encoder loader). Kept: the
# layer structure (mask downsampler stride 2 to total stride 16 = 4 layers, channels x4 per layer;
# 2 fuser layers), memory_encoder_output_channels 64 (the memory attention's cross-attention reads
# 64 channels, hard-coded); shrunk: hidden 16, 2 memory-attention layers (published 4), mask
# downsampler kernel 1 / padding 0 (published 3 / 1: its last conv alone would be 256x64x3x3).
VIDEO = dict(num_maskmem=7, image_size=IMAGE, memory_attention_hidden_size=16,
             memory_attention_num_layers=2, memory_attention_num_attention_heads=1,
             memory_attention_downsample_rate=1, memory_attention_feed_forward_hidden_size=32,
             memory_attention_rope_feat_sizes=[IMAGE // 16, IMAGE // 16],
             memory_encoder_hidden_size=16, memory_encoder_output_channels=64,
             mask_downsampler_embed_dim=16, mask_downsampler_kernel_size=1,
             mask_downsampler_stride=2, mask_downsampler_padding=0,
             mask_downsampler_total_stride=16, memory_fuser_num_layers=2,
             memory_fuser_embed_dim=16, memory_fuser_intermediate_dim=64)

CONVERTER_COMMIT = "2ccc6cae21faaf11631efa5fb9054687ae5dc931"
CONFIG_SOURCE = (
    "transformers' converters src/transformers/models/sam2/convert_sam2_to_hf.py and "
    "src/transformers/models/sam2_video/convert_sam2_video_to_hf.py (huggingface/transformers "
    "commit %s, 'v4.57.0 Branch (#41310)', the parent of the v4.57.0 release commit and an "
    "ancestor of v4.57.6; release commits drop convert_*.py), get_config(): hiera_tiny = "
    "Sam2HieraDetConfig() defaults (hidden 96, 1 head, blocks_per_stage [1,2,7,2], "
    "embed_dim_per_stage [96,192,384,768], heads [1,2,4,8], window_size_per_stage [8,4,14,7], "
    "global_attention_blocks [5,7,9], window_positional_embedding_background_size [7,7], "
    "num_query_pool_stages 3, query_stride [2,2], patch 7/4/3, mlp_ratio 4, gelu, eps 1e-6, image "
    "1024) with Sam2VisionConfig() defaults (backbone_channel_list [768,384,192,96], "
    "backbone_feature_sizes [[256,256],[128,128],[64,64]], fpn_hidden_size 256, fpn kernel 1 / "
    "stride 1 / padding 0, fpn_top_down_levels [2,3], num_feature_levels 3); hiera_small: blocks "
    "[1,2,11,2], global [7,10,13]; hiera_base_plus: hidden 112, dims [112,224,448,896], heads "
    "[2,4,8,16], blocks [2,3,16,3], global [12,16,20], background 14x14, channel list "
    "[896,448,224,112]; hiera_large: hidden 144, dims [144,288,576,1152], heads [2,4,8,16], "
    "blocks [2,6,36,4], global [23,33,43], windows [8,4,16,8]; Sam2PromptEncoderConfig() and "
    "Sam2MaskDecoderConfig() defaults (hidden 256, image 1024, patch 16; mlp_dim 2048, 8 heads, "
    "iou_head_hidden_dim 256); enable_temporal_pos_encoding_for_object_pointers and "
    "enable_occlusion_spatial_embedding True for sam2.1_*, False for sam2_*. Kept here: every "
    "trunk/neck setting that shapes the computation (patch 7/4/3, q-pool stride 2 at stages 2-4, "
    "doubling dims and heads with a constant head_dim, stage-1 window 8, padded windows in stages "
    "3 and 4, a global block inside stage 3, background 7x7, mlp_ratio 4, gelu, eps 1e-6, 3 FPN "
    "levels with top-down levels [2,3]); scaled down: hidden 6 (dims [6,12,24,48], heads "
    "[1,2,4,8], head_dim 6), blocks [1,2,3,2], windows [8,4,6,3], global [4], image 128 "
    "(stage grids 32, 16, 8, 4), fpn_hidden_size 16; the full models' prompt encoder / mask "
    "decoder / memory modules shrunk to hidden 16 (SAM 2.1 flags True)" % CONVERTER_COMMIT)


# ----- weights and inputs -----

def seed_name(name):
    return name[len(VISION_PREFIX):] if name.startswith(VISION_PREFIX) else name


LAYER_NORM_SUFFIXES = ("layer_norm.weight", "layer_norm1.weight", "layer_norm2.weight",
                       "layer_norm3.weight", "layer_norm4.weight", "upscale_layer_norm.weight")
HALF_NORMAL = ("pos_embed", "pos_embed_window", "no_memory_embedding", "no_memory_positional_encoding",
               "memory_temporal_positional_encoding", "no_object_pointer",
               "occlusion_spatial_embedding_parameter")


def init_rule(name, shape):
    base = name.split(".")[-1]
    if name.endswith(LAYER_NORM_SUFFIXES) or ("layer_norm" in name and name.endswith(".weight")
                                              and len(shape) == 1):
        return "1+0.2*N(0,1)"
    if name.endswith(".bias"):
        return "0.1*N(0,1)"
    if seed_name(name) in HALF_NORMAL or base in HALF_NORMAL:
        return "0.5*N(0,1)"
    if name.endswith(("embed.weight", "token.weight", "tokens.weight")):
        return "0.5*N(0,1)"  # nn.Embedding tables of the prompt encoder / mask decoder
    if name.endswith("positional_embedding"):
        return "N(0,1)"  # the prompt encoder's random Fourier matrix (scale 1 * randn)
    if name.endswith(".scale") and len(shape) == 1:
        return "1+0.2*N(0,1)"  # memory fuser layer scale
    assert name.endswith(".weight") and len(shape) in (2, 4), (name, shape)
    return "N(0,1)/sqrt(fan_in)"


TIED_COPY = "prompt_encoder.shared_embedding.positional_embedding"


def randomize(model, torch):
    sd = model.state_dict()
    tensors = dict(model.named_parameters())
    tensors.update({k: b for k, b in model.named_buffers() if k in sd})
    assert sorted(tensors) == sorted(sd), sorted(set(sd) ^ set(tensors))
    rules, seen, followers = {}, {}, {}
    # The prompt encoder's copy of the tied Fourier matrix last: save_pretrained keeps
    # shared_image_embedding.positional_embedding, which is then seeded by its own name.
    order = sorted(sd, key=lambda k: (k == TIED_COPY, k))
    with torch.no_grad():
        for name in order:
            p = tensors[name]
            ptr = p.data_ptr()
            if ptr in seen:  # tied: shares storage with a tensor set already
                followers[name] = seen[ptr]
                continue
            g = torch.Generator().manual_seed(SEED * 2 ** 32 + zlib.crc32(seed_name(name).encode()))
            rule = init_rule(name, tuple(p.shape))
            p.copy_(ma.drawn(rule, torch.randn(p.shape, generator=g)))
            rules[name] = rule
            seen[ptr] = name
    for name, leader in followers.items():
        assert torch.equal(tensors[name], tensors[leader]), name
        rules[name] = "tied to %s (shares its storage)" % leader
    return rules, followers


# ----- independent float64 forward (NumPy only), written from the description in index.json -----

def _ln(x, w, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def bicubic_matrix(n_in, n_out, a=-0.75):
    """[n_out, n_in]: PyTorch's bicubic resize along one axis (align_corners=False, no
    antialias): src = (dst + 0.5) * n_in / n_out - 0.5 (NOT clamped at 0), i0 = floor(src),
    t = src - i0, taps i0-1..i0+2 clamped to [0, n_in-1] with Keys weights (A = -0.75)
    [c2(t+1), c1(t), c1(1-t), c2(2-t)], c1(x) = ((A+2)x - (A+3))x^2 + 1,
    c2(x) = ((Ax - 5A)x + 8A)x - 4A."""
    def c1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    m = np.zeros((n_out, n_in))
    for d in range(n_out):
        src = (d + 0.5) * n_in / n_out - 0.5
        i0 = math.floor(src)
        t = src - i0
        for k, wk in enumerate((c2(t + 1), c1(t), c1(1 - t), c2(2 - t))):
            m[d, min(max(i0 - 1 + k, 0), n_in - 1)] += wk
    return m


def _maxpool2(x):
    """NHWC, kernel 2, stride 2, floor."""
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :2 * h2, :2 * w2].reshape(n, h2, 2, w2, 2, c).max(axis=(2, 4))


def _partition(x, ws):
    n, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    x = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))  # zeros AFTER layer_norm1
    hp, wp = h + ph, w + pw
    x = x.reshape(n, hp // ws, ws, wp // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, c), (hp, wp)


def _unpartition(x, ws, hw_pad, hw):
    hp, wp = hw_pad
    h, w = hw
    n = x.shape[0] // ((hp // ws) * (wp // ws))
    x = x.reshape(n, hp // ws, wp // ws, ws, ws, -1).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, hp, wp, -1)[:, :h, :w]


def block_plan(bb):
    """Per trunk block: (stage, dim, dim_out, heads, window (0 = global), q_pool)."""
    plan, total = [], 0
    for s, nb in enumerate(bb["blocks_per_stage"]):
        for b in range(nb):
            first = s > 0 and b == 0
            dim = bb["embed_dim_per_stage"][s - 1] if first else bb["embed_dim_per_stage"][s]
            win = bb["window_size_per_stage"][s - 1] if first else bb["window_size_per_stage"][s]
            if total in bb["global_attention_blocks"]:
                win = 0
            pool = 0 < s <= bb["num_query_pool_stages"] and b == 0
            plan.append((s, dim, bb["embed_dim_per_stage"][s], bb["num_attention_heads_per_stage"][s],
                         win, pool))
            total += 1
    return plan


def _attention(sd, pre, x, dim_out, heads, pool):
    """x: B' x h x w x dim (a window or the whole map)."""
    bw, h, w, _ = x.shape
    hd = dim_out // heads
    qkv = (x @ sd[pre + "qkv.weight"].T + sd[pre + "qkv.bias"]).reshape(bw, h * w, 3, heads, hd)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if pool:
        q = _maxpool2(q.reshape(bw, h, w, heads * hd))
        h, w = q.shape[1:3]
        q = q.reshape(bw, h * w, heads, hd)
    q, k, v = (a.transpose(0, 2, 1, 3) for a in (q, k, v))
    o = ma.softmax(q @ k.transpose(0, 1, 3, 2) * hd ** -0.5) @ v
    o = o.transpose(0, 2, 1, 3).reshape(bw, h, w, dim_out)
    return o @ sd[pre + "proj.weight"].T + sd[pre + "proj.bias"]


def sine_position_encoding(n, f, h, w, temperature=10000.0):
    """N x 2F' x H x W (F' = f // 2): channels [y part (F'), x part (F')]; within each part
    channel 2i = sin(p / T^(2i/F')), 2i+1 = cos(p / T^(2i/F')), p = y (or x) in 1..H (1..W)
    divided by (H + 1e-6) (W + 1e-6) and times 2*pi."""
    fp = f // 2
    y = np.arange(1, h + 1, dtype=np.float64)[:, None] * np.ones((1, w))
    x = np.ones((h, 1)) * np.arange(1, w + 1, dtype=np.float64)[None, :]
    y = y / (h + 1e-6) * 2 * math.pi
    x = x / (w + 1e-6) * 2 * math.pi
    dim_t = temperature ** (2 * (np.arange(fp) // 2) / fp)

    def enc(p):
        a = p[:, :, None] / dim_t
        out = np.empty_like(a)
        out[:, :, 0::2] = np.sin(a[:, :, 0::2])
        out[:, :, 1::2] = np.cos(a[:, :, 1::2])
        return out
    pos = np.concatenate([enc(y), enc(x)], axis=2).transpose(2, 0, 1)
    return np.broadcast_to(pos[None], (n, f, h, w))


def independent_forward(sd, bb, neck, x):
    """sd: Sam2VisionModel name -> float64 array; x: N x 3 x H x W float64."""
    eps = bb["layer_norm_eps"]
    t = ma.conv2d(x, sd["backbone.patch_embed.projection.weight"],
                  sd["backbone.patch_embed.projection.bias"], bb["patch_stride"][0],
                  bb["patch_padding"][0]).transpose(0, 2, 3, 1)  # NHWC
    n, gh, gw, c = t.shape
    bkg = sd["backbone.pos_embed"][0]  # C x 7 x 7
    my, mx = bicubic_matrix(bkg.shape[1], gh), bicubic_matrix(bkg.shape[2], gw)
    pos = np.einsum("yi,cij,xj->cyx", my, bkg, mx)
    win = sd["backbone.pos_embed_window"][0]
    ws0 = win.shape[1]
    pos = pos + np.tile(win, (1, gh // ws0, gw // ws0))  # raises unless ws0 divides the grid
    t = t + pos.transpose(1, 2, 0)[None]
    hidden = [t]
    stages = []
    plan = block_plan(bb)
    ends = list(np.cumsum(bb["blocks_per_stage"]) - 1)
    for i, (s, dim, dim_out, heads, ws, pool) in enumerate(plan):
        pre = "backbone.blocks.%d." % i
        y = _ln(t, sd[pre + "layer_norm1.weight"], sd[pre + "layer_norm1.bias"], eps)
        res = t
        if dim != dim_out:
            res = y @ sd[pre + "proj.weight"].T + sd[pre + "proj.bias"]
            if pool:
                res = _maxpool2(res)
        if ws > 0:
            h, w = y.shape[1:3]
            y, hw_pad = _partition(y, ws)
        a = _attention(sd, pre + "attn.", y, dim_out, heads, pool)
        if ws > 0:
            if pool:
                ws = ws // 2
                h, w = res.shape[1:3]
                hw_pad = (h + (ws - h % ws) % ws, w + (ws - w % ws) % ws)
            a = _unpartition(a, ws, hw_pad, (h, w))
        t = res + a
        y = _ln(t, sd[pre + "layer_norm2.weight"], sd[pre + "layer_norm2.bias"], eps)
        y = _gelu(y @ sd[pre + "mlp.proj_in.weight"].T + sd[pre + "mlp.proj_in.bias"])
        t = t + (y @ sd[pre + "mlp.proj_out.weight"].T + sd[pre + "mlp.proj_out.bias"])
        hidden.append(t)
        if i in ends:
            stages.append(t)
    # FPN neck, top-down from the lowest resolution.
    L = len(stages) - 1
    outs = [None] * (L + 1)
    prev = None
    for i in range(L, -1, -1):
        j = L - i
        lat = np.einsum("nhwc,oc->nohw", stages[i], sd["neck.convs.%d.weight" % j][:, :, 0, 0]) \
            + sd["neck.convs.%d.bias" % j][None, :, None, None]
        if i in neck["fpn_top_down_levels"] and i != L:
            prev = lat + prev.repeat(2, axis=2).repeat(2, axis=3)  # nearest x2
        else:
            prev = lat
        outs[i] = prev
    k = neck["num_feature_levels"]
    fpn = outs[:k]  # levels 0..k-1 = highest resolution first; the lowest level(s) are dropped
    pe_ = [sine_position_encoding(f.shape[0], f.shape[1], f.shape[2], f.shape[3]) for f in fpn]
    return {"last_hidden_state": t, "hidden_states": hidden, "intermediate_hidden_states": stages,
            "fpn_hidden_states": fpn, "fpn_position_encoding": pe_}


def independent_image_embeddings(sd, fpn):
    """Sam2Model/Sam2VideoModel.get_image_embeddings from the vision encoder's FPN levels."""
    def conv1x1(f, name):
        return np.einsum("nchw,oc->nohw", f, sd[name + ".weight"][:, :, 0, 0]) \
            + sd[name + ".bias"][None, :, None, None]
    return [conv1x1(fpn[0], "mask_decoder.conv_s0"), conv1x1(fpn[1], "mask_decoder.conv_s1"),
            fpn[2] + sd["no_memory_embedding"].reshape(1, -1, 1, 1)]


# ----- running transformers -----

def vision_outputs(torch, vm, x):
    """Runs a Sam2VisionModel; returns (name -> tensor or list of tensors, checks)."""
    o = vm(pixel_values=x, output_hidden_states=True, return_dict=True)
    assert sorted(o.keys()) == ["fpn_hidden_states", "fpn_position_encoding", "hidden_states",
                                "last_hidden_state"], list(o.keys())
    bo = vm.backbone(x, return_dict=True)
    ends = vm.backbone.stage_ends
    checks = {
        "hidden_states_count_is_blocks_plus_one": len(o.hidden_states) == len(vm.backbone.blocks) + 1,
        "hidden_states_first_is_patch_embed_plus_pos_embed": bool(torch.equal(
            o.hidden_states[0], vm.backbone.patch_embed(x)
            + vm.backbone._get_pos_embed(o.hidden_states[0].shape[1:3]))),
        "hidden_states_last_is_last_hidden_state": bool(torch.equal(o.hidden_states[-1],
                                                                    o.last_hidden_state)),
        "intermediate_hidden_states_are_hidden_states_at_stage_ends_plus_one": all(
            torch.equal(bo.intermediate_hidden_states[i], o.hidden_states[e + 1])
            for i, e in enumerate(ends)),
        "backbone_last_hidden_state_equals_vision_model_last_hidden_state": bool(
            torch.equal(bo.last_hidden_state, o.last_hidden_state)),
        "fpn_position_encoding_identical_across_batch": all(
            bool(torch.equal(p[0], p[-1])) for p in o.fpn_position_encoding),
    }
    out = {"last_hidden_state": o.last_hidden_state, "hidden_states": list(o.hidden_states),
           "intermediate_hidden_states": list(bo.intermediate_hidden_states),
           "fpn_hidden_states": list(o.fpn_hidden_states),
           "fpn_position_encoding": list(o.fpn_position_encoding)}
    return out, checks


def same_outputs(torch, a, b):
    for k, v in a.items():
        if isinstance(v, list):
            if len(v) != len(b[k]) or not all(torch.equal(p, q) for p, q in zip(v, b[k])):
                return False
        elif not torch.equal(v, b[k]):
            return False
    return True


def max_diff(ref, got):
    """ref: numpy float64 (or list), got: torch tensor (or list) -> float or list of floats."""
    if isinstance(ref, list):
        return [max_diff(r, g) for r, g in zip(ref, got)]
    return float(np.abs(np.asarray(ref, dtype=np.float64) - got.double().numpy()).max())


def flat_max(v):
    return max(v) if isinstance(v, list) else v


LAYOUTS = {
    "last_hidden_state": "NHWC",
    "hidden_states": "NHWC",
    "intermediate_hidden_states": "NHWC",
    "fpn_hidden_states": "NCHW",
    "fpn_position_encoding": "NCHW",
    "image_embeddings": "NCHW",
}


def meaning(key, j, plan, bb):
    if key == "last_hidden_state":
        return ("outputs.last_hidden_state: the last trunk block's output (stage %d), no final "
                "norm; NHWC [B, H/32, W/32, %d]" % (len(bb["blocks_per_stage"]),
                                                   bb["embed_dim_per_stage"][-1]))
    if key == "hidden_states":
        if j == 0:
            return ("outputs.hidden_states[0]: the embeddings output = patch_embed conv (NHWC) + "
                    "position embedding (bicubic-resized pos_embed + tiled pos_embed_window), the "
                    "input of block 0; NHWC")
        s, dim, dim_out, heads, ws, pool = plan[j - 1]
        return ("outputs.hidden_states[%d]: output of trunk block %d (stage %d, %s%s%s); NHWC"
                % (j, j - 1, s + 1, "global attention" if ws == 0 else "window %d" % ws,
                   ", q-pool 2x2 (window %d before, %d after)" % (ws, ws // 2) if pool and ws else
                   (", q-pool 2x2" if pool else ""),
                   ", dim %d -> %d" % (dim, dim_out) if dim != dim_out else ""))
    if key == "intermediate_hidden_states":
        return ("Sam2HieraDetModel intermediate_hidden_states[%d]: output of trunk stage %d (its "
                "last block), what the neck reads; not a Sam2VisionModel output field (equal to "
                "hidden_states_{stage_end+1}, asserted); NHWC" % (j, j + 1))
    if key == "fpn_hidden_states":
        return ("outputs.fpn_hidden_states[%d]: FPN level %d (stride %d, from trunk stage %d%s); "
                "NCHW" % (j, j, 4 * 2 ** j, j + 1,
                          ", + nearest-x2 top-down from stage %d's lateral" % (j + 2)
                          if j + 1 in NECK["fpn_top_down_levels"] else ", lateral conv only"))
    if key == "fpn_position_encoding":
        return ("outputs.fpn_position_encoding[%d]: sine position encoding of level %d's shape "
                "(depends on H, W and fpn_hidden_size only; identical for every batch entry); "
                "NCHW" % (j, j))
    if key == "image_embeddings":
        return ["get_image_embeddings[0] = mask_decoder.conv_s0(fpn_hidden_states[0]) (1x1 conv "
                "F -> F/8); NCHW",
                "get_image_embeddings[1] = mask_decoder.conv_s1(fpn_hidden_states[1]) (1x1 conv "
                "F -> F/4); NCHW",
                "get_image_embeddings[2] = fpn_hidden_states[2] + no_memory_embedding ([1,1,F], "
                "added per channel); NCHW (the mask decoder's image_embeddings)"][j]
    raise KeyError(key)


def write_outputs(out_dir, outs, refs64, keys, plan, bb, prefix=""):
    files = {}
    for key in keys:
        vals = outs[key] if isinstance(outs[key], list) else [outs[key]]
        refs = refs64[key] if isinstance(refs64[key], list) else [refs64[key]]
        for j, (v, r) in enumerate(zip(vals, refs)):
            name = key if not isinstance(outs[key], list) else "%s_%d" % (key, j)
            a = ma.npy(out_dir, name, v)
            d = float(np.abs(np.asarray(r, dtype=np.float64) - a.astype(np.float64)).max())
            files[prefix + name + ".npy"] = {
                "shape": list(a.shape), "dtype": "float32", "layout": LAYOUTS[key],
                "max_abs": float(np.abs(a).max()), "meaning": meaning(key, j, plan, bb),
                "fp32_vs_fp64_max_abs_diff": d, "tolerance": ma.tolerance(d, float(np.abs(a).max()))}
    return files


def input_file_entry(x, seed, prefix=""):
    n, _, h, w = x.shape
    return {prefix + "pixel_values.npy": {
        "shape": [n, 3, h, w], "dtype": "float32", "layout": "NCHW",
        "max_abs": float(x.abs().max()),
        "meaning": "model input (already-normalised float32): torch.randn(%d, 3, %d, %d, "
                   "generator=torch.Generator().manual_seed(%d)) + linspace(-0.5, 0.5, %d) along W"
                   % (n, h, w, seed, w)}}


def load_checked(cls, folder, saved, torch):
    m, info = cls.from_pretrained(folder, attn_implementation="eager", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    got = m.state_dict()
    assert sorted(got) == sorted(saved)
    for k, v in saved.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), k
    return m.eval()


def assert_eager(model):
    for name, mod in model.named_modules():
        cfg = getattr(mod, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            assert cfg._attn_implementation == "eager", (name, cfg._attn_implementation)


def fp64_checks(torch, vm, x, outs):
    """transformers' own model in float64 (its eager softmax still computes in float32)."""
    md = copy.deepcopy(vm).double()
    od, _ = vision_outputs(torch, md, x.double())
    return {k: flat_max(max_diff([a.double().numpy() for a in v] if isinstance(v, list)
                                 else v.double().numpy(), od[k]))
            for k, v in outs.items()}


def independent_checks(sd64, x, outs):
    r = independent_forward(sd64, BACKBONE, NECK, x.double().numpy())
    diffs = {k: max_diff(r[k], outs[k]) for k in outs}
    assert all(flat_max(v) < 1e-4 for v in diffs.values()), diffs
    return r, diffs


VISION_FILE_KEYS = ["last_hidden_state", "hidden_states", "intermediate_hidden_states",
                    "fpn_hidden_states", "fpn_position_encoding"]
FULL_FILE_KEYS = ["last_hidden_state", "intermediate_hidden_states", "fpn_hidden_states"]


# ----- case 1: Sam2VisionModel -----

def make_vision(torch, t, out_root):
    out_dir = os.path.join(out_root, VISION_CASE)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    cfg = t.Sam2VisionConfig(backbone_config=dict(BACKBONE), **NECK)
    cfg._attn_implementation = "eager"  # the setter recurses into backbone_config
    model = t.Sam2VisionModel(cfg)
    assert_eager(model)
    rules, followers = randomize(model, torch)
    assert not followers
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    assert sorted(os.listdir(out_dir)) == ["config.json", "model.safetensors"], os.listdir(out_dir)
    with open(os.path.join(out_dir, "config.json")) as f:
        config_json = json.load(f)
    assert config_json["model_type"] == "sam2_vision_model"
    assert config_json["architectures"] == ["Sam2VisionModel"]
    assert config_json["backbone_config"]["model_type"] == "sam2_hiera_det_model"
    for k, v in NECK.items():
        assert config_json[k] == v, k
    for k, v in BACKBONE.items():
        assert config_json["backbone_config"][k] == v, k
    saved = model.state_dict()
    m = load_checked(t.Sam2VisionModel, out_dir, saved, torch)
    assert type(m.backbone).__name__ == "Sam2HieraDetModel"
    assert_eager(m)
    plan = block_plan(BACKBONE)
    for blk, (s, dim, dim_out, heads, ws, pool) in zip(m.backbone.blocks, plan):
        assert (blk.dim, blk.dim_out, blk.window_size, bool(blk.query_stride),
                blk.attn.num_attention_heads) == (dim, dim_out, ws, pool, heads)

    x = ma.pixel_values(torch, INPUT_SEED, IMAGE, IMAGE, n=N)
    outs, checks = vision_outputs(torch, m, x)
    assert all(v is True for v in checks.values()), checks
    checks = dict({"safetensors_keys_equal_state_dict_keys": True,
                   "hf_from_pretrained_missing_unexpected_mismatched": [[], [], []],
                   "reloaded_tensors_equal_saved": True,
                   "block_plan_matches_model": True}, **checks)
    assert not hasattr(torch.nn.functional, "scaled_dot_product_attention")
    checks["no_scaled_dot_product_attention_on_this_torch"] = True
    o2, _ = vision_outputs(torch, m, x)
    checks["repeat_run_bitexact"] = same_outputs(torch, outs, o2)
    oi, _ = vision_outputs(torch, model, x)
    checks["reloaded_vs_in_memory_outputs_bitexact"] = same_outputs(torch, outs, oi)
    assert checks["repeat_run_bitexact"] and checks["reloaded_vs_in_memory_outputs_bitexact"]
    sd64 = {k: v.double().numpy() for k, v in m.state_dict().items()}
    r, diffs = independent_checks(sd64, x, outs)
    checks["independent_reimplementation"] = {
        "what": "%s independent_forward: NumPy float64, written from this index's description "
                "(no transformers code), on the reloaded weights and pixel_values" % GENERATOR,
        "max_abs_diff_vs_float32_reference": diffs}
    checks["hf_float64_run"] = {
        "what": "copy.deepcopy(model).double() run by transformers on pixel_values.double() (its "
                "eager softmax still runs in float32)",
        "max_abs_diff_vs_float32_reference": fp64_checks(torch, m, x, outs)}
    pos = m.backbone._get_pos_embed((IMAGE // 4, IMAGE // 4))[0].double().numpy()
    bkg = sd64["backbone.pos_embed"][0]
    ref_pos = np.einsum("yi,cij,xj->cyx", bicubic_matrix(7, IMAGE // 4), bkg,
                        bicubic_matrix(7, IMAGE // 4)) + np.tile(
        sd64["backbone.pos_embed_window"][0], (1, IMAGE // 32, IMAGE // 32))
    checks["position_embedding_vs_independent_bicubic_max_abs"] = float(
        np.abs(pos - ref_pos.transpose(1, 2, 0)).max())
    assert checks["position_embedding_vs_independent_bicubic_max_abs"] < 1e-5

    own = sorted(set(t.Sam2HieraDetConfig().to_dict()) - set(t.PretrainedConfig().to_dict()))
    assert sorted(config_json["backbone_config"]) == sorted(own + ["model_type"]), \
        sorted(config_json["backbone_config"])
    files = {"config.json": {
        "meaning": "HF config written by Sam2VisionModel.save_pretrained: the neck's settings at the "
                   "top level, the trunk's in backbone_config (model_type sam2_hiera_det_model), "
                   "which holds every Sam2HieraDetConfig field (even at its default) and "
                   "model_type, and none of the generic PretrainedConfig attributes (%d keys)"
                   % len(config_json["backbone_config"]),
        "model_type": "sam2_vision_model", "architectures": ["Sam2VisionModel"],
        "content": config_json}}
    files["model.safetensors"] = ma.safetensors_info(os.path.join(out_dir, "model.safetensors"), rules)
    files["model.safetensors"]["original_release_names"] = original_key_map(sorted(saved), "")
    files.update(input_file_entry(x, INPUT_SEED))
    ma.npy(out_dir, "pixel_values", x)
    files.update(write_outputs(out_dir, outs, r, VISION_FILE_KEYS, plan, BACKBONE))

    # Another input size, same model: the position embedding follows the input's grid.
    probes = {}
    # On a copy: check_model_inputs restores the blocks' patched forward methods only when the
    # forward returns (or raises TypeError); a failed probe leaves its capture wrappers behind.
    mp = copy.deepcopy(m)
    for hw in [(64, 64), (160, 128), (96, 128), (112, 112), (100, 128), (136, 128)]:
        xp = ma.pixel_values(torch, INTERP_SEED, *hw, n=1)
        key = "%dx%d" % hw
        try:
            op, _ = vision_outputs(torch, mp, xp)
        except RuntimeError as e:
            probes[key] = "RuntimeError: " + str(e).splitlines()[0]
            continue
        rp = independent_forward(sd64, BACKBONE, NECK, xp.double().numpy())
        d = flat_max([flat_max(max_diff(rp[k], op[k])) for k in op])
        assert d < 1e-4, (key, d)
        probes[key] = ("runs: last_hidden_state %s, fpn_hidden_states %s; independent forward "
                       "agrees to %.1e" % (list(op["last_hidden_state"].shape),
                                           [list(f.shape) for f in op["fpn_hidden_states"]], d))
    assert all(probes[k].startswith("runs") == (k in ("64x64", "160x128", "96x128"))
               for k in probes), probes
    checks["other_input_sizes"] = {
        "rule": "runs iff the patch grid (H/4, W/4 for H, W multiples of 4) is a multiple of "
                "window_size_per_stage[0] = 8 in both directions, i.e. H and W multiples of 32: "
                "pos_embed_window is tiled (H/4)//8 x (W/4)//8 times and added to the resized "
                "background, so any remainder fails that add; config image_size is not read by "
                "the vision model",
        "probes (N=1, seed %d)" % INTERP_SEED: probes}
    sub = os.path.join(out_dir, INTERP_DIR)
    os.makedirs(sub)
    xi = ma.pixel_values(torch, INTERP_SEED, *INTERP_HW, n=INTERP_N)
    oi_, ci = vision_outputs(torch, m, xi)
    assert all(v is True for v in ci.values()), ci
    ri, di = independent_checks(sd64, xi, oi_)
    checks["input_%dx%d" % INTERP_HW] = {
        "independent_reimplementation_max_abs_diff": di,
        "hf_float64_run_max_abs_diff": fp64_checks(torch, m, xi, oi_)}
    ma.npy(sub, "pixel_values", xi)
    files.update(input_file_entry(xi, INTERP_SEED, INTERP_DIR + "/"))
    files.update(write_outputs(sub, oi_, ri, VISION_FILE_KEYS, plan, BACKBONE, INTERP_DIR + "/"))
    return out_dir, config_json, checks, files, x, outs


# ----- cases 2 and 3: Sam2Model and Sam2VideoModel -----

def point_prompt_forward(torch, m, x, shared):
    """The whole Sam2Model with one point prompt per image (outputs not kept as references)."""
    g = torch.Generator().manual_seed(PROMPT_SEED)
    pts = torch.rand(N, 1, 1, 2, generator=g) * IMAGE
    full = m(pixel_values=x, input_points=pts, input_labels=torch.ones(N, 1, 1, dtype=torch.long),
             multimask_output=True)
    res = {"input_points": pts.tolist(), "iou_scores_shape": list(full.iou_scores.shape),
           "pred_masks_shape": list(full.pred_masks.shape)}
    if "point_forward" in shared:
        a = shared["point_forward"]
        res["equal_to_%s" % FULL_CASE] = bool(torch.equal(a.iou_scores, full.iou_scores)
                                               and torch.equal(a.pred_masks, full.pred_masks))
    else:
        shared["point_forward"] = full
    return res


def make_full(torch, t, out_root, case, vision_dir, vision_outs, x, shared):
    video = case == VIDEO_CASE
    out_dir = os.path.join(out_root, case)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    vision_config = dict(NECK, backbone_config=dict(BACKBONE))
    kw = dict(vision_config=vision_config, prompt_encoder_config=dict(PROMPT),
              mask_decoder_config=dict(DECODER), **SAM21)
    if video:
        cfg, cls, mt = t.Sam2VideoConfig(**kw, **VIDEO), t.Sam2VideoModel, "sam2_video"
    else:
        cfg, cls, mt = t.Sam2Config(**kw), t.Sam2Model, "sam2"
    cfg._attn_implementation = "eager"
    model = cls(cfg)
    assert_eager(model)
    assert model.config.mask_decoder_config._attn_implementation == "eager"
    rules, followers = randomize(model, torch)
    assert followers == {TIED_COPY: "shared_image_embedding.positional_embedding"}, followers
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    assert sorted(os.listdir(out_dir)) == ["config.json", "model.safetensors"], os.listdir(out_dir)
    with open(os.path.join(out_dir, "config.json")) as f:
        config_json = json.load(f)
    assert config_json["model_type"] == mt
    assert config_json["vision_config"]["model_type"] == "sam2_vision_model"
    assert config_json["vision_config"]["backbone_config"]["model_type"] == "sam2_hiera_det_model"
    saved = model.state_dict()
    raw = ma.raw_tensors(os.path.join(out_dir, "model.safetensors"))
    # save_pretrained drops the tied duplicate (the prompt encoder's copy); from_pretrained re-ties.
    dropped = sorted(set(saved) - set(raw))
    assert dropped == ["prompt_encoder.shared_embedding.positional_embedding"], dropped
    assert not set(raw) - set(saved)
    m = load_checked(cls, out_dir, saved, torch)
    assert_eager(m)
    assert (m.prompt_encoder.shared_embedding.positional_embedding.data_ptr()
            == m.shared_image_embedding.positional_embedding.data_ptr())

    vis_raw = ma.raw_tensors(os.path.join(vision_dir, "model.safetensors"))
    vis = {k[len(VISION_PREFIX):]: v for k, v in raw.items() if k.startswith(VISION_PREFIX)}
    assert sorted(vis) == sorted(vis_raw)
    for k in vis:
        assert vis[k] == vis_raw[k], k
    prefixes = {}
    for k in sorted(raw):
        p = k.split(".")[0]
        prefixes[p] = prefixes.get(p, 0) + 1

    outs, checks = vision_outputs(torch, m.vision_encoder, x)
    assert all(v is True for v in checks.values()), checks
    assert same_outputs(torch, outs, vision_outputs(torch, m.vision_encoder, x)[0])
    assert same_outputs(torch, outs, vision_outs)
    emb = m.get_image_embeddings(x)
    emb = list(emb)
    assert [list(e.shape) for e in emb] == [
        [N, 16 // 8, IMAGE // 4, IMAGE // 4], [N, 16 // 4, IMAGE // 8, IMAGE // 8],
        [N, 16, IMAGE // 16, IMAGE // 16]], [list(e.shape) for e in emb]
    feats, feat_pos, _, _ = m.get_image_features(x)
    checks2 = {"safetensors_keys_equal_state_dict_keys_less_the_tied_duplicate": True,
               "hf_from_pretrained_missing_unexpected_mismatched": [[], [], []],
               "reloaded_tensors_equal_saved": True,
               "tied_positional_embedding_reloaded_as_one_storage": True,
               "vision_encoder_tensors_bytes_equal_%s_checkpoint" % VISION_CASE: True,
               "vision_encoder_outputs_bitexact_equal_%s" % VISION_CASE: True}
    checks2.update(checks)
    checks2["get_image_features_is_flattened_image_embeddings_before_no_memory_embedding"] = all(
        torch.equal(f.permute(1, 2, 0).reshape(e.shape), e) for f, e in zip(feats[:2], emb[:2])) \
        and bool(torch.equal((feats[2] + m.no_memory_embedding).permute(1, 2, 0).reshape(
            emb[2].shape), emb[2]))
    checks2["get_image_features_position_embeddings_are_fpn_position_encoding_flattened"] = all(
        torch.equal(p.permute(1, 2, 0).reshape(q.shape), q)
        for p, q in zip(feat_pos, outs["fpn_position_encoding"]))
    if not video:  # Sam2VideoModel.forward takes a video inference session instead
        checks2["forward_with_one_point_prompt_runs"] = point_prompt_forward(torch, m, x, shared)
    assert all(v is True for k, v in checks2.items()
               if k not in ("hf_from_pretrained_missing_unexpected_mismatched",
                            "forward_with_one_point_prompt_runs")), checks2
    sd64 = {k[len(VISION_PREFIX):]: v.double().numpy() for k, v in m.state_dict().items()
            if k.startswith(VISION_PREFIX)}
    r, diffs = independent_checks(sd64, x, outs)
    full64 = {k: v.double().numpy() for k, v in m.state_dict().items()}
    r["image_embeddings"] = independent_image_embeddings(full64, r["fpn_hidden_states"])
    diffs["image_embeddings"] = max_diff(r["image_embeddings"], emb)
    assert flat_max(diffs["image_embeddings"]) < 1e-4, diffs
    checks2["independent_reimplementation"] = {
        "what": "%s independent_forward (NumPy float64, no transformers code) on the reloaded "
                "vision_encoder.* weights (prefix dropped) and pixel_values; image_embeddings from "
                "mask_decoder.conv_s0/conv_s1 and no_memory_embedding" % GENERATOR,
        "max_abs_diff_vs_float32_reference": diffs}
    if video:
        # What AutoModelForMaskGeneration does for model_type sam2_video: Sam2Model.from_pretrained.
        s2, info = t.Sam2Model.from_pretrained(out_dir, attn_implementation="eager",
                                               output_loading_info=True)
        s2.eval()
        assert not info["missing_keys"] and not info["mismatched_keys"], info
        s2_sd = s2.state_dict()
        sam2_keys = set(s2_sd)
        ignored = sorted(k for k in raw if k not in sam2_keys)
        for k in sam2_keys & set(raw):
            assert torch.equal(s2_sd[k], saved[k]), k
        o_s2, _ = vision_outputs(torch, s2.vision_encoder, x)
        emb_s2 = s2.get_image_embeddings(x)
        ign_prefixes = {}
        for k in ignored:
            ign_prefixes[k.split(".")[0]] = ign_prefixes.get(k.split(".")[0], 0) + 1
        fwd = point_prompt_forward(torch, s2, x, shared)
        checks2["loaded_by_Sam2Model_from_pretrained"] = {
            "config_class": type(s2.config).__name__, "model_type_read": s2.config.model_type,
            "missing_keys": list(info["missing_keys"]),
            "unexpected_keys_reported": sorted(info["unexpected_keys"]),
            "checkpoint_keys_not_in_Sam2Model": ignored,
            "checkpoint_keys_not_in_Sam2Model_by_prefix": ign_prefixes,
            "Sam2Model_keys_equal_checkpoint_tensors": True,
            "vision_encoder_outputs_bitexact": same_outputs(torch, outs, o_s2),
            "image_embeddings_bitexact": all(torch.equal(a, b) for a, b in zip(emb, emb_s2)),
            "forward_with_one_point_prompt": fwd}
        assert fwd["equal_to_%s" % FULL_CASE] is True, fwd
        assert checks2["loaded_by_Sam2Model_from_pretrained"]["vision_encoder_outputs_bitexact"]
        assert checks2["loaded_by_Sam2Model_from_pretrained"]["image_embeddings_bitexact"]
    nested_bb = config_json["vision_config"]["backbone_config"]
    generic = set(t.PretrainedConfig().to_dict())
    assert generic - {"transformers_version"} <= set(nested_bb), sorted(generic - set(nested_bb))
    files = {"config.json": {
        "meaning": "HF config written by %s.save_pretrained: vision_config (model_type "
                   "sam2_vision_model, its own fields only) and, inside it, backbone_config "
                   "(sam2_hiera_det_model) written IN FULL, %d keys: every Sam2HieraDetConfig field "
                   "plus every generic PretrainedConfig attribute (id2label, return_dict, ...; "
                   "unlike sam2_vision's config.json, where backbone_config is one level down and "
                   "lists only its own fields); prompt_encoder_config, mask_decoder_config "
                   "(model_type '')%s"
                   % (cls.__name__, len(nested_bb),
                      "; the memory settings at the top level" if video else ""),
        "model_type": mt, "architectures": [cls.__name__], "content": config_json}}
    st = ma.safetensors_info(os.path.join(out_dir, "model.safetensors"),
                             {k: v for k, v in rules.items() if k in raw})
    st["key_prefixes"] = prefixes
    st["vision_encoder"] = ("the %d vision_encoder.* tensors are %s's model.safetensors tensors "
                            "(same bytes) under the prefix 'vision_encoder.'"
                            % (prefixes[VISION_PREFIX[:-1]], VISION_CASE))
    st["tied_key_not_saved"] = ("prompt_encoder.shared_embedding.positional_embedding (tied to "
                                "shared_image_embedding.positional_embedding; save_pretrained keeps "
                                "one copy, from_pretrained re-ties it)")
    st["original_release_names"] = original_key_map(sorted(k for k in raw
                                                           if k.startswith(VISION_PREFIX)),
                                                    VISION_PREFIX)
    files["model.safetensors"] = st
    ma.npy(out_dir, "pixel_values", x)
    files.update(input_file_entry(x, INPUT_SEED))
    plan = block_plan(BACKBONE)
    files.update(write_outputs(out_dir, dict(outs, image_embeddings=emb), r,
                               FULL_FILE_KEYS + ["image_embeddings"], plan, BACKBONE))
    for f in ["pixel_values.npy"] + [k for k in files if k.endswith(".npy")
                                     and not k.startswith("image_embeddings")]:
        a = open(os.path.join(out_dir, f), "rb").read()
        assert a == open(os.path.join(vision_dir, f), "rb").read(), f
    checks2["npy_files_bytes_equal_%s" % VISION_CASE] = sorted(
        k for k in files if k.endswith(".npy") and not k.startswith("image_embeddings"))
    return out_dir, config_json, checks2, files, prefixes


# ----- the original release's names (facebookresearch/sam2 checkpoints {'model': state_dict}) -----

ORIGINAL_RULES = [
    ["image_encoder.trunk.patch_embed.proj.{weight,bias}",
     "vision_encoder.backbone.patch_embed.projection.{weight,bias}"],
    ["image_encoder.trunk.pos_embed", "vision_encoder.backbone.pos_embed"],
    ["image_encoder.trunk.pos_embed_window", "vision_encoder.backbone.pos_embed_window"],
    ["image_encoder.trunk.blocks.{b}.norm1.{weight,bias}",
     "vision_encoder.backbone.blocks.{b}.layer_norm1.{weight,bias}"],
    ["image_encoder.trunk.blocks.{b}.attn.qkv.{weight,bias}",
     "vision_encoder.backbone.blocks.{b}.attn.qkv.{weight,bias}"],
    ["image_encoder.trunk.blocks.{b}.attn.proj.{weight,bias}",
     "vision_encoder.backbone.blocks.{b}.attn.proj.{weight,bias}"],
    ["image_encoder.trunk.blocks.{b}.norm2.{weight,bias}",
     "vision_encoder.backbone.blocks.{b}.layer_norm2.{weight,bias}"],
    ["image_encoder.trunk.blocks.{b}.mlp.layers.0.{weight,bias}",
     "vision_encoder.backbone.blocks.{b}.mlp.proj_in.{weight,bias}"],
    ["image_encoder.trunk.blocks.{b}.mlp.layers.1.{weight,bias}",
     "vision_encoder.backbone.blocks.{b}.mlp.proj_out.{weight,bias}"],
    ["image_encoder.trunk.blocks.{b}.proj.{weight,bias}  (first block of stages 2-4 only)",
     "vision_encoder.backbone.blocks.{b}.proj.{weight,bias}"],
    ["image_encoder.neck.convs.{j}.conv.{weight,bias}", "vision_encoder.neck.convs.{j}.{weight,bias}"],
    ["sam_mask_decoder.conv_s0 / conv_s1 / no_mem_embed", "mask_decoder.conv_s0 / "
     "mask_decoder.conv_s1 / no_memory_embedding (used by get_image_embeddings)"],
]


def original_name(hf):
    """The facebookresearch/sam2 checkpoint name of a Sam2VisionModel key (no prefix)."""
    parts = hf.split(".")
    if parts[0] == "neck":
        return "image_encoder.neck.convs.%s.conv.%s" % (parts[2], parts[3])
    assert parts[0] == "backbone", hf
    rest = ".".join(parts[1:])
    rest = rest.replace("patch_embed.projection.", "patch_embed.proj.")
    rest = rest.replace(".layer_norm1.", ".norm1.").replace(".layer_norm2.", ".norm2.")
    rest = rest.replace(".mlp.proj_in.", ".mlp.layers.0.").replace(".mlp.proj_out.", ".mlp.layers.1.")
    return "image_encoder.trunk." + rest


def original_key_map(keys, prefix):
    return {
        "what": "names of the same tensors in the original release's checkpoints "
                "(facebookresearch/sam2 *.pt: torch.save({'model': state_dict}); same shapes and "
                "layouts: Linear [out, in], Conv2d [out, in, kh, kw]), from the key rules of "
                "transformers' convert_sam2_to_hf.py / convert_sam2_video_to_hf.py (commit %s: "
                "'image_encoder.neck' -> 'vision_encoder.neck', 'image_encoder' -> "
                "'vision_encoder.backbone', 'patch_embed.proj' -> 'patch_embed.projection', "
                "'.norm' -> '.layer_norm', 'trunk.' -> '', mlp.layers.0/1 -> mlp.proj_in/proj_out, "
                "neck.convs.N.conv. -> neck.convs.N.)" % CONVERTER_COMMIT,
        "rules": ORIGINAL_RULES,
        "this_checkpoint": {k: original_name(k[len(prefix):]) for k in keys}}


# ----- index.json -----

def architecture_notes():
    bb = BACKBONE
    return [
        "Sam2VisionModel = backbone (Sam2HieraDetModel, keys backbone.*) + neck (Sam2VisionNeck, "
        "keys neck.*); no final norm, no pooler. All trunk activations are NHWC "
        "[B, h, w, C]; the neck's are NCHW.",
        "patch embed: backbone.patch_embed.projection = Conv2d(3, %d, kernel 7, stride 4, padding "
        "3, bias) on NCHW pixels, output permuted to NHWC: grid h = floor((H+6-7)/4)+1 = H/4 for H "
        "a multiple of 4" % bb["hidden_size"],
        "position embedding (added once, after the patch conv, broadcast over the batch): "
        "F.interpolate(backbone.pos_embed [1, C, 7, 7], size=(h, w), mode='bicubic', "
        "align_corners=False, no antialias) + backbone.pos_embed_window [1, C, 8, 8] tiled "
        "(h//8, w//8) times (window j of the grid gets the same 8x8 table), permuted to NHWC. "
        "Bicubic: PyTorch's kernel, A = -0.75, src = (dst+0.5)*in/out-0.5 not clamped at 0, taps "
        "clamped to the border (this file's bicubic_matrix)",
        "blocks (Sam2MultiScaleBlock), stage s (0-based) with dims D_s = embed_dim_per_stage[s], "
        "heads n_s, window W_s = window_size_per_stage[s]. The FIRST block of stage s>0 has dim = "
        "D_{s-1}, dim_out = D_s, window = W_{s-1} (the previous stage's) and q-pool (query_stride "
        "2x2, for 0 < s <= num_query_pool_stages = 3); every other block dim = dim_out = D_s, "
        "window W_s, no pool. A block whose global index is in global_attention_blocks %s has "
        "window 0 = global attention over the whole map. Block plan here (stage, dim, dim_out, "
        "heads, window, q_pool): %s" % (bb["global_attention_blocks"], block_plan(bb)),
        "block forward: r = x; y = layer_norm1(x) (LayerNorm over C, eps %g, weight+bias); if dim "
        "!= dim_out: r = maxpool2x2(proj(y)) (Linear dim->dim_out on the NORMALISED y, then 2x2 "
        "max-pool stride 2, floor, if q-pool); if window > 0: y padded at the bottom/right with "
        "ZEROS to multiples of the window (after the norm, so padded tokens are exactly zero "
        "vectors) and cut into windows [B*nWin, win, win, dim] (window order row-major over the "
        "padded grid, batch outermost); a = attention(y); if q-pool: window' = window // 2 and the "
        "padded size is recomputed for r's (pooled) h, w with window'; a is put back from its "
        "windows (window' per side) and cropped to r's h, w; x = r + a; x = x + "
        "mlp(layer_norm2(x)) (LayerNorm over dim_out, eps %g); no layer scale, no drop path"
        % (bb["layer_norm_eps"], bb["layer_norm_eps"]),
        "attention (Sam2MultiScaleAttention) on a window (or the whole map) t of [b, h, w, dim]: "
        "qkv = Linear(dim, 3*dim_out, bias) -> reshape [b, h*w, 3, heads, hd] (output channels "
        "ordered q | k | v, each split into heads of hd = dim_out/heads contiguous channels); if "
        "q-pool: q -> [b, h, w, dim_out] -> 2x2 max-pool stride 2 (floor) -> [b, h/2*w/2, heads, "
        "hd] (keys and values keep the full window); scores = (q k^T) * hd^-0.5, softmax over keys "
        "in float32, @ v; heads concatenated back to dim_out channels, [b, h', w', dim_out]; "
        "proj = Linear(dim_out, dim_out, bias). NO attention mask: zero-padded tokens of a padded "
        "window take part as keys/values (their k and v are the qkv bias) exactly as in the "
        "original release",
        "mlp (Sam2FeedForward, 2 layers): proj_out(gelu(proj_in(x))), proj_in Linear(D, 4D), "
        "proj_out Linear(4D, D), exact erf GELU",
        "stage outputs (intermediate_hidden_states): the output of each stage's last block "
        "(stage_ends = cumsum(blocks_per_stage) - 1); strides 4, 8, 16, 32; channels "
        "embed_dim_per_stage; last_hidden_state = stage 4's output",
        "neck (Sam2VisionNeck): neck.convs.j = Conv2d(C, F=fpn_hidden_size, 1x1, bias) applied to "
        "stage i = 3 - j (convs.0 reads the LOWEST resolution stage 4, convs.3 stage 1: "
        "backbone_channel_list is %s). Top-down from i = 3 to 0: level 3 = lateral(stage 4); level "
        "i in fpn_top_down_levels %s (i < 3) = lateral(stage i+1) + nearest-x2-upsample(level "
        "i+1) (F.interpolate scale_factor 2, mode nearest: out[y, x] = in[y//2, x//2]); other "
        "levels = lateral only (here levels 0 and 1: NO top-down). Sam2VisionModel returns the "
        "num_feature_levels = 3 highest-resolution levels, highest first: fpn_hidden_states = "
        "(level 0 [B,F,H/4,W/4], level 1 [B,F,H/8,W/8], level 2 [B,F,H/16,W/16]); level 3 "
        "(stride 32) only feeds level 2 and is dropped (the original's scalp=1)"
        % (NECK["backbone_channel_list"], NECK["fpn_top_down_levels"]),
        "fpn_position_encoding[l] (Sam2SinePositionEmbedding, num_pos_feats F/2, normalize, scale "
        "2*pi, temperature 10000) for a level of h x w: y_k = k/(h+1e-6)*2*pi, x_k = "
        "k/(w+1e-6)*2*pi for k = 1..h (1..w); dim_t[i] = 10000^(2*floor(i/2)/(F/2)), i = 0..F/2-1; "
        "channels [0, F/2) from y: channel i = sin(y/dim_t[i]) for even i, cos(y/dim_t[i]) for odd "
        "i; channels [F/2, F) the same from x; NCHW, the same for every batch entry, no weights",
        "Sam2VisionModel(output_hidden_states=True).hidden_states (check_model_inputs hooks on "
        "every Sam2MultiScaleBlock): 1 + number of blocks entries, [0] = the first block's input "
        "(embeddings), [b+1] = block b's output, NHWC; Sam2VisionModel does NOT return "
        "intermediate_hidden_states (Sam2HieraDetModel, its .backbone, does)",
        "inputs whose H, W are multiples of 32 run (pos_embed_window tiling needs the stride-4 "
        "grid to be a multiple of 8); other sizes raise (see checks.other_input_sizes)",
    ]


def base_index(case, refs, torch_version, shimmed, cls, cfg_cls, model_type):
    return {
        "model_name": case,
        "variant": "public",
        "generator": GENERATOR,
        "hf_model_class": cls,
        "hf_config_class": cfg_cls,
        "model_type": model_type,
        "transformers": refs["transformers-v4.57.6"],
        "huggingface_hub": refs["huggingface_hub-v0.36.2"],
        "torch_version": torch_version,
        "numpy_version": np.__version__,
        "torch2_import_shims": shimmed,
        "attn_implementation": "eager",
        "seed": SEED,
        "weights": "every state_dict tensor from torch.Generator().manual_seed(%d * 2**32 + "
                   "zlib.crc32(seed_name)) (see files/model.safetensors/tensors/*/init), seed_name "
                   "= the key with a leading 'vision_encoder.' dropped: tensors of the same "
                   "(seed) name are identical in sam2_vision, sam2_full and sam2_video_full" % SEED,
        "config_source": CONFIG_SOURCE,
    }


TOLERANCE_NOTE = ("atol suggestions are 50x the float32-vs-float64 discrepancy (independent "
                  "NumPy float64 forward vs transformers' float32 output; ceil to one significant "
                  "digit, floored at 1e-5*max(1,max_abs)); compare with |a-b| <= atol + rtol*|b|.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=pe.FIXTURES, help="tests/data/encoders")
    args = ap.parse_args()
    torch, transformers, refs, shimmed = mpd.import_transformers()
    torch.set_num_threads(1)
    torch_version = "%s (Debian python3-torch %s, CPU, float32, 1 thread)" % (
        torch.__version__, ma.debian_torch())
    with torch.no_grad():
        out_dir, config_json, checks, files, x, outs = make_vision(torch, transformers, args.out)
    index = base_index(VISION_CASE, refs, torch_version, shimmed, "Sam2VisionModel",
                       "Sam2VisionConfig", "sam2_vision_model")
    index.update({
        "backbone_model_type": "sam2_hiera_det_model",
        "config_overrides": dict(NECK, backbone_config=dict(BACKBONE)),
        "input": {"batch": N, "channels": 3, "height": IMAGE, "width": IMAGE, "seed": INPUT_SEED},
        "input_%dx%d" % INTERP_HW: {
            "folder": INTERP_DIR, "batch": INTERP_N, "channels": 3, "height": INTERP_HW[0],
            "width": INTERP_HW[1], "seed": INTERP_SEED,
            "what": "the same model (../model.safetensors) on a non-square input of another size: "
                    "pos_embed resized bicubically to the 24x32 grid, pos_embed_window tiled 3x4; "
                    "stage grids 24x32, 12x16, 6x8, 3x4 (stage 3's window 6 pads 6x8 to 6x12, "
                    "stage 4's window 3 pads 3x4 to 3x6)"},
        "forward_call": "model(pixel_values=pixel_values, output_hidden_states=True, "
                        "return_dict=True); intermediate_hidden_states from "
                        "model.backbone(pixel_values).intermediate_hidden_states  [torch.no_grad, "
                        "eval, float32, eager, 1 thread; model = Sam2VisionModel.from_pretrained("
                        "folder, attn_implementation='eager')]",
        "layouts": {"pixel_values": "NCHW", **LAYOUTS},
        "notes": architecture_notes(),
        "checks": checks,
        "files": files,
        "tolerance_note": TOLERANCE_NOTE,
    })
    pe.write_json(os.path.join(out_dir, "index.json"), index)
    print("wrote", out_dir, sorted(os.listdir(out_dir)))
    shared = {}
    for case in (FULL_CASE, VIDEO_CASE):
        with torch.no_grad():
            d, cj, ch, fl, prefixes = make_full(torch, transformers, args.out, case, out_dir, outs,
                                                 x, shared)
        video = case == VIDEO_CASE
        index = base_index(case, refs, torch_version, shimmed,
                           "Sam2VideoModel" if video else "Sam2Model",
                           "Sam2VideoConfig" if video else "Sam2Config",
                           "sam2_video" if video else "sam2")
        overrides = {"vision_config": dict(NECK, backbone_config=dict(BACKBONE)),
                     "prompt_encoder_config": dict(PROMPT), "mask_decoder_config": dict(DECODER)}
        overrides.update(SAM21)
        if video:
            overrides.update(VIDEO)
        index.update({
            "vision_model_type": "sam2_vision_model",
            "backbone_model_type": "sam2_hiera_det_model",
            "config_overrides": overrides,
            "published_as": (
                "the Hub's transformers checkpoints of facebook/sam2-hiera-* and "
                "facebook/sam2.1-hiera-* are tagged sam2_video (model_type sam2_video, "
                "processor_config.json Sam2VideoProcessor; seen on the Hub pages of "
                "facebook/sam2-hiera-tiny, sam2.1-hiera-tiny and sam2.1-hiera-small, not "
                "downloaded here): this layout, written by convert_sam2_video_to_hf.py "
                "(Sam2VideoModel.save_pretrained); Sam2Model / AutoModelForMaskGeneration load "
                "them and ignore the memory keys (see checks.loaded_by_Sam2Model_from_pretrained)"
                if video else
                "what transformers' convert_sam2_to_hf.py writes (Sam2Model.save_pretrained) and "
                "what any Sam2Model.save_pretrained writes (e.g. a fine-tuned model); the Hub's "
                "facebook/sam2*-hiera-* transformers checkpoints are sam2_video (see "
                "sam2_video_full)"),
            "key_prefixes": prefixes,
            "vision_encoder_prefix": VISION_PREFIX,
            "input": {"batch": N, "channels": 3, "height": IMAGE, "width": IMAGE,
                      "seed": INPUT_SEED, "same_as": VISION_CASE},
            "forward_call": "out = model.vision_encoder(pixel_values=pixel_values, "
                            "output_hidden_states=True, return_dict=True); "
                            "intermediate_hidden_states from model.vision_encoder.backbone("
                            "pixel_values); image_embeddings = model.get_image_embeddings("
                            "pixel_values)  [torch.no_grad, eval, float32, eager, 1 thread; model = "
                            "%s.from_pretrained(folder, attn_implementation='eager')]"
                            % ("Sam2VideoModel" if video else "Sam2Model"),
            "files_left_out": "hidden_states_{j}.npy and fpn_position_encoding_{l}.npy: identical "
                              "to %s's (same weights, same input; the position encoding has no "
                              "weights)" % VISION_CASE,
            "layouts": {"pixel_values": "NCHW", **LAYOUTS},
            "notes": architecture_notes() + [
                "%s = vision_encoder (Sam2VisionModel: exactly %s's model and weights under the "
                "'vision_encoder.' prefix) + prompt_encoder + mask_decoder + "
                "shared_image_embedding.positional_embedding (the prompt encoder's Fourier matrix, "
                "a buffer) + no_memory_embedding [1, 1, F]%s; an image encoder reads "
                "vision_encoder.* (and mask_decoder.conv_s0/conv_s1 + no_memory_embedding for "
                "image_embeddings) and ignores the rest"
                % ("Sam2VideoModel" if video else "Sam2Model", VISION_CASE,
                   " + the video memory modules (memory_attention, memory_encoder, "
                   "memory_temporal_positional_encoding, no_memory_positional_encoding, "
                   "no_object_pointer, mask_downsample, object_pointer_proj, "
                   "temporal_positional_encoding_projection_layer, "
                   "occlusion_spatial_embedding_parameter)" if video else ""),
                "config.json: vision_config nests backbone_config; read the trunk settings from "
                "config['vision_config']['backbone_config'] and the neck's from "
                "config['vision_config']"],
            "checks": ch,
            "files": fl,
            "tolerance_note": TOLERANCE_NOTE,
        })
        pe.write_json(os.path.join(d, "index.json"), index)
        print("wrote", d, sorted(os.listdir(d)))


if __name__ == "__main__":
    main()
