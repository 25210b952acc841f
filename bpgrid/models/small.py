"""Small nets for the embedded data sets: a CNN for 8x8 digits and a configurable MLP."""

from __future__ import annotations

from collections.abc import Sequence

from bpgrid.models.registry import register
from bpgrid.models.spec import FC, Conv, Layer, Pool


@register("small_cnn")
def small_cnn(num_classes: int, channels: Sequence[int] = (16, 32), kernel_size: int = 3,
              hidden: Sequence[int] = (64,)) -> tuple[Layer, ...]:
    """Per channel count a same-padded conv (odd ``kernel_size``) and Max-Pool 2/2; then FCs.

    On 8x8 digits: 8 -> 4 -> 2, so FC 64 sees 32·2·2 = 128 inputs.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"small_cnn needs an odd kernel_size for same padding, got {kernel_size}")
    convs: list[Layer] = []
    for c in channels:
        convs += [Conv(int(c), kernel_size, padding=kernel_size // 2), Pool("max", 2, 2)]
    return (*convs, *(FC(int(h)) for h in hidden), FC(num_classes))


@register("mlp")
def mlp(num_classes: int, hidden: Sequence[int] = (100, 100)) -> tuple[Layer, ...]:
    """FC layers of ``hidden`` units then FC #Class; ``hidden=[]`` is a single linear layer."""
    return (*(FC(int(h)) for h in hidden), FC(num_classes))
