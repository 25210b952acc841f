"""TIMIT-80 phoneme frames (Liao et al. 2016 §5: "80 classes, 400 training and 100 testing samples
per class", a fully connected network on 1845-dim inputs).

TIMIT is licensed (LDC93S1, https://catalog.ldc.upenn.edu/LDC93S1), so the features are computed
outside bpgrid and stored as two NumPy ``.npy`` files under ``root``:

- ``features.npy``: float32 (or float64), shape (N, 1845), one row per frame window;
- ``labels.npy``: integers, shape (N,), the frame's class.

``.npy`` (not ``.npz``) so the file is memory-mapped and only the sampled rows are read. Classes are
the distinct labels; ``n_classes`` of them are drawn with ``seed`` (all when there are exactly 80),
then 400 train / 100 test rows of each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bpgrid.data.sampling import sample_per_class
from bpgrid.data.splits import RawDataset, RawSplit, require

HOW = (
    "compute frame features from TIMIT (LDC93S1, https://catalog.ldc.upenn.edu/LDC93S1) and "
    "save them with numpy.save as described in bpgrid/data/timit.py"
)


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy file ({err})") from err


def timit80(
    *,
    root: Path,
    download: bool,
    seed: int,
    n_classes: int | None = 80,
    n_train: int = 400,
    n_test: int = 100,
    feature_dim: int = 1845,
) -> RawDataset:
    """80 phoneme classes, 400 train / 100 test frames per class, sampled with seed."""
    if download:
        raise ValueError(f"timit80 cannot be downloaded automatically; {HOW}")
    paths = [root / "features.npy", root / "labels.npy"]
    layout = f"{paths[0]} float32 (N, {feature_dim}) and {paths[1]} int (N,)"
    require(paths, dataset="timit80", layout=layout, how=HOW)
    features, labels = _load(paths[0]), _load(paths[1])
    if features.ndim != 2 or features.shape[1] != feature_dim or features.dtype.kind != "f":
        raise ValueError(
            f"{paths[0]}: {features.dtype} {features.shape}, expected float (N, {feature_dim})"
        )
    if labels.shape != features.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{paths[1]}: {labels.dtype} {labels.shape}, expected int "
            f"{features.shape[:1]} to match {paths[0].name}"
        )
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    groups = {int(v): rows for v, rows in zip(values, np.split(order, starts[1:]), strict=True)}
    sample = sample_per_class(
        groups,
        n_classes=n_classes,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        where=f"timit80 ({paths[1]})",
        unit="frames",
    )

    def split(pairs: list[tuple[int, int]]) -> RawSplit:
        rows = np.array([row for row, _ in pairs], dtype=np.int64)
        x = torch.from_numpy(np.asarray(features[rows], dtype=np.float32))
        return RawSplit(x, torch.tensor([label for _, label in pairs]).long())

    info = sample.info() | {"seed": seed, "files": [str(p) for p in paths]}
    return RawDataset(split(sample.train), split(sample.test), len(sample.classes), info=info)
