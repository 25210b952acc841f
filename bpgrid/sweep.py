"""Run a grid: ``python -m bpgrid.sweep +grid=NAME [overrides] [hydra/launcher=local|slurm|debug]``.

Hydra's sweeper expands the grid (``hydra.sweeper.params`` in the grid file, any axis overridable:
``dataset=digits,mnist1d seed=0,1,2``); the bpgrid launcher validates every cell, skips finished
ones and dispatches the rest. Ends with a summary line; exits 1 if any cell failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from bpgrid import dispatch
from bpgrid.cell import run_cell

CONF = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(config_path=CONF, config_name="sweep", version_base="1.3")
def _cell(cfg: DictConfig) -> None:
    """Hydra's task function; used only if a non-bpgrid launcher is chosen."""
    run_cell(cfg)


def main() -> int:
    if not any(arg.startswith("+grid=") or arg.startswith("grid=") for arg in sys.argv[1:]):
        print("usage: python -m bpgrid.sweep +grid=NAME [overrides]; grids: "
              + ", ".join(sorted(p.stem for p in (Path(CONF) / "grid").glob("*.yaml"))),
              file=sys.stderr)
        return 2
    _cell()
    ended = dispatch.LAST_SWEEP
    if not ended:  # Hydra returned without the bpgrid launcher reporting an end
        return 1
    summary = ended[-1]
    return 1 if summary is not None and summary.counts.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
