"""Arrays against their members trained alone: configs, synthetic data and comparisons."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from composing import compose_config

from bpgrid.config import to_dict
from bpgrid.data import DatasetSplits, Split
from bpgrid.models import model_input_shape
from bpgrid.trainer import Trainer

#: one member per rule (every registered rule, dfa and wm included, and a rule on the last layer
#: only), each with its own LR scale, seed and optimizer numbers
MEMBERS = [
    ["feedback=bp", "lr_scale=100", "seed=0"],
    ["feedback=usf", "lr_scale=10", "seed=1"],
    ["feedback=nusf", "lr_scale=30", "seed=2"],
    ["feedback=brsf", "feedback.flip_prob=0.25", "lr_scale=1", "seed=3"],
    ["feedback=frsf", "feedback.flip_prob=0.5", "lr_scale=3", "seed=4"],
    ["feedback=rndf", "lr_scale=0.3", "seed=5"],
    ["feedback=kp", "feedback.decay=0.01", "lr_scale=50", "seed=6"],
    ["feedback=wm", "feedback.mirror_batch=7", "lr_scale=5", "seed=7"],
    ["feedback=dfa", "lr_scale=20", "seed=8"],
    ["feedback=rndf", "feedback.layers=1", "lr_scale=2", "seed=9"],
]
#: per-member optimizer numbers, by optimizer kind (member k takes entry k mod len)
NUMBERS = {
    "sgd": [["optimizer.momentum=0.9"], ["optimizer.momentum=0.5", "optimizer.weight_decay=0.01"],
            ["optimizer.momentum=0.0", "optimizer.weight_decay=0.0"]],
    "bm": [["optimizer.momentum=0.9"], ["optimizer.momentum=0.5", "optimizer.weight_decay=0.01"],
           ["optimizer.momentum=0.0", "optimizer.weight_decay=0.0"]],
    "adam": [["optimizer.betas=[0.9,0.999]"], ["optimizer.betas=[0.5,0.9]",
                                              "optimizer.weight_decay=0.001"]],
}
#: an LR step at epoch 3 and a short last batch each epoch (45 = 4 x 10 + 5)
SCHEDULE = ["schedule.batch_sizes=[10]", "schedule.lr_epochs=[1,3]",
            "schedule.lr_values=[5e-4,5e-5]", "schedule.bn_ema_batches=3"]
TRAIN, TEST = 45, 20


def input_shape(model: str) -> tuple[int, ...]:
    return model_input_shape(model) or {"small_cnn": (1, 8, 8)}.get(model, (12,))


def synthetic(shape: Sequence[int], classes: int = 5, regression: bool = False,
              train: int = TRAIN) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(train + TEST, *shape, generator=g)
    y = (torch.randn(train + TEST, classes, generator=g) if regression
         else torch.randint(0, classes, (train + TEST,), generator=g))
    return DatasetSplits("synthetic", Split(x[:train], y[:train]), Split(x[train:], y[train:]),
                         classes, tuple(shape), "regression" if regression else "classification",
                         {})


def compose(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", "device=cpu", "progress=never",
                                   *SCHEDULE, *overrides]))


def configs(model: str, *common: str, members: Sequence[Sequence[str]] = MEMBERS
            ) -> list[dict]:
    """The members' resolved configs: one structure, each member's own numbers."""
    kind = compose(f"model={model}", *common)["optimizer"]["name"]
    numbers = NUMBERS[kind]
    return [compose(f"model={model}", *common, *numbers[k % len(numbers)], *member)
            for k, member in enumerate(members)]


@contextlib.contextmanager
def watched_update(trainer: Trainer, watch):
    """Calls ``watch(grads)`` with every step's gradients ((K, ...) per parameter) before the
    optimizer uses them, while the block runs."""
    optimizer = trainer.parts.optimizer
    update = optimizer.update

    def watched(grads):
        watch(grads)
        update(grads)

    optimizer.update = watched
    try:
        yield
    finally:
        optimizer.update = update


@dataclass
class Flips:
    """The first step at which a member's gradient signs differ from its run alone: how many
    entries differ there, and the largest of their gradients in the array, relative to the
    member's largest gradient entry (a rounding-level number for entries within rounding of 0)."""

    step: int
    count: int
    largest: float


def sign_record(trainer: Trainer) -> tuple[list, contextlib.AbstractContextManager]:
    """Each step's gradient signs of a run alone (int8), and the block that records them."""
    steps: list[list[torch.Tensor]] = []
    return steps, watched_update(trainer, lambda grads: steps.append(
        [g[0].sign().to(torch.int8) for g in grads]))


def sign_comparison(trainer: Trainer, alone: list[list[list[torch.Tensor]]]
                    ) -> tuple[dict[int, Flips], contextlib.AbstractContextManager]:
    """Per member k, its ``Flips`` against ``alone[k]`` (its run alone's ``sign_record``), found
    step by step while the array trains; members whose signs never differ are absent."""
    found: dict[int, Flips] = {}
    step = [0]

    def compare(grads):
        for k, record in enumerate(alone):
            if k in found:
                continue
            count, largest = 0, 0.0
            scale = max(g[k].abs().max().item() for g in grads) or 1.0
            for g, theirs in zip(grads, record[step[0]], strict=True):
                differ = g[k].sign().to(torch.int8) != theirs
                if differ.any():
                    count += int(differ.sum())
                    largest = max(largest, g[k].abs()[differ].max().item() / scale)
            if count:
                found[k] = Flips(step[0], count, largest)
        step[0] += 1

    return found, watched_update(trainer, compare)


def relative_difference(a, b, scale: float | None = None) -> float:
    """max |a - b| over ``scale``, by default max |b|: the difference on the scale of the tensor
    (or number)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if torch.equal(a, b):
        return 0.0
    scale = b.abs().max().item() if scale is None else scale
    return (a - b).abs().max().item() / (scale if scale else 1.0)


def state_differences(mine: dict, theirs: dict) -> dict[str, float]:
    """Relative differences of two member states: each model tensor on its own scale, each
    optimizer state entry on the scale of that entry over all parameters (a bias just before BN
    has a gradient of rounding noise, and so has its momentum), the generator 0 or 1."""
    out = {f"model {key}": relative_difference(mine["model"][key], value)
           for key, value in theirs["model"].items()}
    slots = theirs["optimizer"]["state"]
    scales: dict[str, float] = {}
    for slot in slots.values():
        for key, value in slot.items():
            scales[key] = max(scales.get(key, 0.0), torch.as_tensor(value).abs().max().item())
    for index, slot in slots.items():
        for key, value in slot.items():
            out[f"optimizer {index} {key}"] = relative_difference(
                mine["optimizer"]["state"][index][key], value, scales[key])
    for key in ("rng", "cuda_rng"):  # the generator of a CPU or GPU member
        if key in theirs:
            out[key] = float(not torch.equal(mine[key], theirs[key]))
    return out
