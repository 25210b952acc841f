"""Small datasets written in the real file formats, and a switch that turns the network off."""

from __future__ import annotations

import gzip
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as on yann.lecun.com: 0 0 0x08 ndim, big-endian int32 dims, uint8 data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_image(path: Path, rng: np.random.Generator, size=(12, 10), mode="RGB") -> None:
    """A random image of size (width, height), format from the suffix."""
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def write_tree(root: Path, counts: dict[str, int], seed=0, suffix=".jpg", **kwargs) -> Path:
    """A class-per-folder tree: root/<class>/<i>.jpg with counts[class] images each."""
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_image(root / name / f"{i:03d}{suffix}", rng, **kwargs)
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def mnist_root(tmp_path, rng):
    """30 train / 10 test digits; the train files gzipped, the test files raw (both are read)."""
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.arange(30) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(10)[::-1])
    return tmp_path


def write_cifar_batch(path: Path, rng, n: int, label_keys: dict[str, int]) -> None:
    """A CIFAR python batch: a pickled dict of data (n, 3072) uint8 and label lists."""
    batch = {"batch_label": "testing", "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    batch |= {key: [int(i % k) for i in range(n)] for key, k in label_keys.items()}
    batch["filenames"] = [f"img_{i}.png" for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def cifar10_root(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", rng, 4, {"labels": 10})
    write_cifar_batch(folder / "test_batch", rng, 6, {"labels": 10})
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))
    return tmp_path


@pytest.fixture
def cifar100_root(tmp_path, rng):
    folder = tmp_path / "cifar-100-python"
    write_cifar_batch(folder / "train", rng, 20, {"fine_labels": 100, "coarse_labels": 20})
    write_cifar_batch(folder / "test", rng, 8, {"fine_labels": 100, "coarse_labels": 20})
    return tmp_path


@pytest.fixture
def svhn_root(tmp_path, rng):
    """train_32x32.mat and test_32x32.mat: X (32, 32, 3, N) uint8, y (N, 1), 10 meaning 0."""
    for name, n in (("train", 12), ("test", 5)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)
        scipy.io.savemat(tmp_path / f"{name}_32x32.mat", {"X": x, "y": y})
    return tmp_path


@pytest.fixture
def stl10_root(tmp_path, rng):
    """stl10_binary/{train,test}_{X,y}.bin; images column-major, labels 1..10."""
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for split, n in (("train", 6), ("test", 4)):
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes((np.arange(n) % 10 + 1).astype(np.uint8).tobytes())
    np.save(tmp_path / "images.npy", images)  # the test images, to compare with what is read
    return tmp_path


@pytest.fixture
def flowers102_root(tmp_path, rng):
    """flowers-102/jpg/image_0000i.jpg, imagelabels.mat (1..102), setid.mat (1-based ids)."""
    folder = tmp_path / "flowers-102"
    for i in range(1, 13):
        write_image(folder / "jpg" / f"image_{i:05d}.jpg", rng, size=(20, 16))
    labels = np.array([[1, 2, 3] * 4])
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": labels})
    ids = {"trnid": [[1, 2, 3]], "valid": [[4, 5, 6]], "tstid": [[7, 8, 9, 10, 11, 12]]}
    scipy.io.savemat(folder / "setid.mat", {k: np.array(v) for k, v in ids.items()})
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def make_tree(tmp_path):
    """write_tree as a fixture: make_tree(counts, folder="tree", seed=0, **image options)."""

    def make(counts: dict[str, int], folder: str = "tree", **kwargs) -> Path:
        return write_tree(tmp_path / folder, counts, **kwargs)

    return make
