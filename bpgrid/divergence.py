"""When a cell has diverged: Liao et al.'s "exploding gradients" (§3, Table 2's uSF), as a rule.

An epoch diverged when its mean training loss is not finite, when the weights it ends with are
not finite, or when its training loss is more than EXPLOSION times the chance-level loss, the
loss of a net that outputs zeros (ln C for cross-entropy over C classes, 1 for the hinge loss,
the mean squared target for regression). The last case is how a Batch Manhattan net explodes: its
steps are ±LR whatever the gradient, so at a huge LR its weights stay finite but its outputs grow
to ~1e15 and its loss with them, while its error sits at chance. No net that learns comes near
that: on the quick grid (110 cells, 10 epochs) every cell that learns stays within 1.1x chance,
and the worst finite cell that does not diverge is uSF+BM on MNIST-1D at LR x100, at 81x; BM at
LR x1e4 reaches 1e7x in its first epoch, at x1e6 1e15x. The factor leaves an order of magnitude
on either side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from bpgrid.data import DatasetSplits, Split

EXPLOSION = 1e3


def chance_loss(loss_fn, data: DatasetSplits) -> float | None:
    """The training loss of a net that outputs zeros (None for regression data not in memory).
    For classification it does not depend on the labels: ln C for cross-entropy, 1 for hinge."""
    if data.task == "classification":
        return float(loss_fn(torch.zeros(1, data.num_classes), torch.zeros(1, dtype=torch.long)))
    if isinstance(data.train, Split):
        y = data.train.y.float().cpu()
        return float(loss_fn(torch.zeros_like(y), y))
    return None


def finite_weights(tensors: Iterable[Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def divergence(metrics: dict[str, float], chance: float | None,
               weights_finite: bool = True) -> str | None:
    """Why this epoch diverged, or None if it did not."""
    loss = metrics["train_loss"]
    if not math.isfinite(loss):
        return f"training loss {loss} in epoch {metrics['epoch']}"
    if not weights_finite:
        return f"non-finite weights after epoch {metrics['epoch']}"
    if chance and loss > EXPLOSION * chance:
        return (f"training loss {loss:.3g} in epoch {metrics['epoch']}, more than {EXPLOSION:g}x "
                f"the chance-level loss {chance:.3g}")
    return None
