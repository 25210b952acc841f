"""Which cells can train as one array, and packing cells into arrays.

Cells share a *structure* when they differ only in numbers the array holds per member: the LR
scale and the LR values, the seed, the feedback rule with its options and layers, the optimizer's
numbers (momentum, weight decay, betas), the method preset that named them, where the dataset's
files live, and its MLflow run's name and parent (bpgrid/naming.py, bpgrid/sweep_run.py).
Everything else (dataset, model, norm, optimizer kind and Batch Manhattan setting, loss and the
schedule's shape, alignment, device, and the epoch the members start at) must be equal. Unknown
config entries count as structure, so a new factor can never mix silently.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bpgrid.config import to_dict

#: (group, key) entries in which the members of one array may differ; None: the whole entry
MEMBER_ENTRIES = (("lr_scale", None), ("seed", None), ("feedback", None), ("method", None),
                  ("schedule", "lr_values"), ("dataset", "root"), ("dataset", "download"),
                  ("tracking", "run_name"), ("tracking", "parent_run_id"))
#: optimizer entries that are structure; its other entries are per-member numbers
OPTIMIZER_STRUCTURE = ("name", "setting")


def structure(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a cell's resolved config that the members of an array share."""
    c = copy.deepcopy(to_dict(config))
    for group, key in MEMBER_ENTRIES:
        if key is None:
            c.pop(group, None)
        elif isinstance(c.get(group), dict):
            c[group].pop(key, None)
    if isinstance(c.get("optimizer"), dict):
        c["optimizer"] = {k: v for k, v in c["optimizer"].items() if k in OPTIMIZER_STRUCTURE}
    return c


def structure_key(config: Mapping[str, Any], start_epoch: int = 1) -> str:
    """An id of the cell's structure and the epoch it starts (or resumes) at: cells with equal
    keys can train as one array."""
    text = json.dumps({"structure": structure(config), "start_epoch": start_epoch},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def structure_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The first structural entry (dotted) in which two configs differ, or None."""
    def flat(value, prefix=""):
        if isinstance(value, Mapping):
            return {k: v for key in value for k, v in flat(value[key], f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    sa, sb = flat(structure(a)), flat(structure(b))
    return next((key for key in sorted(sa.keys() | sb.keys()) if sa.get(key) != sb.get(key)),
                None)


def _rule_order(config: Mapping[str, Any]) -> str:
    return json.dumps(to_dict(config).get("feedback", {}), sort_keys=True, default=str)


def pack(configs: Sequence[Mapping[str, Any]], max_array: int,
         start_epochs: Sequence[int] | None = None) -> list[list[int]]:
    """Cells (their resolved configs, and the epochs they start at) packed into arrays of at most
    ``max_array`` members: lists of indices into ``configs``.

    Cells are grouped by ``structure_key``, groups of one dataset together (a worker keeps the
    last dataset it loaded), else in the order of their first cell. A group of n
    cells becomes ceil(n / max_array) arrays of nearly equal sizes; within an array, members with
    the same feedback rule are adjacent (each run of one rule is computed at once).
    """
    if max_array < 1:
        raise ValueError(f"max_array must be at least 1, got {max_array!r}")
    starts = start_epochs if start_epochs is not None else [1] * len(configs)
    if len(starts) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(starts)} start epochs")
    groups: dict[str, list[int]] = {}
    for i, (config, start) in enumerate(zip(configs, starts, strict=True)):
        groups.setdefault(structure_key(config, start), []).append(i)

    def dataset(members: list[int]) -> str:
        return json.dumps(to_dict(configs[members[0]]).get("dataset"), sort_keys=True, default=str)

    arrays = []
    for members in sorted(groups.values(), key=dataset):  # stable: first cells' order within
        members = sorted(members, key=lambda i: _rule_order(configs[i]))
        count = -(-len(members) // max_array)
        size, extra = divmod(len(members), count)
        start = 0
        for a in range(count):
            stop = start + size + (a < extra)
            arrays.append(members[start:stop])
            start = stop
    return arrays
