"""From records to a Liao-style error table: rows = datasets, columns = table columns.

Selection rule (Liao et al. §5): a cell's error is the best validation error over all epochs and
LR scales of its runs, averaged over seeds (± the standard deviation when there are several).
A cell at least ``threshold`` points worse than the baseline column is coloured yellow, at least
``threshold`` better blue. Cells without a finished run say why (missing, failed, diverged,
running) instead of showing a number.

The records are the grid's cells, each with its latest run or none (status ``missing``): the
marks are judged against what the grid asked for, per table cell: † when the best LR scale is the
lowest or highest of the scales asked for in its row and column, * when some of its grid cells
are missing, failed or still running.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bpgrid.data import DATASETS, dataset_label

EDGE, PARTIAL = "†", "*"
KEYS = ["dataset", "column"]
# A cell without a number shows the first of these its runs have; finished runs without a
# number diverged.
NO_NUMBER = {"failed": "failed", "diverged": "diverged", "running": "running", "done": "diverged"}
UNFINISHED = ["missing", "failed", "running"]  # grid cells that make a number partial (*)
CELL_COLUMNS = ["status", "value", "std", "marks", "colour", "best_lr_scale", "runs", "best_run"]


@dataclass
class Table:
    """The selected cells, one row per (dataset, column) in display order, and how they were made.

    ``cells`` holds CELL_COLUMNS: status (value | missing | failed | diverged | running), value
    and std (NaN without a number), marks, colour (worse | better | ""), best_lr_scale, runs
    and best_run (an MLflow run id).
    """

    grid: str
    cells: pd.DataFrame
    row_labels: dict[str, str]  # dataset -> label, in row order
    column_labels: dict[str, str]  # column -> label, in column order
    baseline: str
    threshold: float
    scales: list[float] = field(default_factory=list)  # every LR scale the grid asked for
    runs: int = 0  # runs found (a grid cell's latest run)
    code_versions: list[str] = field(default_factory=list)
    grid_cells: int = 0  # cells the grid defines
    experiments: dict[str, int] = field(default_factory=dict)  # runs found per MLflow experiment

    @property
    def rows(self) -> list[str]:
        return list(self.row_labels)

    @property
    def columns(self) -> list[str]:
        return list(self.column_labels)

    def wide(self, values: pd.Series) -> pd.DataFrame:
        """A per-cell Series pivoted to rows x columns, in display order."""
        frame = values.unstack("column").reindex(index=self.rows, columns=self.columns)
        return frame.rename_axis(index=None, columns=None)


def row_labels(datasets) -> dict[str, str]:
    """Datasets in Liao et al.'s table order (others after, by name), each with its row label."""
    return {d: dataset_label(d) for d in ordered(set(datasets), list(DATASETS))}


def ordered(present: set[str], preferred: list[str]) -> list[str]:
    """The present names in the preferred order, then the others by name."""
    return [c for c in preferred if c in present] + sorted(present - set(preferred))


def select(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, column) of the records: the error and its marks, or why none."""
    scales = records.groupby(KEYS).lr_scale
    low, high = scales.transform("min"), scales.transform("max")
    at_edge = (records.lr_scale == low) | (records.lr_scale == high)
    records = records.assign(edge=at_edge & (scales.transform("nunique") >= 3))
    scored = records.dropna(subset=["best"])
    per_seed = scored.loc[scored.groupby([*KEYS, "seed"])["best"].idxmin()]  # best LR scale
    numbers = per_seed.groupby(KEYS).agg(value=("best", "mean"), std=("best", "std"),
                                         edge=("edge", "any"))
    best = per_seed.loc[per_seed.groupby(KEYS)["best"].idxmin()].set_index(KEYS)
    numbers["best_lr_scale"], numbers["best_run"] = best.lr_scale, best.run_id
    cells = records.groupby(KEYS).agg(
        runs=("run_id", "count"),
        unfinished=("status", lambda s: s.isin(UNFINISHED).any()),
        status=("status", lambda s: next((NO_NUMBER[k] for k in NO_NUMBER if k in set(s)),
                                         "missing"))
    ).join(numbers)
    valued = cells.value.notna()
    cells["status"] = cells.status.where(~valued, "value")
    cells["marks"] = (np.where(valued & cells.edge.eq(True), EDGE, "")
                      + np.where(valued & cells.unfinished, PARTIAL, ""))
    return cells.drop(columns=["unfinished", "edge"])


def build_table(records: pd.DataFrame, grid: str, columns: list[str], baseline: str,
                threshold: float, baseline_records: pd.DataFrame | None = None) -> Table:
    """Select the cells, in the grid's column order, coloured against the baseline column, which
    comes from ``baseline_records`` (another grid's cells) when they hold it."""
    cells = select(records)
    column_labels = dict(zip(records.column, records.label, strict=True))
    order = ordered(set(column_labels), columns)
    base = None if baseline_records is None else \
        baseline_records[baseline_records.column == baseline]
    if base is not None and not base.empty:
        cells = pd.concat([cells.drop(baseline, level="column", errors="ignore"), select(base)])
        column_labels[baseline] = base.label.iloc[0]
        order = [baseline, *(c for c in order if c != baseline)]
    rows = row_labels(records.dataset)
    cells = cells.reindex(pd.MultiIndex.from_product([list(rows), order], names=KEYS))
    cells = cells.fillna({"status": "missing", "marks": "", "runs": 0}).astype({"runs": int})
    cells["colour"] = colours(cells.value, baseline, threshold)
    found = records.dropna(subset=["run_id"])
    return Table(grid, cells[CELL_COLUMNS], rows, {c: column_labels[c] for c in order},
                 baseline, threshold, sorted(records.lr_scale.unique()), len(found),
                 sorted(found.code_version.unique()), len(records),
                 found.experiment.value_counts().to_dict())


def colours(values: pd.Series, baseline: str, threshold: float) -> np.ndarray:
    """worse / better where a cell is at least ``threshold`` points above / below the baseline
    column of its row, as printed (rounded), not float noise."""
    datasets, columns = (values.index.get_level_values(k) for k in KEYS)
    base = values.xs(baseline, level="column") if baseline in columns else pd.Series()
    diff = (values - datasets.map(base).to_numpy(dtype=float)).round(6)
    other = columns != baseline
    return np.select([other & (diff >= threshold), other & (-diff >= threshold)],
                     ["worse", "better"], "")
