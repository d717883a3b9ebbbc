#!/usr/bin/python3
"""Golden values for radprobe::experiment::canonical_json / config_hash (tests/experiment/test_run.cpp).

The run identity is the 64-bit FNV-1a hash of the canonical JSON of a run's config: object keys
sorted, no whitespace (Python: json.dumps(sort_keys=True, separators=(",", ":"))). Computed here
independently of radprobe. Usage: tests/golden/experiment/config_hash.py > tests/golden/experiment/config_hash.json
"""
import json

CASES = [
    {"seed": 0, "adaptation": "linear", "task": "cardiomegaly",
     "options": {"c_grid": "logspace:-6:5:45", "class_weight": "none", "max_iter": 10000, "tol": 1e-10},
     "statistics": {"level": 0.95, "n_boot": 2000, "ci": "bootstrap"}, "hash_version": 1,
     "encoder": {"name": "rad-dino", "layers": [-1, -4], "fold_grayscale": True,
                 "preprocessing": {"image_mean": [0.5307, 0.5307, 0.5307], "crop_size": {"height": 518, "width": 518}}},
     "pooling": "cls+mean"},
    {"z": None, "a": [3, 2, 1], "m": {"y": "é ünicode", "b": False}},
]


def fnv1a64(data: bytes) -> str:
    h = 14695981039346656037
    for byte in data:
        h ^= byte
        h = (h * 1099511628211) % (1 << 64)
    return "%016x" % h


out = []
for case in CASES:
    canonical = json.dumps(case, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Input text with keys in another order and with whitespace: must give the same hash.
    messy = json.dumps(dict(reversed(list(case.items()))), indent=3, ensure_ascii=False)
    out.append({"input": messy, "canonical": canonical,
                "hash": "v1-" + fnv1a64(canonical.encode("utf-8"))})
print(json.dumps(out, indent=1, ensure_ascii=False))
