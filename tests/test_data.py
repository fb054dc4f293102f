"""Dataset loaders: real MNIST and Omniglot from ../shared/data, NORB and chardata.mat in their exact formats."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lvae_lib import data as D

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(D.ENV_CACHE, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _real_data_dir() -> Path:
    d = os.environ.get(D.ENV_DATA) or (str(SHARED) if SHARED.exists() else "")
    if not d or not Path(d, "mnist").exists():
        if os.environ.get("CI"):
            pytest.fail(f"MNIST not found (set {D.ENV_DATA}); under CI this is a broken path, not a skip")
        pytest.skip(f"real data not available: set {D.ENV_DATA} to the folder holding mnist/ and omniglot-raw/")
    return Path(d)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("realcache")


def test_mnist(real_cache, monkeypatch):
    root = _real_data_dir()
    monkeypatch.setenv(D.ENV_CACHE, str(real_cache))
    monkeypatch.delenv(D.ENV_DATA, raising=False)
    t0 = time.perf_counter()
    x, y = D.load_dataset("mnist", "train", root=root)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    xt, yt = D.load_dataset("mnist", "test", root=root)
    cached = time.perf_counter() - t0
    print(f"MNIST load: first {first:.2f} s, cached {cached:.2f} s")
    assert x.shape == (60000, 784) and xt.shape == (10000, 784) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() == 1.0
    assert abs(x.mean().item() - 0.1307) < 5e-4 and abs(xt.mean().item() - 0.1325) < 5e-4
    assert torch.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert cached < 1.0
    # the fixed binarization of the test set is identical on every call
    b1, b2 = D.fixed_binarization(xt), D.fixed_binarization(xt)
    assert torch.equal(b1, b2) and set(b1.unique().tolist()) == {0.0, 1.0}
    assert abs(b1.mean().item() - xt.mean().item()) < 2e-3


def test_omniglot28_stand_in(real_cache, monkeypatch):
    root = _real_data_dir()
    monkeypatch.setenv(D.ENV_CACHE, str(real_cache))
    x, y = D.load_dataset("omniglot28", "train", root=root)
    xt, yt = D.load_dataset("omniglot28", "test", root=root)
    assert x.shape == (24345, 784) and xt.shape == (8115, 784)
    assert 0 <= x.min() and x.max() <= 1 and 0.07 < x.mean() < 0.09
    assert y.max() == 49 and len(torch.unique(y)) == 50
    # one known image, pinned by the checksum of its 28x28 uint8 array
    u8 = (x[0] * 255).round().to(torch.uint8).numpy()
    assert hashlib.sha256(u8.tobytes()).hexdigest() == "821fcdefd3da44d58dec767328cb943294f779b8375209d94ae8f8399b713356"
    meta = (real_cache / "processed" / f"omniglot28-v{D._CACHE_VERSION}.json").read_text()
    assert "BOX" in meta and "pillow" in meta


# ----------------------------------------------------------------------------- format-faithful fakes
def _pattern(h, w, seed=0):
    """An asymmetric image: a bright block top-left, a dim bar along the bottom."""
    img = np.zeros((h, w), np.uint8)
    img[: h // 3, : w // 4] = 250
    img[-h // 8 :, :] = 90
    return img


def write_chardata(path: Path, n_train=6, n_test=4):
    import scipy.io

    imgs = [np.roll(_pattern(28, 28).astype(np.float64) / 255, i, axis=1) for i in range(n_train + n_test)]
    # MATLAB stores each 28x28 image column-major in a 784-vector, one image per column
    cols = np.stack([im.flatten(order="F") for im in imgs], axis=1)
    onehot = lambda n, k: np.eye(50)[:, np.arange(n) % k]  # noqa: E731
    scipy.io.savemat(path, {"data": cols[:, :n_train], "testdata": cols[:, n_train:],
                            "target": onehot(n_train, 50), "testtarget": onehot(n_test, 50),
                            "targetchar": np.ones((1, n_train)), "testtargetchar": np.ones((1, n_test))})
    return imgs


def write_norb(path: Path, arr: np.ndarray):
    magic = 0x1E3D4C55 if arr.dtype == np.uint8 else 0x1E3D4C54
    dims = list(arr.shape) + [1] * max(0, 3 - arr.ndim)
    with gzip.open(path, "wb") as f:
        f.write(struct.pack("<ii", magic, arr.ndim) + struct.pack(f"<{len(dims)}i", *dims))
        f.write(arr.astype("<u1" if arr.dtype == np.uint8 else "<i4").tobytes())


def _spec_for(key, path, monkeypatch):
    spec = D.FILES[key]
    monkeypatch.setitem(D.FILES, key, D.FileSpec(spec.path, spec.urls, (D._sha256(path),)))


def test_omniglot_chardata_column_major_layout(tmp_path, cache, monkeypatch):
    (tmp_path / "omniglot").mkdir()
    f = tmp_path / "omniglot" / "chardata.mat"
    imgs = write_chardata(f)
    spec = D.FILES["omniglot-chardata"]
    monkeypatch.setitem(D.FILES, "omniglot-chardata", D.FileSpec(spec.path, spec.urls, git_blob=D._git_blob(f)))
    x, y = D.load_dataset("omniglot", "train", root=tmp_path)
    xt, _ = D.load_dataset("omniglot", "test", root=tmp_path)
    assert x.shape == (6, 784) and xt.shape == (4, 784)
    np.testing.assert_allclose(x[0].reshape(28, 28).numpy(), imgs[0], atol=1e-6)  # unrotated, unflipped
    np.testing.assert_allclose(xt[1].reshape(28, 28).numpy(), imgs[7], atol=1e-6)
    assert x[0].reshape(28, 28)[2, 2] > 0.9 and x[0].reshape(28, 28)[2, 25] == 0  # bright block at top-left
    assert y.tolist() == [0, 1, 2, 3, 4, 5]
    # a file with the wrong git blob id is refused
    monkeypatch.setitem(D.FILES, "omniglot-chardata", spec)
    monkeypatch.setenv(D.ENV_CACHE, str(tmp_path / "other-cache"))
    with pytest.raises(D.DataError, match="git blob id"):
        D.load_dataset("omniglot", "train", root=tmp_path)


def test_norb_binary_matrix_files(tmp_path, cache, monkeypatch):
    (tmp_path / "norb").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("test", 3)):
        dat = np.zeros((n, 2, 96, 96), np.uint8)
        for i in range(n):
            dat[i, 0] = _pattern(96, 96)
            dat[i, 1] = rng.integers(0, 255, (96, 96))  # second camera: must be ignored
        files = {"dat": dat, "cat": np.arange(n, dtype=np.int32) % 5, "info": np.zeros((n, 4), np.int32)}
        for kind, arr in files.items():
            key = f"norb-{split}-{kind}"
            p = tmp_path / D.FILES[key].path
            write_norb(p, arr)
            _spec_for(key, p, monkeypatch)
    raw = D.read_norb_matrix(tmp_path / D.FILES["norb-train-dat"].path)
    assert raw.shape == (5, 2, 96, 96) and raw.dtype == np.uint8
    assert D.read_norb_matrix(tmp_path / D.FILES["norb-train-cat"].path).tolist() == [0, 1, 2, 3, 4]
    x, y = D.load_dataset("norb", "train", root=tmp_path)
    xt, yt = D.load_dataset("norb", "test", root=tmp_path)
    assert x.shape == (5, 1024) and xt.shape == (3, 1024) and y.tolist() == [0, 1, 2, 3, 4]
    img = x[0].reshape(32, 32)
    assert img[3, 3] > 0.9 and img[3, 28] < 0.01 and 0.3 < img[31, 16] < 0.4  # orientation kept
    # dequantized: (grey + U[0,1)) / 256 -> never exactly the quantized value, within 1/256 of it
    assert torch.all((x * 256 - (x * 256).floor()) > 0) and x.max() < 1
    torch.testing.assert_close(x, D.load_dataset("norb", "train", root=tmp_path)[0])  # fixed seed


def test_checksum_mismatch_is_refused_and_named(tmp_path, cache, monkeypatch):
    p = tmp_path / D.FILES["mnist-test-labels"].path
    p.parent.mkdir(parents=True)
    p.write_bytes(b"truncated")
    with pytest.raises(D.DataError, match="checksum mismatch .*t10k-labels.*not used"):
        D.fetch("mnist-test-labels", root=tmp_path, allow_download=False)


def test_missing_file_offline_gives_a_clear_error(tmp_path, cache, monkeypatch):
    monkeypatch.delenv(D.ENV_DATA, raising=False)
    spec = D.FILES["norb-test-cat"]
    # an address on this machine where nothing listens: the download fails at once, offline-like
    monkeypatch.setitem(D.FILES, "norb-test-cat", D.FileSpec(spec.path, ("http://127.0.0.1:9/x.gz",), spec.sha256))
    with pytest.raises(D.DataError) as e:
        D.fetch("norb-test-cat", root=tmp_path)
    msg = str(e.value)
    for part in (spec.path, "http://127.0.0.1:9/x.gz", spec.sha256[0], D.ENV_DATA):
        assert part in msg


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def test_downloader_verifies_checksums(http_server, cache, monkeypatch):
    served, url = http_server
    payload = b"\x00\x00\x08\x01\x00\x00\x00\x03\x07\x02\x01"  # an IDX label file with 3 labels
    (served / "labels.gz").write_bytes(gzip.compress(payload))
    good = hashlib.sha256((served / "labels.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(D.FILES, "t-good", D.FileSpec("t/labels.gz", (url + "labels.gz",), (good,)))
    p = D.fetch("t-good")
    assert p == cache / "t/labels.gz" and D.read_idx(p).tolist() == [7, 2, 1]
    mtime = p.stat().st_mtime_ns
    assert D.fetch("t-good").stat().st_mtime_ns == mtime  # present: never downloaded again
    monkeypatch.setitem(D.FILES, "t-bad", D.FileSpec("t/bad.gz", (url + "labels.gz",), ("0" * 64,)))
    with pytest.raises(D.DataError, match="checksum"):
        D.fetch("t-bad")
    assert not (cache / "t/bad.gz").exists()  # the bad download is discarded


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        D.load_dataset("cifar", "train")
    with pytest.raises(ValueError, match="split"):
        D.load_dataset("mnist", "valid")
