"""``python -m bpgrid.report +grid=NAME [overrides]``: tables and plots of a grid's cells.

Composes the grid's cells as the sweep does (the same overrides pick the same cells), finds each
cell's latest run by its cell id in the MLflow store (``tracking.uri``) and writes
``reports/<grid>/``. ``--help`` prints the usage (exit status 0); a bad command line, override
or store is one message and exit status 2 (bpgrid/cli.py).
"""

from __future__ import annotations

import sys

from bpgrid.cli import Command, run

COMMAND = Command("bpgrid.report", "+grid=NAME [overrides]", """\
Writes <report.out_dir>/<grid>/ (default reports/<grid>/): table.md, .tex, _standalone.tex,
.html, .csv, the published numbers beside this run's, learning curves and a README. Rows,
columns and LR scales are the grid's; a cell without a finished run reads missing, failed,
diverged or running. Overrides are the sweep's: dataset=mnist,cifar10 or seed=0,1,2 report
those cells; tracking.uri=..., report.baseline=..., report.threshold=5, report.out_dir=...
choose where and how.""")


def _report(argv: list[str]) -> int:
    from bpgrid.report.build import make_report

    folder = make_report(argv)
    print(f"report: {folder}/table.md (also .tex, _standalone.tex, .html, .csv; README.md)")
    return 0


def _errors() -> tuple[type[Exception], ...]:
    """A report's own errors of bad input (imported when needed: --help does not wait)."""
    from mlflow.exceptions import MlflowException

    from bpgrid.report.records import ReportError
    return ReportError, MlflowException


def main(argv: list[str]) -> int:
    return run(COMMAND, _report, argv, errors=_errors)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
