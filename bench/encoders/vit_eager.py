#!/usr/bin/python3
"""PyTorch eager reference for bench_encoders: the same ViT-B/14 (DINOv2 layout: pre-LN blocks,
separate q/k/v, LayerScale, exact GELU, final LayerNorm; with --no-layerscale the HF ViT layout)
in plain torch, random weights, timed at the given size, batch and thread count (the fastest of
--iters forwards after a warm-up, as bench_encoders times radprobe). Prints one JSON line: {"seconds_per_image": ...}."""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, layerscale):
        super().__init__()
        self.heads = heads
        self.layerscale = layerscale
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.dense = nn.Linear(d, d)
        self.ls1 = nn.Parameter(torch.ones(d))
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.ls2 = nn.Parameter(torch.ones(d))

    def forward(self, x):
        n, t, d = x.shape
        hd = d // self.heads
        y = self.norm1(x)
        q, k, v = (f(y).view(n, t, self.heads, hd).transpose(1, 2) for f in (self.query, self.key, self.value))
        a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * hd ** -0.5, dim=-1)
        y = torch.matmul(a, v).transpose(1, 2).reshape(n, t, d)
        a = self.dense(y)
        x = x + (a * self.ls1 if self.layerscale else a)
        m = self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return x + (m * self.ls2 if self.layerscale else m)


class ViT(nn.Module):
    def __init__(self, d=768, layers=12, heads=12, patch=14, layerscale=True):
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(Block(d, heads, layerscale) for _ in range(layers))
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--no-layerscale", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ViT(layerscale=not a.no_layerscale).eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    with torch.no_grad():
        model(x)  # warm-up
        best = float("inf")
        for _ in range(a.iters):  # the fastest forward: neighbours on a shared machine only slow
            t0 = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"seconds_per_image": best / a.batch}))


if __name__ == "__main__":
    main()
