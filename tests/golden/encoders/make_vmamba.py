#!/usr/bin/python3
"""Parity fixtures for VMamba (VSSM, the "vmambav2" family of the released VMamba-T/S/B
classification checkpoints), made by the publisher's own code:

  MzeroMiko/VMamba                  commit 2ed52ead062a51a64521ed3871d52914bf532876 (head of main,
                                    2025-03-07 "Update vmamba.py"; the repository has no release tags)
                                    folder classification/: models/vmamba.py (VSSM, VSSBlock, SS2D),
                                    models/csm_triton.py (cross_scan_fn / cross_merge_fn),
                                    models/csms6s.py (selective_scan_fn, selective_scan_torch),
                                    models/__init__.py (build_vssm_model), config.py (defaults) and
                                    configs/vssm/*.yaml
  huggingface/pytorch-image-models  v0.4.12, commit 7096b52a613eefb4f6d8107366611c8983478b19 (timm:
                                    VMamba's README installs timm==0.4.12; vmamba.py imports DropPath
                                    and trunc_normal_ from it)
on Debian's python3-torch 1.13 (CPU, one thread). Both trees are pinned in publisher_env.py
(rows vmamba-2ed52ea and timm-v0.4.12) and extracted outside the checkout:
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup timm=<bare git dir of
      huggingface/pytorch-image-models> vmamba=<bare git dir of MzeroMiko/VMamba>
  /usr/bin/python3 tests/golden/encoders/make_vmamba.py [--out tests/data/encoders]
Deterministic: a second run rewrites identical bytes.

Cases, each written to tests/data/encoders/<case>/:
  vmamba                 the released VMamba-T (README row VMamba-T[s1l8], checkpoint
                         vssm1_tiny_0230s_ckpt_epoch_264.pth, config
                         classification/configs/vssm/vmambav2v_tiny_224.yaml == the factory
                         vmamba_tiny_s1l8()): ssm_ratio 1.0, ssm_d_state 1, forward_type v05_noz,
                         ln2d, patchembed v2, downsample v3; scaled down to dims 6 (6/12/24/48,
                         dt_rank ceil(dim/16) = 1/1/2/3), depths [1, 1, 2, 1], 10 classes;
                         input 2x3x64x64 (dims 8 would make vmamba.pth 433 KB)
  vmamba_ratio2_dstate4  the VMamba-S/B block (configs/vssm/vmambav2_small_224.yaml: ssm_ratio
                         2.0, so d_inner = 2*dim) with ssm_d_state 4 instead of the released 1, so
                         that the state dimension N of A_logs/B/C is exercised; same scaled dims and
                         depths; input 2x3x60x44 (H=60, W=44: not square, odd grids 15x11, 8x6,
                         4x3, 2x2, so a swapped H/W in the cross scan or a wrong padding shows)
The config is what the publisher's own build path gives: the defaults of classification/config.py
(read from that file: every `_C.<...> = <literal>` line), overlaid with the yaml, overlaid with
the tiny changes (CASES below), then models.build_vssm_model(config) (the function main.py calls).
Checked: the full-size yaml config builds the same state_dict keys and shapes as the publisher's
factory function (vmamba_tiny_s1l8() / vmamba_small_s2l15()).

What is stubbed to import on torch 1.13 (tiny modules first on sys.path; none is used by the
forward pass):
  - triton (not a Debian package; csm_triton.py decorates its kernels with @triton.jit at module
    level, so the module cannot even be imported without a `triton`, and models/mamba2/* use
    triton.autotune/heuristics/Config/cdiv/next_power_of_2/__version__ and triton.language's
    tensor/constexpr in signatures): `jit` returns an object whose launch (kernel[grid](...)) or
    call raises, autotune/heuristics are identity decorators, Config a placeholder, __version__
    "2.2.0" (the triton of the README's torch 2.2); triton.language has only `tensor` and
    `constexpr`. So csm_triton.WITH_TRITON and mamba2.ssd_minimal.WITH_TRITON are True, as in the
    publisher's environment, and no kernel runs: cross_scan_fn/cross_merge_fn pick the triton path
    only for CUDA tensors (here CrossScanF/CrossMergeF, pure torch, run), and
    selective_scan_chunk_fn (mamba2) is used only by forward_type "m0*";
  - fvcore.nn (FlopCountAnalysis, flop_count_str, flop_count, parameter_count: imported by
    vmamba.py, used only by VSSM.flops()): each raises;
  - einops (rearrange, repeat: imported at module level by models/mamba2/*, used only inside the
    mamba2 chunk scan): each raises;
  - publisher_env's own stubs (safetensors, tokenizers, ftfy): present, unused.
The selective scan kernels (selective_scan_cuda_oflex / _core, mamba_ssm's selective_scan_cuda)
are absent, so csms6s.selective_scan_fn takes the repository's own pure-PyTorch reference
selective_scan_torch (it says "Can not import selective_scan_cuda_oflex. This affects speed.").

One shim in the forward pass (the publisher's code cannot run on CPU tensors without it, on any
torch: the maintainer says CPU is unsupported, MzeroMiko/VMamba issue #107):
  - cross_scan_fn and cross_merge_fn wrap their work in `with torch.cuda.device(x.device):`, and
    torch.cuda.device(<cpu device>) raises ValueError("Expected a cuda device, but got: cpu").
    torch.cuda.device is replaced by a subclass that turns a CPU torch.device into index -1, the
    documented no-op (exactly what torch.cuda.device_of does for a CPU tensor); CUDA devices are
    passed through. It selects no device and touches no tensor. index.json counts its calls.
And, for the float64 reference run only (never for the fixture files):
  - model.double() alone does not run: forward_corev2 builds A, D and the dt bias with
    .to(torch.float), selective_scan_torch casts u, delta, A, B, C with .float(), and the float32
    result then meets the float64 out_norm ("expected scalar type Float but found Double", recorded
    in index.json). Under the context manager promote_float64(), torch.float is torch.float64 and
    torch.Tensor.float converts to float64, so the publisher's code runs end to end in float64
    (every captured output and every scan input/output is asserted float64).

Weights: every state_dict tensor (all are parameters; there are no buffers) from its own
torch.Generator().manual_seed(SEED * 2**32 + crc32(name)): conv/linear weights N(0,1)/sqrt(fan_in)
(x_proj_weight [K, R+2N, D_inner] per direction: fan_in D_inner); biases 0.1*N(0,1); LayerNorm
weights 1+0.2*N(0,1); around the repository's own mamba_init where it is meaningful:
A_logs = log(n) + 0.5*N(0,1) (S4D-real init log(1..N), so A = -exp(A_logs) < 0 stays ordered on
average), Ds = 1 + 0.5*N(0,1) (init 1), dt_projs_weight U(-1,1)*dt_rank^-0.5 (the init "random",
dt_scale 1), dt_projs_bias = inverse softplus of dt = exp(U(log 1e-3, log 1e-1)) clamped at 1e-4
(mamba_init.dt_init's formula, dt_min 0.001, dt_max 0.1, floor 1e-4, on the seeded generator).
Inputs: torch.randn(2, 3, H, W, generator=manual_seed(input seed)) + linspace(-0.5, 0.5, W) along W.

Saved as the publisher saves and loads checkpoints: torch.save({'model': state_dict}, 'vmamba.pth')
(main.py/utils.py load checkpoint['model']; Backbone_VSSM.load_pretrained(key="model"); the
maintainer on the released files: "We've already convert it into ckpt['model']", issue #68),
reloaded with torch.load into a new build_vssm_model(config) with load_state_dict(strict=True)
(VSSM._load_from_state_dict's renames do not apply: the keys are current) and run as
model(pixel_values) in eval mode under torch.no_grad. Every NCHW output is captured by forward
hooks on that one call (see index.json "files"). Checked besides: an independent float64 NumPy
forward written from index.json's description (this file's `independent_forward`, no VMamba code)
against the publisher's float64 run (agreement <= ~1e-14) and the float32 fixture; each selective
scan call's float32 output against the same scan run in float64 on the same float32 inputs (the
scan's own float32 error); a repeat run and the in-memory model (bit-exact).
"""
import argparse
import ast
import contextlib
import copy
import hashlib
import math
import os
import shutil
import sys
import tempfile
import types
import zlib

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_aimv2 as ma  # noqa: E402  (npy, tolerance, conv2d, pixel_values, debian_torch)
import publisher_env as pe  # noqa: E402

GENERATOR = "tests/golden/encoders/make_vmamba.py"
PINNED = ["timm-v0.4.12", "vmamba-2ed52ea"]
SEED = 1016  # make_aimv2 uses 1015, the float32 fixtures 1001..1014
CKPT_NAME = "vmamba.pth"
SS2D_DUMP = (1, 0)  # layers[1].blocks[0].op: its scan inputs/outputs are written too
# case -> (yaml under classification/configs/vssm, factory it must match at full size,
#          overrides of config keys, input seed, (H, W))
TINY = {"MODEL.VSSM.EMBED_DIM": 6, "MODEL.VSSM.DEPTHS": [1, 1, 2, 1], "MODEL.NUM_CLASSES": 10}
CASES = [
    ("vmamba", "vmambav2v_tiny_224.yaml", "vmamba_tiny_s1l8", dict(TINY, **{"DATA.IMG_SIZE": 64}),
     2019, (64, 64)),
    ("vmamba_ratio2_dstate4", "vmambav2_small_224.yaml", "vmamba_small_s2l15",
     dict(TINY, **{"MODEL.VSSM.SSM_D_STATE": 4, "DATA.IMG_SIZE": 64}), 2020, (60, 44)),
]
MAX_FILE_BYTES = 400 * 1024
LENGTH_PROBE, LENGTH_PROBE_SEED = (256, 1024, 3136), 3000

# ----- stubs and shims -----

_TRITON_INIT = '''"""Stub of triton (radprobe goldens, make_vmamba.py): VMamba's modules define triton kernels
at import time; none may run. jit returns an object whose launch or call raises."""
__version__ = "2.2.0"


class _Kernel:
    def __init__(self, fn):
        self.fn = fn

    def __getitem__(self, grid):
        raise RuntimeError("triton stub: kernel %s launched" % getattr(self.fn, "__name__", "?"))

    def __call__(self, *a, **k):
        raise RuntimeError("triton stub: kernel %s called" % getattr(self.fn, "__name__", "?"))


def jit(fn=None, **kwargs):
    return _Kernel(fn) if fn is not None else _Kernel


def autotune(*args, **kwargs):
    return lambda fn: fn


def heuristics(*args, **kwargs):
    return lambda fn: fn


class Config:
    def __init__(self, *args, **kwargs):
        pass


def cdiv(a, b):
    return (a + b - 1) // b


def next_power_of_2(n):
    return 1 << (int(n) - 1).bit_length()
'''
_TRITON_LANGUAGE = '''"""Stub of triton.language: only the names read at import time (annotations)."""


class tensor:
    pass


class constexpr:
    pass
'''
_FVCORE_NN = '''"""Stub of fvcore.nn (radprobe goldens): vmamba.py imports these for VSSM.flops() only."""


def _stub(*args, **kwargs):
    raise RuntimeError("fvcore stub: flop counting is not available")


FlopCountAnalysis = flop_count_str = flop_count = parameter_count = _stub
'''
_EINOPS = '''"""Stub of einops (radprobe goldens): models/mamba2/* import it; never used by v05_noz."""


def rearrange(*args, **kwargs):
    raise RuntimeError("einops stub")


def repeat(*args, **kwargs):
    raise RuntimeError("einops stub")
'''
STUBS = [
    "triton: __version__ '2.2.0'; jit -> kernel object whose launch/call raises; autotune, "
    "heuristics -> identity decorators; Config placeholder; cdiv, next_power_of_2; "
    "triton.language: tensor, constexpr (annotation placeholders) only. Needed because "
    "models/csm_triton.py applies @triton.jit at module level (no `if WITH_TRITON`) and "
    "models/mamba2/* (imported by vmamba.py through mamba2.ssd_minimal) use autotune/heuristics/"
    "Config/__version__; no kernel is launched (CPU tensors take CrossScanF/CrossMergeF; the "
    "mamba2 chunk scan belongs to forward_type m0*)",
    "fvcore.nn: FlopCountAnalysis, flop_count_str, flop_count, parameter_count (each raises): "
    "imported by vmamba.py, used only by VSSM.flops()",
    "einops: rearrange, repeat (each raises): imported at module level by models/mamba2/*, used "
    "only inside the mamba2 chunk scan",
    "publisher_env.activate()'s safetensors, tokenizers and ftfy stubs: on sys.path, not imported",
]
CUDA_DEVICE_SHIM = (
    "torch.cuda.device replaced by a subclass whose __init__ maps a CPU torch.device to index -1 "
    "(torch.cuda.device's documented no-op, what torch.cuda.device_of does for a CPU tensor); "
    "other devices pass through. Needed because csm_triton.cross_scan_fn/cross_merge_fn run "
    "`with torch.cuda.device(x.device):` and torch.cuda.device(cpu) raises ValueError('Expected a "
    "cuda device, but got: cpu') (torch 1.13 and 2.x alike: the publisher does not support CPU, "
    "MzeroMiko/VMamba issue #107). It selects no device and touches no tensor.")
PROMOTE_SHIM = (
    "float64 reference run only (promote_float64()): torch.float set to torch.float64 and "
    "torch.Tensor.float to .to(torch.float64) for the duration of the call, because "
    "SS2D.forward_corev2 builds A/D/dt-bias with .to(torch.float) and selective_scan_torch casts "
    "u, delta, A, B, C with .float(); with them the publisher's code computes everything in "
    "float64 (asserted on every captured output and every scan input/output). Not used for the "
    "fixture files.")


def write_stubs():
    d = tempfile.mkdtemp(prefix="radprobe_vmamba_stubs_")
    files = {("triton", "__init__.py"): _TRITON_INIT, ("triton", "language.py"): _TRITON_LANGUAGE,
             ("fvcore", "__init__.py"): '"""Stub (radprobe goldens)."""\n',
             ("fvcore", "nn.py"): _FVCORE_NN, ("einops", "__init__.py"): _EINOPS}
    for parts, text in files.items():
        os.makedirs(os.path.join(d, *parts[:-1]), exist_ok=True)
        with open(os.path.join(d, *parts), "w") as f:
            f.write(text)
    return d


def install_cuda_device_shim(torch):
    orig = torch.cuda.device
    calls = []

    class device(orig):
        def __init__(self, dev):
            if (isinstance(dev, torch.device) and dev.type == "cpu") or dev == "cpu":
                calls.append("cpu")
                orig.__init__(self, -1)
            else:
                orig.__init__(self, dev)

    device.__doc__ = orig.__doc__
    torch.cuda.device = device
    return calls


@contextlib.contextmanager
def promote_float64(torch):
    old_float, old_method = torch.float, torch.Tensor.float

    def to_float64(self, *args, **kwargs):
        return self.to(torch.float64)

    torch.float = torch.float64
    torch.Tensor.float = to_float64
    try:
        yield
    finally:
        torch.float = old_float
        torch.Tensor.float = old_method


def import_publisher():
    refs = pe.activate(PINNED)
    stubs = write_stubs()
    import atexit
    atexit.register(shutil.rmtree, stubs, True)
    sys.path.insert(0, stubs)
    import torch
    torch.set_num_threads(1)
    calls = install_cuda_device_shim(torch)
    import timm
    import models  # VMamba's classification/models package
    from models import csm_triton, csms6s, vmamba
    from models.mamba2 import ssd_minimal
    tree = os.path.realpath(os.path.join(pe.vendor_root(), "vmamba-2ed52ea")) + os.sep
    for m in (models, vmamba, csm_triton, csms6s, ssd_minimal):
        assert os.path.realpath(m.__file__).startswith(tree), m.__file__
    assert os.path.realpath(timm.__file__).startswith(
        os.path.realpath(os.path.join(pe.vendor_root(), "timm-v0.4.12")) + os.sep), timm.__file__
    assert timm.__version__ == "0.4.12", timm.__version__
    assert vmamba.DropPath.__module__ == "timm.models.layers.drop"
    for name in ("triton", "fvcore", "einops"):
        assert os.path.realpath(sys.modules[name].__file__).startswith(os.path.realpath(stubs))
    # No CUDA scan kernel: selective_scan_fn takes the repository's torch reference.
    assert not (csms6s.WITH_SELECTIVESCAN_OFLEX or csms6s.WITH_SELECTIVESCAN_CORE
                or csms6s.WITH_SELECTIVESCAN_MAMBA)
    assert csm_triton.WITH_TRITON and ssd_minimal.WITH_TRITON  # as with triton installed
    return torch, models, refs, calls


# ----- config: the publisher's defaults + yaml + tiny changes -----

def config_defaults(path):
    """{'MODEL.VSSM.EMBED_DIM': 96, ...}: every `_C.<dotted> = <literal>` of config.py."""
    out = {}
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        t, parts = node.targets[0], []
        while isinstance(t, ast.Attribute):
            parts.append(t.attr)
            t = t.value
        if not (isinstance(t, ast.Name) and t.id == "_C" and parts):
            continue
        try:
            out[".".join(reversed(parts))] = ast.literal_eval(node.value)
        except ValueError:
            pass  # CN() nodes
    return out


def flatten_yaml(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_yaml(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def namespace(flat):
    root = types.SimpleNamespace()
    for key, v in flat.items():
        node = root
        parts = key.split(".")
        for p in parts[:-1]:
            if not hasattr(node, p):
                setattr(node, p, types.SimpleNamespace())
            node = getattr(node, p)
        setattr(node, parts[-1], v)
    return root


def make_config(yaml_name, overrides):
    import yaml
    cls = os.path.join(pe.vendor_root(), "vmamba-2ed52ea", "classification")
    flat = config_defaults(os.path.join(cls, "config.py"))
    with open(os.path.join(cls, "configs", "vssm", yaml_name)) as f:
        from_yaml = flatten_yaml(yaml.safe_load(f))
    for k in from_yaml:
        assert k in flat, k
    flat.update(from_yaml)
    for k in overrides:
        assert k in flat, k
    full = dict(flat)
    flat.update(overrides)
    return flat, full, from_yaml


VSSM_KWARGS = [  # what models.build_vssm_model passes to VSSM, from which config key
    ("patch_size", "MODEL.VSSM.PATCH_SIZE"), ("in_chans", "MODEL.VSSM.IN_CHANS"),
    ("num_classes", "MODEL.NUM_CLASSES"), ("depths", "MODEL.VSSM.DEPTHS"),
    ("dims", "MODEL.VSSM.EMBED_DIM"), ("ssm_d_state", "MODEL.VSSM.SSM_D_STATE"),
    ("ssm_ratio", "MODEL.VSSM.SSM_RATIO"), ("ssm_rank_ratio", "MODEL.VSSM.SSM_RANK_RATIO"),
    ("ssm_dt_rank", "MODEL.VSSM.SSM_DT_RANK"), ("ssm_act_layer", "MODEL.VSSM.SSM_ACT_LAYER"),
    ("ssm_conv", "MODEL.VSSM.SSM_CONV"), ("ssm_conv_bias", "MODEL.VSSM.SSM_CONV_BIAS"),
    ("ssm_drop_rate", "MODEL.VSSM.SSM_DROP_RATE"), ("ssm_init", "MODEL.VSSM.SSM_INIT"),
    ("forward_type", "MODEL.VSSM.SSM_FORWARDTYPE"), ("mlp_ratio", "MODEL.VSSM.MLP_RATIO"),
    ("mlp_act_layer", "MODEL.VSSM.MLP_ACT_LAYER"), ("mlp_drop_rate", "MODEL.VSSM.MLP_DROP_RATE"),
    ("drop_path_rate", "MODEL.DROP_PATH_RATE"), ("patch_norm", "MODEL.VSSM.PATCH_NORM"),
    ("norm_layer", "MODEL.VSSM.NORM_LAYER"), ("downsample_version", "MODEL.VSSM.DOWNSAMPLE"),
    ("patchembed_version", "MODEL.VSSM.PATCHEMBED"), ("gmlp", "MODEL.VSSM.GMLP"),
    ("use_checkpoint", "TRAIN.USE_CHECKPOINT"), ("posembed", "MODEL.VSSM.POSEMBED"),
    ("imgsize", "DATA.IMG_SIZE"),
]


def build(models, flat):
    model = models.build_vssm_model(namespace(flat))
    assert type(model).__name__ == "VSSM", type(model)
    return model


# ----- weights -----

def init_rule(name, shape):
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "A_logs":
        return "log(n)+0.5*N(0,1)"
    if leaf == "Ds":
        return "1+0.5*N(0,1)"
    if leaf == "dt_projs_weight":
        return "U(-1,1)/sqrt(dt_rank)"
    if leaf == "dt_projs_bias":
        return "softplus^-1(clamp(exp(U(log 1e-3, log 1e-1)), 1e-4))"
    if leaf == "x_proj_weight":
        return "N(0,1)/sqrt(fan_in)"
    if leaf == "bias":
        return "0.1*N(0,1)"
    if leaf == "weight" and len(shape) == 1:
        return "1+0.2*N(0,1)"  # LayerNorm / LayerNorm2d
    assert leaf == "weight" and len(shape) in (2, 4), name
    return "N(0,1)/sqrt(fan_in)"


def randomize(model, torch):
    sd = model.state_dict()
    params = dict(model.named_parameters())
    assert sorted(sd) == sorted(params), "buffers present"
    rules = {}
    with torch.no_grad():
        for name in sorted(sd):
            p = params[name]
            shape = tuple(p.shape)
            rule = init_rule(name, shape)
            g = torch.Generator().manual_seed(SEED * 2 ** 32 + zlib.crc32(name.encode()))
            if rule.startswith("U(-1,1)"):
                v = (2 * torch.rand(shape, generator=g) - 1) / math.sqrt(shape[-1])
            elif rule.startswith("softplus^-1"):
                lo, hi = math.log(1e-3), math.log(1e-1)
                dt = torch.exp(torch.rand(shape, generator=g) * (hi - lo) + lo).clamp(min=1e-4)
                v = dt + torch.log(-torch.expm1(-dt))  # mamba_init.dt_init's inverse softplus
            else:
                r = torch.randn(shape, generator=g)
                if rule == "log(n)+0.5*N(0,1)":
                    n = torch.arange(1, shape[1] + 1, dtype=torch.float32).view(1, -1)
                    v = torch.log(n) + 0.5 * r
                elif rule == "1+0.5*N(0,1)":
                    v = 1.0 + 0.5 * r
                elif rule == "1+0.2*N(0,1)":
                    v = 1.0 + 0.2 * r
                elif rule == "0.1*N(0,1)":
                    v = 0.1 * r
                elif name.endswith("x_proj_weight"):  # [K, R+2N, Di]: K stacked Linear(Di, R+2N)
                    v = r / math.sqrt(shape[-1])
                else:  # Linear [out, in], Conv2d [out, in/groups, kh, kw]
                    v = r / math.sqrt(int(np.prod(shape[1:])))
            p.copy_(v)
            rules[name] = rule
    return rules


# ----- running the publisher's model, capturing every stage -----

def scan_recorder(csms6s, torch):
    """Wraps csms6s.selective_scan_torch (selective_scan_fn looks it up at call time) with a
    transparent recorder of each call's inputs and output."""
    orig = csms6s.selective_scan_torch
    log = []

    def selective_scan_torch(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                             oflex=True, *args, **kwargs):
        out = orig(u, delta, A, B, C, D, delta_bias, delta_softplus, oflex, *args, **kwargs)
        log.append({"inputs": [t.detach().clone() for t in (u, delta, A, B, C, D, delta_bias)],
                    "delta_softplus": delta_softplus, "oflex": oflex, "extra": (args, kwargs),
                    "out": out.detach().clone()})
        return out

    csms6s.selective_scan_torch = selective_scan_torch
    return orig, log


def run(model, x, torch, dump=None):
    """model(x) under no_grad with hooks: returns (logits, {name: tensor}, ss2d dump or None)."""
    cap, handles = {}, []

    def hook(name):
        def f(mod, inp, out):
            cap[name] = out.detach().clone()
        return f

    handles.append(model.patch_embed.register_forward_hook(hook("patch_embed")))
    for i, layer in enumerate(model.layers):
        handles.append(layer.blocks.register_forward_hook(hook("hidden_states_%d" % i)))
        handles.append(layer.register_forward_hook(hook("layer_output_%d" % i)))
    handles.append(model.classifier.norm.register_forward_hook(hook("classifier_norm")))
    handles.append(model.classifier.flatten.register_forward_hook(hook("pooled")))
    op = None
    if dump is not None:
        op = model.layers[dump[0]].blocks[dump[1]].op
        op.__DEBUG__ = True  # the publisher's own debug hook: forward_corev2 keeps its tensors
        handles.append(op.register_forward_pre_hook(
            lambda mod, inp: cap.__setitem__("ss2d_input", inp[0].detach().clone())))
        handles.append(op.register_forward_hook(hook("ss2d_output")))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
        if op is not None:
            del op.__DEBUG__
    data = None
    if op is not None:
        data = {k: (v.detach().clone() if torch.is_tensor(v) else v)
                for k, v in op.__data__.items()}
        del op.__data__
    return logits.detach().clone(), cap, data


# ----- independent float64 forward (NumPy only), written from the description in index.json -----

def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def softplus(x):  # torch's softplus: beta 1, threshold 20
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


def ln2d(x, w, b, eps=1e-5):
    mu = x.mean(1, keepdims=True)
    var = ((x - mu) ** 2).mean(1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w[None, :, None, None] + b[None, :, None, None]


def linear2d(x, w, b=None):  # Linear2d: a 1x1 convolution with the Linear's [out, in] weight
    y = np.einsum("nchw,oc->nohw", x, w)
    return y if b is None else y + b[None, :, None, None]


def cross_scan(x):
    """x [B, D, H, W] -> [B, 4, D, L]: row-major, column-major, and both reversed."""
    b, d, h, w = x.shape
    s0 = x.reshape(b, d, h * w)
    s1 = x.transpose(0, 1, 3, 2).reshape(b, d, w * h)
    return np.stack([s0, s1, s0[..., ::-1], s1[..., ::-1]], axis=1)


def cross_merge(ys, h, w):
    """ys [B, 4, D, L] (each in its own scan order) -> [B, D, H, W], the four summed in place."""
    b, _, d, _ = ys.shape
    row = ys[:, 0] + ys[:, 2][..., ::-1]
    col = ys[:, 1] + ys[:, 3][..., ::-1]
    return (row.reshape(b, d, h, w) + col.reshape(b, d, w, h).transpose(0, 1, 3, 2))


def selective_scan(u, delta, A, Bm, Cm, D):
    """u, delta [B, Dc, L]; A [Dc, N]; Bm, Cm [B, N, L]; D [Dc] -> y [B, Dc, L] (delta already
    biased and softplus'ed): h_l = exp(delta_l A) h_{l-1} + delta_l B_l u_l, y_l = C_l . h_l + D u_l."""
    b, dc, L = u.shape
    hstate = np.zeros((b, dc, A.shape[1]))
    y = np.zeros((b, dc, L))
    for t in range(L):
        dA = np.exp(delta[:, :, t, None] * A[None])
        hstate = dA * hstate + (delta[:, :, t] * u[:, :, t])[:, :, None] * Bm[:, None, :, t]
        y[:, :, t] = (hstate * Cm[:, None, :, t]).sum(-1)
    return y + D[None, :, None] * u


def ss2d(sd, p, x, d_state):
    """SS2D, forward_type v05_noz, channel-first: x [B, C, H, W] -> [B, C, H, W]."""
    b, c, h, w = x.shape
    xi = linear2d(x, sd[p + "in_proj.weight"])                          # [B, Di, H, W]
    xi = silu(ma.conv2d(xi, sd[p + "conv2d.weight"], sd.get(p + "conv2d.bias"), 1,
                        (sd[p + "conv2d.weight"].shape[-1] - 1) // 2, depthwise=True))
    di = xi.shape[1]
    xs = cross_scan(xi)                                                  # [B, 4, Di, L]
    xw = sd[p + "x_proj_weight"]                                         # [4, R+2N, Di]
    dtw = sd[p + "dt_projs_weight"]                                      # [4, Di, R]
    R = dtw.shape[2]
    x_dbl = np.einsum("kcd,bkdl->bkcl", xw, xs)
    dts, Bs, Cs = x_dbl[:, :, :R], x_dbl[:, :, R:R + d_state], x_dbl[:, :, R + d_state:]
    dts = np.einsum("kdr,bkrl->bkdl", dtw, dts)
    delta = softplus(dts + sd[p + "dt_projs_bias"][None, :, :, None])
    A = -np.exp(sd[p + "A_logs"]).reshape(4, di, d_state)
    Ds = sd[p + "Ds"].reshape(4, di)
    ys = np.stack([selective_scan(xs[:, k], delta[:, k], A[k], Bs[:, k], Cs[:, k], Ds[k])
                   for k in range(4)], axis=1)                           # [B, 4, Di, L]
    y = cross_merge(ys, h, w)
    y = ln2d(y, sd[p + "out_norm.weight"], sd[p + "out_norm.bias"])
    return linear2d(y, sd[p + "out_proj.weight"])


def independent_forward(sd, cfg, x):
    """sd: name -> float64 array; x [B, 3, H, W] float64. Returns {output name: array}."""
    out = {}
    t = ma.conv2d(x, sd["patch_embed.0.weight"], sd["patch_embed.0.bias"], 2, 1)
    t = gelu(ln2d(t, sd["patch_embed.2.weight"], sd["patch_embed.2.bias"]))
    t = ma.conv2d(t, sd["patch_embed.5.weight"], sd["patch_embed.5.bias"], 2, 1)
    t = ln2d(t, sd["patch_embed.7.weight"], sd["patch_embed.7.bias"])
    out["patch_embed"] = t
    for i, depth in enumerate(cfg["depths"]):
        for j in range(depth):
            p = "layers.%d.blocks.%d." % (i, j)
            t = t + ss2d(sd, p + "op.", ln2d(t, sd[p + "norm.weight"], sd[p + "norm.bias"]),
                         cfg["d_state"])
            hmid = linear2d(ln2d(t, sd[p + "norm2.weight"], sd[p + "norm2.bias"]),
                            sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])
            t = t + linear2d(gelu(hmid), sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        out["hidden_states_%d" % i] = t
        if i < len(cfg["depths"]) - 1:
            p = "layers.%d.downsample." % i
            t = ln2d(ma.conv2d(t, sd[p + "1.weight"], sd[p + "1.bias"], 2, 1),
                     sd[p + "3.weight"], sd[p + "3.bias"])
        out["layer_output_%d" % i] = t
    t = ln2d(t, sd["classifier.norm.weight"], sd["classifier.norm.bias"])
    out["classifier_norm"] = t
    out["pooled"] = t.mean(axis=(2, 3))
    out["logits"] = out["pooled"] @ sd["classifier.head.weight"].T + sd["classifier.head.bias"]
    return out


# ----- fixture files -----

def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def mx(a):
    return float(np.abs(np.asarray(a, dtype=np.float64)).max())


def make_case(torch, models, out_root, case, yaml_name, factory, overrides, input_seed, hw,
              device_calls):
    from models import csms6s, vmamba
    out_dir = os.path.join(out_root, case)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    flat, full, from_yaml = make_config(yaml_name, overrides)
    kwargs = {k: flat[key] for k, key in VSSM_KWARGS}

    # The yaml's full-size config is the publisher's factory function (keys and shapes).
    torch.manual_seed(0)
    big = build(models, full).state_dict()
    ref = getattr(vmamba, factory)().state_dict()
    assert [(k, tuple(v.shape)) for k, v in big.items()] == \
        [(k, tuple(v.shape)) for k, v in ref.items()], factory
    full_size = {"keys": len(big), "parameters": int(sum(v.numel() for v in big.values()))}
    del big, ref

    torch.manual_seed(0)  # the repository's own init runs first; randomize() overwrites it all
    model = build(models, flat)
    rules = randomize(model, torch)
    model.eval()
    sd = model.state_dict()
    ckpt_path = os.path.join(out_dir, CKPT_NAME)
    torch.save({"model": sd}, ckpt_path)

    # Reload as the publisher does: torch.load, checkpoint['model'], a fresh model.
    ckpt = torch.load(ckpt_path, map_location="cpu")
    assert list(ckpt) == ["model"]
    m = build(models, flat)
    res = m.load_state_dict(ckpt["model"], strict=True)
    assert not res.missing_keys and not res.unexpected_keys, res
    got = m.state_dict()
    assert list(got) == list(sd)
    for k, v in sd.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), k
    m.eval()

    h, w = hw
    x = ma.pixel_values(torch, input_seed, h, w)
    n_dev = len(device_calls)
    orig_scan, scans = scan_recorder(csms6s, torch)
    try:
        logits, cap, dump = run(m, x, torch, dump=SS2D_DUMP)
        n_scan_calls = len(scans)
        logits2, cap2, _ = run(m, x, torch)                    # repeat, no debug hook
        logits3, cap3, _ = run(model, x, torch)                # the in-memory model
    finally:
        csms6s.selective_scan_torch = orig_scan
    n_blocks = sum(kwargs["depths"])
    assert n_scan_calls == n_blocks, (n_scan_calls, n_blocks)
    assert len(device_calls) - n_dev == 3 * 2 * n_blocks  # cross_scan + cross_merge, 3 runs
    checks = {"checkpoint_top_level_keys": ["model"],
              "load_state_dict_strict_missing_unexpected": [[], []],
              "reloaded_tensors_equal_saved": True}
    checks["repeat_run_bitexact"] = bool(torch.equal(logits, logits2) and all(
        torch.equal(cap[k], cap2[k]) for k in cap2))
    checks["reloaded_vs_in_memory_outputs_bitexact"] = bool(torch.equal(logits, logits3) and all(
        torch.equal(cap[k], cap3[k]) for k in cap3))
    with torch.no_grad():
        checks["logits_equal_head_of_pooled"] = bool(
            torch.equal(m.classifier.head(cap["pooled"]), logits))
    last = len(kwargs["depths"]) - 1
    checks["final_feature_map_is_hidden_states_last"] = bool(
        torch.equal(cap["layer_output_%d" % last], cap["hidden_states_%d" % last]))
    checks["selective_scan_calls_per_forward"] = n_scan_calls
    checks["selective_scan_implementation"] = (
        "models/csms6s.py selective_scan_torch (WITH_SELECTIVESCAN_OFLEX/CORE/MAMBA all False), "
        "called through selective_scan_fn(..., backend=None) by SS2D.forward_corev2")
    checks["cross_scan_implementation"] = (
        "models/csm_triton.py CrossScanF/CrossMergeF (cross_scan_fwd/cross_merge_fwd, torch), "
        "chosen because the tensors are not CUDA tensors")
    checks["cuda_device_shim_cpu_calls_per_forward"] = 2 * n_blocks
    for k in ("repeat_run_bitexact", "reloaded_vs_in_memory_outputs_bitexact",
              "logits_equal_head_of_pooled", "final_feature_map_is_hidden_states_last"):
        assert checks[k] is True, k

    # float64: model.double() alone fails in the publisher's code; promoted, it runs in float64.
    md = copy.deepcopy(m).double()
    try:
        with torch.no_grad():
            md(x.double())
        plain_double = "ran"
    except RuntimeError as e:
        plain_double = "RuntimeError: " + str(e).splitlines()[0]
    assert plain_double.startswith("RuntimeError"), plain_double
    orig_scan, scans64 = scan_recorder(csms6s, torch)
    try:
        with promote_float64(torch):
            logits64, cap64, dump64 = run(md, x.double(), torch, dump=SS2D_DUMP)
    finally:
        csms6s.selective_scan_torch = orig_scan
    assert logits64.dtype == torch.float64 and all(v.dtype == torch.float64 for v in cap64.values())
    for s in scans64:
        assert all(t.dtype == torch.float64 for t in s["inputs"]) and s["out"].dtype == torch.float64
    for k, v in dump64.items():
        assert not torch.is_tensor(v) or v.dtype == torch.float64, k
    checks["plain_model_double"] = plain_double

    # Each scan's own float32 error: the float32 call's inputs, rerun in float64.
    scan_err = []
    names = ["layers.%d.blocks.%d" % (i, j) for i, d in enumerate(kwargs["depths"])
             for j in range(d)]
    for name, s in zip(names, scans[:n_scan_calls]):
        u, delta, A, B, C, D, db = s["inputs"]
        with promote_float64(torch):
            y64 = orig_scan(*(t.double() for t in (u, delta, A, B, C, D, db)), True, True)
        # the same inputs through the NumPy recurrence (delta biased and softplus'ed here)
        Bsz, KD, L = u.shape
        K, N = B.shape[1], B.shape[2]
        dd = softplus(delta.double().numpy() + db.double().numpy()[None, :, None])
        yn = np.concatenate([selective_scan(
            u.double().numpy()[:, k * (KD // K):(k + 1) * (KD // K)],
            dd[:, k * (KD // K):(k + 1) * (KD // K)],
            A.double().numpy()[k * (KD // K):(k + 1) * (KD // K)],
            B.double().numpy()[:, k], C.double().numpy()[:, k],
            D.double().numpy()[k * (KD // K):(k + 1) * (KD // K)]) for k in range(K)], axis=1)
        e = (s["out"].double() - y64).abs()
        scan_err.append({
            "block": name, "L": L, "K_times_D_inner": KD, "d_state": N,
            "max_abs_y": float(y64.abs().max()),
            "max_abs_err_float32": float(e.max()),
            "max_rel_err_float32": float((e / y64.abs().max()).max()),
            "softplus_delta_range": [float(dd.min()), float(dd.max())],
            "decay_exp_delta_A_range": [
                float(np.exp(dd.max() * A.double().numpy().min())),
                float(np.exp(dd.min() * A.double().numpy().max()))],
            "numpy_recurrence_vs_publisher_float64_max_abs": mx(yn - y64.numpy())})
        assert scan_err[-1]["numpy_recurrence_vs_publisher_float64_max_abs"] < 1e-12, scan_err[-1]

    # The same scan at the sequence lengths of full-size models (stage 0 of a 224x224 input is
    # 56x56 = 3136): this case's layers.0.blocks.0 A_logs, Ds and dt_projs_bias, synthetic seeded
    # u ~ N(0,1), pre-bias delta ~ 0.3*N(0,1), B, C ~ 0.5*N(0,1); float32 vs float64.
    op0 = m.layers[0].blocks[0].op
    A0 = -op0.A_logs.detach().exp()
    D0, db0 = op0.Ds.detach(), op0.dt_projs_bias.detach().reshape(-1)
    probe = []
    for L in LENGTH_PROBE:
        g = torch.Generator().manual_seed(LENGTH_PROBE_SEED + L)
        u = torch.randn(2, A0.shape[0], L, generator=g)
        de = 0.3 * torch.randn(2, A0.shape[0], L, generator=g)
        Bp = 0.5 * torch.randn(2, 4, A0.shape[1], L, generator=g)
        Cp = 0.5 * torch.randn(2, 4, A0.shape[1], L, generator=g)
        with torch.no_grad():
            y32 = orig_scan(u, de, A0, Bp, Cp, D0, db0, True, True)
            with promote_float64(torch):
                y64 = orig_scan(*(t.double() for t in (u, de, A0, Bp, Cp, D0, db0)), True, True)
        assert y32.dtype == torch.float32 and y64.dtype == torch.float64
        e = float((y32.double() - y64).abs().max())
        probe.append({"L": L, "max_abs_y": float(y64.abs().max()), "max_abs_err_float32": e,
                      "max_rel_err_float32": e / float(y64.abs().max())})

    # Independent NumPy float64 forward.
    sd64 = {k: v.double().numpy() for k, v in got.items()}
    cfgi = {"depths": kwargs["depths"], "d_state": kwargs["ssm_d_state"]}
    ind = independent_forward(sd64, cfgi, x.double().numpy())
    ind_vs_pub64 = {k: mx(ind[k] - (logits64 if k == "logits" else cap64[k]).numpy()) for k in ind}
    assert all(v < 1e-10 for v in ind_vs_pub64.values()), ind_vs_pub64

    # Files.
    outputs = {"logits": logits, **{k: v for k, v in cap.items()
                                     if not k.startswith(("ss2d_", "layer_output_"))}}
    for i in range(len(kwargs["depths"]) - 1):
        outputs["downsample_%d" % i] = cap["layer_output_%d" % i]
    files = {}
    files[CKPT_NAME] = {
        "bytes": os.path.getsize(ckpt_path), "sha256": sha256(ckpt_path),
        "format": "torch.save zip (torch 1.13, pickle protocol 2), archive name 'vmamba'",
        "saved_with": "torch.save({'model': model.state_dict()}, '%s')" % CKPT_NAME,
        "meaning": "the checkpoint as the publisher loads it: checkpoint['model'] is the VSSM "
                   "state_dict (every tensor F32, C-contiguous, no buffers); load with "
                   "VSSM(...).load_state_dict(ckpt['model'])",
        "tensors": {k: {"shape": list(v.shape), "init": rules[k]} for k, v in sd.items()}}
    px = ma.npy(out_dir, "pixel_values", x)
    files["pixel_values.npy"] = {
        "shape": list(px.shape), "dtype": "float32", "layout": "NCHW", "max_abs": mx(px),
        "meaning": "model input (already normalised): torch.randn(2, 3, %d, %d, generator="
                   "torch.Generator().manual_seed(%d)) + linspace(-0.5, 0.5, %d) along W"
                   % (h, w, input_seed, w)}
    meaning = {
        "patch_embed": "model.patch_embed(pixel_values): the stem (patchembed v2), [B, C0, H/4, W/4] "
                       "(each stride-2 conv: out = ceil(in/2))",
        "classifier_norm": "model.classifier.norm (LayerNorm2d) of the last stage's output: the "
                           "final feature map, normalised, before pooling",
        "pooled": "model.classifier.flatten(avgpool(classifier_norm)): mean over H, W, [B, C3]",
        "logits": "model(pixel_values) = classifier.head(pooled), [B, num_classes]",
    }
    for i in range(len(kwargs["depths"])):
        meaning["hidden_states_%d" % i] = (
            "model.layers[%d].blocks(...) output: stage %d after its %d VSSBlock(s), BEFORE the "
            "stage's downsample (what Backbone_VSSM returns before its outnorm%d)%s"
            % (i, i, kwargs["depths"][i], i,
               "; the last stage has no downsample, so this is also the final feature map that "
               "classifier.norm receives" if i == len(kwargs["depths"]) - 1 else ""))
    for i in range(len(kwargs["depths"]) - 1):
        meaning["downsample_%d" % i] = (
            "model.layers[%d].downsample(hidden_states_%d) (downsample v3: Conv2d 3x3 stride 2 "
            "pad 1 with bias -> LayerNorm2d): the input of stage %d" % (i, i, i + 1))
    order = (["patch_embed"] + [k for i in range(len(kwargs["depths"]))
                                for k in ("hidden_states_%d" % i, "downsample_%d" % i)
                                if k in outputs] + ["classifier_norm", "pooled", "logits"])
    assert sorted(order) == sorted(outputs), (order, sorted(outputs))
    def ref64(k):  # the captured name of an output file (downsample_i = layers[i]'s output)
        k = k.replace("downsample_", "layer_output_")
        return ind[k], (logits64 if k == "logits" else cap64[k]).numpy()

    for k in order:
        a = ma.npy(out_dir, k, outputs[k])
        r_ind, r_pub = ref64(k)
        d32 = mx(r_ind - outputs[k].double().numpy())
        d_pub = mx(r_pub - outputs[k].double().numpy())
        files[k + ".npy"] = {
            "shape": list(a.shape), "dtype": "float32",
            "layout": "NCHW" if a.ndim == 4 else "[B, features]",
            "max_abs": mx(a), "meaning": meaning[k],
            "fp32_vs_fp64_max_abs_diff": d_pub,
            "fp32_vs_independent_fp64_max_abs_diff": d32,
            "tolerance": ma.tolerance(max(d_pub, d32), mx(a))}

    # The SS2D of layers[i].blocks[j]: its input, the scan's inputs and outputs, its output.
    i, j = SS2D_DUMP
    pre = "ss2d_%d_%d_" % (i, j)
    B_, C_, H_, W_ = cap["ss2d_input"].shape
    Di = dump["us"].shape[1] // 4
    L_ = H_ * W_
    N_ = kwargs["ssm_d_state"]
    R_ = m.layers[i].blocks[j].op.dt_rank
    ss = {
        "input": (cap["ss2d_input"], cap64["ss2d_input"],
                  "layers[%d].blocks[%d].norm(x): the SS2D's input, [B, C, H, W]" % (i, j)),
        "us": (dump["us"], dump64["us"],
               "u of the selective scan = cross_scan(silu(conv2d(in_proj(input)))), [B, 4*Di, L]: "
               "direction k occupies rows k*Di..k*Di+Di-1 (k0 row-major h*W+w, k1 column-major "
               "w*H+h, k2 = k0 reversed, k3 = k1 reversed)"),
        "dts": (dump["dts"], dump64["dts"],
                "delta BEFORE dt_projs_bias and softplus: dt_projs_weight[k] @ x_dbl[:, k, :R], "
                "[B, 4*Di, L]"),
        "Bs": (dump["Bs"], dump64["Bs"], "B = x_dbl[:, k, R:R+N], [B, 4, N, L]"),
        "Cs": (dump["Cs"], dump64["Cs"], "C = x_dbl[:, k, R+N:R+2N], [B, 4, N, L]"),
        "ys": (dump["ys"].reshape(B_, 4, Di, L_), dump64["ys"].reshape(B_, 4, Di, L_),
               "selective scan output incl. the D*u skip, [B, 4, Di, L], each direction in its "
               "OWN scan order (forward_corev2 views it as [B, 4, Di, H, W]; that view is only "
               "a reshape)"),
        "y": (dump["y"].reshape(B_, Di, H_, W_), dump64["y"].reshape(B_, Di, H_, W_),
              "cross_merge(ys): the four directions mapped back to row-major positions and "
              "summed, BEFORE out_norm, [B, Di, H, W]"),
        "output": (cap["ss2d_output"], cap64["ss2d_output"],
                   "out_proj(out_norm(y)): the SS2D's output (added to the block's residual), "
                   "[B, C, H, W]"),
    }
    for name, (t32, t64, what) in ss.items():
        a = ma.npy(out_dir, pre + name, t32)
        d = mx(t64.numpy() - t32.double().numpy())
        files[pre + name + ".npy"] = {"shape": list(a.shape), "dtype": "float32", "max_abs": mx(a),
                                      "meaning": what, "fp32_vs_fp64_max_abs_diff": d,
                                      "tolerance": ma.tolerance(d, mx(a))}
    ss2d_dump = {"module": "layers[%d].blocks[%d].op" % (i, j), "H": H_, "W": W_, "L": L_,
                 "C": C_, "D_inner": Di, "d_state": N_, "dt_rank": R_,
                 "how": "forward_corev2's own debug record (op.__DEBUG__ = True makes it keep "
                        "us, dts, Bs, Cs, ys, y in op.__data__) plus hooks on op's input and "
                        "output, in the same model(pixel_values) call as the other files"}

    for f in os.listdir(out_dir):
        assert os.path.getsize(os.path.join(out_dir, f)) < MAX_FILE_BYTES, f
    checks["independent_reimplementation"] = {
        "what": "%s independent_forward: NumPy float64, written from this index's description (no "
                "VMamba code), on the reloaded weights and pixel_values" % GENERATOR,
        "max_abs_diff_vs_publisher_float64_run": ind_vs_pub64}
    checks["publisher_float64_run"] = {
        "what": "copy.deepcopy(model).double() run by the publisher's code on pixel_values.double() "
                "under promote_float64() (see shims); every output and every scan in float64",
        "max_abs_diff_vs_float32_fixture": {k: files[k + ".npy"]["fp32_vs_fp64_max_abs_diff"]
                                            for k in order}}
    checks["selective_scan_float32_error"] = {
        "what": "per SS2D (one selective_scan_torch call of all 4 directions each): the float32 "
                "call's own inputs rerun by selective_scan_torch in float64; max_rel = max abs err "
                "/ max |y|; numpy_recurrence_* = the same inputs through this file's "
                "`selective_scan` (float64)",
        "per_block": scan_err}
    checks["selective_scan_float32_error_long_sequences"] = {
        "what": "selective_scan_torch in float32 vs float64 at full-size sequence lengths (56x56 = "
                "3136 is stage 0 of a 224x224 input): this case's layers.0.blocks.0 A_logs, Ds, "
                "dt_projs_bias; synthetic u ~ N(0,1), pre-bias delta ~ 0.3*N(0,1), B, C ~ "
                "0.5*N(0,1) from torch.Generator().manual_seed(%d + L), batch 2"
                % LENGTH_PROBE_SEED,
        "per_length": probe}
    return out_dir, flat, from_yaml, kwargs, full_size, checks, files, ss2d_dump


ARCHITECTURE = [
    "Everything is channel-first (norm_layer 'ln2d' => VSSM.channel_first): NCHW from the stem to "
    "the classifier; Linear layers are Linear2d = F.conv2d(x, weight[:, :, None, None], bias) "
    "(a 1x1 convolution; the weight is stored as the nn.Linear [out, in])",
    "LayerNorm2d: nn.LayerNorm over the channel dimension at every pixel (permute to NHWC, "
    "F.layer_norm(C), permute back); eps 1e-5, affine (weight, bias); every norm in the model is "
    "one",
    "GELU is exact (erf, nn.GELU default); SiLU x*sigmoid(x); softplus beta 1 threshold 20",
    "stem (patchembed v2, patch_size 4): patch_embed.0 Conv2d(3, C0/2, 3, stride 2, pad 1, bias) "
    "-> patch_embed.2 LayerNorm2d(C0/2) -> GELU (index 4) -> patch_embed.5 Conv2d(C0/2, C0, 3, "
    "stride 2, pad 1, bias) -> patch_embed.7 LayerNorm2d(C0) (indices 1, 3, 6 are Identity); no "
    "position embedding (posembed False)",
    "stage i (dims C_i = C0 * 2^i): layers.i.blocks = depth_i VSSBlocks, then layers.i.downsample "
    "(downsample v3, i < 3): .1 Conv2d(C_i, C_{i+1}, 3, stride 2, pad 1, bias) -> .3 "
    "LayerNorm2d(C_{i+1}) (.0, .2 Identity); layers.3.downsample is Identity",
    "VSSBlock (pre-norm, post_norm False): x = x + op(norm(x)); x = x + mlp(norm2(x)); DropPath "
    "is the identity in eval; mlp = fc1 Linear2d(C, 4C, bias) -> GELU -> fc2 Linear2d(4C, C, bias) "
    "(Mlp, mlp_ratio 4, dropout 0)",
    "classifier: norm LayerNorm2d(C3) -> permute Identity -> AdaptiveAvgPool2d(1) -> Flatten -> "
    "head nn.Linear(C3, num_classes)",
]

SS2D_DESCRIPTION = [
    "SS2D with forward_type 'v05_noz' (SS2Dv2.__initv2__ + forwardv2 + forward_corev2(force_fp32="
    "False, no_einsum=True, selective_scan_backend=None, scan_mode 'cross2d')): '_noz' = no z "
    "gate (in_proj has d_inner outputs, no y*silu(z)); no '_oact' (out_act Identity); out_norm "
    "LayerNorm2d(d_inner) (no '_on*' suffix); no '_no32' (unused: force_fp32 is False anyway)",
    "sizes: C = block dim, Di = d_inner = int(ssm_ratio * C), N = d_state, R = dt_rank = "
    "ceil(C / 16) ('auto'), K = 4 directions, L = H*W",
    "1. in_proj: Linear2d(C, Di, no bias) -> conv2d: depthwise Conv2d(Di, Di, 3, pad 1, groups Di, "
    "bias = ssm_conv_bias = False) -> SiLU  => x [B, Di, H, W]",
    "2. cross scan (csm_triton.cross_scan_fwd, scans=0): xs [B, K, Di, L]: k0 = x flattened "
    "row-major (index h*W + w), k1 = x transposed to [W, H] and flattened (index w*H + h, "
    "column-major), k2 = k0 reversed along L, k3 = k1 reversed along L",
    "3. x_dbl = F.conv1d(xs.view(B, K*Di, L), x_proj_weight.view(K*(R+2N), Di, 1), groups=K): "
    "per direction k, x_dbl[:, k] = x_proj_weight[k] @ xs[:, k]  ([R+2N, Di] @ [Di, L]); split "
    "into dts [B, K, R, L], Bs [B, K, N, L], Cs [B, K, N, L] (in that order along R+2N); no "
    "x_proj bias",
    "4. dts = F.conv1d(dts.view(B, K*R, L), dt_projs_weight.view(K*Di, R, 1), groups=K): per k, "
    "dt_projs_weight[k] [Di, R] @ dts[:, k]  => [B, K*Di, L]; no bias here",
    "5. A = -exp(A_logs) [K*Di, N]; D = Ds [K*Di]; delta_bias = dt_projs_bias.view(K*Di); all "
    "directions are one scan over K*Di channels, channel c = k*Di + d uses B[:, k], C[:, k]",
    "6. selective_scan_torch: delta = softplus(dts + delta_bias); for each (b, c): h_0 = 0, "
    "h_l = exp(delta_l * A_c) * h_{l-1} + delta_l * B_{k,l} * u_l  (h in R^N, elementwise over N), "
    "y_l = sum_n C_{k,l,n} h_{l,n}; out = y + D_c * u. Computed in float32 (u, delta, A, B, C are "
    "cast with .float()); sequential over l = 0..L-1 in each direction's own order",
    "7. cross merge (cross_merge_fwd, scans=0): y = ys[k0] + reverse(ys[k2]) (row-major), plus "
    "(ys[k1] + reverse(ys[k3])) read as [W, H] and transposed back to [H, W]; => [B, Di, H, W]",
    "8. out_norm LayerNorm2d(Di) -> out_proj Linear2d(Di, C, no bias) (dropout 0: Identity)",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=pe.FIXTURES, help="tests/data/encoders")
    args = ap.parse_args()
    torch, models, refs, device_calls = import_publisher()
    torch_version = "%s (Debian python3-torch %s, CPU, 1 thread)" % (torch.__version__,
                                                                     ma.debian_torch())
    for case, yaml_name, factory, overrides, input_seed, (h, w) in CASES:
        out_dir, flat, from_yaml, kwargs, full_size, checks, files, ss2d_dump = make_case(
            torch, models, args.out, case, yaml_name, factory, overrides, input_seed, (h, w),
            device_calls)
        dims = [kwargs["dims"] * 2 ** i for i in range(len(kwargs["depths"]))]
        index = {
            "model_name": case,
            "generator": GENERATOR,
            "publisher": dict(refs["vmamba-2ed52ea"], path="classification/models/vmamba.py",
                              model_class="VSSM", builder="models.build_vssm_model(config)",
                              pinned_by="commit: the repository has no release tags (head of "
                                        "main, 2025-03-07)"),
            "timm": refs["timm-v0.4.12"],
            "torch_version": torch_version,
            "numpy_version": np.__version__,
            "import_stubs": STUBS,
            "forward_shims": [CUDA_DEVICE_SHIM],
            "float64_reference_shims": [PROMOTE_SHIM],
            "seed": SEED,
            "weights": "every state_dict tensor from torch.Generator().manual_seed(%d * 2**32 + "
                       "zlib.crc32(name)); rules in files/%s/tensors/*/init (see the generator's "
                       "docstring for the dt/A/D ranges)" % (SEED, CKPT_NAME),
            "config_source": "classification/config.py defaults <- classification/configs/vssm/%s "
                             "<- config_overrides; the same yaml at full size builds the keys and "
                             "shapes of the publisher's factory %s() (%d keys, %d parameters)"
                             % (yaml_name, factory, full_size["keys"], full_size["parameters"]),
            "config_yaml": from_yaml,
            "config_overrides": overrides,
            "vssm_kwargs": kwargs,
            "derived": {"dims": dims, "d_inner": [int(kwargs["ssm_ratio"] * d) for d in dims],
                        "dt_rank": [int(math.ceil(d / 16)) for d in dims],
                        "d_state": kwargs["ssm_d_state"], "K_directions": 4,
                        "eval_notes": "drop_path_rate only feeds DropPath (identity in eval); "
                                      "imgsize only sizes the unused pos_embed (posembed False); "
                                      "ssm_rank_ratio is swallowed by **kwargs"},
            "input": {"batch": 2, "channels": 3, "height": h, "width": w, "seed": input_seed},
            "forward_call": "logits = model(pixel_values)  [eval, torch.no_grad, float32, 1 thread; "
                            "model = models.build_vssm_model(config) with load_state_dict("
                            "torch.load('%s')['model'], strict=True); every other file from "
                            "forward hooks on that call]" % CKPT_NAME,
            "layout": "all feature maps NCHW (channel-first); spatial sizes: stem H/4 x W/4 "
                      "(two stride-2 3x3 convs with pad 1, each ceil(n/2)), then each downsample "
                      "ceil(n/2)",
            "architecture": ARCHITECTURE,
            "ss2d": SS2D_DESCRIPTION,
            "ss2d_dump": ss2d_dump,
            "checks": checks,
            "files": files,
            "tolerance_note": "atol suggestions are 50x the float32-vs-float64 discrepancy (the "
                              "larger of the publisher's own float64 run and the independent "
                              "NumPy float64 forward vs the float32 file; ceil to one significant "
                              "digit, floored at 1e-5*max(1,max_abs)); compare with |a-b| <= "
                              "atol + rtol*|b|. The selective scan itself is a sequential "
                              "float32 recurrence whose decay exp(delta*A) lies in (0, 1): its "
                              "own float32 error stays at about one float32 ulp of max|y| "
                              "(relative <= ~1e-7) for L = 4..3136 "
                              "(checks/selective_scan_float32_error*), so the larger float32 vs "
                              "float64 differences of the outputs come from the convolutions, "
                              "1x1 projections and LayerNorm2d around it (LayerNorm over few "
                              "channels amplifies rounding by 1/std). A port that keeps the "
                              "sequential recurrence in float32 should meet these tolerances at "
                              "any L; a chunked or log-space (cumsum/cumprod) parallel scan is a "
                              "different algorithm and must be checked against these files.",
        }
        pe.write_json(os.path.join(out_dir, "index.json"), index)
        print("wrote", out_dir, sorted(os.listdir(out_dir)))


if __name__ == "__main__":
    main()
