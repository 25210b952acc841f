"""A model's test error, and the BN statistics it is tested with (Liao et al. §5)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from bpgrid.batches import batches
from bpgrid.data import Split

EVAL_BATCH = 1000


@torch.no_grad()
def evaluate(model: nn.Module, split: Split | Dataset, device: torch.device,
             classification: bool) -> float:
    """Error in % over ``split`` (classification) or mean squared error per output (regression)."""
    model.eval()
    total = torch.zeros((), device=device)
    n = len(split)
    for x, y in batches(split, torch.arange(n), EVAL_BATCH, device):
        out = model(x)
        if classification:
            total += (out.argmax(1) != y).sum()
        else:
            total += nn.functional.mse_loss(out, y, reduction="sum") / out[0].numel()
    value = total.item() / n
    return 100.0 * value if classification else value


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_bn_statistics(model: nn.Module) -> None:
    """Training batches normalise with their own statistics but leave the running ones alone."""
    for bn in batch_norms(model):
        bn.momentum = 0.0


@torch.no_grad()
def reestimate_bn(model: nn.Module, inputs: Iterable[Tensor], alpha: float) -> int:
    """BN test statistics as an EMA over training minibatches (Liao et al. §5: alpha 0.05, 20).

    ``inputs``: the minibatches' inputs. The first batch's statistics start the average; each
    later batch b then moves it by alpha·(stat_b - average). Running in train mode, without
    gradients. Returns the number of batches used.
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
