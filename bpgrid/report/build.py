"""Write a grid's report: tables in five formats, the paper side by side, plots, a README."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bpgrid.report import conclusions, figures, render
from bpgrid.report.paper import comparison, paper_numbers
from bpgrid.report.records import fetch_records
from bpgrid.report.table import Table, build_table


def build_report(uri: str, grid: str, column_key: list[str], columns: list[str],
                 baseline: str, threshold: float, out_dir: Path,
                 baseline_grid: str | None = None, plots: bool = True) -> Path:
    """Read the grid's runs from MLflow and write ``out_dir/<grid>/``; returns that folder."""
    records = fetch_records(uri, grid, column_key)
    baseline_records = fetch_records(uri, baseline_grid, ["method"]) if baseline_grid else None
    table = build_table(records, grid, columns, baseline, threshold, baseline_records)
    folder = Path(out_dir) / grid
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {"table.md": render.markdown(table), "table.tex": render.latex(table),
               "table_standalone.tex": render.latex_standalone(table),
               "table.html": render.html_table(table), "table.csv": render.csv_table(table)}
    paper = paper_numbers(grid)
    if not paper.empty:
        outputs["paper_vs_run.md"], outputs["paper_vs_run.csv"] = comparison(table, paper)
    row = conclusions.CONCLUSION_ROWS.get(grid)  # the paper's conclusions (I)-(VI) on this row
    if row is not None:
        values = table.cells.value.xs(row, level="dataset") if row in table.rows else []
        errors = {c: None if pd.isna(v) else v for c, v in dict(values).items()}
        published = paper.xs(row, level="dataset").to_dict() if row in paper.index else {}
        outputs["conclusions.md"] = conclusions.markdown(grid, row, errors, published)
    for name, text in outputs.items():
        (folder / name).write_text(text)
    pictures = []
    if plots:
        flip = figures.flip_prob_plot(table, folder / "error_vs_flip_prob.png")
        pictures = ([flip] if flip else []) + figures.curves(table, uri, folder)
    (folder / "README.md").write_text(_readme(table, uri, baseline_grid, outputs, pictures))
    return folder


def _readme(table: Table, uri: str, baseline_grid: str | None, outputs, pictures) -> str:
    counts = table.cells.status.value_counts().sort_index()
    baseline_from = f" (from the runs of grid {baseline_grid})" if baseline_grid else ""
    return "\n".join([
        f"# Report of grid `{table.grid}`", "",
        f"Made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python -m bpgrid.report "
        f"+grid={table.grid}` from the MLflow experiment `{table.grid}` at `{uri}`: "
        f"{table.runs} runs, code version(s) {', '.join(table.code_versions)}.", "",
        "Selection rule: each cell is the best validation error over all epochs and LR scales "
        f"({', '.join(f'{s:g}' for s in table.scales)}) of its runs, averaged over seeds "
        "(± standard deviation with several seeds), as in Liao et al. §5. Cells at least "
        f"{table.threshold:g} points worse than the baseline column "
        f"`{table.baseline}`{baseline_from} are yellow, at least as much better blue. "
        "Cells without a finished run show missing, failed, diverged or running instead of a "
        "number. † marks a best LR scale at the edge of the grid, * a cell with missing or "
        "failed runs.", "",
        f"Cells: {', '.join(f'{n} {s}' for s, n in counts.items())}.", "",
        "Files: " + ", ".join(f"`{n}`" for n in [*outputs, *(p.name for p in pictures)]) + ".",
        "`table.csv` names each cell's best run (`best_run_id`), so every number traces back "
        "to an MLflow run.", ""])
