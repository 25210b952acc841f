"""Run a grid: ``python -m bpgrid.sweep +grid=NAME [overrides] [hydra/launcher=local|slurm|debug]``.

The grid's axes (``hydra.sweeper.params`` in the grid file, any of them overridable:
``dataset=digits,mnist1d seed=0,1,2``) expand into cells, and every cell is validated before
anything starts. The launcher's backend then skips finished cells and cells live jobs own, and
runs the rest. Ends with a summary line and ``summary.json`` in the sweep's folder; exits 1 if
any cell failed, 2 on a bad command line or config, 128 + the signal's number when SIGINT,
SIGTERM or SIGHUP stopped it (local workers are stopped with it, every cell resumes on a rerun;
a SLURM sweep detaches, its array goes on). In MLflow, the sweep is a run whose children are the
runs of the cells it starts (bpgrid/sweep_run.py), each named for people (bpgrid/naming.py).
"""

from __future__ import annotations

import sys

from hydra.errors import HydraException
from omegaconf import OmegaConf

from bpgrid.backends import Summary, make_backend
from bpgrid.backends.survey import survey
from bpgrid.config import ConfigError
from bpgrid.grid import CONF, Grid, compose_cells, load_grid
from bpgrid.naming import name_runs
from bpgrid.shutdown import Interrupted, signals_raise
from bpgrid.sweep_run import SweepRun

SHOWN = 5  # cells a dry run prints


def usage() -> str:
    grids = ", ".join(sorted(p.stem for p in (CONF / "grid").glob("*.yaml")))
    return f"usage: python -m bpgrid.sweep +grid=NAME [overrides]; grids: {grids}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (not any(arg.startswith(("+grid=", "grid=")) for arg in argv)
            or any(arg.startswith("-") for arg in argv)):
        print(usage(), file=sys.stderr)
        return 2
    with signals_raise():
        try:
            return _sweep(argv)
        except Interrupted as stop:
            print(f"sweep: {stop} before any cell started", file=sys.stderr)
            return stop.exit_code


def _sweep(argv: list[str]) -> int:
    try:
        grid = load_grid(argv)
        backend = make_backend(grid.launcher, grid.folder / "jobs")
        cells = compose_cells(grid)
        if grid.dry_run:
            _show_dry_run(grid, cells)
            return 0
        grid.folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(grid.config, grid.folder / "multirun.yaml")
        name_runs(cells, grid.jobs)
        parent = SweepRun(grid, argv)
        try:
            summary = backend.run(cells, on_launch=parent.open)
        except BaseException as err:
            parent.abort(err)
            raise
    except (ConfigError, HydraException, FileNotFoundError) as err:
        cause = f"\n{err.__cause__}" if err.__cause__ else ""  # Hydra's says which key
        print(f"bpgrid: {err}{cause}", file=sys.stderr)
        return 2
    _report(summary, grid)
    parent.close(summary)
    if summary.stopped_by:
        return 128 + summary.stopped_by
    return 1 if summary.counts.get("failed") else 0


def _show_dry_run(grid: Grid, cells: list[dict]) -> None:
    """The grid's size and first cells, and what their files say (cells made under their legacy
    ids are moved to their new ids here, which trains nothing)."""
    print(f"grid {grid.name}: {len(grid.jobs)} cells (dry run, nothing launched)")
    for job in grid.jobs[:SHOWN]:
        print(f"  {grid.shown(job)}")
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
        resume = "run the same command again to resume every unfinished cell"
        print(f"  stopped by a signal: {summary.detached or resume}")
    print(f"summary: {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
