"""ArrayNet: K FeedbackNets of one architecture trained as one network (HFTA's horizontal fusion,
Wang et al., MLSys 2021).

It is built from the members' plain nets, each drawn under its own seed as a cell draws its net,
by stacking their parameters and buffers: member k starts exactly where its cell starts, and its
part can be read back into a plain net (``export``) or loaded from one (``load``), so a member's
checkpoint is a plain FeedbackNet state_dict. Activations carry the members as described in
``bpgrid.arrays.modules``; the input is stacked, (K, B, *input_shape), and so is the output.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bpgrid.arrays.direct import ArrayDirectFeedback
from bpgrid.arrays.layers import ArrayConv2d, ArrayLinear, ArrayUntiedConv2d, ArrayWeightLayer
from bpgrid.arrays.modules import ArrayBatchNorm, ArrayDropout, ArrayFlatten, grouped
from bpgrid.feedback import FeedbackConv2d, FeedbackLinear, UntiedConv2d
from bpgrid.feedback.direct import ATTRIBUTE
from bpgrid.models import FeedbackNet, Pool2d

#: modules without state that work on either layout as they are
SHARED = (nn.ReLU, nn.Tanh, Pool2d)


def _fuse(modules: Sequence[nn.Module], grouped_input: bool,
          generators: Sequence[torch.Generator]) -> tuple[nn.Module, bool]:
    """The array version of the members' ``modules`` and whether its output is grouped."""
    first, members = modules[0], len(modules)
    if isinstance(first, (FeedbackConv2d, UntiedConv2d)):
        if not grouped_input:
            raise ValueError(f"an array's {type(first).__name__} needs image inputs")
        cls = ArrayUntiedConv2d if isinstance(first, UntiedConv2d) else ArrayConv2d
        return cls(modules, generators), True
    if isinstance(first, FeedbackLinear):
        if grouped_input:
            raise ValueError("an array's FC layer needs vector inputs: flatten images first")
        return ArrayLinear(modules, generators), False
    if isinstance(first, nn.modules.batchnorm._BatchNorm):
        return ArrayBatchNorm(modules, grouped_input), grouped_input
    if isinstance(first, nn.Dropout):
        return ArrayDropout(first.p, grouped_input, generators), grouped_input
    if isinstance(first, nn.Flatten):
        return ArrayFlatten(members, grouped_input), False
    if isinstance(first, SHARED) and (grouped_input or not isinstance(first, Pool2d)):
        return copy.deepcopy(first), grouped_input
    raise ValueError(f"arrays have no fused version of {type(first).__name__}")


def check_architecture(members: Sequence[nn.Module]) -> None:
    """ValueError naming the first difference unless the nets have one architecture: the same
    modules, and parameters of the same names, shapes and trainability."""
    if not members:
        raise ValueError("an array needs at least one member")
    first = members[0]

    def signature(net):
        return ([(name, type(m).__name__) for name, m in net.named_children()]
                + [(name, tuple(p.shape), p.requires_grad) for name, p in net.named_parameters()])

    for k, net in enumerate(members):
        if not isinstance(net, FeedbackNet):
            raise ValueError(f"an array's members are FeedbackNets, member {k} is a "
                             f"{type(net).__name__}")
    for k, net in enumerate(members[1:], start=1):
        mine, theirs = signature(first), signature(net)
        if mine != theirs:
            a, b = next((a, b) for a, b in itertools.zip_longest(mine, theirs) if a != b)
            raise ValueError(f"member {k} has another architecture than member 0: {b} where "
                             f"member 0 has {a}")


class ArrayNet(nn.Sequential):
    """The members' nets as one (see the module docstring); ``generators``: one per member, on
    the net's device, for its random draws (dropout, brsf, weight mirror)."""

    def __init__(self, members: Sequence[FeedbackNet], generators: Sequence[torch.Generator]):
        check_architecture(members)
        super().__init__()
        first = members[0]
        self.members = len(members)
        self.weight_layers: list[str] = list(first.weight_layers)
        self.input_shape, self.output_shape = first.input_shape, first.output_shape
        layout = len(self.input_shape) == 3 and not isinstance(first[0], nn.Flatten)
        self.grouped_input, self.channels_last = layout, False
        input_grouped = {}
        for name, _ in first.named_children():
            input_grouped[name] = layout
            fused, layout = _fuse([net.get_submodule(name) for net in members], layout,
                                  generators)
            self.add_module(name, fused)
        if layout:
            raise ValueError(f"{first.arch}: an array's output must be vectors")
        plains = [getattr(net, ATTRIBUTE, None) for net in members]
        self.network_feedback = (ArrayDirectFeedback(self, plains, input_grouped)
                                 if any(plains) else None)

    def forward(self, x: Tensor) -> Tensor:
        """(K, B, *input_shape) -> (K, B, outputs)."""
        if self.grouped_input:
            x = grouped(x, torch.channels_last if self.channels_last else torch.contiguous_format)
        return super().forward(x)

    def weight_modules(self) -> dict[str, ArrayWeightLayer]:
        return {name: self.get_submodule(name) for name in self.weight_layers}

    def use_channels_last(self) -> None:
        """NHWC kernels (cuDNN's, oneDNN's): grouped inputs in channels_last, each member's conv
        weight laid out as a channels_last one. Call before the optimizer takes the
        parameters."""
        self.channels_last = self.grouped_input
        for layer in self.weight_modules().values():
            if isinstance(layer, ArrayConv2d):
                w = layer.weight  # (K, O, C, kh, kw) stored as (K, O, kh, kw, C)
                nhwc = w.detach().permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
                layer.weight = nn.Parameter(nhwc, requires_grad=w.requires_grad)

    @torch.no_grad()
    def export(self, k: int, plain: FeedbackNet) -> FeedbackNet:
        """Member k's parameters and buffers copied into ``plain``, a net of its architecture and
        rule (its own plain net): returns ``plain``."""
        fused = self.state_dict(keep_vars=True)
        for key, tensor in plain.state_dict(keep_vars=True).items():
            tensor.copy_(fused[key][k])
        return plain

    @torch.no_grad()
    def load(self, k: int, plain: FeedbackNet) -> None:
        """Member k's parameters and buffers set to those of ``plain`` (see ``export``)."""
        fused = self.state_dict(keep_vars=True)
        for key, tensor in plain.state_dict().items():
            fused[key][k].copy_(tensor)

    def member_alignment(self, k: int) -> dict[str, float]:
        """Member k's alignment statistics of the last step, keyed ``<stat>/<layer>`` as a plain
        cell logs them (host values)."""
        return {f"{key}/{name}": value for name, layer in self.weight_modules().items()
                for key, value in layer.member_alignment(k).items()}
