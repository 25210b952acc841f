"""A grid's state now: each cell's state from its files (bpgrid/census.py), with the owner, the
log and the error that go with it, and for a running cell its epochs and best validation error
so far, from the tracking store.

Why the store and not the checkpoint for the running cells: a checkpoint holds the whole model
and optimizer state (megabytes to read, through torch.load, for one number per epoch), while the
store answers with the val_error series alone, one query per running cell. Its run is the one the
cell's current owner started, named in the cell's journal (attempts.jsonl) under the owner's
lease token, so an older run of the same cell is never read by mistake.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from bpgrid import lease
from bpgrid.cellfiles import CellFiles, read_attempts
from bpgrid.census import STATES, CellState, Census, census
from bpgrid.report.cells import GridCells
from bpgrid.report.records import check_store
from bpgrid.report.table import ordered, row_labels


@dataclass
class GridStatus:
    """A grid's cells (``GridCells.cells``) with, per cell: state, epoch (epochs trained so far,
    for a running cell), best (its best val error so far, %), owner, log and error."""

    grid: str
    cells: pd.DataFrame
    rows: dict[str, str]  # dataset -> row label, in the report's order
    columns: dict[str, str]  # column -> label, in the grid's order
    cells_dir: Path
    uri: str
    slurm: dict[str, str] | None = None  # SLURM job -> state, for the jobs leases name
    notes: list[str] = field(default_factory=list)  # what could not be read, and why
    taken: float = 0.0  # time.time() of the look

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(self.cells.state)
        return {s: counts[s] for s in STATES if counts[s]}

    def of(self, state: str) -> pd.DataFrame:
        return self.cells[self.cells.state == state]


def look(grid: GridCells) -> GridStatus:
    """The grid's state as its cells' files and the tracking store tell it now."""
    cells_dir, uri = Path(str(grid.config.cells_dir)), str(grid.config.tracking.uri)
    found = census(CellFiles(cells_dir / cid) for cid in grid.cells.cell_id)
    frame = grid.cells.assign(**_details(found, grid.cells.cell_id))
    status = GridStatus(grid.name, frame, row_labels(frame.dataset),
                        {c: frame.label[frame.column == c].iloc[0]
                         for c in ordered(set(frame.column), grid.columns)},
                        cells_dir, uri, found.slurm, taken=time.time())
    if found.slurm is None:
        status.notes.append("SLURM cannot be asked here (no squeue answers): SLURM jobs are "
                            "judged by their leases' heartbeats")
    for c in found.cells.values():
        status.notes += [f"cell {c.cell_id}: {text}" for text in c.unreadable]
    _progress(status, found, cells_dir)
    return status


def _details(found: Census, cell_ids: pd.Series) -> dict[str, list]:
    """Per cell: state, owner (the lease's owner in words), log and error (the failure's first
    line, or what the lease says for a stale one)."""
    out: dict[str, list] = {"state": [], "owner": [], "log": [], "error": []}
    for cid in cell_ids:
        cell: CellState = found.cells[cid]
        held, failure = cell.lease, cell.failure or {}
        out["state"].append(cell.state)
        out["owner"].append(lease.describe(held) if held else "")
        out["log"].append(failure.get("log") or (held or {}).get("log") or "")
        error = (failure.get("error") or "").strip().splitlines()
        out["error"].append(error[0] if error else "")
    return out


def _progress(status: GridStatus, found: Census, cells_dir: Path) -> None:
    """Epochs and best val error so far of each running cell, from its current run's metrics."""
    running = status.cells.index[status.cells.state == "running"]
    epochs, best = pd.Series(math.nan, status.cells.index), pd.Series(math.nan, status.cells.index)
    runs = {i: _current_run(found.cells[status.cells.cell_id[i]], cells_dir) for i in running}
    runs = {i: r for i, r in runs.items() if r}
    if runs:
        try:
            check_store(status.uri)
            client = MlflowClient(status.uri)
            for i, run_id in runs.items():
                values = {m.step: m.value for m in client.get_metric_history(run_id, "val_error")}
                finite = [v for v in values.values() if math.isfinite(v)]
                epochs[i] = max(values, default=math.nan)
                best[i] = min(finite, default=math.nan)
        except Exception as err:  # the store is away (or not made yet): the states stand alone
            status.notes.append(f"best errors so far unknown: {status.uri}: {err}")
    status.cells = status.cells.assign(epoch=epochs, best=best)


def _current_run(cell: CellState, cells_dir: Path) -> str | None:
    """The MLflow run that the cell's current owner logs into (its journal's start line)."""
    token = (cell.lease or {}).get("token")
    starts = [a for a in read_attempts(CellFiles(cells_dir / cell.cell_id))
              if a.get("event") == "start" and a.get("token") == token and a.get("run_id")]
    return starts[-1]["run_id"] if starts else None


def table_text(states: pd.Series, best: pd.Series) -> str:
    """A table cell's grid cells (its LR scales and seeds) in a few words: the state when they
    share it, else ``k/n done`` and the other states' counts; running ones with their best
    val error so far."""
    counts = Counter(states)
    shown = best[states == "running"].min()
    best_text = "" if pd.isna(shown) else f" {shown:.1f}%"
    if len(counts) == 1:
        state = states.iloc[0]
        return state + (best_text if state == "running" else "")
    parts = [f"{counts['done']}/{len(states)} done"]
    parts += [f"{counts[s]} {s}" + (best_text if s == "running" else "")
              for s in STATES if s not in ("done", "missing") and counts[s]]
    return ", ".join(parts)
