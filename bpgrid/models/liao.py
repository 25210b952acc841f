"""Liao, Leibo & Poggio (2016) Table 1: the networks of Experiments A, B, C1 and C2.

No padding except in the CIFAR net, which has 2-pixel zero padding on every convolution and
1-pixel right-bottom zero padding before every pool (so 32 -> 16 -> 8 -> 4). ReLU by default.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpgrid.models.registry import register
from bpgrid.models.spec import FC, Conv, Layer, Pool

CIFAR_POOLING = ("max", "avg", "avg")


@register("liao_others", input_shape=(3, 119, 119))
def liao_others(num_classes: int) -> tuple[Layer, ...]:
    """"All others" column: STL10, Caltech, iCub, Flowers, face ID, Scene67 (119x119x3)."""
    return (Conv(48, 9, stride=2), Pool("max", 2, 2), Conv(128, 5), Pool("max", 2, 2),
            FC(max(256, 3 * num_classes)), FC(2 * num_classes), FC(num_classes))


@register("liao_mnist", input_shape=(1, 28, 28))
def liao_mnist(num_classes: int) -> tuple[Layer, ...]:
    """MNIST column (28x28x1): Conv 5x5x20, Max-Pool 2/2, Conv 5x5x50, Max-Pool 2/2, FC 500."""
    return (Conv(20, 5), Pool("max", 2, 2), Conv(50, 5), Pool("max", 2, 2),
            FC(500), FC(num_classes))


def cifar_layers(num_classes: int, pooling: Sequence[str] = CIFAR_POOLING,
                 untied: Sequence[bool] = (False, False, False),
                 conv_dropout: float = 0.0) -> tuple[Layer, ...]:
    """CIFAR10&100 column, also the report's "Poggio's net" (with untied convs, pool kinds)."""
    if len(pooling) != 3 or len(untied) != 3:
        raise ValueError(f"the CIFAR net has 3 conv/pool stages; got pooling={list(pooling)}, "
                         f"untied={list(untied)}")
    layers: list[Layer] = []
    for out_channels, kind, is_untied in zip((32, 64, 64), pooling, untied, strict=True):
        layers += [Conv(out_channels, 5, padding=2, untied=is_untied, dropout=conv_dropout),
                   Pool(kind, 3, 2, pad_right_bottom=1)]
    return (*layers, FC(128), FC(num_classes))


@register("liao_cifar", input_shape=(3, 32, 32))
def liao_cifar(num_classes: int) -> tuple[Layer, ...]:
    """CIFAR10&100 column (32x32x3): 3 x (Conv 5x5, pool 3x3/2), FC 128; max then avg pools."""
    return cifar_layers(num_classes)


@register("liao_svhn", input_shape=(3, 32, 32))
def liao_svhn(num_classes: int) -> tuple[Layer, ...]:
    """SVHN column (32x32x3): Conv 5x5x20, Max-Pool 2/2, Conv 7x7x512, Max-Pool 2/2, FC 40."""
    return (Conv(20, 5), Pool("max", 2, 2), Conv(512, 7), Pool("max", 2, 2),
            FC(40), FC(num_classes))


@register("liao_fc", input_shape=(1845,))
def liao_fc(num_classes: int) -> tuple[Layer, ...]:
    """TIMIT-80 column (1845 inputs): FC 512, FC 256, FC #Class."""
    return (FC(512), FC(256), FC(num_classes))
