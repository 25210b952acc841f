"""A cell's parts, built from its resolved config: data, model, optimizer, loss and device."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bpgrid.data import DatasetSplits, load_dataset
from bpgrid.losses import LOSSES
from bpgrid.models import build_model, model_input_shape
from bpgrid.optim import build_optimizer


@dataclass
class CellParts:
    """What one cell trains: its data (on the device when it fits), model, optimizer and loss."""

    data: DatasetSplits
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    device: torch.device

    @property
    def classification(self) -> bool:
        return self.data.task == "classification"


@functools.lru_cache(maxsize=1)
def _load(arguments: str) -> DatasetSplits:
    """load_dataset, kept for the next cell of the same process: a worker runs a grid's cells
    grouped by dataset, so each dataset is read (or generated) once per worker. Training only
    reads the splits."""
    return load_dataset(**json.loads(arguments))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_cell(c: dict[str, Any], data: DatasetSplits | None = None) -> CellParts:
    """The parts of the cell of plain-dict resolved config ``c``; its seed seeds torch's RNG
    before the model is drawn. ``data`` replaces the configured dataset (synthetic benchmarks)."""
    device = resolve_device(c["device"])
    model_cfg = dict(c["model"])
    model_name = model_cfg.pop("name")
    shape = model_input_shape(model_name)
    image = shape is not None and len(shape) == 3
    if data is None:
        data = _load(json.dumps({
            **c["dataset"], "image_size": shape[1:] if image else None,
            "channels": shape[0] if image else None, "device": str(device),
            "max_memory_mb": c["max_memory_mb"]}, sort_keys=True))
    torch.manual_seed(c["seed"])
    feedback = dict(c["feedback"])
    rule, layers = feedback.pop("name"), feedback.pop("layers", "all")
    model = build_model(
        model_name, input_shape=data.input_shape, num_classes=data.num_classes,
        feedback=rule, feedback_layers=layers, feedback_options=feedback,
        norm=c["norm"]["name"], alignment=c["alignment"], **model_cfg).to(device)
    on_gpu = device.type == "cuda"
    if on_gpu and len(data.input_shape) == 3:
        # cuDNN's NHWC kernels: 18% less time an epoch for Liao's CIFAR net on an H100
        model.to(memory_format=torch.channels_last)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(c["optimizer"], trainable, capturable=on_gpu)
    loss_fn = LOSSES[c["schedule"]["loss"] if data.task == "classification" else "mse"]
    return CellParts(data, model, optimizer, loss_fn, device)
