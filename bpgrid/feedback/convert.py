"""Swap the Linear/Conv2d layers of any model for feedback layers."""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from bpgrid.feedback.layers import FeedbackConv2d, FeedbackLinear
from bpgrid.feedback.rules import FeedbackRule, make_rule


def convertible_layers(module: nn.Module) -> list[str]:
    """Qualified names of the Linear and Conv2d layers, in forward-definition order."""
    return [name for name, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


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


def _replacement(old: nn.Module, rule: FeedbackRule, alignment: bool) -> nn.Module:
    factory = {"device": old.weight.device, "dtype": old.weight.dtype}
    has_bias = old.bias is not None
    if isinstance(old, nn.Linear):
        new = FeedbackLinear(old.in_features, old.out_features, has_bias, rule=rule,
                             alignment=alignment, **factory)
    else:
        if old.groups != 1 or old.padding_mode != "zeros" or isinstance(old.padding, str):
            raise ValueError(f"cannot convert {old}: feedback convolutions need groups=1 and "
                             "numeric zero padding")
        new = FeedbackConv2d(old.in_channels, old.out_channels, old.kernel_size, old.stride,
                             old.padding, old.dilation, has_bias, rule=rule,
                             alignment=alignment, **factory)
    with torch.no_grad():
        new.weight.copy_(old.weight)
        if has_bias:
            new.bias.copy_(old.bias)
    new.weight.requires_grad_(old.weight.requires_grad)
    new.reset_feedback()  # state such as kp's offset depends on the copied weight
    return new


def convert(module: nn.Module, rule: str | FeedbackRule,
            layers: int | str | Collection[str] = "all", alignment: bool = False,
            **rule_kwargs) -> nn.Module:
    """Replace Linear/Conv2d layers of ``module`` (in place) by feedback layers using ``rule``.

    ``layers`` is ``"all"``, an int k for the last k layers (the report's R1/R2/R4 nets), or a
    collection of qualified layer names. Weights and biases are kept. Returns ``module``.
    """
    rule = make_rule(rule, **rule_kwargs)
    names = convertible_layers(module)
    for name in select_layers(names, layers):
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        if not child:
            raise ValueError("convert() replaces layers inside a model, not the model itself")
        setattr(parent, child, _replacement(getattr(parent, child), rule, alignment))
    return module


def alignment_stats(module: nn.Module) -> dict[str, dict[str, float]]:
    """Per layer, the alignment statistics of the last step (host values; one sync)."""
    return {name: {k: float(v) for k, v in m.alignment_stats.items()}
            for name, m in module.named_modules()
            if getattr(m, "alignment", False) and m.alignment_stats}
