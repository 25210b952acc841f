"""The order of a split's samples and its minibatches on the device, for one cell or an array."""

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


def member_orders(n: int, size: int, seeds: list[int], epoch: int, stream: int = 0) -> Tensor:
    """(K, n') orders of an array's members for an epoch: row k is what member k would see
    trained alone (``shuffled`` with its own seed)."""
    return torch.stack([shuffled(n, size, epoch_generator(seed, epoch, stream))
                        for seed in seeds])


def batches(split: Split | Dataset, order: Tensor, size: int, device: torch.device,
            dtype: torch.dtype | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Minibatches of ``split``: its samples ``order`` in batches of ``size``, on ``device``.

    An order of (K, n) (one row per member of an array) gives (K, b, ...) batches, member k's
    samples in row k. Streamed splits' floating tensors are cast to ``dtype`` when given.
    """
    if isinstance(split, Split):  # one index copy to the device per epoch, then gathers
        for idx in order.to(device).split(size, dim=-1):
            yield split.x[idx], split.y[idx]
        return
    # its own generator: a DataLoader otherwise draws its base seed from the global RNG
    chunks = order.split(size, dim=-1)
    loader = DataLoader(split, batch_sampler=[c.flatten().tolist() for c in chunks],
                        generator=torch.Generator())
    for chunk, (x, y) in zip(chunks, loader, strict=True):
        lead = chunk.shape
        x, y = (t.view(*lead, *t.shape[1:]).to(device, non_blocking=True) for t in (x, y))
        if dtype is not None:
            x, y = (t.to(dtype) if t.is_floating_point() else t for t in (x, y))
        yield x, y

