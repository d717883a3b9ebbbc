#!/usr/bin/python3
"""Golden values for radprobe's imaging tests, from pydicom (the reference decoder).

Run with Debian's Python (python3-pydicom, python3-gdcm, python3-numpy):
    /usr/bin/python3 tests/golden/imaging/make_goldens.py tests/data/dicom tests/golden/imaging/goldens.json

For every file of the shared DICOM set that pydicom decodes, and for frames 0 and last:
  - stored:   md5 of the stored values (pydicom pixel_array bytes, all frames) and min/max;
  - modality: pydicom apply_modality_lut;
  - display:  pydicom apply_voi_lut (first window / first VOI LUT item) scaled to [0,1] by the
              VOI output range (windowing: [y_min, y_max] as pydicom computes it; VOI LUT:
              [0, 2^bits - 1]); with no VOI the frame's modality min..max maps to [0,1];
              MONOCHROME1 inverted; colour: BT.601 luminance / (2^bits - 1) of the RGB values
              (palette looked up with apply_color_lut).
Each stage stores the mean/min/max over the whole frame and the values on a regular grid of at
most 32 x 32 pixels (rows r*sr, cols c*sc with sr = max(1, rows // 32), sc = max(1, cols // 32)).
"""
import hashlib
import json
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut, apply_color_lut

warnings.filterwarnings("ignore")


def grid(a):
    rows, cols = a.shape
    sr, sc = max(1, rows // 32), max(1, cols // 32)
    return sr, sc, a[::sr, ::sc][:32, :32]


def to_stored_values(arr, ds):
    """PS3.5 8.1.1: a stored value occupies Bits Stored bits (two's complement when Pixel
    Representation is 1); bits above High Bit are not part of it. pydicom 2.3 returns the raw
    container instead (e.g. mlut_18: 0x0FFF as 4095 where the 12-bit signed value is -1; the
    JPEG-LS decoder's unsigned 15-bit samples of JLSL_16_15_1_1F), so the reference applies the
    standard here, and radprobe does the same."""
    bits, alloc = int(ds.BitsStored), int(ds.BitsAllocated)
    if bits >= alloc or ds.PhotometricInterpretation not in ("MONOCHROME1", "MONOCHROME2"):
        return arr
    v = arr.astype(np.int64) & ((1 << bits) - 1)
    if int(ds.PixelRepresentation) == 1:
        v = np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)
    return v.astype(arr.dtype)


def stage_record(a):
    sr, sc, g = grid(a)
    return {
        "mean": float(np.mean(a)), "min": float(np.min(a)), "max": float(np.max(a)),
        "step": [sr, sc], "grid_shape": list(g.shape),
        "grid": [round(float(v), 7) for v in g.ravel()],
    }


def display_mono(frame_mod, ds):
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        out = apply_voi_lut(frame_mod.astype(np.int64) if np.issubdtype(frame_mod.dtype, np.integer)
                            else frame_mod, ds).astype(np.float64)
        bits = ds.VOILUTSequence[0].LUTDescriptor[2]
        out = out / (2.0 ** bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            out = apply_voi_lut(frame_mod, ds, index=0).astype(np.float64)
        except ValueError:
            out = None  # invalid window (e.g. width 0): radprobe ignores it, full range
        if out is not None:
            if ds.get("ModalityLUTSequence"):
                y_min, y_max = 0.0, 2.0 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
            elif ds.PixelRepresentation == 0:
                y_min, y_max = 0.0, 2.0 ** ds.BitsStored - 1
            else:
                y_min, y_max = -(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1
            if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
                y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            out = (out - y_min) / (y_max - y_min)
    else:
        out = None
    if out is None:
        f = frame_mod.astype(np.float64)
        lo, hi = f.min(), f.max()
        out = (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
    out = np.clip(out, 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1.0 - out
    return out


def luminance(rgb):
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


# Files whose pydicom result cannot serve as a reference (the reason is recorded in the goldens).
UNRELIABLE = {
    "wg04/JLSL__MR1_JLSL": "GDCM's JPEG-LS decoder fails on this file and pydicom+gdcm returns an "
                           "uninitialised buffer (values differ between runs)",
}


def main(root, out_path):
    manifest = os.path.join(root, "manifest.csv")
    import csv
    records = []
    with open(manifest) as f:
        for row in csv.DictReader(f):
            rel = row["file"]
            rec = {"file": rel, "pydicom_decoded": False}
            if rel in UNRELIABLE:
                rec["error"] = UNRELIABLE[rel]
                records.append(rec)
                continue
            try:
                ds = pydicom.dcmread(os.path.join(root, rel), force=True)
                if "TransferSyntaxUID" not in ds.file_meta:
                    # A file without a Part-10 header is implicit VR little endian (PS3.5 A.1).
                    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
                arr = ds.pixel_array
            except Exception as e:  # noqa: BLE001 - the reason is recorded
                rec["error"] = str(e).splitlines()[0][:200]
                records.append(rec)
                continue
            rec["pydicom_decoded"] = True
            arr = to_stored_values(arr, ds)
            rec["dtype"] = arr.dtype.str
            rec["shape"] = list(arr.shape)
            rec["md5_stored"] = hashlib.md5(arr.tobytes()).hexdigest()
            rec["stored_min"] = float(arr.min())
            rec["stored_max"] = float(arr.max())
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            pi = ds.PhotometricInterpretation
            rec["photometric"] = pi
            rec["frames"] = frames
            stages = {}
            for fi in sorted({0, frames - 1}):
                frame = arr[fi] if frames > 1 else arr
                entry = {}
                if pi in ("MONOCHROME1", "MONOCHROME2"):
                    mod = apply_modality_lut(frame, ds)
                    entry["stored"] = stage_record(frame.astype(np.float64))
                    entry["modality"] = stage_record(np.asarray(mod, dtype=np.float64))
                    entry["display"] = stage_record(display_mono(np.asarray(mod), ds))
                elif pi == "PALETTE COLOR":
                    rgb = apply_color_lut(frame, ds)
                    bits = ds.RedPaletteColorLookupTableDescriptor[2]
                    entry["display"] = stage_record(luminance(rgb) / (2.0 ** bits - 1))
                elif pi in ("RGB", "YBR_FULL", "YBR_FULL_422"):
                    rgb = frame
                    if pi != "RGB":
                        from pydicom.pixel_data_handlers.util import convert_color_space
                        rgb = convert_color_space(frame, pi, "RGB")
                    entry["display"] = stage_record(luminance(rgb) / (2.0 ** ds.BitsStored - 1))
                stages[str(fi)] = entry
            rec["frames_checked"] = stages
            records.append(rec)
    with open(out_path, "w") as f:
        json.dump({"generator": "tests/golden/imaging/make_goldens.py",
                   "pydicom": pydicom.__version__, "numpy": np.__version__,
                   "files": records}, f, indent=0)
    ok = sum(r["pydicom_decoded"] for r in records)
    print(f"{ok}/{len(records)} files decoded by pydicom -> {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
