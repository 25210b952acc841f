"""What composing a grid costs: its cells composed as the sweep does, and a sample composed alone.

    python benchmarks/grid_compose.py [--grid experiment_a] [--alone 20]

The sweep composes once per distinct set of structural overrides (group choices such as method
and dataset) and sets the plain values (lr_scale, seed, feedback.flip_prob) on that composition.
Composing each cell alone, as Hydra's own sweepers do, is the side-by-side reference, timed on a
sample of cells spread over the grid. Both include validating every cell.
"""

from __future__ import annotations

import argparse
import time

from hydra import compose, initialize_config_dir

from bpgrid.config import validate
from bpgrid.grid import CONF, compose_cells, load_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="experiment_a")
    parser.add_argument("--alone", type=int, default=20, help="cells composed alone")
    args = parser.parse_args()
    argv = [f"+grid={args.grid}", "hydra.sweep.dir=/tmp/bpgrid-grid-compose"]
    start = time.perf_counter()
    grid = load_grid(argv)
    cells = compose_cells(grid)
    shared = time.perf_counter() - start
    sample = grid.jobs[:: max(1, len(grid.jobs) // args.alone)][: args.alone]
    start = time.perf_counter()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for job in sample:
            validate(compose("sweep", job))
    alone = (time.perf_counter() - start) / len(sample)
    per_cell = shared / len(cells)
    print(f"grid {grid.name}: {len(cells)} cells, composed and validated")
    print(f"  as the sweep does: {shared:6.1f} s, {1000 * per_cell:6.1f} ms a cell")
    print(f"  each cell alone:   {1000 * alone:6.1f} ms a cell ({len(sample)} cells), "
          f"{alone / per_cell:.1f}x the sweep's")

if __name__ == "__main__":
    main()
