"""What the trainer trains, built from resolved configs: an array's data, fused net, optimizer,
loss and device, and each member's own plain net and optimizer (a cell is an array of one)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from bpgrid.arrays.net import ArrayNet
from bpgrid.arrays.optim import ArrayOptimizer, build_array_optimizer
from bpgrid.arrays.structure import structure_difference
from bpgrid.data import DatasetSplits, Split, load_dataset
from bpgrid.losses import LOSSES
from bpgrid.models import FeedbackNet, build_model, model_input_shape
from bpgrid.optim import build_optimizer


@dataclass
class Member:
    """One member of an array: its config, its plain net and optimizer (a member's state is read
    and written in their form), and the generator of its random draws on the array's device."""

    config: dict[str, Any]
    model: FeedbackNet
    optimizer: torch.optim.Optimizer
    generator: torch.Generator


@dataclass
class ArrayParts:
    """What an array trains: the members' shared data, loss and device, the fused net and
    optimizer, and the members themselves."""

    data: DatasetSplits
    net: ArrayNet
    optimizer: ArrayOptimizer
    loss_fn: Callable[..., Tensor]
    device: torch.device
    members: list[Member]

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


def load_data(c: dict[str, Any], device: torch.device) -> DatasetSplits:
    """The cell's dataset, at its model's input size, on ``device`` when it fits."""
    shape = model_input_shape(c["model"]["name"])
    image = shape is not None and len(shape) == 3
    return _load(json.dumps({
        **c["dataset"], "image_size": shape[1:] if image else None,
        "channels": shape[0] if image else None, "device": str(device),
        "max_memory_mb": c["max_memory_mb"]}, sort_keys=True))


def plain_model(c: dict[str, Any], data: DatasetSplits) -> FeedbackNet:
    """The cell's net on the CPU, drawn after seeding torch's RNG with the cell's seed."""
    model_cfg = dict(c["model"])
    model_name = model_cfg.pop("name")
    torch.manual_seed(c["seed"])
    feedback = dict(c["feedback"])
    rule, layers = feedback.pop("name"), feedback.pop("layers", "all")
    return build_model(
        model_name, input_shape=data.input_shape, num_classes=data.num_classes, feedback=rule,
        feedback_layers=layers, feedback_options=feedback, norm=c["norm"]["name"],
        alignment=c["alignment"], **model_cfg)


def loss_of(c: dict[str, Any], data: DatasetSplits) -> Callable[..., Tensor]:
    return LOSSES[c["schedule"]["loss"] if data.task == "classification" else "mse"]


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _member_generator(c: dict[str, Any], device: torch.device) -> torch.Generator:
    """The generator of a member's draws (dropout, brsf, the weight mirror's noise). On the CPU it
    continues torch's RNG from where drawing the member's net left it, as a plain cell's draws
    did; on a GPU it is seeded with the member's seed, as torch.manual_seed seeds the GPU's."""
    if device.type == "cpu":
        return torch.Generator().set_state(torch.get_rng_state())
    return torch.Generator(device).manual_seed(c["seed"])


def check_structure(configs: Sequence[dict[str, Any]]) -> None:
    """ValueError naming the first entry in which a member's structure differs from member 0's
    (``bpgrid.arrays.structure``)."""
    if not configs:
        raise ValueError("an array needs at least one cell")
    for k, c in enumerate(configs[1:], start=1):
        key = structure_difference(configs[0], c)
        if key is not None:
            raise ValueError(f"cell {k} cannot train in an array with cell 0: they differ in "
                             f"{key}")


def _cast(data: DatasetSplits, dtype: torch.dtype) -> DatasetSplits:
    """Held splits with their floating tensors in ``dtype`` (streamed ones are cast by batch)."""
    def cast(split):
        if not isinstance(split, Split):
            return split
        return Split(*(t.to(dtype) if t.is_floating_point() else t for t in (split.x, split.y)))
    return replace(data, train=cast(data.train), test=cast(data.test))


def build_array(configs: Sequence[dict[str, Any]], data: DatasetSplits | None = None,
                dtype: torch.dtype | None = None) -> ArrayParts:
    """The array of cells ``configs`` (plain-dict resolved configs of one structure): each
    member's net drawn under its own seed and stacked into the fused net. ``data`` replaces the
    configured dataset; ``dtype`` (e.g. torch.float64) casts nets and data."""
    check_structure(configs)
    first = configs[0]
    device = resolve_device(first["device"])
    data = data if data is not None else load_data(first, device)
    if dtype is not None:
        data = _cast(data, dtype)
    members = []
    for c in configs:
        model = plain_model(c, data)
        generator = _member_generator(c, device)
        if dtype is not None:
            model.to(dtype)
        members.append(Member(c, model, build_optimizer(c["optimizer"], trainable(model)),
                              generator))
    net = ArrayNet([m.model for m in members], [m.generator for m in members]).to(device)
    if len(data.input_shape) == 3:
        # NHWC kernels. GPU: 18% less time an epoch of Liao's CIFAR net on an H100. CPU: 16 x 16
        # grouped channels of digits' 8x8 images pool 25x, normalise 7x, convolve 16x faster
        net.use_channels_last()
    optimizer = build_array_optimizer([c["optimizer"] for c in configs], trainable(net))
    return ArrayParts(data, net, optimizer, loss_of(first, data), device, members)
