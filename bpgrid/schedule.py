"""The training protocol's pieces: step schedules and the BN statistics re-estimation."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


def step_value(epoch: int, epochs: Sequence[int], values: Sequence[float]) -> float:
    """The value in force at ``epoch`` (1-based) of a step schedule starting at ``epochs``."""
    return values[bisect.bisect_right(list(epochs), epoch) - 1]


def learning_rate(schedule, epoch: int, lr_scale: float) -> float:
    """Liao et al.: 5e-4 / 5e-5 / 5e-6 from epochs 1 / 51 / 61, times the cell's LR scale."""
    return step_value(epoch, schedule["lr_epochs"], schedule["lr_values"]) * lr_scale


def batch_size(schedule, epoch: int) -> int:
    """The batch size at ``epoch`` (uSF+BM's second procedure: 100 for 3 epochs, then 500)."""
    return int(step_value(epoch, schedule["batch_size_epochs"], schedule["batch_sizes"]))


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_bn_statistics(model: nn.Module) -> None:
    """Training batches normalise with their own statistics but leave the running ones alone."""
    for bn in batch_norms(model):
        bn.momentum = 0.0


@torch.no_grad()
def reestimate_bn(model: nn.Module, batches: Iterable[Tensor], alpha: float) -> int:
    """BN test statistics as an EMA over training minibatches (Liao et al. §5: alpha 0.05, 20).

    The first batch's statistics start the average; each later batch b then moves it by
    alpha·(stat_b - average). Running in train mode, without gradients. Returns batches used.
    """
    bns = batch_norms(model)
    if not bns:
        return 0
    was_training = model.training
    model.train()
    used = 0
    for used, x in enumerate(batches, start=1):
        for bn in bns:
            bn.momentum = 1.0 if used == 1 else alpha
        model(x)
    freeze_bn_statistics(model)
    model.train(was_training)
    return used
