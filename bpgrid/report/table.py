"""From MLflow runs to a Liao-style error table: rows = datasets, columns = table columns.

Selection rule (Liao et al. §5): a cell's error is the best validation error over all epochs and
LR scales of its runs, averaged over seeds (± the standard deviation when there are several).
A cell at least ``threshold`` points worse than the baseline column is coloured yellow, at least
``threshold`` better blue. Cells without a finished run say why (missing, failed, diverged,
running) instead of showing a number.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient

from bpgrid.data import DATASETS

EDGE, PARTIAL = "†", "*"


class ReportError(ValueError):
    """The runs cannot make the requested table; the message says why and what to do."""


@dataclass
class Record:
    """One MLflow run, reduced to what the table needs."""

    dataset: str
    column: str
    label: str
    lr_scale: float
    seed: int
    status: str  # done | diverged | failed | running
    best: float | None
    run_id: str


@dataclass
class Cell:
    status: str  # value | missing | failed | diverged | running
    value: float | None = None
    std: float | None = None
    marks: str = ""
    colour: str = ""  # worse | better | ""
    best_lr_scale: float | None = None
    runs: int = 0
    best_run: str | None = None


@dataclass
class Table:
    grid: str
    rows: list[str]
    columns: list[str]
    labels: dict[str, str]
    cells: dict[tuple[str, str], Cell]
    baseline: str
    threshold: float
    scales: list[float] = field(default_factory=list)
    runs: int = 0
    code_versions: list[str] = field(default_factory=list)


def _column_of(run, column_key: list[str]) -> tuple[str, str]:
    parts, labels = [], []
    for key in column_key:
        if key == "method":
            parts.append(run.data.tags.get("method", ""))
            labels.append(run.data.tags.get("method_label") or parts[-1])
        else:
            parts.append(run.data.params.get(key, "?"))
            labels.append(f"{key.split('.')[-1]}={parts[-1]}")
    return "/".join(parts), " ".join(labels)


def fetch_records(uri: str, grid: str, column_key: list[str]) -> tuple[list[Record], list[str]]:
    """The runs of the grid's MLflow experiment, latest per cell, and their code versions."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(grid)
    runs = client.search_runs([experiment.experiment_id], max_results=50000) if experiment else []
    if not runs:
        raise ReportError(f"no runs in the MLflow experiment {grid!r} at {uri}; run "
                          f"`python -m bpgrid.sweep +grid={grid}` first (or set tracking.uri)")
    foreign = sorted({r.data.tags.get("grid") for r in runs} - {grid})
    if foreign:
        raise ReportError(f"the MLflow experiment {grid!r} holds runs of grid(s) {foreign}; a "
                          f"report reads one grid's runs (python -m bpgrid.report +grid=...)")
    latest: dict[str, object] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        latest[run.data.tags.get("cell_id", run.info.run_id)] = run
    records = []
    for run in latest.values():
        column, label = _column_of(run, column_key)
        status = {"FINISHED": run.data.tags.get("status", "done"), "FAILED": "failed"}.get(
            run.info.status, "running")
        records.append(Record(run.data.tags.get("dataset", "?"), column, label,
                              float(run.data.params["lr_scale"]), int(run.data.params["seed"]),
                              status, run.data.metrics.get("best_val_error"), run.info.run_id))
    versions = sorted({r.data.tags.get("code_version", "?") for r in latest.values()})
    return records, versions


def _ordered(present: set[str], preferred: list[str]) -> list[str]:
    return [c for c in preferred if c in present] + sorted(present - set(preferred))


def _cell(records: list[Record], scales: list[float]) -> Cell:
    if not records:
        return Cell("missing")
    by_seed: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        by_seed[r.seed].append(r)
    bests = []
    for seed_records in by_seed.values():
        scored = [r for r in seed_records if r.best is not None]
        if scored:
            bests.append(min(scored, key=lambda r: r.best))
    if not bests:
        statuses = {r.status for r in records}
        status = next(s for s in ("failed", "diverged", "running", "done") if s in statuses)
        return Cell("diverged" if status == "done" else status, runs=len(records))
    values = [r.best for r in bests]
    marks = ""
    if len(scales) >= 3 and any(r.lr_scale in (scales[0], scales[-1]) for r in bests):
        marks += EDGE
    finished = [r for r in records if r.status in ("done", "diverged")]
    if len(finished) < len(scales) * len(by_seed):
        marks += PARTIAL
    best = min(bests, key=lambda r: r.best)
    return Cell("value", statistics.fmean(values),
                statistics.stdev(values) if len(values) > 1 else None, marks,
                best_lr_scale=best.lr_scale, runs=len(records), best_run=best.run_id)


def build_table(records: list[Record], grid: str, columns: list[str], baseline: str,
                threshold: float, baseline_records: list[Record] | None = None) -> Table:
    """Aggregate records into cells, in the grid's column order, coloured against baseline."""
    scales = sorted({r.lr_scale for r in records})
    rows = _ordered({r.dataset for r in records}, list(DATASETS))
    cols = _ordered({r.column for r in records}, columns)
    labels = {r.column: r.label for r in records}
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[r.dataset, r.column].append(r)
    cells = {(d, c): _cell(groups[d, c], scales) for d in rows for c in cols}
    base_groups: dict[str, list[Record]] = defaultdict(list)
    for r in (baseline_records if baseline_records is not None else records):
        if r.column == baseline:
            base_groups[r.dataset].append(r)
    if baseline_records is not None and base_groups:
        cols = [baseline, *cols]
        labels[baseline] = next(r.label for rs in base_groups.values() for r in rs)
        for d in rows:
            cells[d, baseline] = _cell(base_groups[d], scales)
    for d in rows:
        base = cells.get((d, baseline))
        if base is None or base.value is None:
            continue
        for c in cols:
            cell = cells[d, c]
            if c == baseline or cell.value is None:
                continue
            diff = round(cell.value - base.value, 6)  # as printed, not float noise
            if diff >= threshold:
                cell.colour = "worse"
            elif -diff >= threshold:
                cell.colour = "better"
    return Table(grid, rows, cols, labels, cells, baseline, threshold, scales, len(records))
