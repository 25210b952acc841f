"""The training protocol's step schedules: learning rate and batch size by epoch."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def step_value(epoch: int, epochs: Sequence[int], values: Sequence[float]) -> float:
    """The value in force at ``epoch`` (1-based) of a step schedule starting at ``epochs``."""
    return values[bisect.bisect_right(list(epochs), epoch) - 1]


def learning_rate(schedule, epoch: int, lr_scale: float) -> float:
    """Liao et al.: 5e-4 / 5e-5 / 5e-6 from epochs 1 / 51 / 61, times the cell's LR scale."""
    return step_value(epoch, schedule["lr_epochs"], schedule["lr_values"]) * lr_scale


def batch_size(schedule, epoch: int) -> int:
    """The batch size at ``epoch`` (uSF+BM's second procedure: 100 for 3 epochs, then 500)."""
    return int(step_value(epoch, schedule["batch_size_epochs"], schedule["batch_sizes"]))
