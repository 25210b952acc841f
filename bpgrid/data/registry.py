"""The dataset registry (name, loader, table label, source of the files) and ``load_dataset``."""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bpgrid.data import embedded, folders, timit, vision
from bpgrid.data.prepare import Preparation, prepare_splits
from bpgrid.data.splits import DatasetSplits, RawDataset

#: Where a dataset's files come from, and what that means for the user.
SOURCES = {
    "embedded": "none needed: made here or bundled with a package",
    "torchvision": "`dataset.download=true` fetches them with torchvision",
    "manual": "by hand (a missing file's error says from where)",
}
COMMON = ("root", "download", "seed")  # every loader's arguments, set by load_dataset
PREPARATION = ("image_size", "channels", "device", "max_memory_mb")


@dataclass(frozen=True)
class DatasetDef:
    """A dataset: its loader, its row label in the tables, and where its files come from.

    ``layout`` is the files the loader reads under ``dataset.root`` (empty for embedded data);
    ``obtain`` says where a dataset that cannot be downloaded comes from.
    """

    name: str
    load: Callable[..., RawDataset]
    label: str
    source: str  # a key of SOURCES
    layout: str = ""
    obtain: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"dataset {self.name}: source {self.source!r} is not one of "
                             f"{', '.join(SOURCES)}")

    @property
    def embedded(self) -> bool:
        """True when the data needs no file and no network (``root`` is ignored)."""
        return self.source == "embedded"

    @property
    def downloadable(self) -> bool:
        """True when ``download=True`` fetches the files with torchvision."""
        return self.source == "torchvision"

    def has_files(self, root: Path) -> bool:
        """Whether ``root`` holds the top folder of the layout, not empty (the layout's fixed
        leading folders, or ``root`` itself); the loader checks each file when it reads them."""
        if self.embedded:
            return True
        head = itertools.takewhile(lambda part: not set(part) & set("{<[*"),
                                   Path(self.layout).parent.parts)
        top = Path(root).joinpath(*head)
        return top.is_dir() and any(top.iterdir())

    def options(self) -> dict[str, Any]:
        """The dataset's own options and their defaults (beyond root, download and seed)."""
        parameters = inspect.signature(self.load).parameters.values()
        return {p.name: p.default for p in parameters if p.name not in COMMON}


def _by_name(*defs: DatasetDef) -> dict[str, DatasetDef]:
    return {d.name: d for d in defs}


#: Every dataset, in the row order of Liao et al.'s Table 2, then the embedded ones.
DATASETS: dict[str, DatasetDef] = _by_name(
    DatasetDef("mnist", vision.mnist, "MNIST", "torchvision",
               "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"),
    DatasetDef("cifar10", vision.cifar10, "CIFAR10", "torchvision",
               "cifar-10-batches-py/{data_batch_1..5,test_batch}"),
    DatasetDef("cifar100", vision.cifar100, "CIFAR100", "torchvision",
               "cifar-100-python/{train,test}"),
    DatasetDef("svhn", vision.svhn, "SVHN", "torchvision", "{train,test}_32x32.mat"),
    DatasetDef("stl10", vision.stl10, "STL10", "torchvision",
               "stl10_binary/{train,test}_{X,y}.bin"),
    DatasetDef("caltech101", folders.caltech101, "Cal101", "torchvision",
               "caltech101/101_ObjectCategories/<class>/<image>"),
    DatasetDef("caltech256_101", folders.caltech256_101, "Cal256-101", "torchvision",
               "caltech256/256_ObjectCategories/<class>/<image>"),
    DatasetDef("icub", folders.icub, "iCub", "manual", "{train,test}/<class>/<image>",
               folders.SOURCES["icub"]),
    DatasetDef("flowers17", folders.flowers17, "Flowers17", "manual", "<class>/<image>",
               folders.SOURCES["flowers17"]),
    DatasetDef("flowers102", vision.flowers102, "Flowers102", "torchvision",
               "flowers-102/{jpg/,imagelabels.mat,setid.mat}"),
    DatasetDef("pubfig83_id", folders.pubfig83_id, "PubFig83-ID", "manual", "<identity>/<image>",
               folders.SOURCES["pubfig83_id"]),
    DatasetDef("sufr_w_id", folders.sufr_w_id, "SUFR-W-ID", "manual", "<identity>/<image>",
               folders.SOURCES["sufr_w_id"]),
    DatasetDef("lfw_id", folders.lfw_id, "LFW-ID", "manual", "<identity>/<image>",
               folders.SOURCES["lfw_id"]),
    DatasetDef("mit_indoor67", folders.mit_indoor67, "MIT-indoor67", "manual", "<class>/<image>",
               folders.SOURCES["mit_indoor67"]),
    DatasetDef("timit80", timit.timit80, "TIMIT80", "manual", "{features,labels}.npy",
               timit.HOW),
    DatasetDef("digits", embedded.digits, "digits", "embedded"),
    DatasetDef("mnist1d", embedded.mnist1d, "MNIST-1D", "embedded"),
    DatasetDef("teacher_linear", embedded.teacher_linear, "teacher (linear)", "embedded"),
    DatasetDef("teacher_nonlinear", embedded.teacher_nonlinear, "teacher (tanh)", "embedded"),
)
EMBEDDED = frozenset(name for name, d in DATASETS.items() if d.embedded)


def get_dataset(name: str) -> DatasetDef:
    """The registered dataset; ValueError listing the valid names for an unknown one."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def dataset_options(name: str) -> dict[str, Any]:
    """A dataset's own options and their defaults (beyond root, download and seed)."""
    return get_dataset(name).options()


def dataset_label(name: str) -> str:
    """The dataset's row label in the tables; the name itself for a dataset no longer known."""
    return DATASETS[name].label if name in DATASETS else name


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
    dataset = get_dataset(name)
    valid = dataset.options()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for dataset {name!r}; its options are {sorted(valid)}, "
            f"besides {', '.join(COMMON + PREPARATION)}"
        )
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    size = _image_size(image_size)
    if dataset.embedded:
        root = None
    else:
        root = default_root(name) if root is None else Path(root)
    raw = dataset.load(root=root, download=download, seed=seed, **options)
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
