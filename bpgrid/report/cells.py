"""The cells a grid defines, from its config: one row per cell with its id, its table column and
label, and every factor as a column.

The grid is expanded and composed as the sweep does it (``bpgrid.grid``), so a report's rows,
columns and LR scales are the grid's, whether or not a cell ever ran.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from bpgrid.config import cell_id, factors
from bpgrid.grid import compose_cells, load_grid

GROUPS = ("dataset", "model", "feedback", "norm", "optimizer", "schedule")  # ``<group>.name``
# is the column ``<group>``; the group's options keep their dotted keys (``feedback.flip_prob``)


def stderr_note(text: str) -> None:
    print(f"report: {text}", file=sys.stderr, flush=True)


@dataclass
class GridCells:
    """A grid as a report reads it: its sweep config and its cells (``cell_frame``)."""

    name: str
    config: DictConfig  # the grid's composed config: grid.*, report.*, tracking.*
    cells: pd.DataFrame

    @property
    def column_key(self) -> list[str]:
        return column_key(self.config)

    @property
    def columns(self) -> list[str]:
        """The grid's column order (``grid.columns``); columns it does not list come after."""
        return list(self.config.grid.get("columns", []))


def column_key(config: DictConfig) -> list[str]:
    """The config keys (``method``, or a key such as ``feedback.flip_prob``) naming the table
    column of a cell (``grid.column_key``)."""
    return list(config.grid.get("column_key", ["method"]))


def compose_grid(argv: list[str], note: Callable[[str], None] = stderr_note) -> GridCells:
    """The cells of ``python -m bpgrid.sweep`` with these arguments, composed, not launched."""
    grid = load_grid(argv)
    note(f"grid {grid.name}: composing its {len(grid.jobs)} cells")
    configs = compose_cells(grid)
    return GridCells(grid.name, grid.config, cell_frame(configs, column_key(grid.config)))


def _value(config: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(config, Mapping) or part not in config:
            return "?"
        config = config[part]
    return config


def _text(value: Any) -> str:
    """A value as a column name reads it (as the runs' parameters store it)."""
    return json.dumps(value) if isinstance(value, list) else str(value)


def column_of(config: Mapping[str, Any], column_key: list[str]) -> tuple[str, str]:
    """A cell's table column and its label: the method's name and label, ``key=value`` for the
    other keys, joined by ``/`` and a space."""
    names, labels = [], []
    for key in column_key:
        if key == "method":
            method = config.get("method") or {}
            names.append(method.get("name", ""))
            labels.append(method.get("label") or names[-1])
        else:
            names.append(_text(_value(config, key)))
            labels.append(f"{key.split('.')[-1]}={names[-1]}")
    return "/".join(names), " ".join(labels)


def cell_frame(configs: list[Mapping[str, Any]], column_key: list[str]) -> pd.DataFrame:
    """One row per cell: cell_id, column, label, method, method_label, then every factor
    (dataset, model, feedback, norm, optimizer, schedule and their options, lr_scale, seed,
    alignment)."""
    columns = [column_of(c, column_key) for c in configs]
    methods = [c.get("method") or {} for c in configs]
    head = pd.DataFrame({
        "cell_id": [cell_id(c) for c in configs],
        "column": [name for name, _ in columns], "label": [label for _, label in columns],
        "method": [m.get("name", "") for m in methods],
        "method_label": [m.get("label", "") for m in methods]})
    factor_columns = pd.json_normalize([factors(c) for c in configs])
    factor_columns = factor_columns.rename(columns={f"{g}.name": g for g in GROUPS})
    return pd.concat([head, factor_columns], axis=1)
