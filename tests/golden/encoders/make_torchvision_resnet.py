#!/usr/bin/python3
"""A DINO ResNet-50-layout checkpoint as its publishers ship it, made by torchvision's own code:
a folder holding only a `torch.save`d torchvision ResNet state dict (no config.json, no
preprocessor_config.json), as `dino_resnet50_pretrain.pth` is distributed.

Library: torchvision 0.14.1 (Debian package python3-torchvision 0.14.1-2, which reports
0.14.1a0; upstream tag v0.14.1 of pytorch/vision) on Debian's python3-torch 1.13 (CPU, float32,
one thread).

The network is torchvision.models.resnet.ResNet with torchvision's own Bottleneck blocks
(stride on the 3x3 convolution, as ResNet-50 v1.5), 7x7 stem, max pool, four stages of [1, 2, 1,
1] blocks. ResNet-50's stage widths (planes 64/128/256/512, outputs x4) would make a 100 MB
file, so `_make_layer` is called with planes divided by 8 (a subclass that changes nothing
else): the key names, the block code and the forward are torchvision's. fc is replaced by a
Linear of the right width (as DINO replaces it by Identity; radprobe must ignore fc.*).
Every parameter and BatchNorm buffer is seeded by make_published_layouts.randomize (running
variances positive), the model runs in eval mode.

Saved: tests/data/encoders/published/torchvision_resnet/resnet_tiny.pth (torch.save of the
state dict, zip format), pixel_values.npy (seeded, 2x3x64x64), and the reference:
  last_hidden_state.npy  = the layer4 output (N x C x H x W)
  pooler_output.npy      = avgpool(layer4) flattened (N x C)
  hidden_states_{0..4}.npy = the stem output after max pool, then each stage's output
(forward hooks on torchvision's modules), index.json.

  /usr/bin/python3 tests/golden/encoders/make_torchvision_resnet.py
"""
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.resnet import Bottleneck, ResNet  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_published_layouts import randomize  # noqa: E402  (the same seeded weights recipe)
OUT = os.path.join(HERE, "..", "..", "data", "encoders", "published", "torchvision_resnet")
LAYERS = [1, 2, 1, 1]
WIDTH_DIVISOR = 8


class NarrowResNet(ResNet):
    """torchvision's ResNet with the stage widths divided by WIDTH_DIVISOR (nothing else)."""

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        return super()._make_layer(block, planes // WIDTH_DIVISOR, blocks, stride, dilate)


def main():
    torch.set_num_threads(1)
    model = NarrowResNet(Bottleneck, LAYERS)
    model.fc = torch.nn.Linear(512 * Bottleneck.expansion // WIDTH_DIVISOR, 5)
    randomize(model, torch, 3100)
    g = torch.Generator().manual_seed(3101)
    model.eval()
    states = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, k=k: states.__setitem__(k, o))
             for k, m in [(0, model.maxpool), (1, model.layer1), (2, model.layer2),
                          (3, model.layer3), (4, model.layer4)]]
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    torch.save(model.state_dict(), os.path.join(OUT, "resnet_tiny.pth"))
    reloaded = NarrowResNet(Bottleneck, LAYERS)
    reloaded.fc = torch.nn.Linear(512 * Bottleneck.expansion // WIDTH_DIVISOR, 5)
    reloaded.load_state_dict(torch.load(os.path.join(OUT, "resnet_tiny.pth")), strict=True)

    def save(name, t):
        np.save(os.path.join(OUT, name + ".npy"), t.detach().numpy().astype("<f4"))

    save("pixel_values", x)
    save("last_hidden_state", states[4])
    save("pooler_output", torch.flatten(model.avgpool(states[4]), 1))
    for k, t in states.items():
        save("hidden_states_%d" % k, t)
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({
            "generator": "tests/golden/encoders/make_torchvision_resnet.py",
            "library": {"torchvision": torchvision.__version__ + " (Debian python3-torchvision "
                                       "0.14.1-2; upstream pytorch/vision v0.14.1)",
                        "torch": torch.__version__ + " (Debian python3-torch)"},
            "model": "torchvision.models.resnet.ResNet(Bottleneck, %s) with _make_layer planes "
                     "// %d; fc = Linear(%d, 5)" % (LAYERS, WIDTH_DIVISOR,
                                                    512 * 4 // WIDTH_DIVISOR),
            "saved_with": "torch.save(model.state_dict(), 'resnet_tiny.pth')",
            "reference": "eval forward; hooks on maxpool (hidden_states_0), layer1..4 "
                         "(hidden_states_1..4, last_hidden_state = layer4), "
                         "pooler_output = flatten(avgpool(layer4))",
            "files": sorted(os.listdir(OUT)) + ["index.json"],
        }, f, indent=2)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
