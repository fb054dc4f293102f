"""The paper's datasets, found locally or downloaded and verified, cached as arrays.

``load_dataset(name, split)`` returns ``(x, y)``: ``x`` float32 in [0, 1] of
shape [N, pixels] (row-major images), ``y`` int64 labels.  Names:

* ``mnist``       the four IDX files; 60,000 train / 10,000 test.
* ``omniglot``    the IWAE ``chardata.mat`` (Burda et al.), 24,345 / 8,070.
* ``omniglot28``  a documented 28x28 *stand-in* for the IWAE set, built from the
  original Omniglot images (invert, area-downsample 105 -> 28, drawings 1-15
  train / 16-20 test: 24,345 / 8,115).  Not the IWAE data: its numbers are not
  directly comparable with published OMNIGLOT likelihoods.
* ``norb``        small NORB (first camera), bicubic 96 -> 32, dequantized as the
  authors' code did: (grey + U[0, 1)) / 256, drawn once with a fixed seed.

Where source files are looked for, in order: the ``root`` argument, the
``LVAE_DATA_DIR`` environment variable, the per-user cache (``LVAE_CACHE_DIR``,
default ``~/.cache/lvae``).  A file found nowhere is downloaded into the cache
from its canonical URL and verified before use; a file that fails its checksum
is never used.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DATASETS
from .files import atomic

ENV_DATA = "LVAE_DATA_DIR"
ENV_CACHE = "LVAE_CACHE_DIR"
TEST_BINARIZATION_SEED = 1234  # the binarized test set is drawn once with this seed
NORB_DEQUANT_SEED = 4321


class DataError(RuntimeError):
    """A data file is missing, cannot be downloaded, or fails its checksum."""


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to a data root, e.g. "mnist/train-images-idx3-ubyte.gz"
    urls: tuple[str, ...]
    sha256: tuple[str, ...] = ()  # any of these is accepted (e.g. upstream zip or verified repack)
    git_blob: str = ""  # for files whose only published id is a git blob id

    def describe(self) -> str:
        sums = ", ".join(f"sha256:{s}" for s in self.sha256) or f"git blob id {self.git_blob}"
        return f"{self.path} (URL {self.urls[0]}; checksum {sums})"


_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_MNIST_MIRROR2 = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_NORB = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_OMNI = "https://github.com/brendenlake/omniglot/raw/master/python/"


def _mnist(fname, sha):
    return FileSpec(f"mnist/{fname}", (_MNIST_MIRROR + fname, _MNIST_MIRROR2 + fname), (sha,))


def _norb(fname, sha):
    return FileSpec(f"norb/{fname}", (_NORB + fname,), (sha,))


FILES: dict[str, FileSpec] = {
    "mnist-train-images": _mnist("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "mnist-train-labels": _mnist("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "mnist-test-images": _mnist("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "mnist-test-labels": _mnist("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    "omniglot-chardata": FileSpec(
        "omniglot/chardata.mat",
        ("https://raw.githubusercontent.com/yburda/iwae/78a6075484bd7dd6f47a4bb9880d2295bc7a5220/datasets/OMNIGLOT/chardata.mat",),
        git_blob="016a3536ffe5e1d38e42563a18d7a78bfaf643ec",
    ),
    "omniglot-background": FileSpec(
        "omniglot-raw/images_background.zip", (_OMNI + "images_background.zip",),
        ("5e40902b4b72dcec6d87732eb8e8c0862f2c92b579cf264e65fc7a0954e80d47",  # verified repack
         "ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640"),  # upstream
    ),
    "omniglot-evaluation": FileSpec(
        "omniglot-raw/images_evaluation.zip", (_OMNI + "images_evaluation.zip",),
        ("bcc0b44a73cc146a6739d98c0004e3fc70173968e567278fb429b3dd55342400",
         "1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee"),
    ),
    "norb-train-dat": _norb("smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz", "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873"),
    "norb-train-cat": _norb("smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz", "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"),
    "norb-train-info": _norb("smallnorb-5x46789x9x18x6x2x96x96-training-info.mat.gz", "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32"),
    "norb-test-dat": _norb("smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz", "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474"),
    "norb-test-cat": _norb("smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz", "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"),
    "norb-test-info": _norb("smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz", "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2"),
}


# --------------------------------------------------------------------------- locating files
def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "lvae")


def search_roots(root: str | Path | None = None) -> list[Path]:
    roots = []
    if root is not None:
        roots.append(Path(root))
    if os.environ.get(ENV_DATA):
        roots.append(Path(os.environ[ENV_DATA]))
    roots.append(cache_dir())
    return roots


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git_blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _remedy(path: Path, spec: FileSpec) -> str:
    """What to do about a bad copy of ``spec`` at ``path``, true offline too."""
    if cache_dir() in path.parents:  # our own download: deleting it is safe, but fetching again needs the internet
        return (f"Delete it and it will be downloaded again from {spec.urls[0]} (this needs internet access); "
                f"offline, put a verified copy into <dir>/{spec.path} and set {ENV_DATA}=<dir>.")
    return (f"It is in your data folder {path.parent}, which this package never changes: replace it with a "
            f"verified copy (from {spec.urls[0]}, or a colleague's).")


def verify(path: Path, spec: FileSpec) -> str:
    """Check ``path`` against ``spec``; returns its sha256 or raises :class:`DataError`."""
    sha = _sha256(path)
    if spec.sha256 and sha not in spec.sha256:
        raise DataError(
            f"checksum mismatch for {path}: sha256 {sha}, expected {' or '.join(spec.sha256)}. "
            f"The file is corrupted or truncated and was not used. {_remedy(path, spec)}"
        )
    if spec.git_blob and _git_blob(path) != spec.git_blob:
        raise DataError(
            f"checksum mismatch for {path}: git blob id {_git_blob(path)}, expected {spec.git_blob}. "
            f"The file was not used. {_remedy(path, spec)}"
        )
    return sha


def download(spec: FileSpec, dest: Path) -> Path:
    """Fetch ``spec`` into ``dest`` (a data root) with pooch, verifying the checksum."""
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")  # pooch imports tqdm.auto
    try:
        import pooch
    except ImportError:
        raise DataError(f"data file {spec.path} was not found in {', '.join(str(r) for r in search_roots())}, and "
                        f"downloading it needs pooch, which is not installed: put a verified copy into "
                        f"<dir>/{spec.path} and set {ENV_DATA}=<dir> (or pip install pooch)") from None

    pooch.get_logger().setLevel("WARNING")  # no "Downloading ..." lines; errors are raised below
    target = dest / spec.path
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        try:
            known = f"sha256:{spec.sha256[0]}" if len(spec.sha256) == 1 else None
            pooch.retrieve(url, known_hash=known, fname=target.name, path=target.parent, progressbar=False)
            try:
                verify(target, spec)
            except DataError:
                target.unlink(missing_ok=True)
                raise
            return target
        except ValueError as e:  # pooch's hash mismatch
            target.unlink(missing_ok=True)
            raise DataError(f"downloaded {url} but its checksum is wrong ({e}); the file was discarded") from None
        except DataError:
            raise
        except Exception as e:  # network errors of every kind
            errors.append(f"{url}: {type(e).__name__}: {e}")
    raise DataError(
        f"data file {spec.path} was not found and could not be downloaded.\n"
        f"  looked in: {', '.join(str(r) for r in search_roots())}\n"
        f"  tried: {'; '.join(errors)}\n"
        f"  expected checksum: {', '.join('sha256:' + s for s in spec.sha256) or 'git blob ' + spec.git_blob}\n"
        f"Download it by hand from {spec.urls[0]} into <dir>/{spec.path} and set {ENV_DATA}=<dir>."
    )


def fetch(key: str, root: str | Path | None = None, allow_download: bool = True) -> Path:
    """The verified local path of data file ``key`` (see :data:`FILES`), downloading it if needed."""
    spec = FILES[key]
    for r in search_roots(root):
        p = r / spec.path
        if p.is_dir():
            raise DataError(f"{p} is a folder where the data file {spec.path} should be: replace it with the file "
                            f"({spec.describe()})")
        if p.exists():
            verify(p, spec)
            return p
    if not allow_download:
        raise DataError(f"data file {spec.describe()} not found in {', '.join(map(str, search_roots(root)))}; "
                        f"set {ENV_DATA} to the folder that holds it")
    return download(spec, cache_dir())


# --------------------------------------------------------------------------- readers
def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain): magic 0x0801 labels or 0x0803 images, big-endian header."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        buf = f.read()
    magic = int.from_bytes(buf[:4], "big")
    if magic not in (0x801, 0x803):
        raise DataError(f"{path} is not an IDX label/image file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * ndim).reshape(dims)


NORB_MAGIC = {0x1E3D4C55: np.uint8, 0x1E3D4C54: np.int32}


def read_norb_matrix(path: Path) -> np.ndarray:
    """A small-NORB "binary matrix" file (gzip or plain, little-endian)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        buf = f.read()
    magic, ndim = np.frombuffer(buf[:8], "<i4").astype(np.int64)
    magic &= 0xFFFFFFFF
    if magic not in NORB_MAGIC:
        raise DataError(f"{path} is not a NORB binary matrix (magic {magic:#x})")
    dims = np.frombuffer(buf[8 : 8 + 4 * max(3, ndim)], "<i4")[:ndim]
    dtype = np.dtype(NORB_MAGIC[magic]).newbyteorder("<")
    return np.frombuffer(buf, dtype, offset=8 + 4 * max(3, ndim)).reshape(dims)


def chardata_to_images(m: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """IWAE ``chardata.mat`` arrays -> (row-major images [N, 784] in [0, 1], alphabet labels)."""
    data = m["data" if split == "train" else "testdata"]
    target = m["target" if split == "train" else "testtarget"]
    # columns are images stored column-major (MATLAB); transpose each 28x28 to row-major
    x = data.T.reshape(-1, 28, 28).transpose(0, 2, 1).reshape(-1, 784)
    return x.astype(np.float32), target.argmax(0).astype(np.int64)


def _resize(img: np.ndarray, size: int, method) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), method))


# --------------------------------------------------------------------------- builders (uint8 arrays)
def _build_mnist(root):
    out = {}
    for split, tag in (("train", "train"), ("test", "test")):
        out[f"x_{split}"] = read_idx(fetch(f"mnist-{tag}-images", root)).reshape(-1, 784)
        out[f"y_{split}"] = read_idx(fetch(f"mnist-{tag}-labels", root)).astype(np.int64)
    return out, {"source": "MNIST IDX files"}


def _build_omniglot(root):
    import scipy.io

    m = scipy.io.loadmat(fetch("omniglot-chardata", root))
    out = {}
    for split in ("train", "test"):
        x, y = chardata_to_images(m, split)
        out[f"x_{split}"], out[f"y_{split}"] = x, y  # float already
    return out, {"source": "IWAE chardata.mat"}


OMNIGLOT28_RECIPE = (
    "ink = 1 - png (strokes bright); PIL Image.resize((28, 28), Image.BOX) on the 0-255 image; "
    "stored as uint8 and divided by 255 at load; drawings 01-15 of every character -> train, 16-20 -> test; "
    "labels = alphabet index (50 alphabets, background then evaluation, sorted by name)"
)


def _build_omniglot28(root):
    from PIL import Image

    xs = {"train": [], "test": []}
    ys = {"train": [], "test": []}
    alphabets: list[str] = []
    for key in ("omniglot-background", "omniglot-evaluation"):
        with zipfile.ZipFile(fetch(key, root)) as z:
            for name in sorted(n for n in z.namelist() if n.endswith(".png")):
                _, alphabet, _, fname = name.split("/")
                if alphabet not in alphabets:
                    alphabets.append(alphabet)
                drawing = int(fname[:-4].split("_")[1])
                png = np.asarray(Image.open(io.BytesIO(z.read(name))))  # True = background
                ink = np.where(png, 0, 255).astype(np.uint8)
                small = _resize(ink, 28, Image.BOX)
                split = "train" if drawing <= 15 else "test"
                xs[split].append(small.reshape(784))
                ys[split].append(alphabets.index(alphabet))
    import PIL

    out = {f"x_{s}": np.stack(xs[s]) for s in xs} | {f"y_{s}": np.array(ys[s], np.int64) for s in ys}
    return out, {"recipe": OMNIGLOT28_RECIPE, "pillow": PIL.__version__, "numpy": np.__version__,
                 "alphabets": alphabets}


NORB_RECIPE = ("first camera of each stereo pair; PIL Image.resize((32, 32), Image.BICUBIC) on the 96x96 uint8 image; "
               "at load: (grey + U[0,1)) / 256 with a fixed seed (the authors' dequantization)")


def _build_norb(root):
    from PIL import Image

    out = {}
    for split, tag in (("train", "train"), ("test", "test")):
        dat = read_norb_matrix(fetch(f"norb-{tag}-dat", root))  # [N, 2, 96, 96]
        cat = read_norb_matrix(fetch(f"norb-{tag}-cat", root))
        read_norb_matrix(fetch(f"norb-{tag}-info", root))  # verified; not used by the model
        out[f"x_{split}"] = np.stack([_resize(img, 32, Image.BICUBIC).reshape(1024) for img in dat[:, 0]])
        out[f"y_{split}"] = cat.astype(np.int64)
    import PIL

    return out, {"recipe": NORB_RECIPE, "pillow": PIL.__version__}


_BUILDERS = {"mnist": _build_mnist, "omniglot": _build_omniglot, "omniglot28": _build_omniglot28, "norb": _build_norb}
_CACHE_VERSION = 2  # 2: the .json records the arrays' checksum


def arrays_sha256(arrays: dict) -> str:
    """A checksum of the arrays' names, dtypes, shapes and bytes (not of the npz file, whose zip
    timestamps differ between two identical builds)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read_cache(path: Path) -> dict:
    """The cached arrays at ``path`` if their checksum is the one their .json recorded, else raise
    ``ValueError`` saying why (missing, unreadable, altered)."""
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(path) as f:
            arrays = dict(f)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"unreadable ({type(e).__name__})") from None
    if meta.get("arrays_sha256") != arrays_sha256(arrays):
        raise ValueError("its arrays do not match the checksum recorded when it was built")
    return arrays


def _atomic_write(path: Path, write) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, renamed into place (:func:`lvae_lib.files.atomic`);
    a failure names the cache and what to do."""
    try:
        with atomic(path, what="the processed cache") as tmp:
            write(tmp)
    except OSError as e:
        raise DataError(f"{e.strerror or e} (set {ENV_CACHE} to a writable folder with room)") from None


def _processed(name: str, root) -> dict:
    """Arrays of ``name``, from the verified npz cache or built (and cached) from verified source files.
    A cache that is missing its checksum, unreadable or altered is never used: it is rebuilt, with one
    line of warning. Two processes building it at once each write their own temporary files."""
    path = cache_dir() / "processed" / f"{name}-v{_CACHE_VERSION}.npz"
    if path.exists():
        try:
            return _read_cache(path)
        except ValueError as why:
            warnings.warn(f"ignoring the processed cache {path}: {why}; rebuilding it from the verified source files",
                          stacklevel=2)
    arrays, meta = _BUILDERS[name](root)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta |= {"python": platform.python_version(), "shapes": {k: list(v.shape) for k, v in arrays.items()},
             "arrays_sha256": arrays_sha256(arrays)}
    def savez(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a path
            np.savez(f, **arrays)

    _atomic_write(path, savez)
    _atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    return arrays


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_dataset(name: str, split: str, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` for ``split`` in {"train", "test"}: x float32 [N, pixels] in [0, 1], y int64 labels."""
    _check_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _split(_processed(name, root), name, split)


def _split(a: dict, name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the cached arrays ``a`` as tensors, intensities in [0, 1], checked (:func:`check_pixels`)."""
    x, y = a[f"x_{split}"], a[f"y_{split}"]
    if name == "norb":
        g = np.random.default_rng(NORB_DEQUANT_SEED + (split == "test"))
        x = (x.astype(np.float32) + g.random(x.shape, dtype=np.float32)) / 256.0
    elif x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = np.ascontiguousarray(x, dtype=np.float32)
    check_pixels(x, y, name, split)
    return torch.from_numpy(x), torch.from_numpy(y)


def check_pixels(x: np.ndarray, y: np.ndarray, name: str, split: str) -> None:
    """What the data must be, whatever the cache says: images of the dataset's size, finite, in [0, 1],
    not all one value, one label each; else a :class:`DataError` naming the dataset and the remedy."""
    d = DATASETS[name]
    bad = None
    if x.ndim != 2 or x.shape[1] != d.x_dim or len(x) == 0:
        bad = f"shape {x.shape}, expected [images, {d.x_dim}]"
    elif len(y) != len(x):
        bad = f"{len(y)} labels for {len(x)} images"
    elif not np.isfinite(x).all():
        bad = f"{int((~np.isfinite(x)).sum())} pixels are NaN or infinite"
    elif x.min() < 0 or x.max() > 1:
        bad = f"pixels range over [{x.min():g}, {x.max():g}], not [0, 1]"
    elif x.max() == x.min():
        bad = f"every pixel is {x.min():g}"
    if bad:
        raise DataError(f"the {name} {split} set is not usable: {bad}. Delete the processed cache "
                        f"{cache_dir() / 'processed'} and the source files it was built from will be read again")


def fixed_binarization(x: torch.Tensor, seed: int = TEST_BINARIZATION_SEED) -> torch.Tensor:
    """One Bernoulli draw of ``x`` with a fixed seed: the same binarized test set on every run and machine."""
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(x.cpu(), generator=g).to(x.device)


@dataclass
class TrainData:
    """Tensors for one training run.

    ``x_train`` is real-valued in [0, 1]; it is binarized afresh each epoch when
    ``binarize`` is true.  ``x_test`` is ready for evaluation (for Bernoulli data:
    binarized once with a fixed seed, see :func:`lvae_lib.data.fixed_binarization`).
    """

    x_train: torch.Tensor
    x_test: torch.Tensor
    binarize: bool = True
    y_test: torch.Tensor | None = None

    def to(self, device) -> "TrainData":
        return TrainData(self.x_train.to(device), self.x_test.to(device), self.binarize,
                         None if self.y_test is None else self.y_test.to(device))

    def subset(self, n_train: int = 0, n_test: int = 0) -> "TrainData":
        """The first ``n_train`` training and ``n_test`` test images (0: all), as views."""
        cut = lambda t, n: None if t is None else t[: n or None]  # noqa: E731
        return TrainData(cut(self.x_train, n_train), cut(self.x_test, n_test), self.binarize,
                         cut(self.y_test, n_test))


def train_data(name: str, root=None):
    """A :class:`TrainData` for ``name``: real-valued train set, evaluation-ready test set."""
    _check_name(name)
    a = _processed(name, root)  # read the cache once for both splits
    x_tr, _ = _split(a, name, "train")
    x_te, y_te = _split(a, name, "test")
    binary = DATASETS[name].binary
    return TrainData(x_tr, fixed_binarization(x_te) if binary else x_te, binary, y_te)
