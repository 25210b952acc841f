"""The order of a split's samples and its minibatches on the cell's device."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from bpgrid.data import Split


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """The shuffling order of an epoch depends on (seed, epoch) only, so a resumed cell repeats
    it exactly; ``stream`` 1 draws the BN statistics' batches."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7 + stream)


def shuffled(n: int, size: int, generator: torch.Generator) -> Tensor:
    """The generator's permutation of n training samples in batches of ``size``.

    A final batch of one sample is dropped: BatchNorm cannot normalise it.
    """
    order = torch.randperm(n, generator=generator)
    if n > 1 and n % size == 1:
        order = order[:-1]
    return order


def batches(split: Split | Dataset, order: Tensor, size: int, device: torch.device
            ) -> Iterator[tuple[Tensor, Tensor]]:
    """Minibatches of ``split``: its samples ``order`` in batches of ``size``, on ``device``."""
    if isinstance(split, Split):  # one index copy to the device per epoch, then gathers
        for idx in order.to(device).split(size):
            yield split.x[idx], split.y[idx]
    else:
        # its own generator: a DataLoader otherwise draws its base seed from the global RNG,
        # which the feedback rules (brsf) and dropout use
        loader = DataLoader(split, batch_sampler=[c.tolist() for c in order.split(size)],
                            generator=torch.Generator())
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
