"""Feedback rules: how the backward pass's V is made from the forward weight W.

A rule is a small frozen dataclass of hyper-parameters. Its random state lives in the layer's
buffers (``init_state`` makes them), so it is saved, loaded and moved with the module. A new mode is
one new rule registered here, not a new layer.

Definitions follow Liao, Leibo & Poggio (2016) §2; ``kp`` is the reference report's "updated random
feedback" R* (Kolen-Pollack without decay, with an optional decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from bpgrid.checks import check_fraction

RULES: dict[str, type[FeedbackRule]] = {}


def register(cls: type[FeedbackRule]) -> type[FeedbackRule]:
    """Class decorator: make the rule available under ``cls.name``."""
    RULES[cls.name] = cls
    return cls


@dataclass(frozen=True)
class FeedbackRule:
    """Base class. Subclasses set ``name`` and implement ``feedback``."""

    name: ClassVar[str] = ""
    #: ``False`` only for ``bp``, whose layers then take PyTorch's native path.
    asymmetric: ClassVar[bool] = True

    def init_state(self, weight: Tensor) -> dict[str, Tensor]:
        """Fixed random state for a layer with this weight; stored as buffers ``feedback_<key>``."""
        return {}

    def feedback(self, weight: Tensor, state: dict[str, Tensor], fan_in: int) -> Tensor:
        """V for this training step (called once per training forward pass)."""
        raise NotImplementedError


def _check_sigma(sigma: float) -> None:
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")


def _uniform(shape: torch.Size, like: Tensor) -> Tensor:
    """U[0,1) draws of ``like``'s dtype and device, seeded by torch's generator.

    On CPU torch.rand costs ~3 ns a number, more than the layer's matmuls at batch 100, so there
    the draws are 16-bit uniforms ((k + 1/2)/65536, never 0) from numpy's SFC64 generator,
    seeded from torch's generator so that torch.manual_seed and saved RNG states still fix them
    (~3x faster).
    """
    if like.device.type != "cpu":
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    n = math.prod(shape)
    seed = int(torch.randint(2**62, (1,)))
    bits = np.random.SFC64(seed).random_raw((n + 3) // 4).view(np.uint16)[:n]
    return torch.from_numpy(bits).to(like.dtype).add_(0.5).mul_(1 / 65536).reshape(shape)


def _signed_magnitude(shape: torch.Size, flip_prob: float, like: Tensor) -> Tensor:
    """M∘S_p: M~U[0,1) and S_p = -1 with probability p, else +1, from one uniform draw.

    With u~U[0,1): the event u<p has probability p, and given either outcome the rescaled
    u/p or (u-p)/(1-p) is again U[0,1), independent of the event.
    """
    u = _uniform(shape, like)
    if flip_prob == 0.0:
        return u
    if flip_prob == 1.0:
        return u.neg_()
    flipped = u < flip_prob
    return torch.where(flipped, -u / flip_prob, (u - flip_prob) / (1.0 - flip_prob))


@register
@dataclass(frozen=True)
class BP(FeedbackRule):
    """Ordinary backpropagation: V = W."""

    name: ClassVar[str] = "bp"
    asymmetric: ClassVar[bool] = False

    def feedback(self, weight, state, fan_in):
        return weight.detach()


@register
@dataclass(frozen=True)
class USF(FeedbackRule):
    """Uniform sign-concordant feedback: V = sign(W)."""

    name: ClassVar[str] = "usf"

    def feedback(self, weight, state, fan_in):
        return torch.sign(weight.detach())


@register
@dataclass(frozen=True)
class NuSF(FeedbackRule):
    """uSF normalized by fan-in: V = sign(W) / fan_in (fan_in = kh·kw·in_channels for convs)."""

    name: ClassVar[str] = "nusf"

    def feedback(self, weight, state, fan_in):
        return torch.sign(weight.detach()).div_(fan_in)


@register
@dataclass(frozen=True)
class BrSF(FeedbackRule):
    """Batchwise random-magnitude sign-concordant feedback: V = M∘sign(W)∘S_p, M and S_p redrawn."""

    name: ClassVar[str] = "brsf"
    flip_prob: float = 0.0

    def __post_init__(self):
        check_fraction("flip_prob", self.flip_prob, allow_one=True)

    def feedback(self, weight, state, fan_in):
        w = weight.detach()
        v = _signed_magnitude(w.shape, self.flip_prob, w)
        return v.copysign_(w) if self.flip_prob == 0.0 else v.mul_(torch.sign(w))


@register
@dataclass(frozen=True)
class FrSF(FeedbackRule):
    """Fixed random-magnitude sign-concordant feedback: V = M∘sign(W)∘S_p, M and S_p fixed.

    sign(0) is taken as +1 here, as in the paper ("the sign (-1 or 1)").
    """

    name: ClassVar[str] = "frsf"
    flip_prob: float = 0.0

    def __post_init__(self):
        check_fraction("flip_prob", self.flip_prob, allow_one=True)

    def init_state(self, weight):
        signed = _signed_magnitude(weight.shape, self.flip_prob, weight.detach())
        if self.flip_prob in (0.0, 1.0):  # one sign for all: fold it into the rule, not a buffer
            return {"magnitude": signed.abs_()}
        return {"magnitude": signed.abs(), "flip": torch.where(signed < 0, -1.0, 1.0)}

    def feedback(self, weight, state, fan_in):
        v = torch.copysign(state["magnitude"], weight.detach())
        if self.flip_prob == 1.0:
            return v.neg_()
        return v.mul_(state["flip"]) if "flip" in state else v


@register
@dataclass(frozen=True)
class RndF(FeedbackRule):
    """Fixed random feedback: V ~ N(0, sigma²), drawn once (sigma = 0.05 in Liao et al.)."""

    name: ClassVar[str] = "rndf"
    sigma: float = 0.05

    def __post_init__(self):
        _check_sigma(self.sigma)

    def init_state(self, weight):
        return {"matrix": torch.randn_like(weight.detach()).mul_(self.sigma)}

    def feedback(self, weight, state, fan_in):
        return state["matrix"]


@register
@dataclass(frozen=True)
class KP(FeedbackRule):
    """Updated random feedback (R*, Kolen-Pollack): V starts N(0, sigma²), then gets W's update.

    Stored as the offset D = V - W, so V = W + D moves by exactly W's update with no optimizer
    hook. With ``decay`` λ, each training step also applies V ← V - λV (D ← D - λV).
    """

    name: ClassVar[str] = "kp"
    sigma: float = 0.05
    decay: float = 0.0

    def __post_init__(self):
        _check_sigma(self.sigma)
        check_fraction("decay", self.decay, allow_one=False)

    def init_state(self, weight):
        w = weight.detach()
        return {"offset": torch.randn_like(w).mul_(self.sigma).sub_(w)}

    def feedback(self, weight, state, fan_in):
        offset = state["offset"]
        v = weight.detach() + offset
        if self.decay:
            offset.sub_(v, alpha=self.decay)
        return v


def make_rule(rule: str | FeedbackRule = "bp", **kwargs) -> FeedbackRule:
    """A rule from its paper name and hyper-parameters, or the rule itself.

    Raises ``ValueError`` naming the valid choices for an unknown name or option.
    """
    if isinstance(rule, FeedbackRule):
        if kwargs:
            raise ValueError(f"options {sorted(kwargs)} given with a rule instance {rule!r}")
        return rule
    if rule not in RULES:
        raise ValueError(f"unknown feedback rule {rule!r}; valid rules: {', '.join(RULES)}")
    cls = RULES[rule]
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"feedback rule {rule!r} takes no option {', '.join(unknown)}; "
            f"valid options: {', '.join(allowed) or 'none'}"
        )
    return cls(**kwargs)
