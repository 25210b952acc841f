"""Losses of the two protocols: cross-entropy, the reference report's hinge loss, and MSE."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def hinge(output: Tensor, target: Tensor) -> Tensor:
    """The report's hinge loss on identity outputs: mean over samples and classes of
    max(0, 1 - t·o), with t = +1 for the true class and -1 for the others (Keras' ``hinge``)."""
    t = F.one_hot(target, output.shape[1]).to(output.dtype).mul_(2).sub_(1)
    return F.relu(1 - t * output).mean()


LOSSES = {"cross_entropy": F.cross_entropy, "hinge": hinge, "mse": F.mse_loss}
