"""``python -m bpgrid.report +grid=NAME [overrides]``: tables and plots of a grid's cells.

Composes the grid's cells as the sweep does (the same overrides pick the same cells), finds each
cell's latest run by its cell id in the MLflow store (``tracking.uri``) and writes
``reports/<grid>/``. A bad command line, override or store is one message and exit status 2.
"""

from __future__ import annotations

import difflib
import sys

from bpgrid.grid import CONF

HELP = """\
Writes <report.out_dir>/<grid>/ (default reports/<grid>/): table.md, .tex, _standalone.tex,
.html, .csv, the published numbers beside this run's, learning curves and a README. Rows,
columns and LR scales are the grid's; a cell without a finished run reads missing, failed,
diverged or running. Overrides are the sweep's: dataset=mnist,cifar10 or seed=0,1,2 report
those cells; tracking.uri=..., report.baseline=..., report.threshold=5, report.out_dir=...
choose where and how."""


def grids() -> list[str]:
    return sorted(p.stem for p in (CONF / "grid").glob("*.yaml"))


def usage() -> str:
    return f"usage: python -m bpgrid.report +grid=NAME [overrides]; grids: {', '.join(grids())}"


def _grid_name(argv: list[str]) -> str | None:
    names = [a.split("=", 1)[1] for a in argv if a.startswith(("+grid=", "grid="))]
    return names[-1] if names else None


def _bad_command_line(argv: list[str]) -> str | None:
    """What is wrong with the command line before any work, or None."""
    if any(a in ("-h", "--help") for a in argv):
        return f"{usage()}\n{HELP}"
    if any(a.startswith("-") for a in argv):
        return f"unknown option {next(a for a in argv if a.startswith('-'))}\n{usage()}"
    return bad_grid(argv, "bpgrid.report", usage())


def bad_grid(argv: list[str], command: str, usage: str) -> str | None:
    """What is wrong with the grid the arguments name (none, or one that does not exist), or
    None; ``command`` and its ``usage`` go into the message."""
    name = _grid_name(argv)
    if name is None:
        return usage
    if name not in grids():
        close = difflib.get_close_matches(name, grids(), n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"{command}: no grid {name!r} in {CONF / 'grid'}{hint}\n{usage}"
    return None


def main(argv: list[str]) -> int:
    problem = _bad_command_line(argv)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from hydra.errors import HydraException  # imported here: --help does not wait for them
    from mlflow.exceptions import MlflowException
    from omegaconf.errors import OmegaConfBaseException

    from bpgrid.config import ConfigError
    from bpgrid.report.build import make_report
    from bpgrid.report.records import ReportError
    try:
        folder = make_report(argv)
    except (ConfigError, HydraException, OmegaConfBaseException, ReportError,
            MlflowException) as err:
        cause = f"\n{err.__cause__}" if err.__cause__ else ""  # Hydra's says which key
        print(f"bpgrid.report: {err}{cause}", file=sys.stderr)
        return 2
    print(f"report: {folder}/table.md (also .tex, _standalone.tex, .html, .csv; README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
