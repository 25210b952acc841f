"""How a cell's MLflow run reads: its name.

A run is named ``<method>/<dataset>/lr<lr_scale>/s<seed>`` (``brsf_bn_bm/mnist1d/lr10/s0``),
with the cell's other overrides in brackets after the method where they change what the method
names or tell the grid's cells apart: ``usf_bn_bm[feedback=brsf,feedback.flip_prob=0.25]/...``.
Shown are every override of the method's own factors (feedback, norm, optimizer and their
options) and every other factor that takes more than one value in the grid, so the names of a
grid's cells are unique. Values read as typed (``config.value_text``). The cell id stays the
run's ``cell_id`` tag, by which runs are found; the name is for people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from bpgrid.config import DATASET_LOCATION, FACTORS, value_text

METHOD_FACTORS = ("feedback", "norm", "optimizer")  # what a method preset picks
NAMED = ("method", "dataset", "lr_scale", "seed")  # in every name already


def run_name(c: Mapping[str, Any], extras: Sequence[str] = ()) -> str:
    """``<method>[<extras>]/<dataset>/lr<lr_scale>/s<seed>``."""
    method = (c.get("method") or {}).get("name") or c["feedback"]["name"]
    shown = f"[{','.join(extras)}]" if extras else ""
    return (f"{method}{shown}/{c['dataset']['name']}/lr{value_text(c['lr_scale'])}"
            f"/s{value_text(c['seed'])}")


def factor_key(key: str) -> bool:
    """A key that changes the cell (a factor or one of its options), not where it runs."""
    head, _, rest = key.partition(".")
    return head in FACTORS and not (head == "dataset" and rest in DATASET_LOCATION)


def extras(overrides: Sequence[str], varying: set[str] = frozenset(),
           parser: OverridesParser | None = None) -> list[str]:
    """The overrides a cell's name shows, as ``key=value``: the method's factors and the keys in
    ``varying`` (the grid's axes of more than one value), in the order given."""
    shown = []
    for o in (parser or OverridesParser.create()).parse_overrides(list(overrides)):
        key = o.key_or_group.lstrip("+~")
        if key in NAMED or not factor_key(key) or o.is_delete():
            continue
        if key.split(".")[0] in METHOD_FACTORS or key in varying:
            value = o.value()
            text = value if isinstance(value, str) else value_text(value)
            shown.append(f"{key}={text}")
    return shown


def varying_keys(jobs: Sequence[Sequence[str]]) -> set[str]:
    """The keys that take more than one value across the jobs' overrides (``key=value``)."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for line in job:
            key, _, value = line.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1}


def name_runs(cells: Sequence[dict[str, Any]], jobs: Sequence[Sequence[str]]) -> None:
    """Give each cell of a grid its run's name (``tracking.run_name``), from its overrides."""
    varying, parser = varying_keys(jobs), OverridesParser.create()
    for c, job in zip(cells, jobs, strict=True):
        c["tracking"]["run_name"] = run_name(c, extras(job, varying, parser))
