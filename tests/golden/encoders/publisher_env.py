#!/usr/bin/python3
"""Running the publishers' own code (transformers, open_clip, timm) for the encoder goldens.

There is no PyPI here and none of these libraries is a Debian package, so each one is a single
tagged source tree, extracted from its GitHub repository into a vendor folder OUTSIDE the radprobe
checkout (never committed, never copied into the project), and put first on sys.path by
`activate()`. Everything runs on Debian's /usr/bin/python3 with Debian's python3-torch 1.13 (CPU,
float32). The pinned trees (name, repository, release tag, commit, folder extracted):

  transformers-v4.47.1    huggingface/transformers  v4.47.1  241c04d36867259cdf11dbb4e9d9a60f9cb65ebc  src/transformers
  transformers-v4.48.3    huggingface/transformers  v4.48.3  298b3f19303294293f7af075609481d64cb13de3  src/transformers
  huggingface_hub-v0.27.1 huggingface/huggingface_hub v0.27.1 80edbb2b6ae3b0766d870278276393c015eb6979 src/huggingface_hub
  transformers-v4.57.6    huggingface/transformers  v4.57.6  753d61104116eefc8ffc977327b441ee0c8d599f  src/transformers
  huggingface_hub-v0.36.2 huggingface/huggingface_hub v0.36.2 664c484e261175deeb80c2aa3b525457a1f6fa5c src/huggingface_hub
  open_clip-v2.30.0       mlfoundations/open_clip   v2.30.0  1bf5d6a2703d465a4e8d9ffcd12a12daadd254ad  src/open_clip
  timm-v1.0.14            huggingface/pytorch-image-models v1.0.14 5d535d7a2d4b435b1b5c1177fd8f04a12b942b9a timm
  timm-v0.5.4             huggingface/pytorch-image-models v0.5.4  e0c4eec4b66dc14ae96097c7b4a7ef2af45ba309 timm
  ark-cba3fad             jlianglab/Ark             (no tags: pinned by commit)
                                                             cba3fada5ec3276d55ad80213d4eae694ca526b0 Ark_Plus/Pretraining
  timm-v0.4.12            huggingface/pytorch-image-models v0.4.12 7096b52a613eefb4f6d8107366611c8983478b19 timm
  vmamba-2ed52ea          MzeroMiko/VMamba          (no tags: pinned by commit)
                                                             2ed52ead062a51a64521ed3871d52914bf532876 classification
  sam2-2b90b9f            facebookresearch/sam2     (no tags: pinned by commit)
                                                             2b90b9f5ceec907a1c18123530e92e794ad901a4 sam2

(The transformers tags were taken from the fork TonyRHouston/huggingface-transformers, which
carries the upstream release tags; the commits are upstream's. timm v0.5.4 is the release that
Ark/Ark+ pin in their requirements (`timm == 0.5.4`); it runs on torch 1.13 unchanged. Ark has no
release tags: its row names the commit, `git archive` takes it as the tag, and its sys.path entry
is the Ark_Plus/Pretraining folder, whose models.py/utils.py/convnext.py are top-level modules;
Ark's utils.py needs Debian's python3-sklearn and python3-scipy. timm v0.4.12 is the release
VMamba's README installs (`timm==0.4.12`). VMamba has no release tags either: its row names the
commit (the head of main when the fixtures were made), and its sys.path entry is the
classification folder, whose `models` package holds vmamba.py, csm_triton.py and csms6s.py;
check_imported() does not apply to it (no top-level module named vmamba, no __version__), and it
imports only with the triton, fvcore and einops stubs of make_vmamba.py (beside this file), which
also lists the one shim its forward pass needs on CPU. transformers v4.57.6, the release
the DINOv3 fixtures were made with, needs huggingface_hub >= 0.34, < 1.0: v0.36.2 is the last such
release; v4.57.6 imports on torch 1.13 only with ../shared/reference/torch2_import_shims.py and the
further steps make_published_dinov3.py takes before `import transformers`.) The trees go under
VENDOR, by default <radprobe checkout>/../vendor (override with RADPROBE_VENDOR), one folder per
name above:

  VENDOR=/work/vendor   # any folder outside the checkout
  git --git-dir=<bare clone of transformers> archive v4.47.1 src/transformers | tar -x -C $VENDOR/transformers-v4.47.1
  ... likewise for every row ...
  or, doing the same, checking the commit in the archive and recording it in each tree:
  /usr/bin/python3 tests/golden/encoders/publisher_env.py setup \
      transformers=<bare git dir> huggingface_hub=<bare git dir> open_clip=<bare git dir> timm=<bare git dir> \
      ark=<bare git dir> vmamba=<bare git dir>

The sys.path entries are VENDOR/<name>/src for transformers, huggingface_hub and open_clip,
VENDOR/<name> for timm, VENDOR/<name>/Ark_Plus/Pretraining for Ark and
VENDOR/<name>/classification for VMamba (what `PYTHONPATH=...` would hold). Activate one timm tree
per process (all are the package `timm`).

Debian packages: python3-torch python3-numpy python3-pil python3-yaml python3-regex
python3-packaging python3-filelock python3-tqdm python3-requests python3-fsspec
python3-typing-extensions python3-torchvision (open_clip's transforms).

Rust-backed or absent packages are replaced by stubs that activate() writes into a temporary
folder (first on sys.path, deleted at exit):
  - safetensors: safe_open (get_tensor, get_slice) / safetensors.torch.{load_file, save_file,
    storage_ptr, storage_size}
    on top of st_io.py (numpy only; ../shared/reference/st_io.py beside the checkout, override
    with RADPROBE_REFERENCE), plus a dist-info so transformers' version check accepts it; dtypes
    F32, I64, F16 through st_io, and BF16 (which st_io/numpy lack) in the stub itself: same layout,
    the tensors' 16-bit patterns as raw little-endian bytes;
  - huggingface_hub: a dist-info only (the code is the real tree; transformers checks the version);
  - tokenizers: transformers.integrations.ggml imports it at import time; the stub has no
    dist-info, so transformers still reports it unavailable (vision models never tokenize);
  - ftfy: imported by open_clip's tokenizer module at import time; text cleaning is never used here.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
FIXTURES = os.path.join(CHECKOUT, "tests", "data", "encoders")

# name -> (library, repository, tag, commit, folder in the archive, sys.path entry below the tree)
PINS = {
    "transformers-v4.47.1": ("transformers", "huggingface/transformers", "v4.47.1",
                             "241c04d36867259cdf11dbb4e9d9a60f9cb65ebc", "src/transformers", "src"),
    "transformers-v4.48.3": ("transformers", "huggingface/transformers", "v4.48.3",
                             "298b3f19303294293f7af075609481d64cb13de3", "src/transformers", "src"),
    "huggingface_hub-v0.27.1": ("huggingface_hub", "huggingface/huggingface_hub", "v0.27.1",
                                "80edbb2b6ae3b0766d870278276393c015eb6979", "src/huggingface_hub",
                                "src"),
    "transformers-v4.57.6": ("transformers", "huggingface/transformers", "v4.57.6",
                             "753d61104116eefc8ffc977327b441ee0c8d599f", "src/transformers", "src"),
    "huggingface_hub-v0.36.2": ("huggingface_hub", "huggingface/huggingface_hub", "v0.36.2",
                                "664c484e261175deeb80c2aa3b525457a1f6fa5c", "src/huggingface_hub",
                                "src"),
    "open_clip-v2.30.0": ("open_clip", "mlfoundations/open_clip", "v2.30.0",
                          "1bf5d6a2703d465a4e8d9ffcd12a12daadd254ad", "src/open_clip", "src"),
    "timm-v1.0.14": ("timm", "huggingface/pytorch-image-models", "v1.0.14",
                     "5d535d7a2d4b435b1b5c1177fd8f04a12b942b9a", "timm", ""),
    "timm-v0.5.4": ("timm", "huggingface/pytorch-image-models", "v0.5.4",
                    "e0c4eec4b66dc14ae96097c7b4a7ef2af45ba309", "timm", ""),
    "ark-cba3fad": ("ark", "jlianglab/Ark", "cba3fada5ec3276d55ad80213d4eae694ca526b0",
                    "cba3fada5ec3276d55ad80213d4eae694ca526b0", "Ark_Plus/Pretraining",
                    "Ark_Plus/Pretraining"),
    "timm-v0.4.12": ("timm", "huggingface/pytorch-image-models", "v0.4.12",
                     "7096b52a613eefb4f6d8107366611c8983478b19", "timm", ""),
    "vmamba-2ed52ea": ("vmamba", "MzeroMiko/VMamba", "2ed52ead062a51a64521ed3871d52914bf532876",
                       "2ed52ead062a51a64521ed3871d52914bf532876", "classification",
                       "classification"),
    "sam2-2b90b9f": ("sam2", "facebookresearch/sam2", "2b90b9f5ceec907a1c18123530e92e794ad901a4",
                     "2b90b9f5ceec907a1c18123530e92e794ad901a4", "sam2", ""),
}
COMMIT_FILE = ".radprobe_commit"


def vendor_root():
    return os.environ.get("RADPROBE_VENDOR", os.path.normpath(os.path.join(CHECKOUT, "..", "vendor")))


def reference_dir():
    return os.environ.get("RADPROBE_REFERENCE",
                          os.path.normpath(os.path.join(CHECKOUT, "..", "shared", "reference")))


def describe(name):
    """What goes into a golden's index: library, release tag, commit, repository."""
    lib, repo, tag, commit, _, _ = PINS[name]
    return {"library": lib, "version": tag.lstrip("v"), "tag": tag, "commit": commit, "repo": repo}


def _tree(name):
    return os.path.join(vendor_root(), name)


def _check_tree(name):
    lib, repo, tag, commit, folder, _ = PINS[name]
    tree = _tree(name)
    if not os.path.isdir(os.path.join(tree, folder)):
        sys.exit("publisher_env: %s is missing: extract %s %s (%s) there, e.g.\n  mkdir -p %s && "
                 "git --git-dir=<bare clone of %s> archive %s %s | tar -x -C %s\n(see %s)"
                 % (os.path.join(tree, folder), repo, tag, commit, tree, repo, tag, folder, tree,
                    __file__))
    marker = os.path.join(tree, COMMIT_FILE)
    if os.path.exists(marker):
        got = open(marker).read().strip()
        if got != commit:
            sys.exit("publisher_env: %s holds commit %s, expected %s (%s)" % (tree, got, commit, tag))


def setup(git_dirs):
    """Extracts every pinned tree whose library has a bare git dir in git_dirs (library -> path),
    checking that the archive's commit is the pinned one."""
    for name, (lib, repo, tag, commit, folder, _) in PINS.items():
        if lib not in git_dirs:
            continue
        tree = _tree(name)
        tar = subprocess.run(["git", "--git-dir", git_dirs[lib], "archive", "--format=tar", tag,
                              folder], check=True, stdout=subprocess.PIPE).stdout
        got = subprocess.run(["git", "get-tar-commit-id"], input=tar, check=True,
                             stdout=subprocess.PIPE).stdout.decode().strip()
        if got != commit:
            sys.exit("%s %s: archive commit %s, pinned %s" % (repo, tag, got, commit))
        shutil.rmtree(tree, ignore_errors=True)
        os.makedirs(tree)
        with tempfile.TemporaryFile() as f:
            f.write(tar)
            f.seek(0)
            with tarfile.open(fileobj=f) as t:
                t.extractall(tree)
        with open(os.path.join(tree, COMMIT_FILE), "w") as f:
            f.write(commit + "\n")
        print("extracted", repo, tag, commit, "->", tree)


_SAFETENSORS_INIT = '''"""Stub of the Rust-backed safetensors package (radprobe goldens): st_io underneath.

st_io has no bfloat16 (numpy has none), so a file holding a BF16 tensor is read and written here,
in the same layout st_io reads and writes (names sorted, compact JSON header with __metadata__
first, padded with spaces so the data starts 8-byte aligned, raw little-endian C-order bytes);
BF16 travels as its 16-bit patterns (int16 view). Files without BF16 go through st_io unchanged.
"""
import json
import struct
import sys
sys.path.insert(0, %(ref)r)
import st_io as _st
del sys.path[0]
__version__ = "0.4.5"


def _has_bf16(header):
    return any(v.get("dtype") == "BF16" for k, v in header.items() if k != "__metadata__")


def _read(filename):
    """(name -> torch tensor, metadata or None) of a safetensors file."""
    import numpy as np
    import torch
    filename = str(filename)
    _, header = _st.read_safetensors_header(filename)
    if not _has_bf16(header):
        arrays, meta = _st.read_safetensors(filename)
        return {k: torch.from_numpy(v) for k, v in arrays.items()}, meta
    with open(filename, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    out, spans = {}, []
    for name, info in header.items():
        bf16 = info["dtype"] == "BF16"
        dt = np.dtype("<i2") if bf16 else _st._DT_TO_NP[info["dtype"]]
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape)) if len(shape) else 1
        if e - b != count * dt.itemsize:
            raise ValueError("%%s: size mismatch" %% name)
        t = torch.from_numpy(np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy())
        out[name] = t.view(torch.bfloat16) if bf16 else t
        spans.append((b, e))
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            raise ValueError("data section not contiguous")
        pos = e
    if pos != len(data):
        raise ValueError("trailing bytes in data section")
    return out, meta


def _write(filename, tensors, metadata=None):
    """tensors: name -> contiguous CPU torch tensor (float32, int64, float16 or bfloat16)."""
    import numpy as np
    import torch
    filename = str(filename)
    if not any(t.dtype == torch.bfloat16 for t in tensors.values()):
        _st.write_safetensors(filename, {k: t.numpy() for k, t in tensors.items()},
                              metadata=metadata, force_f32=False)
        return
    header = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype == torch.bfloat16:
            dtname, data = "BF16", t.view(torch.int16).numpy().astype("<i2").tobytes(order="C")
        else:
            arr = t.numpy()
            dtname = _st._np_dtype_name(arr)
            data = arr.astype(_st._DT_TO_NP[dtname], copy=False).tobytes(order="C")
        header[name] = {"dtype": dtname, "shape": [int(s) for s in t.shape],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) %% 8) %% 8)
    with open(filename, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


class _Slice:
    """What safe_open.get_slice returns (transformers >= 4.56 loads through it): dtype tag and shape
    from the file's header; indexing gives (a view of) the tensor, [...] the whole tensor."""

    def __init__(self, tensor, dtype):
        self._tensor, self._dtype = tensor, dtype

    def get_dtype(self):
        return self._dtype

    def get_shape(self):
        return list(self._tensor.shape)

    def __getitem__(self, index):
        return self._tensor[index]


class safe_open:
    def __init__(self, filename, framework="pt", device="cpu"):
        assert framework == "pt", framework
        self._tensors, self._meta = _read(filename)
        _, header = _st.read_safetensors_header(str(filename))
        self._dtypes = {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def metadata(self):
        return self._meta

    def keys(self):
        return sorted(self._tensors)

    def get_tensor(self, name):
        return self._tensors[name]

    def get_slice(self, name):
        return _Slice(self._tensors[name], self._dtypes[name])
'''

_SAFETENSORS_TORCH = '''"""Stub of safetensors.torch (radprobe goldens): st_io underneath (BF16: see the package)."""
import torch

from . import _read, _write

_DTYPES = (torch.float32, torch.int64, torch.float16, torch.bfloat16)


def load_file(filename, device="cpu"):
    tensors, _ = _read(filename)
    return {k: v.to(device) for k, v in tensors.items()}


def save_file(tensors, filename, metadata=None):
    out = {}
    for k, t in tensors.items():
        assert t.dtype in _DTYPES, (k, t.dtype)
        out[k] = t.detach().cpu().contiguous()
    _write(filename, out, metadata=metadata)


def storage_ptr(tensor):
    return tensor.storage().data_ptr()


def storage_size(tensor):
    return tensor.storage().size() * tensor.element_size()
'''


# tokenizers: importable (transformers.integrations.ggml imports it at import time) but without a
# dist-info, so transformers' is_tokenizers_available() stays False; any use raises.
_TOKENIZERS_MODULES = ("tokenizers", "tokenizers.models", "tokenizers.decoders",
                       "tokenizers.normalizers", "tokenizers.pre_tokenizers",
                       "tokenizers.processors", "tokenizers.trainers")
_PLACEHOLDER_MODULE = '''"""Stub (radprobe goldens): names exist, any use raises."""


class _Placeholder:
    def __init__(self, *a, **k):
        raise RuntimeError("tokenizers stub used")


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (_Placeholder,), {})
'''


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _dist_info(root, name, version):
    _write(os.path.join(root, "%s-%s.dist-info" % (name, version), "METADATA"),
           "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version))


def activate(names):
    """Puts the pinned trees `names` and the stubs first on sys.path (call before importing them).
    Returns {name: describe(name)} for the index files."""
    for name in names:
        _check_tree(name)
    ref = reference_dir()
    if not os.path.exists(os.path.join(ref, "st_io.py")):
        sys.exit("publisher_env: st_io.py not found in %s (set RADPROBE_REFERENCE)" % ref)
    stubs = tempfile.mkdtemp(prefix="radprobe_stubs_")
    atexit.register(shutil.rmtree, stubs, True)
    _write(os.path.join(stubs, "safetensors", "__init__.py"), _SAFETENSORS_INIT % {"ref": ref})
    _write(os.path.join(stubs, "safetensors", "torch.py"), _SAFETENSORS_TORCH)
    _dist_info(stubs, "safetensors", "0.4.5")
    for mod in _TOKENIZERS_MODULES:
        _write(os.path.join(stubs, *mod.split(".")) + (os.sep + "__init__.py" if mod == "tokenizers"
                                                      else ".py"), _PLACEHOLDER_MODULE)
    _write(os.path.join(stubs, "ftfy", "__init__.py"),
           '"""Stub (radprobe goldens): open_clip imports ftfy; text is never cleaned here."""\n'
           "def fix_text(text, *a, **k):\n    raise RuntimeError('ftfy stub')\n")
    paths = [stubs]
    for name in names:
        lib, _, tag, _, _, sub = PINS[name]
        paths.append(os.path.join(_tree(name), sub) if sub else _tree(name))
        if lib == "huggingface_hub":
            _dist_info(stubs, "huggingface_hub", tag.lstrip("v"))
    sys.path[:0] = paths
    # Nothing may come from a hub: everything is local.
    hf_home = os.path.join(stubs, "hf_home")
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": hf_home,
                       "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"})
    return {name: describe(name) for name in names}


def check_imported(names):
    """After import: each library was loaded from its pinned tree, at the pinned version."""
    for name in names:
        lib, _, tag, _, _, _ = PINS[name]
        mod = sys.modules[lib]
        assert os.path.realpath(mod.__file__).startswith(os.path.realpath(_tree(name)) + os.sep), \
            (lib, mod.__file__)
        assert mod.__version__ == tag.lstrip("v"), (lib, mod.__version__, tag)


def st_io():
    """The reference safetensors reader/writer (numpy only), ../shared/reference/st_io.py."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("st_io", os.path.join(reference_dir(), "st_io.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torch_description():
    import numpy
    import torch
    return {"torch": torch.__version__ + " (Debian python3-torch, CPU)",
            "torch_threads": torch.get_num_threads(), "numpy": numpy.__version__,
            "python": sys.version.split()[0]}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "setup":
        setup(dict(a.split("=", 1) for a in sys.argv[2:]))
    else:
        print(__doc__)
