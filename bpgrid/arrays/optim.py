"""Optimizers of an array's stacked parameters, with per-member hyper-parameters.

Every parameter has a leading member dimension K. A hyper-parameter (LR, momentum, weight decay,
Adam's betas) is a (K,) tensor on the device, viewed as (K, 1, ..., 1) against each parameter, so
member k's update is its own cell's, and a new LR is a copy into the tensor (a captured CUDA graph
reads it there). Each optimizer keeps its state under the keys of its plain torch optimizer, so a
member's state converts to and from a plain optimizer's ``state_dict`` (``member_state``,
``load_member_state``). Batch Manhattan shares its step with ``bpgrid.optim.BatchManhattan``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from bpgrid.optim import batch_manhattan_, optimizer_options


class ArrayOptimizer:
    """The members' optimizers of one kind as one; ``options``: each member's options, complete
    (the registered optimizer's defaults updated by its config)."""

    state_keys: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()  # the options held as (K,) tensors

    def __init__(self, params: Sequence[nn.Parameter], options: Sequence[Mapping[str, Any]]):
        self.params = list(params)
        self.members = len(options)
        like = self.params[0]
        self.lr = torch.zeros(self.members, dtype=like.dtype, device=like.device)
        self.hyper = {key: torch.tensor([float(o[key]) for o in options], dtype=like.dtype,
                                        device=like.device) for key in self.numbers}
        self.decays = any(o.get("weight_decay", 0.0) for o in options)
        self.state = [{key: torch.zeros_like(p) for key in self.state_keys} for p in self.params]
        self._lr = self.per_parameter(self.lr)
        self._hyper = {key: self.per_parameter(value) for key, value in self.hyper.items()}

    def per_parameter(self, values: Tensor) -> list[Tensor]:
        """(K,) ``values`` viewed against each parameter, as (K, 1, ..., 1)."""
        return [values.view(-1, *[1] * (p.dim() - 1)) for p in self.params]

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Each member's learning rate (one copy into the device tensor the steps read)."""
        self.lr.copy_(torch.tensor(lrs, dtype=self.lr.dtype))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("an array's trainable parameters all need a gradient at each step")
        self.update(grads)

    def update(self, grads: list[Tensor]) -> None:
        raise NotImplementedError

    def _buffers(self, key: str) -> list[Tensor]:
        return [state[key] for state in self.state]

    def _decayed(self, grads: list[Tensor]) -> list[Tensor]:
        """g + d·w (L2 weight decay as torch.optim adds it)."""
        if not self.decays:
            return grads
        return torch._foreach_add(grads, torch._foreach_mul(self.params,
                                                            self._hyper["weight_decay"]))

    def _extra_state(self, k: int) -> dict[str, Tensor]:
        return {}

    def _load_extra_state(self, k: int, state: Mapping[str, Tensor]) -> None:
        pass

    def member_state(self, k: int, plain: Optimizer) -> dict[str, Any]:
        """Member k's state as the ``state_dict`` of ``plain``, its own optimizer over its plain
        net's trainable parameters."""
        plain_params = [p for group in plain.param_groups for p in group["params"]]
        for p, state in zip(plain_params, self.state, strict=True):
            plain.state[p] = {**{key: value[k].detach().clone().to(p.device)
                                 for key, value in state.items()}, **self._extra_state(k)}
        for group in plain.param_groups:
            group["lr"] = float(self.lr[k])
        return plain.state_dict()

    @torch.no_grad()
    def load_member_state(self, k: int, state: Mapping[str, Any], plain: Optimizer) -> None:
        """Member k's state from a ``state_dict`` of its plain optimizer ``plain``; entries it
        lacks start at zero, as in a fresh optimizer. The hyper-parameters stay the member's
        config's (a checkpoint's, saved on another device, may say ``capturable``)."""
        settings = [{k: v for k, v in g.items() if k != "params"} for g in plain.param_groups]
        plain.load_state_dict(state)
        for group, own in zip(plain.param_groups, settings, strict=True):
            group.update(own)
        plain_params = [p for group in plain.param_groups for p in group["params"]]
        for p, mine in zip(plain_params, self.state, strict=True):
            saved = plain.state.get(p, {})
            for key, value in mine.items():
                value[k].copy_(saved[key] if key in saved else torch.zeros_like(value[k]))
        self._load_extra_state(k, plain.state.get(plain_params[0], {}) if plain_params else {})


class ArraySGD(ArrayOptimizer):
    """torch.optim.SGD with momentum and weight decay (Liao et al. §3, setting 0)."""

    state_keys = ("momentum_buffer",)
    numbers = ("momentum", "weight_decay")

    def update(self, grads):
        bufs = self._buffers("momentum_buffer")
        torch._foreach_mul_(bufs, self._hyper["momentum"])
        torch._foreach_add_(bufs, self._decayed(grads))
        torch._foreach_sub_(self.params, torch._foreach_mul(bufs, self._lr))


class ArrayBatchManhattan(ArrayOptimizer):
    """Batch Manhattan (Liao et al. §3, eq. 3) in one setting, by ``bpgrid.optim``'s step."""

    state_keys = ("buffer",)
    numbers = ("momentum", "weight_decay")

    def __init__(self, params, options):
        super().__init__(params, options)
        self.setting = _one("setting", options)

    def update(self, grads):
        batch_manhattan_(self.params, grads, self._buffers("buffer"), self._lr,
                         self._hyper["momentum"], self._hyper["weight_decay"], self.setting)


class ArrayAdam(ArrayOptimizer):
    """torch.optim.Adam (eps 1e-8, no amsgrad) with each member's betas and weight decay; the
    step counts and bias corrections are (K,) tensors on the device."""

    state_keys = ("exp_avg", "exp_avg_sq")
    numbers = ("beta1", "beta2", "weight_decay")
    eps = 1e-8

    def __init__(self, params, options):
        betas = [tuple(o["betas"]) for o in options]
        super().__init__(params, [{**o, "beta1": b1, "beta2": b2}
                                  for o, (b1, b2) in zip(options, betas, strict=True)])
        device = self.lr.device
        self.steps = torch.zeros(self.members, dtype=torch.float64, device=device)
        self.betas = torch.tensor(betas, dtype=torch.float64, device=device)  # (K, 2)
        self._one_minus_beta1 = self.per_parameter(1 - self.hyper["beta1"])
        self._one_minus_beta2 = self.per_parameter(1 - self.hyper["beta2"])

    def update(self, grads):
        grads = self._decayed(grads)
        exp_avgs, exp_avg_sqs = self._buffers("exp_avg"), self._buffers("exp_avg_sq")
        self.steps += 1
        torch._foreach_lerp_(exp_avgs, grads, self._one_minus_beta1)
        torch._foreach_mul_(exp_avg_sqs, self._hyper["beta2"])
        torch._foreach_add_(exp_avg_sqs, torch._foreach_mul(torch._foreach_mul(grads, grads),
                                                            self._one_minus_beta2))
        corrections = 1 - self.betas ** self.steps.unsqueeze(1)  # 1 - β^t, (K, 2)
        step_size = (self.lr.double() / corrections[:, 0]).to(self.lr.dtype)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, self.per_parameter(corrections[:, 1].sqrt().to(self.lr.dtype)))
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_div(exp_avgs, denom)
        torch._foreach_mul_(update, self.per_parameter(step_size))
        torch._foreach_sub_(self.params, update)

    def _extra_state(self, k):
        return {"step": torch.tensor(float(self.steps[k]), dtype=torch.float32)}

    def _load_extra_state(self, k, state):
        self.steps[k] = float(state["step"]) if "step" in state else 0.0


ARRAY_OPTIMIZERS: dict[str, type[ArrayOptimizer]] = {
    "sgd": ArraySGD, "bm": ArrayBatchManhattan, "adam": ArrayAdam}


def _one(key: str, options: Sequence[Mapping[str, Any]]) -> Any:
    values = {o[key] for o in options}
    if len(values) != 1:
        raise ValueError(f"an array's members share their optimizer's {key}, got {sorted(values)}")
    return values.pop()


def build_array_optimizer(configs: Sequence[Mapping[str, Any]],
                          params: Sequence[nn.Parameter]) -> ArrayOptimizer:
    """The array optimizer of the members' ``optimizer`` config groups for the stacked ``params``;
    the members share the optimizer's name (and Batch Manhattan's setting)."""
    name = _one("name", configs)
    if name not in ARRAY_OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} has no array version; array optimizers: "
                         f"{', '.join(ARRAY_OPTIMIZERS)}")
    defaults = optimizer_options(name)
    options = [{**defaults, **{k: v for k, v in c.items() if k != "name"}} for c in configs]
    return ARRAY_OPTIMIZERS[name](params, options)
