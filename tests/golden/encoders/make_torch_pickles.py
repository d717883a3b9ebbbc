#!/usr/bin/python3
"""Fixtures for radprobe's weights-only torch.save reader (tests/encoders/test_torch_pickle.cpp).

Made by the publisher's own code: Debian's python3-torch 1.13 (torch.__version__ "1.13.0a0",
checked below), `torch.save` with its default zip format and with
`_use_new_zipfile_serialization=False` (the legacy format), pickle protocols 2 (torch's default),
4 and 5. Writes tests/data/pickles/:

  state_zip.pt, state_legacy.pt        one state dict: F32, F16, BF16, F64, I64, I32, I16, I8, U8,
                                       BOOL, a transposed view, slices sharing one storage at
                                       offsets, a strided slice, an expanded (stride 0) view, a 0-d
                                       tensor, an empty tensor, an nn.Parameter, and the
                                       OrderedDict `_metadata` attribute (a BUILD)
  state_zip_p4.pt, state_legacy_p5.pt  the same with pickle protocols 4 / 5 (FRAME, MEMOIZE,
                                       STACK_GLOBAL, SHORT_BINUNICODE)
  state_zip64.pt                       state_zip.pt's records re-packed by this script with zip64
                                       records everywhere (torch only writes them above 4 GiB), plus
                                       a `byteorder` record "little" as torch >= 2.1 writes
  nested_state_dict.pt                 {"state_dict", "epoch": 3, "args": argparse.Namespace,
                                       "optimizer": SGD state (tensors under int keys),
                                       "best_acc": 0.5}, saved through io.BytesIO (archive "archive")
  nested_model_legacy.pt               {"model", "epoch", "args"} in the legacy format
  nested_teacher.pt                    {"student": DataParallel keys ("module."), "teacher", ...}
  module_prefixed.pt                   nn.DataParallel(model).state_dict(): every key "module."
  module_partial.pt                    only some keys "module." (nothing is stripped)
  no_tensors.pt                        {"epoch", "args"}: no state dict (an error naming the keys)
  error_deflated.pt                    state_zip.pt re-packed with deflate (refused)
  error_big_endian.pt                  a byteorder record "big" (refused)
  error_torchscript.pt                 torch.jit.save of a scripted nn.Linear (refused)
  expected.json                        per case: file, checkpoint key, format, archive name, and
                                       per tensor dtype, shape, strides, storage offset, row-major
                                       values and the hex of the contiguous bytes (torch's own
                                       .contiguous()); or the error text expected
  malicious/                           pickles whose loading by Python runs a command that creates
                                       /tmp/radprobe_pwned_<case>: REDUCE of os.system,
                                       posix.system, builtins.eval, builtins.exec and
                                       subprocess.Popen, each as a raw pickle (protocols 2 and 5,
                                       raw_*.bin), inside a torch zip archive next to a real tensor
                                       (zip_*.pt) and inside a legacy checkpoint (legacy_*.pt); plus
                                       raw_rebuild_from_type_os_system.bin, which smuggles
                                       os.system through the allow-listed
                                       torch._tensor._rebuild_from_type_v2.
                                       `--verify` loads each with Python's pickle / torch.load in a
                                       child process and checks that the marker file does appear
                                       (then removes it): the corpus is live.

Run from the repository root:  /usr/bin/python3 tests/golden/encoders/make_torch_pickles.py [--verify]
"""

import argparse
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
import zlib
from pathlib import Path

import torch

assert torch.__version__.startswith("1.13"), torch.__version__

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "tests" / "data" / "pickles"
MAL = OUT / "malicious"
MARKER = "/tmp/radprobe_pwned_"

DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
SAME_WIDTH_INT = {torch.bfloat16: torch.int16, torch.float16: torch.int16}


# ----------------------------------------------------------------------------------------------
# State dicts


def base_state_dict():
    g = torch.Generator().manual_seed(20240611)
    shared = torch.arange(10, dtype=torch.float32) * 0.5 - 1.0
    grid = torch.arange(12, dtype=torch.int64).reshape(3, 4) * 7 - 20
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(2, 3, generator=g)
    sd["f16"] = torch.tensor([1.0, -2.5, 65504.0, 6e-8, 0.1], dtype=torch.float16)
    sd["bf16"] = torch.randn(2, 2, generator=g).to(torch.bfloat16)
    sd["f64"] = torch.tensor([1.0 / 3.0, -1e30, 2.5], dtype=torch.float64)
    sd["i64"] = torch.tensor([-7, 0, 2 ** 40, -(2 ** 62)], dtype=torch.int64)
    sd["i32"] = torch.tensor([-(2 ** 31), 2 ** 31 - 1, 5], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["transposed"] = (torch.arange(6, dtype=torch.float32).reshape(2, 3) + 0.25).t()
    sd["shared_a"] = shared[2:6]
    sd["shared_b"] = shared[4:10].view(2, 3)
    sd["strided"] = grid[:, ::2]
    sd["expanded"] = torch.tensor([1.5, 2.5, 3.5]).expand(2, 3)
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.tensor([0.125, -4.0]))
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def tiny_model():
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = model(torch.randn(5, 3)).square().mean()
    loss.backward()
    opt.step()
    return model, opt


def tensor_record(t):
    t = t.detach()
    c = t.contiguous()
    raw = c.view(SAME_WIDTH_INT[t.dtype]) if t.dtype in SAME_WIDTH_INT else c
    values = c.float().flatten().tolist() if t.is_floating_point() else \
        [int(v) for v in c.flatten().tolist()]
    return {
        "dtype": DTYPE_NAMES[t.dtype],
        "shape": list(t.shape),
        "strides": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "values": values,
        "hex": raw.numpy().tobytes().hex(),
    }


def case(file, tensors, fmt, archive="", key="", strip=""):
    return {
        "file": file, "checkpoint_key": key, "format": fmt, "archive": archive,
        "tensors": {k[len(strip):]: tensor_record(v) for k, v in tensors.items()},
    }


def error_case(file, error, key=""):
    return {"file": file, "checkpoint_key": key, "error": error}


# ----------------------------------------------------------------------------------------------
# Zip re-packing (zip64 / deflate / extra records), from the records torch wrote


def records(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip64(path, recs):
    """Every header with zip64 extra fields, a zip64 end record and locator."""
    out = bytearray()
    central = bytearray()
    for name, data in recs:
        n = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                           0xFFFFFFFF, len(n), len(extra)) + n + extra + data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(n), len(cextra), 0, 0, 0, 0,
                               0xFFFFFFFF) + n + cextra
    cd_offset = len(out)
    out += central
    end64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(recs), len(recs),
                       len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    Path(path).write_bytes(bytes(out))


def write_plain_zip(path, recs, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in recs:
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data,
                       compress_type=compression)


# ----------------------------------------------------------------------------------------------
# Malicious corpus


class Target:
    """Stands for a global `module.name`; EvilPickler writes it as exactly that global."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise RuntimeError("never called here")


class Call:
    def __init__(self, target, args):
        self.target, self.args = target, args

    def __reduce__(self):
        return (self.target, self.args)


class EvilPickler(pickle._Pickler):
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Target):
            if self.proto >= 4:
                self.save(obj.module)
                self.save(obj.name)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def evil_dumps(obj, protocol):
    buf = io.BytesIO()
    EvilPickler(buf, protocol).dump(obj)
    return buf.getvalue()


EVIL_MODULE = types.ModuleType("evil_pickle")  # torch.save's pickle_module
EVIL_MODULE.Pickler = EvilPickler
EVIL_MODULE.dump = lambda obj, f, protocol=2: EvilPickler(f, protocol).dump(obj)


def payload(name, marker):
    shell = f"touch {marker}"
    return {
        "os_system": Call(Target("os", "system"), (shell,)),
        "posix_system": Call(Target("posix", "system"), (shell,)),
        "builtins_eval": Call(Target("builtins", "eval"),
                              (f"__import__('os').system('{shell}')",)),
        "builtins_exec": Call(Target("builtins", "exec"), (f"open('{marker}', 'w').close()",)),
        "subprocess_popen": Call(Target("subprocess", "Popen"), (["touch", marker],)),
    }[name]


PAYLOADS = ["os_system", "posix_system", "builtins_eval", "builtins_exec", "subprocess_popen"]


def make_malicious():
    MAL.mkdir(parents=True, exist_ok=True)
    made = []
    for name in PAYLOADS:
        for proto in (2, 5):
            case_name = f"raw_{name}_p{proto}"
            data = evil_dumps({"x": payload(name, MARKER + case_name)}, proto)
            (MAL / f"{case_name}.bin").write_bytes(data)
            made.append((case_name, f"{case_name}.bin", "pickle"))
        for fmt, zip_format in (("zip", True), ("legacy", False)):
            case_name = f"{fmt}_{name}"
            obj = {"weight": torch.tensor([1.0, 2.0]),
                   "evil": payload(name, MARKER + case_name)}
            torch.save(obj, MAL / f"{case_name}.pt", pickle_module=EVIL_MODULE,
                       _use_new_zipfile_serialization=zip_format)
            made.append((case_name, f"{case_name}.pt", "torch"))
    # _rebuild_from_type_v2(func, type, args, state) calls func(*args) in Python.
    case_name = "raw_rebuild_from_type_os_system"
    smuggled = Call(Target("torch._tensor", "_rebuild_from_type_v2"),
                    (Target("os", "system"), Target("torch", "Tensor"),
                     (f"touch {MARKER + case_name}",), {}))
    (MAL / f"{case_name}.bin").write_bytes(evil_dumps(smuggled, 2))
    made.append((case_name, f"{case_name}.bin", "pickle"))
    return made


def verify_malicious(made):
    """Loads each file the way Python would, in a child process; the marker must appear."""
    for case_name, file, kind in made:
        marker = Path(MARKER + case_name)
        marker.unlink(missing_ok=True)
        path = MAL / file
        code = (f"import pickle; pickle.loads(open({str(path)!r}, 'rb').read())" if kind == "pickle"
                else f"import torch; torch.load({str(path)!r})")
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
        assert marker.exists(), f"{file} did not create {marker}"
        marker.unlink()
        print("live:", file)


# ----------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--verify", action="store_true",
                        help="check that every malicious file runs its command under Python")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []

    sd = base_state_dict()
    torch.save(sd, OUT / "state_zip.pt")
    torch.save(sd, OUT / "state_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(sd, OUT / "state_zip_p4.pt", pickle_protocol=4)
    torch.save(sd, OUT / "state_legacy_p5.pt", pickle_protocol=5,
               _use_new_zipfile_serialization=False)
    cases.append(case("state_zip.pt", sd, "zip", "state_zip"))
    cases.append(case("state_legacy.pt", sd, "legacy"))
    cases.append(case("state_zip_p4.pt", sd, "zip", "state_zip_p4"))
    cases.append(case("state_legacy_p5.pt", sd, "legacy"))

    recs = records(OUT / "state_zip.pt")
    write_zip64(OUT / "state_zip64.pt", recs + [("state_zip/byteorder", b"little")])
    assert torch.equal(torch.load(OUT / "state_zip64.pt")["f32"], sd["f32"])
    cases.append(case("state_zip64.pt", sd, "zip", "state_zip"))
    write_plain_zip(OUT / "error_deflated.pt", recs, zipfile.ZIP_DEFLATED)
    cases.append(error_case("error_deflated.pt", "is compressed (method 8)"))
    write_plain_zip(OUT / "error_big_endian.pt", recs + [("state_zip/byteorder", b"big")])
    cases.append(error_case("error_big_endian.pt", "only little-endian"))
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(OUT / "error_torchscript.pt"))
    cases.append(error_case("error_torchscript.pt", "TorchScript archive"))

    model, opt = tiny_model()
    msd = model.state_dict()
    ns = argparse.Namespace(lr=0.1, arch="vit_tiny", epochs=[1, 2])
    buf = io.BytesIO()
    torch.save({"state_dict": msd, "epoch": 3, "args": ns, "optimizer": opt.state_dict(),
                "best_acc": 0.5}, buf)
    (OUT / "nested_state_dict.pt").write_bytes(buf.getvalue())
    cases.append(case("nested_state_dict.pt", msd, "zip", "archive"))
    cases.append(case("nested_state_dict.pt", msd, "zip", "archive", key="state_dict"))
    cases.append(error_case("nested_state_dict.pt", "no top-level key \"teacher\"", "teacher"))
    cases.append(error_case("nested_state_dict.pt", "\"args\" is argparse.Namespace object",
                            "args"))

    torch.save({"model": msd, "epoch": 3, "args": ns}, OUT / "nested_model_legacy.pt",
               _use_new_zipfile_serialization=False)
    cases.append(case("nested_model_legacy.pt", msd, "legacy"))

    dp = torch.nn.DataParallel(model).state_dict()
    assert all(k.startswith("module.") for k in dp)
    torch.save({"student": dp, "teacher": msd, "epoch": 3, "args": ns},
               OUT / "nested_teacher.pt")
    cases.append(case("nested_teacher.pt", msd, "zip", "nested_teacher"))
    cases.append(case("nested_teacher.pt", dp, "zip", "nested_teacher", key="student",
                      strip="module."))
    torch.save(dp, OUT / "module_prefixed.pt")
    cases.append(case("module_prefixed.pt", dp, "zip", "module_prefixed", strip="module."))
    partial = collections.OrderedDict([("module.a", torch.ones(2)), ("b", torch.zeros(1))])
    torch.save(partial, OUT / "module_partial.pt")
    cases.append(case("module_partial.pt", partial, "zip", "module_partial"))
    torch.save({"epoch": 3, "args": ns}, OUT / "no_tensors.pt")
    cases.append(error_case("no_tensors.pt", "no state dict found"))

    json.dumps(cases, allow_nan=False)  # values must be finite: JSON has no inf / nan
    (OUT / "expected.json").write_text(
        f'{{"torch": "{torch.__version__}", "cases": [\n' +
        ",\n".join(json.dumps(c, separators=(",", ":")) for c in cases) + "\n]}\n")

    made = make_malicious()
    (MAL / "index.json").write_text(json.dumps(
        [{"case": c, "file": f, "kind": k, "marker": MARKER + c} for c, f, k in made],
        indent=1) + "\n")
    if args.verify:
        verify_malicious(made)
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:7d} {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
