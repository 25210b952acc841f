"""An array's layout of activations, and its modules without weights to fuse: BatchNorm per
member, dropout from each member's generator, and the flatten between conv and FC layers.

Two layouts (HFTA's): vectors are *stacked*, (K, B, F), one slice per member, so FC layers are one
batched matmul; images are *grouped*, (B, K·C, H, W), the members' channels side by side, so convs
are grouped convolutions and BatchNorm, pooling and nonlinearities work per channel unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def grouped(x: Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """Stacked (K, B, C, ...) images as grouped (B, K·C, ...), a new tensor in
    ``memory_format`` (its strides set even where they are ambiguous, as for one channel, so
    that an array of one takes the kernels an array of many takes)."""
    members, batch, channels = x.shape[:3]
    out = torch.empty(batch, members * channels, *x.shape[3:], dtype=x.dtype, device=x.device,
                      memory_format=memory_format)
    out.unflatten(1, (members, channels)).transpose(0, 1).copy_(x)
    return out


def stacked(x: Tensor, members: int) -> Tensor:
    """Grouped (B, K·C, ...) activations as stacked (K, B, C, ...) (a view)."""
    return x.unflatten(1, (members, -1)).transpose(0, 1)


class ArrayBatchNorm(nn.Module):
    """The members' BatchNorm layers as one: statistics per member and channel.

    Parameters and buffers are the plain layer's with a leading member dimension, and
    ``momentum`` means what it means to ``nn.BatchNorm``, so Liao et al.'s protocol
    (``bpgrid.evaluation``) sets it the same way for plain and array nets.
    """

    def __init__(self, norms: Sequence[nn.modules.batchnorm._BatchNorm], grouped_input: bool):
        super().__init__()
        first = norms[0]
        self.members, self.num_features, self.grouped = len(norms), first.num_features, \
            grouped_input
        self.eps, self.momentum, self.affine = first.eps, first.momentum, first.affine
        for name, _ in first.named_parameters(recurse=False):
            self.register_parameter(name, stack_parameters(norms, name))
        for name, _ in first.named_buffers(recurse=False):
            self.register_buffer(name, torch.stack([n.get_buffer(name) for n in norms]))

    def forward(self, x: Tensor) -> Tensor:
        flat = x if self.grouped else x.transpose(0, 1).reshape(x.shape[1], -1)
        if self.training:
            self.num_batches_tracked.add_(1)
        y = F.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1),
                         self.weight.view(-1) if self.affine else None,
                         self.bias.view(-1) if self.affine else None,
                         self.training, self.momentum, self.eps)
        return y if self.grouped else y.view(x.shape[1], self.members, -1).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"{self.members} x {self.num_features}, affine={self.affine}"


class ArrayDropout(nn.Module):
    """Dropout whose mask for member k comes from member k's generator."""

    def __init__(self, p: float, grouped_input: bool, generators: Sequence[torch.Generator]):
        super().__init__()
        self.p, self.grouped, self.generators = p, grouped_input, generators

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        members = len(self.generators)
        shape = stacked(x, members).shape if self.grouped else x.shape
        mask = torch.empty(shape, dtype=x.dtype, device=x.device)
        for part, generator in zip(mask, self.generators, strict=True):
            part.bernoulli_(1 - self.p, generator=generator)
        mask.div_(1 - self.p)
        return x * (grouped(mask) if self.grouped else mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ArrayFlatten(nn.Module):
    """The members' flatten before the first FC layer: to stacked (K, B, features)."""

    def __init__(self, members: int, grouped_input: bool):
        super().__init__()
        self.members, self.grouped = members, grouped_input

    def forward(self, x: Tensor) -> Tensor:
        if self.grouped:
            return x.reshape(x.shape[0], self.members, -1).transpose(0, 1)
        return x.flatten(2)


def stack_parameters(modules: Sequence[nn.Module], name: str) -> nn.Parameter:
    """The modules' parameter ``name`` stacked along a new leading member dimension."""
    plain = [m.get_parameter(name) for m in modules]
    return nn.Parameter(torch.stack([p.detach() for p in plain]),
                        requires_grad=plain[0].requires_grad)
