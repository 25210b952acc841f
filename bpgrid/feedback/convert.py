"""Swap the weight layers of any model for feedback layers, and never leave one silently on bp.

Linear, Conv1d/2d/3d (any groups, padding and padding mode) and UntiedConv2d layers are
converted. Every other module holding a weight of two or more dimensions (ConvTranspose,
MultiheadAttention's projections, embeddings, recurrent layers, a Linear whose parent reads its
weight directly or whose class has its own forward) stays on backpropagation, and ``convert``
names each one in a single warning (``UnconvertedWarning``), or refuses with ``strict=True``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from bpgrid.feedback.layers import (
    FeedbackConv1d,
    FeedbackConv2d,
    FeedbackConv3d,
    FeedbackLinear,
    UntiedConv2d,
)
from bpgrid.feedback.rules import FeedbackRule, make_rule
from bpgrid.feedback.trace import trace

#: torch layer -> its feedback version
FEEDBACK_LAYERS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: FeedbackLinear, nn.Conv1d: FeedbackConv1d, nn.Conv2d: FeedbackConv2d,
    nn.Conv3d: FeedbackConv3d, UntiedConv2d: UntiedConv2d,
}
#: modules that read their children's weights directly instead of calling them
READS_CHILD_WEIGHTS: tuple[type[nn.Module], ...] = (nn.MultiheadAttention,)


class UnconvertedWarning(UserWarning):
    """``convert`` left weight layers on backpropagation: it has no feedback version of them."""


@dataclass
class Conversion:
    """What ``convert`` does to a model: the layers it converts, the convertible layers left on
    bp by the ``layers`` choice, and the weight-holding modules it cannot convert, with why."""

    rule: str
    converted: list[str]
    kept: list[str]
    unsupported: dict[str, str]
    kinds: Counter = field(default_factory=Counter)  # converted layers by class name

    def warning(self) -> str:
        items = "; ".join(f"{name} ({why})" for name, why in self.unsupported.items())
        return (f"convert: {len(self.unsupported)} module(s) left on backprop, with no feedback "
                f"version: {items}")

    def __str__(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        lines = [f"convert: {self.rule} on {len(self.converted)} of "
                 f"{len(self.converted) + len(self.kept)} convertible layers"
                 + (f" ({kinds})" if kinds else "")]
        if self.kept:
            lines.append(f"  left on backprop by the layers choice: {', '.join(self.kept)}")
        if self.unsupported:
            lines.append("  left on backprop, no feedback version: " + "; ".join(
                f"{name} ({why})" for name, why in self.unsupported.items()))
        return "\n".join(lines)


def _feedback_class(module: nn.Module) -> type[nn.Module] | None:
    for base, feedback in FEEDBACK_LAYERS.items():
        if isinstance(module, base):
            return feedback
    return None


def _why_not(module: nn.Module, parent: nn.Module | None) -> str | None:
    """None for a convertible layer, else why it stays on bp ("" when it holds no weight)."""
    feedback = _feedback_class(module)
    own = [n for n, p in module.named_parameters(recurse=False)
           if isinstance(p, nn.parameter.UninitializedParameter) or p.dim() >= 2]
    if feedback is None and not own:
        return ""
    if isinstance(parent, READS_CHILD_WEIGHTS):
        return f"{type(parent).__name__} reads its weight directly"
    if feedback is None:
        return f"{type(module).__name__}: {', '.join(own)}"
    base = next(b for b in FEEDBACK_LAYERS if isinstance(module, b))
    if type(module).forward not in (base.forward, feedback.forward):
        return f"a {base.__name__} subclass with its own forward"
    if parametrize.is_parametrized(module):
        return "parametrized weight"
    if isinstance(module.weight, nn.parameter.UninitializedParameter):
        return "lazy layer, not initialized yet: run a forward pass first"
    return None


def _survey(module: nn.Module) -> tuple[list[str], dict[str, str]]:
    """Convertible layer names in forward-definition order, and the unconvertible ones."""
    parents = {child: parent for parent in module.modules() for child in parent.children()}
    convertible, unsupported = [], {}
    for name, m in module.named_modules():
        why = _why_not(m, parents.get(m))
        if why is None:
            convertible.append(name)
        elif why:
            unsupported[name or type(module).__name__] = why
    return convertible, unsupported


def convertible_layers(module: nn.Module) -> list[str]:
    """Qualified names of the layers ``convert`` can give feedback to, in definition order."""
    return _survey(module)[0]


def select_layers(names: list[str], layers: int | str | Collection[str],
                  what: str = "convertible") -> list[str]:
    """``"all"``, the last k names for an int k, or the given names (checked), in model order."""
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers must be 'all', an int or a list of layer names {names}, "
                             f"got {layers!r}")
        return names
    if isinstance(layers, int):
        if not 0 <= layers <= len(names):
            raise ValueError(f"layers={layers}: the model has {len(names)} {what} layers "
                             f"{names}")
        return names[len(names) - layers:]
    unknown = sorted(set(layers) - set(names))
    if unknown:
        raise ValueError(f"no {what} layer named {unknown}; choices: {names}")
    return [n for n in names if n in set(layers)]


def plan(module: nn.Module, rule: str, layers: int | str | Collection[str] = "all",
         example_input: Tensor | tuple | None = None) -> Conversion:
    """The ``Conversion`` that ``convert`` would make, changing nothing. With ``example_input``,
    selected layers that its forward pass never calls are moved to ``unsupported``."""
    names, unsupported = _survey(module)
    chosen = select_layers(names, layers)
    if example_input is not None:
        called = trace(module, {n: module.get_submodule(n) for n in chosen}, example_input).calls
        for name in [n for n in chosen if n not in called]:
            unsupported[name] = "never called in the forward pass of example_input"
            chosen.remove(name)
    kinds = Counter(type(module.get_submodule(n)).__name__.removeprefix("Feedback")
                    for n in chosen)
    return Conversion(rule, chosen, [n for n in names if n not in chosen and n not in unsupported],
                      unsupported, kinds)


def _replacement(old: nn.Module, rule: FeedbackRule, alignment: bool) -> nn.Module:
    factory = {"device": old.weight.device, "dtype": old.weight.dtype}
    has_bias = old.bias is not None
    options = {"rule": rule, "alignment": alignment, **factory}
    if isinstance(old, UntiedConv2d):
        new = UntiedConv2d(old.in_channels, old.out_channels, old.input_size, old.kernel_size,
                           old.stride, old.padding, has_bias, **options)
    elif isinstance(old, nn.Linear):
        new = FeedbackLinear(old.in_features, old.out_features, has_bias, **options)
    else:
        new = _feedback_class(old)(
            old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
            old.dilation, old.groups, has_bias, old.padding_mode, **options)
    with torch.no_grad():
        new.weight.copy_(old.weight)
        if has_bias:
            new.bias.copy_(old.bias)
    new.weight.requires_grad_(old.weight.requires_grad)
    if has_bias:
        new.bias.requires_grad_(old.bias.requires_grad)
    new.train(old.training)
    new.reset_feedback()  # state such as kp's offset depends on the copied weight
    return new


def convert(module: nn.Module, rule: str | FeedbackRule,
            layers: int | str | Collection[str] = "all", alignment: bool = False,
            strict: bool = False, example_input: Tensor | tuple | None = None,
            verbose: bool = True, **rule_kwargs) -> nn.Module:
    """Replace the weight layers of ``module`` (in place) by feedback layers using ``rule``.

    ``layers`` is ``"all"``, an int k for the last k convertible layers (the report's R1/R2/R4
    nets), or a collection of qualified layer names. Weights and biases are kept. Modules that
    cannot be converted are named in one ``UnconvertedWarning``; ``strict=True`` raises
    ValueError instead, before anything changes. ``example_input`` (a batch) checks that each
    converted layer is really called, and sizes the network rule ``dfa``, which needs it.
    Prints a short report unless ``verbose=False``. Returns ``module``.
    """
    rule = make_rule(rule, **rule_kwargs)
    if rule.network and example_input is None:
        raise ValueError(f"{rule.name} is a network rule: convert() needs example_input=, a batch "
                         "of at least 2 inputs, to size its feedback matrices")
    conversion = plan(module, rule.name, layers, example_input)
    if "" in conversion.converted:
        raise ValueError("convert() replaces layers inside a model, not the model itself")
    if conversion.unsupported:
        if strict:
            raise ValueError(conversion.warning())
        warnings.warn(conversion.warning(), UnconvertedWarning, stacklevel=2)
    for name in conversion.converted:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, _replacement(getattr(parent, child), rule, alignment))
    report = str(conversion)
    if rule.network:
        report += "\n  " + rule.attach(module, conversion.converted, example_input).summary()
    if verbose:
        print(report)
    return module


def alignment_stats(module: nn.Module) -> dict[str, dict[str, float]]:
    """Per layer, the alignment statistics of the last step (host values; one sync)."""
    return {name: {k: float(v) for k, v in m.alignment_stats.items()}
            for name, m in module.named_modules()
            if getattr(m, "alignment", False) and m.alignment_stats}
