"""Machine-learning benchmarks with standard splits (Liao et al. 2016 §5, "Standard training and
testing splits were used"): MNIST, CIFAR-10, CIFAR-100, SVHN, STL-10, Flowers-102.

Files are read from exactly where torchvision's ``download=True`` puts them, under ``root``:

- mnist: ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (raw or ``.gz``)
- cifar10: ``cifar-10-batches-py/data_batch_{1..5}, test_batch``
- cifar100: ``cifar-100-python/{train,test}`` (the 100 fine labels)
- svhn: ``{train,test}_32x32.mat`` (the "extra" split is not used)
- stl10: ``stl10_binary/{train,test}_{X,y}.bin`` (the labelled 5000/8000; unlabelled not used)
- flowers102: ``flowers-102/{jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat}``; train = the
  standard train + val sets (10 + 10 per class, 2040 images), test = the standard test set (6149)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bpgrid.data.formats import (
    read_cifar_batch,
    read_idx,
    read_mat,
    read_stl_images,
    read_stl_labels,
    read_svhn,
)
from bpgrid.data.splits import RawDataset, RawSplit, require

HOW = "pass dataset.download=true (load_dataset(..., download=True)) to fetch it with torchvision"


def download_with_torchvision(class_name: str, root: Path, **kwargs) -> None:
    """Fetch and unpack the official files with torchvision, which checks their md5 sums."""
    import torchvision.datasets

    root.mkdir(parents=True, exist_ok=True)
    getattr(torchvision.datasets, class_name)(str(root), download=True, **kwargs)


def _arrays(x: np.ndarray, y: np.ndarray) -> RawSplit:
    return RawSplit(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y).long())


def _raw_or_gz(path: Path) -> Path:
    """The file itself, or its .gz where only that exists."""
    gz = path.with_name(f"{path.name}.gz")
    return gz if gz.exists() and not path.exists() else path


def mnist(*, root: Path, download: bool, seed: int) -> RawDataset:
    """MNIST: 60000 train / 10000 test 28x28 grey digits."""
    if download:
        download_with_torchvision("MNIST", root, train=True)
    raw = root / "MNIST" / "raw"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    names += ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = [_raw_or_gz(raw / name) for name in names]
    layout = f"{raw}/{{{','.join(names)}}} (raw or .gz)"
    require(paths, dataset="mnist", layout=layout, how=HOW)
    splits = []
    for images_path, labels_path in (paths[:2], paths[2:]):
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise ValueError(f"{images_path}: holds an array of shape {images.shape}, not "
                             "(N, height, width) images")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"{labels_path}: holds labels of shape {labels.shape}, not one per "
                             f"image of {images_path} ({len(images)})")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{labels_path}: holds labels from {labels.min()} to "
                             f"{labels.max()}, not digits 0..9")
        splits.append(_arrays(images[:, None], labels.astype(np.int64)))
    return RawDataset(*splits, 10, info={"files": [str(p) for p in paths]})


def _cifar(
    root: Path,
    folder: str,
    train_files: list[str],
    label_key: str,
    classes: int,
    name: str,
    download: bool,
) -> RawDataset:
    """CIFAR-10/100 python batches."""
    if download:
        download_with_torchvision(name.upper(), root)
    paths = [root / folder / f for f in [*train_files, "test_batch" if classes == 10 else "test"]]
    layout = f"{root / folder}/{{{','.join(p.name for p in paths)}}} (python pickles)"
    require(paths, dataset=name, layout=layout, how=HOW)
    batches = [read_cifar_batch(path, label_key) for path in paths]
    train_x = np.concatenate([x for x, _ in batches[:-1]])
    train_y = np.concatenate([y for _, y in batches[:-1]])
    return RawDataset(
        _arrays(train_x, train_y),
        _arrays(*batches[-1]),
        classes,
        info={"files": [str(p) for p in paths]},
    )


def cifar10(*, root: Path, download: bool, seed: int) -> RawDataset:
    """CIFAR-10: 50000 train / 10000 test 32x32 RGB images, 10 classes."""
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    return _cifar(root, "cifar-10-batches-py", batches, "labels", 10, "cifar10", download)


def cifar100(*, root: Path, download: bool, seed: int) -> RawDataset:
    """CIFAR-100: 50000 train / 10000 test 32x32 RGB images, 100 fine classes."""
    return _cifar(root, "cifar-100-python", ["train"], "fine_labels", 100, "cifar100", download)


def svhn(*, root: Path, download: bool, seed: int) -> RawDataset:
    """SVHN cropped digits: 73257 train / 26032 test 32x32 RGB; label 10 on disk is digit 0."""
    if download:
        for split in ("train", "test"):
            download_with_torchvision("SVHN", root, split=split)
    paths = [root / "train_32x32.mat", root / "test_32x32.mat"]
    require(paths, dataset="svhn", layout=f"{root}/{{train,test}}_32x32.mat", how=HOW)
    train, test = (_arrays(*read_svhn(path)) for path in paths)
    return RawDataset(train, test, 10, info={"files": [str(p) for p in paths]})


def stl10(*, root: Path, download: bool, seed: int) -> RawDataset:
    """STL-10 labelled splits: 5000 train / 8000 test 96x96 RGB, 10 classes."""
    if download:
        download_with_torchvision("STL10", root, split="train")
    folder = root / "stl10_binary"
    paths = [folder / f"{split}_{part}.bin" for split in ("train", "test") for part in ("X", "y")]
    require(paths, dataset="stl10", layout=f"{folder}/{{train,test}}_{{X,y}}.bin", how=HOW)
    splits = []
    for images_path, labels_path in (paths[:2], paths[2:]):
        images = read_stl_images(images_path)
        splits.append(_arrays(images, read_stl_labels(labels_path, len(images))))
    return RawDataset(*splits, 10, info={"files": [str(p) for p in paths]})


def flowers102(*, root: Path, download: bool, seed: int, train_on_val: bool = True) -> RawDataset:
    """Oxford Flowers-102 standard split; train_on_val adds the val set to the train split."""
    if download:
        download_with_torchvision("Flowers102", root)
    folder = root / "flowers-102"
    paths = [folder / "jpg", folder / "imagelabels.mat", folder / "setid.mat"]
    layout = f"{folder}/{{jpg/image_00001.jpg..., imagelabels.mat, setid.mat}}"
    require(paths, dataset="flowers102", layout=layout, how=HOW)
    labels = read_mat(paths[1], ("labels",))["labels"].reshape(-1).astype(np.int64) - 1
    set_ids = read_mat(paths[2], ("trnid", "valid", "tstid"))
    train_sets = ["trnid", "valid"] if train_on_val else ["trnid"]
    train_ids = np.concatenate([set_ids[s].reshape(-1) for s in train_sets])

    def split(ids: np.ndarray) -> RawSplit:
        ids = ids.astype(np.int64)  # MATLAB may store the ids as doubles
        if ids.min() < 1 or ids.max() > len(labels):
            raise ValueError(f"{paths[2]}: image ids outside 1..{len(labels)} of {paths[1]}")
        files = [folder / "jpg" / f"image_{i:05d}.jpg" for i in ids]
        return RawSplit(files, torch.from_numpy(labels[ids - 1]))

    info = {"files": [str(p) for p in paths[1:]], "train_sets": train_sets}
    return RawDataset(split(train_ids), split(set_ids["tstid"].reshape(-1)), 102, info=info)
