#!/usr/bin/python3
"""SAM 2's image encoder in the layout of the original release (facebookresearch/sam2: a `.pt`
holding torch.save({'model': state_dict}) beside a Hydra config .yaml), made and run by the
publisher's own code:

  sam2  facebookresearch/sam2  commit 2b90b9f5ceec907a1c18123530e92e794ad901a4 (no release tags;
        the head of main, 2024-12-15), folder sam2/ (publisher_env.py pin "sam2-2b90b9f")
on Debian's python3-torch 1.13 (CPU, float32, one thread).

Case written to tests/data/encoders/sam2_release/:
  sam2.1_hiera_fixture.yaml  the model section of a config in the publisher's format
                             (sam2/configs/sam2.1/sam2.1_hiera_t.yaml's image_encoder block and
                             image_size; the trunk and neck sized as the sam2_vision fixture)
  sam2.1_hiera_fixture.pt    torch.save({'model': state_dict}): the image encoder's tensors under
                             image_encoder.* as SAM2Base holds them, the weights of
                             tests/data/encoders/sam2_vision/model.safetensors renamed by the
                             rules recorded in its index.json (original_release_names, from
                             transformers' convert_sam2_to_hf.py), plus a few tensors of the
                             other SAM2Base modules (memory, prompt encoder, mask decoder) that a
                             reader must set aside
  trunk_{i}.npy              Hiera's stage outputs (NCHW), backbone_fpn_{l}.npy (ImageEncoder's
                             FPN levels after scalp 1, NCHW), vision_features.npy: the
                             publisher's ImageEncoder on sam2_vision's pixel_values.npy (its sine
                             position encodings equal sam2_vision's fpn_position_encoding_{l}.npy
                             exactly, asserted, and are not saved again)
  index.json                 what each file is, the pins, and the max-abs between these outputs
                             and transformers' (the sam2_vision references), asserted <= 1e-5

Running the publisher's modules on torch 1.13 needs, and only these:
  - sys.modules['sam2'] is a bare package over the tree's sam2/ folder, so that sam2/__init__.py
    (which imports hydra to register the configs) is not run; the modules are imported by path;
  - iopath.common.file_io.g_pathmgr: a placeholder (hieradet.py imports it to load weights_path,
    which is None here);
  - torch.nn.functional.scaled_dot_product_attention (torch >= 2.0) defined as its documented
    eager equivalent without mask or dropout: softmax(q @ k^T * d^-1/2) @ v.
The Hydra config is instantiated by hand from the yaml (the _target_ classes below, the
arguments as written).

Usage: /usr/bin/python3 tests/golden/encoders/make_sam2_release.py   (after publisher_env.py
setup sam2=<bare git dir of facebookresearch/sam2>)
"""
import json
import os
import sys
import types
import zlib

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env  # noqa: E402

CHECKOUT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
VISION = os.path.join(CHECKOUT, "tests", "data", "encoders", "sam2_vision")
OUT = os.path.join(CHECKOUT, "tests", "data", "encoders", "sam2_release")
PIN = "sam2-2b90b9f"
SEED = 1017
BASENAME = "sam2.1_hiera_fixture"
TOLERANCE = 1e-5

# The model section of the publisher's config, as sam2.1_hiera_t.yaml writes it, sized as
# sam2_vision (tests/data/encoders/sam2_vision/config.json).
CONFIG = {"model": {
    "_target_": "sam2.modeling.sam2_base.SAM2Base",
    "image_encoder": {
        "_target_": "sam2.modeling.backbones.image_encoder.ImageEncoder",
        "scalp": 1,
        "trunk": {"_target_": "sam2.modeling.backbones.hieradet.Hiera", "embed_dim": 6,
                  "num_heads": 1, "stages": [1, 2, 3, 2], "global_att_blocks": [4],
                  "window_pos_embed_bkg_spatial_size": [7, 7], "window_spec": [8, 4, 6, 3]},
        "neck": {"_target_": "sam2.modeling.backbones.image_encoder.FpnNeck",
                 "position_encoding": {
                     "_target_": "sam2.modeling.position_encoding.PositionEmbeddingSine",
                     "num_pos_feats": 16, "normalize": True, "scale": None,
                     "temperature": 10000},
                 "d_model": 16, "backbone_channel_list": [48, 24, 12, 6],
                 "fpn_top_down_levels": [2, 3], "fpn_interp_model": "nearest"}},
    "image_size": 128}}

# Tensors of SAM2Base's other modules (names as in the release checkpoints), set aside by a
# reader of the image encoder; shapes shrunk to d_model 16.
OTHERS = {"no_mem_embed": [1, 1, 16], "no_mem_pos_enc": [1, 1, 16],
          "maskmem_tpos_enc": [7, 1, 1, 16], "no_obj_ptr": [1, 16],
          "sam_prompt_encoder.point_embeddings.0.weight": [1, 16],
          "sam_mask_decoder.iou_token.weight": [1, 16],
          "sam_mask_decoder.conv_s0.weight": [2, 16, 1, 1],
          "memory_encoder.out_proj.weight": [8, 16, 1, 1],
          "memory_attention.layers.0.self_attn.q_proj.weight": [16, 16],
          "obj_ptr_proj.layers.0.weight": [16, 16]}


def import_publisher():
    """The publisher's ImageEncoder, FpnNeck, Hiera and PositionEmbeddingSine (see the header)."""
    publisher_env._check_tree(PIN)
    tree = os.path.join(publisher_env.vendor_root(), PIN)
    package = types.ModuleType("sam2")
    package.__path__ = [os.path.join(tree, "sam2")]
    sys.modules["sam2"] = package
    iopath = types.ModuleType("iopath.common.file_io")
    iopath.g_pathmgr = None
    for name in ("iopath", "iopath.common"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["iopath.common.file_io"] = iopath
    if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
            assert attn_mask is None and dropout_p == 0.0 and not is_causal
            return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v
        torch.nn.functional.scaled_dot_product_attention = sdpa
    from sam2.modeling.backbones import hieradet, image_encoder
    from sam2.modeling import position_encoding
    for mod in (hieradet, image_encoder, position_encoding):
        assert os.path.realpath(mod.__file__).startswith(os.path.realpath(tree) + os.sep)
    return {"sam2.modeling.backbones.image_encoder.ImageEncoder": image_encoder.ImageEncoder,
            "sam2.modeling.backbones.image_encoder.FpnNeck": image_encoder.FpnNeck,
            "sam2.modeling.backbones.hieradet.Hiera": hieradet.Hiera,
            "sam2.modeling.position_encoding.PositionEmbeddingSine":
                position_encoding.PositionEmbeddingSine}


def instantiate(node, classes):
    """Hydra's instantiate for this config: nested _target_ dicts built bottom-up."""
    if isinstance(node, dict):
        args = {k: instantiate(v, classes) for k, v in node.items() if k != "_target_"}
        return classes[node["_target_"]](**args) if "_target_" in node else args
    return node


def release_state(vision_index):
    """image_encoder.* tensors (sam2_vision's weights under their release names) + OTHERS."""
    st = publisher_env.st_io()
    hf = st.read_safetensors(os.path.join(VISION, "model.safetensors"))[0]
    names = vision_index["files"]["model.safetensors"]["original_release_names"]["this_checkpoint"]
    assert sorted(names) == sorted(hf), "the rename map covers every tensor"
    state = {names[k]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in hf.items()}
    for name, shape in sorted(OTHERS.items()):
        g = torch.Generator().manual_seed(SEED * 2 ** 32 + zlib.crc32(name.encode()))
        state[name] = 0.5 * torch.randn(shape, generator=g)
    return state


def run_publisher(encoder, pixel_values):
    with torch.no_grad():
        out = encoder(pixel_values)
        stages = encoder.trunk(pixel_values)
    return out, stages


def max_abs(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def compare_with_transformers(out, stages):
    """Max-abs of the publisher's outputs against transformers' (sam2_vision's references)."""
    diffs = {}
    for i, s in enumerate(stages):
        ref = np.load(os.path.join(VISION, "intermediate_hidden_states_%d.npy" % i))
        diffs["trunk_%d" % i] = max_abs(s.numpy(), ref.transpose(0, 3, 1, 2))
    for level, t in enumerate(out["backbone_fpn"]):
        diffs["backbone_fpn_%d" % level] = max_abs(
            t.numpy(), np.load(os.path.join(VISION, "fpn_hidden_states_%d.npy" % level)))
        diffs["vision_pos_enc_%d" % level] = max_abs(
            out["vision_pos_enc"][level].numpy(),
            np.load(os.path.join(VISION, "fpn_position_encoding_%d.npy" % level)))
    for name, d in diffs.items():
        assert d <= (0.0 if name.startswith("vision_pos_enc") else TOLERANCE), (name, d)
    return diffs


def save_outputs(out, stages):
    files = {}
    arrays = {"vision_features": out["vision_features"]}
    arrays.update({"trunk_%d" % i: s for i, s in enumerate(stages)})
    arrays.update({"backbone_fpn_%d" % i: t for i, t in enumerate(out["backbone_fpn"])})
    for name, t in arrays.items():
        a = np.ascontiguousarray(t.numpy().astype(np.float32))
        np.save(os.path.join(OUT, name + ".npy"), a)
        files[name + ".npy"] = {"shape": list(a.shape), "layout": "NCHW"}
    return files


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    vision_index = json.load(open(os.path.join(VISION, "index.json")))
    classes = import_publisher()
    encoder = instantiate(CONFIG["model"]["image_encoder"], classes).eval()
    state = release_state(vision_index)
    prefix = "image_encoder."
    missing, unexpected = encoder.load_state_dict(
        {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    assert not missing and not unexpected
    pixel_values = torch.from_numpy(np.load(os.path.join(VISION, "pixel_values.npy")))
    out, stages = run_publisher(encoder, pixel_values)
    diffs = compare_with_transformers(out, stages)
    with open(os.path.join(OUT, BASENAME + ".yaml"), "w") as f:
        f.write("# @package _global_\n# The model section of a SAM 2.1 config in the "
                "publisher's format (sam2/configs/sam2.1/sam2.1_hiera_t.yaml), sized as the\n"
                "# radprobe fixture tests/data/encoders/sam2_vision; written by "
                "tests/golden/encoders/make_sam2_release.py\n")
        yaml.safe_dump(CONFIG, f, sort_keys=False, default_flow_style=None)
    torch.save({"model": state}, os.path.join(OUT, BASENAME + ".pt"))
    reloaded = torch.load(os.path.join(OUT, BASENAME + ".pt"))["model"]
    assert sorted(reloaded) == sorted(state)
    assert all(torch.equal(reloaded[k], state[k]) for k in state)
    files = save_outputs(out, stages)
    index = {
        "model_name": "sam2_release",
        "generator": "tests/golden/encoders/make_sam2_release.py",
        "publisher": publisher_env.describe(PIN),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "seed": SEED,
        "weights": "image_encoder.*: tests/data/encoders/sam2_vision/model.safetensors renamed "
                   "by its index.json's original_release_names.this_checkpoint; the others: "
                   "0.5*N(0,1) from torch.Generator().manual_seed(seed * 2**32 + crc32(name))",
        "config": CONFIG,
        "input": "tests/data/encoders/sam2_vision/pixel_values.npy (2x3x128x128)",
        "forward_call": "out = ImageEncoder(...)(pixel_values); stages = encoder.trunk(pixel_values) "
                        "(eval, torch.no_grad, float32, 1 thread)",
        "max_abs_vs_transformers": diffs,
        "files": dict(files, **{
            BASENAME + ".pt": {"format": "torch.save zip (torch 1.13)",
                               "top_level_keys": ["model"], "tensors": len(state),
                               "image_encoder_tensors": sum(k.startswith(prefix) for k in state),
                               "other_tensors": sorted(OTHERS)},
            BASENAME + ".yaml": {"format": "the model section of a Hydra config as the publisher "
                                           "writes sam2/configs/sam2.1/*.yaml"}}),
    }
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(json.dumps(diffs, indent=1))


if __name__ == "__main__":
    main()
