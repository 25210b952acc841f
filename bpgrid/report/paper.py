"""The published numbers (Liao et al. Tables 2-5, the reference report's tables) beside ours."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bpgrid.report.render import markdown_grid
from bpgrid.report.table import KEYS, Table

PAPER_CSV = Path(__file__).with_name("paper.csv")


def paper_numbers(grid: str) -> pd.Series:
    """(dataset, column) -> published error (%) for a grid; empty if the papers have none."""
    paper = pd.read_csv(PAPER_CSV, dtype={"column": str})
    return paper[paper.grid == grid].set_index(KEYS)["error"]


def comparison(table: Table, paper: pd.Series) -> tuple[str, str]:
    """Markdown and CSV of "this run", "paper" and their difference wherever both exist."""
    c = table.cells.assign(paper=paper.reindex(table.cells.index))
    text = c.apply(_pair, axis=1)
    frame = table.wide(text).rename(index=table.row_labels, columns=table.column_labels)
    both = c.dropna(subset=["value", "paper"])
    both = both.assign(this_run=both.value.map("{:.4f}".format), paper=both.paper.map(str),
                       difference=(both.value - both.paper).map("{:.4f}".format))
    markdown = (f"# {table.grid}: this run / paper (difference)\n\n{markdown_grid(frame)}\n\n"
                "Error (%); the difference is this run minus the published number.\n")
    return markdown, both[["this_run", "paper", "difference"]].to_csv(lineterminator="\n")


def _pair(cell: pd.Series) -> str:
    """"ours / paper (difference)", or as much of it as exists."""
    ours = cell.status if pd.isna(cell.value) else f"{cell.value:.2f}"
    if pd.isna(cell.paper):
        return "–" if pd.isna(cell.value) else f"{ours} / –"
    difference = "" if pd.isna(cell.value) else f" ({cell.value - cell.paper:+.2f})"
    return f"{ours} / {cell.paper:.2f}{difference}"
