"""Arrays against their members trained alone: configs, synthetic data and comparisons."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

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
def recorded_signs(trainer: Trainer):
    """Each step's gradient signs, (K, ...) per parameter, while the block runs."""
    optimizer, steps = trainer.parts.optimizer, []
    update = optimizer.update

    def record(grads):
        steps.append([g.sign() for g in grads])
        update(grads)

    optimizer.update = record
    try:
        yield steps
    finally:
        optimizer.update = update


def relative_difference(a, b) -> float:
    """max |a - b| over max |b|: the difference on the scale of the tensor (or number)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if torch.equal(a, b):
        return 0.0
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale else 1.0)


def state_differences(mine: dict, theirs: dict) -> dict[str, float]:
    """Relative differences of two member states: model tensors, optimizer state, generator."""
    out = {f"model {key}": relative_difference(mine["model"][key], value)
           for key, value in theirs["model"].items()}
    for index, slot in theirs["optimizer"]["state"].items():
        for key, value in slot.items():
            out[f"optimizer {index} {key}"] = relative_difference(
                mine["optimizer"]["state"][index][key], value)
    out["rng"] = float(not torch.equal(mine["rng"], theirs["rng"]))
    return out
