"""Batch Manhattan (Liao et al. §3, eq. 3) and the registry of optimizers a config can name.

An optimizer is a function ``(params, lr, *, capturable, **options) -> Optimizer`` registered under
its config name; its keyword options (with defaults) are the keys of ``conf/optimizer/*.yaml``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from bpgrid.checks import check_fraction


class BatchManhattan(Optimizer):
    """w(t+1) = w(t) + lr·τ(t), with the paper's settings 1–3 (m momentum, d weight decay).

    1: τ = -sign(g) + m·τ(t-1) - d·w
    2: τ = sign(-sign(g) + m·τ(t-1) - d·w)
    3: κ = -sign(g) + m·κ(t-1) - d·w,  τ = sign(κ)

    g is the mini-batch gradient; sign(0) = 0, so an exactly-zero gradient contributes nothing.
    """

    SETTINGS = (1, 2, 3)

    def __init__(self, params, lr: float, setting: int = 1, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        if setting not in self.SETTINGS:
            raise ValueError(f"Batch Manhattan setting must be one of {self.SETTINGS}, "
                             f"got {setting!r}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        check_fraction("momentum", momentum, allow_one=False)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        super().__init__(params, {"lr": lr, "setting": setting, "momentum": momentum,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [w for w in group["params"] if w.grad is not None]
            if not params:
                continue
            for w in params:  # τ(t-1) for settings 1 and 2, κ(t-1) for setting 3
                if "buffer" not in self.state[w]:
                    self.state[w]["buffer"] = torch.zeros_like(w)
            batch_manhattan_(params, [w.grad for w in params],
                             [self.state[w]["buffer"] for w in params], group["lr"],
                             group["momentum"], group["weight_decay"], group["setting"])
        return loss


#: a hyper-parameter: one number, or one tensor per parameter that broadcasts against it (the
#: per-member values of an array, ``bpgrid.arrays.optim``)
Scale = float | Sequence[Tensor]


def add_scaled_(targets: list[Tensor], tensors: list[Tensor], scale: Scale) -> None:
    """targets += scale · tensors, one multi-tensor kernel per operation (torch.optim's foreach
    style)."""
    if isinstance(scale, int | float):
        torch._foreach_add_(targets, tensors, alpha=scale)
    else:
        torch._foreach_add_(targets, torch._foreach_mul(tensors, scale))


def batch_manhattan_(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor],
                     lr: Scale, momentum: Scale, weight_decay: Scale, setting: int) -> None:
    """One Batch Manhattan step (eq. 3, settings 1-3) in place: buffers hold τ(t-1) (settings 1,
    2) or κ(t-1) (setting 3) and become the accumulator -sign(g) + m·buffer - d·w."""
    torch._foreach_mul_(buffers, momentum)
    torch._foreach_sub_(buffers, torch._foreach_sign(grads))
    if isinstance(weight_decay, int | float):
        if weight_decay:
            torch._foreach_sub_(buffers, params, alpha=weight_decay)
    else:
        torch._foreach_sub_(buffers, torch._foreach_mul(params, weight_decay))
    if setting == 2:
        torch._foreach_sign_(buffers)
    add_scaled_(params, torch._foreach_sign(buffers) if setting == 3 else buffers, lr)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {}
#: arguments of a registered optimizer that the trainer sets, not the config
RUN_ARGUMENTS = ("params", "lr", "capturable")


def register(name: str):
    """Decorator: make an optimizer function available to configs as ``optimizer.name=<name>``."""

    def decorate(make: Callable[..., Optimizer]) -> Callable[..., Optimizer]:
        OPTIMIZERS[name] = make
        return make

    return decorate


@register("sgd")
def sgd(params, lr: float, *, capturable: bool = False, momentum: float = 0.9,
        weight_decay: float = 5e-4) -> Optimizer:
    """SGD with momentum and weight decay (Liao et al. §3, setting 0)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@register("bm")
def batch_manhattan(params, lr: float, *, capturable: bool = False, setting: int = 1,
                    momentum: float = 0.9, weight_decay: float = 5e-4) -> Optimizer:
    """Batch Manhattan, settings 1-3 (Liao et al. §3); its step can sit in a CUDA graph as is."""
    return BatchManhattan(params, lr=lr, setting=setting, momentum=momentum,
                          weight_decay=weight_decay)


@register("adam")
def adam(params, lr: float, *, capturable: bool = False,
         betas: Sequence[float] = (0.9, 0.999), weight_decay: float = 0.0) -> Optimizer:
    """Adam (the reference report); ``capturable`` keeps its step count on the device, so its
    step can sit in a CUDA graph."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                            capturable=capturable)


def get_optimizer(name: str) -> Callable[..., Optimizer]:
    """The registered optimizer function; ValueError listing the valid names for an unknown one."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def optimizer_options(name: str) -> dict[str, Any]:
    """An optimizer's config options (beyond ``name``) and their defaults."""
    parameters = inspect.signature(get_optimizer(name)).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in RUN_ARGUMENTS}


def build_optimizer(cfg: Mapping[str, Any], params, *, capturable: bool = False,
                    lr: float = 1.0) -> Optimizer:
    """The optimizer of an ``optimizer`` config group (``name`` and options) for ``params``.

    ``lr`` is a placeholder when the schedule sets the LR every epoch; ``capturable`` asks for an
    optimizer whose step can be captured in a CUDA graph. Unknown names and options raise
    ValueError naming the valid ones.
    """
    options = {k: v for k, v in cfg.items() if k != "name"}
    unknown = sorted(set(options) - set(optimizer_options(cfg["name"])))
    if unknown:
        raise ValueError(f"optimizer {cfg['name']!r} takes no option {', '.join(unknown)}; "
                         f"valid options: {', '.join(optimizer_options(cfg['name']))}")
    return get_optimizer(cfg["name"])(params, lr, capturable=capturable, **options)
