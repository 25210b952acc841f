"""Readers for the standard dataset file formats; a corrupt or truncated file fails with its name.

We parse these formats ourselves instead of using torchvision's dataset classes, because those
verify md5 sums of the official files (CIFAR, SVHN, STL-10, Flowers-102), which makes them
impossible to test on small files; torchvision is used only to download (``download=True``).
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import scipy.io

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST's format, raw or .gz): magic 0 0 dtype ndim, big-endian dims, data."""
    try:
        with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as file:
            data = bytearray(file.read())  # writable, so torch can share it
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: unreadable idx file ({err})") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated idx file ({len(data)} bytes, shorter than its "
                         f"{4 + 4 * ndim}-byte header)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: truncated or padded idx file ({len(data)} bytes, {expected} expected)"
        )
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(dims)


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR python batch: a pickled dict with 'data' (N, 3072) uint8 and label_key (N ints)."""
    try:
        with path.open("rb") as file:
            batch = pickle.load(file, encoding="latin1")
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except Exception as err:  # unpickling a corrupt file can raise almost anything
        raise ValueError(
            f"{path}: not a readable CIFAR batch ({type(err).__name__}: {err})"
        ) from err
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(
            f"{path}: CIFAR batch has data {data.shape} and {len(labels)} labels; "
            "expected (N, 3072) and N labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


def read_mat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of a MATLAB .mat file."""
    try:
        content = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... on corrupt files
        raise ValueError(f"{path}: not a readable .mat file ({type(err).__name__}: {err})") from err
    missing = [key for key in keys if key not in content]
    if missing:
        raise ValueError(f"{path}: .mat file lacks {missing}")
    return {key: content[key] for key in keys}


def read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN cropped digits: X (32, 32, 3, N) uint8, y (N, 1) with label 10 meaning digit 0."""
    content = read_mat(path, ("X", "y"))
    images, labels = content["X"], content["y"].reshape(-1).astype(np.int64)
    if images.shape[:3] != (32, 32, 3) or images.ndim != 4 or images.shape[3] != len(labels):
        raise ValueError(f"{path}: X {images.shape} and y {content['y'].shape} do not match SVHN")
    labels[labels == 10] = 0
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1), dtype=np.uint8), labels


def read_stl_images(path: Path) -> np.ndarray:
    """STL-10 binary images: N x 3 x 96 x 96 uint8, each channel stored column-major."""
    data = np.fromfile(path, dtype=np.uint8)
    size = 3 * 96 * 96
    if len(data) == 0 or len(data) % size:
        raise ValueError(f"{path}: {len(data)} bytes is not a whole number of 3x96x96 images")
    return data.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)


def read_stl_labels(path: Path, n_images: int) -> np.ndarray:
    """STL-10 binary labels: one uint8 per image, 1..10 on disk, 0..9 returned."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(labels) != n_images or labels.min(initial=1) < 1 or labels.max(initial=1) > 10:
        raise ValueError(f"{path}: {len(labels)} labels in 1..10 expected {n_images}")
    return labels - 1
