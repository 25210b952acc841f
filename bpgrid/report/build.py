"""Write a grid's report: tables in five formats, the paper side by side, plots, a README."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bpgrid.report import conclusions, figures, render
from bpgrid.report.paper import comparison, paper_numbers
from bpgrid.report.table import Table, build_table, fetch_records


def build_report(uri: str, grid: str, column_key: list[str], columns: list[str],
                 baseline: str, threshold: float, out_dir: Path,
                 baseline_grid: str | None = None, plots: bool = True) -> Path:
    """Read the grid's runs from MLflow and write ``out_dir/<grid>/``; returns that folder."""
    records, versions = fetch_records(uri, grid, column_key)
    baseline_records = None
    if baseline_grid:
        baseline_records, _ = fetch_records(uri, baseline_grid, ["method"])
    table = build_table(records, grid, columns, baseline, threshold, baseline_records)
    table.code_versions = versions
    folder = Path(out_dir) / grid
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {"table.md": render.markdown(table), "table.tex": render.latex(table),
               "table_standalone.tex": render.latex_standalone(table),
               "table.html": render.html_table(table), "table.csv": render.csv_table(table)}
    paper = paper_numbers(grid)
    if paper:
        outputs["paper_vs_run.md"], outputs["paper_vs_run.csv"] = comparison(table, paper)
    row = conclusions.CONCLUSION_ROWS.get(grid)  # the paper's conclusions (I)-(VI) on this row
    if row is not None:
        errors = {c: cell.value for (d, c), cell in table.cells.items() if d == row}
        published = {c: value for (d, c), value in paper.items() if d == row}
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
    counts: dict[str, int] = {}
    for cell in table.cells.values():
        counts[cell.status] = counts.get(cell.status, 0) + 1
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
        f"Cells: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}.", "",
        "Files: " + ", ".join(f"`{n}`" for n in [*outputs, *(p.name for p in pictures)]) + ".",
        "`table.csv` names each cell's best run (`best_run_id`), so every number traces back "
        "to an MLflow run.", ""])
