#!/usr/bin/python3
"""A tiny DINOv3 ViT saved the way facebook/dinov3-vit7b16-pretrain-lvd1689m is published (bf16,
sharded safetensors), made by transformers' own code:

  transformers v4.57.6     huggingface/transformers     commit 753d61104116eefc8ffc977327b441ee0c8d599f
  huggingface_hub v0.36.2  huggingface/huggingface_hub  commit 664c484e261175deeb80c2aa3b525457a1f6fa5c
on Debian's python3-torch 1.13 (CPU, one thread, eager attention). v4.57.6 is the release the
float32 fixtures tests/data/encoders/dinov3_vit{,_swiglu} were made with; v0.36.2 is the last
huggingface_hub that release accepts (>= 0.34, < 1.0).

Case dinov3_bf16_sharded, written to tests/data/encoders/published/dinov3_bf16_sharded/:
  DINOv3ViTModel (model_type dinov3_vit, the base model with no prefix, as the 7B is published)
  from a tiny config shaped like the 7B's (CONFIG below: hidden 48, 3 heads of 16, 2 layers,
  patch 16, image 64, 4 register tokens, gated MLP with SiLU, intermediate 96, layer scale,
  query/key/value without bias, output projection and MLP with bias: the values
  transformers' convert_dinov3_vit_to_hf.py gives vit7b16, see CONFIG_SOURCE). Every parameter
  and persistent buffer set by make_published_layouts.randomize (seed WEIGHT_SEED; the RoPE
  inv_freq buffer is not persistent, is not saved and is left as the model computes it), cast
  with model.to(torch.bfloat16), saved with save_pretrained(safe_serialization=True,
  max_shard_size=SHARD): model-0000k-of-0000n.safetensors (every tensor BF16) +
  model.safetensors.index.json, config.json dtype "bfloat16".
  last_hidden_state / hidden_states ((L+1) x N x T x D; entry L is the last layer's output BEFORE
  the final LayerNorm, transformers' tie_last_hidden_states=False) / pooler_output: the folder
  reloaded with DINOv3ViTModel.from_pretrained(dtype=torch.float32) (bf16 weights upcast exactly,
  no missing/unexpected/mismatched keys) run on float32 pixel_values (N=2, 3x64x64,
  torch.Generator().manual_seed(INPUT_SEED)); bf16_last_hidden_state: reloaded with
  dtype=torch.bfloat16, run on pixel_values.to(torch.bfloat16) (bf16 compute on the CPU),
  upcast to float32; index.json records their max-abs difference.

transformers >= 4.56 refuses torch < 2.1, so the run is on torch 1.13 with:
  - ../shared/reference/torch2_import_shims.py install_default() (as for dinov3_vit), and
  - transformers.utils.import_utils._torch_available set to True right after that module has run
    its own check (which is what disables torch); torch's version is still reported truthfully
    (1.13.0a0), so every is_torch_greater_or_equal() check keeps choosing the torch-1 path; in the
    same place _torchvision_available is set to False (Debian's torchvision 0.14 lacks
    InterpolationMode.NEAREST_EXACT, which image_utils reads at import; never used here);
  - publisher_env's tokenizers stub (importable, any use raises) given a dist-info (0.22.1): v4.57.6
    cannot be imported without tokenizers (tokenization_utils_base, imported by
    configuration_utils, names tokenizers.Encoding in an annotation: NameError otherwise).
  All are listed in index.json (torch2_import_shims); the forward pass is unmodified torch ops.

How to run (vendor trees and stubs: publisher_env.py beside this file):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup transformers=<bare git dir> \
      huggingface_hub=<bare git dir>          # once; VENDOR defaults to <checkout>/../vendor
  /usr/bin/python3 tests/golden/encoders/make_published_dinov3.py [--out tests/data/encoders/published]
Deterministic: a second run rewrites identical bytes.
"""
import argparse
import importlib.abc
import importlib.machinery
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_published_layouts as mpl  # noqa: E402
import publisher_env as pe  # noqa: E402

TREES = ["transformers-v4.57.6", "huggingface_hub-v0.36.2"]
CASE = "dinov3_bf16_sharded"
SHARD = "64KB"      # ~169 KB of bfloat16 weights -> 3 safetensors shards
WEIGHT_SEED = 109   # make_published_layouts uses 101..108
INPUT_SEED = 2011   # 2000 + the next free case number of make_published_layouts.cases()
CONFIG = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
              image_size=64, patch_size=16, num_register_tokens=4, use_gated_mlp=True,
              hidden_act="silu", layerscale_value=1.0, query_bias=False, key_bias=False,
              value_bias=False, proj_bias=True, mlp_bias=True, rope_theta=100.0,
              layer_norm_eps=1e-5)
CONFIG_SOURCE = (
    "facebook/dinov3-vit7b16-pretrain-lvd1689m as transformers' own converter builds it: "
    "src/transformers/models/dinov3_vit/convert_dinov3_vit_to_hf.py, get_dinov3_config("
    "'vit7b16_lvd1689m') = DINOv3ViTConfig(patch_size=16, hidden_size=4096, "
    "intermediate_size=8192, num_hidden_layers=40, num_attention_heads=32, query_bias=False, "
    "value_bias=False, num_register_tokens=4, use_gated_mlp=True, hidden_act='silu') (key_bias, "
    "proj_bias, mlp_bias, layerscale_value, rope_theta, layer_norm_eps at their defaults False, "
    "True, True, 1.0, 100.0, 1e-5). The converter as of huggingface/transformers commit %s "
    "(main, 'v4.57.0 Branch (#41310)', the parent of the v4.57.0 release commit and an ancestor "
    "of v4.57.6; release commits drop convert_*.py from their trees). "
    "Kept from the 7B: patch 16, 4 registers, gated SiLU MLP, layer scale, the bias pattern, "
    "rope_theta, eps; scaled down: hidden 48 (3 heads of 16: head_dim multiple of 4 for the 2-D "
    "RoPE), 2 layers, intermediate 96, image 64")
CONVERTER_COMMIT = "2ccc6cae21faaf11631efa5fb9054687ae5dc931"
SEQUENCE_LAYOUT = (
    "T = 1 + R + (H//p)*(W//p) = 1 + 4 + 16 = 21: [CLS, 4 register tokens, patches row-major]. No "
    "absolute position embeddings: 2-D RoPE (rope_theta 100) on q/k of PATCH tokens only; patch "
    "centre coords normalised to [-1,1] per axis, computed for the actual grid.")


class _TorchGate(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs transformers.utils.import_utils unchanged, then sets its _torch_available to True (its
    own check disables torch < 2.1) and _torchvision_available to False. Nothing reads the flags
    before that module has finished."""
    NAME = "transformers.utils.import_utils"

    def __init__(self):
        self.done = False

    def find_spec(self, fullname, path, target=None):
        if fullname != self.NAME or self.done:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        assert module._torch_available is False and module._torch_version.startswith("1.13"), \
            (module._torch_available, module._torch_version)
        module._torch_available = True
        # Debian's torchvision 0.14 (torch 1.13's) lacks names v4.57.6 reads at import time
        # (InterpolationMode.NEAREST_EXACT in image_utils); the model never uses torchvision.
        module._torchvision_available = False
        self.done = True


TORCH_GATE_SHIM = ("transformers.utils.import_utils._torch_available = True after the module's own "
                   "torch >= 2.1 check (torch version still reported as %s), and "
                   "_torchvision_available = False (Debian's torchvision 0.14 lacks "
                   "InterpolationMode.NEAREST_EXACT, read by image_utils at import; the model "
                   "never uses torchvision)")


TOKENIZERS_STUB_VERSION = "0.22.1"
TOKENIZERS_SHIM = ("tokenizers stub (publisher_env.py: importable, any use raises) given a dist-info "
                   "version %s, as transformers v4.57.6 cannot be imported without tokenizers")


def import_transformers():
    """Pinned trees + stubs, the torch-2 import shims, then transformers (returns its modules)."""
    refs = pe.activate(TREES)
    # tokenizers is a hard dependency of v4.57.6: with it absent, tokenization_utils_base (imported
    # by configuration_utils) fails with NameError 'EncodingFast'. The stub (any use raises) gets a
    # dist-info at a version the release accepts, so the import goes through.
    stubs = sys.path[0]
    assert os.path.isdir(os.path.join(stubs, "tokenizers")), stubs
    pe._dist_info(stubs, "tokenizers", TOKENIZERS_STUB_VERSION)
    sys.path.insert(0, pe.reference_dir())
    import torch2_import_shims as shims
    del sys.path[0]
    shims.install_default()
    gate = _TorchGate()
    sys.meta_path.insert(0, gate)
    import torch
    import transformers
    from transformers.utils import import_utils
    sys.meta_path.remove(gate)
    assert gate.done and import_utils.is_torch_available()
    pe.check_imported(TREES)
    shimmed = sorted(set(shims.SHIMMED)) + [TORCH_GATE_SHIM % torch.__version__,
                                             TOKENIZERS_SHIM % TOKENIZERS_STUB_VERSION]
    return torch, transformers, refs, shimmed


def persistent_view(model):
    """What randomize() should touch: the parameters and the buffers that state_dict holds (the
    RoPE inv_freq buffer is non-persistent: computed from the config, never saved)."""
    keys = set(model.state_dict())

    class View:
        def named_parameters(self):
            return model.named_parameters()

        def named_buffers(self):
            return [(n, b) for n, b in model.named_buffers() if n in keys]
    return View()


def make(out_dir, torch, transformers):
    t = transformers
    cls = t.DINOv3ViTModel
    cfg = t.DINOv3ViTConfig(attn_implementation="eager", **CONFIG)  # not written to config.json
    model = cls(cfg)
    assert model.config._attn_implementation == "eager"
    mpl.randomize(persistent_view(model), torch, WEIGHT_SEED)
    model.to(torch.bfloat16).eval()
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size=SHARD)
    shards = mpl.sharded(out_dir, "model.safetensors.index.json", 2)
    with open(os.path.join(out_dir, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    saved = model.state_dict()
    assert sorted(weight_map) == sorted(saved), (sorted(weight_map), sorted(saved))
    dtypes = mpl.checkpoint_dtypes(out_dir)
    assert all(v == ["BF16"] for v in dtypes.values()), dtypes
    with open(os.path.join(out_dir, "config.json")) as f:
        config_json = json.load(f)
    assert config_json["model_type"] == "dinov3_vit"
    dtype_keys = {k: config_json[k] for k in ("dtype", "torch_dtype") if k in config_json}
    assert dtype_keys and all(v == "bfloat16" for v in dtype_keys.values()), dtype_keys

    head_dim = CONFIG["hidden_size"] // CONFIG["num_attention_heads"]
    inv_freq = 1 / CONFIG["rope_theta"] ** torch.arange(0, 1, 4 / head_dim, dtype=torch.float32)

    def reload(dtype):
        m, info = cls.from_pretrained(out_dir, attn_implementation="eager", dtype=dtype,
                                      output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        assert type(m).__name__ == "DINOv3ViTModel" and m.config._attn_implementation == "eager"
        got = m.state_dict()
        assert sorted(got) == sorted(saved)
        for k, v in saved.items():
            assert got[k].dtype == dtype and torch.equal(got[k], v.to(dtype)), k
        # The RoPE buffer stays float32 in both reloads (transformers computes it in float32).
        assert m.rope_embeddings.inv_freq.dtype == torch.float32
        assert torch.equal(m.rope_embeddings.inv_freq, inv_freq)
        return m.eval()

    g = torch.Generator().manual_seed(INPUT_SEED)
    x = torch.randn(2, 3, CONFIG["image_size"], CONFIG["image_size"], generator=g)

    m = reload(torch.float32)
    o = m(pixel_values=x, output_hidden_states=True, return_dict=True)
    L = CONFIG["num_hidden_layers"]
    hs = torch.stack(o.hidden_states)
    T = 1 + CONFIG["num_register_tokens"] + (CONFIG["image_size"] // CONFIG["patch_size"]) ** 2
    assert tuple(hs.shape) == (L + 1, 2, T, CONFIG["hidden_size"]), hs.shape
    assert tuple(o.last_hidden_state.shape) == (2, T, CONFIG["hidden_size"])
    assert torch.equal(o.pooler_output, o.last_hidden_state[:, 0])
    first_is_embeddings = bool(torch.equal(o.hidden_states[0], m.embeddings(x)))
    assert first_is_embeddings
    last_is_pre_norm = bool(torch.equal(m.norm(o.hidden_states[-1]), o.last_hidden_state))
    assert last_is_pre_norm
    o2 = m(pixel_values=x, output_hidden_states=True, return_dict=True)
    repeat_bitexact = bool(torch.equal(o2.last_hidden_state, o.last_hidden_state)
                           and torch.equal(torch.stack(o2.hidden_states), hs))
    assert repeat_bitexact
    # The in-memory bf16 model, upcast, is the same float32 model (model.to(bfloat16) had also
    # rounded its non-persistent inv_freq buffer: put the float32 one back, as a reload has it).
    model.float().rope_embeddings.inv_freq = inv_freq.clone()
    oi = model(pixel_values=x).last_hidden_state
    in_memory_bitexact = bool(torch.equal(oi, o.last_hidden_state))
    assert in_memory_bitexact
    mpl.vit_like_outputs(out_dir, o)

    mb = reload(torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in mb.parameters())
    ob = mb(pixel_values=x.to(torch.bfloat16)).last_hidden_state
    assert ob.dtype == torch.bfloat16
    mpl.npy(out_dir, "bf16_last_hidden_state", ob.float())
    diff = (ob.float() - o.last_hidden_state).abs()
    mpl.npy(out_dir, "pixel_values", x)
    return {
        "shards": shards,
        "config_json_dtype": dtype_keys,
        "checkpoint_dtypes": dtypes,
        "weight_map_keys": len(weight_map),
        "bf16": {"max_abs": diff.max().item(), "mean_abs": diff.mean().item(),
                 "max_abs_cls": diff[:, 0].max().item()},
        "float32_last_hidden_state_max_abs": o.last_hidden_state.abs().max().item(),
        "checks": {
            "all_tensors_bf16": True,
            "weight_map_keys_equal_state_dict_keys": True,
            "from_pretrained_missing_unexpected_mismatched": [[], [], []],
            "reloaded_tensors_equal_saved_upcast": True,
            "rope_inv_freq_float32_as_computed_from_config_in_both_reloads": True,
            "hidden_states_first_is_embeddings_output": first_is_embeddings,
            "hidden_states_last_is_pre_final_norm": last_is_pre_norm,
            "pooler_output_is_cls_of_last_hidden_state": True,
            "repeat_run_bitexact": repeat_bitexact,
            "in_memory_bf16_model_upcast_vs_reloaded_float32_bitexact": in_memory_bitexact,
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(pe.FIXTURES, "published"))
    args = ap.parse_args()
    torch, transformers, refs, shimmed = import_transformers()
    torch.set_num_threads(1)
    out_dir = os.path.join(args.out, CASE)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    with torch.no_grad():
        r = make(out_dir, torch, transformers)
    pe.write_json(os.path.join(out_dir, "index.json"), {
        "generator": "tests/golden/encoders/make_published_dinov3.py",
        "hf_model_class": "DINOv3ViTModel",
        "hf_config_class": "DINOv3ViTConfig",
        "model_type": "dinov3_vit",
        "transformers": refs["transformers-v4.57.6"],
        "huggingface_hub": refs["huggingface_hub-v0.36.2"],
        "environment": pe.torch_description(),
        "torch2_import_shims": shimmed,
        "attn_implementation": "eager",
        "config": CONFIG,
        "config_source": CONFIG_SOURCE % CONVERTER_COMMIT,
        "weight_seed": WEIGHT_SEED,
        "weights": "make_published_layouts.randomize(seed %d) on the parameters and persistent "
                   "buffers (1-D *weight: 1 + 0.1*N(0,1); everything else, layer-scale lambda1 "
                   "included: 0.15*N(0,1)), float32, then model.to(torch.bfloat16)" % WEIGHT_SEED,
        "input": {"batch": 2, "channels": 3, "height": CONFIG["image_size"],
                  "width": CONFIG["image_size"],
                  "pixel_values": "torch.randn(2, 3, 64, 64, generator=torch.Generator()"
                                  ".manual_seed(%d)), float32" % INPUT_SEED},
        "saved_with": "model.to(torch.bfloat16); save_pretrained(safe_serialization=True, "
                      "max_shard_size=%r): %d safetensors shards (every tensor BF16, metadata "
                      "format pt) + model.safetensors.index.json, config.json %s; reloaded with "
                      "DINOv3ViTModel.from_pretrained(dtype=torch.float32) and "
                      "(dtype=torch.bfloat16), attn_implementation='eager' (no missing/"
                      "unexpected/mismatched keys; bf16 weights upcast exactly)"
                      % (SHARD, len(r["shards"]), json.dumps(r["config_json_dtype"])),
        "shards": r["shards"],
        "checkpoint_dtypes": r["checkpoint_dtypes"],
        "reference_call": "model(pixel_values=pixel_values, output_hidden_states=True, "
                          "return_dict=True) with the model reloaded by from_pretrained("
                          "dtype=torch.float32)  [torch.no_grad, eval, float32, eager attention, "
                          "1 thread]",
        "bf16_reference_call": "model(pixel_values=pixel_values.to(torch.bfloat16))"
                               ".last_hidden_state.float() with the model reloaded by "
                               "from_pretrained(dtype=torch.bfloat16)  [torch.no_grad, eval, "
                               "bfloat16 weights and compute on the CPU, softmax in float32 as "
                               "eager_attention_forward does, RoPE cos/sin computed in float32 "
                               "then cast to bfloat16]",
        "sequence_layout": SEQUENCE_LAYOUT,
        "outputs": {
            "last_hidden_state.npy": "N x T x D float32, after the final LayerNorm",
            "hidden_states.npy": "(L+1) x N x T x D float32: [embeddings (CLS, registers, "
                                 "patches; no position embedding), layer 1, ..., layer L], "
                                 "entry L before the final LayerNorm",
            "pooler_output.npy": "N x D float32: last_hidden_state[:, 0]",
            "bf16_last_hidden_state.npy": "N x T x D float32: the bf16 model's bf16 output, "
                                          "upcast",
        },
        "bf16_vs_float32_last_hidden_state_max_abs": r["bf16"]["max_abs"],
        "bf16_vs_float32_last_hidden_state_mean_abs": r["bf16"]["mean_abs"],
        "bf16_vs_float32_cls_max_abs": r["bf16"]["max_abs_cls"],
        "float32_last_hidden_state_max_abs": r["float32_last_hidden_state_max_abs"],
        "checks": r["checks"],
        "files": sorted(os.listdir(out_dir)) + ["index.json"],
    })
    print("wrote", out_dir)


if __name__ == "__main__":
    main()
