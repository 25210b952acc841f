"""Run a grid: ``python -m bpgrid.sweep +grid=NAME [overrides] [hydra/launcher=local|slurm|debug]``.

The grid's axes (``hydra.sweeper.params`` in the grid file, any of them overridable:
``dataset=digits,mnist1d seed=0,1,2``) expand into cells. Before any cell is composed, every
dataset of the grid is checked for its files; then every cell is composed and validated before
anything starts. The launcher's backend then skips finished cells and cells live jobs own, and
runs the rest. Ends with a summary line and ``summary.json`` in the sweep's folder; exits 1 if
any cell failed, 2 on a bad command line, config or missing dataset (a dry run too, after showing
the grid), 128 + the signal's number when SIGINT, SIGTERM or SIGHUP stopped it (local workers are
stopped with it, every cell resumes on a rerun; a SLURM sweep detaches, its array goes on).
In MLflow, the sweep is a run whose children are the runs of the cells it starts
(bpgrid/sweep_run.py), each named for people (bpgrid/naming.py).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from bpgrid.cli import BAD_INPUT, Command, run

if TYPE_CHECKING:
    from bpgrid.backends import Summary
    from bpgrid.grid import Grid

SHOWN = 5  # cells a dry run prints
COMMAND = Command("bpgrid.sweep", "+grid=NAME [overrides]", """\
Runs every cell of the grid conf/grid/NAME.yaml that is not finished, on hydra/launcher=local
(the default), slurm or debug, and ends with a summary line. Any axis can be overridden:
dataset=digits,mnist1d seed=0,1,2 lr_scale=100,10. grid.dry_run=true shows the grid's size and
first cells and what is already finished, and launches nothing. Exit status: 0 when every cell
ended, 1 when a cell failed, 2 on a bad command line, override or missing dataset (nothing
started), 128 + the signal's number when stopped.""")


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _sweep, argv)


def _sweep(argv: list[str]) -> int:
    from bpgrid.shutdown import Interrupted, signals_raise

    with signals_raise():
        try:
            return _run(argv)
        except Interrupted as stop:
            print(f"sweep: {stop} before any cell started", file=sys.stderr)
            return stop.exit_code


def _run(argv: list[str]) -> int:
    from omegaconf import OmegaConf

    from bpgrid.backends import make_backend
    from bpgrid.data.missing import check_data
    from bpgrid.grid import compose_cells, datasets, load_grid
    from bpgrid.naming import name_runs
    from bpgrid.sweep_run import SweepRun

    grid = load_grid(argv)
    backend = make_backend(grid.launcher, grid.folder / "jobs")
    if grid.dry_run:
        return _dry_run(grid)
    check_data(datasets(grid))
    cells = compose_cells(grid)
    grid.folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(grid.config, grid.folder / "multirun.yaml")
    name_runs(cells, grid.jobs)
    parent = SweepRun(grid, argv)
    try:
        summary = backend.run(cells, on_launch=parent.open)
    except BaseException as err:
        parent.abort(err)
        raise
    _report(summary, grid)
    parent.close(summary)
    if summary.stopped_by:
        return 128 + summary.stopped_by
    return 1 if summary.counts.get("failed") else 0


def _dry_run(grid: Grid) -> int:
    """The grid's size and first cells, its missing datasets, and what its cells' files say
    (cells made under their legacy ids are moved to their new ids here, which trains nothing);
    exit status 2 when a dataset is missing, as the sweep itself would stop."""
    from bpgrid.data.missing import MissingData, check_data
    from bpgrid.grid import compose_cells, datasets

    print(f"grid {grid.name}: {len(grid.jobs)} cells (dry run, nothing launched)")
    for job in grid.jobs[:SHOWN]:
        print(f"  {grid.shown(job)}")
    try:
        check_data(datasets(grid))
        lost = None
    except MissingData as err:
        lost = err
        print(f"{COMMAND.name}: {err}", file=sys.stderr, flush=True)
    _show_survey(compose_cells(grid))
    return BAD_INPUT if lost else 0


def _show_survey(cells: list[dict]) -> None:
    from bpgrid.backends.survey import survey

    found = survey(cells)
    print(f"  {len(found.finished)} finished, {len(found.running)} owned by live jobs, "
          f"{len(found.todo)} to run; {len(found.migrated)} found under their legacy ids")


def _report(summary: Summary, grid: Grid) -> None:
    path = summary.save(grid.folder)
    print(summary.line())
    for failure in summary.failed:
        print(f"  failed {failure.cell_id}: {failure.log}"
              + (f"\n    {failure.error.splitlines()[-1]}" if failure.error else ""))
    for cid, owner in summary.running.items():
        print(f"  running {cid}: {owner}")
    for moved in summary.set_aside:
        print(f"  set aside {moved}")
    if summary.migrated:
        print(f"  {len(summary.migrated)} cells found under their legacy ids and moved")
    if summary.stopped_by:
        unfinished = summary.counts.get("interrupted", 0) + len(summary.running)
        resume = ("run the same command again to resume every unfinished cell" if unfinished
                  else "every cell had already ended")
        print(f"  stopped by a signal: {summary.detached or resume}")
    print(f"summary: {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
