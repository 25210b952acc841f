"""Run a grid: ``python -m bpgrid.sweep +grid=NAME [overrides] [hydra/launcher=local|slurm|debug]``.

The grid's axes (``hydra.sweeper.params`` in the grid file, any of them overridable:
``dataset=digits,mnist1d seed=0,1,2``) expand into cells, and every cell is validated before
anything starts. The launcher's backend then skips finished cells and runs the rest. Ends with a
summary line and ``summary.json`` in the sweep's folder; exits 1 if any cell failed, 2 on a bad
command line or config.
"""

from __future__ import annotations

import sys

from hydra.errors import HydraException
from omegaconf import OmegaConf

from bpgrid.backends import Summary, make_backend
from bpgrid.config import ConfigError
from bpgrid.grid import CONF, Grid, compose_cells, load_grid

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
    try:
        grid = load_grid(argv)
        backend = make_backend(grid.launcher, grid.folder / "jobs")
        cells = compose_cells(grid)
        if grid.dry_run:
            _show_dry_run(grid)
            return 0
        grid.folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(grid.config, grid.folder / "multirun.yaml")
        summary = backend.run(cells)
    except (ConfigError, HydraException, FileNotFoundError) as err:
        cause = f"\n{err.__cause__}" if err.__cause__ else ""  # Hydra's says which key
        print(f"bpgrid: {err}{cause}", file=sys.stderr)
        return 2
    _report(summary, grid)
    return 1 if summary.counts.get("failed") else 0


def _show_dry_run(grid: Grid) -> None:
    print(f"grid {grid.name}: {len(grid.jobs)} cells (dry run, nothing launched)")
    for job in grid.jobs[:SHOWN]:
        print(f"  {grid.shown(job)}")


def _report(summary: Summary, grid: Grid) -> None:
    path = summary.save(grid.folder)
    print(summary.line())
    for failure in summary.failed:
        print(f"  failed {failure.cell_id}: {failure.log}")
    print(f"summary: {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
