"""``python -m bpgrid.report +grid=NAME [overrides]``: tables and plots of a grid's runs.

Reads the grid's runs from MLflow (``tracking.uri``) and writes ``reports/<grid>/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from bpgrid.report.build import build_report
from bpgrid.report.records import ReportError

CONF = Path(__file__).resolve().parent.parent.parent / "conf"


def main(argv: list[str]) -> int:
    grids = sorted(p.stem for p in (CONF / "grid").glob("*.yaml"))
    if not any(a.startswith(("+grid=", "grid=")) for a in argv):
        print(f"usage: python -m bpgrid.report +grid=NAME [overrides]; grids: "
              f"{', '.join(grids)}", file=sys.stderr)
        return 2
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=argv)
    grid, report = cfg.grid, cfg.report
    try:
        folder = build_report(
            cfg.tracking.uri, grid.name, list(grid.get("column_key", ["method"])),
            list(grid.get("columns", [])), report.baseline, float(report.threshold),
            Path(report.out_dir), report.baseline_grid)
    except ReportError as err:
        print(f"bpgrid.report: {err}", file=sys.stderr)
        return 2
    print(f"report: {folder}/table.md (also .tex, _standalone.tex, .html, .csv; README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
