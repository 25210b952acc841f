"""An array's test errors, and the BN statistics they are tested with (Liao et al. §5)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from bpgrid.arrays.modules import ArrayBatchNorm
from bpgrid.arrays.net import ArrayNet
from bpgrid.batches import batches
from bpgrid.data import Split

EVAL_BATCH = 1000


@torch.no_grad()
def evaluate(net: ArrayNet, split: Split | Dataset, device: torch.device,
             classification: bool) -> list[float]:
    """Each member's error in % over ``split`` (classification) or mean squared error per output
    (regression); every member sees every sample."""
    net.eval()
    total = torch.zeros(net.members, device=device, dtype=torch.float64)
    n = len(split)
    dtype = next(net.parameters()).dtype
    for x, y in batches(split, torch.arange(n), EVAL_BATCH, device, dtype):
        out = net(x.expand(net.members, *x.shape))
        if classification:
            total += (out.argmax(-1) != y).sum(1)
        else:
            squared = F.mse_loss(out, y.expand_as(out), reduction="none")
            total += squared.flatten(1).sum(1) / out[0, 0].numel()
    values = (total / n).tolist()
    return [100.0 * v for v in values] if classification else values


def batch_norms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers of a plain net or an array."""
    kinds = (nn.modules.batchnorm._BatchNorm, ArrayBatchNorm)
    return [m for m in model.modules() if isinstance(m, kinds)]


def freeze_bn_statistics(model: nn.Module) -> None:
    """Training batches normalise with their own statistics but leave the running ones alone."""
    for bn in batch_norms(model):
        bn.momentum = 0.0


@torch.no_grad()
def reestimate_bn(model: nn.Module, inputs: Iterable[Tensor], alpha: float) -> int:
    """BN test statistics as an EMA over training minibatches (Liao et al. §5: alpha 0.05, 20).

    ``inputs``: the minibatches' inputs (an array's: each member's own batches). The first
    batch's statistics start the average; each later batch b then moves it by
    alpha·(stat_b - average). Running in train mode, without gradients. Returns the number of
    batches used.
    """
    bns = batch_norms(model)
    if not bns:
        return 0
    was_training = model.training
    model.train()
    used = 0
    for used, x in enumerate(inputs, start=1):
        for bn in bns:
            bn.momentum = 1.0 if used == 1 else alpha
        model(x)
    freeze_bn_statistics(model)
    model.train(was_training)
    return used
