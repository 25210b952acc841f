"""Linear, Conv1d/2d/3d and untied Conv2d layers that take a feedback rule.

Each layer is the PyTorch layer plus a rule: the forward pass is unchanged, the backward pass sends
the input gradient through V = rule(W, state). The rule's fixed random state is kept in buffers
named ``feedback_<key>``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from bpgrid.feedback import functional as FB
from bpgrid.feedback.rules import FeedbackRule, make_rule


class FeedbackMixin:
    """Holds the rule, its buffers, the last V and the optional alignment statistics."""

    rule: FeedbackRule
    weight: nn.Parameter

    def _init_feedback(self, rule: str | FeedbackRule, alignment: bool, rule_kwargs: dict):
        self.rule = make_rule(rule, **rule_kwargs)
        self.alignment = alignment
        self.alignment_stats: dict[str, Tensor] = {}
        self._feedback: Tensor | None = None
        self.reset_feedback()

    def reset_feedback(self) -> None:
        """(Re)draw the rule's fixed random state for the current weight."""
        for key in [k for k in self._buffers if k.startswith("feedback_")]:
            del self._buffers[key]
        for key, value in self.rule.init_state(self.weight).items():
            self.register_buffer("feedback_" + key, value)

    def _state(self) -> dict[str, Tensor]:
        return {k[len("feedback_"):]: v for k, v in self._buffers.items()
                if k.startswith("feedback_")}

    def _needs_feedback(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)

    def _use_native(self, x: Tensor) -> bool:
        """bp without alignment statistics, a network rule (whose layers' own backward is bp), or
        no backward ahead: PyTorch's own op is exact."""
        return (not self._needs_feedback(x) or self.rule.network
                or (not self.rule.asymmetric and not self.alignment))

    def _prepare(self) -> tuple[Tensor, dict | None]:
        """V for this step, kept for ``feedback_weight()``; the stats dict when alignment is on."""
        v = self.rule.feedback(self.weight, self._state(), self.fan_in)
        self._feedback = v
        if not self.alignment:
            return v, None
        self.alignment_stats = FB.weight_alignment(self.weight, v)
        return v, self.alignment_stats

    def feedback_weight(self) -> Tensor:
        """V of the last training pass (for ``bp``, W itself)."""
        if not self.rule.asymmetric:
            return self.weight.detach()
        if self.rule.network:
            raise RuntimeError(f"{self.rule.name} has no per-layer V: the layer's input gradient "
                               "is B e, with B in the layer's direct_feedback buffer")
        if self._feedback is None:
            raise RuntimeError("no training pass has run yet, so there is no feedback weight")
        return self._feedback

    def _feedback_repr(self) -> str:
        return f"rule={self.rule!r}" + (", alignment=True" if self.alignment else "")

    def reset_parameters(self) -> None:
        """The PyTorch layer's initialisation, then fresh feedback state for the new weight."""
        super().reset_parameters()
        if hasattr(self, "rule"):  # the layer's own __init__ calls this before the rule exists
            self.reset_feedback()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._feedback_repr()}"


class FeedbackLinear(FeedbackMixin, nn.Linear):
    """nn.Linear whose backward uses the feedback rule's V for dE/dx."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rule: str | FeedbackRule = "bp", alignment: bool = False,
                 device=None, dtype=None, **rule_kwargs):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._init_feedback(rule, alignment, rule_kwargs)

    @property
    def fan_in(self) -> int:
        return self.in_features

    def forward(self, x: Tensor) -> Tensor:
        if self._use_native(x):
            return F.linear(x, self.weight, self.bias)
        v, stats = self._prepare()
        return FB.linear(x, self.weight, self.bias, v, stats)


class _FeedbackConv(FeedbackMixin):
    """The PyTorch convolution (any groups, padding and padding mode) whose backward uses V."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 rule: str | FeedbackRule = "bp", alignment: bool = False, device=None,
                 dtype=None, **rule_kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device=device, dtype=dtype)
        self._init_feedback(rule, alignment, rule_kwargs)

    @property
    def fan_in(self) -> int:
        return math.prod(self.weight.shape[1:])  # kernel size · in_channels / groups

    def forward(self, x: Tensor) -> Tensor:
        if self._use_native(x):
            return self._conv_forward(x, self.weight, self.bias)
        v, stats = self._prepare()
        padding = self.padding
        if self.padding_mode != "zeros" or isinstance(padding, str):
            # as nn.Conv does for these: pad explicitly, then convolve without padding
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=mode)
            padding = (0,) * len(self.kernel_size)
        return FB.conv(x, self.weight, self.bias, v, self.stride, padding, self.dilation,
                       self.groups, stats)


class FeedbackConv1d(_FeedbackConv, nn.Conv1d):
    """nn.Conv1d whose backward uses V for dE/dx."""


class FeedbackConv2d(_FeedbackConv, nn.Conv2d):
    """nn.Conv2d whose backward uses V for dE/dx."""


class FeedbackConv3d(_FeedbackConv, nn.Conv3d):
    """nn.Conv3d whose backward uses V for dE/dx."""


class UntiedConv2d(FeedbackMixin, nn.Module):
    """Locally connected 2-D layer: an independent kernel at every output position.

    Weight shape (out_positions, out_channels, in_channels·kh·kw), bias (out_positions,
    out_channels); computed by unfold + batched matmul, never as a dense inputs × outputs matrix.
    """

    def __init__(self, in_channels: int, out_channels: int, input_size, kernel_size, stride=1,
                 padding=0, bias: bool = True, rule: str | FeedbackRule = "bp",
                 alignment: bool = False, device=None, dtype=None, **rule_kwargs):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size, self.kernel_size = _pair(input_size), _pair(kernel_size)
        self.stride, self.padding = _pair(stride), _pair(padding)
        self.output_size = FB.untied_output_size(self.input_size, self.kernel_size, self.stride,
                                                 self.padding)
        if min(self.output_size) < 1:
            raise ValueError(f"input {self.input_size} is too small for kernel "
                             f"{self.kernel_size} with padding {self.padding}")
        positions = self.output_size[0] * self.output_size[1]
        k = in_channels * self.kernel_size[0] * self.kernel_size[1]
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(positions, out_channels, k, **factory))
        self.bias = (nn.Parameter(torch.empty(positions, out_channels, **factory))
                     if bias else None)
        self.reset_parameters()
        self._init_feedback(rule, alignment, rule_kwargs)

    @property
    def fan_in(self) -> int:
        return self.weight.shape[-1]  # in_channels·kh·kw

    def reset_parameters(self) -> None:
        """Each position's kernel initialised as nn.Conv2d initialises its one kernel."""
        bound = 1.0 / math.sqrt(self.fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        if hasattr(self, "rule"):
            self.reset_feedback()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != self.input_size:
            raise ValueError(f"UntiedConv2d built for input {self.input_size}, "
                             f"got {tuple(x.shape[-2:])}")
        if self._use_native(x):
            v, stats = self.weight.detach(), None
        else:
            v, stats = self._prepare()
        return FB.untied_conv2d(x, self.weight, self.bias, v, self.kernel_size, self.stride,
                                self.padding, stats)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"{self._feedback_repr()}")
