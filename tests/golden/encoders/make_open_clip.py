#!/usr/bin/python3
"""Golden values for the open_clip/timm layout (BiomedCLIP) and CLIP's projection, made by the
publishers' own code:

  open_clip v2.30.0     mlfoundations/open_clip           commit 1bf5d6a2703d465a4e8d9ffcd12a12daadd254ad
  timm v1.0.14          huggingface/pytorch-image-models  commit 5d535d7a2d4b435b1b5c1177fd8f04a12b942b9a
  transformers v4.47.1  huggingface/transformers          commit 241c04d36867259cdf11dbb4e9d9a60f9cb65ebc
  huggingface_hub v0.27.1                                 commit 80edbb2b6ae3b0766d870278276393c015eb6979
on Debian's python3-torch 1.13 and python3-torchvision (open_clip v2.30.0 and timm v1.0.14 are
releases of the same months as the transformers releases of the fixtures, and run on torch 1.13
unchanged: timm falls back to its non-fused attention there).

1. open_clip_vit/: a tiny random checkpoint in the layout BiomedCLIP ships (open_clip_config.json
   + open_clip_model.safetensors): open_clip's CustomTextCLIP whose vision tower is open_clip's
   TimmModel around a timm VisionTransformer (`visual.trunk.*`, timm_model_name
   vit_base_patch16_224 shrunk with timm_model_kwargs, class-token pooling kept because
   timm_pool "" leaves the trunk's default, open_clip's `visual.head.proj` Linear without bias),
   plus a tiny text tower (`text.*`) and `logit_scale`, which a vision-only loader must ignore.
   Built with `open_clip.create_model` from the model config below, saved with open_clip's own
   `push_to_hf_hub.save_for_hf(..., safe_serialization=True)` (the writer of open_clip_config.json
   and open_clip_model.safetensors on the Hub; no tokenizer files: the text tower is never used).
   The vision weights are set from a seeded generator (non-trivial biases and LayerNorm affines,
   the same values as this script's earlier versions); the text tower keeps open_clip's own
   initialisation (torch seed 20261123).
   Reference outputs come from open_clip's own forward in eval mode, float32, one thread:
     projected          = model.encode_image(pixel_values)                (open_clip)
     pooled             = output of model.visual.trunk (timm forward: forward_features + the
                          'token' head pooling), the input of open_clip's head
     last_hidden_state  = output of trunk.norm (timm's final LayerNorm, all tokens)
     hidden_states      = (L+1)xNxTxD: entry 0 the output of trunk.norm_pre (embeddings after
                          pos_embed), entry i the output of trunk.blocks[i-1]
   (forward hooks on those timm modules), with pixel_values.npy the seeded input.
   timm_model_kwargs: open_clip forwards vision_cfg.timm_model_kwargs to timm.create_model only
   from commit 7937a337e4afaa6ba12accb37c1905484a17bd6b (main, 2026-05-13, after v3.3.0; that
   code needs torch >= 2.6). open_clip v2.30.0's CLIPVisionCfg does not know the key, so this
   script takes it out of the config handed to v2.30.0 and adds it to the kwargs of the
   timm.create_model call made by open_clip's TimmModel, which is what that commit does
   (`timm_kwargs.update(model_kwargs)`). The saved open_clip_config.json holds the key (and
   img_size, without which open_clip/timm would build the trunk for 224 px). The saved checkpoint
   is reloaded with open_clip's load_checkpoint into a model built from the saved config and must
   give bit-identical outputs.
2. clip_projection_*.npy: transformers' CLIPVisionModelWithProjection (v4.47.1): the
   clip_vision fixture (tests/data/encoders/clip_vision) with architectures
   [CLIPVisionModelWithProjection], projection_dim 12 and a seeded visual_projection.weight
   (clip_projection_weight.npy), loaded with from_pretrained (no missing/unexpected keys) and
   run on the fixture's pixel_values; clip_projection_image_embeds.npy = image_embeds
   (clip_projection.json records the library, tag and commit).

How to run (vendor trees and stubs: publisher_env.py beside this file, which pins the tags and
commits above and puts VENDOR/open_clip-v2.30.0/src, VENDOR/timm-v1.0.14,
VENDOR/transformers-v4.47.1/src and VENDOR/huggingface_hub-v0.27.1/src first on sys.path):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup open_clip=<bare git dir> \
      timm=<bare git dir> transformers=<bare git dir> huggingface_hub=<bare git dir>   # once
  /usr/bin/python3 tests/golden/encoders/make_open_clip.py [--fixtures tests/data/encoders]
      [--out tests/golden/encoders]
"""
import argparse
import contextlib
import copy
import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # keep __pycache__ out of the golden folder

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env as pe  # noqa: E402

TREES = ["open_clip-v2.30.0", "timm-v1.0.14", "transformers-v4.47.1", "huggingface_hub-v0.27.1"]
D, DEPTH, HEADS, PATCH, IMAGE, MLP_RATIO, EMBED = 32, 2, 2, 8, 32, 2.0, 16
NAME = "radprobe-tiny-biomedclip-vit"
MODEL_CFG = {
    "embed_dim": EMBED,
    "custom_text": True,  # CustomTextCLIP: towers under visual.* and text.*, as BiomedCLIP
    "vision_cfg": {
        "timm_model_name": "vit_base_patch16_224",
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "linear",
        "image_size": IMAGE,
        "timm_model_kwargs": {"embed_dim": D, "depth": DEPTH, "num_heads": HEADS,
                              "patch_size": PATCH, "mlp_ratio": MLP_RATIO, "img_size": IMAGE},
    },
    "text_cfg": {"context_length": 8, "vocab_size": 32, "width": 16, "heads": 2, "layers": 1},
}


def make_state(g, torch):
    """The seeded vision weights (and the draws that used to make stand-in text weights, kept so
    that the generator stream, hence pixel_values and the projection weight, stays the same)."""
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
    torch.randn(11, 8, generator=g)  # formerly stand-in text weights; the text tower is open_clip's now
    torch.randn(12, 8, generator=g)
    return sd


@contextlib.contextmanager
def timm_model_kwargs(timm, kwargs):
    """open_clip main (7937a337): TimmModel does timm_kwargs.update(model_kwargs) before
    timm.create_model(...). v2.30.0's TimmModel calls the same timm.create_model without them."""
    real = timm.create_model

    def create_model(model_name, **kw):
        kw.update(kwargs)
        return real(model_name, **kw)

    timm.create_model = create_model
    try:
        yield
    finally:
        timm.create_model = real


def build(open_clip, timm, model_cfg, tmp):
    """open_clip.create_model for model_cfg (registered under NAME), random init."""
    cfg = copy.deepcopy(model_cfg)
    kwargs = cfg["vision_cfg"].pop("timm_model_kwargs")
    cfg_dir = tempfile.mkdtemp(dir=tmp)
    with open(os.path.join(cfg_dir, NAME + ".json"), "w") as f:
        json.dump(cfg, f)
    open_clip.add_model_config(cfg_dir)
    with timm_model_kwargs(timm, kwargs):
        model = open_clip.create_model(NAME, pretrained=None, precision="fp32", device="cpu")
    return model.eval()


def run(model, px, torch):
    trunk = model.visual.trunk
    seen = {}

    def keep(key):
        return lambda module, inputs, output: seen.__setitem__(key, output.detach().clone())

    handles = [trunk.norm_pre.register_forward_hook(keep("embeddings")),
               trunk.norm.register_forward_hook(keep("last")),
               trunk.register_forward_hook(keep("pooled"))]
    handles += [blk.register_forward_hook(keep(i)) for i, blk in enumerate(trunk.blocks)]
    try:
        with torch.no_grad():
            projected = model.encode_image(px)
    finally:
        for h in handles:
            h.remove()
    states = torch.stack([seen["embeddings"]] + [seen[i] for i in range(len(trunk.blocks))])
    return {"last_hidden_state": seen["last"], "hidden_states": states, "pooled": seen["pooled"],
            "projected": projected}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=pe.FIXTURES, help="tests/data/encoders")
    ap.add_argument("--out", default=HERE, help="tests/golden/encoders")
    args = ap.parse_args()
    refs = pe.activate(TREES)
    import open_clip
    import timm
    import torch
    import transformers
    from open_clip.push_to_hf_hub import save_for_hf
    pe.check_imported(TREES)
    st_io = pe.st_io()  # the reference safetensors reader/writer (the stubs use it too)

    torch.set_num_threads(1)
    out_dir = os.path.join(args.out, "open_clip_vit")
    tmp = tempfile.mkdtemp(prefix="radprobe_open_clip_")
    try:
        g = torch.Generator().manual_seed(20261123)
        visual = make_state(g, torch)
        px = torch.randn(2, 3, IMAGE, IMAGE, generator=g)
        w = torch.randn(12, 48, generator=g) * 0.2  # clip_vision's hidden size is 48 (checked below)

        # 1. open_clip / timm.
        torch.manual_seed(20261123)  # open_clip's own init of the text tower and logit_scale
        model = build(open_clip, timm, MODEL_CFG, tmp)
        assert type(model).__name__ == "CustomTextCLIP", type(model)
        assert type(model.visual).__name__ == "TimmModel", type(model.visual)
        assert type(model.visual.trunk).__name__ == "VisionTransformer", type(model.visual.trunk)
        state = model.state_dict()
        model_visual = {k: v for k, v in state.items() if k.startswith("visual.")}
        assert sorted(model_visual) == sorted(visual), sorted(set(model_visual) ^ set(visual))
        for k, v in visual.items():
            assert tuple(model_visual[k].shape) == tuple(v.shape), (k, model_visual[k].shape, v.shape)
        state.update(visual)
        model.load_state_dict(state, strict=True)
        ref = run(model, px, torch)

        shutil.rmtree(out_dir, ignore_errors=True)

        class NoTokenizer:  # save_for_hf also saves the tokenizer; nothing to save here
            def save_pretrained(self, directory):
                pass

        save_for_hf(model, NoTokenizer(), MODEL_CFG, out_dir, safe_serialization=True)
        assert sorted(os.listdir(out_dir)) == ["open_clip_config.json",
                                               "open_clip_model.safetensors"], os.listdir(out_dir)
        # Reload the way open_clip does: architecture from the saved config, then load_checkpoint.
        saved_cfg = json.load(open(os.path.join(out_dir, "open_clip_config.json")))
        assert saved_cfg["model_cfg"] == MODEL_CFG
        reloaded = build(open_clip, timm, saved_cfg["model_cfg"], tmp)
        incompatible = open_clip.load_checkpoint(
            reloaded, os.path.join(out_dir, "open_clip_model.safetensors"), strict=True)
        assert not incompatible.missing_keys and not incompatible.unexpected_keys, incompatible
        again = run(reloaded, px, torch)
        reload_diff = max(float((again[k] - ref[k]).abs().max()) for k in ref)
        assert reload_diff == 0.0, reload_diff
        written, _ = st_io.read_safetensors(os.path.join(out_dir, "open_clip_model.safetensors"))
        assert sorted(written) == sorted(model.state_dict()), sorted(written)
        for k, v in visual.items():
            assert np.array_equal(written[k], v.numpy()), k

        np.save(os.path.join(out_dir, "pixel_values.npy"), px.numpy().astype("<f4"))
        for k, v in ref.items():
            np.save(os.path.join(out_dir, k + ".npy"), v.numpy().astype("<f4"))
        text_keys = sorted(k for k in written if not k.startswith("visual."))
        pe.write_json(os.path.join(out_dir, "index.json"), {
            "generator": "tests/golden/encoders/make_open_clip.py",
            "reference": {"open_clip": refs["open_clip-v2.30.0"], "timm": refs["timm-v1.0.14"],
                          "transformers": refs["transformers-v4.47.1"],
                          "huggingface_hub": refs["huggingface_hub-v0.27.1"],
                          **pe.torch_description()},
            "model_classes": {"model": "open_clip.model.CustomTextCLIP",
                              "visual": "open_clip.timm_model.TimmModel",
                              "visual.trunk": "timm.models.vision_transformer.VisionTransformer"},
            "saved_with": "open_clip.push_to_hf_hub.save_for_hf(model, tokenizer=<none>, "
                          "model_config=model_cfg, safe_serialization=True)",
            "timm_model_kwargs": "forwarded to timm.create_model as open_clip commit "
                                 "7937a337e4afaa6ba12accb37c1905484a17bd6b does (v2.30.0 does "
                                 "not read the key)",
            "reload_check_max_abs": reload_diff,
            "non_visual_keys": text_keys,
            "files": {
                "pixel_values.npy": "input, float32 NxCxHxW (already normalised)",
                "last_hidden_state.npy": "output of visual.trunk.norm, NxTxD, T = 1 + (H/p)*(W/p): "
                                         "[CLS, patches row-major]",
                "hidden_states.npy": "(L+1)xNxTxD: 0 = output of visual.trunk.norm_pre (patch "
                                     "embeddings + pos_embed), i = output of visual.trunk.blocks[i-1]",
                "pooled.npy": "output of visual.trunk (class token of last_hidden_state), NxD",
                "projected.npy": "model.encode_image(pixel_values), NxE (not normalised)",
            },
        })

        # 2. transformers CLIPVisionModelWithProjection.
        fix = os.path.join(args.fixtures, "clip_vision")
        config = json.load(open(os.path.join(fix, "config.json")))
        assert config["hidden_size"] == w.shape[1], config["hidden_size"]
        config["architectures"] = ["CLIPVisionModelWithProjection"]
        config["projection_dim"] = w.shape[0]
        proj_dir = tempfile.mkdtemp(dir=tmp)
        with open(os.path.join(proj_dir, "config.json"), "w") as f:
            json.dump(config, f)
        tensors, meta = st_io.read_safetensors(os.path.join(fix, "model.safetensors"))
        tensors["visual_projection.weight"] = w.numpy()
        st_io.write_safetensors(os.path.join(proj_dir, "model.safetensors"), tensors,
                                metadata=meta or {"format": "pt"})
        clip, info = transformers.CLIPVisionModelWithProjection.from_pretrained(
            proj_dir, attn_implementation="eager", output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        clip.eval()
        with torch.no_grad():
            o = clip(pixel_values=torch.from_numpy(np.load(os.path.join(fix, "pixel_values.npy"))))
        native = float(np.abs(o.last_hidden_state.numpy()
                              - np.load(os.path.join(fix, "last_hidden_state.npy"))).max())
        assert native < 1e-5, native
        np.save(os.path.join(args.out, "clip_projection_weight.npy"), w.numpy().astype("<f4"))
        np.save(os.path.join(args.out, "clip_projection_image_embeds.npy"),
                o.image_embeds.numpy().astype("<f4"))
        pe.write_json(os.path.join(args.out, "clip_projection.json"), {
            "generator": "tests/golden/encoders/make_open_clip.py",
            "reference": dict(refs["transformers-v4.47.1"],
                              huggingface_hub=refs["huggingface_hub-v0.27.1"]["version"],
                              **pe.torch_description()),
            "model": "transformers.CLIPVisionModelWithProjection.from_pretrained(<clip_vision "
                     "fixture + architectures [CLIPVisionModelWithProjection], projection_dim %d, "
                     "visual_projection.weight = clip_projection_weight.npy>, "
                     "attn_implementation='eager')" % w.shape[0],
            "call": "model(pixel_values=<fixture pixel_values.npy>).image_embeds",
            "native_check_max_abs": native,
            "files": {"clip_projection_weight.npy": "visual_projection.weight, float32 PxD",
                      "clip_projection_image_embeds.npy": "image_embeds, float32 NxP"}})
        print("wrote", out_dir, "and clip_projection_*.npy (clip_vision native check %.3g)" % native)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
