#!/usr/bin/python3
"""Swin checkpoints as Ark/Ark+ and timm publish them (no config.json), made by the publishers'
own code:

  Ark (jlianglab/Ark, no release tags)  commit cba3fada5ec3276d55ad80213d4eae694ca526b0
        Ark_Plus/Pretraining/models.py: ArkSwinTransformer (imported from that tree, unchanged)
  timm v0.5.4   huggingface/pytorch-image-models  commit e0c4eec4b66dc14ae96097c7b4a7ef2af45ba309
        the release Ark and Ark+ pin (`timm == 0.5.4` in Ark_Plus/Pretraining/requirments,
        Ark_Plus/Finetuning/requirements.txt, Ark_MICCAI2023/requirments)
  timm v1.0.14  huggingface/pytorch-image-models  commit 5d535d7a2d4b435b1b5c1177fd8f04a12b942b9a
  transformers v4.47.1 (commit 241c04d36867259cdf11dbb4e9d9a60f9cb65ebc), cross-check only
on Debian's python3-torch 1.13 (CPU, float32, one thread, eval mode).

Architecture of every fixture (tiny, same shape): img_size 64, patch_size 4, in_chans 3,
embed_dim 8, depths (2, 2, 2), num_heads (2, 2, 4), window_size 4, mlp_ratio 4, qkv_bias,
LayerNorm eps 1e-5, no absolute position embedding (timm's default ape=False), patch_norm on.
Grids 16x16 (4x4 windows; block 1 shifted by 2 with the -100 mask), 8x8 (2x2 windows; block 1
shifted), 4x4 (grid == window: one window, and block 1's shift is dropped, as in the last stage
of every 224-px Swin with window 7; the last stage has depth 2, not 1, so that this shows). Every
parameter and floating buffer except attn_mask (a computed -100/0 constant) comes from a seeded
generator (1-D weights 1 + 0.1 r, everything else 0.15 r; the recipe of
make_published_layouts.randomize), the relative_position_bias_table included. With embed_dim 8
one copy of the weights is ~0.2 MB; the Ark+ training checkpoint holds two.

1. published/ark_swin/: ArkSwinTransformer(num_classes_list=[3, 2], projector_features=24,
   use_mlp=True, num_classes=5, ...) on timm 0.5.4, saved in the layout of the published Ark-6
   teacher file (ark6_teacher_ep200_swinb_projector1376_mlp.pth.tar): one flat teacher state dict,
   no container, no 'module.' prefix, timm 0.5.4 key names, with the relative_position_index
   (int64) and attn_mask (float) buffers, timm's unused classifier head.*, projector.0/.2 (the
   MLP projector) and omni_heads.{k}. Evidence for the layout: the load snippet of Ark's README
   (`state_dict = torch.load(...)`, delete head.*/head_dist.*, `load_state_dict(strict=False)`)
   and the key listing in jlianglab/Ark issue #1 (missing head.*, unexpected projector.0/.2 and
   omni_heads.0-5 only). The step that pulled this file out of the training checkpoint is not
   published; here it is torch.save(teacher.state_dict()). Ark builds the model without
   num_classes, so the real file's head is timm's default Linear(num_features, 1000); the fixture
   passes num_classes=5 to keep the file small (head.* is dead weight: Ark's forward never uses it).
   File: ark6_teacher_ep7_swintiny_projector24_mlp.pth.tar.
2. published/ark_swin_teacher/: the Ark+ layout: the dict Ark's engine.py writes with
   models.save_checkpoint (Ark_Plus/Pretraining/engine.py, every epoch):
     {'epoch': 7, 'lossMIN': [float per dataset], 'state_dict': student.state_dict(),
      'teacher': teacher.state_dict(), 'optimizer': optimizer.state_dict(),
      'scheduler': lr_scheduler.state_dict()}
   with student and teacher wrapped in torch.nn.DataParallel (engine.py does so when more than one
   GPU is visible, as a Swin-L/768 run needs; every Ark+ loader strips 'module.'), so both state
   dicts carry the 'module.' prefix. Linear projector (use_mlp=False, projector_features as
   Ark+'s Zeroshot notebook builds it: 1376 there, 24 here). The published Ark+ file
   (Ark6_swinLarge768_ep50.pth.tar) is read with checkpoint['teacher'] by Ark's Zeroshot notebook
   and by Finetuning (--init ark_plus --key teacher); that is the load done here. The teacher's
   backbone and timm head are the ark_swin teacher's (same seed); the student has other seeded
   weights. Optimizer/scheduler: timm 0.5.4 create_optimizer/create_scheduler with Ark+'s README
   settings (sgd, lr 0.3, momentum 0.9, weight decay 0, cosine, 20 warm-up epochs, 200 epochs),
   then `lr_scheduler.step(np.average(val_loss_list))` as engine.py calls it (so param_groups'
   'lr' is a numpy.float64: the pickle holds numpy scalar GLOBALs). No optimizer step was taken
   (a real epoch-7 file also holds one optimizer['state'][i]['momentum_buffer'] tensor per trained
   parameter; left out to keep the file small). Ark saves no 'args'.
   File: Ark2_swinTiny64_ep7.pth.tar.
3. published/timm_swin/: timm v1.0.14 timm.models.swin_transformer.SwinTransformer(num_classes=5,
   global_pool='avg', ...) saved with torch.save(model.state_dict(), 'swin_tiny.pth'): the new
   layout (PatchMerging at the START of stage i >= 1 as layers.{i}.downsample, head.fc.*, no
   relative_position_index / attn_mask: non-persistent buffers).

Reference outputs per fixture (float32 .npy, from pixel_values.npy, seeded 2x3x64x64), all token
tensors N x L x C with tokens row-major (y, x) (timm >= 0.9 works in N x H x W x C; reshaped):
  hidden_states_0    patch_embed output (conv, flatten, LayerNorm; no position embedding)
  stage_out_{i}      output of the blocks of stage i, before any patch merging that follows
                     (timm 0.5.4: layers[i].blocks[-1]; timm 1.0.14: layers[i])
  last_hidden_state  output of the final norm
  pooler_output      timm's pooled features: forward_features(x) in 0.5.4 (AdaptiveAvgPool1d),
                     forward_head(x, pre_logits=True) in 1.0.14; == last_hidden_state.mean(1)
                     (the max difference is recorded)
  Ark only: projector_output (model.generate_embeddings(x): projector(pooled), Ark+'s embedding),
            omni_head_{k} (model(x)[k]);  timm_swin only: logits (model(x), head.fc).
Each saved file is reloaded into a freshly built model with strict=True after what the
publisher's loader removes (ark_swin: nothing for ArkSwinTransformer, and Ark's README load into a
plain timm SwinTransformer is checked too; ark_swin_teacher: checkpoint['teacher'] with 'module.'
stripped as the Zeroshot notebook does) and must give bit-identical outputs. Cross-checks recorded
in index.json: the Ark backbone converted by timm 1.0.14's checkpoint_filter_fn and run by timm
1.0.14, and both layouts mapped onto transformers' SwinModel (v4.47.1).

How to run (vendor trees: publisher_env.py beside this file; each part runs in its own process
because both timm trees are the package `timm`):
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup timm=<bare git dir of
      huggingface/pytorch-image-models> ark=<bare git dir of jlianglab/Ark> \\
      transformers=<bare git dir> huggingface_hub=<bare git dir>       # once
  /usr/bin/python3 tests/golden/encoders/make_timm_swin.py [--out tests/data/encoders/published]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import publisher_env as pe  # noqa: E402

OLD_TREES = ["timm-v0.5.4", "ark-cba3fad"]
NEW_TREES = ["timm-v1.0.14"]
HF_TREES = ["transformers-v4.47.1", "huggingface_hub-v0.27.1"]

ARCH = dict(img_size=64, patch_size=4, in_chans=3, embed_dim=8, depths=(2, 2, 2),
            num_heads=(2, 2, 4), window_size=4, mlp_ratio=4.)
NUM_CLASSES = 5           # timm's classifier head (Ark leaves timm's default 1000)
OMNI_HEADS = [3, 2]       # Ark's num_classes_list (one head per pretraining dataset)
PROJECTOR = 24            # Ark's projector_features (1376 in the published models)
SEED_TEACHER, SEED_STUDENT, SEED_TIMM, SEED_PIXELS = 4100, 4200, 4300, 4101
EPOCH = 7

ARK_FILE = "ark6_teacher_ep7_swintiny_projector24_mlp.pth.tar"
ARK_PLUS_STEM = "Ark2_swinTiny64_ep7"          # models.save_checkpoint appends '.pth.tar'
TIMM_FILE = "swin_tiny.pth"
REL = "tests/golden/encoders/make_timm_swin.py"

BACKBONE_REFS = ["hidden_states_0", "stage_out_0", "stage_out_1", "stage_out_2",
                 "last_hidden_state", "pooler_output"]


# ----------------------------------------------------------------------------- shared helpers

def seed_weights(model, torch, seed):
    """Every parameter and floating buffer from a seeded generator (make_published_layouts'
    recipe: 1-D weights 1 + 0.1 r, everything else 0.15 r), except attn_mask (a constant)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.is_floating_point() or name.endswith("attn_mask"):
                continue
            r = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(0.15 * r)


def pixels(torch):
    return torch.randn(2, 3, ARCH["img_size"], ARCH["img_size"],
                       generator=torch.Generator().manual_seed(SEED_PIXELS))


def save_npy(out_dir, name, t):
    import numpy as np
    np.save(os.path.join(out_dir, name + ".npy"), t.detach().contiguous().numpy().astype("<f4"))


def load_npy(out_dir, name):
    import numpy as np
    return np.load(os.path.join(out_dir, name + ".npy"))


def max_diff(a, b):
    import numpy as np
    a = a.detach().numpy() if hasattr(a, "detach") else a
    b = b.detach().numpy() if hasattr(b, "detach") else b
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def same(a, b):
    return all(x.shape == y.shape and bool((x == y).all()) for x, y in
               ((a[k], b[k]) for k in a)) and sorted(a) == sorted(b)


def key_listing(sd):
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()]


def key_groups(sd, prefix=""):
    groups = {}
    for k in sd:
        assert k.startswith(prefix), k
        top = k[len(prefix):].split(".")[0]
        groups[top] = groups.get(top, 0) + 1
    return groups


def buffers_in(sd):
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()
            if k.endswith(("attn_mask", "relative_position_index"))]


def read_index(path):
    import json
    with open(path) as f:
        return json.load(f)


def reference_doc(extra):
    doc = {
        "pixel_values": "[2, 3, 64, 64] float32, seeded randn (the input; already 'normalised')",
        "hidden_states_0": "[2, 256, 8] patch_embed output: Conv2d(3, 8, 4, stride 4) -> "
                           "flatten to tokens -> LayerNorm (patch_embed.norm); no position "
                           "embedding (ape False)",
        "stage_out_0": "[2, 256, 8] output of stage 0's blocks (16x16 grid)",
        "stage_out_1": "[2, 64, 16] output of stage 1's blocks (8x8 grid), after the merging "
                       "that precedes them",
        "stage_out_2": "[2, 16, 32] output of stage 2's blocks (4x4 grid = window: one "
                       "window, block 1 NOT shifted)",
        "last_hidden_state": "[2, 16, 32] final norm output",
        "pooler_output": "[2, 32] timm's pooled features (mean over tokens of last_hidden_state)",
    }
    doc.update(extra)
    return doc


LAYOUT = ("All token tensors are N x L x C, tokens row-major (y, x) over the stage grid, no CLS "
          "(timm >= 0.9 computes N x H x W x C; saved reshaped to N x L x C).")


# ------------------------------------------------------------------------- part: timm 0.5.4 + Ark

def part_old(out_root):
    import optparse
    libs = pe.activate(OLD_TREES)
    import numpy as np
    import torch
    import timm
    pe.check_imported(["timm-v0.5.4"])
    import models as ark_models  # Ark_Plus/Pretraining/models.py of the pinned Ark tree
    ark_tree = os.path.realpath(os.path.join(pe.vendor_root(), "ark-cba3fad"))
    assert os.path.realpath(ark_models.__file__).startswith(ark_tree + os.sep), ark_models.__file__
    from timm.models.swin_transformer import SwinTransformer
    from timm.optim import create_optimizer
    from timm.scheduler import create_scheduler
    torch.set_num_threads(1)

    def build(use_mlp):
        # models.build_omni_model's call, with the tiny sizes (it only knows swin_base/large)
        return ark_models.ArkSwinTransformer(OMNI_HEADS, PROJECTOR, use_mlp,
                                             num_classes=NUM_CLASSES, **ARCH)

    def run(model, x):
        st = {}

        def keep(name):
            return lambda _m, _i, o: st.__setitem__(name, o)
        hooks = [model.pos_drop.register_forward_hook(keep("hidden_states_0"))]
        hooks += [layer.blocks[-1].register_forward_hook(keep("stage_out_%d" % i))
                  for i, layer in enumerate(model.layers)]
        hooks.append(model.norm.register_forward_hook(keep("last_hidden_state")))
        with torch.no_grad():
            out = {"pooler_output": model.forward_features(x)}
            out.update(st)
            st.clear()
            if isinstance(model, ark_models.ArkSwinTransformer):
                out["projector_output"] = model.generate_embeddings(x)
                for k, h in enumerate(model(x)):
                    out["omni_head_%d" % k] = h
        for h in hooks:
            h.remove()
        return out

    x = pixels(torch)
    env = {**pe.torch_description(), "timm": timm.__version__}
    cfg = {**ARCH, "depths": list(ARCH["depths"]), "num_heads": list(ARCH["num_heads"]),
           "num_classes": NUM_CLASSES, "num_classes_list": OMNI_HEADS,
           "projector_features": PROJECTOR}
    ark_src = "Ark_Plus/Pretraining/models.py of ark-cba3fad (ArkSwinTransformer, save_checkpoint)"

    # ---- 1. ark_swin: flat teacher state dict (Ark-6 release layout), MLP projector
    out_a = os.path.join(out_root, "ark_swin")
    shutil.rmtree(out_a, ignore_errors=True)
    os.makedirs(out_a)
    teacher_a = build(True)
    seed_weights(teacher_a, torch, SEED_TEACHER)
    teacher_a.eval()
    ref_a = run(teacher_a, x)
    path_a = os.path.join(out_a, ARK_FILE)
    torch.save(teacher_a.state_dict(), path_a)
    sd_a = torch.load(path_a, map_location="cpu")
    fresh = build(True)
    fresh.load_state_dict(sd_a, strict=True)
    fresh.eval()
    re_a = run(fresh, x)
    assert same(ref_a, re_a), "ark_swin: reload not bit-identical"
    assert same(ref_a, run(teacher_a, x)), "ark_swin: repeat run differs"
    # Ark's README load: plain timm SwinTransformer, delete head.*/head_dist.*, strict=False
    readme_sd = dict(torch.load(path_a, map_location="cpu"))
    removed = [k for k in ['head.weight', 'head.bias', 'head_dist.weight', 'head_dist.bias']
               if k in readme_sd]
    for k in removed:
        del readme_sd[k]
    plain = SwinTransformer(num_classes=3, **ARCH)
    msg = plain.load_state_dict(readme_sd, strict=False)
    plain.eval()
    re_plain = run(plain, x)
    readme_bitexact = all(torch.equal(ref_a[k], re_plain[k]) for k in BACKBONE_REFS)
    assert readme_bitexact and sorted(msg.missing_keys) == ["head.bias", "head.weight"], msg
    save_npy(out_a, "pixel_values", x)
    for k, v in ref_a.items():
        save_npy(out_a, k, v)
    pooled_vs_mean = max_diff(ref_a["pooler_output"], ref_a["last_hidden_state"].mean(1))
    files_a = sorted(os.listdir(out_a)) + ["index.json"]
    pe.write_json(os.path.join(out_a, "index.json"), {
        "generator": REL,
        "libraries": libs,
        "ark_code": ark_src,
        "environment": env,
        "model": "Ark's models.ArkSwinTransformer(num_classes_list=%s, projector_features=%d, "
                 "use_mlp=True, num_classes=%d, img_size=64, patch_size=4, in_chans=3, "
                 "embed_dim=8, depths=(2, 2, 2), num_heads=(2, 2, 4), window_size=4, "
                 "mlp_ratio=4.0) on timm 0.5.4 (timm.models.swin_transformer.SwinTransformer "
                 "subclass: + projector = Sequential(Linear(32, 24), ReLU, Linear(24, 24)), "
                 "omni_heads = ModuleList(Linear(24, 3), Linear(24, 2)))"
                 % (OMNI_HEADS, PROJECTOR, NUM_CLASSES),
        "config": {**cfg, "use_mlp": True},
        "weights": "seed_weights(model, seed=%d): every parameter and floating buffer but "
                   "attn_mask from one generator; attn_mask and relative_position_index as timm "
                   "computes them" % SEED_TEACHER,
        "checkpoint": {
            "file": ARK_FILE,
            "saved_with": "torch.save(teacher.state_dict(), '%s')  (the published Ark-6 teacher "
                          "file ark6_teacher_ep200_swinb_projector1376_mlp.pth.tar is a flat "
                          "state dict of this layout; how it was cut from the training "
                          "checkpoint is not published)" % ARK_FILE,
            "container": "none: the pickle's top object is the state dict (OrderedDict with "
                         "_metadata), keys without prefix",
            "key_groups": key_groups(sd_a),
            "outside_backbone": ["head", "projector", "omni_heads"],
            "buffers_in_checkpoint": buffers_in(sd_a),
            "downsample": "timm 0.5.4 layout: PatchMerging at the END of stage i as "
                          "layers.{i}.downsample.{norm [4C], reduction [2C, 4C]} for i = 0, 1; "
                          "the last stage has none",
            "keys": key_listing(sd_a),
        },
        "publisher_load": "Ark README: state_dict = torch.load(path, map_location='cpu'); del "
                          "head.weight/head.bias/head_dist.*; timm SwinTransformer(...)."
                          "load_state_dict(state_dict, strict=False). Ark's own "
                          "build_omni_model deletes every '*attn_mask*' key before loading "
                          "when it initialises from a checkpoint.",
        "reference": reference_doc({
            "projector_output": "[2, 24] model.generate_embeddings(x) = projector(pooler_output)"
                                " (Ark's embedding)",
            "omni_head_0": "[2, 3] model(x)[0] = omni_heads[0](projector_output)",
            "omni_head_1": "[2, 2] model(x)[1]",
        }),
        "sequence_layout": LAYOUT,
        "checks": {
            "reload_strict_into_ArkSwinTransformer_bitexact": True,
            "repeat_run_bitexact": True,
            "readme_load_into_plain_timm_SwinTransformer": {
                "removed": removed, "missing_keys": msg.missing_keys,
                "unexpected_keys": msg.unexpected_keys,
                "backbone_outputs_bitexact": readme_bitexact},
            "pooler_output_vs_last_hidden_state_mean_max_abs": pooled_vs_mean,
        },
        "cross_checks": [],
        "files": files_a,
    })

    # ---- 2. ark_swin_teacher: Ark+ layout (engine.py's training checkpoint), Linear projector
    out_b = os.path.join(out_root, "ark_swin_teacher")
    shutil.rmtree(out_b, ignore_errors=True)
    os.makedirs(out_b)
    teacher_b = build(False)
    seed_weights(teacher_b, torch, SEED_TEACHER)
    student_b = build(False)
    seed_weights(student_b, torch, SEED_STUDENT)
    # engine.py: model/teacher = build_omni_model(...); DataParallel when >1 GPU; teacher frozen
    model = torch.nn.DataParallel(student_b)
    teacher = torch.nn.DataParallel(teacher_b)
    for p in teacher.parameters():
        p.requires_grad = False
    args = optparse.Values(dict(  # main_ark.py's options, Ark+ README values where it sets them
        opt="sgd", lr=0.3, weight_decay=0.0, momentum=0.9, opt_eps=1e-8, opt_betas=None,
        clip_grad=None, sched="cosine", lr_noise=None, lr_noise_pct=0.67, lr_noise_std=1.0,
        warmup_lr=1e-6, min_lr=1e-5, decay_epochs=30, warmup_epochs=20, cooldown_epochs=10,
        decay_rate=0.5, patience_epochs=10, epochs=200, pretrain_epochs=200))
    optimizer = create_optimizer(args, model)
    lr_scheduler, _ = create_scheduler(args, optimizer)
    # the validation losses engine.py averages (evaluate(): MetricLogger avg of loss.item())
    teacher_b.eval()
    student_b.eval()
    val_loss_list = []
    with torch.no_grad():
        for k, n in enumerate(OMNI_HEADS):
            _, logits = model(x, k)
            target = (torch.arange(2 * n).reshape(2, n) % 2).float()
            val_loss_list.append(torch.nn.BCEWithLogitsLoss()(logits, target).item())
    lr_scheduler.step(np.average(val_loss_list))  # engine.py: lr_scheduler.step(val_loss_metric)
    ref_b = run(teacher_b, x)
    ark_models.save_checkpoint({
        'epoch': EPOCH,
        'lossMIN': val_loss_list,
        'state_dict': model.state_dict(),
        'teacher': teacher.state_dict(),
        'optimizer': optimizer.state_dict(),
        'scheduler': lr_scheduler.state_dict(),
    }, filename=os.path.join(out_b, ARK_PLUS_STEM))
    file_b = ARK_PLUS_STEM + ".pth.tar"
    ckpt = torch.load(os.path.join(out_b, file_b), map_location=torch.device("cpu"))
    # the Zeroshot notebook's load (Ark+zeroshot-pred.ipynb)
    state_dict = ckpt["teacher"]
    if any([True if 'module.' in k else False for k in state_dict.keys()]):
        state_dict = {k.replace('module.', ''): v for k, v in state_dict.items()
                      if k.startswith('module.')}
    fresh_b = build(False)
    fresh_b.load_state_dict(state_dict, strict=True)
    fresh_b.eval()
    assert same(ref_b, run(fresh_b, x)), "ark_swin_teacher: reload not bit-identical"
    student_sd = {k.replace('module.', ''): v for k, v in ckpt["state_dict"].items()}
    fresh_s = build(False)
    fresh_s.load_state_dict(student_sd, strict=True)
    fresh_s.eval()
    student_differs = not torch.equal(run(fresh_s, x)["last_hidden_state"],
                                      ref_b["last_hidden_state"])
    assert student_differs
    backbone_equal_to_ark_swin = all(torch.equal(ref_a[k], ref_b[k]) for k in BACKBONE_REFS)
    assert backbone_equal_to_ark_swin
    save_npy(out_b, "pixel_values", x)
    for k, v in ref_b.items():
        save_npy(out_b, k, v)
    lr_type = type(ckpt["optimizer"]["param_groups"][0]["lr"])
    lr_type = lr_type.__module__ + "." + lr_type.__name__
    files_b = sorted(os.listdir(out_b)) + ["index.json"]

    def describe_value(v):
        if isinstance(v, dict):
            return "dict(%d entries)" % len(v)
        if isinstance(v, list):
            return "list of %s, len %d" % (type(v[0]).__name__ if v else "?", len(v))
        return "%s (%r)" % (type(v).__name__, v)
    pe.write_json(os.path.join(out_b, "index.json"), {
        "generator": REL,
        "libraries": libs,
        "ark_code": ark_src,
        "environment": env,
        "model": "Ark's models.ArkSwinTransformer(num_classes_list=%s, projector_features=%d, "
                 "use_mlp=False, num_classes=%d, <ark_swin's sizes>) on timm 0.5.4: projector = "
                 "Linear(32, 24) (Ark+), omni_heads = ModuleList(Linear(24, 3), Linear(24, 2))"
                 % (OMNI_HEADS, PROJECTOR, NUM_CLASSES),
        "config": {**cfg, "use_mlp": False},
        "weights": "teacher: seed_weights(seed=%d) (patch_embed/layers/norm/head identical to "
                   "ark_swin's teacher); student: seed_weights(seed=%d)"
                   % (SEED_TEACHER, SEED_STUDENT),
        "checkpoint": {
            "file": file_b,
            "saved_with": "Ark's models.save_checkpoint({'epoch', 'lossMIN', 'state_dict', "
                          "'teacher', 'optimizer', 'scheduler'}, filename) = torch.save(state, "
                          "filename + '.pth.tar'), as Ark_Plus/Pretraining/engine.py writes it "
                          "each epoch; student and teacher are torch.nn.DataParallel-wrapped",
            "container": {k: describe_value(v) for k, v in ckpt.items()},
            "state_dict_prefix": "module.",
            "teacher_key": "teacher (the student is 'state_dict')",
            "teacher_key_groups": key_groups(ckpt["teacher"], "module."),
            "outside_backbone": ["head", "projector", "omni_heads"],
            "buffers_in_checkpoint": buffers_in(ckpt["teacher"]),
            "optimizer": "torch.optim.SGD(nesterov=True) state_dict from timm 0.5.4 "
                         "create_optimizer: 'state' {} (no step taken; a real file holds "
                         "momentum_buffer tensors), one param group with python "
                         "ints/floats/bools and 'lr' of type %s (from the scheduler step on a "
                         "numpy.float64); 'scheduler' is timm's CosineLRScheduler.__dict__ minus "
                         "the optimizer" % lr_type,
            "teacher_keys": key_listing(ckpt["teacher"]),
        },
        "publisher_load": "Ark+ Zeroshot notebook: checkpoint = torch.load(path, map_location="
                          "'cpu'); state_dict = checkpoint['teacher']; if any 'module.' in a key:"
                          " state_dict = {k.replace('module.', ''): v for k, v in "
                          "state_dict.items() if k.startswith('module.')}; "
                          "OmniSwinTransformer(...).load_state_dict(state_dict, strict=False). "
                          "Finetuning (--init ark_plus --key teacher): checkpoint['teacher'], "
                          "'module.' replaced, attn_mask keys deleted when --scale_up, head.* "
                          "and head_dist.* deleted, strict=False.",
        "reference": reference_doc({
            "projector_output": "[2, 24] teacher.generate_embeddings(x) = projector(pooled)",
            "omni_head_0": "[2, 3] teacher(x)[0]",
            "omni_head_1": "[2, 2] teacher(x)[1]",
        }),
        "sequence_layout": LAYOUT,
        "checks": {
            "teacher_reload_strict_after_module_strip_bitexact": True,
            "student_loads_strict_and_differs_from_teacher": student_differs,
            "backbone_references_equal_ark_swin": backbone_equal_to_ark_swin,
            "pooler_output_vs_last_hidden_state_mean_max_abs":
                max_diff(ref_b["pooler_output"], ref_b["last_hidden_state"].mean(1)),
        },
        "cross_checks": [],
        "files": files_b,
    })
    print("wrote", out_a, "and", out_b)


# ----------------------------------------------------------------------------- part: timm 1.0.14

def part_new(out_root):
    libs = pe.activate(NEW_TREES)
    import torch
    import timm
    pe.check_imported(NEW_TREES)
    from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn
    torch.set_num_threads(1)

    def build():
        return SwinTransformer(num_classes=NUM_CLASSES, global_pool="avg", **ARCH)

    def run(model, x):
        st = {}

        def keep(name):
            return lambda _m, _i, o: st.__setitem__(name, o.reshape(o.shape[0], -1, o.shape[-1]))
        hooks = [model.patch_embed.register_forward_hook(keep("hidden_states_0"))]
        hooks += [layer.register_forward_hook(keep("stage_out_%d" % i))
                  for i, layer in enumerate(model.layers)]
        hooks.append(model.norm.register_forward_hook(keep("last_hidden_state")))
        with torch.no_grad():
            feats = model.forward_features(x)
            out = dict(st)
            out["pooler_output"] = model.forward_head(feats, pre_logits=True)
            out["logits"] = model.forward_head(feats)
            assert torch.equal(out["logits"], model(x))
        for h in hooks:
            h.remove()
        return out

    x = pixels(torch)
    out_c = os.path.join(out_root, "timm_swin")
    shutil.rmtree(out_c, ignore_errors=True)
    os.makedirs(out_c)
    model = build()
    seed_weights(model, torch, SEED_TIMM)
    model.eval()
    ref = run(model, x)
    path = os.path.join(out_c, TIMM_FILE)
    torch.save(model.state_dict(), path)
    sd = torch.load(path, map_location="cpu")
    fresh = build()
    fresh.load_state_dict(sd, strict=True)
    fresh.eval()
    assert same(ref, run(fresh, x)), "timm_swin: reload not bit-identical"
    assert same(ref, run(model, x)), "timm_swin: repeat run differs"
    save_npy(out_c, "pixel_values", x)
    for k, v in ref.items():
        save_npy(out_c, k, v)
    files_c = sorted(os.listdir(out_c)) + ["index.json"]
    pe.write_json(os.path.join(out_c, "index.json"), {
        "generator": REL,
        "libraries": libs,
        "environment": {**pe.torch_description(), "timm": timm.__version__},
        "model": "timm.models.swin_transformer.SwinTransformer(img_size=64, patch_size=4, "
                 "in_chans=3, num_classes=%d, global_pool='avg', embed_dim=8, depths=(2, 2, 2),"
                 " num_heads=(2, 2, 4), window_size=4, mlp_ratio=4.0)  (timm v1.0.14; "
                 "non-fused attention: torch 1.13 has no SDPA and timm's experimental fused "
                 "Swin attention is off by default)" % NUM_CLASSES,
        "config": {**ARCH, "depths": list(ARCH["depths"]), "num_heads": list(ARCH["num_heads"]),
                   "num_classes": NUM_CLASSES, "global_pool": "avg"},
        "weights": "seed_weights(model, seed=%d)" % SEED_TIMM,
        "checkpoint": {
            "file": TIMM_FILE,
            "saved_with": "torch.save(model.state_dict(), '%s')" % TIMM_FILE,
            "container": "none: the pickle's top object is the state dict, keys without prefix",
            "key_groups": key_groups(sd),
            "outside_backbone": ["head"],
            "buffers_in_checkpoint": buffers_in(sd),
            "downsample": "timm >= 0.9 layout: PatchMerging at the START of stage i as "
                          "layers.{i}.downsample.{norm [4C_prev], reduction [2C_prev, 4C_prev]} "
                          "for i = 1, 2 (layers.0 has an Identity); relative_position_index and "
                          "attn_mask are non-persistent (absent); classifier head.fc.*",
            "keys": key_listing(sd),
        },
        "publisher_load": "timm.create_model(..., pretrained_cfg_overlay=dict(file=...)) or "
                          "model.load_state_dict(torch.load(path)) (strict); timm's "
                          "checkpoint_filter_fn converts timm < 0.9 / Microsoft checkpoints",
        "reference": reference_doc({
            "logits": "[2, %d] model(x) = head.fc(pooler_output)" % NUM_CLASSES}),
        "sequence_layout": LAYOUT,
        "checks": {
            "reload_strict_bitexact": True,
            "repeat_run_bitexact": True,
            "pooler_output_is_forward_head_pre_logits": True,
            "pooler_output_vs_last_hidden_state_mean_max_abs":
                max_diff(ref["pooler_output"], ref["last_hidden_state"].mean(1)),
        },
        "cross_checks": [],
        "files": files_c,
    })

    # cross-check: the Ark (timm 0.5.4) teacher backbone through timm 1.0.14's own converter
    out_a = os.path.join(out_root, "ark_swin")
    ark_sd = torch.load(os.path.join(out_a, ARK_FILE), map_location="cpu")
    ark_sd = {k: v for k, v in ark_sd.items() if not k.startswith(("projector.", "omni_heads."))}
    m2 = build()
    m2.load_state_dict(checkpoint_filter_fn(ark_sd, m2), strict=True)
    m2.eval()
    got = run(m2, x)
    idx = read_index(os.path.join(out_a, "index.json"))
    idx["cross_checks"].append({
        "what": "ark_swin's file minus projector.*/omni_heads.*, converted by timm v1.0.14's "
                "swin_transformer.checkpoint_filter_fn (drops relative_position_index/attn_mask,"
                " layers.{i}.downsample -> layers.{i+1}.downsample, head. -> head.fc.), "
                "loaded strict into timm v1.0.14 SwinTransformer, same pixel_values",
        "timm": libs["timm-v1.0.14"],
        "max_abs_diff": {k: max_diff(got[k], load_npy(out_a, k)) for k in BACKBONE_REFS},
    })
    pe.write_json(os.path.join(out_a, "index.json"), idx)
    print("wrote", out_c)


# ----------------------------------------------------------------------------- part: transformers

def timm_to_hf(sd, new_layout):
    """timm Swin keys -> transformers SwinModel keys (cross-check only; not a fixture)."""
    import re
    out = {}
    for k, v in sd.items():
        if k.startswith(("head", "projector.", "omni_heads.")) or k.endswith(
                ("attn_mask", "relative_position_index")):
            continue
        if new_layout:
            k = re.sub(r"^layers\.(\d+)\.downsample",
                       lambda m: "layers.%d.downsample" % (int(m.group(1)) - 1), k)
        if k.startswith("patch_embed.proj."):
            out["embeddings.patch_embeddings.projection." + k.split(".")[-1]] = v
        elif k.startswith("patch_embed.norm."):
            out["embeddings.norm." + k.split(".")[-1]] = v
        elif k.startswith("norm."):
            out["layernorm." + k.split(".")[-1]] = v
        elif ".downsample." in k:
            out["encoder." + k] = v
        else:
            m = re.match(r"^layers\.(\d+)\.blocks\.(\d+)\.(.*)$", k)
            p = "encoder.layers.%s.blocks.%s." % (m.group(1), m.group(2))
            rest = m.group(3)
            if rest.startswith("attn.qkv."):
                for name, part in zip(("query", "key", "value"), v.chunk(3, dim=0)):
                    out[p + "attention.self.%s.%s" % (name, rest.split(".")[-1])] = part
                continue
            for a, b in (("norm1.", "layernorm_before."), ("norm2.", "layernorm_after."),
                         ("attn.relative_position_bias_table",
                          "attention.self.relative_position_bias_table"),
                         ("attn.proj.", "attention.output.dense."),
                         ("mlp.fc1.", "intermediate.dense."), ("mlp.fc2.", "output.dense.")):
                if rest.startswith(a):
                    out[p + b + rest[len(a):]] = v
                    break
            else:
                raise KeyError(k)
    return out


def part_hf(out_root):
    libs = pe.activate(HF_TREES)
    import torch
    import huggingface_hub  # noqa: F401
    from transformers import SwinConfig, SwinModel
    pe.check_imported(HF_TREES)
    torch.set_num_threads(1)
    cfg = SwinConfig(image_size=64, patch_size=4, num_channels=3, embed_dim=8, depths=[2, 2, 2],
                     num_heads=[2, 2, 4], window_size=4, mlp_ratio=4.0, qkv_bias=True,
                     hidden_act="gelu", use_absolute_embeddings=False, layer_norm_eps=1e-5,
                     drop_path_rate=0.0)
    for folder, file, new_layout in (("ark_swin", ARK_FILE, False),
                                     ("timm_swin", TIMM_FILE, True)):
        out = os.path.join(out_root, folder)
        hf = SwinModel(cfg, add_pooling_layer=True)
        conv = timm_to_hf(torch.load(os.path.join(out, file), map_location="cpu"), new_layout)
        for k, v in hf.state_dict().items():  # HF keeps relative_position_index in its state
            if k.endswith("relative_position_index"):
                conv[k] = v
        hf.load_state_dict(conv, strict=True)
        hf.eval()
        st = {}
        hooks = [hf.embeddings.register_forward_hook(
            lambda _m, _i, o: st.__setitem__("hidden_states_0", o[0]))]
        hooks += [layer.blocks[-1].register_forward_hook(
            lambda _m, _i, o, i=i: st.__setitem__("stage_out_%d" % i, o[0]))
            for i, layer in enumerate(hf.encoder.layers)]
        x = torch.from_numpy(load_npy(out, "pixel_values"))
        with torch.no_grad():
            o = hf(pixel_values=x)
        for h in hooks:
            h.remove()
        st["last_hidden_state"] = o.last_hidden_state
        st["pooler_output"] = o.pooler_output
        idx = read_index(os.path.join(out, "index.json"))
        idx["cross_checks"].append({
            "what": "%s's file mapped onto transformers SwinModel keys (timm_to_hf in the "
                    "generator: qkv split in three along dim 0 into query/key/value, "
                    "norm1/norm2 -> layernorm_before/after, attn.proj -> attention.output.dense,"
                    " mlp.fc1/fc2 -> intermediate.dense/output.dense, patch_embed.proj/norm -> "
                    "embeddings.patch_embeddings.projection/embeddings.norm, norm -> layernorm, "
                    "%s), loaded strict, eager, same pixel_values; stage_out from "
                    "encoder.layers[i].blocks[-1]" % (
                        folder, "layers.{i}.downsample -> encoder.layers.{i-1}.downsample"
                        if new_layout else "layers.{i}.downsample -> encoder.layers.{i}."
                        "downsample"),
            "transformers": libs["transformers-v4.47.1"],
            "config": "SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[2, 2, 2], "
                      "num_heads=[2, 2, 4], window_size=4, mlp_ratio=4.0, layer_norm_eps=1e-5,"
                      " use_absolute_embeddings=False)",
            "max_abs_diff": {k: max_diff(st[k], load_npy(out, k)) for k in BACKBONE_REFS},
        })
        pe.write_json(os.path.join(out, "index.json"), idx)
    print("cross-checked with transformers")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(pe.FIXTURES, "published"))
    ap.add_argument("--part", choices=["old", "new", "hf"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    if a.part:
        {"old": part_old, "new": part_new, "hf": part_hf}[a.part](out)
        return
    for part in ("old", "new", "hf"):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--out", out, "--part", part],
                       check=True)
    for folder in ("ark_swin", "ark_swin_teacher", "timm_swin"):
        d = os.path.join(out, folder)
        for f in sorted(os.listdir(d)):
            p = os.path.join(d, f)
            print("%8d  %s  %s/%s" % (os.path.getsize(p),
                                      hashlib.sha256(open(p, "rb").read()).hexdigest()[:16],
                                      folder, f))


if __name__ == "__main__":
    main()
