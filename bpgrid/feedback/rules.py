"""Feedback rules: how the backward pass's V is made from the forward weight W.

A rule is a small frozen dataclass of hyper-parameters. Its random state lives in the layer's
buffers (``init_state`` makes them), so it is saved, loaded and moved with the module. A new mode is
one new rule registered here, not a new layer.

A rule also works on an array's stacked weights (``bpgrid.arrays``): given ``generators``, one per
member, the weight and state carry a leading member dimension and each member's random draws come
from its own generator, so a member's numbers do not depend on the array it trains in.

Definitions follow Liao, Leibo & Poggio (2016) §2; ``kp`` is the reference report's "updated random
feedback" R* (Kolen-Pollack without decay, with an optional decay); ``wm`` is the weight mirror of
Akrout et al. (2019, "Deep learning without weight transport"); ``dfa`` is direct feedback alignment
(Nøkland 2016), a rule over the whole network (``network = True``, see ``bpgrid.feedback.direct``).

sign() is Liao et al.'s "sign (-1 or 1)" everywhere: sign(0) = +1, for +0.0 and -0.0 alike. The
paper's sign takes no third value, so every connection keeps a feedback of full magnitude and sign
concordance is defined for every entry; and +0.0 and -0.0 are one weight value, so V must not
depend on the IEEE sign bit of a zero (which copysign and torch.sign would read or drop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from bpgrid.checks import check_fraction

RULES: dict[str, type[FeedbackRule]] = {}
#: one random generator per member of an array (None: one layer, torch's default generator)
Generators = Sequence[torch.Generator] | None


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
    #: ``True`` for a rule over the whole network (``dfa``): each layer's own backward is bp, and
    #: ``attach`` installs the rule on the network that holds the layers.
    network: ClassVar[bool] = False

    def init_state(self, weight: Tensor) -> dict[str, Tensor]:
        """Fixed random state for a layer with this weight; stored as buffers ``feedback_<key>``."""
        return {}

    def feedback(self, weight: Tensor, state: dict[str, Tensor], fan_in: int,
                 generators: Generators = None) -> Tensor:
        """V for this training step (called once per training forward pass).

        ``generators``: None for one layer's weight, whose draws come from torch's default
        generator; else one generator per member, and ``weight`` and ``state`` are the members'
        stacked along a leading dimension.
        """
        raise NotImplementedError


def sign(x: Tensor) -> Tensor:
    """Liao et al. §2's sign "(-1 or 1)": -1 where x < 0, else +1 (sign(+0.0) = sign(-0.0) = +1).

    Computed as copysign(1, x + 0.0): adding +0.0 turns -0.0 into +0.0 (IEEE 754, rounding to
    nearest) and leaves every other value as it is. On CPU, torch.where(x < 0, -1.0, 1.0) took
    ~20x longer than these two passes.
    """
    t = x.detach() + 0.0  # sign has no gradient
    return torch.copysign(x.new_ones(()), t, out=t)


def signed(magnitude: Tensor, weight: Tensor) -> Tensor:
    """magnitude ∘ sign(weight) for a magnitude >= 0, with ``sign`` as above."""
    return torch.copysign(magnitude, weight + 0.0)


def _check_sigma(sigma: float) -> None:
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")


def _uniform_into(out: Tensor, generator: torch.Generator | None) -> Tensor:
    """Fills ``out`` (contiguous) with U[0,1) draws seeded by ``generator`` (torch's default when
    None).

    On CPU torch.rand costs ~3 ns a number, more than the layer's matmuls at batch 100, so there
    the draws are 16-bit uniforms ((k + 1/2)/65536, never 0) from numpy's SFC64 generator,
    seeded from the torch generator so that torch.manual_seed and saved RNG states still fix them
    (~3x faster).
    """
    if out.device.type != "cpu":
        return out.uniform_(generator=generator)
    n = out.numel()
    seed = int(torch.randint(2**62, (1,), generator=generator))
    bits = np.random.SFC64(seed).random_raw((n + 3) // 4).view(np.uint16)[:n]
    out.view(-1).copy_(torch.from_numpy(bits))
    return out.add_(0.5).mul_(1 / 65536)


def _per_member(shape: Sequence[int], like: Tensor, generators: Generators, fill) -> Tensor:
    """A tensor of ``shape`` filled by ``fill(out, generator)``: at once from torch's default
    generator, or, with ``generators``, member k's part (shape[1:]) from generator k."""
    out = torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
    if generators is None:
        return fill(out, None)
    for part, generator in zip(out, generators, strict=True):
        fill(part, generator)
    return out


def _uniform(shape: Sequence[int], like: Tensor, generators: Generators = None) -> Tensor:
    """U[0,1) draws of ``like``'s dtype and device (see ``_uniform_into``)."""
    return _per_member(shape, like, generators, _uniform_into)


def _normal(shape: Sequence[int], like: Tensor, generators: Generators = None) -> Tensor:
    """N(0, 1) draws of ``like``'s dtype and device."""
    return _per_member(shape, like, generators,
                       lambda out, generator: out.normal_(generator=generator))


def _signed_magnitude(shape: Sequence[int], flip_prob: float, like: Tensor,
                      generators: Generators = None) -> Tensor:
    """M∘S_p: M~U[0,1) and S_p = -1 with probability p, else +1, from one uniform draw.

    With u~U[0,1): the event u<p has probability p, and given either outcome the rescaled
    u/p or (u-p)/(1-p) is again U[0,1), independent of the event.
    """
    u = _uniform(shape, like, generators)
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

    def feedback(self, weight, state, fan_in, generators=None):
        return weight.detach()


@register
@dataclass(frozen=True)
class USF(FeedbackRule):
    """Uniform sign-concordant feedback: V = sign(W)."""

    name: ClassVar[str] = "usf"

    def feedback(self, weight, state, fan_in, generators=None):
        return sign(weight.detach())


@register
@dataclass(frozen=True)
class NuSF(FeedbackRule):
    """uSF normalized by fan-in: V = sign(W) / fan_in (fan_in = kh·kw·in_channels for convs)."""

    name: ClassVar[str] = "nusf"

    def feedback(self, weight, state, fan_in, generators=None):
        return sign(weight.detach()).div_(fan_in)


@register
@dataclass(frozen=True)
class BrSF(FeedbackRule):
    """Batchwise random-magnitude sign-concordant feedback: V = M∘sign(W)∘S_p, M and S_p redrawn."""

    name: ClassVar[str] = "brsf"
    flip_prob: float = 0.0

    def __post_init__(self):
        check_fraction("flip_prob", self.flip_prob, allow_one=True)

    def feedback(self, weight, state, fan_in, generators=None):
        w = weight.detach()
        v = _signed_magnitude(w.shape, self.flip_prob, w, generators)
        return signed(v, w) if self.flip_prob == 0.0 else v.mul_(sign(w))


@register
@dataclass(frozen=True)
class FrSF(FeedbackRule):
    """Fixed random-magnitude sign-concordant feedback: V = M∘sign(W)∘S_p, M and S_p fixed."""

    name: ClassVar[str] = "frsf"
    flip_prob: float = 0.0

    def __post_init__(self):
        check_fraction("flip_prob", self.flip_prob, allow_one=True)

    def init_state(self, weight):
        signed = _signed_magnitude(weight.shape, self.flip_prob, weight.detach())
        if self.flip_prob in (0.0, 1.0):  # one sign for all: fold it into the rule, not a buffer
            return {"magnitude": signed.abs_()}
        return {"magnitude": signed.abs(), "flip": torch.where(signed < 0, -1.0, 1.0)}

    def feedback(self, weight, state, fan_in, generators=None):
        v = signed(state["magnitude"], weight.detach())
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

    def feedback(self, weight, state, fan_in, generators=None):
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

    def feedback(self, weight, state, fan_in, generators=None):
        offset = state["offset"]
        v = weight.detach() + offset
        if self.decay:
            offset.sub_(v, alpha=self.decay)
        return v


@register
@dataclass(frozen=True)
class WeightMirror(FeedbackRule):
    """Weight mirror (Akrout et al. 2019 §4): V learns toward W from noise in a mirror phase.

    V starts N(0, sigma²). The mirror phase runs once per training step, at the start of the
    layer's training forward pass (grad enabled; where ``kp`` applies its decay), with W as it is
    before the step's update: the layer's input units fire noise X ~ N(0, noise_amplitude²) of
    (mirror_batch, fan_in), its units answer Y = X Wᵀ, and V ← V - decay·V + (mirror_lr /
    mirror_batch)·Yᵀ X. For a conv each row of X is a noise patch (what a noise image gives at
    every output position). E[Yᵀ X]/mirror_batch = noise_amplitude²·W, so V tends to
    (mirror_lr·noise_amplitude²/decay)·W: to W itself with the defaults.
    """

    name: ClassVar[str] = "wm"
    sigma: float = 0.05
    noise_amplitude: float = 1.0
    mirror_lr: float = 0.01
    decay: float = 0.01
    mirror_batch: int = 100

    def __post_init__(self):
        _check_sigma(self.sigma)
        check_fraction("decay", self.decay, allow_one=False)
        if not self.noise_amplitude > 0:
            raise ValueError(f"noise_amplitude must be positive, got {self.noise_amplitude!r}")
        if not self.mirror_lr >= 0:
            raise ValueError(f"mirror_lr must be >= 0, got {self.mirror_lr!r}")
        if isinstance(self.mirror_batch, bool) or not isinstance(self.mirror_batch, int) \
                or self.mirror_batch < 1:
            raise ValueError(f"mirror_batch must be a positive int, got {self.mirror_batch!r}")

    def init_state(self, weight):
        return {"matrix": torch.randn_like(weight.detach()).mul_(self.sigma)}

    def feedback(self, weight, state, fan_in, generators=None):
        v = state["matrix"]
        members = 1 if generators is None else len(generators)
        w = weight.detach().reshape(members, -1, fan_in)
        x = _normal((members, self.mirror_batch, fan_in), w, generators)
        x.mul_(self.noise_amplitude)
        y = torch.bmm(x, w.transpose(1, 2))
        v.mul_(1.0 - self.decay).add_(torch.bmm(y.transpose(1, 2), x).view_as(v),
                                      alpha=self.mirror_lr / self.mirror_batch)
        return v


@register
@dataclass(frozen=True)
class DFA(FeedbackRule):
    """Direct feedback alignment (Nøkland 2016): a layer's input gets B e instead of Wᵀδ.

    e is dLoss/d(network output), the error at the loss input, one row per sample; B is fixed,
    (output size) x (size of the layer's input per sample), so δ_l = (B_l e) ∘ f'(a_l) reaches
    every hidden layer straight from the output. B ~ U[-m, m] with m = ``magnitude``, or
    1/sqrt(size of the layer's input) when None: the "auto scale" of Nøkland's reference code
    (anokland/dfa-torch, ErrorFeedback.lua), under which E‖B e‖² = ‖e‖²/3 at every width, so no
    layer's signal grows or shrinks with its size. A layer's own backward is bp; ``attach``
    installs the rule on the network (``bpgrid.feedback.direct``).
    """

    name: ClassVar[str] = "dfa"
    network: ClassVar[bool] = True
    magnitude: float | None = None

    def __post_init__(self):
        if self.magnitude is not None and not self.magnitude > 0:
            raise ValueError(f"magnitude must be positive or null, got {self.magnitude!r}")

    def feedback(self, weight, state, fan_in, generators=None):
        return weight.detach()

    def direct_matrix(self, output_size: int, input_size: int, like: Tensor) -> Tensor:
        """A fresh B of (output_size, input_size), in ``like``'s dtype and device."""
        m = self.magnitude if self.magnitude is not None else 1.0 / math.sqrt(input_size)
        b = torch.empty(output_size, input_size, dtype=like.dtype, device=like.device)
        return b.uniform_(-m, m)

    def attach(self, root, layers, example_input):
        """Install DFA on ``root`` for its weight layers ``layers`` (names), sized by one forward
        pass of ``example_input``; see ``bpgrid.feedback.direct``."""
        from bpgrid.feedback.direct import DirectFeedback
        return DirectFeedback(root, self, layers, example_input)


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
