#!/usr/bin/python3
"""Small raster images OpenCV cannot write (palette PNG), made with PIL, plus their expected
display values computed here from the palette (BT.601 luminance / 255).
    /usr/bin/python3 tests/golden/imaging/make_raster_fixtures.py tests/golden/imaging
"""
import json
import sys

import numpy as np
from PIL import Image

out = sys.argv[1]
rng = np.random.default_rng(7)
idx = rng.integers(0, 16, size=(12, 20), dtype=np.uint8)
palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
im = Image.fromarray(idx, mode="P")
im.putpalette(palette.ravel().tolist() + [0] * (768 - 48))
im.save(f"{out}/palette.png")
rgb = palette[idx].astype(np.float64)
expected = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
json.dump({"file": "palette.png", "shape": list(expected.shape),
           "display": [round(float(v), 9) for v in expected.ravel()]},
          open(f"{out}/palette_expected.json", "w"))
print("wrote palette.png and palette_expected.json")
