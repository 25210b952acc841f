"""One forward pass of an example batch that records how each named layer is called, and leaves
the model exactly as it was."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LayerCall:
    """The first call of a layer: its input's shape (batch included) and whether it needs a
    gradient (it does unless every layer before it is frozen or it reads the network's input)."""

    input_shape: tuple[int, ...]
    input_requires_grad: bool


@dataclass(frozen=True)
class Trace:
    batch: int
    calls: dict[str, LayerCall]
    output_shape: tuple[int, ...] | None  # None when the output is not one tensor


def _batch_of(example_input: Tensor | tuple) -> int:
    first = example_input[0] if isinstance(example_input, tuple) else example_input
    if not isinstance(first, Tensor) or first.dim() == 0:
        raise ValueError("example_input must be a batch tensor (or a tuple of the model's "
                         f"inputs, the first a batch tensor), got {type(first).__name__}")
    return first.shape[0]


def trace(root: nn.Module, layers: Mapping[str, nn.Module],
          example_input: Tensor | tuple) -> Trace:
    """Run ``root`` once on ``example_input`` in training mode with gradients on (so fused fast
    paths, which skip submodules, stay off), recording each of ``layers``' first call.

    Buffers (BatchNorm statistics, feedback state) and the random generators are restored
    afterwards, and each module's train/eval mode, so the model is left as it was.
    """
    batch = _batch_of(example_input)
    calls: dict[str, LayerCall] = {}

    def record(name):
        def hook(module, args):
            if name not in calls and args and isinstance(args[0], Tensor):
                x = args[0]
                calls[name] = LayerCall(tuple(x.shape), x.requires_grad)
        return hook

    handles = [layer.register_forward_pre_hook(record(name)) for name, layer in layers.items()]
    buffers = [(b, b.clone()) for b in root.buffers()]
    modes = [(m, m.training) for m in root.modules()]
    gpus = sorted({b.device.index or 0 for b in [*root.parameters(), *root.buffers()]
                   if b.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=gpus), torch.enable_grad():
            root.train()
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            out = root(*args)
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes:
            module.training = training
    shape = tuple(out.shape) if isinstance(out, Tensor) else None
    return Trace(batch, calls, shape)
