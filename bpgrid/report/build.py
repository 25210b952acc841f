"""A grid's report: its cells composed, their runs read, and the tables in five formats, the paper
side by side, plots and a README written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bpgrid.report import conclusions, figures, render
from bpgrid.report.cells import GridCells, compose_grid, stderr_note
from bpgrid.report.paper import comparison, paper_numbers
from bpgrid.report.records import ReportError, fetch_runs, to_records, with_runs
from bpgrid.report.table import Table, build_table


def make_report(argv: list[str], note: Callable[[str], None] = stderr_note,
                plots: bool = True) -> Path:
    """``python -m bpgrid.report`` with these arguments; returns the report's folder."""
    grid = compose_grid(argv, note)
    settings, uri = grid.config.report, str(grid.config.tracking.uri)
    base = None
    if settings.baseline_grid:
        base = compose_grid(baseline_argv(argv, str(settings.baseline_grid), grid.column_key),
                            note)
    _check_baseline(str(settings.baseline), grid, base, settings.baseline_grid)
    wanted = grid.cells.cell_id if base is None else pd.concat([grid.cells.cell_id,
                                                               base.cells.cell_id])
    note(f"reading the runs of {wanted.nunique()} cells from {uri}")
    runs = fetch_runs(uri, wanted)
    records = to_records(with_runs(grid.cells, runs))
    if records.run_id.isna().all():
        raise ReportError(f"none of the {len(records)} cells of grid {grid.name} has a run in "
                          f"{uri}; run `python -m bpgrid.sweep +grid={grid.name}` first (or "
                          f"set tracking.uri)")
    base_records = None if base is None else to_records(with_runs(base.cells, runs))
    table = build_table(records, grid.name, grid.columns, str(settings.baseline),
                        float(settings.threshold), base_records)
    return write_report(table, Path(settings.out_dir), uri, argv,
                        str(grid.config.tracking.experiment), settings.baseline_grid, plots)


def baseline_argv(argv: list[str], baseline_grid: str, column_key: list[str]) -> list[str]:
    """The baseline grid's arguments: this report's, for ``baseline_grid``, less the overrides
    that choose this grid's columns (its ``column_key``)."""
    def key(arg: str) -> str:
        return arg.split("=", 1)[0].lstrip("+~")
    return [f"+grid={baseline_grid}",
            *(a for a in argv if key(a) != "grid" and key(a) not in column_key)]


def _check_baseline(baseline: str, grid: GridCells, base: GridCells | None,
                    baseline_grid: str | None) -> None:
    columns = set(grid.cells.column) | (set() if base is None else set(base.cells.column))
    if baseline not in columns:
        where = f"grid {grid.name}" + (f" or grid {baseline_grid}" if baseline_grid else "")
        raise ReportError(f"report.baseline={baseline!r} is no column of {where}; its columns: "
                          f"{', '.join(sorted(columns))}")


def write_report(table: Table, out_dir: Path, uri: str, argv: list[str], experiment: str,
                 baseline_grid: str | None = None, plots: bool = True) -> Path:
    """Write ``out_dir/<grid>/`` from the table (and the runs at ``uri``, for the curves)."""
    grid = table.grid
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
    readme = _readme(table, uri, argv, experiment, baseline_grid, outputs, pictures)
    (folder / "README.md").write_text(readme)
    return folder


def _readme(table: Table, uri: str, argv: list[str], experiment: str,
            baseline_grid: str | None, outputs, pictures) -> str:
    counts = table.cells.status.value_counts().sort_index()
    baseline_from = f" (from the runs of grid {baseline_grid})" if baseline_grid else ""
    found_in = ", ".join(f"`{name}` ({n})" for name, n in sorted(table.experiments.items()))
    return "\n".join([
        f"# Report of grid `{table.grid}`", "",
        f"Made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python -m bpgrid.report "
        f"{' '.join(argv)}` from `{uri}`, code version(s) {', '.join(table.code_versions)}.", "",
        f"Runs: the grid defines {table.grid_cells} cells; {table.runs} have a run. Each cell's "
        f"latest run is found by its cell id in any MLflow experiment, so a cell that another "
        f"grid ran counts here too. This grid logs to the experiment `{experiment}` "
        f"(`tracking.experiment`); the runs found are in {found_in or 'none'}.", "",
        "Selection rule: each cell is the best validation error over all epochs and LR scales "
        f"({', '.join(f'{s:g}' for s in table.scales)}) of its runs, averaged over seeds "
        "(± standard deviation with several seeds), as in Liao et al. §5. Cells at least "
        f"{table.threshold:g} points worse than the baseline column "
        f"`{table.baseline}`{baseline_from} are yellow, at least as much better blue. "
        "Cells without a finished run show missing, failed, diverged or running instead of a "
        "number. † marks a best LR scale at the lowest or highest scale the grid asked for, "
        "* a cell with some of its grid's runs missing, failed or still running.", "",
        f"Cells: {', '.join(f'{n} {s}' for s, n in counts.items())}.", "",
        "Files: " + ", ".join(f"`{n}`" for n in [*outputs, *(p.name for p in pictures)]) + ".",
        "`table.csv` names each cell's best run (`best_run_id`), so every number traces back "
        "to an MLflow run.", ""])
