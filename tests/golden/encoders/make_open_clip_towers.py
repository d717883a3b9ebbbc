#!/usr/bin/python3
"""Parity fixtures for open_clip checkpoints as the Hub ships them, made by open_clip's own code:

  open_clip v2.30.0     mlfoundations/open_clip           commit 1bf5d6a2703d465a4e8d9ffcd12a12daadd254ad
  timm v1.0.14          huggingface/pytorch-image-models  commit 5d535d7a2d4b435b1b5c1177fd8f04a12b942b9a
  transformers v4.47.1  huggingface/transformers          commit 241c04d36867259cdf11dbb4e9d9a60f9cb65ebc
  huggingface_hub v0.27.1                                 commit 80edbb2b6ae3b0766d870278276393c015eb6979
on Debian's python3-torch 1.13 (CPU, float32, one thread, eval, torch.no_grad). transformers and
huggingface_hub are only imported by open_clip (hf_model, coca_model, push_to_hf_hub).

Every folder is written by open_clip's `push_to_hf_hub.save_for_hf(model, tokenizer=<none>,
model_config, dir, safe_serialization=False)`: open_clip_config.json ({model_cfg, preprocess_cfg})
+ open_clip_pytorch_model.bin (torch.save of model.state_dict(), zip pickle), the layout of
microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 and of the laion/* open_clip repos.
Each is then reloaded the way open_clip does (open_clip.create_model from the saved model_cfg,
then open_clip.load_checkpoint(model, <bin>, strict=True)) and must give bit-identical outputs.
Outputs go to tests/data/encoders/published/<case>/:

  biomedclip_bin          the model of tests/golden/encoders/open_clip_vit (CustomTextCLIP, timm
                          ViT trunk `visual.trunk.*`, `visual.head.proj`; make_open_clip.py):
                          built from that fixture's open_clip_config.json, its weights loaded
                          with open_clip.load_checkpoint from its open_clip_model.safetensors,
                          saved as open_clip_pytorch_model.bin. The reference outputs are
                          recomputed and must equal the safetensors fixture's files bit for bit
                          (same pixel_values.npy).
  open_clip_vit_quickgelu open_clip's CLIP (not custom_text: the text tower's keys are top-level,
                          as in OpenAI-converted checkpoints) with open_clip's own
                          VisionTransformer image tower, ViT-B-32-quickgelu shrunk (image 32,
                          patch 8, width 48, 2 layers, head_width 16 -> 3 heads, embed_dim 12,
                          quick_gelu true; mlp_ratio not written, as in the real config: open_clip's
                          default 4.0 -> MLP width 192).
  open_clip_coca          open_clip's CoCa (model_cfg with multimodal_cfg and custom_text),
                          coca_ViT-B-32 shrunk: the same VisionTransformer sizes with
                          attentional_pool true (4 queries, 3 heads, d_model = embed_dim 12,
                          kdim = vdim = width 48), output_tokens true, quick_gelu false (nn.GELU).

Weights: every floating parameter of the vision tower is drawn from a seeded generator (LayerNorm
weights 1 + 0.1 r, biases 0.1 r, class/positional embeddings and pooler queries 0.2 r, conv1
0.05 r, matrices 0.15 r, proj 0.2 r); everything outside it (text tower, multimodal decoder)
from a second seeded generator (LayerNorm weights 1 + 0.1 r, the rest 0.05 r; CoCa's
text_decoder.text_projection is torch.empty in open_clip, so it must be set), logit_scale kept.
pixel_values (2x3x32x32) come after the vision weights from the first generator.

Reference outputs (forward hooks on open_clip's modules during model.encode_image):
  hidden_states      (L+1)xNxTxD: 0 = output of visual.ln_pre, i = output of
                     visual.transformer.resblocks[i-1] (v2.30.0 runs the stack batch-first, NLD;
                     the script checks and would transpose an LND stack)
  last_hidden_state  output of the last resblock (before ln_post), NxTxD
  post_ln            output of visual.ln_post: CLIP all tokens NxTxD; CoCa the pooler output
                     NxQxE
  pooled             visual._global_pool(post_ln)[0] (pool_type tok: token 0), the input of
                     `@ visual.proj`
  projected          model.encode_image(pixel_values, normalize=False)
  CoCa also: attn_pool (output of visual.attn_pool, NxQxE), tokens (the second output of
  model.visual, post_ln[:, 1:], what CoCa's text decoder attends to) and encode_image_normalized
  (model.encode_image(pixel_values): CoCa's default normalize=True).
A plain functional re-implementation of the tower (spec_forward below: conv without bias, CLS
concat, positional embedding, LayerNorm eps 1e-5, fused in_proj split q,k,v by rows, QuickGELU /
exact GELU, ln_post, proj; CoCa's AttentionalPooler) must agree with open_clip to 1e-5
(recorded as spec_check_max_abs): it documents the computation the C++ loader implements.

How to run (vendor trees and stubs: publisher_env.py beside this file):
  /usr/bin/python3 tests/golden/encoders/make_open_clip_towers.py
      [--golden tests/golden/encoders] [--out tests/data/encoders/published]
"""
import argparse
import copy
import json
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # keep __pycache__ out of the golden folder


def _pin_openblas():
    """Debian's torch and numpy use OpenBLAS, which picks its kernels by CPU when it loads (the
    choice changes results in the last bits, ~1e-6). The files in tests/data/encoders/published/
    were made with OPENBLAS_CORETYPE=Haswell, the setting of the environment they were made in;
    it is used here too when unset (before numpy loads OpenBLAS), on any CPU with AVX2. (The
    committed outputs of make_open_clip.py regenerate byte-identically only with
    OPENBLAS_CORETYPE=SkylakeX; biomedclip_bin copies them, see below.)"""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return
    if re.search(r"\bavx2\b", flags) and re.search(r"\bfma\b", flags):
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_pin_openblas()

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env as pe  # noqa: E402
import make_open_clip as moc  # noqa: E402

TREES = moc.TREES
GENERATOR = "tests/golden/encoders/make_open_clip_towers.py"
WEIGHTS = "open_clip_pytorch_model.bin"
CONFIG = "open_clip_config.json"
IMAGE, PATCH, WIDTH, LAYERS, HEAD_WIDTH, MLP_RATIO, EMBED = 32, 8, 48, 2, 16, 4.0, 12

VIT_QUICKGELU_CFG = {  # ViT-B-32-quickgelu.json shrunk
    "embed_dim": EMBED,
    "quick_gelu": True,
    "vision_cfg": {"image_size": IMAGE, "layers": LAYERS, "width": WIDTH, "head_width": HEAD_WIDTH,
                   "patch_size": PATCH},  # mlp_ratio left to open_clip's default 4.0, as there
    "text_cfg": {"context_length": 8, "vocab_size": 32, "width": 16, "heads": 2, "layers": 1},
}
COCA_CFG = {  # coca_ViT-B-32.json shrunk (multimodal width = text width = embed_dim, as there)
    "embed_dim": EMBED,
    "vision_cfg": {"image_size": IMAGE, "layers": LAYERS, "width": WIDTH, "head_width": HEAD_WIDTH,
                   "patch_size": PATCH, "attentional_pool": True,
                   "attn_pooler_queries": 4, "attn_pooler_heads": 3, "output_tokens": True},
    "text_cfg": {"context_length": 8, "vocab_size": 32, "width": EMBED, "heads": 3, "layers": 1,
                 "embed_cls": True, "output_tokens": True},
    "multimodal_cfg": {"context_length": 8, "vocab_size": 32, "width": EMBED, "heads": 3,
                       "layers": 1, "attn_pooler_heads": 3},
    "custom_text": True,
}
CASES = {  # name -> (registry name, model_cfg, seed, model class, activation class)
    "open_clip_vit_quickgelu": ("radprobe-tiny-open-clip-vit-quickgelu", VIT_QUICKGELU_CFG,
                                20261201, "CLIP", "QuickGELU"),
    "open_clip_coca": ("radprobe-tiny-open-clip-coca", COCA_CFG, 20261202, "CoCa", "GELU"),
}


class NoTokenizer:  # save_for_hf also saves the tokenizer; nothing to save here
    def save_pretrained(self, directory):
        pass


def register_and_create(open_clip, name, model_cfg, tmp):
    """open_clip.create_model for model_cfg registered under name (as make_open_clip.build)."""
    cfg_dir = tempfile.mkdtemp(dir=tmp)
    with open(os.path.join(cfg_dir, name + ".json"), "w") as f:
        json.dump(model_cfg, f)
    open_clip.add_model_config(cfg_dir)
    return open_clip.create_model(name, pretrained=None, precision="fp32", device="cpu").eval()


def layer_norm_names(module, torch, prefix):
    return {prefix + n for n, m in module.named_modules() if isinstance(m, torch.nn.LayerNorm)}


def seed_weights(model, torch, seed):
    """Vision tower from generator(seed); the rest from generator(seed + 1). Returns (state, g)
    with g positioned after the vision weights (pixel_values are drawn from it next)."""
    g = torch.Generator().manual_seed(seed)
    g_other = torch.Generator().manual_seed(seed + 1)
    lns = layer_norm_names(model, torch, "")
    state = model.state_dict()
    for k, v in state.items():
        if not v.is_floating_point() or k == "logit_scale":
            continue
        owner, leaf = k.rsplit(".", 1) if "." in k else ("", k)
        if k.startswith("visual."):
            r = torch.randn(v.shape, generator=g)
            if owner in lns and leaf == "weight":
                state[k] = 1.0 + 0.1 * r
            elif leaf.endswith("bias"):
                state[k] = 0.1 * r
            elif leaf in ("class_embedding", "positional_embedding", "query"):
                state[k] = 0.2 * r
            elif k == "visual.conv1.weight":
                state[k] = 0.05 * r
            elif k == "visual.proj":
                state[k] = 0.2 * r
            else:
                state[k] = 0.15 * r
        else:
            r = torch.randn(v.shape, generator=g_other)
            state[k] = 1.0 + 0.1 * r if (owner in lns and leaf == "weight") else 0.05 * r
    model.load_state_dict(state, strict=True)
    return state, g


def run_vit(model, px, torch):
    """open_clip's forward with hooks on the VisionTransformer's modules."""
    visual = model.visual
    seen = {}

    def keep(key):
        def hook(module, inputs, output):
            seen[key] = (output[0] if isinstance(output, tuple) else output).detach().clone()
        return hook

    mods = [(visual.ln_pre, "ln_pre"), (visual.ln_post, "post_ln")]
    mods += [(blk, i) for i, blk in enumerate(visual.transformer.resblocks)]
    if visual.attn_pool is not None:
        mods.append((visual.attn_pool, "attn_pool"))
    handles = [m.register_forward_hook(keep(k)) for m, k in mods]
    try:
        with torch.no_grad():
            projected = model.encode_image(px, normalize=False)
            full = visual(px)
            default = model.encode_image(px)  # CLIP: normalize=False by default, CoCa: True
    finally:
        for h in handles:
            h.remove()
    nld = visual.transformer.batch_first  # False: the resblocks saw (and returned) LND
    blocks = [seen[i] if nld else seen[i].transpose(0, 1) for i in range(len(visual.transformer.resblocks))]
    with torch.no_grad():
        pooled, tokens = visual._global_pool(seen["post_ln"])
    out = {"hidden_states": torch.stack([seen["ln_pre"]] + blocks), "last_hidden_state": blocks[-1],
           "post_ln": seen["post_ln"], "pooled": pooled, "projected": projected}
    if visual.attn_pool is not None:
        assert visual.output_tokens
        assert torch.equal(full[0], projected) and torch.equal(full[1], tokens)
        assert torch.equal(default, torch.nn.functional.normalize(projected, dim=-1))
        out.update(attn_pool=seen["attn_pool"], tokens=tokens, encode_image_normalized=default)
    else:
        assert torch.equal(full, projected) and torch.equal(default, projected)
    return out


def spec_forward(sd, px, torch, *, patch, heads, quick_gelu, pool_heads=None):
    """The computation written out with functional ops on the checkpoint's visual.* tensors."""
    F = torch.nn.functional
    v = lambda k: sd["visual." + k]  # noqa: E731

    def ln(x, p):
        return F.layer_norm(x, x.shape[-1:], v(p + ".weight"), v(p + ".bias"), eps=1e-5)

    def mha(q, k, val, n_heads):  # q: N x Tq x E, k/val: N x Tk x E (already projected)
        n, tq, e = q.shape
        hd = e // n_heads
        split = lambda t: t.reshape(n, t.shape[1], n_heads, hd).transpose(1, 2)  # noqa: E731
        a = torch.softmax((split(q) * hd ** -0.5) @ split(k).transpose(-1, -2), dim=-1)
        return (a @ split(val)).transpose(1, 2).reshape(n, tq, e)

    x = F.conv2d(px, v("conv1.weight"), bias=None, stride=patch)  # N x D x gh x gw
    n, d = x.shape[:2]
    x = x.flatten(2).transpose(1, 2)  # N x (gh*gw) x D, patches row-major
    x = torch.cat([v("class_embedding").reshape(1, 1, d).expand(n, 1, d), x], dim=1)
    x = x + v("positional_embedding")  # (1 + gh*gw) x D
    x = ln(x, "ln_pre")
    states = [x]
    i = 0
    while "visual.transformer.resblocks.%d.ln_1.weight" % i in sd:
        b = "transformer.resblocks.%d." % i
        h = ln(x, b + "ln_1")
        w, bias = v(b + "attn.in_proj_weight"), v(b + "attn.in_proj_bias")  # rows q | k | v
        q, k, val = (h @ w[j * d:(j + 1) * d].T + bias[j * d:(j + 1) * d] for j in range(3))
        x = x + mha(q, k, val, heads) @ v(b + "attn.out_proj.weight").T + v(b + "attn.out_proj.bias")
        h = ln(x, b + "ln_2") @ v(b + "mlp.c_fc.weight").T + v(b + "mlp.c_fc.bias")
        h = h * torch.sigmoid(1.702 * h) if quick_gelu else F.gelu(h)  # exact (erf) GELU
        x = x + h @ v(b + "mlp.c_proj.weight").T + v(b + "mlp.c_proj.bias")
        states.append(x)
        i += 1
    out = {"hidden_states": torch.stack(states), "last_hidden_state": x}
    if pool_heads is None:
        post = ln(x, "ln_post")  # all tokens
    else:
        p = "attn_pool."
        kv = ln(x, p + "ln_k")  # N x T x width
        query = ln(v(p + "query"), p + "ln_q")  # Q x E
        e = query.shape[1]
        bias = v(p + "attn.in_proj_bias")
        q = (query @ v(p + "attn.q_proj_weight").T + bias[:e]).unsqueeze(0).expand(n, -1, -1)
        k = kv @ v(p + "attn.k_proj_weight").T + bias[e:2 * e]
        val = kv @ v(p + "attn.v_proj_weight").T + bias[2 * e:]
        pooled_q = mha(q, k, val, pool_heads) @ v(p + "attn.out_proj.weight").T + v(p + "attn.out_proj.bias")
        out["attn_pool"] = pooled_q
        post = ln(pooled_q, "ln_post")  # N x Q x E
        out["tokens"] = post[:, 1:]
    out["post_ln"] = post
    out["pooled"] = post[:, 0]
    out["projected"] = out["pooled"] @ v("proj")
    return out


def key_groups(keys):
    groups = {}
    for k in keys:
        top = k.split(".", 1)[0]
        groups[top] = groups.get(top, 0) + 1
    return groups


def reference(refs):
    return {"open_clip": refs["open_clip-v2.30.0"], "timm": refs["timm-v1.0.14"],
            "transformers": refs["transformers-v4.47.1"],
            "huggingface_hub": refs["huggingface_hub-v0.27.1"], **pe.torch_description(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(OpenBLAS's choice)")}


def save_npys(out_dir, px, ref):
    np.save(os.path.join(out_dir, "pixel_values.npy"), px.numpy().astype("<f4"))
    for k, v in ref.items():
        np.save(os.path.join(out_dir, k + ".npy"), v.numpy().astype("<f4"))


def max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def biomedclip_bin(open_clip, timm, torch, golden, out_dir, tmp, refs):
    src = os.path.join(golden, "open_clip_vit")
    saved_cfg = json.load(open(os.path.join(src, CONFIG)))
    assert saved_cfg["model_cfg"] == moc.MODEL_CFG
    model = moc.build(open_clip, timm, saved_cfg["model_cfg"], tmp)
    inc = open_clip.load_checkpoint(model, os.path.join(src, "open_clip_model.safetensors"), strict=True)
    assert not inc.missing_keys and not inc.unexpected_keys, inc
    px = torch.from_numpy(np.load(os.path.join(src, "pixel_values.npy")))
    ref = moc.run(model, px, torch)
    # The safetensors fixture's outputs are the reference (copied below); open_clip's forward
    # here must give them (bit for bit with the pinned OpenBLAS kernels).
    fixture_diff = max(float(np.abs(v.numpy() - np.load(os.path.join(src, k + ".npy"))).max())
                       for k, v in ref.items())
    assert fixture_diff < 1e-5, fixture_diff

    shutil.rmtree(out_dir, ignore_errors=True)
    save_for_hf = sys.modules["open_clip.push_to_hf_hub"].save_for_hf
    save_for_hf(model, NoTokenizer(), saved_cfg["model_cfg"], out_dir, safe_serialization=False)
    assert sorted(os.listdir(out_dir)) == [CONFIG, WEIGHTS], os.listdir(out_dir)
    with open(os.path.join(src, CONFIG), "rb") as a, open(os.path.join(out_dir, CONFIG), "rb") as b:
        assert a.read() == b.read(), "open_clip_config.json differs from the safetensors fixture's"
    reloaded = moc.build(open_clip, timm, saved_cfg["model_cfg"], tmp)
    inc = open_clip.load_checkpoint(reloaded, os.path.join(out_dir, WEIGHTS), strict=True)
    assert not inc.missing_keys and not inc.unexpected_keys, inc
    again = moc.run(reloaded, px, torch)
    reload_diff = max_diff(again, ref)
    assert reload_diff == 0.0, reload_diff
    written = torch.load(os.path.join(out_dir, WEIGHTS), map_location="cpu")
    st, _ = pe.st_io().read_safetensors(os.path.join(src, "open_clip_model.safetensors"))
    assert sorted(written) == sorted(st)
    for k, v in written.items():
        assert np.array_equal(v.numpy(), st[k]), k
    for k in ["pixel_values"] + sorted(ref):
        shutil.copyfile(os.path.join(src, k + ".npy"), os.path.join(out_dir, k + ".npy"))
    src_index = json.load(open(os.path.join(src, "index.json")))
    pe.write_json(os.path.join(out_dir, "index.json"), {
        "generator": GENERATOR,
        "reference": reference(refs),
        "model_classes": src_index["model_classes"],
        "source": "tests/golden/encoders/open_clip_vit (make_open_clip.py): model built from its "
                  "open_clip_config.json, weights from its open_clip_model.safetensors via "
                  "open_clip.load_checkpoint(strict=True)",
        "saved_with": "open_clip.push_to_hf_hub.save_for_hf(model, tokenizer=<none>, "
                      "model_config=model_cfg, safe_serialization=False) -> torch.save(model.state_dict(), "
                      "open_clip_pytorch_model.bin)",
        "reloaded_with": "open_clip.create_model(<saved model_cfg>) + open_clip.load_checkpoint(model, "
                         "open_clip_pytorch_model.bin, strict=True)",
        "timm_model_kwargs": src_index["timm_model_kwargs"],
        "reload_check_max_abs": reload_diff,
        "recompute_vs_fixture_max_abs": fixture_diff,
        "equals_safetensors_fixture": "open_clip_config.json byte-identical, every tensor equal; the "
                                      ".npy files are copies of tests/golden/encoders/open_clip_vit's",
        "key_groups": key_groups(written),
        "outside_vision_tower": sorted(g for g in key_groups(written) if g != "visual"),
        "non_visual_keys": sorted(k for k in written if not k.startswith("visual.")),
        "files": src_index["files"],
    })
    return reload_diff, fixture_diff


def tower_case(open_clip, torch, case, out_dir, tmp, refs):
    name, model_cfg, seed, cls_name, act_name = CASES[case]
    from open_clip.transformer import QuickGELU, VisionTransformer
    model = register_and_create(open_clip, name, copy.deepcopy(model_cfg), tmp)
    assert type(model).__name__ == cls_name, type(model)
    visual = model.visual
    assert isinstance(visual, VisionTransformer), type(visual)
    act = visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == act_name, type(act)
    if act_name == "GELU":
        assert getattr(act, "approximate", "none") == "none"
    else:
        assert isinstance(act, QuickGELU)
    assert len(visual.transformer.resblocks) == LAYERS
    assert visual.transformer.resblocks[0].mlp.c_fc.out_features == int(WIDTH * MLP_RATIO)
    assert visual.transformer.resblocks[0].attn.num_heads == WIDTH // HEAD_WIDTH
    assert all(isinstance(b.ls_1, torch.nn.Identity) and isinstance(b.ls_2, torch.nn.Identity)
               for b in visual.transformer.resblocks)
    assert not visual.final_ln_after_pool and visual.pool_type == "tok"
    assert all(m.eps == 1e-5 for m in visual.modules() if isinstance(m, torch.nn.LayerNorm))

    state, g = seed_weights(model, torch, seed)
    px = torch.randn(2, 3, IMAGE, IMAGE, generator=g)
    ref = run_vit(model, px, torch)

    pool_heads = model_cfg["vision_cfg"].get("attn_pooler_heads") if visual.attn_pool is not None else None
    spec = spec_forward(state, px, torch, patch=PATCH, heads=WIDTH // HEAD_WIDTH,
                        quick_gelu=model_cfg.get("quick_gelu", False), pool_heads=pool_heads)
    spec_diff = max(float((spec[k] - ref[k]).abs().max()) for k in spec)
    assert spec_diff < 1e-5, spec_diff
    # The fixture tells the activations apart: the other one moves the outputs far beyond that.
    other = spec_forward(state, px, torch, patch=PATCH, heads=WIDTH // HEAD_WIDTH,
                         quick_gelu=not model_cfg.get("quick_gelu", False), pool_heads=pool_heads)
    other_act_diff = float((other["projected"] - ref["projected"]).abs().max())
    assert other_act_diff > 1e-3, other_act_diff

    shutil.rmtree(out_dir, ignore_errors=True)
    save_for_hf = sys.modules["open_clip.push_to_hf_hub"].save_for_hf
    save_for_hf(model, NoTokenizer(), model_cfg, out_dir, safe_serialization=False)
    assert sorted(os.listdir(out_dir)) == [CONFIG, WEIGHTS], os.listdir(out_dir)
    saved_cfg = json.load(open(os.path.join(out_dir, CONFIG)))
    assert saved_cfg["model_cfg"] == model_cfg
    reloaded = register_and_create(open_clip, name, copy.deepcopy(saved_cfg["model_cfg"]), tmp)
    inc = open_clip.load_checkpoint(reloaded, os.path.join(out_dir, WEIGHTS), strict=True)
    assert not inc.missing_keys and not inc.unexpected_keys, inc
    again = run_vit(reloaded, px, torch)
    reload_diff = max_diff(again, ref)
    assert reload_diff == 0.0, reload_diff
    written = torch.load(os.path.join(out_dir, WEIGHTS), map_location="cpu")
    assert sorted(written) == sorted(state), sorted(set(written) ^ set(state))
    for k, v in written.items():
        assert torch.equal(v, state[k]), k
    save_npys(out_dir, px, ref)

    T = 1 + (IMAGE // PATCH) ** 2
    files = {
        "pixel_values.npy": "input, float32 NxCxHxW (already normalised)",
        "hidden_states.npy": "(L+1)xNxTxD, T = %d: [CLS, patches row-major]; 0 = output of "
                             "visual.ln_pre (conv1 + class_embedding + positional_embedding, "
                             "then ln_pre), i = output of visual.transformer.resblocks[i-1]" % T,
        "last_hidden_state.npy": "output of the last resblock (before ln_post), NxTxD",
    }
    if visual.attn_pool is None:
        files.update({
            "post_ln.npy": "visual.ln_post applied to all tokens of last_hidden_state, NxTxD",
            "pooled.npy": "post_ln[:, 0] (pool_type tok), NxD: the input of '@ visual.proj'",
            "projected.npy": "model.encode_image(pixel_values) = pooled @ visual.proj, NxE "
                             "(not normalised)",
        })
    else:
        files.update({
            "attn_pool.npy": "output of visual.attn_pool(last_hidden_state), NxQxE",
            "post_ln.npy": "visual.ln_post(attn_pool), NxQxE",
            "pooled.npy": "post_ln[:, 0] (pool_type tok over the pooler's queries), NxE: the "
                          "input of '@ visual.proj'",
            "tokens.npy": "post_ln[:, 1:], Nx(Q-1)xE: the second output of model.visual "
                          "(output_tokens), what CoCa's text decoder attends to",
            "projected.npy": "model.encode_image(pixel_values, normalize=False) = pooled @ "
                             "visual.proj, NxE",
            "encode_image_normalized.npy": "model.encode_image(pixel_values) (CoCa's default "
                                           "normalize=True): projected / ||projected||_2, NxE",
        })
    groups = key_groups(written)
    pe.write_json(os.path.join(out_dir, "index.json"), {
        "generator": GENERATOR,
        "reference": reference(refs),
        "model_classes": {"model": "open_clip.%s.%s" % ("coca_model" if cls_name == "CoCa" else "model",
                                                        cls_name),
                          "visual": "open_clip.transformer.VisionTransformer",
                          "activation": "open_clip.transformer.QuickGELU" if act_name == "QuickGELU"
                          else "torch.nn.GELU (exact, erf)"},
        "model_cfg": model_cfg,
        "seeds": {"visual_and_pixel_values": seed, "non_visual": seed + 1},
        "saved_with": "open_clip.push_to_hf_hub.save_for_hf(model, tokenizer=<none>, "
                      "model_config=model_cfg, safe_serialization=False) -> torch.save(model.state_dict(), "
                      "open_clip_pytorch_model.bin)",
        "reloaded_with": "open_clip.create_model(<saved model_cfg>) + open_clip.load_checkpoint(model, "
                         "open_clip_pytorch_model.bin, strict=True)",
        "reference_call": "model.encode_image(pixel_values, normalize=False) with forward hooks "
                          "[torch.no_grad, eval, float32, one thread; nn.MultiheadAttention may "
                          "take torch's fused inference path]",
        "reload_check_max_abs": reload_diff,
        "spec_check_max_abs": spec_diff,
        "other_activation_projected_max_abs": other_act_diff,
        "key_groups": groups,
        "outside_vision_tower": sorted(g for g in groups if g != "visual"),
        "visual_keys": {k: list(v.shape) for k, v in written.items() if k.startswith("visual.")},
        "non_visual_keys": sorted(k for k in written if not k.startswith("visual.")),
        "files": files,
    })
    return reload_diff, spec_diff


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", default=HERE, help="tests/golden/encoders (holds open_clip_vit/)")
    ap.add_argument("--out", default=os.path.join(pe.FIXTURES, "published"),
                    help="tests/data/encoders/published")
    args = ap.parse_args()
    refs = pe.activate(TREES)
    import open_clip
    import open_clip.push_to_hf_hub  # noqa: F401
    import timm
    import torch
    import transformers  # noqa: F401
    pe.check_imported(TREES)
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="radprobe_open_clip_towers_")
    try:
        d, f = biomedclip_bin(open_clip, timm, torch, args.golden,
                              os.path.join(args.out, "biomedclip_bin"), tmp, refs)
        print("biomedclip_bin: reload %.3g, recomputed vs open_clip_vit %.3g" % (d, f))
        for case in CASES:
            d, s = tower_case(open_clip, torch, case, os.path.join(args.out, case), tmp, refs)
            print("%s: reload %.3g, spec check %.3g" % (case, d, s))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
