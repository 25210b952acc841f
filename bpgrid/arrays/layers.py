"""An array's weight layers: the members' FC, conv or untied conv layers as one, each member with
its own feedback rule.

Every parameter and buffer is the plain layer's (same name) with a leading member dimension K, so
member k's part of the layer is ``tensor[k]``. Members may use different rules (bp, usf, kp, ...):
the feedback weight V is computed in runs of consecutive members with one rule, each run at once
on its stacked weights and state, its draws from its members' own generators. A rule's state key
that only some members have (rndf's matrix in an array that also holds kp) is kept for all, and
unused by the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bpgrid.arrays import functional as AF
from bpgrid.arrays.modules import stack_parameters
from bpgrid.feedback import functional as FB
from bpgrid.feedback.layers import FeedbackMixin
from bpgrid.feedback.rules import FeedbackRule


@dataclass
class _Run:
    """Consecutive members ``members`` (a slice) with one rule, and the rule's state keys."""

    rule: FeedbackRule
    members: slice
    keys: list[str]


class ArrayWeightLayer(nn.Module):
    """What the array's FC, conv and untied conv layers share: stacked tensors and the runs."""

    def __init__(self, layers: Sequence[FeedbackMixin], generators: Sequence[torch.Generator]):
        super().__init__()
        first = layers[0]
        self.members, self.fan_in = len(layers), first.fan_in
        self.generators = list(generators)
        for name, _ in first.named_parameters(recurse=False):
            self.register_parameter(name, stack_parameters(layers, name))
        if "bias" not in self._parameters:
            self.bias = None
        names = sorted({n for layer in layers for n, _ in layer.named_buffers(recurse=False)})
        for name in names:
            like = next(layer.get_buffer(name) for layer in layers if hasattr(layer, name))
            self.register_buffer(name, torch.stack([
                layer.get_buffer(name) if hasattr(layer, name) else torch.zeros_like(like)
                for layer in layers]))
        self.rules = [layer.rule for layer in layers]
        self.alignment = [layer.alignment for layer in layers]
        self.runs: list[_Run] = []
        for k, layer in enumerate(layers):
            if self.runs and self.runs[-1].rule == layer.rule:
                self.runs[-1].members = slice(self.runs[-1].members.start, k + 1)
            else:
                self.runs.append(_Run(layer.rule, slice(k, k + 1), list(layer._state())))
        #: the layer's alignment statistics of the last step, each a (K,) tensor; those of
        #: DFA (``bpgrid.arrays.direct``) apart, as each member reports one kind
        self.alignment_stats: dict[str, Tensor] = {}
        self.direct_stats: dict[str, Tensor] = {}
        self._feedback: Tensor | None = None

    @property
    def native(self) -> bool:
        """Every member's input gradient is backpropagation's (bp, or a network rule whose
        layers' own backward is bp) and no statistics are asked for: PyTorch's ops are exact."""
        return all(r.network or (not r.asymmetric and not a)
                   for r, a in zip(self.rules, self.alignment, strict=True))

    def _use_native(self, x: Tensor) -> bool:
        needs_feedback = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        return not needs_feedback or self.native

    def feedback_weight(self) -> Tensor:
        """The members' stacked V of the last training pass."""
        if self._feedback is None:
            raise RuntimeError("no training pass has run yet, so there is no feedback weight")
        return self._feedback

    def _prepare(self) -> tuple[Tensor, dict | None]:
        """The members' stacked V for this step, and the statistics dict when any member
        measures alignment."""
        parts = []
        for run in self.runs:
            state = {key: getattr(self, "feedback_" + key)[run.members] for key in run.keys}
            parts.append(run.rule.feedback(self.weight[run.members], state, self.fan_in,
                                           self.generators[run.members]))
        v = parts[0] if len(parts) == 1 else torch.cat(parts)
        self._feedback = v
        if not any(self.alignment):
            return v, None
        self.alignment_stats = FB.weight_alignment(self.weight, v, self.members)
        return v, self.alignment_stats

    def member_alignment(self, k: int) -> dict[str, float]:
        """Member k's statistics of the last step, as its plain layer reports them (host
        values): a network rule's come from ``bpgrid.arrays.direct``."""
        if not self.alignment[k]:
            return {}
        stats = self.direct_stats if self.rules[k].network else self.alignment_stats
        return {key: float(value[k]) for key, value in stats.items()}

    def extra_repr(self) -> str:
        rules = ", ".join(f"{run.rule!r} x {run.members.stop - run.members.start}"
                          for run in self.runs)
        return f"{self.members} members, {tuple(self.weight.shape[1:])}, rules: {rules}"


class ArrayLinear(ArrayWeightLayer):
    """The members' FC layers: (K, B, in) -> (K, B, out)."""

    def forward(self, x: Tensor) -> Tensor:
        if not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
            return AF.linear(x, self.weight, self.bias)
        # bp too takes this backward (V = W): autograd's for a batched matmul sums a member's
        # weight gradient in another order in an array of one than in an array of many
        v, stats = (self.weight.detach(), None) if self.native else self._prepare()
        return AF.feedback_linear(x, self.weight, self.bias, v, stats)


class ArrayConv2d(ArrayWeightLayer):
    """The members' conv layers as one grouped convolution: (B, K·C, H, W) -> (B, K·O, H', W')."""

    def __init__(self, layers: Sequence[nn.Conv2d], generators: Sequence[torch.Generator]):
        first = layers[0]
        if first.padding_mode != "zeros" or isinstance(first.padding, str):
            raise ValueError("an array's convolutions take numeric zero padding, got "
                             f"padding={first.padding!r}, padding_mode={first.padding_mode!r}")
        super().__init__(layers, generators)
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.groups = first.groups * len(layers)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.flatten(0, 1)  # (K·O, C/groups, kh, kw)
        bias = None if self.bias is None else self.bias.flatten()
        if self._use_native(x):
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        v, stats = self._prepare()
        return FB.conv(x, weight, bias, v.reshape(weight.shape), self.stride, self.padding,
                       self.dilation, self.groups, stats, members=self.members)


class ArrayUntiedConv2d(ArrayWeightLayer):
    """The members' locally connected layers: (B, K·C, H, W) -> (B, K·O, H', W')."""

    def __init__(self, layers, generators: Sequence[torch.Generator]):
        super().__init__(layers, generators)
        first = layers[0]
        self.input_size, self.kernel_size = first.input_size, first.kernel_size
        self.stride, self.padding = first.stride, first.padding

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != self.input_size:
            raise ValueError(f"UntiedConv2d built for input {self.input_size}, "
                             f"got {tuple(x.shape[-2:])}")
        if self._use_native(x):
            v, stats = self.weight.detach(), None
        else:
            v, stats = self._prepare()
        return AF.untied_conv2d(x, self.weight, self.bias, v, self.kernel_size, self.stride,
                                self.padding, stats)

