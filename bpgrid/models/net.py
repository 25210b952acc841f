"""FeedbackNet: an ``nn.Sequential`` of feedback layers built from a layer spec and an input shape.

Every conv and FC layer is a feedback layer; the chosen subset uses the feedback rule, the rest use
``bp``. Each weight layer but the last is followed by ``<name>_norm`` (if any), ``<name>_act`` and
``<name>_drop`` (if p > 0); pools are ``pool1``, ``pool2``, ...; ``flatten`` precedes the first FC
when the input to it is not yet a vector.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bpgrid.checks import check_fraction
from bpgrid.feedback import FeedbackConv2d, FeedbackLinear, FeedbackRule, UntiedConv2d, make_rule
from bpgrid.feedback.convert import select_layers
from bpgrid.models.spec import FC, Conv, Layer, Pool, weight_layer_names

NORMS = ("none", "bn", "bn_affine")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def check_choice(key: str, value, choices: Collection[str]) -> None:
    """ValueError naming the key and the valid choices unless ``value`` is one of them."""
    if value not in choices:
        raise ValueError(f"unknown {key} {value!r}; valid choices: {', '.join(choices)}")


class Pool2d(nn.Module):
    """Max or average pooling after ``pad_right_bottom`` zero rows and columns at right/bottom."""

    def __init__(self, kind: str, kernel_size: int, stride: int, pad_right_bottom: int = 0):
        super().__init__()
        self.kind, self.kernel_size, self.stride = kind, kernel_size, stride
        self.pad_right_bottom = pad_right_bottom

    def forward(self, x: Tensor) -> Tensor:
        p = self.pad_right_bottom
        if p:
            x = F.pad(x, (0, p, 0, p))
        pool = F.max_pool2d if self.kind == "max" else F.avg_pool2d
        return pool(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.kind}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"pad_right_bottom={self.pad_right_bottom}")


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + pad - kernel) // stride + 1


class FeedbackNet(nn.Sequential):
    """The network of ``layers`` for inputs of ``input_shape`` (C, H, W) or (D,), batch excluded.

    ``feedback_layers`` ("all", last k, or names) use ``rule`` (with ``alignment`` statistics);
    the other weight layers use ``bp``. Raises ValueError when the input does not fit the layers.
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Sequence[int], *,
                 rule: str | FeedbackRule = "bp",
                 feedback_layers: int | str | Collection[str] = "all", alignment: bool = False,
                 norm: str = "none", activation: str = "relu", dropout: float = 0.0,
                 arch: str = "model"):
        check_choice("norm", norm, NORMS)
        check_choice("activation", activation, ACTIVATIONS)
        check_fraction("dropout", dropout, allow_one=False)
        super().__init__()
        self._arch, self._input_shape = arch, tuple(int(s) for s in input_shape)
        names = weight_layer_names(tuple(layers))
        if not names:
            raise ValueError(f"{arch} has no conv or FC layer")
        asymmetric = set(select_layers(names, feedback_layers, "weight"))
        rule = make_rule(rule)
        shape, weight_names, pools = self._input_shape, iter(names), 0
        for spec in layers:
            if isinstance(spec, Pool):
                pools += 1
                name = f"pool{pools}"
                shape = self._pool_shape(name, spec, shape)
                self.add_module(name, Pool2d(spec.kind, spec.kernel_size, spec.stride,
                                             spec.pad_right_bottom))
                continue
            name = next(weight_names)
            options = ({"rule": rule, "alignment": alignment} if name in asymmetric
                       else {"rule": "bp"})
            if isinstance(spec, Conv):
                layer, shape = self._conv(name, spec, shape, options)
            else:
                if len(shape) != 1:
                    self.add_module("flatten", nn.Flatten())
                    shape = (math.prod(shape),)
                layer = FeedbackLinear(shape[0], spec.out_features, **options)
                shape = (spec.out_features,)
            self.add_module(name, layer)
            if name != names[-1]:
                self._add_hidden_tail(name, spec, shape, norm, activation, dropout)
        self.weight_layers: list[str] = names
        self.output_shape: tuple[int, ...] = shape
        if rule.network:  # dfa: sized by one pass of a zero batch, which leaves the net as it was
            rule.attach(self, [n for n in names if n in asymmetric],
                        torch.zeros(2, *self._input_shape))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def arch(self) -> str:
        """The registry name the net was built under."""
        return self._arch

    def _misfit(self, name: str, what: str) -> ValueError:
        return ValueError(f"{self._arch}: input shape {self._input_shape} does not fit the "
                          f"network: {name} {what}")

    def _spatial(self, name: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(shape) != 3:
            raise self._misfit(name, f"needs (channels, height, width) input, gets {shape}")
        return shape  # type: ignore[return-value]

    def _pool_shape(self, name: str, spec: Pool, shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = self._spatial(name, shape)
        oh, ow = (_out_size(s, spec.kernel_size, spec.stride, spec.pad_right_bottom)
                  for s in (h, w))
        if min(oh, ow) < 1:
            raise self._misfit(name, f"({spec.kind} {spec.kernel_size}x{spec.kernel_size}/"
                               f"{spec.stride}) gets {h}x{w} and would output {oh}x{ow}")
        return (c, oh, ow)

    def _conv(self, name: str, spec: Conv, shape: tuple[int, ...], options: dict):
        c, h, w = self._spatial(name, shape)
        oh, ow = (_out_size(s, spec.kernel_size, spec.stride, 2 * spec.padding) for s in (h, w))
        if min(oh, ow) < 1:
            raise self._misfit(name, f"({spec.kernel_size}x{spec.kernel_size}/{spec.stride}, "
                               f"padding {spec.padding}) gets {h}x{w} and would output "
                               f"{oh}x{ow}")
        if spec.untied:
            layer = UntiedConv2d(c, spec.out_channels, (h, w), spec.kernel_size, spec.stride,
                                 spec.padding, **options)
        else:
            layer = FeedbackConv2d(c, spec.out_channels, spec.kernel_size, spec.stride,
                                   spec.padding, **options)
        return layer, (spec.out_channels, oh, ow)

    def _add_hidden_tail(self, name: str, spec: Conv | FC, shape: tuple[int, ...], norm: str,
                         activation: str, dropout: float) -> None:
        """Norm (before the nonlinearity), nonlinearity and dropout of a hidden layer."""
        if norm != "none":
            batch_norm = nn.BatchNorm2d if isinstance(spec, Conv) else nn.BatchNorm1d
            self.add_module(f"{name}_norm", batch_norm(shape[0], affine=norm == "bn_affine"))
        self.add_module(f"{name}_act", ACTIVATIONS[activation]())
        p = spec.dropout if isinstance(spec, Conv) else dropout
        check_fraction(f"{name} dropout", p, allow_one=False)
        if p > 0:
            self.add_module(f"{name}_drop", nn.Dropout(p))

    def weight_layer(self, name: str) -> nn.Module:
        """The conv or FC layer called ``name`` (one of ``weight_layers``)."""
        check_choice("weight layer", name, self.weight_layers)
        return self.get_submodule(name)
