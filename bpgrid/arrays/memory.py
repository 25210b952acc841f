"""How many members of an array fit on a GPU: a simple estimate against its free memory.

A member needs about ``PARAM_COPIES`` copies of its parameters (weights, gradients, feedback V,
two optimizer states) and ``ACTIVATION_COPIES`` copies of its activations per sample (the
outputs, what backward keeps, their gradients) times the largest batch of its schedule, in
its dtype. The activations are counted by one forward pass of one sample through the member's
plain net on the CPU. An array of K members is given at most ``SHARE`` of the free memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bpgrid.data import DatasetSplits

PARAM_COPIES = 5
ACTIVATION_COPIES = 3
SHARE = 0.8


def member_bytes(model: nn.Module, data: DatasetSplits, config: Mapping[str, Any]) -> int:
    """The estimated GPU memory of one member of this plain net at its largest batch."""
    params = sum(p.numel() for p in model.parameters())
    activations = 0

    def count(module, inputs, output):
        nonlocal activations
        if isinstance(output, torch.Tensor) and not list(module.children()):
            activations += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *data.input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    batch = max(config["schedule"]["batch_sizes"])
    size = next(model.parameters()).element_size()
    return size * (PARAM_COPIES * params + ACTIVATION_COPIES * batch * activations)


def members_that_fit(model: nn.Module, data: DatasetSplits, config: Mapping[str, Any],
                     device: torch.device) -> int | None:
    """How many members fit in ``SHARE`` of the device's free memory (at least 1); None on a
    device that is not a GPU."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, int(SHARE * free // member_bytes(model, data, config)))
