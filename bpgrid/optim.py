"""The cells' optimizers: SGD, Batch Manhattan (Liao et al. §3, eq. 3: update with the sign of the
batch gradient) and Adam, made from a config by make_optimizer."""

from __future__ import annotations

import torch
from torch.optim import Optimizer


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
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
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
            lr, m, d, setting = (group["lr"], group["momentum"], group["weight_decay"],
                                 group["setting"])
            params = [w for w in group["params"] if w.grad is not None]
            if not params:
                continue
            for w in params:  # τ(t-1) for settings 1 and 2, κ(t-1) for setting 3
                if "buffer" not in self.state[w]:
                    self.state[w]["buffer"] = torch.zeros_like(w)
            bufs = [self.state[w]["buffer"] for w in params]
            # one multi-tensor kernel per operation for all the group's tensors (torch.optim's
            # foreach style): accumulator = -sign(g) + m·buffer - d·w, in place in the buffers
            torch._foreach_mul_(bufs, m)
            torch._foreach_sub_(bufs, torch._foreach_sign([w.grad for w in params]))
            if d:
                torch._foreach_sub_(bufs, params, alpha=d)
            if setting == 1:
                torch._foreach_add_(params, bufs, alpha=lr)
            elif setting == 2:
                torch._foreach_sign_(bufs)
                torch._foreach_add_(params, bufs, alpha=lr)
            else:
                torch._foreach_add_(params, torch._foreach_sign(bufs), alpha=lr)
        return loss


def make_optimizer(cfg: dict, params, capturable: bool = False) -> Optimizer:
    """SGD (setting 0), Batch Manhattan (settings 1-3) or Adam; the LR is set every epoch.

    ``capturable`` keeps Adam's step count on the device, so its step can sit in a CUDA graph
    (SGD's and Batch Manhattan's steps can as they are)."""
    lr = 1.0  # placeholder, replaced by the schedule before the first step
    if cfg["name"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"],
                               weight_decay=cfg["weight_decay"])
    if cfg["name"] == "bm":
        return BatchManhattan(params, lr=lr, setting=cfg["setting"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"])
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg["betas"]),
                            weight_decay=cfg["weight_decay"], capturable=capturable)
