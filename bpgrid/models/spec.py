"""Architectures as data: a network is a tuple of layer specs, read top to bottom as in Table 1.

``Conv`` and ``FC`` are weight layers (built as feedback layers, each followed by norm and
nonlinearity unless it is the last); ``Pool`` has no weights. Sizes derive from the input shape, so
one spec serves any input that fits it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    """Conv AxAxC/D of Table 1: ``out_channels`` maps, ``kernel_size``², ``stride``, zero padding.

    ``untied`` makes it a locally connected layer (``UntiedConv2d``, the report's "UntieConv");
    ``dropout`` is applied after its nonlinearity (the report's §7 conv dropout).
    """

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    untied: bool = False
    dropout: float = 0.0


@dataclass(frozen=True)
class Pool:
    """Max- or Avg-Pool AxA/D after ``pad_right_bottom`` zero rows/columns (the CIFAR net)."""

    kind: str
    kernel_size: int
    stride: int
    pad_right_bottom: int = 0

    def __post_init__(self):
        if self.kind not in ("max", "avg"):
            raise ValueError(f"pool kind must be 'max' or 'avg', got {self.kind!r}")


@dataclass(frozen=True)
class FC:
    """Fully connected layer of ``out_features`` units ("FC X" / "DenseX")."""

    out_features: int


Layer = Conv | Pool | FC


def weight_layer_names(layers: tuple[Layer, ...]) -> list[str]:
    """Names of the weight layers in order: conv1, conv2, ..., fc1, fc2, ..."""
    names, counts = [], {"conv": 0, "fc": 0}
    for layer in layers:
        if isinstance(layer, Pool):
            continue
        kind = "conv" if isinstance(layer, Conv) else "fc"
        counts[kind] += 1
        names.append(f"{kind}{counts[kind]}")
    return names
