"""Losses of the two protocols: cross-entropy, the reference report's hinge loss, and MSE.

Each takes ``reduction`` as torch's losses do, so an array can take every member's mean loss from
one unreduced loss of all its samples (``member_losses``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor


def hinge(output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The report's hinge loss on identity outputs: mean over samples and classes of
    max(0, 1 - t·o), with t = +1 for the true class and -1 for the others (Keras' ``hinge``);
    ``reduction="none"`` keeps every (sample, class) term."""
    t = F.one_hot(target, output.shape[1]).to(output.dtype).mul_(2).sub_(1)
    terms = F.relu(1 - t * output)
    return terms if reduction == "none" else terms.mean()


LOSSES: dict[str, Callable[..., Tensor]] = {"cross_entropy": F.cross_entropy, "hinge": hinge,
                                            "mse": F.mse_loss}


def member_losses(loss_fn: Callable[..., Tensor], output: Tensor, target: Tensor) -> Tensor:
    """Each member's mean loss, a (K,) tensor, from an array's (K, B, ...) outputs and targets:
    the loss of member k is ``loss_fn(output[k], target[k])``."""
    members = output.shape[0]
    terms = loss_fn(output.flatten(0, 1), target.flatten(0, 1), reduction="none")
    return terms.reshape(members, -1).mean(1)
