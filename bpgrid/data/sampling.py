"""The paper's per-class sampling protocol: pick classes, then n_train / n_test items per class.

Liao et al. (2016) §5, e.g. "Caltech256-101: ... a subset of randomly sampled 102 classes. 30
training and 10 testing per class" and "80-way face identification ... the 80 identities were
randomly sampled". Everything is drawn from one ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Sample:
    """Chosen classes (label = position) and the items drawn for each split."""

    classes: list  # class names (folders) or label values (TIMIT)
    train: list[tuple[object, int]]  # (item, label)
    test: list[tuple[object, int]]

    def info(self) -> dict:
        counts = {name: [0, 0] for name in self.classes}
        for column, pairs in enumerate((self.train, self.test)):
            for _, label in pairs:
                counts[self.classes[label]][column] += 1
        return {"classes": self.classes, "per_class": counts}


def sample_per_class(
    groups: dict[Any, Sequence],
    *,
    n_classes: int | None,
    n_train: int,
    n_test: int,
    seed: int,
    where: str,
    unit: str = "items",
    allow_short_test: bool = False,
) -> Sample:
    """Draw n_classes classes (None: all) and n_train/n_test items of each without overlap.

    With ``n_classes`` set, only classes holding enough items are candidates (LFW has thousands of
    one-image identities). ``allow_short_test`` lets a class with fewer than n_train + n_test items
    give all its remaining items (at least one) to the test split.
    """
    needed = n_train + (1 if allow_short_test else n_test)
    names = sorted(groups)
    short = [name for name in names if len(groups[name]) < needed]
    rng = np.random.default_rng(seed)
    if n_classes is None:
        if short:
            raise _too_few(where, groups, short, needed, unit, "every class is used")
        chosen = names
    else:
        eligible = [name for name in names if name not in short]
        if len(eligible) < n_classes:
            reason = f"{n_classes} classes needed, {len(eligible)} of {len(names)} have enough"
            raise _too_few(where, groups, short, needed, unit, reason)
        picks = rng.choice(len(eligible), size=n_classes, replace=False)
        chosen = sorted(eligible[i] for i in picks)
    train, test = [], []
    for label, name in enumerate(chosen):
        items = groups[name]
        order = rng.permutation(len(items))
        train += [(items[i], label) for i in order[:n_train]]
        test += [(items[i], label) for i in order[n_train : n_train + n_test]]
    return Sample(chosen, train, test)


def _too_few(
    where: str, groups: dict, short: list[str], needed: int, unit: str, reason: str
) -> ValueError:
    """Error naming the first short class, its count and the count needed."""
    if not short:
        return ValueError(f"{where}: {reason}")
    first = short[0]
    more = f" (and {len(short) - 1} more classes)" if len(short) > 1 else ""
    return ValueError(
        f"{where}: class {first!r} has {len(groups[first])} {unit}, {needed} needed{more}; {reason}"
    )
