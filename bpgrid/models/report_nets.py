"""The reference report's `report_*` nets: dense DS/DD nets and Poggio's net, tied or untied.

Which layers get fixed (R, rule ``rndf``) or updated (R*, rule ``kp``) random feedback is
``build_model(feedback_layers=k)``; tanh is ``activation="tanh"``; §6's fixed first layer is
``pretrained_first_layer``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpgrid.models.liao import CIFAR_POOLING, cifar_layers
from bpgrid.models.registry import register
from bpgrid.models.spec import FC, Layer

POGGIO_CONVS = ("conv1", "conv2", "conv3")


@register("report_ds")
def report_ds(num_classes: int) -> tuple[Layer, ...]:
    """Tables 1-2, DS nets: Dense512, Dense256, Dense #Class on the flattened input."""
    return (FC(512), FC(256), FC(num_classes))


@register("report_dd")
def report_dd(num_classes: int) -> tuple[Layer, ...]:
    """Tables 3-4, DD nets: Dense512, Dense512, Dense256, Dense256, Dense #Class."""
    return (FC(512), FC(512), FC(256), FC(256), FC(num_classes))


@register("report_pg", input_shape=(3, 32, 32))
def report_pg(num_classes: int, conv_dropout: float = 0.0,
              pooling: Sequence[str] = CIFAR_POOLING) -> tuple[Layer, ...]:
    """Tables 5-7, Poggio's net (= Liao's CIFAR net); ``pooling`` the kind of each pool."""
    return cifar_layers(num_classes, tuple(pooling), conv_dropout=conv_dropout)


@register("report_pg_untied", input_shape=(3, 32, 32))
def report_pg_untied(num_classes: int, untied_layers: str | Sequence[str] = "all",
                     conv_dropout: float = 0.0,
                     pooling: Sequence[str] = CIFAR_POOLING) -> tuple[Layer, ...]:
    """Tables 8-14, Poggio's net with locally connected convs; ``untied_layers``: "all" or names.

    Tables 11-14 keep conv1 tied (``untied_layers=[conv2, conv3]`` with a frozen pretrained
    conv1); PGR2-U of Table 8 keeps conv3 tied.
    """
    if isinstance(untied_layers, str):
        if untied_layers != "all":
            raise ValueError(f"untied_layers must be 'all' or a list of {list(POGGIO_CONVS)}, "
                             f"got {untied_layers!r}")
        untied_layers = POGGIO_CONVS
    unknown = sorted(set(untied_layers) - set(POGGIO_CONVS))
    if unknown:
        raise ValueError(f"untied_layers: no conv layer named {unknown}; "
                         f"choices: {list(POGGIO_CONVS)}")
    untied = tuple(name in set(untied_layers) for name in POGGIO_CONVS)
    return cifar_layers(num_classes, tuple(pooling), untied, conv_dropout)
