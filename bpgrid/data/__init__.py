"""Datasets of Liao, Leibo & Poggio (2016) §5 and Lillicrap et al. (2016), behind one registry.

    from bpgrid.data import load_dataset
    data = load_dataset("cifar10", root="data/cifar10", image_size=(32, 32), device="cuda")
    data.train.x, data.train.y  # standardized float32 inputs, int64 labels, on the device

Modules: ``vision`` (standard-split benchmarks in torchvision's layout), ``folders``
(class-per-folder trees sampled with the paper's protocol), ``timit`` (feature files), ``embedded``
(no files), ``formats`` (file readers), ``sampling`` (per-class protocol), ``prepare`` (resize,
standardize, in memory or streamed), ``registry`` (each dataset's name, loader, table label and
files, and ``load_dataset``).
"""

from bpgrid.data.prepare import StreamingSplit
from bpgrid.data.registry import (
    DATASETS,
    DatasetDef,
    dataset_label,
    dataset_options,
    default_root,
    get_dataset,
    load_dataset,
)
from bpgrid.data.splits import DatasetSplits, Split

__all__ = [
    "DATASETS",
    "DatasetDef",
    "DatasetSplits",
    "Split",
    "StreamingSplit",
    "dataset_label",
    "dataset_options",
    "default_root",
    "get_dataset",
    "load_dataset",
]
