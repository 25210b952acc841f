"""Containers: what a loader reads (raw splits) and what the trainer receives (prepared splits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset


@dataclass
class Split:
    """One split held as tensors: x float32 (N, *input_shape), y int64 (N,) or float32 (N, D)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DatasetSplits:
    """A loaded dataset, ready for training: train/test are Splits, or Datasets when streamed."""

    name: str
    train: Split | Dataset
    test: Split | Dataset
    num_classes: int  # for regression tasks: the output dimension
    input_shape: tuple[int, ...]  # (C, H, W) for images, (C, L) for signals, (D,) for vectors
    task: str  # "classification" or "regression"
    info: dict  # what was sampled and read: seed, classes, per-class counts, files, statistics


@dataclass
class RawSplit:
    """A split as read from disk: x is (N, C, H, W) uint8, (N, ...) float, or image files."""

    x: Tensor | list[Path]
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def is_image(self) -> bool:
        return isinstance(self.x, list) or self.x.ndim == 4


@dataclass
class RawDataset:
    """What a loader returns: raw splits plus what the trainer needs to know about them."""

    train: RawSplit
    test: RawSplit
    num_classes: int
    task: str = "classification"
    info: dict = field(default_factory=dict)
    standardize: bool = True  # False where inputs are already exact (the teacher tasks)


def require(paths: Sequence[Path], *, dataset: str, layout: str, how: str) -> None:
    """Fail before any work when an expected file or directory is missing."""
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(
                f"{dataset}: {path} not found.\nExpected layout: {layout}\nTo obtain it: {how}"
            )
