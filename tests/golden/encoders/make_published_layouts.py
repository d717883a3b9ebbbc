#!/usr/bin/python3
"""Parity fixtures in the layouts Hugging Face publishes task and full multimodal models in, made
by transformers' own code (issue 16):

  transformers v4.47.1  huggingface/transformers  commit 241c04d36867259cdf11dbb4e9d9a60f9cb65ebc
  huggingface_hub v0.27.1                         commit 80edbb2b6ae3b0766d870278276393c015eb6979
on Debian's python3-torch 1.13 (CPU, float32, one thread, eager attention).

Each case builds the HF task/full model from a tiny config, sets every parameter and floating
buffer from a seeded generator (non-trivial biases and norm affines), saves it with
`save_pretrained` (safetensors through the st_io stub, or `safe_serialization=False`: torch.save's
pytorch_model.bin, for the *_bin cases), reloads it with `from_pretrained` of the same class (no
missing, unexpected or mismatched keys), and runs the BACKBONE the way a user of that backbone
would (the checkpoint keys carry the base-model prefix; heads, decoders and text towers are what
a vision encoder must ignore):

  vit_classifier        ViTForImageClassification   keys vit.* (no pooler) + classifier.*;
                        reference model.vit(pixel_values, output_hidden_states=True)
  vit_classifier_bin    the same model saved as pytorch_model.bin (torch.save zip pickle)
  dinov2_classifier     Dinov2ForImageClassification  dinov2.* + classifier.*; model.dinov2(...)
  vit_mae_pretraining   ViTMAEForPreTraining (mask_ratio 0): vit.* + decoder.*;
                        model.vit(pixel_values, noise=arange(L)) (tokens in natural order)
  clip_model            CLIPModel (model_type clip, nested vision_config/text_config):
                        vision_model.*, visual_projection, text_model.*, text_projection,
                        logit_scale; model.vision_model(...) and get_image_features(...)
  siglip_model          SiglipModel (model_type siglip): vision_model.* (with the MAP head),
                        text_model.*, logit_scale, logit_bias; model.vision_model(...)
  swin_classifier       SwinForImageClassification: swin.* + classifier.*; model.swin(...)
                        (last_hidden_state, pooler_output, per-stage hidden_states_{i})
  resnet_classifier     ResNetForImageClassification: resnet.* + classifier.1.*;
                        model.resnet(...) (last_hidden_state N x C x H x W, pooler_output)

Sharded and reduced-precision checkpoints (save_pretrained's own sharding, index files and
torch_dtype in config.json):

  vit_classifier_bin_sharded  vit_classifier's model (same config, same weight seed: identical
                        float32 weights) saved with safe_serialization=False,
                        max_shard_size=SHARD_BIN: pytorch_model-0000k-of-0000n.bin (torch.save
                        zip pickles, float32) + pytorch_model.bin.index.json; model.vit(...)
  dinov2_bf16_sharded   Dinov2Model (the base model, no prefix, as DINOv3/RAD-DINO are published;
                        hidden 32, 2 layers, 2 heads, patch 7, image 28, layer scale) cast to
                        torch.bfloat16 and saved with safe_serialization=True,
                        max_shard_size=SHARD_BF16: model-0000k-of-0000n.safetensors (BF16) +
                        model.safetensors.index.json, config.json torch_dtype "bfloat16".
                        last_hidden_state/hidden_states/pooler_output: the model reloaded with
                        from_pretrained(torch_dtype=torch.float32) (bf16 weights upcast exactly)
                        on float32 pixel_values; bf16_last_hidden_state: reloaded with
                        torch_dtype=torch.bfloat16, run on pixel_values.to(bfloat16) (bf16 compute
                        on the CPU), upcast to float32; index.json records their max-abs difference
  vit_fp16_bin          vit_classifier's model cast to torch.float16, safe_serialization=False:
                        pytorch_model.bin with float16 tensors, config.json torch_dtype "float16";
                        references from from_pretrained(torch_dtype=torch.float32) (exact upcast)

Every reload must give back each saved tensor exactly (cast to the reload dtype). The new cases'
index.json also lists the dtypes each weight file holds (checkpoint_dtypes).

Outputs per case in tests/data/encoders/published/<case>/: the saved folder (config.json,
model.safetensors or pytorch_model.bin, or shards + index), pixel_values.npy (float32, from
torch.Generator().manual_seed(2000 + the case's fixed seed number in cases())),
last_hidden_state.npy, hidden_states.npy (ViTs: (L+1) x N x T x D) or hidden_states_{i}.npy
(Swin, ResNet), pooler_output.npy where the backbone has one, image_embeds.npy (CLIP), index.json (library,
release, commit, classes, calls, the keys the checkpoint holds outside the backbone).

How to run (vendor trees and stubs: publisher_env.py beside this file):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup transformers=<bare git dir> \
      huggingface_hub=<bare git dir>          # once; VENDOR defaults to <checkout>/../vendor
  /usr/bin/python3 tests/golden/encoders/make_published_layouts.py [--out tests/data/encoders/published]
"""
import argparse
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env as pe  # noqa: E402

TREES = ["transformers-v4.47.1", "huggingface_hub-v0.27.1"]
SHARD_BIN = "40KB"   # vit_classifier_bin_sharded: ~200 KB of float32 weights -> 6 .bin shards
SHARD_BF16 = "20KB"  # dinov2_bf16_sharded: ~45 KB of bfloat16 weights -> 3 safetensors shards
VIT = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
           image_size=32, patch_size=8)


def randomize(model, torch, seed):
    """Every parameter and floating buffer from a seeded generator: norm weights near 1, variances
    positive, everything else small and non-zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.is_floating_point():
                continue
            r = torch.randn(p.shape, generator=g)
            if name.endswith("running_var"):
                p.copy_(1.0 + 0.2 * r.abs())
            elif p.dim() == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(0.15 * r)


def saved_model(cls, config, seed, out_dir, safe=True, dtype=None, max_shard_size=None,
                load_dtype=None):
    """cls(config) with seeded weights (float32, then cast to `dtype` if given), saved to out_dir
    (sharded when max_shard_size is given) and reloaded as its publisher does (in `load_dtype`
    if given: from_pretrained(torch_dtype=...)). Every reloaded tensor must equal the saved one
    cast to the reloaded dtype (bf16/fp16 -> float32 upcasts are exact)."""
    import torch
    model = cls(config)
    randomize(model, torch, seed)
    if dtype is not None:
        model.to(dtype)
    kw = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(out_dir, safe_serialization=safe, **kw)
    kw = {} if load_dtype is None else {"torch_dtype": load_dtype}
    reloaded, info = cls.from_pretrained(out_dir, attn_implementation="eager",
                                         output_loading_info=True, **kw)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    saved, got = model.state_dict(), reloaded.state_dict()
    assert sorted(saved) == sorted(got), (sorted(saved), sorted(got))
    for k, v in saved.items():
        assert torch.equal(got[k], v.to(got[k].dtype)), k
    return reloaded.eval()


def checkpoint_files(out_dir):
    """The weight files save_pretrained wrote (shards in order; index files excluded)."""
    return sorted(f for f in os.listdir(out_dir)
                  if f.endswith((".safetensors", ".bin")))


def checkpoint_dtypes(out_dir):
    """{weight file: sorted dtype tags of its tensors} read back from the files themselves:
    safetensors headers as written, torch.load for .bin (torch dtype names)."""
    import torch
    st_io = pe.st_io()
    out = {}
    for f in checkpoint_files(out_dir):
        path = os.path.join(out_dir, f)
        if f.endswith(".safetensors"):
            _, h = st_io.read_safetensors_header(path)
            out[f] = sorted({v["dtype"] for k, v in h.items() if k != "__metadata__"})
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            out[f] = sorted({str(v.dtype).replace("torch.", "") for v in sd.values()})
    return out


def sharded(out_dir, index_name, at_least):
    """The shard files named by save_pretrained's index (at least `at_least` of them)."""
    with open(os.path.join(out_dir, index_name)) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= at_least and shards == checkpoint_files(out_dir), shards
    return shards


def npy(out_dir, name, t):
    np.save(os.path.join(out_dir, name + ".npy"), t.detach().numpy().astype("<f4"))


def vit_like_outputs(out_dir, o):
    npy(out_dir, "last_hidden_state", o.last_hidden_state)
    npy(out_dir, "hidden_states", __import__("torch").stack(o.hidden_states))
    if getattr(o, "pooler_output", None) is not None:
        npy(out_dir, "pooler_output", o.pooler_output)


def stage_outputs(out_dir, o):
    npy(out_dir, "last_hidden_state", o.last_hidden_state)
    npy(out_dir, "pooler_output", o.pooler_output)
    for i, h in enumerate(o.hidden_states):
        npy(out_dir, "hidden_states_%d" % i, h)


def cases(transformers, torch):
    t = transformers
    px = lambda n, s, g: torch.randn(n, 3, s, s, generator=g)  # noqa: E731

    def vit_classifier(out_dir, g, safe=True, **save):
        m = saved_model(t.ViTForImageClassification, t.ViTConfig(num_labels=3, **VIT), 101,
                        out_dir, safe, **save)
        x = px(2, 32, g)
        vit_like_outputs(out_dir, m.vit(pixel_values=x, output_hidden_states=True))
        return x, "model.vit(pixel_values, output_hidden_states=True)"

    def vit_classifier_bin_sharded(out_dir, g):
        x, call = vit_classifier(out_dir, g, safe=False, max_shard_size=SHARD_BIN)
        shards = sharded(out_dir, "pytorch_model.bin.index.json", 3)
        return x, call, {
            "saved_with": "save_pretrained(safe_serialization=False, max_shard_size=%r): %d "
                          "torch.save shards + pytorch_model.bin.index.json, reloaded with "
                          "ViTForImageClassification.from_pretrained (no missing/unexpected/"
                          "mismatched keys)" % (SHARD_BIN, len(shards)),
            "same_weights_as": "vit_classifier (same config and weight seed)",
            "checkpoint_dtypes": checkpoint_dtypes(out_dir)}

    def vit_fp16_bin(out_dir, g):
        x, call = vit_classifier(out_dir, g, safe=False, dtype=torch.float16,
                                 load_dtype=torch.float32)
        return x, call, {
            "saved_with": "model.to(torch.float16); save_pretrained(safe_serialization=False) "
                          "(config.json torch_dtype float16), reloaded with "
                          "ViTForImageClassification.from_pretrained(torch_dtype=torch.float32) "
                          "(no missing/unexpected/mismatched keys; fp16 weights upcast exactly)",
            "weights_from": "vit_classifier's float32 weights (same config and weight seed) "
                            "rounded to float16",
            "checkpoint_dtypes": checkpoint_dtypes(out_dir)}

    def dinov2_classifier(out_dir, g):
        cfg = t.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             mlp_ratio=2, image_size=28, patch_size=7, num_labels=4)
        m = saved_model(t.Dinov2ForImageClassification, cfg, 102, out_dir)
        x = px(2, 28, g)
        vit_like_outputs(out_dir, m.dinov2(pixel_values=x, output_hidden_states=True))
        return x, "model.dinov2(pixel_values, output_hidden_states=True)"

    def dinov2_bf16_sharded(out_dir, g):
        cfg = t.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             mlp_ratio=2, image_size=28, patch_size=7, layerscale_value=1.0)
        m = saved_model(t.Dinov2Model, cfg, 108, out_dir, dtype=torch.bfloat16,
                        max_shard_size=SHARD_BF16, load_dtype=torch.float32)
        shards = sharded(out_dir, "model.safetensors.index.json", 2)
        with open(os.path.join(out_dir, "config.json")) as f:
            assert json.load(f)["torch_dtype"] == "bfloat16"
        x = px(2, 28, g)
        o = m(pixel_values=x, output_hidden_states=True)
        vit_like_outputs(out_dir, o)
        mb, info = t.Dinov2Model.from_pretrained(out_dir, attn_implementation="eager",
                                                 torch_dtype=torch.bfloat16,
                                                 output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        assert all(p.dtype == torch.bfloat16 for p in mb.parameters())
        ob = mb.eval()(pixel_values=x.to(torch.bfloat16)).last_hidden_state
        assert ob.dtype == torch.bfloat16
        npy(out_dir, "bf16_last_hidden_state", ob.float())
        diff = (ob.float() - o.last_hidden_state).abs().max().item()
        return x, ("model(pixel_values, output_hidden_states=True) with the model reloaded by "
                   "from_pretrained(torch_dtype=torch.float32); bf16_last_hidden_state: "
                   "model(pixel_values.to(torch.bfloat16)).last_hidden_state.float() with the "
                   "model reloaded by from_pretrained(torch_dtype=torch.bfloat16)"), {
            "precision": "float32 (bf16_last_hidden_state: bfloat16 weights and compute)",
            "saved_with": "model.to(torch.bfloat16); save_pretrained(safe_serialization=True, "
                          "max_shard_size=%r): %d safetensors shards (BF16) + "
                          "model.safetensors.index.json, config.json torch_dtype bfloat16; "
                          "reloaded with Dinov2Model.from_pretrained(torch_dtype=torch.float32) "
                          "and (torch_dtype=torch.bfloat16) (no missing/unexpected/mismatched "
                          "keys; bf16 weights upcast exactly)" % (SHARD_BF16, len(shards)),
            "checkpoint_dtypes": checkpoint_dtypes(out_dir),
            "bf16_vs_float32_last_hidden_state_max_abs": diff,
            "float32_last_hidden_state_max_abs": o.last_hidden_state.abs().max().item()}

    def vit_mae_pretraining(out_dir, g):
        cfg = t.ViTMAEConfig(mask_ratio=0.0, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                             decoder_num_attention_heads=2, decoder_intermediate_size=32, **VIT)
        m = saved_model(t.ViTMAEForPreTraining, cfg, 103, out_dir)
        x = px(2, 32, g)
        n = (32 // 8) ** 2
        noise = torch.arange(n, dtype=torch.float32).unsqueeze(0).repeat(2, 1)
        vit_like_outputs(out_dir, m.vit(pixel_values=x, noise=noise, output_hidden_states=True))
        return x, "model.vit(pixel_values, noise=arange(L) per image, output_hidden_states=True)"

    def clip_model(out_dir, g):
        cfg = t.CLIPConfig(
            vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, image_size=32, patch_size=8),
            text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, vocab_size=40, max_position_embeddings=8),
            projection_dim=12)
        m = saved_model(t.CLIPModel, cfg, 104, out_dir)
        x = px(2, 32, g)
        vit_like_outputs(out_dir, m.vision_model(pixel_values=x, output_hidden_states=True))
        npy(out_dir, "image_embeds", m.get_image_features(pixel_values=x))
        return x, ("model.vision_model(pixel_values, output_hidden_states=True); "
                   "model.get_image_features(pixel_values) -> image_embeds")

    def siglip_model(out_dir, g):
        cfg = t.SiglipConfig(
            vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, image_size=32, patch_size=8),
            text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, vocab_size=40, max_position_embeddings=8))
        m = saved_model(t.SiglipModel, cfg, 105, out_dir)
        x = px(2, 32, g)
        vit_like_outputs(out_dir, m.vision_model(pixel_values=x, output_hidden_states=True))
        return x, "model.vision_model(pixel_values, output_hidden_states=True)"

    def swin_classifier(out_dir, g):
        cfg = t.SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2],
                           num_heads=[2, 4], window_size=4, num_labels=3)
        m = saved_model(t.SwinForImageClassification, cfg, 106, out_dir)
        x = px(2, 32, g)
        stage_outputs(out_dir, m.swin(pixel_values=x, output_hidden_states=True))
        return x, "model.swin(pixel_values, output_hidden_states=True)"

    def resnet_classifier(out_dir, g):
        cfg = t.ResNetConfig(embedding_size=8, hidden_sizes=[16, 32], depths=[1, 2],
                             layer_type="bottleneck", num_labels=3)
        m = saved_model(t.ResNetForImageClassification, cfg, 107, out_dir)
        x = px(2, 64, g)
        stage_outputs(out_dir, m.resnet(pixel_values=x, output_hidden_states=True))
        return x, "model.resnet(pixel_values, output_hidden_states=True)"

    # case -> (input seed: pixel_values from Generator(2000 + it), class, maker). The seeds are
    # fixed per case (0..7 are what the original eight cases had as their sorted position); a new
    # case takes the next free number, so no existing fixture changes.
    return {
        "clip_model": (0, "CLIPModel", clip_model),
        "dinov2_classifier": (1, "Dinov2ForImageClassification", dinov2_classifier),
        "resnet_classifier": (2, "ResNetForImageClassification", resnet_classifier),
        "siglip_model": (3, "SiglipModel", siglip_model),
        "swin_classifier": (4, "SwinForImageClassification", swin_classifier),
        "vit_classifier": (5, "ViTForImageClassification", vit_classifier),
        "vit_classifier_bin": (6, "ViTForImageClassification",
                               lambda d, g: vit_classifier(d, g, safe=False)),
        "vit_mae_pretraining": (7, "ViTMAEForPreTraining", vit_mae_pretraining),
        "vit_classifier_bin_sharded": (8, "ViTForImageClassification",
                                       vit_classifier_bin_sharded),
        "dinov2_bf16_sharded": (9, "Dinov2Model", dinov2_bf16_sharded),
        "vit_fp16_bin": (10, "ViTForImageClassification", vit_fp16_bin),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(pe.FIXTURES, "published"))
    args = ap.parse_args()
    pe.activate(TREES)
    import torch
    import transformers
    pe.check_imported(TREES)
    torch.set_num_threads(1)
    refs = {n: pe.describe(n) for n in TREES}
    os.makedirs(args.out, exist_ok=True)
    table = cases(transformers, torch)
    seeds = [seed for seed, _, _ in table.values()]
    assert len(set(seeds)) == len(seeds), seeds
    for case, (seed, cls, make) in sorted(table.items()):
        out_dir = os.path.join(args.out, case)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        g = torch.Generator().manual_seed(2000 + seed)
        with torch.no_grad():
            x, call, *more = make(out_dir, g)
        extra = dict(more[0]) if more else {}
        npy(out_dir, "pixel_values", x)
        saved_with = extra.pop("saved_with", None) or (
            "save_pretrained(safe_serialization=%s), reloaded with %s.from_pretrained (no "
            "missing/unexpected/mismatched keys)" % (not case.endswith("_bin"), cls))
        precision = extra.pop("precision", "float32")
        pe.write_json(os.path.join(out_dir, "index.json"), dict({
            "generator": "tests/golden/encoders/make_published_layouts.py",
            "hf_model_class": cls,
            "transformers": refs["transformers-v4.47.1"],
            "huggingface_hub": refs["huggingface_hub-v0.27.1"],
            "environment": pe.torch_description(),
            "saved_with": saved_with,
            "reference_call": call + "  [torch.no_grad, eval, %s, eager attention]" % precision,
        }, **extra, files=sorted(os.listdir(out_dir)) + ["index.json"]))
        print("wrote", out_dir)


if __name__ == "__main__":
    main()
