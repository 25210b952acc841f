"""The dataset registry and ``load_dataset``, the one entry point the trainer calls."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from bpgrid.data import embedded, folders, timit, vision
from bpgrid.data.prepare import Preparation, prepare_splits
from bpgrid.data.splits import DatasetSplits, RawDataset

DATASETS: dict[str, Callable[..., RawDataset]] = {
    "mnist": vision.mnist,
    "cifar10": vision.cifar10,
    "cifar100": vision.cifar100,
    "svhn": vision.svhn,
    "stl10": vision.stl10,
    "flowers102": vision.flowers102,
    "caltech101": folders.caltech101,
    "caltech256_101": folders.caltech256_101,
    "icub": folders.icub,
    "flowers17": folders.flowers17,
    "pubfig83_id": folders.pubfig83_id,
    "sufr_w_id": folders.sufr_w_id,
    "lfw_id": folders.lfw_id,
    "mit_indoor67": folders.mit_indoor67,
    "timit80": timit.timit80,
    "digits": embedded.digits,
    "mnist1d": embedded.mnist1d,
    "teacher_linear": embedded.teacher_linear,
    "teacher_nonlinear": embedded.teacher_nonlinear,
}
EMBEDDED = frozenset({"digits", "mnist1d", "teacher_linear", "teacher_nonlinear"})
COMMON = ("root", "download", "seed")  # every loader's arguments, set by load_dataset
PREPARATION = ("image_size", "channels", "device", "max_memory_mb")


def dataset_options(name: str) -> dict[str, Any]:
    """A dataset's own options and their defaults (beyond root, download and seed)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    parameters = inspect.signature(DATASETS[name]).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in COMMON}


def default_root(name: str) -> Path:
    """``$BPGRID_DATA/<name>``, or ``data/<name>`` when BPGRID_DATA is unset (as the configs)."""
    return Path(os.environ.get("BPGRID_DATA", "data")) / name


def _image_size(image_size: Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    return size


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    device: str | torch.device = "cpu",
    max_memory_mb: int = 4096,
    **options: Any,
) -> DatasetSplits:
    """Read, sample and prepare a registered dataset (its yaml in conf/dataset/ lists the options).

    Images are resized to ``image_size`` and converted to ``channels`` (1 or 3), then standardized
    per channel with train-split statistics. Each split is a ``Split`` of tensors on ``device``
    when it fits in ``max_memory_mb``, else a streaming ``Dataset`` of CPU tensors.
    """
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for dataset {name!r}; its options are {sorted(valid)}, "
            f"besides {', '.join(COMMON + PREPARATION)}"
        )
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    size = _image_size(image_size)
    if name in EMBEDDED:
        root = None
    else:
        root = default_root(name) if root is None else Path(root)
    raw = DATASETS[name](root=root, download=download, seed=seed, **options)
    if (size is not None or channels is not None) and not raw.train.is_image:
        shape = tuple(raw.train.x.shape[1:])
        raise ValueError(
            f"{name} inputs have shape {shape}, not images; image_size and channels "
            "apply to images only"
        )
    train, test, input_shape, prepared = prepare_splits(
        raw.train,
        raw.test,
        Preparation(size, channels),
        standardize=raw.standardize,
        max_memory_mb=max_memory_mb,
        device=device,
    )
    info = {"seed": seed, "root": None if root is None else str(root)} | raw.info | prepared
    info |= {"n_train": len(raw.train), "n_test": len(raw.test)}
    return DatasetSplits(name, train, test, raw.num_classes, input_shape, raw.task, info)
