"""How ``python -m bpgrid.status`` shows a grid's state (rich renderables): the counts, the
dataset x column table, then the running, failed and stale cells one line each."""

from __future__ import annotations

import time
from collections import Counter

import pandas as pd
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bpgrid.status.gather import GridStatus, table_text

SHOWN = 20  # cells listed per state; the rest are counted
STYLES = {"done": "green", "diverged": "magenta", "failed": "bold red", "running": "yellow",
          "queued": "cyan", "stale": "red", "stopped": "blue", "missing": "dim"}
FIRST = ("failed", "stale", "running", "queued", "diverged", "stopped")  # a mixed cell's colour


def render(status: GridStatus) -> RenderableType:
    parts: list[RenderableType] = [_header(status), _table(status)]
    parts += _running(status) + _failed(status) + _stale(status)
    parts += [Text(f"note: {n}", style="dim") for n in status.notes]
    return Group(*parts)


def _header(status: GridStatus) -> Text:
    text = Text(f"grid {status.grid}: {len(status.cells)} cells: ")
    for n, (state, count) in enumerate(status.counts.items()):
        text.append(", " if n else "")
        text.append(f"{count} {state}", style=STYLES[state])
    text.append(f"\ncells in {status.cells_dir}/, runs in {status.uri}, at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(status.taken))}")
    if status.slurm:
        jobs = Counter(status.slurm.values())
        text.append("\nSLURM jobs of the leases: "
                    + ", ".join(f"{n} {state}" for state, n in sorted(jobs.items())))
    return text


def _style(states: pd.Series) -> str:
    present = set(states)
    if len(present) == 1:
        return STYLES[states.iloc[0]]
    return next((STYLES[s] for s in FIRST if s in present), "")


def _table(status: GridStatus) -> Table:
    table = Table("dataset", *status.columns.values(), box=box.SIMPLE_HEAD)
    groups = status.cells.groupby(["dataset", "column"])
    for dataset, row_label in status.rows.items():
        row: list[RenderableType] = [row_label]
        for column in status.columns:
            try:
                cells = groups.get_group((dataset, column))
            except KeyError:  # this dataset has no cell in this column
                row.append("")
                continue
            row.append(Text(table_text(cells.state, cells.best), style=_style(cells.state)))
        table.add_row(*row)
    return table


def _name(cell) -> str:
    return (f"{cell.column} {cell.dataset} lr_scale={cell.lr_scale:g} seed={cell.seed} "
            f"({cell.cell_id})")


def _listed(status: GridStatus, state: str, line) -> list[RenderableType]:
    cells = status.of(state)
    if cells.empty:
        return []
    out: list[RenderableType] = [Text(f"\n{state}:", style=STYLES[state])]
    out += [Text(f"  {_name(cell)}{line(cell)}") for cell in cells.head(SHOWN).itertuples()]
    if len(cells) > SHOWN:
        out.append(Text(f"  ... and {len(cells) - SHOWN} more"))
    return out


def _running(status: GridStatus) -> list[RenderableType]:
    epochs = status.cells["schedule.epochs"] if "schedule.epochs" in status.cells else None

    def line(cell) -> str:
        total = "" if epochs is None else f"/{epochs[cell.Index]}"
        done = "" if pd.isna(cell.epoch) else f"epoch {int(cell.epoch)}{total}"
        best = "" if pd.isna(cell.best) else f", best val error {cell.best:.2f}%"
        return f": {done or 'no epoch yet'}{best}\n    {cell.owner}"
    return _listed(status, "running", line)


def _failed(status: GridStatus) -> list[RenderableType]:
    return _listed(status, "failed", lambda c: f"\n    log: {c.log or '?'}\n    {c.error or '?'}")


def _stale(status: GridStatus) -> list[RenderableType]:
    return _listed(status, "stale", lambda c: f": claimed by {c.owner}, who is gone; a rerun "
                                              f"takes it over")
