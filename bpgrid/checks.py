"""The range check of fractions shared by rules, nets and optimizers, with one wording.

Each caller says whether 1 is allowed: a sign-flip probability of 1 flips every sign (Liao et
al. Table 3's 100%), while a dropout probability, a momentum or a per-step decay of 1 would leave
nothing to train with.
"""

from __future__ import annotations


def check_fraction(key: str, value: float, *, allow_one: bool) -> None:
    """ValueError naming ``key`` unless ``value`` lies in [0, 1] (``allow_one``) or [0, 1)."""
    ok = 0.0 <= value <= 1.0 if allow_one else 0.0 <= value < 1.0
    if not ok:
        raise ValueError(f"{key} must lie in [0, 1{']' if allow_one else ')'}, got {value!r}")
