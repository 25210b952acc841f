"""The published numbers (Liao et al. Tables 2-5, the reference report's tables) beside ours."""

from __future__ import annotations

import csv
from pathlib import Path

from bpgrid.report.render import row_label
from bpgrid.report.table import Table

PAPER_CSV = Path(__file__).with_name("paper.csv")


def paper_numbers(grid: str) -> dict[tuple[str, str], float]:
    """(dataset, column) -> published error (%) for a grid; empty if the papers have none."""
    with PAPER_CSV.open() as f:
        return {(r["dataset"], r["column"]): float(r["error"]) for r in csv.DictReader(f)
                if r["grid"] == grid}


def comparison(table: Table, paper: dict[tuple[str, str], float]) -> tuple[str, str]:
    """Markdown and CSV of "this run", "paper" and their difference wherever both exist."""
    head = ["dataset", *(table.labels[c] for c in table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = ["dataset,column,this_run,paper,difference"]
    for d in table.rows:
        cells = []
        for c in table.columns:
            ours, theirs = table.cells[d, c], paper.get((d, c))
            if ours.value is not None and theirs is not None:
                diff = ours.value - theirs
                cells.append(f"{ours.value:.2f} / {theirs:.2f} ({diff:+.2f})")
                rows.append(f"{d},{c},{ours.value:.4f},{theirs},{diff:.4f}")
            elif theirs is not None:
                cells.append(f"{ours.status} / {theirs:.2f}")
            else:
                cells.append(f"{ours.value:.2f} / –" if ours.value is not None else "–")
        lines.append("| " + " | ".join([row_label(d), *cells]) + " |")
    text = (f"# {table.grid}: this run / paper (difference)\n\n" + "\n".join(lines)
            + "\n\nError (%); the difference is this run minus the published number.\n")
    return text, "\n".join(rows) + "\n"
