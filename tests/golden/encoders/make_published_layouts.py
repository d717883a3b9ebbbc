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

Outputs per case in tests/data/encoders/published/<case>/: the saved folder (config.json,
model.safetensors or pytorch_model.bin), pixel_values.npy, last_hidden_state.npy,
hidden_states.npy (ViTs: (L+1) x N x T x D) or hidden_states_{i}.npy (Swin, ResNet),
pooler_output.npy where the backbone has one, image_embeds.npy (CLIP), index.json (library,
release, commit, classes, calls, the keys the checkpoint holds outside the backbone).

How to run (vendor trees and stubs: publisher_env.py beside this file):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup transformers=<bare git dir> \
      huggingface_hub=<bare git dir>          # once; VENDOR defaults to <checkout>/../vendor
  /usr/bin/python3 tests/golden/encoders/make_published_layouts.py [--out tests/data/encoders/published]
"""
import argparse
import os
import shutil
import sys

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env as pe  # noqa: E402

TREES = ["transformers-v4.47.1", "huggingface_hub-v0.27.1"]
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


def saved_model(cls, config, seed, out_dir, safe=True):
    """cls(config) with seeded weights, saved to out_dir and reloaded as its publisher does."""
    import torch
    model = cls(config)
    randomize(model, torch, seed)
    model.save_pretrained(out_dir, safe_serialization=safe)
    reloaded, info = cls.from_pretrained(out_dir, attn_implementation="eager",
                                         output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return reloaded.eval()


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

    def vit_classifier(out_dir, g, safe=True):
        m = saved_model(t.ViTForImageClassification, t.ViTConfig(num_labels=3, **VIT), 101,
                        out_dir, safe)
        x = px(2, 32, g)
        vit_like_outputs(out_dir, m.vit(pixel_values=x, output_hidden_states=True))
        return x, "model.vit(pixel_values, output_hidden_states=True)"

    def dinov2_classifier(out_dir, g):
        cfg = t.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             mlp_ratio=2, image_size=28, patch_size=7, num_labels=4)
        m = saved_model(t.Dinov2ForImageClassification, cfg, 102, out_dir)
        x = px(2, 28, g)
        vit_like_outputs(out_dir, m.dinov2(pixel_values=x, output_hidden_states=True))
        return x, "model.dinov2(pixel_values, output_hidden_states=True)"

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

    return {
        "vit_classifier": ("ViTForImageClassification", vit_classifier),
        "vit_classifier_bin": ("ViTForImageClassification",
                               lambda d, g: vit_classifier(d, g, safe=False)),
        "dinov2_classifier": ("Dinov2ForImageClassification", dinov2_classifier),
        "vit_mae_pretraining": ("ViTMAEForPreTraining", vit_mae_pretraining),
        "clip_model": ("CLIPModel", clip_model),
        "siglip_model": ("SiglipModel", siglip_model),
        "swin_classifier": ("SwinForImageClassification", swin_classifier),
        "resnet_classifier": ("ResNetForImageClassification", resnet_classifier),
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
    for seed, (case, (cls, make)) in enumerate(sorted(cases(transformers, torch).items())):
        out_dir = os.path.join(args.out, case)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        g = torch.Generator().manual_seed(2000 + seed)
        with torch.no_grad():
            x, call = make(out_dir, g)
        npy(out_dir, "pixel_values", x)
        pe.write_json(os.path.join(out_dir, "index.json"), {
            "generator": "tests/golden/encoders/make_published_layouts.py",
            "hf_model_class": cls,
            "transformers": refs["transformers-v4.47.1"],
            "huggingface_hub": refs["huggingface_hub-v0.27.1"],
            "environment": pe.torch_description(),
            "saved_with": "save_pretrained(safe_serialization=%s), reloaded with "
                          "%s.from_pretrained (no missing/unexpected/mismatched keys)"
                          % (not case.endswith("_bin"), cls),
            "reference_call": call + "  [torch.no_grad, eval, float32, eager attention]",
            "files": sorted(os.listdir(out_dir)) + ["index.json"],
        })
        print("wrote", out_dir)


if __name__ == "__main__":
    main()
